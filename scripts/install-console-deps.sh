#!/usr/bin/env bash
# Installs the third-party files the web console embeds at build time (uPlot, MIT, from npm,
# pinned by src/serve/console/package-lock.json) into a project-local prefix:
#
#   scripts/install-console-deps.sh [PREFIX]     (default: <repo>/out/tools/console-npm)
#
# Afterwards PREFIX/node_modules/uplot/dist/ holds uPlot.iife.min.js and uPlot.min.css, which
# src/serve/CMakeLists.txt compiles into `tessera`. Idempotent: a prefix whose stamp matches the
# lock file is left alone. Uses only npm and its registry (npm comes with scripts/install-deps.sh).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-$repo/out/tools/console-npm}"
lock="$repo/src/serve/console/package-lock.json"
stamp="$prefix/.tessera-installed"
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
  [ -f "$prefix/node_modules/uplot/dist/uPlot.iife.min.js" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "install-console-deps: npm is missing (scripts/install-deps.sh installs nodejs and npm)" >&2
  exit 1
fi
mkdir -p "$prefix"
rm -f "$stamp"
cp "$repo/src/serve/console/package.json" "$lock" "$prefix/"
echo "install-console-deps: npm ci in $prefix" >&2
npm ci --prefix "$prefix" --no-audit --no-fund --loglevel=error >&2
echo "$want" > "$stamp"
