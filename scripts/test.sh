#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs
# the Python tests (unit, corpus, language server, real editors) and the client's tests.
# Pass pytest arguments through, e.g. `scripts/test.sh -m "not e2e"` for the fast loop.
# The shared research folder (truth corpus, truth table) is the folder `shared` beside the
# checkout, or $CKPT_SHARED. Without it those tests skip, and pytest's last lines count the
# skips for each reason; under CI (CI=true) they fail instead, as a missing editor does.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
started=$(date +%s)
bash scripts/setup.sh
if [[ -f package.json ]]; then
    export npm_config_yes=true
    if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
        npm ci --no-audit --no-fund
    fi
fi
if [[ "${CKPT_SKIP_E2E_SETUP:-}" != 1 ]]; then
    bash scripts/setup-e2e.sh
fi
status=0
.venv/bin/python -m pytest -p no:cacheprovider "$@" || status=$?
if [[ -f package.json ]]; then
    npm test || status=$?
    npm run typecheck || status=$?
    npm run lint || status=$?
fi
echo "scripts/test.sh: finished in $(($(date +%s) - started)) s, exit $status"
exit $status
