/*
 * kafka.c: the librdkafka producer and consumer of kafka.h. Configuration is built in one
 * place per handle kind; every librdkafka error code is turned into an MRD_E* here and its
 * text kept on the handle. rd_kafka_produceva is used rather than the RD_KAFKA_V_* macros,
 * whose statement expressions -Wpedantic refuses.
 */
#include "mrd/kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrd/clock.h"
#include "mrd/log.h"

/* errstr comes first in both handles: the error callback gets the handle as its opaque
 * and writes the text through a char pointer to it. */
struct mrd_kafka_producer {
  char errstr[512];
  rd_kafka_t *rk;
  mrd_kafka_delivery_fn on_delivery;
  void *ud;
  rd_kafka_queue_t *wake_q; /* the main queue, while a wake fd is set */
};

/* How long assign may wait for a partition's end offset. */
#define ASSIGN_QUERY_TIMEOUT_MS 5000

struct mrd_kafka_consumer {
  char errstr[512];
  rd_kafka_t *rk;
  bool has_group;
  rd_kafka_queue_t *wake_q; /* the consumer queue, while a wake fd is set */
};

static void set_err(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *dst, size_t cap, const char *fmt, ...) {
  if (dst == NULL || cap == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, cap, fmt, ap);
  va_end(ap);
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err,
                    size_t err_len) {
  char e[256];
  if (rd_kafka_conf_set(conf, k, v, e, sizeof e) != RD_KAFKA_CONF_OK) {
    set_err(err, err_len, "kafka: %s=%s: %s", k, v, e);
    return MRD_EINVAL;
  }
  return 0;
}

static int conf_set_int(rd_kafka_conf_t *conf, const char *k, int v, char *err, size_t err_len) {
  char s[24];
  snprintf(s, sizeof s, "%d", v);
  return conf_set(conf, k, s, err, err_len);
}

