/*
 * dlq.h: what a Kafka consumer does with a message it cannot apply, so that one bad message
 * never stops a stream (the trips, dispatch and gateway consumers all use it).
 *
 * The pure core decides: a failure is classified (mrd_failure: decode, invalid,
 * constraint, data, transient, outage), and mrd_retry_decide says, for a failure and the
 * number of attempts so far, whether to retry after a wait or to park the message in the
 * dead-letter topic `dispatch-events-dlq`. Failures that belong to the message itself
 * (it does not decode; it lacks fields; SQLSTATE class 23 or 22) are parked at once;
 * failures that may pass (serialization, deadlock, lock time-out, an internal error) are
 * retried a bounded number of times and then parked; an outage (connection lost, the
 * server shutting down, out of resources, privileges or schema missing: anything that
 * would fail every message alike) is retried with backoff for as long as it lasts and is
 * never parked, since parking it would empty the stream into the dead-letter topic.
 *
 * The thin adapter (mrd_dlq_park) writes the message, unchanged (key and value), to the
 * dead-letter topic with Kafka headers saying who parked it, why and where it came from
 * (schemas/kafka/README.md "dispatch-events-dlq"). The caller waits for the delivery report
 * before it commits the offset past the message, so a parked message is never lost.
 * Not a replay tool: what is parked stays there for people to read and re-send.
 */
#ifndef MRD_DLQ_H
#define MRD_DLQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrd/err.h"
#include "mrd/kafka.h"
#include "mrd/metrics.h"
#include "mrd/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the header layout below (header dlq-version). */
#define MRD_DLQ_VERSION 1

/* Why a message could not be applied. The names (mrd_failure_name) are the `reason` label
 * of meridian_dlq_events_total and the dlq-reason header. */
typedef enum mrd_failure {
  MRD_FAIL_DECODE = 0, /* "decode": the payload is not a message of the topic */
  MRD_FAIL_INVALID,    /* "invalid": it decodes but lacks what the consumer needs */
  MRD_FAIL_CONSTRAINT, /* "constraint": SQLSTATE class 23 (unique, foreign key, check) */
  MRD_FAIL_DATA,       /* "data": SQLSTATE class 22 (a value the database refuses) */
  MRD_FAIL_TRANSIENT,  /* "retries_exhausted" once parked: may pass on a retry */
  MRD_FAIL_OUTAGE,     /* "outage": a dependency is down for everyone; never parked */
  MRD_FAIL_COUNT
} mrd_failure;

/* The label / header name of f ("decode", "invalid", "constraint", "data",
 * "retries_exhausted", "outage"); "unknown" out of range. Static storage. */
MRD_EXPORT const char *mrd_failure_name(mrd_failure f);

/* The failure a PostgreSQL error is: connection_lost (the adapter's MRD_ECONN, or a
 * connection that is down) or an empty sqlstate is an outage; otherwise by SQLSTATE:
 * 23 constraint; 22 data; 08 (connection), 28 (authorization), 3D (no database),
 * 42 (privileges, missing table or column, a statement the server refuses), 53 (out of
 * resources), 57P01-57P05 (shutdown, crash, cannot connect now), 58 (system), F0 (config)
 * outage; 40 (serialization, deadlock), 55 (lock not available, object in use), 57014
 * (statement time-out), 25, XX (internal) and every other class transient. */
MRD_EXPORT mrd_failure mrd_failure_of_sqlstate(const char *sqlstate, bool connection_lost);

/* How many times, and how long to wait between attempts. */
typedef struct mrd_retry_policy {
  int max_attempts;       /* attempts of a transient failure before parking: >= 1 */
  int64_t backoff_min_ms; /* the wait after the first failure: >= 1 */
  int64_t backoff_max_ms; /* the longest wait: >= backoff_min_ms */
} mrd_retry_policy;

#define MRD_RETRY_POLICY_DEFAULT                                                                   \
  { 5, 100, 5000 }

/* Test API (no service calls it): tests/common/test_dlq.c. */
/* True when p holds its invariants (the ranges above). */
MRD_EXPORT bool mrd_retry_policy_valid(const mrd_retry_policy *p);

typedef enum mrd_retry_action {
  MRD_RETRY = 0, /* wait wait_ms, then apply the message again (nothing committed) */
  MRD_PARK = 1   /* park the message in the dead-letter topic, then commit past it */
} mrd_retry_action;

typedef struct mrd_retry_verdict {
  mrd_retry_action action;
  int64_t wait_ms; /* for MRD_RETRY: backoff_min_ms * 2^(attempts-1), at most backoff_max_ms */
} mrd_retry_verdict;

/* What to do after the attempts-th failed attempt (attempts >= 1) of a message, whose
 * failure is f: decode, invalid, constraint and data park at once; transient retries
 * until attempts reaches max_attempts, then parks; outage always retries (with the
 * backoff, capped). An invalid policy or f is treated as the default policy / an outage.
 * Pure. */
MRD_EXPORT mrd_retry_verdict mrd_retry_decide(const mrd_retry_policy *p, mrd_failure f,
                                              int attempts);

/* A message to park, and why. Strings are borrowed for the call. */
typedef struct mrd_dlq_record {
  const char *consumer; /* "trips", "dispatch", "gateway" */
  mrd_failure reason;
  const char *error; /* the error's text (NULL: none); cut to 200 bytes */
  int attempts;      /* attempts made before parking (>= 1) */
  const char *topic; /* where the message came from */
  int32_t partition;
  int64_t offset;
  const void *key; /* the original key and value, written unchanged */
  size_t key_len;
  const void *value;
  size_t value_len;
} mrd_dlq_record;

/* The headers of r's dead-letter message, parked at now_ms (Unix ms): dlq-version,
 * dlq-consumer, dlq-reason, dlq-error, dlq-attempts, dlq-topic, dlq-partition,
 * dlq-offset, dlq-parked-at-ms, all as text. Fills out[0 .. MRD_DLQ_HEADERS) with values
 * pointing into buf (MRD_DLQ_HEADER_BUF bytes) and into r's strings. Returns the number
 * of headers (MRD_DLQ_HEADERS), or MRD_EINVAL (no consumer or topic). Pure. */
#define MRD_DLQ_HEADERS 9
#define MRD_DLQ_HEADER_BUF 512
/* Test API (no service calls it): tests/common/test_dlq.c (mrd_dlq_park writes them). */
MRD_EXPORT int mrd_dlq_headers(const mrd_dlq_record *r, int64_t now_ms, mrd_kafka_header *out,
                               char *buf);

/* Queues r's message on the dead-letter topic with p (partition by the original key's
 * hash; any partition for a message without key). msg_opaque comes back in p's delivery
 * report: the caller commits past the message only after that report says delivered.
 * Returns 0 or mrd_kafka_produce's errors (MRD_EFULL, MRD_EKAFKA, MRD_EINVAL). */
MRD_EXPORT int mrd_dlq_park(mrd_kafka_producer *p, const mrd_dlq_record *r, void *msg_opaque);

/* Registers meridian_dlq_events_total{consumer, reason} in reg for every reason a message
 * can be parked for (all but outage), so the series exist at 0 before anything is parked;
 * out[f] is the series of reason f (out[MRD_FAIL_OUTAGE] stays NULL). Returns 0 or the
 * registry's error. */
MRD_EXPORT int mrd_dlq_metrics(mrd_metrics *reg, const char *consumer,
                               mrd_counter *out[MRD_FAIL_COUNT]);

#ifdef __cplusplus
}
#endif
#endif /* MRD_DLQ_H */
