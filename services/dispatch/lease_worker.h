/*
 * lease_worker.h: the lease store's statements (lease_pg.h) on a thread and a PostgreSQL
 * connection of their own, so that dispatch's loop never waits for PostgreSQL.
 *
 * A renew is one UPDATE a second. Run from the loop it sometimes took 12-22 ms on this
 * machine, and no command was consumed meanwhile (docs/capacity.md). Now the loop posts the
 * operation lease.h asks for, with the monotonic time of the post, and takes the answer on a
 * later turn; it reports the answer to the lease with the time of the post as the time sent.
 * The post is earlier than the statement, so the lease is never thought valid longer than
 * the store keeps it, however long the answer takes; while an answer is late the holder
 * keeps acting on the validity it has, and stops at its margin (lease.h), as before.
 *
 * One operation in flight at a time. The worker logs nothing: an answer carries the
 * store's error text, logged by the caller. Posting, taking and the state are guarded by
 * a mutex; the statements run outside it.
 */
#ifndef DSP_LEASE_WORKER_H
#define DSP_LEASE_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "lease.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsp_lease_worker dsp_lease_worker;

/* An operation's answer. */
typedef struct dsp_lease_result {
  dsp_lease_op op;         /* what was posted: ACQUIRE or RENEW */
  int64_t sent_ms;         /* the monotonic time given at the post */
  dsp_lease_answer answer; /* GRANTED, TAKEN or UNREACHABLE */
  uint64_t generation;     /* acquire GRANTED: the generation now held */
  double took_ms;          /* how long the statement took */
  char holder[200];        /* acquire TAKEN: the live holder, "<host> pid <pid> generation <g>" */
  char err[256];           /* UNREACHABLE: the store's error text */
} dsp_lease_result;

/* Connect to dsn (a server that is down is not an error: the statements reconnect) and
 * start the thread, for shard's leases of ttl_ms, asked as host / pid. Returns 0 and
 * *out, or a DSP_E* (DSP_EINVAL: bad argument, DSP_ENOMEM: out of memory or no thread). */
int dsp_lease_worker_start(const char *dsn, int shard, const char *host, int pid, int64_t ttl_ms,
                           dsp_lease_worker **out);

/* Post op (ACQUIRE, or RENEW of generation) with sent_ms, the caller's monotonic time.
 * Returns 0, DSP_ESTATE while another operation is in flight or its answer not taken,
 * DSP_EINVAL for another op. */
int dsp_lease_worker_post(dsp_lease_worker *w, dsp_lease_op op, uint64_t generation,
                          int64_t sent_ms);

/* True from a post until its answer is taken. */
bool dsp_lease_worker_busy(dsp_lease_worker *w);

/* The answer of the operation posted, if it has come: true and *out; false while it runs
 * or when nothing was posted. Never blocks. */
bool dsp_lease_worker_take(dsp_lease_worker *w, dsp_lease_result *out);

/* Wait up to timeout_ms for the answer of the operation in flight: true and *out when
 * it came (or had come), false when nothing is in flight or it did not come in time. */
bool dsp_lease_worker_wait(dsp_lease_worker *w, int timeout_ms, dsp_lease_result *out);

/* Give generation back (expires now), waiting up to timeout_ms: 0, DSP_ESTATE while an
 * operation is in flight or unanswered (wait for it first), or DSP_ENOTFOUND when the
 * store could not be told in time (the lease then lapses after its TTL). */
int dsp_lease_worker_release(dsp_lease_worker *w, uint64_t generation, int timeout_ms);

/* Stop the thread (after the statement it runs, if any), close the connection, free w.
 * NULL is a no-op. */
void dsp_lease_worker_stop(dsp_lease_worker *w);

#ifdef __cplusplus
}
#endif
#endif /* DSP_LEASE_WORKER_H */
