/*
 * kafka.h: the Kafka adapter on librdkafka 2.0.2: an idempotent producer that writes to
 * an explicit partition with a key, and a consumer with static partition assignment that
 * commits an offset only when the caller says the message's effect is durable
 * (at-least-once; consumers are idempotent).
 *
 * Producer: enable.idempotence=true, linger.ms configurable (MERIDIAN_KAFKA_LINGER_MS,
 * default 1), delivery reports through a callback served by mrd_kafka_producer_poll()
 * on the caller's thread; a full local queue is MRD_EFULL, distinct from other failures,
 * so a caller can shed load (the gateway answers `unavailable`).
 * Consumer: group.id only for committed offsets, enable.auto.commit=false and
 * rd_kafka_assign() of the partitions given (no subscribe, hence no group join or
 * rebalance: librdkafka's mock cluster, devkafka, stalls tens of seconds on those);
 * fetch.wait.max.ms configurable (MERIDIAN_KAFKA_FETCH_WAIT_MS, default 100: the broker, and
 * devkafka's long-poll front, answer as soon as data arrives, so a long wait costs no latency
 * and keeps an idle consumer cheap). Commits are synchronous.
 * librdkafka's own log lines go through mrd_log. Error text stays on the handle
 * (mrd_kafka_producer_errstr / mrd_kafka_consumer_errstr); _new failures write it to a
 * caller buffer. Handles are not thread-safe (librdkafka's internal threads are its own).
 * This is not a schema layer: payloads are bytes (codecs live elsewhere).
 */
#ifndef MRD_KAFKA_H
#define MRD_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrd_kafka_producer mrd_kafka_producer;
typedef struct mrd_kafka_consumer mrd_kafka_consumer;

/* Any partition: librdkafka's partitioner (murmur2_random, Java's) picks one by key. */
#define MRD_KAFKA_PARTITION_ANY (-1)

/* Start positions for mrd_kafka_consumer_assign (or an explicit offset >= 0). */
#define MRD_KAFKA_OFFSET_BEGINNING (-2) /* oldest message kept */
#define MRD_KAFKA_OFFSET_END (-1)       /* only messages produced from now on */
#define MRD_KAFKA_OFFSET_STORED (-1000) /* the group's committed offset (needs group_id) */
#define MRD_KAFKA_OFFSET_NONE (-1001)   /* mrd_kafka_committed: the group has none yet */

/* Delivery report, called from mrd_kafka_producer_poll / _flush on the caller's thread.
 * err is 0 (then partition and offset say where it landed) or MRD_EKAFKA with errstr.
 * msg_opaque is what the caller gave to mrd_kafka_produce. */
typedef void (*mrd_kafka_delivery_fn)(void *ud, void *msg_opaque, int err, const char *errstr,
                                      int32_t partition, int64_t offset);

/* Producer settings. Start from MRD_KAFKA_PRODUCER_OPTS_DEFAULT. */
typedef struct mrd_kafka_producer_opts {
  int linger_ms;                     /* linger.ms: 1 (0 sends at once) */
  int message_timeout_ms;            /* message.timeout.ms: 30000; a delivery error after that */
  int queue_max_messages;            /* queue.buffering.max.messages: 100000; beyond -> MRD_EFULL */
  mrd_kafka_delivery_fn on_delivery; /* may be NULL */
  void *ud;                          /* passed to on_delivery */
  const char *const *extra;          /* NULL or NULL-terminated librdkafka key, value pairs, last */
} mrd_kafka_producer_opts;

#define MRD_KAFKA_PRODUCER_OPTS_DEFAULT                                                            \
  { 1, 30000, 100000, NULL, NULL, NULL }

/* Consumer settings. Start from MRD_KAFKA_CONSUMER_OPTS_DEFAULT. */
typedef struct mrd_kafka_consumer_opts {
  const char *group_id;     /* committed offsets live under it; NULL: no commits */
  int fetch_wait_max_ms;    /* fetch.wait.max.ms: 100 */
  bool reset_to_beginning;  /* where STORED starts when the group has no offset yet:
                               true = oldest (default, nothing missed), false = end */
  const char *const *extra; /* NULL or NULL-terminated librdkafka key, value pairs, last */
} mrd_kafka_consumer_opts;

