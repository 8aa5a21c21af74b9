/*
 * lease_pg.h: the store of shard leases, PostgreSQL table `shard_leases` (migration 0006,
 * docs/shards.md), and the Redis fence key that lets Redis refuse a fenced holder's claims.
 *
 * Every call is one statement with the database's clock (now()), so two processes never
 * compare their own clocks:
 *   acquire: insert the shard's row, or take it over when expires_at <= now(), with
 *            generation + 1, holder host and pid, since = renewed_at = now(),
 *            expires_at = now() + ttl;
 *   renew:   expires_at = now() + ttl WHERE generation is ours (compare-and-set);
 *   release: expires_at = now() WHERE generation is ours.
 * An I/O adapter (not part of dispatch_core): the decisions are lease.h's. Not thread-safe.
 */
#ifndef DSP_LEASE_PG_H
#define DSP_LEASE_PG_H

#include <stddef.h>
#include <stdint.h>

#include "lease.h"
#include "mrd/pg.h"
#include "mrd/redis.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsp_lease_pg {
  mrd_pg *pg; /* borrowed */
  int shard;
  char host[128]; /* who asks: shown by `meridianctl shards show` */
  int pid;
  int64_t ttl_ms;
  char holder[200]; /* after a TAKEN acquire: "<host> pid <pid> generation <g>" */
} dsp_lease_pg;

/* Fill l for shard (0..63) on handle pg (borrowed), as host / pid, with leases of
 * ttl_ms. Returns 0, or DSP_EINVAL. */
int dsp_lease_pg_init(dsp_lease_pg *l, mrd_pg *pg, int shard, const char *host, int pid,
                      int64_t ttl_ms);

/* Acquire: GRANTED with *generation, TAKEN (l->holder names the live holder), or
 * UNREACHABLE (any failure; logged by the caller with mrd_pg_errstr). */
dsp_lease_answer dsp_lease_pg_acquire(dsp_lease_pg *l, uint64_t *generation);
/* Renew generation: GRANTED, TAKEN (the row's generation is another one), UNREACHABLE. */
dsp_lease_answer dsp_lease_pg_renew(dsp_lease_pg *l, uint64_t generation);
/* Give generation back (expires now): 0, or an MRD_E*. */
int dsp_lease_pg_release(dsp_lease_pg *l, uint64_t generation);

/* Raise Redis key fence_key to generation unless it already holds a higher one (a Lua
 * max, atomic): from then on Redis refuses claims of lower generations
 * (dsp_claims_redis_fence). Returns 0, or an MRD_E* (Redis down: retried by the caller). */
int dsp_fence_raise(mrd_redis *r, const char *fence_key, uint64_t generation);

#ifdef __cplusplus
}
#endif
#endif /* DSP_LEASE_PG_H */
