#!/usr/bin/env bash
# One command: install what is missing, build, and run Tidemark on embedded defaults
# (local NATS, local PostgreSQL 15, filesystem storage under ./.tidemark).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node scripts/up.mjs
