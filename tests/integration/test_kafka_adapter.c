/* test_kafka_adapter.c: the Kafka adapter against devkafka (the stack's mock cluster,
 * topics of 64 partitions): produce to explicit partitions with keys and read them back,
 * commit-after-effect (a consumer restarted without committing sees the message again),
 * the distinct queue-full error, offsets by time for a bounded read of recent messages,
 * and errors for bad partitions and misuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "itest.h"
#include "mrd/kafka.h"
#include "mrd/log.h"

#define TOPIC "dispatch-commands"

/* Delivery reports land here. */
typedef struct delivery {
  int count, errors;
  int32_t partition[64];
  int64_t offset[64];
  intptr_t opaque[64];
} delivery;

static void on_delivery(void *ud, void *msg_opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset) {
  (void)errstr;
  delivery *d = ud;
  if (err) d->errors++;
  if (d->count < 64) {
    d->partition[d->count] = partition;
    d->offset[d->count] = err ? -1 : offset;
    d->opaque[d->count] = (intptr_t)msg_opaque;
  }
  d->count++;
}

static mrd_kafka_producer *producer(delivery *d) {
  mrd_kafka_producer_opts o = MRD_KAFKA_PRODUCER_OPTS_DEFAULT;
  o.on_delivery = on_delivery;
  o.ud = d;
  mrd_kafka_producer *p = NULL;
  char err[256];
  int rc = mrd_kafka_producer_new(itest_env("MERIDIAN_KAFKA_BROKERS"), &o, &p, err, sizeof err);
  if (rc != 0) fail_msg("producer: %s", err);
  return p;
}

static mrd_kafka_consumer *consumer(const char *group) {
  mrd_kafka_consumer_opts o = MRD_KAFKA_CONSUMER_OPTS_DEFAULT;
  static const char *debug[3] = {"debug", NULL, NULL};
  debug[1] = getenv("KDEBUG"); /* KDEBUG=fetch,cgrp shows librdkafka's debug lines */
  if (debug[1]) o.extra = debug;
  o.group_id = group;
  mrd_kafka_consumer *c = NULL;
  char err[256];
  int rc = mrd_kafka_consumer_new(itest_env("MERIDIAN_KAFKA_BROKERS"), &o, &c, err, sizeof err);
  if (rc != 0) fail_msg("consumer: %s", err);
  return c;
}

/* Produces one message and waits for its report; returns its offset. */
static int64_t produce_one(mrd_kafka_producer *p, delivery *d, int32_t partition, const char *key,
                           const char *value) {
  int before = d->count;
  int rc = mrd_kafka_produce(p, TOPIC, partition, key, strlen(key), value, strlen(value),
                             (void *)(intptr_t)(before + 1));
  if (rc != 0) fail_msg("produce: %d %s", rc, mrd_kafka_producer_errstr(p));
  assert_int_equal(mrd_kafka_flush(p, 10000), 0);
  assert_int_equal(d->count, before + 1);
  assert_int_equal(d->errors, 0);
  assert_int_equal(d->partition[before], partition);
  assert_int_equal(d->opaque[before], before + 1);
  assert_true(d->offset[before] >= 0);
  return d->offset[before];
}

/* Next message within timeout_ms (fails the test on timeout). */
static void next_msg(mrd_kafka_consumer *c, int timeout_ms, mrd_kafka_msg *m) {
  int64_t t0 = itest_now_ms();
  for (;;) {
    int rc = mrd_kafka_consume(c, 100, m);
    if (rc == 0) return;
    if (rc != MRD_EAGAIN && rc != MRD_EKAFKA) fail_msg("consume: %d", rc);
    if (itest_now_ms() - t0 > timeout_ms)
      fail_msg("no message within %d ms (%s)", timeout_ms, mrd_kafka_consumer_errstr(c));
  }
}

static void expect_msg(mrd_kafka_consumer *c, int32_t partition, int64_t offset, const char *key,
                       const char *value) {
  mrd_kafka_msg m;
  next_msg(c, 10000, &m);
  assert_string_equal(m.topic, TOPIC);
  assert_int_equal(m.partition, partition);
  assert_int_equal(m.offset, offset);
  assert_int_equal(m.key_len, strlen(key));
  assert_memory_equal(m.key, key, m.key_len);
  assert_int_equal(m.value_len, strlen(value));
  assert_memory_equal(m.value, value, m.value_len);
  assert_true(m.timestamp_ms > 0);
  mrd_kafka_msg_release(&m);
}

