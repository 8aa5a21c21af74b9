/*
 * kafka_io.c: the gateway's Kafka adapter, on services/common's mrd_kafka: an idempotent
 * producer whose delivery reports become client acks, and a consumer of every partition
 * of dispatch-events from the end (no consumer group: each replica sees every event and
 * delivers those of its own connections). librdkafka writes a byte to a pipe whose read
 * end is in the lws loop when either has work (mrd_kafka_*_wake_fd), and the loop then
 * polls both with a zero timeout: the loop never blocks on Kafka and never wakes for
 * nothing (a slow timer remains as a safety net). A full local queue is reported to the
 * caller (the client gets `unavailable`), never dropped silently. What this file adds to
 * mrd_kafka is the gateway's part: which connection and ref a delivery answers, and the
 * decoding and delivery of events. An event that does not decode is parked in
 * dispatch-events-dlq (mrd/dlq.h; every replica parks its own copy, with consumer=gateway)
 * and the stream goes on: the gateway commits no offsets (it reads from the end).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "mrd/clock.h"
#include "mrd/log.h"
#include "mrd/proto.h"
#include "ops_io.h"
#include "server.h"

/* What a delivery report needs: the connection (if still there), the ref to ack, the
 * topic for the log, and the enqueue time for the produce-latency metric. */
typedef struct pending {
  gw_conn_ref *ref;  /* the sender (NULL for none) */
  const char *topic; /* a string literal of the caller's */
  bool want_ack;     /* the message had a ref: ack it on delivery */
  int64_t t0_us;     /* enqueued, mrd_mono_us */
  char ack[MRD_REF_MAX + 1];
  /* a new ride request: its idempotency key, confirmed on delivery, forgotten if it fails */
  char undo_request_id[MRD_ID_MAX + 1], undo_rider[MRD_ID_MAX + 1];
  char undo_value[GW_REQ_VALUE_MAX];
} pending;

static void ref_release(gw_conn_ref *r) {
  if (r && --r->refs == 0) free(r);
}

static void on_delivery(void *ud, void *msg_opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset) {
  (void)offset;
  gw_server *s = ud;
  pending *p = msg_opaque;
  if (!p) return;
  mrd_histogram_observe(s->m.produce_latency, (double)(mrd_mono_us() - p->t0_us) / 1e6);
  gw_conn *c = p->ref ? p->ref->conn : NULL;
  if (err) {
    mrd_counter_inc(s->m.kafka_failed);
    if (p->undo_request_id[0]) {
      gw_request_key k = {p->undo_request_id, p->undo_rider, p->undo_value};
      gw_request_forget(s, &k);
    }
    mrd_log_warn("kafka_delivery_failed", "topic=%s partition=%d err=%s", p->topic, (int)partition,
                 errstr ? errstr : "?");
    if (c) {
      gw_error e;
      memset(&e, 0, sizeof e);
      gw_error_set(&e, GW_UNAVAILABLE, NULL, "the message could not be stored; try again");
      e.has_ref = p->want_ack;
      memcpy(e.ref, p->ack, sizeof e.ref);
      gw_send_error(s, c, &e);
    }
  } else {
    if (c && p->want_ack) {
      char buf[MRD_REF_MAX * 2 + 64];
      int n = gw_format_ack(p->ack, buf, sizeof buf);
      if (n > 0) gw_send(s, c, buf, (size_t)n, false);
    }
    if (p->undo_request_id[0]) { /* after the ack: a retry before it is answered the same */
      gw_request_key k = {p->undo_request_id, p->undo_rider, p->undo_value};
      gw_request_confirm(s, &k);
    }
  }
  ref_release(p->ref);
  free(p);
}

