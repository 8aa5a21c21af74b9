/*
 * trips_io.c: meridian-trips' adapters: every partition of dispatch-events (static
 * assignment from the group's committed offsets), one PostgreSQL transaction per batch of
 * events (trips.h has the statements and why replays change nothing), offsets committed
 * only after that transaction committed, the trip's route, ETA and fare from the road
 * graph snapshot when it is configured, and /healthz /readyz /metrics. An event that
 * cannot be recorded (it does not decode, lacks trip fields, or the database refuses it
 * for itself: a constraint, a bad value) is found by tsvc_apply and parked by tsvc_park
 * in dispatch-events-dlq (mrd/dlq.h), whose delivery is awaited before the batch's offsets
 * are committed past it; main.c decides with mrd_retry_decide.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "geo/ch.h"
#include "geo/snapshot.h"
#include "mrd/clock.h"
#include "mrd/log.h"
#include "mrd/proto.h"
#include "service.h"
#include "trips.h"

static int ready(void *ud, char *reason, size_t cap) {
  tsvc *s = ud;
  if (mrd_pg_ping(s->pg) != 0)
    return snprintf(reason, cap, "postgresql: %s", mrd_pg_errstr(s->pg)), 1;
  if (mrd_kafka_consumer_ping(s->consumer, 500) != 0)
    return snprintf(reason, cap, "kafka unreachable"), 1;
  return 0;
}

static void on_dlq_delivery(void *ud, void *msg_opaque, int err, const char *errstr,
                            int32_t partition, int64_t offset) {
  (void)msg_opaque;
  (void)partition;
  (void)offset;
  tsvc *s = ud;
  if (err) {
    s->dlq_failed++;
    mrd_log_warn("dlq_delivery_failed", "err=%s", errstr ? errstr : "?");
  } else {
    s->dlq_delivered++;
  }
}

int tsvc_open(tsvc *s, tsvc_config *cfg) {
  memset(s, 0, sizeof *s);
  s->cfg = cfg;
  if (mrd_metrics_new(&s->reg)) return -1;
  static const double lat[] = {MRD_BUCKETS_LATENCY_S};
  int rc = 0;
  rc |= mrd_metrics_counter(s->reg, "meridian_trips_events_total",
                            "events recorded (new rows in trip_events)", NULL, &s->events);
  rc |= mrd_metrics_counter(s->reg, "meridian_trips_duplicates_total",
                            "events already recorded (replays), ignored", NULL, &s->duplicates);
  rc |= mrd_metrics_counter(s->reg, "meridian_trips_bad_messages_total",
                            "payloads that failed to decode or lack trip fields", NULL, &s->bad);
  rc |= mrd_metrics_counter(s->reg, "meridian_trips_rejections_skipped_total",
                            "COMMAND_REJECTED events (not part of a trip)", NULL,
                            &s->rejected_skipped);
  rc |=
      mrd_metrics_counter(s->reg, "meridian_trips_db_failures_total",
                          "transactions that failed (retried with backoff)", NULL, &s->db_failures);
  rc |= mrd_metrics_counter(s->reg, "meridian_trips_batches_total", "transactions committed", NULL,
                            &s->batches);
  rc |= mrd_metrics_counter(s->reg, "meridian_trips_events_fenced_total",
                            "events of a stale lease generation (a fenced dispatch process's "
                            "late output), not recorded",
                            NULL, &s->fenced);
  rc |= mrd_metrics_histogram(s->reg, "meridian_trips_batch_seconds", "time to record one batch",
                              NULL, lat, sizeof lat / sizeof lat[0], &s->batch_seconds);
  rc |= mrd_metrics_gauge(s->reg, "meridian_trips_pg_up", "1 while PostgreSQL answers", NULL,
                          &s->pg_up);
  rc |= mrd_dlq_metrics(s->reg, "trips", s->dlq);
  if (rc) return -1;
  s->health = (mrd_health){ready, s, s->reg};
  if (mrd_admin_start(cfg->admin_addr, cfg->admin_port, &s->health, &s->admin) != 0) {
    mrd_log_error("admin", "port=%d err=%s", cfg->admin_port, "cannot listen");
    return -1;
  }
  if (cfg->graph_path && cfg->graph_path[0]) {
    geo_err e = geo_snapshot_load(cfg->graph_path, &s->graph);
    if (e != GEO_OK || geo_route_state_new(s->graph, &s->route) != GEO_OK) {
      mrd_log_error("graph", "path=%s err=%s", cfg->graph_path, geo_strerror(e));
      return -1;
    }
  }
  char err[512];
  if (cfg->tariff_path && cfg->tariff_path[0]) {
    if (mrd_tariff_load(cfg->tariff_path, &s->tariff, err, sizeof err) != 0) {
      mrd_log_error("tariff", "err=\"%s\"", err);
      return -1;
    }
    s->has_tariff = true;
  }
  if (mrd_pg_new(cfg->pg_dsn, NULL, &s->pg) != 0) return -1;
  mrd_kafka_consumer_opts co = MRD_KAFKA_CONSUMER_OPTS_DEFAULT;
  co.group_id = cfg->group;
  co.fetch_wait_max_ms = cfg->kafka_fetch_wait_ms;
  if (mrd_kafka_consumer_new(cfg->kafka_brokers, &co, &s->consumer, err, sizeof err) != 0) {
    mrd_log_error("kafka_consumer", "err=%s", err);
    return -1;
  }
  mrd_kafka_producer_opts po = MRD_KAFKA_PRODUCER_OPTS_DEFAULT;
  po.on_delivery = on_dlq_delivery;
  po.ud = s;
  po.message_timeout_ms = 10000;
  if (mrd_kafka_producer_new(cfg->kafka_brokers, &po, &s->producer, err, sizeof err) != 0) {
    mrd_log_error("kafka_producer", "err=%s", err);
    return -1;
  }
  mrd_kafka_tp *tps = calloc((size_t)cfg->partitions, sizeof *tps);
  s->batch = calloc((size_t)cfg->batch_max, sizeof *s->batch);
  if (!tps || !s->batch) {
    free(tps);
    return -1;
  }
  for (int i = 0; i < cfg->partitions; i++)
    tps[i] = (mrd_kafka_tp){MRD_TOPIC_DISPATCH_EVENTS, i, MRD_KAFKA_OFFSET_STORED};
  rc = mrd_kafka_consumer_assign(s->consumer, tps, (size_t)cfg->partitions);
  free(tps);
  if (rc != 0) {
    mrd_log_error("kafka_assign", "err=%s", mrd_kafka_consumer_errstr(s->consumer));
    return -1;
  }
  mrd_log_info("trips_open", "partitions=%d group=%s graph=%s", cfg->partitions, cfg->group,
               s->graph ? cfg->graph_path : "none");
  return 0;
}

int tsvc_poll(tsvc *s, int wait_ms) {
  int got = 0;
  while (s->n_batch < s->cfg->batch_max) {
    mrd_kafka_msg m;
    int rc = mrd_kafka_consume(s->consumer, got == 0 ? wait_ms : 0, &m);
    if (rc == MRD_EAGAIN) break;
    if (rc != 0) {
      mrd_log_warn("kafka_consume", "err=%s", mrd_kafka_consumer_errstr(s->consumer));
      break;
    }
    tsvc_msg *b = &s->batch[s->n_batch];
    memset(b, 0, sizeof *b);
    b->bytes = malloc(m.key_len + m.value_len + 1);
    if (!b->bytes) { /* not taken: read again after a restart (nothing committed past it) */
      mrd_kafka_msg_release(&m);
      mrd_log_error("out_of_memory", "partition=%d offset=%lld", (int)m.partition,
                    (long long)m.offset);
      break;
    }
    s->n_batch++;
    if (m.key_len) memcpy(b->bytes, m.key, m.key_len);
    if (m.value_len) memcpy(b->bytes + m.key_len, m.value, m.value_len);
    b->key_len = m.key_len;
    b->value_len = m.value_len;
    b->partition = m.partition;
    b->offset = m.offset;
    b->ok = mrd_dispatch_event_decode(m.value, m.value_len, &b->ev) == 0;
    mrd_kafka_msg_release(&m);
    got++;
  }
  return got;
}

