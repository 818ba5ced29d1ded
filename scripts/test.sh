#!/usr/bin/env bash
# Runs every test (unit, integration, e2e) from a fresh Debian machine as root: installs the
# Debian packages and npm packages it needs, builds, starts dockerd, runs vitest, and closes
# with one "N passed, N failed, N skipped" line.
set -euo pipefail
cd "$(dirname "$0")/.."

# The root network namespace must come out of the run as it went in (docs/architecture.md, "Testing"):
# its forwarding sysctls, routes and links are recorded before and compared after.
root_netns_state() {
  { cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/forwarding
    ip -o route show table all 2>/dev/null | grep -v ' linkdown' | sort
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | sort; } 2>/dev/null
}
root_before=$(root_netns_state)

bash scripts/install-prereqs.sh
bash scripts/npm-install.sh
npm run --silent build
bash scripts/start-dockerd.sh

mkdir -p .tmp
set +e
# Lint first (eslint.config.js): a finding fails the run, the tests still run.
npx --no-install eslint .
lint=$?
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest-results.json "$@"
status=$?
set -e
node scripts/test-summary.mjs .tmp/vitest-results.json || status=1
[ "$lint" -eq 0 ] || { echo "FAIL: lint (npx eslint .) reported problems" >&2; status=1; }
root_after=$(root_netns_state)
if [ "$root_before" != "$root_after" ]; then
  echo "FAIL: the test run changed the root network namespace (forwarding sysctls, routes or links):" >&2
  diff <(echo "$root_before") <(echo "$root_after") >&2 || true
  status=1
fi
exit $status
