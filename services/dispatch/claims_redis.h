/*
 * claims_redis.h: the dispatch core's claim store (dsp_claims) on Redis, shared by every
 * shard: one Lua script per operation takes a free driver (SET PX), renews (compare owner,
 * SET PX) or releases (compare owner, DEL) only the caller's own claim, and refuses a
 * fenced caller (a lease generation below the shard's fence). While Redis cannot be reached, claims
 * fall back to an in-memory store (claims_mem.h), which keeps this shard from offering one driver
 * twice but cannot see other shards; once Redis answers again, renewals move the claims back there.
 *
 * An I/O adapter: not part of dispatch_core. Uses the caller's mrd_redis handle
 * (services/common), which reconnects by itself. Not thread-safe.
 */
#ifndef DSP_CLAIMS_REDIS_H
#define DSP_CLAIMS_REDIS_H

#include "dispatch.h"
#include "mrd/redis.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsp_claims_redis dsp_claims_redis;

/* Counters of the store. */
typedef struct dsp_claims_redis_stats {
  uint64_t redis_ops;      /* commands that Redis answered */
  uint64_t redis_failures; /* commands that failed (connection, timeout, error reply) */
  uint64_t fallback_ops;   /* operations answered by the in-memory store instead */
  uint64_t fenced;         /* operations refused: a newer lease generation holds the shard */
} dsp_claims_redis_stats;

/* A store on handle r (borrowed: r must outlive the store) with keys key_prefix + driver
 * id (key_prefix NULL: "claim:"; at most 64 bytes). Errors: DSP_EINVAL, DSP_ENOMEM. Free
 * with dsp_claims_redis_free. */
int dsp_claims_redis_new(mrd_redis *r, const char *key_prefix, dsp_claims_redis **out);
/* Free the store (not the handle); NULL is a no-op. */
void dsp_claims_redis_free(dsp_claims_redis *c);
/* Fence every later operation with this process's lease generation (docs/shards.md):
 * Redis refuses it (try_claim and refresh answer LOST, release does nothing) when the
 * value of fence_key (the shard's highest lease generation, dispatch:fence:{shard}) is
 * above generation, and claims taken or renewed are stored as `<owner>@<generation>`.
 * generation 0 (or fence_key NULL) removes the fence. fence_key: at most 64 bytes. */
void dsp_claims_redis_fence(dsp_claims_redis *c, const char *fence_key, uint64_t generation);
/* The dsp_claims interface backed by c. */
dsp_claims dsp_claims_redis_iface(dsp_claims_redis *c);
void dsp_claims_redis_stats_get(const dsp_claims_redis *c, dsp_claims_redis_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* DSP_CLAIMS_REDIS_H */
