/*
 * lease_pg.c: shard leases in PostgreSQL and the Redis fence key (lease_pg.h).
 */
#include "lease_pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"

int dsp_lease_pg_init(dsp_lease_pg *l, mrd_pg *pg, int shard, const char *host, int pid,
                      int64_t ttl_ms) {
  if (!l || !pg || shard < 0 || shard >= 64 || !host || ttl_ms <= 0) return DSP_EINVAL;
  memset(l, 0, sizeof *l);
  l->pg = pg;
  l->shard = shard;
  snprintf(l->host, sizeof l->host, "%s", host);
  l->pid = pid;
  l->ttl_ms = ttl_ms;
  return DSP_OK;
}

static const char ACQUIRE_SQL[] =
    "INSERT INTO shard_leases AS l (shard, generation, holder_host, holder_pid, since, "
    "renewed_at, expires_at) "
    "VALUES ($1::integer, 1, $2, $3::integer, now(), now(), "
    "now() + $4::bigint * interval '1 millisecond') "
    "ON CONFLICT (shard) DO UPDATE SET generation = l.generation + 1, "
    "holder_host = EXCLUDED.holder_host, holder_pid = EXCLUDED.holder_pid, since = now(), "
    "renewed_at = now(), expires_at = EXCLUDED.expires_at "
    "WHERE l.expires_at <= now() "
    "RETURNING generation";

dsp_lease_answer dsp_lease_pg_acquire(dsp_lease_pg *l, uint64_t *generation) {
  char sh[12], pid[16], ttl[24];
  snprintf(sh, sizeof sh, "%d", l->shard);
  snprintf(pid, sizeof pid, "%d", l->pid);
  snprintf(ttl, sizeof ttl, "%" PRId64, l->ttl_ms);
  const char *p[] = {sh, l->host, pid, ttl};
  PGresult *res = NULL;
  if (mrd_pg_exec(l->pg, &res, ACQUIRE_SQL, 4, p) != 0) return DSP_LEASE_UNREACHABLE;
  if (PQntuples(res) == 1) {
    *generation = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return *generation > 0 ? DSP_LEASE_GRANTED : DSP_LEASE_UNREACHABLE;
  }
  PQclear(res);
  /* held by a live holder: who, for the log */
  l->holder[0] = '\0';
  if (mrd_pg_exec(l->pg, &res,
                  "SELECT holder_host, holder_pid, generation FROM shard_leases "
                  "WHERE shard = $1::integer",
                  1, p) == 0) {
    if (PQntuples(res) == 1)
      snprintf(l->holder, sizeof l->holder, "%s pid %s generation %s", PQgetvalue(res, 0, 0),
               PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
    PQclear(res);
  }
  return DSP_LEASE_TAKEN;
}

dsp_lease_answer dsp_lease_pg_renew(dsp_lease_pg *l, uint64_t generation) {
  char sh[12], gen[24], ttl[24];
  snprintf(sh, sizeof sh, "%d", l->shard);
  snprintf(gen, sizeof gen, "%" PRIu64, generation);
  snprintf(ttl, sizeof ttl, "%" PRId64, l->ttl_ms);
  const char *p[] = {sh, gen, ttl};
  PGresult *res = NULL;
  if (mrd_pg_exec(l->pg, &res,
                  "UPDATE shard_leases SET renewed_at = now(), "
                  "expires_at = now() + $3::bigint * interval '1 millisecond' "
                  "WHERE shard = $1::integer AND generation = $2::bigint RETURNING 1",
                  3, p) != 0)
    return DSP_LEASE_UNREACHABLE;
  int n = PQntuples(res);
  PQclear(res);
  return n == 1 ? DSP_LEASE_GRANTED : DSP_LEASE_TAKEN;
}

int dsp_lease_pg_release(dsp_lease_pg *l, uint64_t generation) {
  char sh[12], gen[24];
  snprintf(sh, sizeof sh, "%d", l->shard);
  snprintf(gen, sizeof gen, "%" PRIu64, generation);
  const char *p[] = {sh, gen};
  return mrd_pg_exec(l->pg, NULL,
                     "UPDATE shard_leases SET expires_at = now() "
                     "WHERE shard = $1::integer AND generation = $2::bigint",
                     2, p);
}

static const char RAISE_LUA[] =
    "local f = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if tonumber(ARGV[1]) > f then redis.call('SET', KEYS[1], ARGV[1]) return 1 end return 0";

int dsp_fence_raise(mrd_redis *r, const char *fence_key, uint64_t generation) {
  char gen[24];
  snprintf(gen, sizeof gen, "%" PRIu64, generation);
  const char *argv[] = {"EVAL", RAISE_LUA, "1", fence_key, gen};
  return mrd_redis_cmd(r, NULL, 5, argv, NULL);
}