int gw_kafka_start(gw_server *s) {
  char err[512];
  mrd_kafka_producer_opts po = MRD_KAFKA_PRODUCER_OPTS_DEFAULT;
  po.linger_ms = s->cfg->linger_ms;
  po.queue_max_messages = s->cfg->queue_max;
  po.on_delivery = on_delivery;
  po.ud = s;
  /* Small produce requests pipelined on one connection (idempotence allows 5 in flight)
   * otherwise wait behind Nagle for the broker's delayed ACK (tens of ms): an ack's latency
   * is the point here (bench/README.md, gateway_bench). */
  static const char *const extra[] = {"socket.nagle.disable", "true", NULL};
  po.extra = extra;
  int rc = mrd_kafka_producer_new(s->cfg->brokers, &po, &s->producer, err, sizeof err);
  if (rc) {
    mrd_log_error("kafka_producer", "err=%s", err);
    return rc;
  }
  /* Commands on a producer (and connections) of their own: a request does not wait out the
   * locations' linger, nor sit behind their produce requests on a broker connection */
  po.linger_ms = s->cfg->commands_linger_ms;
  rc = mrd_kafka_producer_new(s->cfg->brokers, &po, &s->cmd_producer, err, sizeof err);
  if (rc) {
    mrd_log_error("kafka_producer", "which=commands err=%s", err);
    return rc;
  }
  /* Locations sent with a ref: the app waits for each ack, which the locations' linger (a
   * few ms, to batch the fire-and-forget pings) would delay; the same topic and partitions,
   * so a driver's acked and unacked pings may arrive out of order: dispatch keeps the
   * newest by seq (dsp_on_location) */
  po.linger_ms = s->cfg->acked_linger_ms;
  rc = mrd_kafka_producer_new(s->cfg->brokers, &po, &s->acked_producer, err, sizeof err);
  if (rc) {
    mrd_log_error("kafka_producer", "which=acked_locations err=%s", err);
    return rc;
  }
  mrd_kafka_consumer_opts co = MRD_KAFKA_CONSUMER_OPTS_DEFAULT;
  co.fetch_wait_max_ms = s->cfg->fetch_wait_ms;
  rc = mrd_kafka_consumer_new(s->cfg->brokers, &co, &s->consumer, err, sizeof err);
  if (rc) {
    mrd_log_error("kafka_consumer", "err=%s", err);
    return rc;
  }
  int32_t parts = 0;
  rc = mrd_kafka_consumer_partitions(s->consumer, MRD_TOPIC_DISPATCH_EVENTS, 10000, &parts);
  if (rc) {
    mrd_log_error("kafka_metadata", "topic=%s err=%s", MRD_TOPIC_DISPATCH_EVENTS,
                  mrd_kafka_consumer_errstr(s->consumer));
    return rc;
  }
  mrd_kafka_tp *tps = calloc((size_t)parts, sizeof *tps);
  if (!tps) {
    mrd_log_error("kafka_assign", "err=%s", mrd_strerror(MRD_ENOMEM));
    return MRD_ENOMEM;
  }
  /* Where every partition ends now, asked before the gateway listens: an app that connects
   * gets its trip's snapshot from Redis, and every event produced after this point reaches
   * it. With OFFSET_END librdkafka looks the ends up only when it starts fetching, which on
   * a busy machine came seconds after the gateway listened: a restarted gateway then skipped
   * the events of those seconds, after the snapshots of the apps that reconnected at once
   * (the chaos replay's riders that never learned their trip completed). */
  mrd_kafka_range *ends = calloc((size_t)parts, sizeof *ends);
  int erc = ends ? mrd_kafka_offsets_since(s->consumer, MRD_TOPIC_DISPATCH_EVENTS, parts,
                                           mrd_wall_ms(), 10000, ends)
                 : MRD_ENOMEM;
  if (erc != 0)
    mrd_log_warn("kafka_events_ends",
                 "err=%s action=\"reading from each partition's end as "
                 "the broker resolves it\"",
                 erc == MRD_EKAFKA ? mrd_kafka_consumer_errstr(s->consumer) : mrd_strerror(erc));
  for (int32_t i = 0; i < parts; i++)
    tps[i] =
        (mrd_kafka_tp){MRD_TOPIC_DISPATCH_EVENTS, i, erc == 0 ? ends[i].end : MRD_KAFKA_OFFSET_END};
  free(ends);
  rc = mrd_kafka_consumer_assign(s->consumer, tps, (size_t)parts);
  free(tps);
  if (rc) {
    mrd_log_error("kafka_assign", "err=%s", mrd_kafka_consumer_errstr(s->consumer));
    return rc;
  }
  if (pipe(s->wake_fd) != 0 || fcntl(s->wake_fd[0], F_SETFL, O_NONBLOCK) != 0 ||
      fcntl(s->wake_fd[1], F_SETFL, O_NONBLOCK) != 0 ||
      fcntl(s->wake_fd[0], F_SETFD, FD_CLOEXEC) != 0 ||
      fcntl(s->wake_fd[1], F_SETFD, FD_CLOEXEC) != 0) {
    rc = mrd_err_from_errno(errno); /* converted at the failing call */
    mrd_log_error("kafka_wake_pipe", "err=\"pipe failed: %s\"", strerror(errno));
    return rc;
  }
  mrd_kafka_producer_wake_fd(s->producer, s->wake_fd[1]);
  mrd_kafka_producer_wake_fd(s->cmd_producer, s->wake_fd[1]);
  mrd_kafka_producer_wake_fd(s->acked_producer, s->wake_fd[1]);
  mrd_kafka_consumer_wake_fd(s->consumer, s->wake_fd[1]);
  s->kafka_ready = true;
  mrd_log_info("kafka_ready",
               "events_partitions=%d linger_ms=%d commands_linger_ms=%d acked_linger_ms=%d "
               "fetch_wait_ms=%d",
               (int)parts, s->cfg->linger_ms, s->cfg->commands_linger_ms, s->cfg->acked_linger_ms,
               s->cfg->fetch_wait_ms);
  return 0;
}