#define MRD_KAFKA_CONSUMER_OPTS_DEFAULT                                                            \
  { NULL, 100, true, NULL }

/* One partition to read and where to start. */
typedef struct mrd_kafka_tp {
  const char *topic;
  int32_t partition;
  int64_t start; /* MRD_KAFKA_OFFSET_* or an offset >= 0 */
} mrd_kafka_tp;

/* A consumed message. Pointers are borrowed until mrd_kafka_msg_release. */
typedef struct mrd_kafka_msg {
  const char *topic;
  int32_t partition;
  int64_t offset;
  const void *key; /* NULL when the message has no key */
  size_t key_len;
  const void *value;
  size_t value_len;
  int64_t timestamp_ms; /* -1 when unknown */
  void *raw_;           /* the rd_kafka_message_t; internal */
} mrd_kafka_msg;

/* Creates an idempotent producer for the comma-separated brokers. opts may be NULL
 * (defaults). Returns 0 and *out, or MRD_EINVAL (empty brokers, a setting librdkafka
 * refuses: text in err), MRD_EKAFKA, MRD_ENOMEM. err may be NULL. Connecting is
 * asynchronous: an unreachable cluster shows as delivery errors and a failing
 * mrd_kafka_producer_ping. Free with mrd_kafka_producer_free. */
MRD_EXPORT int mrd_kafka_producer_new(const char *brokers, const mrd_kafka_producer_opts *opts,
                                      mrd_kafka_producer **out, char *err, size_t err_len);

/* Purges what is still queued (reported to on_delivery as errors) and frees the producer
 * without waiting: call mrd_kafka_flush with a time limit first to deliver. NULL: no-op. */
MRD_EXPORT void mrd_kafka_producer_free(mrd_kafka_producer *p);

/* Queues value (copied) with key (copied; may be NULL) for topic and partition
 * (>= 0, or MRD_KAFKA_PARTITION_ANY). msg_opaque comes back in the delivery report.
 * Returns 0, MRD_EFULL (the local queue is full: back off or shed), MRD_EKAFKA (unknown
 * partition, message too large, fatal idempotence error: text in errstr), MRD_EINVAL. */
MRD_EXPORT int mrd_kafka_produce(mrd_kafka_producer *p, const char *topic, int32_t partition,
                                 const void *key, size_t key_len, const void *value,
                                 size_t value_len, void *msg_opaque);

/* One Kafka message header: a name and bytes (value may be NULL for a null header). */
typedef struct mrd_kafka_header {
  const char *name;
  const void *value;
  size_t len;
} mrd_kafka_header;

/* The most headers mrd_kafka_produce_headers takes for one message. */
#define MRD_KAFKA_HEADERS_MAX 16

/* As mrd_kafka_produce, with n_headers headers (names and values copied; at most
 * MRD_KAFKA_HEADERS_MAX, names non-empty). Same returns; MRD_EINVAL for bad headers. */
MRD_EXPORT int mrd_kafka_produce_headers(mrd_kafka_producer *p, const char *topic,
                                         int32_t partition, const void *key, size_t key_len,
                                         const void *value, size_t value_len,
                                         const mrd_kafka_header *headers, size_t n_headers,
                                         void *msg_opaque);

/* Serves delivery reports and errors, waiting up to timeout_ms for the first. Returns the
 * number of events served (>= 0). Call it from the service loop. */
MRD_EXPORT int mrd_kafka_producer_poll(mrd_kafka_producer *p, int timeout_ms);

/* Waits up to timeout_ms until every queued message is delivered or failed (reports
 * served). Returns 0, or MRD_ETIMEDOUT (messages remain: mrd_kafka_outq_len). */
MRD_EXPORT int mrd_kafka_flush(mrd_kafka_producer *p, int timeout_ms);

/* Messages queued or in flight, not yet reported. */
MRD_EXPORT int mrd_kafka_outq_len(mrd_kafka_producer *p);

/* Asks the cluster for metadata within timeout_ms: 0 when a broker answered, else
 * MRD_ECONN / MRD_ETIMEDOUT. For /readyz. */
MRD_EXPORT int mrd_kafka_producer_ping(mrd_kafka_producer *p, int timeout_ms);

/* The last error's text ("" when none). Borrowed, valid until the next call on p. */
MRD_EXPORT const char *mrd_kafka_producer_errstr(const mrd_kafka_producer *p);