static char run_id[40];

static void test_kafka_produce_to_explicit_partitions_and_read_back(void **state) {
  (void)state;
  delivery d = {0};
  mrd_kafka_producer *p = producer(&d);
  assert_int_equal(mrd_kafka_producer_ping(p, 5000), 0);
  /* two partitions, interleaved, distinct keys */
  const int32_t parts[2] = {3, 41};
  int64_t offs[2][5];
  char keys[2][5][128], vals[2][5][80];
  for (int i = 0; i < 5; i++) {
    for (int j = 0; j < 2; j++) {
      snprintf(keys[j][i], sizeof keys[j][i], "driver-%s-%d-%d", run_id, j, i);
      snprintf(vals[j][i], sizeof vals[j][i], "{\"seq\":%d,\"part\":%d}", i, parts[j]);
      offs[j][i] = produce_one(p, &d, parts[j], keys[j][i], vals[j][i]);
      if (i > 0) assert_int_equal(offs[j][i], offs[j][i - 1] + 1);
    }
  }
  /* a consumer without a group, assigned to both partitions at the first offsets */
  mrd_kafka_consumer *c = consumer(NULL);
  mrd_kafka_tp tps[2] = {{TOPIC, parts[0], offs[0][0]}, {TOPIC, parts[1], offs[1][0]}};
  assert_int_equal(mrd_kafka_consumer_assign(c, tps, 2), 0);
  int seen[2] = {0, 0};
  for (int n = 0; n < 10; n++) {
    mrd_kafka_msg m;
    next_msg(c, 10000, &m);
    int j = m.partition == parts[0] ? 0 : 1;
    assert_int_equal(m.partition, parts[j]);
    int i = seen[j]++;
    assert_int_equal(m.offset, offs[j][i]); /* in order within a partition */
    assert_int_equal(m.key_len, strlen(keys[j][i]));
    assert_memory_equal(m.key, keys[j][i], m.key_len);
    assert_memory_equal(m.value, vals[j][i], m.value_len);
    mrd_kafka_msg_release(&m);
  }
  assert_int_equal(seen[0], 5);
  assert_int_equal(seen[1], 5);
  mrd_kafka_msg none;
  assert_int_equal(mrd_kafka_consume(c, 200, &none), MRD_EAGAIN);
  /* no group: commits are refused */
  assert_int_equal(mrd_kafka_commit(c, TOPIC, parts[0], offs[0][4] + 1), MRD_ESTATE);
  mrd_kafka_consumer_free(c);
  mrd_kafka_producer_free(p);
}

static void test_kafka_consumer_from_end_sees_only_new_messages(void **state) {
  (void)state;
  delivery d = {0};
  mrd_kafka_producer *p = producer(&d);
  int32_t part = 17;
  char key[80];
  snprintf(key, sizeof key, "old-%s", run_id);
  produce_one(p, &d, part, key, "old");
  mrd_kafka_consumer *c = consumer(NULL);
  mrd_kafka_tp tp = {TOPIC, part, MRD_KAFKA_OFFSET_END};
  assert_int_equal(mrd_kafka_consumer_assign(c, &tp, 1), 0);
  /* END is resolved by assign itself: produce at once, nothing may be skipped */
  snprintf(key, sizeof key, "new-%s", run_id);
  int64_t off = produce_one(p, &d, part, key, "new");
  expect_msg(c, part, off, key, "new");
  mrd_kafka_consumer_free(c);
  mrd_kafka_producer_free(p);
}