static int conf_extra(rd_kafka_conf_t *conf, const char *const *extra, char *err, size_t err_len) {
  for (size_t i = 0; extra && extra[i]; i += 2) {
    if (extra[i + 1] == NULL) {
      set_err(err, err_len, "kafka: setting %s has no value", extra[i]);
      return MRD_EINVAL;
    }
    int rc = conf_set(conf, extra[i], extra[i + 1], err, err_len);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Errors librdkafka reports outside a call (broker down, fatal idempotence state). */
static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque) {
  char *errstr = opaque;
  rd_kafka_resp_err_t err = (rd_kafka_resp_err_t)code;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char fatal[256];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
    set_err(errstr, 512, "kafka fatal: %s: %s", rd_kafka_err2name(orig), fatal);
    mrd_log(MRD_LOG_ERROR, "kafka_fatal", "err=%s text=%s", rd_kafka_err2name(orig), fatal);
    return;
  }
  set_err(errstr, 512, "kafka: %s: %s", rd_kafka_err2name(err), reason);
  mrd_log(MRD_LOG_WARN, "kafka_error", "client=%s err=%s text=%s", rd_kafka_name(rk),
          rd_kafka_err2name(err), reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  mrd_kafka_producer *p = opaque;
  if (m->err) {
    set_err(p->errstr, sizeof p->errstr, "kafka delivery: %s", rd_kafka_err2str(m->err));
  }
  if (p->on_delivery)
    p->on_delivery(p->ud, m->_private, m->err ? MRD_EKAFKA : 0,
                   m->err ? rd_kafka_err2str(m->err) : NULL, m->partition, m->offset);
}

int mrd_kafka_producer_new(const char *brokers, const mrd_kafka_producer_opts *opts,
                           mrd_kafka_producer **out, char *err, size_t err_len) {
  if (err && err_len) err[0] = '\0';
  if (brokers == NULL || *brokers == '\0' || out == NULL) {
    set_err(err, err_len, "kafka: no brokers given");
    return MRD_EINVAL;
  }
  const mrd_kafka_producer_opts def = MRD_KAFKA_PRODUCER_OPTS_DEFAULT;
  if (opts == NULL) opts = &def;
  mrd_kafka_producer *p = calloc(1, sizeof *p);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (p == NULL || conf == NULL) {
    free(p);
    if (conf) rd_kafka_conf_destroy(conf);
    set_err(err, err_len, "kafka: out of memory");
    return MRD_ENOMEM;
  }
  p->on_delivery = opts->on_delivery;
  p->ud = opts->ud;
  int rc = conf_set(conf, "bootstrap.servers", brokers, err, err_len);
  if (rc == 0) rc = conf_set(conf, "enable.idempotence", "true", err, err_len);
  if (rc == 0) rc = conf_set(conf, "partitioner", "murmur2_random", err, err_len);
  if (rc == 0) rc = conf_set_int(conf, "linger.ms", opts->linger_ms, err, err_len);
  if (rc == 0)
    rc = conf_set_int(conf, "message.timeout.ms", opts->message_timeout_ms, err, err_len);
  if (rc == 0)
    rc = conf_set_int(conf, "queue.buffering.max.messages", opts->queue_max_messages, err, err_len);
  if (rc == 0) rc = conf_extra(conf, opts->extra, err, err_len);
  if (rc != 0) {
    rd_kafka_conf_destroy(conf);
    free(p);
    return rc;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_opaque(conf, p);
  mrd_log_hook_rdkafka(conf);
  char e[512];
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e); /* takes conf on success */
  if (p->rk == NULL) {
    rd_kafka_conf_destroy(conf);
    free(p);
    set_err(err, err_len, "kafka: %s", e);
    return MRD_EKAFKA;
  }
  *out = p;
  return 0;
}

void mrd_kafka_producer_free(mrd_kafka_producer *p) {
  if (p == NULL) return;
  mrd_kafka_producer_wake_fd(p, -1);
  rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(p->rk, 0); /* report the purged messages */
  rd_kafka_destroy(p->rk);
  free(p);
}

int mrd_kafka_produce(mrd_kafka_producer *p, const char *topic, int32_t partition, const void *key,
                      size_t key_len, const void *value, size_t value_len, void *msg_opaque) {
  return mrd_kafka_produce_headers(p, topic, partition, key, key_len, value, value_len, NULL, 0,
                                   msg_opaque);
}

int mrd_kafka_produce_headers(mrd_kafka_producer *p, const char *topic, int32_t partition,
                              const void *key, size_t key_len, const void *value, size_t value_len,
                              const mrd_kafka_header *headers, size_t n_headers, void *msg_opaque) {
  if (p == NULL || topic == NULL || *topic == '\0' || partition < MRD_KAFKA_PARTITION_ANY ||
      (value == NULL && value_len > 0) || (key == NULL && key_len > 0) ||
      (headers == NULL && n_headers > 0) || n_headers > MRD_KAFKA_HEADERS_MAX)
    return MRD_EINVAL;
  for (size_t i = 0; i < n_headers; i++)
    if (headers[i].name == NULL || *headers[i].name == '\0' ||
        (headers[i].value == NULL && headers[i].len > 0))
      return MRD_EINVAL;
  rd_kafka_vu_t vus[6 + MRD_KAFKA_HEADERS_MAX];
  size_t n = 0;
  for (size_t i = 0; i < n_headers; i++) { /* copied by librdkafka */
    vus[n].vtype = RD_KAFKA_VTYPE_HEADER;
    vus[n].u.header.name = headers[i].name;
    vus[n].u.header.val = headers[i].value;
    vus[n++].u.header.size = (ssize_t)headers[i].len;
  }
  vus[n].vtype = RD_KAFKA_VTYPE_TOPIC;
  vus[n++].u.cstr = topic;
  vus[n].vtype = RD_KAFKA_VTYPE_PARTITION;
  vus[n++].u.i32 = partition;
  vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vus[n++].u.i = RD_KAFKA_MSG_F_COPY;
  vus[n].vtype = RD_KAFKA_VTYPE_VALUE;
  vus[n].u.mem.ptr = (void *)(uintptr_t)value; /* copied: F_COPY */
  vus[n++].u.mem.size = value_len;
  if (key) {
    vus[n].vtype = RD_KAFKA_VTYPE_KEY;
    vus[n].u.mem.ptr = (void *)(uintptr_t)key;
    vus[n++].u.mem.size = key_len;
  }
  vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
  vus[n++].u.ptr = msg_opaque;
  rd_kafka_error_t *error = rd_kafka_produceva(p->rk, vus, n);
  if (error == NULL) return 0;
  rd_kafka_resp_err_t code = rd_kafka_error_code(error);
  set_err(p->errstr, sizeof p->errstr, "kafka produce %s/%d: %s", topic, (int)partition,
          rd_kafka_error_string(error));
  rd_kafka_error_destroy(error);
  return code == RD_KAFKA_RESP_ERR__QUEUE_FULL ? MRD_EFULL : MRD_EKAFKA;
}

int mrd_kafka_producer_poll(mrd_kafka_producer *p, int timeout_ms) {
  return p ? rd_kafka_poll(p->rk, timeout_ms) : 0;
}

int mrd_kafka_flush(mrd_kafka_producer *p, int timeout_ms) {
  if (p == NULL) return MRD_EINVAL;
  if (rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
  set_err(p->errstr, sizeof p->errstr, "kafka flush: %d messages undelivered after %d ms",
          rd_kafka_outq_len(p->rk), timeout_ms);
  return MRD_ETIMEDOUT;
}

int mrd_kafka_outq_len(mrd_kafka_producer *p) { return p ? rd_kafka_outq_len(p->rk) : 0; }

static int ping(rd_kafka_t *rk, int timeout_ms, char *errstr, size_t cap) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    int brokers = md->broker_cnt;
    rd_kafka_metadata_destroy(md);
    if (brokers > 0) return 0;
    set_err(errstr, cap, "kafka: metadata lists no brokers");
    return MRD_ECONN;
  }
  set_err(errstr, cap, "kafka metadata: %s", rd_kafka_err2str(err));
  return err == RD_KAFKA_RESP_ERR__TIMED_OUT ? MRD_ETIMEDOUT : MRD_ECONN;
}

