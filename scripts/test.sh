#!/usr/bin/env bash
# Runs every test (unit, integration, e2e) from a fresh Debian machine as root: installs the
# Debian packages and npm packages it needs, builds, starts dockerd, runs vitest, and closes
# with one "N passed, N failed, N skipped" line.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-prereqs.sh
bash scripts/npm-install.sh
npm run --silent build
bash scripts/start-dockerd.sh

mkdir -p .tmp
set +e
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest-results.json "$@"
status=$?
set -e
node scripts/test-summary.mjs .tmp/vitest-results.json || status=1
exit $status
