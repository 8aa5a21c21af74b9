/*
 * claims_mem.h: an in-memory claim store with the same rules as the Redis one (one owner
 * per driver, a TTL in ms, renew and release only by the owner), for tests and for the
 * service while Redis is unreachable.
 *
 * Time is the caller's now_ms, so expiry is exact and testable. In memory means per
 * process: it protects a driver only against this shard's own double offers, not against
 * other shards (which is why production prefers Redis).
 */
#ifndef DSP_CLAIMS_MEM_H
#define DSP_CLAIMS_MEM_H

#include "dispatch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsp_claims_mem dsp_claims_mem;

/* A new, empty store, or NULL when memory runs out. Free with dsp_claims_mem_free. */
dsp_claims_mem *dsp_claims_mem_new(void);
/* Free the store; NULL is a no-op. */
void dsp_claims_mem_free(dsp_claims_mem *m);
/* Test API (no service calls it): the unit tests (dsp_fixture.c) and bench/dispatch_bench.c; the
 * service uses claims_redis.h. */
/* The dsp_claims interface backed by m (m must outlive its use). */
dsp_claims dsp_claims_mem_iface(dsp_claims_mem *m);

/* Direct calls (what the interface does). try_claim returns DSP_CLAIM_ERROR when memory
 * runs out or an argument is NULL / longer than DSP_ID_MAX (owner: 2 * DSP_ID_MAX + 32). */
dsp_claim_result dsp_claims_mem_try(dsp_claims_mem *m, const char *driver_id, const char *owner,
                                    int64_t ttl_ms, int64_t now_ms);
dsp_claim_result dsp_claims_mem_refresh(dsp_claims_mem *m, const char *driver_id, const char *owner,
                                        int64_t ttl_ms, int64_t now_ms);
void dsp_claims_mem_release(dsp_claims_mem *m, const char *driver_id, const char *owner,
                            int64_t now_ms);
/* Test API (no service calls it): the unit tests. */
/* The owner holding driver_id at now_ms (borrowed, valid until the next call on m), or
 * NULL when nobody does. */
const char *dsp_claims_mem_owner(dsp_claims_mem *m, const char *driver_id, int64_t now_ms);
/* Test API (no service calls it): tests/dispatch/test_dispatch_claims.c. */
/* Drop every expired claim (done lazily anyway); returns how many were dropped. */
size_t dsp_claims_mem_sweep(dsp_claims_mem *m, int64_t now_ms);

#ifdef __cplusplus
}
#endif
#endif /* DSP_CLAIMS_MEM_H */