/* The failure of event i (or of the transaction, i = -1) from the database's error. */
static int failed(tsvc *s, int i) {
  s->fail_at = i;
  s->fail = mrd_failure_of_sqlstate(mrd_pg_sqlstate(s->pg), !mrd_pg_connected(s->pg));
  snprintf(s->fail_err, sizeof s->fail_err, "%s", mrd_pg_errstr(s->pg));
  return -1;
}

/* The highest generation recorded per shard, as the last committed batch left it. */
static int fence_load(tsvc *s) {
  PGresult *res = NULL;
  if (mrd_pg_exec(s->pg, &res, "SELECT shard, generation FROM dispatch_generations", 0, NULL) != 0)
    return -1;
  memset(&s->fence, 0, sizeof s->fence);
  for (int i = 0; i < PQntuples(res); i++) {
    unsigned long sh = strtoul(PQgetvalue(res, i, 0), NULL, 10);
    if (sh < MRD_SHARD_COUNT) s->fence.highest[sh] = strtoull(PQgetvalue(res, i, 1), NULL, 10);
  }
  PQclear(res);
  s->fence_loaded = true;
  return 0;
}

/* Save the shards whose highest generation this batch raised (inside its transaction). */
static int fence_save(tsvc *s, const mrd_fence *before) {
  for (int sh = 0; sh < MRD_SHARD_COUNT; sh++) {
    if (s->fence.highest[sh] == before->highest[sh]) continue;
    char shard[12], gen[24];
    snprintf(shard, sizeof shard, "%d", sh);
    snprintf(gen, sizeof gen, "%llu", (unsigned long long)s->fence.highest[sh]);
    const char *p[] = {shard, gen};
    if (mrd_pg_exec(s->pg, NULL,
                    "INSERT INTO dispatch_generations (shard, generation) "
                    "VALUES ($1::integer, $2::bigint) ON CONFLICT (shard) DO UPDATE SET "
                    "generation = GREATEST(dispatch_generations.generation, EXCLUDED.generation), "
                    "seen_at = now()",
                    2, p) != 0)
      return -1;
  }
  return 0;
}