static void test_kafka_uncommitted_message_is_seen_again_after_restart(void **state) {
  (void)state;
  delivery d = {0};
  mrd_kafka_producer *p = producer(&d);
  int32_t part = (int32_t)(getpid() % 64);
  char group[96], k1[96], k2[96], k3[96];
  snprintf(group, sizeof group, "mrd-test-%s", run_id);
  snprintf(k1, sizeof k1, "trip-%s-1", run_id);
  snprintf(k2, sizeof k2, "trip-%s-2", run_id);
  snprintf(k3, sizeof k3, "trip-%s-3", run_id);
  int64_t o1 = produce_one(p, &d, part, k1, "request-1");
  int64_t o2 = produce_one(p, &d, part, k2, "request-2");

  /* consumer A: the group starts at o1 (the partition holds older data from other runs) */
  mrd_kafka_consumer *a = consumer(group);
  int64_t committed = 0;
  assert_int_equal(mrd_kafka_committed(a, TOPIC, part, 5000, &committed), 0);
  assert_int_equal(committed, MRD_KAFKA_OFFSET_NONE);
  assert_int_equal(mrd_kafka_commit(a, TOPIC, part, o1), 0);
  mrd_kafka_tp tp = {TOPIC, part, MRD_KAFKA_OFFSET_STORED};
  assert_int_equal(mrd_kafka_consumer_assign(a, &tp, 1), 0);
  mrd_kafka_msg m;
  next_msg(a, 10000, &m);
  assert_int_equal(m.offset, o1);
  /* ... the effect of message 1 is durable: commit it */
  assert_int_equal(mrd_kafka_commit_msg(a, &m), 0);
  mrd_kafka_msg_release(&m);
  next_msg(a, 10000, &m);
  assert_int_equal(m.offset, o2);
  mrd_kafka_msg_release(&m);
  /* crash before the effect of message 2: no commit */
  mrd_kafka_consumer_free(a);

  /* consumer B, same group: resumes at message 2, not 1 */
  mrd_kafka_consumer *b = consumer(group);
  assert_int_equal(mrd_kafka_committed(b, TOPIC, part, 5000, &committed), 0);
  assert_int_equal(committed, o2);
  assert_int_equal(mrd_kafka_consumer_assign(b, &tp, 1), 0);
  expect_msg(b, part, o2, k2, "request-2");
  assert_int_equal(mrd_kafka_commit(b, TOPIC, part, o2 + 1), 0);
  mrd_kafka_consumer_free(b);

  /* consumer C: both committed, so the next thing it sees is a new message */
  int64_t o3 = produce_one(p, &d, part, k3, "request-3");
  mrd_kafka_consumer *c = consumer(group);
  assert_int_equal(mrd_kafka_consumer_assign(c, &tp, 1), 0);
  expect_msg(c, part, o3, k3, "request-3");
  mrd_kafka_consumer_free(c);
  mrd_kafka_producer_free(p);
}

static void test_kafka_full_local_queue_is_a_distinct_error(void **state) {
  (void)state;
  delivery d = {0};
  mrd_kafka_producer_opts o = MRD_KAFKA_PRODUCER_OPTS_DEFAULT;
  o.queue_max_messages = 5;
  o.linger_ms = 5000; /* hold the batch so the queue stays full */
  o.on_delivery = on_delivery;
  o.ud = &d;
  mrd_kafka_producer *p = NULL;
  char err[256];
  assert_int_equal(
      mrd_kafka_producer_new(itest_env("MERIDIAN_KAFKA_BROKERS"), &o, &p, err, sizeof err), 0);
  int rc = 0, sent = 0;
  for (int i = 0; i < 20 && rc == 0; i++) {
    rc = mrd_kafka_produce(p, TOPIC, 5, "k", 1, "v", 1, NULL);
    if (rc == 0) sent++;
  }
  assert_int_equal(rc, MRD_EFULL);
  assert_int_equal(sent, 5);
  assert_non_null(strstr(mrd_kafka_producer_errstr(p), "full"));
  assert_int_equal(mrd_kafka_outq_len(p), 5);
  /* freeing purges the queue: the reports say the messages failed */
  mrd_kafka_producer_free(p);
  assert_int_equal(d.count, 5);
  assert_int_equal(d.errors, 5);
}

