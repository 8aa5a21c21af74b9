/*
 * trips_io.c: meridian-trips' adapters: every partition of dispatch-events (static
 * assignment from the group's committed offsets), one PostgreSQL transaction per batch of
 * events (trips.h has the statements and why replays change nothing), offsets committed
 * only after that transaction committed, the trip's route, ETA and fare from the road
 * graph snapshot when it is configured, and /healthz /readyz /metrics.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "geo/ch.h"
#include "geo/snapshot.h"
#include "mrd/log.h"
#include "service.h"
#include "trips.h"

#define TOPIC "dispatch-events"

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ready(void *ud, char *reason, size_t cap) {
  tsvc *s = ud;
  if (mrd_pg_ping(s->pg) != 0)
    return snprintf(reason, cap, "postgresql: %s", mrd_pg_errstr(s->pg)), 1;
  if (mrd_kafka_consumer_ping(s->consumer, 500) != 0)
    return snprintf(reason, cap, "kafka unreachable"), 1;
  return 0;
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
  mrd_kafka_tp *tps = calloc((size_t)cfg->partitions, sizeof *tps);
  s->batch = calloc((size_t)cfg->batch_max, sizeof *s->batch);
  if (!tps || !s->batch) {
    free(tps);
    return -1;
  }
  for (int i = 0; i < cfg->partitions; i++)
    tps[i] = (mrd_kafka_tp){TOPIC, i, MRD_KAFKA_OFFSET_STORED};
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
    tsvc_msg *b = &s->batch[s->n_batch++];
    b->partition = m.partition;
    b->offset = m.offset;
    b->ok = mrd_dispatch_event_decode(m.value, m.value_len, &b->ev) == 0;
    if (!b->ok) {
      mrd_counter_inc(s->bad);
      mrd_log_warn("bad_event", "partition=%d offset=%lld", (int)m.partition, (long long)m.offset);
    }
    mrd_kafka_msg_release(&m);
    got++;
  }
  return got;
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
  double t0 = mono_s();
  if (!s->fence_loaded && fence_load(s) != 0) goto fail;
  mrd_fence before = s->fence; /* a rolled back batch decides the same way when retried */
  if (mrd_pg_begin(s->pg) != 0) goto fail;
  uint64_t added = 0, dup = 0, skipped = 0, fenced = 0;
  for (int i = 0; i < s->n_batch; i++) {
    tsvc_msg *m = &s->batch[i];
    if (!m->ok) continue;
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
    else if (rc == TRP_INCOMPLETE) {
      mrd_counter_inc(s->bad);
      mrd_log_warn("event_incomplete", "trip=%s seq=%llu", m->ev.trip_id,
                   (unsigned long long)m->ev.seq);
    } else
      goto fail;
  }
  if (fence_save(s, &before) != 0) goto fail;
  if (mrd_pg_commit(s->pg) != 0) goto fail;
  mrd_counter_add(s->fenced, fenced);
  mrd_counter_add(s->events, added);
  mrd_counter_add(s->duplicates, dup);
  mrd_counter_add(s->rejected_skipped, skipped);
  mrd_counter_inc(s->batches);
  mrd_histogram_observe(s->batch_seconds, mono_s() - t0);
  mrd_gauge_set(s->pg_up, 1);
  return 0;
fail:
  if (s->fence_loaded) s->fence = before;
  mrd_counter_inc(s->db_failures);
  mrd_gauge_set(s->pg_up, mrd_pg_connected(s->pg) ? 1 : 0);
  mrd_log_warn("batch_failed", "events=%d err=%s sqlstate=%s", s->n_batch, mrd_pg_errstr(s->pg),
               mrd_pg_sqlstate(s->pg));
  if (mrd_pg_in_transaction(s->pg)) mrd_pg_rollback(s->pg);
  return -1;
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
    if (mrd_kafka_commit(s->consumer, TOPIC, p, next) != 0) {
      mrd_log_warn("kafka_commit", "partition=%d err=%s", (int)p,
                   mrd_kafka_consumer_errstr(s->consumer));
      rc = -1; /* at-least-once: the events come again and change nothing */
    }
  }
  s->n_batch = 0;
  return rc;
}

void tsvc_close(tsvc *s) {
  mrd_kafka_consumer_free(s->consumer);
  mrd_pg_free(s->pg);
  geo_route_state_free(s->route);
  geo_graph_free(s->graph);
  free(s->batch);
  mrd_admin_stop(s->admin);
  mrd_metrics_free(s->reg);
}