int tsvc_apply(tsvc *s) {
  double t0 = mrd_mono_s();
  s->fail_at = -1;
  s->fail_err[0] = '\0';
  /* what cannot be recorded whatever the database says fails before it is asked */
  for (int i = 0; i < s->n_batch; i++) {
    tsvc_msg *m = &s->batch[i];
    trp_row row;
    if (m->parked) continue;
    /* (out of memory, TRP_NOMEM, is not the event's fault: it fails below and is retried) */
    if (!m->ok || trp_map_event(&m->ev, &row) == TRP_INCOMPLETE) {
      s->fail_at = i;
      s->fail = m->ok ? MRD_FAIL_INVALID : MRD_FAIL_DECODE;
      snprintf(s->fail_err, sizeof s->fail_err, "%s",
               m->ok ? "the event lacks trip fields (trip id, seq, rider, request, pickup, "
                       "drop-off, status)"
                     : "the payload is not a DispatchEvent");
      return -1;
    }
  }
  if (!s->fence_loaded && fence_load(s) != 0) {
    failed(s, -1);
    goto fail;
  }
  mrd_fence before = s->fence; /* a rolled back batch decides the same way when retried */
  if (mrd_pg_begin(s->pg) != 0) {
    failed(s, -1);
    goto fail;
  }
  uint64_t added = 0, dup = 0, skipped = 0, fenced = 0;
  for (int i = 0; i < s->n_batch; i++) {
    tsvc_msg *m = &s->batch[i];
    if (m->parked) continue;
    if (!mrd_fence_admit(&s->fence, m->ev.shard, m->ev.generation)) {
      fenced++;
      mrd_log_warn("event_fenced", "trip=%s seq=%llu shard=%u generation=%llu highest=%llu",
                   m->ev.trip_id, (unsigned long long)m->ev.seq, m->ev.shard,
                   (unsigned long long)m->ev.generation,
                   (unsigned long long)s->fence.highest[m->ev.shard]);
      continue;
    }
    int rc = trp_record_event_priced(s->pg, &m->ev, s->graph, s->route,
                                     s->has_tariff ? &s->tariff : NULL);
    if (rc == TRP_RECORDED)
      added++;
    else if (rc == TRP_DUPLICATE)
      dup++;
    else if (rc == TRP_SKIPPED)
      skipped++;
    else {
      failed(s, i);
      goto fail;
    }
  }
  if (fence_save(s, &before) != 0 || mrd_pg_commit(s->pg) != 0) {
    failed(s, -1);
    goto fail;
  }
  mrd_counter_add(s->fenced, fenced);
  mrd_counter_add(s->events, added);
  mrd_counter_add(s->duplicates, dup);
  mrd_counter_add(s->rejected_skipped, skipped);
  mrd_counter_inc(s->batches);
  mrd_histogram_observe(s->batch_seconds, mrd_mono_s() - t0);
  mrd_gauge_set(s->pg_up, 1);
  return 0;
fail:
  if (s->fence_loaded) s->fence = before;
  mrd_counter_inc(s->db_failures);
  mrd_gauge_set(s->pg_up, mrd_pg_connected(s->pg) ? 1 : 0);
  if (mrd_pg_in_transaction(s->pg)) mrd_pg_rollback(s->pg);
  return -1;
}

