#!/usr/bin/env bash
# Make (once) the small Python environment that builds the .vsix when there is no .venv, and
# print its interpreter. scripts/build-vsix-libs.py only runs pip in it and reads libcst's
# version from it, so it holds pyproject.toml's build backend and libcst, and no torch.
#
# Environment: PYTHON3 (the interpreter that makes it; default python3, 3.9 or newer).
# The environment lives in build/vsix-python and is remade when pyproject.toml changes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ENV_DIR=build/vsix-python
PY=$ENV_DIR/bin/python
want=$(sha256sum pyproject.toml | cut -c1-16)
stamp=$ENV_DIR/.ckpt-vsix-python
if [[ -x $PY && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    echo "$PY"
    exit 0
fi

log() { echo "vsix-python: $*" >&2; }
BASE=${PYTHON3:-python3}
if ! "$BASE" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
    log "$BASE is missing or older than 3.9: set PYTHON3, or PYTHON to an interpreter with pip"
    exit 1
fi
log "making $ENV_DIR with $("$BASE" --version 2>&1)"
rm -rf "$ENV_DIR"
"$BASE" -m venv "$ENV_DIR" >&2
pip() { "$PY" -m pip --disable-pip-version-check --quiet "$@" >&2; }
# An older pip than the venv's own resolves `--target --python-version 3.9` wrongly (it put
# astroid 4, which needs 3.10, into the 3.9 bundle), as the one scripts/setup.sh upgrades does.
pip install --upgrade pip
pip install "tomli>=1.1; python_version < '3.11'" packaging
# What pyproject.toml names, read rather than repeated here: the build backend (the project is
# installed without build isolation) and the libcst requirement (its version is the default).
mapfile -t needs < <("$PY" - <<'EOF'
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib
from packaging.requirements import Requirement

with open("pyproject.toml", "rb") as file:
    project = tomllib.load(file)
for need in project["build-system"]["requires"]:
    print(need)
for need in project["project"]["dependencies"]:
    if Requirement(need).name == "libcst":
        print(need)
EOF
)
pip install "${needs[@]}"
echo "$want" >"$stamp"
log "ready: ${needs[*]}"
echo "$PY"
