#!/usr/bin/env bash
# test_stack.sh: scripts/stack on a port block (the stack's base + 2000) and run directory of its own: `up` twice is
# harmless, a binary not built stops `up` with an error naming it, `status` sees every server,
# `down` leaves no process behind, and `down` also
# cleans up after a crash (servers killed with SIGKILL, stale pid files, zombies). Local
# secrets (issue 13): .run/env 0600, PostgreSQL by password only (the services' role not a
# superuser, no DDL, no DELETE), Redis with ACL users and no anonymous access.
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
# A binary that is not built stops `up` with an error naming it (never a part skipped)
out=$(MERIDIAN_BUILD=not-built MERIDIAN_STACK_SERVICES=1 "$root/scripts/stack" up 2>&1); rc=$?
check test "$rc" -ne 0
check grep -q "build/not-built/bin/meridianctl is not built" <<<"$out"
check grep -qE "MERIDIAN_PG_DSN='postgresql://meridian_app:[0-9a-f]{64}@127.0.0.1:$pg_port/meridian'" "$run/env"
check grep -qE "MERIDIAN_PG_ADMIN_DSN='postgresql://postgres:[0-9a-f]{64}@127.0.0.1:$pg_port/meridian'" "$run/env"
check grep -qE "MERIDIAN_REDIS_URL='redis://meridian-app:[0-9a-f]{64}@127.0.0.1:$redis_port'" "$run/env"
check grep -qE "MERIDIAN_REDIS_ADMIN_URL='redis://meridian-admin:[0-9a-f]{64}@127.0.0.1:$redis_port'" "$run/env"
# Local secrets (issue 13): .run/env and the secrets are the owner's alone
check test "$(stat -c %a "$run/env")" = 600
check test "$(stat -c %a "$run/secrets")" = 700
check test "$(stat -c %a "$run/redis.conf")" = 600
check test -z "$(find "$run/secrets" -type f ! -perm 600)"
app_dsn=$(sed -n "s/^export MERIDIAN_PG_DSN='\(.*\)'$/\1/p" "$run/env")
admin_dsn=$(sed -n "s/^export MERIDIAN_PG_ADMIN_DSN='\(.*\)'$/\1/p" "$run/env")
app_url=$(sed -n "s/^export MERIDIAN_REDIS_URL='\(.*\)'$/\1/p" "$run/env")
# PostgreSQL trusts nobody over TCP: no password, or a wrong one, is refused
check bash -c "! PGCONNECT_TIMEOUT=5 psql -X -w -At -h 127.0.0.1 -p $pg_port -U postgres -d meridian -c 'SELECT 1' 2>/dev/null"
check bash -c "! psql -X -w -At 'postgresql://meridian_app:wrong@127.0.0.1:$pg_port/meridian' -c 'SELECT 1' 2>/dev/null"
# the services' role: logs in with its password, not a superuser, reads the shard map,
# cannot create or delete
check test "$(psql -X -At "$app_dsn" -c 'SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user')" = false
check test "$(psql -X -At "$app_dsn" -c 'SELECT count(*) > 0 FROM shard_map')" = t
check bash -c "! psql -X -At '$app_dsn' -c 'CREATE TABLE nope (x int)' 2>/dev/null"
check bash -c "! psql -X -At '$app_dsn' -c 'DELETE FROM trips' 2>/dev/null"
check test "$(psql -X -At "$admin_dsn" -c 'SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user')" = true
# Redis: no anonymous access; the services' user works but may not administer
check bash -c "redis-cli -h 127.0.0.1 -p $redis_port ping 2>&1 | grep -q NOAUTH"
check test "$(redis-cli --no-auth-warning -u "$app_url" ping)" = PONG
check bash -c "redis-cli --no-auth-warning -u '$app_url' config get requirepass 2>&1 | grep -q NOPERM"
check bash -c "redis-cli --no-auth-warning -u '$app_url' flushall 2>&1 | grep -q NOPERM"
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
