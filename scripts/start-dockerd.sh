#!/usr/bin/env bash
# Starts a Docker Engine for knode when none answers on the socket. Pods are wired by CNI, so
# Docker's own bridge, iptables rules and masquerading stay off (docs/architecture.md, "Testing"): the
# engine must not change the root network namespace.
set -euo pipefail
sock=${DOCKER_SOCK:-/var/run/docker.sock}
log=${DOCKERD_LOG:-/var/log/knode-dockerd.log}

answers() { curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; }

if answers; then exit 0; fi
command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
echo "starting dockerd (log: $log)"
# In its own session: a signal to the caller's process group (a test runner or a shell job
# being stopped) must not take the engine down with it.
setsid nohup dockerd -H "unix://$sock" --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
  >>"$log" 2>&1 </dev/null &
for _ in $(seq 1 150); do
  answers && exit 0
  sleep 0.2
done
echo "dockerd did not answer on $sock within 30 s; last log lines:" >&2
tail -n 20 "$log" >&2
exit 1
