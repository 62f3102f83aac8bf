#!/usr/bin/env bash
# Install the real editors that tests/e2e drives: Debian's neovim and chromium, and
# code-server (a real VS Code extension host) into .e2e/code-server/; then build the
# extension's .vsix (`npm run package`, needs `npm ci` done) unless a fresh one exists.
#
# Why so many steps: plain `npm install code-server` downloads prebuilt binaries from
# hosts this machine cannot reach, so we install without scripts and rebuild the native
# modules from source (CONTRIBUTING.md says which clients and why). Idempotent: each finished
# step leaves a marker file and is skipped next time. Non-interactive; run as root.
set -euo pipefail

started=$(date +%s)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CODE_SERVER_VERSION=4.100.3
PREFIX="$ROOT/.e2e/code-server"
MARKS="$PREFIX/.steps"
APT_PACKAGES=(neovim chromium libkrb5-dev pkg-config ripgrep python3 make g++ git ca-certificates unzip)

log() { printf '[setup-e2e %3ds] %s\n' "$(($(date +%s) - started))" "$*"; }
done_step() { [[ -f "$MARKS/$1" ]]; }
mark_step() { mkdir -p "$MARKS" && date -u +%FT%TZ >"$MARKS/$1"; }

trap 'log "FAILED (line $LINENO); rerun to resume from the last finished step"' ERR

# --- 1. Debian packages ------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "apt: all packages present"
fi

# --- 2. code-server ----------------------------------------------------------------
# code-server 4.100 runs on the machine's Node 20 (Debian's own nodejs is 18: too old), and
# its native modules build against the Node headers in /usr/include/node.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
    log "code-server needs Node >= 20 on PATH (found: $(node --version 2>/dev/null || echo none))"
    exit 1
fi
if [[ ! -f /usr/include/node/node_version.h ]]; then
    log "no Node headers in /usr/include/node: node-gyp would try to download them"
    exit 1
fi
# A different version requested than the one installed: start over.
if [[ -f "$PREFIX/.version" && "$(cat "$PREFIX/.version")" != "$CODE_SERVER_VERSION" ]]; then
    log "code-server: version changed, removing $PREFIX"
    rm -rf "$PREFIX"
fi
mkdir -p "$PREFIX"
echo "$CODE_SERVER_VERSION" >"$PREFIX/.version"

# The machine's npm config says yes=false (npx would stop and ask), and node-gyp must use
# the local Node headers instead of downloading them.
export npm_config_yes=true npm_config_nodedir=/usr npm_config_audit=false npm_config_fund=false
export npm_config_update_notifier=false npm_config_loglevel=error

CS="$PREFIX/node_modules/code-server"
VS="$CS/lib/vscode"

if ! done_step npm-install; then
    log "code-server: npm install code-server@$CODE_SERVER_VERSION (no scripts)"
    [[ -f "$PREFIX/package.json" ]] || echo '{"name": "ckpt-lsp-e2e-code-server", "private": true}' >"$PREFIX/package.json"
    (cd "$PREFIX" && npm install --ignore-scripts --no-audit --no-fund "code-server@$CODE_SERVER_VERSION")
    mark_step npm-install
fi

if ! done_step argon2; then
    log "code-server: rebuild argon2 from source (its prebuilt binary is not reachable)"
    (cd "$PREFIX" && npm_config_build_from_source=true npm rebuild argon2)
    mark_step argon2
fi

if ! done_step vscode-install; then
    log "code-server: npm install in lib/vscode (no scripts)"
    (cd "$VS" && npm install --omit=dev --ignore-scripts --no-audit --no-fund)
    mark_step vscode-install
fi

if ! done_step vscode-rebuild; then
    log "code-server: rebuild native modules of lib/vscode"
    (cd "$VS" && npm rebuild @parcel/watcher @vscode/spdlog kerberos native-watchdog node-pty @vscode/deviceid)
    mark_step vscode-rebuild
fi

if ! done_step ripgrep; then
    log "code-server: use Debian's ripgrep (its postinstall downloads from GitHub)"
    mkdir -p "$VS/node_modules/@vscode/ripgrep/bin"
    cp -f /usr/bin/rg "$VS/node_modules/@vscode/ripgrep/bin/rg"
    mark_step ripgrep
fi

if ! done_step links; then
    log "code-server: make the links its install script would make; built-in extensions"
    (cd "$VS" && ln -sfn node_modules node_modules.asar)
    (cd "$VS/bin/remote-cli" && ln -sfn code-linux.sh code-server)
    (cd "$VS/bin/helpers" && ln -sfn browser-linux.sh browser.sh)
    (cd "$VS/extensions" && npm install --omit=dev --ignore-scripts --no-audit --no-fund && node ./postinstall.mjs)
    mark_step links
fi

# A stable entry point for the tests.
mkdir -p "$PREFIX/bin"
ln -sfn ../node_modules/code-server/out/node/entry.js "$PREFIX/bin/code-server.js"
cat >"$PREFIX/bin/code-server" <<'WRAP'
#!/bin/sh
exec node "$(dirname "$0")/../node_modules/code-server/out/node/entry.js" "$@"
WRAP
chmod +x "$PREFIX/bin/code-server"

# --- 3. the extension under test ----------------------------------------------------
# Built here rather than in the test, so the download of its bundled wheels happens at
# set-up time. The test rebuilds it only when sources changed after this (same list).
EXTENSION_SOURCES=(client/src server/ckpt_lsp bundled/tool package.json scripts/build-vsix.sh scripts/build-vsix-libs.py)
vsix=$(cd "$ROOT" && ls -t ckpt-lsp*.vsix 2>/dev/null | head -1 || true)
if [[ ! -x "$ROOT/node_modules/.bin/vsce" ]]; then
    log "extension: node_modules is missing (run \`npm ci\`); the code-server test will say so"
elif [[ -s "$vsix" ]] && unzip -tq "$vsix" >/dev/null 2>&1 && [[ -z "$(cd "$ROOT" && find "${EXTENSION_SOURCES[@]}" -newer "$vsix" -type f \
    -not -path '*/__pycache__/*' 2>/dev/null | head -1)" ]]; then
    log "extension: $vsix is up to date"
else
    log "extension: npm run package"
    (cd "$ROOT" && npm run --silent package)
fi

# Fails the script (set -e) when any of the three cannot start.
cs_version=$("$PREFIX/bin/code-server" --config "$PREFIX/config.yaml" --version 2>/dev/null | tail -1)
nvim_version=$(nvim --version | head -1)
chromium_version=$(chromium --version 2>/dev/null)
log "check: code-server $cs_version; $nvim_version; $chromium_version"
log "done in $(($(date +%s) - started)) s"
