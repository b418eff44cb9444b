#!/usr/bin/env bash
# Installs what Tidemark needs on Debian bookworm (run as root or with sudo) and builds it.
#
#   bash scripts/setup.sh          # what `scripts/up.sh` and `npm test` need
#   bash scripts/setup.sh --ci     # also docker-compose, which CI validates the compose file with
#
# Idempotent, and a second run is quick: apt runs only when a package is missing, `npm ci` only
# when node_modules was not installed from this package-lock.json (a stamp in node_modules records
# the lock's sha256 and the Node ABI), pgvector is built once, and the build is incremental. No run
# changes a tracked file (npm ci never rewrites the lock file).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

with_ci_packages=false
for arg in "$@"; do
  case "$arg" in
    --ci) with_ci_packages=true ;;
    *) echo "setup: unknown option $arg (known: --ci)" >&2; exit 2 ;;
  esac
done

export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

step() { printf 'setup: %s\n' "$*"; }

# Runs a noisy command with its output in a log, shown only when it fails.
quietly() {
  local log status
  log="$(mktemp)"
  if "$@" >"$log" 2>&1; then
    rm -f "$log"
  else
    status=$?
    echo "setup: command failed ($status): $*" >&2
    tail -n 60 "$log" >&2
    rm -f "$log"
    return "$status"
  fi
}

missing_packages() {
  local package
  for package in "$@"; do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' || printf '%s\n' "$package"
  done
}

# postgresql-15: the server up.sh and the pg suites start (as the postgres user).
# postgresql-server-dev-15, dpkg-dev, make, gcc, debian-archive-keyring: build pgvector from Debian's source package.
# nats-server: the JetStream server. g++, python3: zstd-napi compiles its binding when no prebuilt matches.
SYSTEM_PACKAGES=(postgresql-15 postgresql-client-15 postgresql-server-dev-15 nats-server dpkg-dev make gcc g++ python3 debian-archive-keyring ca-certificates)
# ceph-mon, ceph-osd, radosgw (with ceph-common: radosgw-admin, monmaptool, ceph): the testkit's
# Ceph RGW, an S3 server with versioning and object lock (libs/testkit/src/rgw.ts), which `npm test`
# starts. About 20 s. Installed without recommends, like docker-compose (CI's only).
# restic: the peer bench/files-restic.mjs measures the files agent against (one static binary).
LEAN_PACKAGES=(ceph-mon ceph-osd radosgw restic)
$with_ci_packages && LEAN_PACKAGES+=(docker-compose)

mapfile -t missing < <(missing_packages "${SYSTEM_PACKAGES[@]}")
mapfile -t missing_ci < <(missing_packages "${LEAN_PACKAGES[@]}")
if [ "${#missing[@]}" -gt 0 ] || [ "${#missing_ci[@]}" -gt 0 ]; then
  step "installing ${missing[*]} ${missing_ci[*]}"
  quietly $SUDO apt-get update -qq
  [ "${#missing[@]}" -eq 0 ] || quietly $SUDO apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}"
  # --no-install-recommends: docker-compose recommends the docker daemon, which CI cannot run, and
  # Ceph recommends its whole toolset (ceph-mgr, ceph-mds, dashboards) the tests never start;
  # restic recommends a FUSE stack for `restic mount`, which the benchmark never uses.
  [ "${#missing_ci[@]}" -eq 0 ] || quietly $SUDO apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing_ci[@]}"
else
  step "system packages: all present"
fi

$SUDO bash scripts/install-pgvector.sh

# The Node ABI is part of the stamp: zstd-napi's compiled binding only loads into the Node it was built for.
stamp_file=node_modules/.tidemark-install-stamp
wanted_stamp="$(sha256sum package-lock.json | cut -d' ' -f1) node-abi-$(node -p process.versions.modules) $(node -p 'process.platform + "-" + process.arch')"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$wanted_stamp" ]; then
  step "node_modules: installed from this package-lock.json; npm ci skipped"
else
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  printf '%s\n' "$wanted_stamp" >"$stamp_file"
fi

step "build (incremental)"
npm run build --silent
# npm links a workspace's bin only when its target exists, and cli/dist/main.js is built after the
# install: link `tidemark` now so that `npx tidemark` works on a fresh clone.
if [ ! -x node_modules/.bin/tidemark ]; then
  npm rebuild @tidemark/cli --ignore-scripts --loglevel=error
fi
step "done"
