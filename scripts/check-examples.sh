#!/usr/bin/env bash
# The main job on the bundled examples: set up .venv if needed, then check examples/.
# Exits 1 because the examples hold hazards on purpose (that is what they show).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/ckpt-lsp --check examples/ "$@"
