#!/usr/bin/env bash
# Installs what Tidemark needs on Debian bookworm (run as root or with sudo) and builds it.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v nats-server >/dev/null || [ ! -x /usr/lib/postgresql/15/bin/postgres ] || [ ! -x /usr/lib/postgresql/15/bin/pg_config ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq nats-server postgresql-15 postgresql-client-15 postgresql-server-dev-15 dpkg-dev >/dev/null
fi
$SUDO bash scripts/install-pgvector.sh
# See .ci/run: npm ci can refuse a lock file without every platform's optional packages.
npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error
npm run build
# npm links a workspace's bin only when its target exists, and cli/dist/main.js is built after the
# install: link `tidemark` now so that `npx tidemark` works on a fresh clone.
npm rebuild @tidemark/cli --ignore-scripts --loglevel=error
