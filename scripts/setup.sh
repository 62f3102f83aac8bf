#!/usr/bin/env bash
# Python set-up: a venv in .venv with ckpt-lsp (editable), the test tools, and the
# libraries the truth-corpus oracle builds real objects with. Idempotent.
#
# torch is pinned to 2.13.0: that CPU wheel lies on this machine kind's disk; any other
# version (or an unpinned `torch` pulled in by lightning) downloads gigabytes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.ckpt-setup
want=$(cat pyproject.toml requirements-oracle.txt | sha256sum | cut -c1-16)
if [[ -f $stamp && "$(cat $stamp)" == "$want" ]]; then
    exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]" -r requirements-oracle.txt
echo "$want" >"$stamp"