bool gw_kafka_poll(gw_server *s) {
  int64_t now = gw_now_ms();
  if (now >= s->next_notify_ms) { /* the shard-map epoch: LISTEN/NOTIFY, not Kafka */
    s->next_notify_ms = now + GW_NOTIFY_MS;
    gw_epoch_notified(s);
  }
  if (s->producer) mrd_kafka_producer_poll(s->producer, 0); /* serves all queued reports */
  if (s->cmd_producer) mrd_kafka_producer_poll(s->cmd_producer, 0);
  if (s->acked_producer) mrd_kafka_producer_poll(s->acked_producer, 0);
  if (!s->consumer) return false;
  for (int i = 0; i < 512; i++) { /* bounded: the loop has other work */
    mrd_kafka_msg m;
    int rc = mrd_kafka_consume(s->consumer, 0, &m);
    if (rc == MRD_EAGAIN) return false;
    if (rc) {
      mrd_log_warn("kafka_consume", "err=%s", mrd_kafka_consumer_errstr(s->consumer));
      continue;
    }
    int64_t consumed_us = gw_now_us();
    mrd_counter_inc(s->m.events_in);
    mrd_dispatch_event ev;
    rc = mrd_dispatch_event_decode(m.value, m.value_len, &ev);
    /* the first answer to a traced request: its trace goes on with the rider's copy */
    if (rc == 0 && ev.trace.present && (ev.type == MRD_EV_OFFERED || ev.type == MRD_EV_NO_DRIVER) &&
        ev.trace.stamp_us[MRD_STAMP_DISPATCH_PRODUCED])
      ev.trace.stamp_us[MRD_STAMP_GATEWAY_CONSUMED] = consumed_us;
    if (rc) {
      mrd_counter_inc(s->m.events_bad);
      mrd_dlq_record r = {.consumer = "gateway",
                          .reason = MRD_FAIL_DECODE,
                          .error = mrd_proto_strerror(rc),
                          .attempts = 1,
                          .topic = MRD_TOPIC_DISPATCH_EVENTS,
                          .partition = m.partition,
                          .offset = m.offset,
                          .key = m.key,
                          .key_len = m.key_len,
                          .value = m.value,
                          .value_len = m.value_len};
      /* its delivery report comes back with a NULL opaque (nothing to ack) */
      int prc = mrd_dlq_park(s->producer, &r, NULL);
      if (prc == 0) mrd_counter_inc(s->m.dlq[MRD_FAIL_DECODE]);
      mrd_log_warn("event_parked", "topic=%s partition=%d offset=%lld reason=%s dlq=%s err=%s",
                   MRD_TOPIC_DISPATCH_EVENTS, (int)m.partition, (long long)m.offset,
                   mrd_failure_name(MRD_FAIL_DECODE), prc ? "not_queued" : MRD_TOPIC_DLQ,
                   mrd_proto_strerror(rc));
    } else if (!mrd_fence_admit(&s->fence, ev.shard, ev.generation)) {
      mrd_counter_inc(s->m.events_fenced); /* a fenced dispatch process's late event */
      mrd_log_warn("event_fenced", "shard=%u generation=%llu highest=%llu type=%s trip=%s",
                   ev.shard, (unsigned long long)ev.generation,
                   (unsigned long long)s->fence.highest[ev.shard < MRD_SHARD_COUNT ? ev.shard : 0],
                   mrd_event_type_name(ev.type), ev.trip_id);
    } else {
      gw_deliver_event(s, &ev);
      gw_ops_io_event(s, &ev);
    }
    mrd_kafka_msg_release(&m);
  }
  return true;
}