/* Points queue's IO event at fd (or turns it off for fd < 0), keeping the queue handle
 * in *held while it is on. */
static void wake_fd(rd_kafka_queue_t *(*get)(rd_kafka_t *), rd_kafka_t *rk, rd_kafka_queue_t **held,
                    int fd) {
  if (fd < 0) {
    if (*held) {
      rd_kafka_queue_io_event_enable(*held, -1, NULL, 0);
      rd_kafka_queue_destroy(*held);
      *held = NULL;
    }
    return;
  }
  if (*held == NULL) *held = get(rk);
  static const char one = 1;
  rd_kafka_queue_io_event_enable(*held, fd, &one, 1);
}

int mrd_kafka_producer_wake_fd(mrd_kafka_producer *p, int fd) {
  if (p == NULL) return MRD_EINVAL;
  wake_fd(rd_kafka_queue_get_main, p->rk, &p->wake_q, fd);
  return 0;
}

int mrd_kafka_consumer_wake_fd(mrd_kafka_consumer *c, int fd) {
  if (c == NULL) return MRD_EINVAL;
  wake_fd(rd_kafka_queue_get_consumer, c->rk, &c->wake_q, fd);
  return 0;
}

int mrd_kafka_consumer_partitions(mrd_kafka_consumer *c, const char *topic, int timeout_ms,
                                  int32_t *count) {
  if (c == NULL || topic == NULL || *topic == '\0' || count == NULL) return MRD_EINVAL;
  rd_kafka_topic_t *t = rd_kafka_topic_new(c->rk, topic, NULL);
  if (t == NULL) {
    set_err(c->errstr, sizeof c->errstr, "kafka metadata %s: %s", topic,
            rd_kafka_err2str(rd_kafka_last_error()));
    return MRD_EKAFKA;
  }
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(c->rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err)
    err = md->topics[0].err;
  int rc = 0;
  if (err) {
    set_err(c->errstr, sizeof c->errstr, "kafka metadata %s: %s", topic, rd_kafka_err2str(err));
    rc = err == RD_KAFKA_RESP_ERR__TIMED_OUT ? MRD_ETIMEDOUT : MRD_EKAFKA;
  } else if (md->topic_cnt != 1 || md->topics[0].partition_cnt < 1) {
    set_err(c->errstr, sizeof c->errstr, "kafka metadata %s: no partitions", topic);
    rc = MRD_EKAFKA;
  } else {
    *count = md->topics[0].partition_cnt;
  }
  if (md) rd_kafka_metadata_destroy(md);
  return rc;
}

