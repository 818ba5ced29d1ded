#!/usr/bin/env bash
# `knode up` from a fresh Debian machine as root: installs what knode needs, builds it,
# starts the Docker Engine when none runs, then runs a single-node cluster in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-prereqs.sh
bash scripts/npm-install.sh
npm run --silent build
bash scripts/start-dockerd.sh
exec ./bin/knode up "$@"