void gw_kafka_wake_off(gw_server *s) {
  mrd_kafka_producer_wake_fd(s->producer, -1);
  mrd_kafka_producer_wake_fd(s->cmd_producer, -1);
  mrd_kafka_producer_wake_fd(s->acked_producer, -1);
  mrd_kafka_consumer_wake_fd(s->consumer, -1);
}

static void producer_stop(mrd_kafka_producer **p, int timeout_ms) {
  if (!*p) return;
  if (mrd_kafka_flush(*p, timeout_ms))
    mrd_log_warn("kafka_flush", "err=%s left=%d", mrd_kafka_producer_errstr(*p),
                 mrd_kafka_outq_len(*p));
  mrd_kafka_producer_free(*p); /* what is left is reported as failed, then freed */
  *p = NULL;
}

void gw_kafka_stop(gw_server *s, int timeout_ms) {
  producer_stop(&s->cmd_producer, timeout_ms); /* the awaited first */
  producer_stop(&s->acked_producer, timeout_ms);
  producer_stop(&s->producer, timeout_ms);
  mrd_kafka_consumer_free(s->consumer);
  s->consumer = NULL;
  if (s->wake_fd[1] >= 0) close(s->wake_fd[1]);
  s->wake_fd[1] = -1;
}

int gw_kafka_produce(gw_server *s, gw_conn *c, const char *topic, int32_t partition,
                     const char *key, const void *payload, size_t len, const char *ack_ref,
                     const gw_request_key *forget) {
  pending *p = calloc(1, sizeof *p);
  if (!p) return MRD_ENOMEM;
  p->t0_us = mrd_mono_us();
  p->topic = topic;
  if (c && c->ref) {
    p->ref = c->ref;
    p->ref->refs++;
  }
  if (forget && forget->request_id && forget->rider && forget->value) {
    snprintf(p->undo_request_id, sizeof p->undo_request_id, "%s", forget->request_id);
    snprintf(p->undo_rider, sizeof p->undo_rider, "%s", forget->rider);
    snprintf(p->undo_value, sizeof p->undo_value, "%s", forget->value);
  }
  if (ack_ref) {
    p->want_ack = true;
    snprintf(p->ack, sizeof p->ack, "%s", ack_ref);
  }
  mrd_kafka_producer *pr = s->producer;
  if (strcmp(topic, MRD_TOPIC_DISPATCH_COMMANDS) == 0 && s->cmd_producer)
    pr = s->cmd_producer;
  else if (ack_ref && s->acked_producer)
    pr = s->acked_producer;
  int rc = mrd_kafka_produce(pr, topic, partition, key, strlen(key), payload, len, p);
  if (rc) {
    ref_release(p->ref);
    free(p);
    if (rc != MRD_EFULL) /* a full queue is the client's answer (unavailable), not news */
      mrd_log_warn("kafka_produce", "topic=%s partition=%d err=%s", topic, (int)partition,
                   mrd_kafka_producer_errstr(pr));
    return rc;
  }
  return 0;
}