/* Creates a consumer; nothing is read until mrd_kafka_consumer_assign. Same errors as
 * mrd_kafka_producer_new. Free with mrd_kafka_consumer_free. */
MRD_EXPORT int mrd_kafka_consumer_new(const char *brokers, const mrd_kafka_consumer_opts *opts,
                                      mrd_kafka_consumer **out, char *err, size_t err_len);

/* Closes the consumer (nothing is committed on the way out) and frees it. NULL: no-op. */
MRD_EXPORT void mrd_kafka_consumer_free(mrd_kafka_consumer *c);

/* Replaces the assignment with these n partitions (static: no group join). STORED needs
 * a group_id. END is resolved here, by asking the partition's leader for its end offset
 * (up to 5 s per partition), so every message produced after this returns is read.
 * Returns 0, or MRD_EINVAL (n == 0, bad partition, STORED without group), MRD_ETIMEDOUT
 * or MRD_EKAFKA (END could not be resolved; text in errstr), MRD_ENOMEM. */
MRD_EXPORT int mrd_kafka_consumer_assign(mrd_kafka_consumer *c, const mrd_kafka_tp *tps, size_t n);

/* Waits up to timeout_ms for the next message. Returns 0 and *msg (release it with
 * mrd_kafka_msg_release), MRD_EAGAIN when none came, or MRD_EKAFKA for an error event
 * (text in errstr; the consumer keeps going, so the loop may simply continue). */
MRD_EXPORT int mrd_kafka_consume(mrd_kafka_consumer *c, int timeout_ms, mrd_kafka_msg *msg);

/* Test API (no service calls it): tests/integration/dlq_tool.c. */
/* The value of the last header called name of a consumed message: 0 with *value (borrowed
 * like the message; NULL for a null header) and *len, MRD_ENOTFOUND, MRD_EINVAL. */
MRD_EXPORT int mrd_kafka_msg_header(const mrd_kafka_msg *msg, const char *name, const void **value,
                                    size_t *len);

/* Gives the message back to librdkafka; msg is zeroed. Safe on a zeroed msg. */
MRD_EXPORT void mrd_kafka_msg_release(mrd_kafka_msg *msg);

/* Commits, synchronously, that every message of topic/partition before next_offset has
 * had its effect (so a restarted consumer resumes at next_offset). Call it after the
 * effect is durable. Returns 0, MRD_ESTATE (no group_id), MRD_EKAFKA (text in errstr). */
MRD_EXPORT int mrd_kafka_commit(mrd_kafka_consumer *c, const char *topic, int32_t partition,
                                int64_t next_offset);

/* Test API (no service calls it): tests/integration/test_kafka_adapter.c. */
/* mrd_kafka_commit(topic, partition, msg->offset + 1). */
MRD_EXPORT int mrd_kafka_commit_msg(mrd_kafka_consumer *c, const mrd_kafka_msg *msg);

/* Test API (no service calls it): tests/integration/test_kafka_adapter.c. */
/* The group's committed offset for topic/partition (asks the coordinator, up to
 * timeout_ms). Returns 0 and *next_offset (MRD_KAFKA_OFFSET_NONE when nothing was
 * committed), MRD_ESTATE without group, MRD_EKAFKA. */
MRD_EXPORT int mrd_kafka_committed(mrd_kafka_consumer *c, const char *topic, int32_t partition,
                                   int timeout_ms, int64_t *next_offset);

/* Lets an event loop wait for Kafka instead of polling on a timer: librdkafka writes one
 * byte to fd (from its own threads) whenever the producer's queue of delivery reports and
 * errors goes from empty to non-empty. It writes again only after the queue was empty, so
 * on a wake-up the caller reads the bytes out of fd and calls mrd_kafka_producer_poll(p, 0)
 * (which serves everything queued). fd is the caller's, typically the write end of a
 * non-blocking pipe whose read end is in the loop; it must stay open until this is turned
 * off with fd = -1 (mrd_kafka_producer_free does that first). Returns 0 or MRD_EINVAL. */
MRD_EXPORT int mrd_kafka_producer_wake_fd(mrd_kafka_producer *p, int fd);

