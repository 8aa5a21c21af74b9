/*
 * kafka_io.c: the gateway's Kafka adapter (librdkafka): an idempotent producer whose
 * delivery reports become client acks, and a consumer of every partition of
 * dispatch-events from the end (no consumer group: each replica sees every event and
 * delivers those of its own connections). Both are polled with a zero timeout from a timer
 * on the lws loop, so the loop never blocks on Kafka. A full local queue is reported to the
 * caller (the client gets `unavailable`), never dropped silently.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "mrd/log.h"
#include "server.h"

/* What a delivery report needs: the connection (if still there), the ref to ack, and the
 * enqueue time for the produce-latency metric. */
typedef struct pending {
  gw_conn_ref *ref; /* the sender (NULL for none) */
  bool want_ack;    /* the message had a ref: ack it on delivery */
  struct timespec t0;
  char ack[MRD_REF_MAX + 1];
} pending;

static double since_s(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void ref_release(gw_conn_ref *r) {
  if (r && --r->refs == 0) free(r);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
  (void)rk;
  gw_server *s = opaque;
  pending *p = msg->_private;
  if (!p) return;
  mrd_histogram_observe(s->m.produce_latency, since_s(&p->t0));
  gw_conn *c = p->ref ? p->ref->conn : NULL;
  if (msg->err) {
    mrd_counter_inc(s->m.kafka_failed);
    mrd_log_warn("kafka_delivery_failed", "topic=%s partition=%d err=%s",
                 rd_kafka_topic_name(msg->rkt), (int)msg->partition, rd_kafka_err2str(msg->err));
    if (c) {
      gw_error e;
      memset(&e, 0, sizeof e);
      gw_error_set(&e, GW_UNAVAILABLE, NULL, "the message could not be stored; try again");
      e.has_ref = p->want_ack;
      memcpy(e.ref, p->ack, sizeof e.ref);
      gw_send_error(s, c, &e);
    }
  } else if (c && p->want_ack) {
    char buf[MRD_REF_MAX * 2 + 64];
    int n = gw_format_ack(p->ack, buf, sizeof buf);
    if (n > 0) gw_send(s, c, buf, (size_t)n, false);
  }
  ref_release(p->ref);
  free(p);
}

static rd_kafka_conf_t *base_conf(gw_server *s, char *err, size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", s->cfg->brokers, err, errlen) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  mrd_log_hook_rdkafka(conf);
  rd_kafka_conf_set_opaque(conf, s);
  return conf;
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v) {
  char err[256];
  if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
    mrd_log_error("kafka_config", "key=%s value=%s err=%s", k, v, err);
    return -1;
  }
  return 0;
}

