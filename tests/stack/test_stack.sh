#!/usr/bin/env bash
# test_stack.sh: scripts/stack on a port block (the stack's base + 2000) and run directory of its own: `up` twice is
# harmless, `status` sees every server, `down` leaves no process behind, and `down` also
# cleans up after a crash (servers killed with SIGKILL, stale pid files, zombies).
set -uo pipefail
root=${MERIDIAN_SOURCE_DIR:?}
run=$(mktemp -d /tmp/meridian-stack-test-XXXXXX)
export MERIDIAN_RUN_DIR="$run" MERIDIAN_STACK_PORT_BASE=$(( ${MERIDIAN_STACK_PORT_BASE:-15400} + 2000 )) MERIDIAN_STACK_FAST=1 MERIDIAN_STACK_SERVICES=0
pg_port=$((MERIDIAN_STACK_PORT_BASE + 32)) redis_port=$((MERIDIAN_STACK_PORT_BASE + 79))
export MERIDIAN_BUILD=${MERIDIAN_BUILD:-asan}
passed=0 failed=0
check() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $*" >&2; fi; }
alive() { [ -r "/proc/$1/stat" ] && ! sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" | grep -q '[ZX]'; }
pids() { cat "$run"/pid/* 2>/dev/null; }
none_alive() { local p; for p in "$@"; do alive "$p" && { echo "pid $p still alive" >&2; return 1; }; done; return 0; }
port_closed() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pg_home="/var/tmp/meridian-pg-$(printf '%s' "$run" | md5sum | cut -c1-12)"
cleanup() { "$root/scripts/stack" down >/dev/null 2>&1; rm -rf "$run" "$pg_home"; }
trap cleanup EXIT

# --shards: 1..8, anything else is bad usage (exit 2) before anything starts
for bad in 0 9 x; do
  "$root/scripts/stack" up --shards "$bad" >/dev/null 2>&1; check test $? -eq 2
done
check test ! -e "$run/env"
check "$root/scripts/stack" up
first_env=$(cat "$run/env")
check "$root/scripts/stack" up
check "$root/scripts/stack" status
check grep -q "MERIDIAN_PG_DSN='postgresql://postgres@127.0.0.1:$pg_port/meridian'" "$run/env"
check grep -q "MERIDIAN_REDIS_URL='redis://127.0.0.1:$redis_port'" "$run/env"
check test "$(grep JWT_SECRET "$run/env")" = "$(echo "$first_env" | grep JWT_SECRET)"
before=$(pids)
check test -n "$before"
check "$root/scripts/stack" down
check none_alive $before
check port_closed $pg_port
check port_closed $redis_port
check test "$(ls "$run/pid" | wc -l)" -eq 0

# A crash: every server killed with SIGKILL, pid files left behind.
check "$root/scripts/stack" up
crashed=$(pids)
for p in $crashed; do kill -KILL "$p" 2>/dev/null; done
sleep 0.5
check bash -c "! '$root/scripts/stack' status >/dev/null"
check "$root/scripts/stack" down
check none_alive $crashed
check port_closed $pg_port
check "$root/scripts/stack" up
check "$root/scripts/stack" status
after=$(pids)
check "$root/scripts/stack" down
check none_alive $after

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
