#!/usr/bin/env bash
# Installs the npm packages pinned in package-lock.json, skipped when node_modules already
# matches it (a stamp holds the hash). `npm install` rather than `npm ci`: npm 11.19 leaves
# other platforms' optional packages out of the lockfile and `npm ci` then refuses it; with an
# in-sync lockfile `npm install` installs exactly what it pins and leaves it unchanged.
# netlink's install script is approved in package.json (allowScripts).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.knode-lock-hash
want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
npm install --no-audit --no-fund --loglevel=error
now=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
[ "$now" = "$want" ] || echo "warning: npm install changed package-lock.json; commit it" >&2
echo "$now" > "$stamp"
