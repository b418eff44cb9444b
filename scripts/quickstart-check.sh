#!/usr/bin/env bash
# Runs the README's quick start as written, as CI does (.ci/run): `bash scripts/up.sh` in the
# background until it says ready (it runs the set-up too), then the README's CLI examples, a plain
# NATS client that publishes a command as JSON and reads the alert, then Ctrl-C, and asserts that
# nothing it started is left running (the point-in-time restore's server included: it outlives
# the pg-agent on purpose, and up.mjs stops it on Ctrl-C).
#
# Own ports and its own TIDEMARK_HOME (under this checkout), so it collides neither with the test
# suites nor with a `scripts/up.sh` already running. Bounded in time: QUICKSTART_TIMEOUT (s, 600).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

export TIDEMARK_HOME="${QUICKSTART_HOME:-$repo/.tidemark/quickstart}" # ignored by git
export TIDEMARK_NATS_PORT="${QUICKSTART_NATS_PORT:-24222}"
export TIDEMARK_PG_PORT="${QUICKSTART_PG_PORT:-25433}"
export TIDEMARK_HEALTH_PORT_BASE="${QUICKSTART_HEALTH_PORT_BASE:-28081}"
# The CLI finds this NATS here (the README's examples assume the default port).
export TIDEMARK_NATS_URL="nats://127.0.0.1:$TIDEMARK_NATS_PORT"
budget="${QUICKSTART_TIMEOUT:-600}"
deadline=$((SECONDS + budget))
up_log="$(mktemp)"
up_pid=""

say() { printf 'quickstart: %s\n' "$*"; }
die() { printf 'quickstart: FAILED: %s\n' "$*" >&2; exit 1; }
remaining() { local left=$((deadline - SECONDS)); [ "$left" -gt 0 ] || die "over the ${budget} s budget"; echo "$left"; }