/* The same for a consumer's messages and errors: on a wake-up, call mrd_kafka_consume(c, 0,
 * ...) until MRD_EAGAIN (a caller that stops earlier must come back without waiting for fd).
 * mrd_kafka_consumer_free turns it off first. Returns 0 or MRD_EINVAL. */
MRD_EXPORT int mrd_kafka_consumer_wake_fd(mrd_kafka_consumer *c, int fd);

/* The number of partitions of topic, from the cluster's metadata (up to timeout_ms), for a
 * consumer that reads all of them (the gateway's dispatch-events). Returns 0 and *count
 * (>= 1), MRD_EINVAL, MRD_ETIMEDOUT, or MRD_EKAFKA (unknown topic, no partitions: text in
 * errstr). A cluster that auto-creates topics (devkafka's mock does, with 4 partitions)
 * creates a missing one when asked: that is the cluster's setting, not ours. */
MRD_EXPORT int mrd_kafka_consumer_partitions(mrd_kafka_consumer *c, const char *topic,
                                             int timeout_ms, int32_t *count);

/* One partition's range for a time-bounded read (mrd_kafka_offsets_since). */
typedef struct mrd_kafka_range {
  int64_t start; /* first offset to read */
  int64_t end;   /* the end offset when asked (high watermark): read up to end - 1 */
  bool exact;    /* true: start is the broker's answer for the time (the first message
                    with a timestamp >= since_ms, or end when there is none); false: the
                    broker cannot look offsets up by time (devkafka's mock answers "none"
                    for every time) and start is the oldest offset kept, so the caller
                    skips messages older than since_ms itself */
} mrd_kafka_range;

/* For partitions 0 .. n_partitions - 1 of topic: where messages with a timestamp >=
 * since_ms (ms since the epoch) begin and where the partition ends now, for a read of
 * [start, end) with explicit offsets (mrd_kafka_consumer_assign). Asks the cluster for
 * every partition's watermarks and for offsets by time (rd_kafka_offsets_for_times), up to
 * timeout_ms per request. A broker that answers "none" on a non-empty partition is asked
 * again for time 0: a broker that looks times up answers the oldest offset, one that
 * cannot answers "none" again, and that partition gets start = oldest, exact = false.
 * out has n_partitions entries. Returns 0, MRD_EINVAL, MRD_ETIMEDOUT, MRD_EKAFKA (text in
 * errstr), MRD_ENOMEM. The consumer's assignment is not touched. */
MRD_EXPORT int mrd_kafka_offsets_since(mrd_kafka_consumer *c, const char *topic,
                                       int32_t n_partitions, int64_t since_ms, int timeout_ms,
                                       mrd_kafka_range *out);

/* For the partitions of r[0 .. n_partitions) that mrd_kafka_offsets_since could not look
 * up by time (exact false: start is the oldest offset kept, e.g. on devkafka's mock),
 * moves start forward by bisection on the timestamps of single messages, every such
 * partition at once (one assignment and one message per partition a round): to the first
 * offset whose message is not older than since_ms, give or take slack messages (start
 * stays at or before it, as far as the partition's timestamps grow with its offsets). So a
 * time-bounded read costs the window's messages plus slack, not the whole partition.
 * Partitions of at most 2 * slack messages are left as they are. c is a consumer of its
 * own (its assignment is replaced; made with a small max.partition.fetch.bytes, each round
 * fetches little). Gives up narrowing (start stays where it got to) on a partition whose
 * message does not come within round_ms, and on all of them after max_rounds. Returns the
 * rounds made (0: nothing to narrow), or MRD_EINVAL (bad arguments, slack < 1). */
MRD_EXPORT int mrd_kafka_narrow_since(mrd_kafka_consumer *c, const char *topic,
                                      int32_t n_partitions, int64_t since_ms, int64_t slack,
                                      int round_ms, int max_rounds, mrd_kafka_range *r);

/* As mrd_kafka_producer_ping, for a consumer. */
MRD_EXPORT int mrd_kafka_consumer_ping(mrd_kafka_consumer *c, int timeout_ms);

/* The last error's text ("" when none). Borrowed, valid until the next call on c. */
MRD_EXPORT const char *mrd_kafka_consumer_errstr(const mrd_kafka_consumer *c);

#ifdef __cplusplus
}
#endif
#endif /* MRD_KAFKA_H */