int gw_kafka_start(gw_server *s) {
  char err[512], num[32];
  rd_kafka_conf_t *pc = base_conf(s, err, sizeof err);
  if (!pc) {
    mrd_log_error("kafka_config", "err=%s", err);
    return -1;
  }
  snprintf(num, sizeof num, "%d", s->cfg->linger_ms);
  if (set(pc, "enable.idempotence", "true") || set(pc, "linger.ms", num)) goto fail_pc;
  snprintf(num, sizeof num, "%d", s->cfg->queue_max);
  if (set(pc, "queue.buffering.max.messages", num)) goto fail_pc;
  rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
  s->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
  if (!s->producer) {
    mrd_log_error("kafka_producer", "err=%s", err);
    return -1;
  }

  rd_kafka_conf_t *cc = base_conf(s, err, sizeof err);
  if (!cc) return -1;
  snprintf(num, sizeof num, "%d", s->cfg->fetch_wait_ms);
  if (set(cc, "fetch.wait.max.ms", num) || set(cc, "enable.auto.commit", "false") ||
      set(cc, "enable.partition.eof", "false")) {
    rd_kafka_conf_destroy(cc);
    return -1;
  }
  /* librdkafka wants a group.id for a consumer handle; with assign() it never joins it */
  snprintf(num, sizeof num, "gateway-%d", (int)getpid());
  if (set(cc, "group.id", num)) {
    rd_kafka_conf_destroy(cc);
    return -1;
  }
  s->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err);
  if (!s->consumer) {
    mrd_log_error("kafka_consumer", "err=%s", err);
    return -1;
  }
  rd_kafka_topic_t *t = rd_kafka_topic_new(s->consumer, "dispatch-events", NULL);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(s->consumer, 0, t, &md, 10000);
  rd_kafka_topic_destroy(t);
  if (e || !md || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1) {
    mrd_log_error("kafka_metadata", "topic=dispatch-events err=%s",
                  e ? rd_kafka_err2str(e)
                    : (md && md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "none"));
    if (md) rd_kafka_metadata_destroy(md);
    return -1;
  }
  int parts = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
  for (int i = 0; i < parts; i++)
    rd_kafka_topic_partition_list_add(l, "dispatch-events", i)->offset = RD_KAFKA_OFFSET_END;
  e = rd_kafka_assign(s->consumer, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e) {
    mrd_log_error("kafka_assign", "err=%s", rd_kafka_err2str(e));
    return -1;
  }
  s->kafka_ready = true;
  mrd_log_info("kafka_ready", "events_partitions=%d linger_ms=%d fetch_wait_ms=%d", parts,
               s->cfg->linger_ms, s->cfg->fetch_wait_ms);
  return 0;
fail_pc:
  rd_kafka_conf_destroy(pc);
  return -1;
}

void gw_kafka_poll(gw_server *s) {
  if (s->producer) rd_kafka_poll(s->producer, 0);
  if (!s->consumer) return;
  for (int i = 0; i < 512; i++) { /* bounded: the loop has other work */
    rd_kafka_message_t *m = rd_kafka_consumer_poll(s->consumer, 0);
    if (!m) break;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        mrd_log_warn("kafka_consume", "err=%s", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    mrd_counter_inc(s->m.events_in);
    mrd_dispatch_event ev;
    int rc = mrd_dispatch_event_decode(m->payload, m->len, &ev);
    if (rc) {
      mrd_counter_inc(s->m.events_bad);
      mrd_log_warn("bad_event", "partition=%d offset=%lld err=%s", (int)m->partition,
                   (long long)m->offset, mrd_proto_strerror(rc));
    } else {
      gw_deliver_event(s, &ev);
    }
    rd_kafka_message_destroy(m);
  }
}

void gw_kafka_stop(gw_server *s, int timeout_ms) {
  if (s->producer) {
    rd_kafka_resp_err_t e = rd_kafka_flush(s->producer, timeout_ms);
    if (e) mrd_log_warn("kafka_flush", "err=%s left=%d", rd_kafka_err2str(e), rd_kafka_outq_len(s->producer));
    rd_kafka_destroy(s->producer);
    s->producer = NULL;
  }
  if (s->consumer) {
    rd_kafka_consumer_close(s->consumer);
    rd_kafka_destroy(s->consumer);
    s->consumer = NULL;
  }
}

int gw_kafka_produce(gw_server *s, gw_conn *c, const char *topic, int32_t partition,
                     const char *key, const void *payload, size_t len, const char *ack_ref) {
  pending *p = calloc(1, sizeof *p);
  if (!p) return GW_INTERNAL;
  clock_gettime(CLOCK_MONOTONIC, &p->t0);
  if (c && c->ref) {
    p->ref = c->ref;
    p->ref->refs++;
  }
  if (ack_ref) {
    p->want_ack = true;
    snprintf(p->ack, sizeof p->ack, "%s", ack_ref);
  }
  rd_kafka_resp_err_t e = rd_kafka_producev(
      s->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)payload, len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
  if (e) {
    ref_release(p->ref);
    free(p);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) return GW_UNAVAILABLE;
    mrd_log_warn("kafka_produce", "topic=%s partition=%d err=%s", topic, (int)partition,
                 rd_kafka_err2str(e));
    return GW_INTERNAL;
  }
  return 0;
}
