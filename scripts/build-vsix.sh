#!/usr/bin/env bash
# Build the VS Code extension for one platform: ckpt-lsp-<target>-<version>.vsix at the repo root.
#
#   npm run package                         # linux-x64
#   npm run package -- win32-x64            # or TARGET=darwin-arm64 npm run package
#
# Targets: linux-x64 linux-arm64 alpine-x64 alpine-arm64 win32-x64 win32-arm64 darwin-arm64
# darwin-x64. The .vsix is per platform because libcst's parser is native code: it carries
# libcst for CPython 3.9-3.13 of that platform (bundled/libs/cp3XY) next to the pure-Python
# server and dependencies (bundled/libs/common). Wheels come from PyPI at build time only.
#
# Needs only node (after `npm ci`) and a python3 of 3.9 or newer on PATH.
#
# Environment: VSIX_DIR (where the .vsix goes; default the repo root), PYTHON (runs pip; default
# .venv/bin/python when scripts/setup.sh made it, else a small build environment of its own in
# build/vsix-python), PY_VERSIONS (default 3.9,3.10,3.11,3.12,3.13), LIBCST_VERSION (default:
# the one installed beside PYTHON; 1.8.6 for darwin-x64, since libcst 1.9.0 has no macOS x86_64
# wheels).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TARGET=${1:-${TARGET:-linux-x64}}
VSCE=node_modules/.bin/vsce
if [[ ! -x $VSCE ]]; then
    echo "build-vsix: $VSCE is missing: run \`npm ci\` first" >&2
    exit 1
fi

# One build at a time per work tree: bundled/libs, dist/ and build/vsix-python are shared (an
# end-to-end test may start a build while a developer runs one).
LOCK="${TMPDIR:-/tmp}/ckpt-lsp-vsix-$(printf %s "$ROOT" | sha1sum | cut -c1-12).lock"
exec 9>"$LOCK"
if ! flock -n 9; then
    echo "build-vsix: another build of this work tree is running; waiting for it" >&2
    flock 9
fi

if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then
        PYTHON=.venv/bin/python
    else
        PYTHON=$(bash scripts/vsix-python.sh)
    fi
fi
if [[ ! -x $PYTHON ]] && ! command -v "$PYTHON" >/dev/null; then
    echo "build-vsix: no Python at $PYTHON" >&2
    exit 1
fi
VERSION=$(node -p "require('./package.json').version")
PY_VERSION=$("$PYTHON" -c "import tomllib,sys; print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])" 2>/dev/null || true)
if [[ -n $PY_VERSION && $PY_VERSION != "$VERSION" ]]; then
    echo "build-vsix: package.json has version $VERSION but pyproject.toml has $PY_VERSION" >&2
    exit 1
fi

"$PYTHON" scripts/build-vsix-libs.py --target "$TARGET" --out bundled/libs

OUT="ckpt-lsp-$TARGET-$VERSION.vsix"
# Packed elsewhere, then moved: a reader never sees a half-written .vsix at the root.
STAGE=$(mktemp -d "$ROOT/.vsix-stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
# vsce runs the vscode:prepublish script (esbuild, minified) before packing.
flags=(--target "$TARGET" --no-dependencies --out "$STAGE/$OUT")
[[ -f LICENSE || -f LICENSE.md || -f LICENSE.txt ]] || flags+=(--skip-license)
"$VSCE" package "${flags[@]}"

# The parts the extension cannot run without.
listing=$("$PYTHON" -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$STAGE/$OUT")
for need in extension/package.json extension/dist/extension.js extension/bundled/tool/server.py \
    extension/bundled/libs/common/ckpt_lsp/__init__.py extension/bundled/libs/common/pygls/__init__.py; do
    if ! grep -qx "$need" <<<"$listing"; then
        echo "build-vsix: $OUT lacks $need" >&2
        exit 1
    fi
done
IFS=, read -r -a versions <<<"${PY_VERSIONS:-3.9,3.10,3.11,3.12,3.13}"
for v in "${versions[@]}"; do
    tag=cp${v/./}
    if ! grep -q "^extension/bundled/libs/$tag/libcst/native\." <<<"$listing"; then
        echo "build-vsix: $OUT has no libcst build for Python $v ($tag)" >&2
        exit 1
    fi
done
if grep -E '(^|/)(node_modules|client/src|\.venv|tests?)/' <<<"$listing" | grep -v '^extension/bundled/libs/' >&2; then
    echo "build-vsix: $OUT carries files it should not (above)" >&2
    exit 1
fi
DEST=${VSIX_DIR:-$ROOT}
mkdir -p "$DEST"
mv -f "$STAGE/$OUT" "$DEST/$OUT"
size=$(stat -c %s "$DEST/$OUT")
echo "build-vsix: $DEST/$OUT: $((size / 1024)) KiB, $(wc -l <<<"$listing") files"