# The per-installation PostgreSQL state up.mjs keeps in /var/lib/tidemark/<hash> names its home in
# a TIDEMARK_HOME file: found that way, the check does not repeat up.mjs's naming rule.
state_dirs() {
  local marker
  for marker in /var/lib/tidemark/*/TIDEMARK_HOME; do
    [ -f "$marker" ] && [ "$(cat "$marker")" = "$TIDEMARK_HOME" ] && dirname "$marker"
  done
  return 0
}

# Processes that belong to this run: in up's session (what Ctrl-C reaches), or naming its home,
# its state directory or its ports on their command line (pg-agent's restored servers, pg_receivewal).
own_processes() {
  local patterns=("$TIDEMARK_HOME" ":$TIDEMARK_NATS_PORT" "-p $TIDEMARK_NATS_PORT" "-p $TIDEMARK_PG_PORT") dir
  while read -r dir; do patterns+=("$dir"); done < <(state_dirs)
  ps -eo pid=,sid=,args= | while read -r pid sid args; do
    [ "$pid" = "$$" ] && continue
    if [ -n "$up_pid" ] && [ "$sid" = "$up_pid" ]; then echo "$pid $args"; continue; fi
    for pattern in "${patterns[@]}"; do
      case "$args" in *"$pattern"*) echo "$pid $args"; break ;; esac
    done
  done
}

cleanup() {
  local status=$?
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then kill -INT -- "-$up_pid" 2>/dev/null || true; sleep 5; fi
  local leftover
  leftover="$(own_processes || true)"
  if [ -n "$leftover" ]; then
    say "killing what is left:"; echo "$leftover" >&2
    echo "$leftover" | while read -r pid _; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  if [ "$status" -ne 0 ]; then
    say "up.sh's output:"; sed 's/^/  | /' "$up_log" >&2
    say "state kept for a look: $TIDEMARK_HOME $(state_dirs | tr '\n' ' ')"
  else
    while read -r dir; do rm -rf "$dir"; done < <(state_dirs)
    rm -rf "$TIDEMARK_HOME"
  fi
  rm -f "$up_log"
  return "$status"
}
trap cleanup EXIT

# A fresh installation each time: the first hour, not the hundredth.
while read -r dir; do rm -rf "$dir"; done < <(state_dirs)
rm -rf "$TIDEMARK_HOME"

# ---- the first command, as written. setsid: its own session and process group, like a terminal's
# foreground job, so that Ctrl-C below reaches exactly what it started.
say "bash scripts/up.sh (home $TIDEMARK_HOME, NATS $TIDEMARK_NATS_PORT, PostgreSQL $TIDEMARK_PG_PORT)"
setsid bash scripts/up.sh >"$up_log" 2>&1 </dev/null &
up_pid=$!
until grep -q '\[tidemark up\] ready' "$up_log"; do
  kill -0 "$up_pid" 2>/dev/null || die "scripts/up.sh exited before it was ready"
  [ "$((deadline - SECONDS))" -gt 0 ] || die "scripts/up.sh was not ready within ${budget} s"
  sleep 1
done
say "ready after ${SECONDS} s"
grep -q "\.tidemark/logs" "$up_log" && [ "$TIDEMARK_HOME" != "$repo/.tidemark" ] && die "up.sh printed a .tidemark/logs path although TIDEMARK_HOME is $TIDEMARK_HOME"

# ---- the README's examples, as written
run() {
  say "\$ $*"
  timeout "$(remaining)" "$@" 2>&1 | sed 's/^/  /'
  local status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || die "$* exited $status"
}
run npx tidemark backup pg demo --wait
run npx tidemark restore pg demo --wait
run npx tidemark backup pg demo --kind base --wait
run npx tidemark restore pg demo --to latest --wait
run npx tidemark status
# The README's files examples; its restore asks for a new directory, so an earlier run's goes first.
rm -rf "$repo/.tidemark/restored-docs"
run npx tidemark backup files docs --wait
run npx tidemark ls files docs cases --recursive
run npx tidemark restore files docs --path cases/2024 --into "$PWD/.tidemark/restored-docs" --wait
[ -f "$repo/.tidemark/restored-docs/cases/2024/0042-contract-review.md" ] || die "the files restore did not write cases/2024 into .tidemark/restored-docs"
say "\$ npx tidemark list pg demo --json"
list_json="$(timeout "$(remaining)" npx tidemark list pg demo --json)" || die "tidemark list exited $?"
node -e 'const a = JSON.parse(process.argv[1]); const n = (Array.isArray(a) ? a : a.artifacts ?? []).length; if (n < 2) { console.error(`expected 2 artifacts, got ${n}`); process.exit(1); } console.log(`  ${n} artifacts`)' "$list_json" \
  || die "tidemark list pg demo --json did not print the two artifacts as JSON: $list_json"

# ---- a plain NATS client: a JSON command in, a JSON alert out
say "\$ node scripts/quickstart-nats-client.mjs"
timeout "$(remaining)" node scripts/quickstart-nats-client.mjs | sed 's/^/  /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "a plain NATS client could not publish a JSON command and read the alert as JSON"

# ---- Ctrl-C: SIGINT to up's whole process group, as a terminal sends it
say "Ctrl-C"
kill -INT -- "-$up_pid"
for _ in $(seq 1 60); do kill -0 "$up_pid" 2>/dev/null || break; sleep 1; done
kill -0 "$up_pid" 2>/dev/null && die "scripts/up.sh did not stop within 60 s of Ctrl-C"
wait "$up_pid" || die "scripts/up.sh exited $? on Ctrl-C (expected 0)"
grep -q '\[tidemark up\] stopping' "$up_log" || die "scripts/up.sh did not say it was stopping"

grep -q '\[tidemark up\] stopped the restored server' "$up_log" || die "scripts/up.sh did not stop the point-in-time restore's server on Ctrl-C"
sleep 2
leftover="$(own_processes || true)"
[ -z "$leftover" ] || die "processes left after Ctrl-C:
$leftover"
up_pid=""
say "passed in ${SECONDS} s: nothing left running"