/* Offsets by time for every partition of out whose ask[] is set; the answers in got[]
 * (-1: none). */
static int offsets_for_time(mrd_kafka_consumer *c, const char *topic, int32_t n, const bool *ask,
                            int64_t ts_ms, int timeout_ms, int64_t *got) {
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
  if (list == NULL) return MRD_ENOMEM;
  for (int32_t p = 0; p < n; p++)
    if (ask[p]) rd_kafka_topic_partition_list_add(list, topic, p)->offset = ts_ms;
  int rc = 0;
  if (list->cnt > 0) {
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(c->rk, list, timeout_ms);
    for (int i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < list->cnt; i++) {
      err = list->elems[i].err;
      got[list->elems[i].partition] = list->elems[i].offset < 0 ? -1 : list->elems[i].offset;
    }
    if (err) {
      set_err(c->errstr, sizeof c->errstr, "kafka offsets for time %s: %s", topic,
              rd_kafka_err2str(err));
      rc = err == RD_KAFKA_RESP_ERR__TIMED_OUT ? MRD_ETIMEDOUT : MRD_EKAFKA;
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  return rc;
}

int mrd_kafka_offsets_since(mrd_kafka_consumer *c, const char *topic, int32_t n_partitions,
                            int64_t since_ms, int timeout_ms, mrd_kafka_range *out) {
  if (c == NULL || topic == NULL || *topic == '\0' || n_partitions < 1 || since_ms < 0 ||
      out == NULL)
    return MRD_EINVAL;
  bool *ask = calloc((size_t)n_partitions, sizeof *ask);
  int64_t *lo = calloc((size_t)n_partitions, sizeof *lo);
  int64_t *got = calloc((size_t)n_partitions, sizeof *got);
  int rc = ask && lo && got ? 0 : MRD_ENOMEM;
  for (int32_t p = 0; p < n_partitions && rc == 0; p++) {
    int64_t hi = 0;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(c->rk, topic, p, &lo[p], &hi, timeout_ms);
    if (err) {
      set_err(c->errstr, sizeof c->errstr, "kafka watermarks %s/%d: %s", topic, (int)p,
              rd_kafka_err2str(err));
      rc = err == RD_KAFKA_RESP_ERR__TIMED_OUT ? MRD_ETIMEDOUT : MRD_EKAFKA;
      break;
    }
    out[p] = (mrd_kafka_range){.start = hi, .end = hi, .exact = true};
    ask[p] = hi > lo[p]; /* an empty partition has nothing to look up */
  }
  if (rc == 0) rc = offsets_for_time(c, topic, n_partitions, ask, since_ms, timeout_ms, got);
  /* "none" on a non-empty partition: nothing that recent, or a broker without time lookup */
  for (int32_t p = 0; p < n_partitions && rc == 0; p++) {
    if (ask[p] && got[p] >= 0) out[p].start = got[p] < out[p].end ? got[p] : out[p].end;
    ask[p] = ask[p] && got[p] < 0;
  }
  if (rc == 0) rc = offsets_for_time(c, topic, n_partitions, ask, 0, timeout_ms, got);
  for (int32_t p = 0; p < n_partitions && rc == 0; p++)
    if (ask[p] && got[p] < 0) out[p] = (mrd_kafka_range){lo[p], out[p].end, false};
  free(ask);
  free(lo);
  free(got);
  return rc;
}

int mrd_kafka_narrow_since(mrd_kafka_consumer *c, const char *topic, int32_t n_partitions,
                           int64_t since_ms, int64_t slack, int round_ms, int max_rounds,
                           mrd_kafka_range *r) {
  if (c == NULL || topic == NULL || *topic == '\0' || n_partitions < 1 || r == NULL || slack < 1 ||
      round_ms < 1 || max_rounds < 0)
    return MRD_EINVAL;
  /* per partition: every message before lo is older than since_ms (as far as known); the
   * one at hi is not (or hi is the end); narrowing while hi - lo > 2 * slack */
  int64_t *lo = calloc((size_t)n_partitions, sizeof *lo);
  int64_t *hi = calloc((size_t)n_partitions, sizeof *hi);
  int64_t *mid = calloc((size_t)n_partitions, sizeof *mid);
  bool *active = calloc((size_t)n_partitions, sizeof *active);
  mrd_kafka_tp *tps = calloc((size_t)n_partitions, sizeof *tps);
  if (!lo || !hi || !mid || !active || !tps) {
    free(lo), free(hi), free(mid), free(active), free(tps);
    return MRD_ENOMEM;
  }
  for (int32_t p = 0; p < n_partitions; p++) {
    lo[p] = r[p].start;
    hi[p] = r[p].end;
    active[p] = !r[p].exact && hi[p] - lo[p] > 2 * slack;
  }
  int rounds = 0;
  while (rounds < max_rounds) {
    size_t k = 0;
    for (int32_t p = 0; p < n_partitions; p++) {
      if (active[p] && hi[p] - lo[p] <= 2 * slack) active[p] = false;
      if (!active[p]) continue;
      mid[p] = lo[p] + (hi[p] - lo[p]) / 2;
      tps[k++] = (mrd_kafka_tp){topic, p, mid[p]};
    }
    if (k == 0 || mrd_kafka_consumer_assign(c, tps, k) != 0) break;
    rounds++;
    size_t seen = 0;
    bool *got = calloc((size_t)n_partitions, sizeof *got);
    if (!got) break;
    int64_t t_end = mrd_mono_ms() + round_ms;
    while (seen < k && mrd_mono_ms() < t_end) {
      mrd_kafka_msg m;
      if (mrd_kafka_consume(c, 20, &m) != 0) continue;
      int32_t p = m.partition;
      if (p >= 0 && p < n_partitions && active[p] && !got[p] && m.offset == mid[p]) {
        got[p] = true;
        seen++;
        if (m.timestamp_ms >= 0 && m.timestamp_ms < since_ms)
          lo[p] = mid[p] + 1;
        else
          hi[p] = mid[p];
      }
      mrd_kafka_msg_release(&m);
    }
    for (int32_t p = 0; p < n_partitions; p++)
      if (active[p] && !got[p]) active[p] = false; /* no answer in time: leave it there */
    free(got);
  }
  /* lo is at most the first message not older than since_ms, less the slack to spare */
  for (int32_t p = 0; p < n_partitions; p++) {
    int64_t start = lo[p] - slack;
    if (start > r[p].start) r[p].start = start;
  }
  free(lo), free(hi), free(mid), free(active), free(tps);
  return rounds;
}

int mrd_kafka_producer_ping(mrd_kafka_producer *p, int timeout_ms) {
  return p ? ping(p->rk, timeout_ms, p->errstr, sizeof p->errstr) : MRD_EINVAL;
}

const char *mrd_kafka_producer_errstr(const mrd_kafka_producer *p) { return p ? p->errstr : ""; }

int mrd_kafka_consumer_new(const char *brokers, const mrd_kafka_consumer_opts *opts,
                           mrd_kafka_consumer **out, char *err, size_t err_len) {
  if (err && err_len) err[0] = '\0';
  if (brokers == NULL || *brokers == '\0' || out == NULL) {
    set_err(err, err_len, "kafka: no brokers given");
    return MRD_EINVAL;
  }
  const mrd_kafka_consumer_opts def = MRD_KAFKA_CONSUMER_OPTS_DEFAULT;
  if (opts == NULL) opts = &def;
  mrd_kafka_consumer *c = calloc(1, sizeof *c);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (c == NULL || conf == NULL) {
    free(c);
    if (conf) rd_kafka_conf_destroy(conf);
    set_err(err, err_len, "kafka: out of memory");
    return MRD_ENOMEM;
  }
  c->has_group = opts->group_id && *opts->group_id;
  int rc = conf_set(conf, "bootstrap.servers", brokers, err, err_len);
  if (rc == 0 && c->has_group) {
    rc = conf_set(conf, "group.id", opts->group_id, err, err_len);
  } else if (rc == 0) {
    /* rd_kafka_assign needs a group.id even to read; this one is private and never used
     * for commits (has_group is false), and it is never joined (no subscribe). */
    static atomic_uint seq;
    char g[64];
    snprintf(g, sizeof g, "meridian-nogroup-%d-%u", (int)getpid(), atomic_fetch_add(&seq, 1));
    rc = conf_set(conf, "group.id", g, err, err_len);
  }
  if (rc == 0) rc = conf_set(conf, "enable.auto.commit", "false", err, err_len);
  if (rc == 0) rc = conf_set(conf, "enable.auto.offset.store", "false", err, err_len);
  if (rc == 0) rc = conf_set(conf, "enable.partition.eof", "false", err, err_len);
  if (rc == 0)
    rc = conf_set(conf, "auto.offset.reset", opts->reset_to_beginning ? "earliest" : "latest", err,
                  err_len);
  if (rc == 0) rc = conf_set_int(conf, "fetch.wait.max.ms", opts->fetch_wait_max_ms, err, err_len);
  if (rc == 0) rc = conf_extra(conf, opts->extra, err, err_len);
  if (rc != 0) {
    rd_kafka_conf_destroy(conf);
    free(c);
    return rc;
  }
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_opaque(conf, c);
  mrd_log_hook_rdkafka(conf);
  char e[512];
  c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
  if (c->rk == NULL) {
    rd_kafka_conf_destroy(conf);
    free(c);
    set_err(err, err_len, "kafka: %s", e);
    return MRD_EKAFKA;
  }
  rd_kafka_poll_set_consumer(c->rk); /* errors and logs come through consumer_poll */
  *out = c;
  return 0;
}

void mrd_kafka_consumer_free(mrd_kafka_consumer *c) {
  if (c == NULL) return;
  mrd_kafka_consumer_wake_fd(c, -1);
  rd_kafka_consumer_close(c->rk);
  rd_kafka_destroy(c->rk);
  free(c);
}

int mrd_kafka_consumer_assign(mrd_kafka_consumer *c, const mrd_kafka_tp *tps, size_t n) {
  if (c == NULL || tps == NULL || n == 0 || n > INT32_MAX) return MRD_EINVAL;
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
  if (list == NULL) return MRD_ENOMEM;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (tps[i].topic == NULL || tps[i].partition < 0 ||
        (tps[i].start < 0 && tps[i].start != MRD_KAFKA_OFFSET_BEGINNING &&
         tps[i].start != MRD_KAFKA_OFFSET_END && tps[i].start != MRD_KAFKA_OFFSET_STORED) ||
        (tps[i].start == MRD_KAFKA_OFFSET_STORED && !c->has_group)) {
      set_err(c->errstr, sizeof c->errstr, "kafka assign: bad partition or start for %s/%d",
              tps[i].topic ? tps[i].topic : "(null)", (int)tps[i].partition);
      rc = MRD_EINVAL;
      break;
    }
    int64_t off = tps[i].start == MRD_KAFKA_OFFSET_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING
                  : tps[i].start == MRD_KAFKA_OFFSET_STORED  ? RD_KAFKA_OFFSET_STORED
                                                             : tps[i].start;
    if (tps[i].start == MRD_KAFKA_OFFSET_END) {
      /* A logical END is resolved by librdkafka whenever its offset query runs (up to a
       * second later when metadata is not there yet), and messages produced meanwhile
       * would be skipped. Resolving it here makes "after assign returns" exact. */
      int64_t lo = 0, hi = 0;
      rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
          c->rk, tps[i].topic, tps[i].partition, &lo, &hi, ASSIGN_QUERY_TIMEOUT_MS);
      if (err) {
        set_err(c->errstr, sizeof c->errstr, "kafka assign %s/%d: end offset: %s", tps[i].topic,
                (int)tps[i].partition, rd_kafka_err2str(err));
        rc = err == RD_KAFKA_RESP_ERR__TIMED_OUT ? MRD_ETIMEDOUT : MRD_EKAFKA;
        break;
      }
      off = hi;
    }
    rd_kafka_topic_partition_list_add(list, tps[i].topic, tps[i].partition)->offset = off;
  }
  if (rc == 0) {
    rd_kafka_resp_err_t err = rd_kafka_assign(c->rk, list);
    if (err) {
      set_err(c->errstr, sizeof c->errstr, "kafka assign: %s", rd_kafka_err2str(err));
      rc = MRD_EKAFKA;
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  return rc;
}

int mrd_kafka_consume(mrd_kafka_consumer *c, int timeout_ms, mrd_kafka_msg *msg) {
  if (c == NULL || msg == NULL) return MRD_EINVAL;
  memset(msg, 0, sizeof *msg);
  rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
  if (m == NULL) return MRD_EAGAIN;
  if (m->err) {
    int rc = MRD_EKAFKA;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
      rc = MRD_EAGAIN;
    else
      set_err(c->errstr, sizeof c->errstr, "kafka consume %s/%d: %s",
              m->rkt ? rd_kafka_topic_name(m->rkt) : "-", (int)m->partition,
              rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    return rc;
  }
  msg->topic = rd_kafka_topic_name(m->rkt);
  msg->partition = m->partition;
  msg->offset = m->offset;
  msg->key = m->key;
  msg->key_len = m->key_len;
  msg->value = m->payload;
  msg->value_len = m->len;
  rd_kafka_timestamp_type_t tstype;
  msg->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
  msg->raw_ = m;
  return 0;
}

void mrd_kafka_msg_release(mrd_kafka_msg *msg) {
  if (msg == NULL) return;
  if (msg->raw_) rd_kafka_message_destroy(msg->raw_);
  memset(msg, 0, sizeof *msg);
}

int mrd_kafka_commit(mrd_kafka_consumer *c, const char *topic, int32_t partition,
                     int64_t next_offset) {
  if (c == NULL || topic == NULL || partition < 0 || next_offset < 0) return MRD_EINVAL;
  if (!c->has_group) {
    set_err(c->errstr, sizeof c->errstr, "kafka commit: the consumer has no group.id");
    return MRD_ESTATE;
  }
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
  if (list == NULL) return MRD_ENOMEM;
  rd_kafka_topic_partition_list_add(list, topic, partition)->offset = next_offset;
  rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, list, 0 /* synchronous */);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = list->elems[0].err;
  rd_kafka_topic_partition_list_destroy(list);
  if (err) {
    set_err(c->errstr, sizeof c->errstr, "kafka commit %s/%d@%lld: %s", topic, (int)partition,
            (long long)next_offset, rd_kafka_err2str(err));
    return MRD_EKAFKA;
  }
  return 0;
}

int mrd_kafka_commit_msg(mrd_kafka_consumer *c, const mrd_kafka_msg *msg) {
  if (msg == NULL || msg->topic == NULL) return MRD_EINVAL;
  return mrd_kafka_commit(c, msg->topic, msg->partition, msg->offset + 1);
}

int mrd_kafka_committed(mrd_kafka_consumer *c, const char *topic, int32_t partition, int timeout_ms,
                        int64_t *next_offset) {
  if (c == NULL || topic == NULL || partition < 0 || next_offset == NULL) return MRD_EINVAL;
  if (!c->has_group) return MRD_ESTATE;
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
  if (list == NULL) return MRD_ENOMEM;
  rd_kafka_topic_partition_list_add(list, topic, partition);
  rd_kafka_resp_err_t err = rd_kafka_committed(c->rk, list, timeout_ms);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = list->elems[0].err;
  int64_t off = list->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(list);
  if (err) {
    set_err(c->errstr, sizeof c->errstr, "kafka committed %s/%d: %s", topic, (int)partition,
            rd_kafka_err2str(err));
    return MRD_EKAFKA;
  }
  *next_offset = off < 0 ? MRD_KAFKA_OFFSET_NONE : off;
  return 0;
}

int mrd_kafka_consumer_ping(mrd_kafka_consumer *c, int timeout_ms) {
  return c ? ping(c->rk, timeout_ms, c->errstr, sizeof c->errstr) : MRD_EINVAL;
}

const char *mrd_kafka_consumer_errstr(const mrd_kafka_consumer *c) { return c ? c->errstr : ""; }

int mrd_kafka_msg_header(const mrd_kafka_msg *msg, const char *name, const void **value,
                         size_t *len) {
  if (msg == NULL || msg->raw_ == NULL || name == NULL || value == NULL || len == NULL)
    return MRD_EINVAL;
  rd_kafka_headers_t *hdrs = NULL;
  if (rd_kafka_message_headers(msg->raw_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || hdrs == NULL)
    return MRD_ENOTFOUND;
  const void *v = NULL;
  size_t n = 0;
  if (rd_kafka_header_get_last(hdrs, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return MRD_ENOTFOUND;
  *value = v;
  *len = v ? n : 0;
  return 0;
}