static void test_kafka_bad_partition_and_settings_are_errors(void **state) {
  (void)state;
  delivery d = {0};
  mrd_kafka_producer *p = producer(&d);
  assert_int_equal(mrd_kafka_producer_ping(p, 5000), 0); /* metadata known */
  int rc = mrd_kafka_produce(p, TOPIC, 999, "k", 1, "v", 1, NULL);
  if (rc == 0) {
    /* librdkafka may only find out when it routes the message */
    mrd_kafka_flush(p, 10000);
    assert_int_equal(d.errors, 1);
  } else {
    assert_int_equal(rc, MRD_EKAFKA);
    assert_non_null(strstr(mrd_kafka_producer_errstr(p), "999"));
  }
  assert_int_equal(mrd_kafka_produce(p, "", 0, NULL, 0, "v", 1, NULL), MRD_EINVAL);
  assert_int_equal(mrd_kafka_produce(p, TOPIC, -7, NULL, 0, "v", 1, NULL), MRD_EINVAL);
  mrd_kafka_producer_free(p);

  mrd_kafka_producer *q = NULL;
  char err[256];
  assert_int_equal(mrd_kafka_producer_new("", NULL, &q, err, sizeof err), MRD_EINVAL);
  mrd_kafka_producer_opts o = MRD_KAFKA_PRODUCER_OPTS_DEFAULT;
  o.extra = (const char *const[]){"no.such.setting", "1", NULL};
  assert_int_equal(mrd_kafka_producer_new("127.0.0.1:1", &o, &q, err, sizeof err), MRD_EINVAL);
  assert_non_null(strstr(err, "no.such.setting"));

  mrd_kafka_consumer *c = consumer(NULL);
  mrd_kafka_tp tp = {TOPIC, 1, MRD_KAFKA_OFFSET_STORED};
  assert_int_equal(mrd_kafka_consumer_assign(c, &tp, 1), MRD_EINVAL); /* STORED needs a group */
  mrd_kafka_consumer_free(c);
}

static void test_kafka_partition_count_from_metadata_or_an_error(void **state) {
  (void)state;
  mrd_kafka_consumer *c = consumer(NULL);
  int32_t n = 0;
  assert_int_equal(mrd_kafka_consumer_partitions(c, "dispatch-events", 10000, &n), 0);
  assert_int_equal(n, 64); /* devkafka's topics (scripts/stack) */
  assert_int_equal(mrd_kafka_consumer_partitions(c, "", 1000, &n), MRD_EINVAL);
  assert_int_equal(mrd_kafka_consumer_partitions(c, TOPIC, 1000, NULL), MRD_EINVAL);
  mrd_kafka_consumer_free(c);
  /* no cluster: an error naming the topic, the count untouched */
  char brokers[64];
  snprintf(brokers, sizeof brokers, "127.0.0.1:%d", itest_free_port());
  assert_int_equal(mrd_kafka_consumer_new(brokers, NULL, &c, NULL, 0), 0);
  n = -7;
  int rc = mrd_kafka_consumer_partitions(c, "dispatch-events", 500, &n);
  assert_true(rc == MRD_ETIMEDOUT || rc == MRD_EKAFKA);
  assert_int_equal(n, -7);
  assert_non_null(strstr(mrd_kafka_consumer_errstr(c), "dispatch-events"));
  mrd_kafka_consumer_free(c);
}

/* Reads [r.start, r.end) of one partition and returns how many messages have a timestamp
 * >= since_ms, checking that each of them is one of want[0..n_want) in order. */
static int read_range_since(int32_t part, mrd_kafka_range r, int64_t since_ms, const int64_t *want,
                            int n_want) {
  if (r.start >= r.end) return 0;
  mrd_kafka_consumer *c = consumer(NULL);
  mrd_kafka_tp tp = {TOPIC, part, r.start};
  assert_int_equal(mrd_kafka_consumer_assign(c, &tp, 1), 0);
  int n = 0;
  for (int64_t last = r.start - 1; last < r.end - 1;) {
    mrd_kafka_msg m;
    next_msg(c, 10000, &m);
    assert_int_equal(m.partition, part);
    assert_true(m.offset > last && m.offset < r.end);
    last = m.offset;
    if (m.timestamp_ms >= since_ms) {
      assert_true(n < n_want);
      assert_int_equal(m.offset, want[n]);
      n++;
    }
    mrd_kafka_msg_release(&m);
  }
  mrd_kafka_consumer_free(c);
  return n;
}

