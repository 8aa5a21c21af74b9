/*
 * lease.h: a shard's lease as a pure state machine (docs/shards.md, "Ownership, fencing,
 * failover"): is this process its shard's holder or a standby, when must it ask the
 * lease store to acquire or renew, and may the holder act at a given moment.
 *
 * Like the rest of dispatch_core it does no I/O and reads no clock: the service asks
 * dsp_lease_due what to do, does it against the store (PostgreSQL `shard_leases`,
 * lease_pg.h), and reports the answer with the monotonic times the request was sent and
 * answered. The rules:
 *   - a standby asks to acquire every retry_ms; an acquisition makes it the holder with
 *     the store's new generation (the fencing token);
 *   - a holder renews every renew_ms (retry_ms after an unanswered renew). Its lease is
 *     valid until (send time of the last successful acquire or renew) + ttl_ms: the store
 *     set its expiry after that send, so the store cannot let the lease lapse earlier;
 *   - the holder may act only while now < valid_until - margin_ms: a holder that was
 *     paused (SIGSTOP, a long GC-like stall) or cut off from the store stops acting on its
 *     own before anyone else can acquire, and acts again only after a renew succeeds;
 *   - a renew answered "taken" (the store's generation is no longer ours: someone
 *     acquired after our lease lapsed) makes the holder a standby: LOST;
 *   - an unreachable store changes nothing but time: the holder keeps its role and
 *     generation (a later successful renew proves no one took over meanwhile) but may not
 *     act once its validity is past.
 * Not thread-safe; one per process.
 */
#ifndef DSP_LEASE_H
#define DSP_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dsp_lease_role {
  DSP_LEASE_STANDBY = 0, /* not the holder: may warm up, must not act */
  DSP_LEASE_HOLDER = 1,  /* acquired and not (known to be) lost */
} dsp_lease_role;

typedef struct dsp_lease_config {
  int64_t ttl_ms;    /* the store's expiry after an acquire or renew: 5000 */
  int64_t renew_ms;  /* a holder renews this often: 1000 */
  int64_t retry_ms;  /* a standby tries to acquire, a holder retries a failed renew: 500 */
  int64_t margin_ms; /* the holder stops acting this long before its lease may lapse: 1500 */
} dsp_lease_config;

/* What the service must do against the store now. */
typedef enum dsp_lease_op {
  DSP_LEASE_OP_NONE = 0,
  DSP_LEASE_OP_ACQUIRE,
  DSP_LEASE_OP_RENEW,
} dsp_lease_op;

/* The store's answer to an acquire or a renew. */
typedef enum dsp_lease_answer {
  DSP_LEASE_GRANTED = 0, /* acquired (with a generation) or renewed */
  DSP_LEASE_TAKEN,       /* acquire: another process holds a live lease; renew: the
                            store's generation is not ours any more */
  DSP_LEASE_UNREACHABLE, /* no answer (connection, timeout): nothing is known */
} dsp_lease_answer;

/* What an answer changed. */
typedef enum dsp_lease_change {
  DSP_LEASE_SAME = 0,
  DSP_LEASE_ACQUIRED, /* standby -> holder */
  DSP_LEASE_LOST,     /* holder -> standby */
} dsp_lease_change;

typedef struct dsp_lease {
  dsp_lease_config cfg;
  dsp_lease_role role;
  uint64_t generation;    /* held, or last held; 0 = never held */
  int64_t valid_until_ms; /* holder: the lease cannot lapse in the store before this */
  int64_t next_op_ms;     /* when dsp_lease_due next asks for an operation */
  uint64_t acquired;      /* acquisitions so far */
  uint64_t lost;          /* losses so far (not counting releases) */
} dsp_lease;

/* Test API (no service calls it): tests/dispatch/test_dispatch_lease.c. */
/* The defaults above. */
void dsp_lease_config_default(dsp_lease_config *c);

/* A standby lease with config c. Returns 0, or DSP_EINVAL when a value is not positive or
 * ttl_ms <= margin_ms + renew_ms (a holder must renew at least once before it stops
 * acting, or it would pause between renews). */
int dsp_lease_init(dsp_lease *l, const dsp_lease_config *c);

/* The operation due at now_ms (ACQUIRE for a standby, RENEW for a holder), or NONE. */
dsp_lease_op dsp_lease_due(const dsp_lease *l, int64_t now_ms);

/* Report the answer to op, sent at sent_ms and answered at now_ms (monotonic ms).
 * generation: the store's new generation when an ACQUIRE is GRANTED (> 0), else ignored.
 * An answer that does not fit the role (a RENEW answered for a standby, an ACQUIRE for a
 * holder, a grant with generation 0) changes nothing. Returns what changed. */
dsp_lease_change dsp_lease_answered(dsp_lease *l, dsp_lease_op op, int64_t sent_ms, int64_t now_ms,
                                    dsp_lease_answer a, uint64_t generation);

/* True when this process may act as its shard's holder at now_ms: holder, and now_ms <
 * valid_until_ms - margin_ms. */
bool dsp_lease_may_act(const dsp_lease *l, int64_t now_ms);

/* The holder gave the lease back (SIGTERM: the store was told): standby, not counted as
 * lost. A no-op for a standby. */
void dsp_lease_released(dsp_lease *l, int64_t now_ms);

/* Test API (no service calls it): tests/dispatch/test_dispatch_lease.c. */
/* The invariants: a holder has a generation and a validity; a standby's validity is 0;
 * counters are consistent (lost <= acquired). For tests and assertions. */
bool dsp_lease_check(const dsp_lease *l);

#ifdef __cplusplus
}
#endif
#endif /* DSP_LEASE_H */
