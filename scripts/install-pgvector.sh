#!/usr/bin/env bash
# Builds and installs pgvector for PostgreSQL 15 from Debian's own source package.
#
# Bookworm ships no pgvector recent enough (HNSW needs >= 0.5), so we take the source package
# from trixie and build it against postgresql-server-dev-15. apt runs under an isolated
# configuration (its own sources list, lists, cache and state under a temp dir) so the
# system's apt setup is never touched. Idempotent: does nothing when vector.control exists.
#
# Needs (as root): postgresql-server-dev-15, dpkg-dev (for `apt-get source`), make, gcc.
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
#              PGVECTOR_SUITE (default trixie), PGVECTOR_DEBIAN_MIRROR (default: the system's).
set -euo pipefail

PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
SUITE="${PGVECTOR_SUITE:-trixie}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { printf 'install-pgvector: %s\n' "$*"; }
fail() { printf 'install-pgvector: error: %s\n' "$*" >&2; exit 1; }

[ -x "$PG_CONFIG" ] || fail "pg_config not found at $PG_CONFIG: install postgresql-server-dev-15"
extension_dir="$("$PG_CONFIG" --sharedir)/extension"
if [ -f "$extension_dir/vector.control" ]; then
  log "already installed ($extension_dir/vector.control)"
  exit 0
fi

for tool in dpkg-source make gcc; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing: apt-get install -y dpkg-dev make gcc"
done
[ -f "$KEYRING" ] || fail "$KEYRING is missing: apt-get install -y debian-archive-keyring"
[ "$(id -u)" -eq 0 ] || fail "run as root: make install writes into the PostgreSQL directories"

# Use the Debian mirror the system already uses (deb822 .sources or one-line lists), so this
# works behind the same mirror or proxy as every other apt call on the machine.
system_debian_mirror() {
  local files=() uri
  shopt -s nullglob
  files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  shopt -u nullglob
  [ "${#files[@]}" -gt 0 ] || return 0
  uri="$(
    {
      grep -hE '^[[:space:]]*URIs:' "${files[@]}" 2>/dev/null | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
      grep -hE '^[[:space:]]*deb(-src)?[[:space:]]' "${files[@]}" 2>/dev/null \
        | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
    } | grep -E '^https?://[^ ]+/debian/?$' | head -n 1
  )" || true
  printf '%s' "${uri%/}"
}
MIRROR="${PGVECTOR_DEBIAN_MIRROR:-$(system_debian_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

work="$(mktemp -d "${TMPDIR:-/tmp}/install-pgvector.XXXXXX")"
trap 'rm -rf "$work"' EXIT

apt_root="$work/apt"
mkdir -p "$apt_root"/{sources.list.d,preferences.d,state/lists/partial,cache/archives/partial}
printf 'deb-src [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$SUITE" >"$apt_root/sources.list"
apt_isolated=(
  -o "Dir::Etc::SourceList=$apt_root/sources.list"
  -o "Dir::Etc::SourceParts=$apt_root/sources.list.d"
  -o "Dir::Etc::Preferences=$apt_root/preferences"
  -o "Dir::Etc::PreferencesParts=$apt_root/preferences.d"
  -o "Dir::State=$apt_root/state"
  -o "Dir::State::Lists=$apt_root/state/lists"
  -o "Dir::Cache=$apt_root/cache"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
  -o "APT::Sandbox::User=root"
  -qq
)

log "fetching the pgvector source package from $MIRROR ($SUITE)"
apt-get "${apt_isolated[@]}" update
(cd "$work" && apt-get "${apt_isolated[@]}" source pgvector >"$work/source.log" 2>&1) \
  || { cat "$work/source.log" >&2; fail "apt-get source pgvector failed"; }

src_dir="$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n 1)"
[ -n "$src_dir" ] || fail "the pgvector source package did not unpack"
log "building $(basename "$src_dir") against $("$PG_CONFIG" --version)"

# OPTFLAGS= drops -march=native (the build must run on any CPU of the kind), and with_llvm=no
# skips JIT bitcode, which would need clang for no benefit in a backup tool's tests.
make_args=(-C "$src_dir" "PG_CONFIG=$PG_CONFIG" OPTFLAGS= with_llvm=no)
make "${make_args[@]}" -j"$(nproc)" >"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log" >&2; fail "building pgvector failed"; }
make "${make_args[@]}" install >>"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log" >&2; fail "installing pgvector failed"; }

[ -f "$extension_dir/vector.control" ] || fail "make install did not produce $extension_dir/vector.control"
log "installed pgvector $(sed -nE "s/^default_version = '([^']+)'.*/\1/p" "$extension_dir/vector.control")"