/* Wall-clock ms (message timestamps are; itest_now_ms is monotonic). */
static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_kafka_offsets_since_bound_a_read_of_recent_messages(void **state) {
  (void)state;
  delivery d = {0};
  mrd_kafka_producer *p = producer(&d);
  int32_t part = 59;
  char key[80];
  snprintf(key, sizeof key, "before-%s", run_id);
  int64_t old = produce_one(p, &d, part, key, "before");
  nanosleep(&(struct timespec){0, 30000000}, NULL);
  int64_t since = wall_ms();
  nanosleep(&(struct timespec){0, 5000000}, NULL);
  int64_t recent[3];
  for (int i = 0; i < 3; i++) {
    snprintf(key, sizeof key, "after-%s-%d", run_id, i);
    recent[i] = produce_one(p, &d, part, key, "after");
  }
  mrd_kafka_consumer *c = consumer(NULL);
  int32_t n = 0;
  assert_int_equal(mrd_kafka_consumer_partitions(c, TOPIC, 10000, &n), 0);
  mrd_kafka_range *r = calloc((size_t)n, sizeof *r);
  assert_non_null(r);
  int rc0 = mrd_kafka_offsets_since(c, TOPIC, n, since, 5000, r);
  if (rc0 != 0) fail_msg("offsets_since: %d %s", rc0, mrd_kafka_consumer_errstr(c));
  /* the end is where the partition ended when asked */
  assert_int_equal(r[part].end, recent[2] + 1);
  if (r[part].exact) /* a broker that looks times up: exactly the recent ones */
    assert_int_equal(r[part].start, recent[0]);
  else /* devkafka's mock: from the oldest kept, the caller filters */
    assert_true(r[part].start <= old);
  for (int32_t i = 0; i < n; i++) assert_true(r[i].start <= r[i].end);
  /* read back, filtered by timestamp: the three recent messages, in order, not the old one */
  assert_int_equal(read_range_since(part, r[part], since, recent, 3), 3);
  /* a message produced after the call is past the captured end */
  snprintf(key, sizeof key, "later-%s", run_id);
  assert_true(produce_one(p, &d, part, key, "later") >= r[part].end);
  /* a time after every message: nothing to read (or, without time lookup, nothing passes
   * the filter) */
  assert_int_equal(mrd_kafka_offsets_since(c, TOPIC, n, wall_ms() + 60000, 5000, r), 0);
  assert_true(r[part].exact ? r[part].start == r[part].end : r[part].start <= old);
  assert_int_equal(read_range_since(part, r[part], wall_ms() + 60000, recent, 0), 0);
  /* misuse */
  assert_int_equal(mrd_kafka_offsets_since(c, TOPIC, 0, since, 1000, r), MRD_EINVAL);
  assert_int_equal(mrd_kafka_offsets_since(c, "", n, since, 1000, r), MRD_EINVAL);
  assert_int_equal(mrd_kafka_offsets_since(c, TOPIC, n, -5, 1000, r), MRD_EINVAL);
  assert_int_equal(mrd_kafka_offsets_since(c, TOPIC, n, since, 1000, NULL), MRD_EINVAL);
  free(r);
  mrd_kafka_consumer_free(c);
  /* no cluster: an error naming the topic */
  char brokers[64];
  snprintf(brokers, sizeof brokers, "127.0.0.1:%d", itest_free_port());
  assert_int_equal(mrd_kafka_consumer_new(brokers, NULL, &c, NULL, 0), 0);
  mrd_kafka_range one;
  int rc = mrd_kafka_offsets_since(c, TOPIC, 1, since, 500, &one);
  assert_true(rc == MRD_ETIMEDOUT || rc == MRD_EKAFKA);
  assert_non_null(strstr(mrd_kafka_consumer_errstr(c), TOPIC));
  mrd_kafka_consumer_free(c);
  mrd_kafka_producer_free(p);
}

/* A partition the broker cannot look up by time (devkafka's mock) is narrowed by
 * bisection on timestamps: the read starts within a few slacks before the first recent
 * message, not at the oldest one; a broker that looks times up is left alone. */