int tsvc_park(tsvc *s, int i, int timeout_ms) {
  tsvc_msg *m = &s->batch[i];
  mrd_dlq_record r = {.consumer = "trips",
                      .reason = s->fail,
                      .error = s->fail_err,
                      .attempts = m->attempts,
                      .topic = MRD_TOPIC_DISPATCH_EVENTS,
                      .partition = m->partition,
                      .offset = m->offset,
                      .key = m->bytes,
                      .key_len = m->key_len,
                      .value = m->bytes + m->key_len,
                      .value_len = m->value_len};
  int before_ok = s->dlq_delivered, before_failed = s->dlq_failed;
  int rc = mrd_dlq_park(s->producer, &r, NULL);
  if (rc == 0) mrd_kafka_flush(s->producer, timeout_ms); /* serves the delivery report */
  if (rc != 0 || s->dlq_delivered == before_ok || s->dlq_failed != before_failed) {
    mrd_log_warn("dlq_park_failed", "partition=%d offset=%lld err=%s", (int)m->partition,
                 (long long)m->offset,
                 rc ? mrd_kafka_producer_errstr(s->producer) : "not delivered in time");
    return -1;
  }
  m->parked = true;
  if (s->fail == MRD_FAIL_DECODE || s->fail == MRD_FAIL_INVALID) mrd_counter_inc(s->bad);
  if (s->dlq[s->fail]) mrd_counter_inc(s->dlq[s->fail]);
  mrd_log_warn("event_parked",
               "topic=%s partition=%d offset=%lld trip=%s seq=%llu reason=%s attempts=%d "
               "dlq=%s err=\"%s\"",
               MRD_TOPIC_DISPATCH_EVENTS, (int)m->partition, (long long)m->offset,
               m->ok ? m->ev.trip_id : "-", m->ok ? (unsigned long long)m->ev.seq : 0ULL,
               mrd_failure_name(s->fail), m->attempts, MRD_TOPIC_DLQ, s->fail_err);
  return 0;
}

int tsvc_commit(tsvc *s) {
  /* the highest offset per partition of the batch, +1 */
  int rc = 0;
  for (int i = 0; i < s->n_batch; i++) {
    int32_t p = s->batch[i].partition;
    int64_t next = -1;
    bool first = true;
    for (int k = 0; k < s->n_batch; k++) {
      if (s->batch[k].partition != p) continue;
      if (k < i) first = false;
      if (s->batch[k].offset + 1 > next) next = s->batch[k].offset + 1;
    }
    if (!first) continue;
    if (mrd_kafka_commit(s->consumer, MRD_TOPIC_DISPATCH_EVENTS, p, next) != 0) {
      mrd_log_warn("kafka_commit", "partition=%d err=%s", (int)p,
                   mrd_kafka_consumer_errstr(s->consumer));
      rc = -1; /* at-least-once: the events come again and change nothing */
    }
  }
  for (int i = 0; i < s->n_batch; i++) free(s->batch[i].bytes);
  s->n_batch = 0;
  return rc;
}

void tsvc_close(tsvc *s) {
  for (int i = 0; s->batch && i < s->n_batch; i++) free(s->batch[i].bytes);
  mrd_kafka_consumer_free(s->consumer);
  if (s->producer) mrd_kafka_flush(s->producer, 2000);
  mrd_kafka_producer_free(s->producer);
  mrd_pg_free(s->pg);
  geo_route_state_free(s->route);
  geo_graph_free(s->graph);
  free(s->batch);
  mrd_admin_stop(s->admin);
  mrd_metrics_free(s->reg);
}
