/*
 * dlq.c: the retry-or-park decision of dlq.h (pure: classification, backoff, headers) and
 * its one adapter, mrd_dlq_park, which writes a message to the dead-letter topic. No state.
 */
#include "mrd/dlq.h"
#include "mrd/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const failure_names[MRD_FAIL_COUNT] = {
    [MRD_FAIL_DECODE] = "decode",
    [MRD_FAIL_INVALID] = "invalid",
    [MRD_FAIL_CONSTRAINT] = "constraint",
    [MRD_FAIL_DATA] = "data",
    [MRD_FAIL_TRANSIENT] = "retries_exhausted",
    [MRD_FAIL_OUTAGE] = "outage",
};

const char *mrd_failure_name(mrd_failure f) {
  return (f >= 0 && f < MRD_FAIL_COUNT) ? failure_names[f] : "unknown";
}

static bool class_is(const char *s, const char *cls) { return s[0] == cls[0] && s[1] == cls[1]; }

mrd_failure mrd_failure_of_sqlstate(const char *sqlstate, bool connection_lost) {
  if (connection_lost || sqlstate == NULL || strlen(sqlstate) != 5) return MRD_FAIL_OUTAGE;
  const char *s = sqlstate;
  if (class_is(s, "23")) return MRD_FAIL_CONSTRAINT;
  if (class_is(s, "22")) return MRD_FAIL_DATA;
  if (strcmp(s, "57014") == 0) return MRD_FAIL_TRANSIENT; /* statement time-out, cancel */
  static const char *const outage[] = {"08", "28", "3D", "42", "53", "57", "58", "F0"};
  for (size_t i = 0; i < sizeof outage / sizeof outage[0]; i++)
    if (class_is(s, outage[i])) return MRD_FAIL_OUTAGE;
  return MRD_FAIL_TRANSIENT; /* 40, 55, 25, XX and whatever else: may pass, bounded */
}

bool mrd_retry_policy_valid(const mrd_retry_policy *p) {
  return p && p->max_attempts >= 1 && p->backoff_min_ms >= 1 &&
         p->backoff_max_ms >= p->backoff_min_ms;
}

mrd_retry_verdict mrd_retry_decide(const mrd_retry_policy *p, mrd_failure f, int attempts) {
  static const mrd_retry_policy def = MRD_RETRY_POLICY_DEFAULT;
  if (!mrd_retry_policy_valid(p)) p = &def;
  if (attempts < 1) attempts = 1;
  mrd_retry_verdict v = {MRD_RETRY, 0};
  switch (f) {
  case MRD_FAIL_DECODE:
  case MRD_FAIL_INVALID:
  case MRD_FAIL_CONSTRAINT:
  case MRD_FAIL_DATA:
    v.action = MRD_PARK; /* the message itself: the same every time */
    return v;
  case MRD_FAIL_TRANSIENT:
    if (attempts >= p->max_attempts) {
      v.action = MRD_PARK;
      return v;
    }
    break;
  default: /* an outage, or a value out of range: never park */ break;
  }
  int64_t w = p->backoff_min_ms;
  for (int i = 1; i < attempts && w < p->backoff_max_ms; i++) w *= 2;
  v.wait_ms = w > p->backoff_max_ms ? p->backoff_max_ms : w;
  return v;
}

int mrd_dlq_headers(const mrd_dlq_record *r, int64_t now_ms, mrd_kafka_header *out, char *buf) {
  if (r == NULL || out == NULL || buf == NULL || r->consumer == NULL || !r->consumer[0] ||
      r->topic == NULL || !r->topic[0])
    return MRD_EINVAL;
  /* buf: version, attempts, partition, offset, parked-at, then the error cut to 200 bytes */
  char *num[5];
  size_t used = 0;
  long long vals[5] = {MRD_DLQ_VERSION, r->attempts, r->partition, (long long)r->offset,
                       (long long)now_ms};
  for (int i = 0; i < 5; i++) {
    num[i] = buf + used;
    used += (size_t)snprintf(num[i], 24, "%lld", vals[i]) + 1;
  }
  char *err = buf + used;
  snprintf(err, MRD_DLQ_HEADER_BUF - used, "%.200s", r->error ? r->error : "");
  const char *reason = mrd_failure_name(r->reason);
  mrd_kafka_header h[MRD_DLQ_HEADERS] = {
      {"dlq-version", num[0], strlen(num[0])},
      {"dlq-consumer", r->consumer, strlen(r->consumer)},
      {"dlq-reason", reason, strlen(reason)},
      {"dlq-error", err, strlen(err)},
      {"dlq-attempts", num[1], strlen(num[1])},
      {"dlq-topic", r->topic, strlen(r->topic)},
      {"dlq-partition", num[2], strlen(num[2])},
      {"dlq-offset", num[3], strlen(num[3])},
      {"dlq-parked-at-ms", num[4], strlen(num[4])},
  };
  memcpy(out, h, sizeof h);
  return MRD_DLQ_HEADERS;
}

int mrd_dlq_park(mrd_kafka_producer *p, const mrd_dlq_record *r, void *msg_opaque) {
  if (p == NULL || r == NULL) return MRD_EINVAL;
  int64_t now_ms = mrd_wall_ms();
  mrd_kafka_header h[MRD_DLQ_HEADERS];
  char buf[MRD_DLQ_HEADER_BUF];
  int n = mrd_dlq_headers(r, now_ms, h, buf);
  if (n < 0) return n;
  return mrd_kafka_produce_headers(p, MRD_TOPIC_DLQ, MRD_KAFKA_PARTITION_ANY,
                                   r->key_len ? r->key : NULL, r->key_len, r->value, r->value_len,
                                   h, (size_t)n, msg_opaque);
}

int mrd_dlq_metrics(mrd_metrics *reg, const char *consumer, mrd_counter *out[MRD_FAIL_COUNT]) {
  if (reg == NULL || consumer == NULL || out == NULL) return MRD_EINVAL;
  for (int f = 0; f < MRD_FAIL_COUNT; f++) {
    out[f] = NULL;
    if (f == MRD_FAIL_OUTAGE) continue;
    const char *labels[] = {"consumer", consumer, "reason", mrd_failure_name((mrd_failure)f), NULL};
    int rc = mrd_metrics_counter(reg, "meridian_dlq_events_total",
                                 "messages parked in the dead-letter topic dispatch-events-dlq, by "
                                 "consumer and reason",
                                 labels, &out[f]);
    if (rc != 0) return rc;
  }
  return 0;
}