static void test_kafka_narrow_since_skips_old_messages(void **state) {
  (void)state;
  delivery d = {0};
  mrd_kafka_producer *p = producer(&d);
  int32_t part = 58;
  char key[80];
  int64_t first_old = -1;
  for (int i = 0; i < 300; i++) {
    if (d.count == 60) memset(&d, 0, sizeof d); /* the report log holds 64 */
    snprintf(key, sizeof key, "old-%s-%d", run_id, i);
    int64_t off = produce_one(p, &d, part, key, "old");
    if (first_old < 0) first_old = off;
  }
  nanosleep(&(struct timespec){0, 30000000}, NULL);
  int64_t since = wall_ms();
  nanosleep(&(struct timespec){0, 5000000}, NULL);
  int64_t recent[3];
  memset(&d, 0, sizeof d);
  for (int i = 0; i < 3; i++) {
    snprintf(key, sizeof key, "new-%s-%d", run_id, i);
    recent[i] = produce_one(p, &d, part, key, "new");
  }
  mrd_kafka_consumer *c = consumer(NULL);
  int32_t n = 0;
  assert_int_equal(mrd_kafka_consumer_partitions(c, TOPIC, 10000, &n), 0);
  mrd_kafka_range *r = calloc((size_t)n, sizeof *r);
  assert_non_null(r);
  assert_int_equal(mrd_kafka_offsets_since(c, TOPIC, n, since, 5000, r), 0);
  mrd_kafka_range was = r[part];
  const int64_t slack = 4;
  static const char *const small[] = {"max.partition.fetch.bytes", "1024", NULL};
  mrd_kafka_consumer_opts o = MRD_KAFKA_CONSUMER_OPTS_DEFAULT;
  o.fetch_wait_max_ms = 10;
  o.extra = small;
  mrd_kafka_consumer *b = NULL;
  assert_int_equal(mrd_kafka_consumer_new(itest_env("MERIDIAN_KAFKA_BROKERS"), &o, &b, NULL, 0), 0);
  int rounds = mrd_kafka_narrow_since(b, TOPIC, n, since, slack, 2000, 30, r);
  assert_true(rounds >= 0);
  assert_int_equal(r[part].end, was.end);
  if (was.exact) {
    assert_int_equal(r[part].start, was.start); /* nothing to narrow */
  } else {
    assert_true(rounds >= 5);                            /* 300+ messages down to 2 * slack */
    assert_true(r[part].start <= recent[0]);             /* nothing recent skipped */
    assert_true(r[part].start >= recent[0] - 3 * slack); /* and hardly anything old read */
    assert_true(r[part].start > first_old);
    assert_int_equal(read_range_since(part, r[part], since, recent, 3), 3);
  }
  /* misuse */
  assert_int_equal(mrd_kafka_narrow_since(b, TOPIC, n, since, 0, 2000, 30, r), MRD_EINVAL);
  assert_int_equal(mrd_kafka_narrow_since(b, "", n, since, slack, 2000, 30, r), MRD_EINVAL);
  assert_int_equal(mrd_kafka_narrow_since(b, TOPIC, n, since, slack, 2000, 30, NULL), MRD_EINVAL);
  free(r);
  mrd_kafka_consumer_free(b);
  mrd_kafka_consumer_free(c);
  mrd_kafka_producer_free(p);
}

/* Waits up to timeout_ms for fd to be readable, then reads what is there; returns the
 * number of bytes read (0 on timeout). */
static int wait_wake(int fd, int timeout_ms) {
  struct pollfd pfd = {fd, POLLIN, 0};
  if (poll(&pfd, 1, timeout_ms) != 1) return 0;
  char buf[64];
  ssize_t n = read(fd, buf, sizeof buf);
  return n > 0 ? (int)n : 0;
}

static void test_kafka_wake_fd_signals_reports_and_messages(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
  assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
  delivery d = {0};
  mrd_kafka_producer *p = producer(&d);
  mrd_kafka_consumer *c = consumer(NULL);
  int32_t part = 23;
  mrd_kafka_tp tp = {TOPIC, part, MRD_KAFKA_OFFSET_END};
  assert_int_equal(mrd_kafka_consumer_assign(c, &tp, 1), 0);
  assert_int_equal(mrd_kafka_producer_wake_fd(p, fds[1]), 0);
  assert_int_equal(mrd_kafka_consumer_wake_fd(c, fds[1]), 0);
  mrd_kafka_msg m;
  while (mrd_kafka_consume(c, 0, &m) == 0) mrd_kafka_msg_release(&m); /* start empty */
  while (wait_wake(fds[0], 0) > 0) {
  }
  char key[80];
  snprintf(key, sizeof key, "wake-%s", run_id);
  assert_int_equal(mrd_kafka_produce(p, TOPIC, part, key, strlen(key), "w", 1, NULL), 0);
  /* no timer, no blocking poll: the fd says when to look, until both arrived */
  int64_t t0 = itest_now_ms();
  bool reported = false, consumed = false;
  while (!(reported && consumed) && itest_now_ms() - t0 < 10000) {
    if (wait_wake(fds[0], 10000) == 0) break;
    if (mrd_kafka_producer_poll(p, 0) > 0) reported = d.count == 1;
    while (mrd_kafka_consume(c, 0, &m) == 0) {
      consumed = m.key_len == strlen(key) && memcmp(m.key, key, m.key_len) == 0;
      mrd_kafka_msg_release(&m);
    }
  }
  assert_true(reported);
  assert_int_equal(d.errors, 0);
  assert_true(consumed);
  /* turned off: nothing more is written */
  assert_int_equal(mrd_kafka_producer_wake_fd(p, -1), 0);
  assert_int_equal(mrd_kafka_consumer_wake_fd(c, -1), 0);
  while (wait_wake(fds[0], 0) > 0) { /* wakes written before it was turned off */
  }
  assert_int_equal(mrd_kafka_produce(p, TOPIC, part, key, strlen(key), "x", 1, NULL), 0);
  assert_int_equal(mrd_kafka_flush(p, 10000), 0);
  next_msg(c, 10000, &m);
  mrd_kafka_msg_release(&m);
  assert_int_equal(wait_wake(fds[0], 200), 0);
  assert_int_equal(mrd_kafka_producer_wake_fd(NULL, fds[1]), MRD_EINVAL);
  mrd_kafka_consumer_free(c);
  mrd_kafka_producer_free(p);
  close(fds[0]);
  close(fds[1]);
}

static void test_kafka_unreachable_cluster_fails_ping(void **state) {
  (void)state;
  char brokers[64];
  snprintf(brokers, sizeof brokers, "127.0.0.1:%d", itest_free_port());
  mrd_kafka_producer *p = NULL;
  assert_int_equal(mrd_kafka_producer_new(brokers, NULL, &p, NULL, 0), 0);
  int rc = mrd_kafka_producer_ping(p, 500);
  assert_true(rc == MRD_ECONN || rc == MRD_ETIMEDOUT);
  assert_true(strlen(mrd_kafka_producer_errstr(p)) > 0);
  mrd_kafka_producer_free(p);
}

int main(void) {
  mrd_log_init("test_kafka_adapter"); /* MERIDIAN_LOG_LEVEL=debug with KDEBUG to trace */
  snprintf(run_id, sizeof run_id, "%d-%lld", (int)getpid(), (long long)time(NULL));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kafka_produce_to_explicit_partitions_and_read_back),
      cmocka_unit_test(test_kafka_consumer_from_end_sees_only_new_messages),
      cmocka_unit_test(test_kafka_uncommitted_message_is_seen_again_after_restart),
      cmocka_unit_test(test_kafka_full_local_queue_is_a_distinct_error),
      cmocka_unit_test(test_kafka_bad_partition_and_settings_are_errors),
      cmocka_unit_test(test_kafka_partition_count_from_metadata_or_an_error),
      cmocka_unit_test(test_kafka_offsets_since_bound_a_read_of_recent_messages),
      cmocka_unit_test(test_kafka_narrow_since_skips_old_messages),
      cmocka_unit_test(test_kafka_wake_fd_signals_reports_and_messages),
      cmocka_unit_test(test_kafka_unreachable_cluster_fails_ping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
