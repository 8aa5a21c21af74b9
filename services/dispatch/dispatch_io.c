/*
 * dispatch_io.c: the adapters of meridian-dispatch around the pure core: the road graph
 * snapshot, Kafka in (driver-locations and dispatch-commands, partition = shard, static
 * assignment from committed offsets) and out (dispatch-events, idempotent producer, key =
 * trip id, partition by key hash as the gateway and schemas/kafka expect), Redis (claims,
 * trip snapshots, active-trip pointers, the shard's live-trip set, hot cells), the
 * shard's lease (take over as holder, step down when lost: docs/shards.md), and the
 * metrics. The shard map is epoch_io.c's. Not the loop (main.c) and not the
 * domain (dispatch_core).
 *
 * Durability order of one batch: events produced and their delivery reports awaited ->
 * snapshots and pointers written to Redis -> consumed offsets committed, each step only
 * while the lease still lets this process act (a paused holder produces and commits
 * nothing once it may have lost its shard). A ping or
 * command that does not decode is parked in dispatch-events-dlq (mrd/dlq.h) with the
 * events, so its delivery too is awaited before the offset is committed past it. Claims are written
 * synchronously while the core runs. Redis keys: docs/dispatch.md ("Redis keys").
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch_codec.h"
#include "handoff.h"
#include "geo/ch.h"
#include "geo/snapshot.h"
#include "mrd/clock.h"
#include "mrd/log.h"
#include "mrd/proto.h"
#include "service.h"

#define POINTER_TTL_S "21600" /* active-trip pointers and live snapshots: a safety net */

/* ---------------------------------------------------------------- metrics, readiness */

static int metrics_init(dsvc *s) {
  dsvc_metrics *m = &s->m;
  if (mrd_metrics_new(&m->reg)) return -1;
  static const double lat[] = {0.0001, 0.00025, MRD_BUCKETS_LATENCY_S};
  int rc = 0;
#define C(name, help, dst) rc |= mrd_metrics_counter(m->reg, name, help, NULL, dst)
#define G(name, help, dst) rc |= mrd_metrics_gauge(m->reg, name, help, NULL, dst)
  rc |= mrd_metrics_histogram(m->reg, "meridian_dispatch_match_seconds",
                              "match latency: request consumed -> first offer produced", NULL, lat,
                              sizeof lat / sizeof lat[0], &m->match_latency);
  C("meridian_dispatch_requests_total", "ride requests (new trips)", &m->requests);
  C("meridian_dispatch_offers_total", "offers made", &m->offers);
  C("meridian_dispatch_accepts_total", "offers accepted (trips matched)", &m->accepts);
  C("meridian_dispatch_declines_total", "offers declined", &m->declines);
  C("meridian_dispatch_expiries_total", "offers expired", &m->expiries);
  C("meridian_dispatch_cancelled_total", "trips cancelled", &m->cancelled);
  C("meridian_dispatch_completed_total", "trips completed", &m->completed);
  for (int i = 0; i < DSP_NO_DRIVER_REASON_COUNT; i++)
    rc |= mrd_metrics_counter(
        m->reg, "meridian_dispatch_no_driver_total", "trips ended with no driver, by reason",
        (const char *[]){"reason", dsp_no_driver_reason_name((dsp_no_driver_reason)i), NULL},
        &m->no_driver[i]);
  C("meridian_dispatch_claims_contended_total", "claims lost to another owner",
    &m->claims_contended);
  C("meridian_dispatch_claim_errors_total", "claim store failures", &m->claim_errors);
  C("meridian_dispatch_claims_fallback_total", "claim operations answered from memory (Redis down)",
    &m->claims_fallback);
  C("meridian_dispatch_pings_total", "driver pings consumed", &m->pings);
  C("meridian_dispatch_pings_stale_total", "pings older than the last seen (ignored)",
    &m->pings_stale);
  C("meridian_dispatch_commands_total", "commands consumed", &m->commands);
  C("meridian_dispatch_bad_messages_total", "Kafka messages that failed to decode",
    &m->bad_messages);
  rc |= mrd_dlq_metrics(m->reg, "dispatch", m->dlq);
  C("meridian_dispatch_rejected_total", "commands refused (COMMAND_REJECTED)", &m->rejected);
  C("meridian_dispatch_commands_repeated_total",
    "accepts and trip steps already applied (re-sent, or read again after a restart): "
    "answered as done",
    &m->commands_repeated);
  C("meridian_dispatch_events_total", "events produced to dispatch-events", &m->events_produced);
  C("meridian_dispatch_delivery_failed_total", "events Kafka failed to deliver",
    &m->delivery_failed);
  C("meridian_dispatch_redis_failures_total", "Redis batches that failed (snapshots, hot cells)",
    &m->redis_failures);
  C("meridian_dispatch_snapshots_total", "trip snapshots written to Redis", &m->snapshots_written);
  C("meridian_dispatch_hot_commands_total", "hot-cell commands written to Redis", &m->hot_commands);
  C("meridian_dispatch_restored_total",
    "live trips restored at start (from dispatch-events; Redis for older ones)", &m->restored);
  G("meridian_dispatch_index_size", "drivers in the spatial index", &m->index_size);
  G("meridian_dispatch_drivers", "driver records", &m->drivers);
  G("meridian_dispatch_trips_live", "live trips", &m->trips_live);
  G("meridian_dispatch_hot_shown", "drivers published as available", &m->hot_shown);
  G("meridian_dispatch_redis_up", "1 while Redis answers", &m->redis_up);
  G("meridian_dispatch_epoch", "shard-map epoch", &m->epoch);
  C("meridian_dispatch_claims_fenced_total",
    "claim operations Redis refused: a newer lease generation holds the shard", &m->claims_fenced);
  C("meridian_dispatch_outputs_dropped_total",
    "events and replies not produced because the lease was lost (the next holder redoes them)",
    &m->outputs_dropped);
  C("meridian_dispatch_outputs_lost_total",
    "events, replies and snapshots the core could not queue (out of memory): lost, not produced",
    &m->outputs_lost);
  char sh[12];
  snprintf(sh, sizeof sh, "%d", s->cfg->shard);
  const char *lab[] = {"shard", sh, NULL};
  rc |= mrd_metrics_gauge(m->reg, "meridian_shard_lease_held",
                          "1 while this process holds its shard's lease and may act", lab,
                          &m->lease_held);
  rc |= mrd_metrics_gauge(m->reg, "meridian_shard_lease_generation",
                          "generation of the lease held (or last held; 0: never)", lab,
                          &m->lease_generation);
  rc |= mrd_metrics_counter(m->reg, "meridian_shard_lease_lost_total",
                            "leases this process held and lost (fenced: another took over)", lab,
                            &m->lease_lost);
  rc |= mrd_metrics_counter(m->reg, "meridian_shard_lease_acquired_total",
                            "leases this process acquired (became the shard's holder)", lab,
                            &m->lease_acquired);
  static const double store_s[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5};
  rc |= mrd_metrics_histogram(m->reg, "meridian_shard_lease_store_seconds",
                              "a lease statement on PostgreSQL (acquire or renew), run off the "
                              "loop on the lease's own thread and connection",
                              lab, store_s, sizeof store_s / sizeof store_s[0], &m->lease_store_s);
  static const double wait_s[] = {0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005,
                                  0.01,   0.02,   0.05,   0.1,   0.5};
  static const char *const parts[] = {"delivery", "snapshots", "commit"};
  for (int i = 0; i < 3; i++)
    rc |= mrd_metrics_histogram(
        m->reg, "meridian_dispatch_flush_wait_seconds",
        "time a flush keeps the loop from consuming: the events' delivery awaited (durable "
        "before anything follows), the trip snapshots' Redis batch, the offsets' commits",
        (const char *[]){"part", parts[i], NULL}, wait_s, sizeof wait_s / sizeof wait_s[0],
        &m->flush_wait[i]);
#undef C
#undef G
  return rc ? -1 : 0;
}

/* A new span of the request's trace for the event dispatch writes (ids: unique, not secret). */
static void trace_span(dsvc *s, mrd_trace *t) {
  uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL); /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  uint8_t rnd[8];
  for (int k = 0; k < 8; k++) rnd[k] = (uint8_t)(z >> (8 * k));
  mrd_traceparent_child(&t->tp, rnd, &t->tp);
}

static int ready(void *ud, char *reason, size_t cap) {
  dsvc *s = ud;
  if (!s->graph) return snprintf(reason, cap, "graph not loaded"), 1;
  /* a standby is ready once its index is warm: it is doing its job (waiting to take over) */
  if (s->lease.role == DSP_LEASE_STANDBY) {
    if (mrd_wall_ms() - s->warm_since_ms < s->cfg->warmup_ms)
      return snprintf(reason, cap, "standby warming up (reading pings)"), 1;
  } else if (!s->ready) {
    return snprintf(reason, cap, "warming up (restoring trips, reading pings)"), 1;
  }
  if (mrd_kafka_producer_ping(s->producer, 500) != 0)
    return snprintf(reason, cap, "kafka unreachable"), 1;
  /* Redis is not required: matching goes on with claims in memory */
  return 0;
}

void dsvc_metrics_sync(dsvc *s) {
  dsp_stats st;
  dsp_stats_get(s->shard, &st);
  dsp_stats *o = &s->last_stats;
  if (st.outputs_lost > o->outputs_lost)
    mrd_log_error("outputs_lost", "n=%llu total=%llu (out of memory: events not produced)",
                  (unsigned long long)(st.outputs_lost - o->outputs_lost),
                  (unsigned long long)st.outputs_lost);
#define D(field, c) mrd_counter_add(s->m.c, st.field - o->field)
  D(outputs_lost, outputs_lost);
  D(requests, requests);
  D(offers, offers);
  D(matched, accepts);
  D(offers_declined, declines);
  D(offers_expired, expiries);
  D(cancelled, cancelled);
  D(completed, completed);
  D(claims_lost, claims_contended);
  D(claim_errors, claim_errors);
  D(pings, pings);
  D(pings_stale, pings_stale);
  D(rejected, rejected);
  D(commands_repeated, commands_repeated);
#undef D
  *o = st;
  mrd_gauge_set(s->m.index_size, (double)st.drivers_indexed);
  mrd_gauge_set(s->m.drivers, (double)st.drivers);
  mrd_gauge_set(s->m.trips_live, (double)st.trips_live);
  mrd_gauge_set(s->m.hot_shown, (double)dsp_hot_shown(s->hot));
  mrd_gauge_set(s->m.redis_up, mrd_redis_connected(s->redis) ? 1 : 0);
  mrd_gauge_set(s->m.epoch, (double)s->epoch);
  mrd_gauge_set(s->m.lease_held, dsvc_may_act(s) ? 1 : 0);
  mrd_gauge_set(s->m.lease_generation, (double)s->lease.generation);
  dsp_claims_redis_stats cs;
  dsp_claims_redis_stats_get(s->claims, &cs);
  mrd_counter_add(s->m.claims_fenced, cs.fenced - s->last_fenced);
  s->last_fenced = cs.fenced;
  mrd_counter_add(s->m.claims_fallback, cs.fallback_ops - s->last_fallback);
  if (cs.fallback_ops > s->last_fallback)
    mrd_log_warn("claims_in_memory", "ops=%llu redis_failures=%llu",
                 (unsigned long long)(cs.fallback_ops - s->last_fallback),
                 (unsigned long long)cs.redis_failures);
  s->last_fallback = cs.fallback_ops;
}

/* ---------------------------------------------------------------- open */

static void on_delivery(void *ud, void *opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset) {
  dsvc *s = ud;
  (void)opaque;
  (void)partition;
  (void)offset;
  s->in_flight--;
  if (err) {
    s->delivery_failures++;
    mrd_counter_inc(s->m.delivery_failed);
    mrd_log_error("event_delivery_failed", "err=%s", errstr ? errstr : "?");
  }
}

/* The shard's core and what mirrors it (the index, the hot cells), new and empty: at
 * start, and again when a holder steps down (its trips are the next holder's now). */
static int core_new(dsvc *s) {
  const dsvc_config *cfg = s->cfg;
  if (dsp_qt_index_new(&s->index) != DSP_OK)
    return mrd_log_error("index", "err=%s", "out of memory"), -1;
  char sup[64], dem[64];
  snprintf(sup, sizeof sup, "hot:supply:%d", cfg->shard);
  snprintf(dem, sizeof dem, "hot:demand:%d", cfg->shard);
  char upd[64];
  snprintf(upd, sizeof upd, "hot:updates:%d", cfg->shard);
  dsp_hot_config hc = {.geo_key = cfg->nearby_key,
                       .cell_prefix = "hot:drivers:",
                       .supply_key = sup,
                       .demand_key = dem,
                       .updates_key = upd,
                       .cell_precision = 5,
                       .count_precision = 6,
                       .demand_window_ms = 60000,
                       .ttl_ms = cfg->driver_ttl_ms,
                       .move_m = 5};
  if (dsp_hot_new(&hc, &s->hot) != 0) return mrd_log_error("hotcells", "err=%s", "bad config"), -1;
  dsp_config dc;
  dsp_config_default(&dc);
  dc.shard = (uint32_t)cfg->shard;
  dc.epoch = s->epoch;
  dc.incarnation = (uint64_t)mrd_wall_ms(); /* ids unique across restarts and step-downs */
  dc.offer_timeout_ms = cfg->offer_timeout_ms;
  dc.driver_ttl_ms = cfg->driver_ttl_ms;
  dc.k_candidates = (uint32_t)cfg->k_candidates;
  dc.max_offers = (uint32_t)cfg->max_offers;
  dc.max_eta_s = cfg->max_eta_s;
  dc.predict_max_age_ms = cfg->predict_max_age_ms;
  dc.batch.enabled = cfg->batch;
  dc.batch.window_ms = cfg->batch_window_ms;
  dsp_index ix = dsp_qt_index_iface(s->index);
  dsp_router rt = dsp_graph_router_iface(s->router);
  dsp_claims cl = dsp_claims_redis_iface(s->claims);
  int rc = dsp_shard_new(&dc, &ix, &rt, &cl, &s->shard);
  if (rc != DSP_OK) return mrd_log_error("shard", "err=%s", dsp_strerror(rc)), -1;
  s->last_stats = (dsp_stats){0};
  return 0;
}

static void pending_clear(dsvc *s) {
  for (size_t i = 0; i < s->pending.cap; i++)
    if (s->pending.slots[i].key) free(s->pending.slots[i].value);
  dsp_strmap_close(&s->pending);
  dsp_strmap_init(&s->pending);
  s->n_dirty = 0;
}

static void core_free(dsvc *s) {
  dsp_shard_free(s->shard);
  s->shard = NULL;
  dsp_hot_free(s->hot);
  s->hot = NULL;
  dsp_qt_index_free(s->index);
  s->index = NULL;
}

int dsvc_open(dsvc *s, dsvc_config *cfg) {
  memset(s, 0, sizeof *s);
  s->cfg = cfg;
  mrd_shardmap_init(&s->hmap);
  s->since_ms = mrd_wall_ms();
  s->rng = (uint64_t)mrd_wall_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)cfg->shard;
  if (gethostname(s->host, sizeof s->host - 1) != 0) snprintf(s->host, sizeof s->host, "?");
  s->loc_next = s->cmd_next = -1;
  s->loc_committed = s->cmd_committed = -1;
  dsp_strmap_init(&s->pending);
  snprintf(s->live_key, sizeof s->live_key, "dispatch:live:%d", cfg->shard);
  snprintf(s->fence_key, sizeof s->fence_key, "dispatch:fence:%d", cfg->shard);
  dsp_lease_config lc = {.ttl_ms = cfg->lease_ttl_ms,
                         .renew_ms = cfg->lease_renew_ms,
                         .retry_ms = cfg->lease_retry_ms,
                         .margin_ms = cfg->lease_margin_ms};
  if (dsp_lease_init(&s->lease, &lc) != DSP_OK)
    return mrd_log_error("config", "err=%s", "lease: ttl must exceed margin + renew"), -1;
  if (metrics_init(s)) return mrd_log_error("metrics", "err=%s", "registration failed"), -1;
  s->health = (mrd_health){ready, s, s->m.reg};
  if (mrd_admin_start(cfg->admin_addr, cfg->admin_port, &s->health, &s->admin) != 0) {
    mrd_log_error("admin", "addr=%s port=%d err=%s", cfg->admin_addr, cfg->admin_port,
                  "cannot listen");
    return -1;
  }
  double t0 = mrd_mono_s();
  geo_err ge = geo_snapshot_load(cfg->graph_path, &s->graph);
  if (ge != GEO_OK) {
    mrd_log_error("graph", "path=%s err=%s", cfg->graph_path, geo_strerror(ge));
    return -1;
  }
  bool ch = geo_ch_present(s->graph);
  if (dsp_graph_router_new(s->graph, cfg->snap_max_m, ch, &s->router) != DSP_OK)
    return mrd_log_error("router", "err=%s", "out of memory"), -1;
  mrd_log_info("graph_loaded", "path=%s ch=%d ms=%.1f", cfg->graph_path, (int)ch,
               (mrd_mono_s() - t0) * 1e3);

  if (mrd_redis_new(cfg->redis_url, NULL, &s->redis) != 0)
    return mrd_log_error("redis", "url=%s err=%s", cfg->redis_url, "bad URL"), -1;
  if (dsp_claims_redis_new(s->redis, NULL, &s->claims) != DSP_OK) return -1;
  if (mrd_pg_new(cfg->pg_dsn, NULL, &s->pg) != 0 || dsvc_epoch_load(s) != 0) return -1;
  dsvc_epoch_listen(s);
  char host[128] = "unknown";
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  if (dsp_lease_worker_start(cfg->pg_dsn, cfg->shard, host, (int)getpid(), cfg->lease_ttl_ms,
                             &s->lease_store) != DSP_OK)
    return mrd_log_error("lease_store", "err=%s", "cannot start the lease's thread"), -1;
  if (core_new(s) != 0) return -1;
  if (dsvc_pricing_open(&s->pricing,
                        &(dsvc_pricing_config){cfg->tariff_path, cfg->surge, cfg->surge_interval_ms,
                                               cfg->snap_max_m, cfg->shard},
                        s->graph, s->m.reg) != 0)
    return -1;

  char err[512];
  mrd_kafka_producer_opts po = MRD_KAFKA_PRODUCER_OPTS_DEFAULT;
  po.linger_ms = cfg->kafka_linger_ms;
  po.on_delivery = on_delivery;
  po.ud = s;
  if (mrd_kafka_producer_new(cfg->kafka_brokers, &po, &s->producer, err, sizeof err) != 0)
    return mrd_log_error("kafka_producer", "err=%s", err), -1;
  char group[128];
  snprintf(group, sizeof group, "%s%d", cfg->group_prefix, cfg->shard);
  mrd_kafka_consumer_opts co = MRD_KAFKA_CONSUMER_OPTS_DEFAULT;
  co.group_id = group;
  co.fetch_wait_max_ms = cfg->kafka_fetch_wait_ms;
  if (mrd_kafka_consumer_new(cfg->kafka_brokers, &co, &s->consumer, err, sizeof err) != 0)
    return mrd_log_error("kafka_consumer", "err=%s", err), -1;
  s->warm_since_ms = mrd_wall_ms();
  dsp_warmup_init(&s->warm, s->warm_since_ms, s->cfg->warmup_ms);
  mrd_log_info("shard_open", "shard=%d epoch=%llu host=%s pid=%d group=%s", cfg->shard,
               (unsigned long long)s->epoch, host, (int)getpid(), group);
  return 0;
}

int dsvc_assign(dsvc *s, bool with_commands) {
  mrd_kafka_tp tps[2] = {{MRD_TOPIC_DRIVER_LOCATIONS, s->cfg->shard, MRD_KAFKA_OFFSET_STORED},
                         {MRD_TOPIC_DISPATCH_COMMANDS, s->cfg->shard, MRD_KAFKA_OFFSET_STORED}};
  /* A re-assignment restarts a partition at its committed offset: commit what was read */
  if (s->loc_next >= 0) tps[0].start = s->loc_next;
  int rc = mrd_kafka_consumer_assign(s->consumer, tps, with_commands ? 2 : 1);
  if (rc != 0) {
    mrd_log_error("kafka_assign", "err=%s", mrd_kafka_consumer_errstr(s->consumer));
    return -1;
  }
  s->commands_assigned = with_commands;
  mrd_log_info("assigned", "shard=%d commands=%d", s->cfg->shard, (int)with_commands);
  return 0;
}

/* ---------------------------------------------------------------- restore */

static dsvc_pending *pending_for(dsvc *s, const char *trip_id);
static void write_snapshots(dsvc *s);

/* One trip's latest state found at start: its latest event read back from dispatch-events
 * (or, for a trip older than the window, its Redis snapshot), encoded. */
typedef struct restore_rec {
  char trip_id[DSP_ID_MAX + 1];
  uint64_t seq;
  uint64_t generation; /* of the process that made it: breaks a tie of seq */
  int64_t ts_ms;
  bool from_redis; /* the snapshot, not an event */
  bool redis_live; /* listed in dispatch:live:<shard> */
  size_t len;
  uint8_t bytes[MRD_PROTO_MAX_SIZE];
} restore_rec;

static restore_rec *rec_for(dsp_strmap *m, const char *trip_id) {
  restore_rec *r = dsp_strmap_get(m, trip_id);
  if (r) return r;
  r = calloc(1, sizeof *r);
  if (!r) return NULL;
  snprintf(r->trip_id, sizeof r->trip_id, "%s", trip_id);
  if (dsp_strmap_put(m, r->trip_id, r) != 0) {
    free(r);
    return NULL;
  }
  return r;
}

/* One message of dispatch-events read back: kept in m when it is an event of one of this
 * shard's trips (its key, the trip id, names the shard: only those are decoded) from
 * since_ms on, and the latest of its trip so far. */
static void keep_event(dsvc *s, int64_t since_ms, const mrd_kafka_msg *msg, dsp_strmap *m) {
  char key[DSP_ID_MAX + 1];
  uint32_t sh = 0;
  mrd_dispatch_event ev;
  if (msg->timestamp_ms < since_ms || !msg->key || msg->key_len >= sizeof key ||
      msg->value_len > MRD_PROTO_MAX_SIZE)
    return;
  memcpy(key, msg->key, msg->key_len);
  key[msg->key_len] = '\0';
  if (!mrd_trip_id_shard(key, &sh) || sh != (uint32_t)s->cfg->shard ||
      mrd_dispatch_event_decode(msg->value, msg->value_len, &ev) != 0 ||
      ev.type == MRD_EV_COMMAND_REJECTED || ev.shard != (uint32_t)s->cfg->shard ||
      strcmp(ev.trip_id, key) != 0)
    return;
  restore_rec *rr = dsp_strmap_get(m, ev.trip_id);
  /* the highest seq; on a tie the newer holder's (a fenced process may have made the same
   * seq late), then the later one */
  if (rr && !(ev.seq > rr->seq || (ev.seq == rr->seq && ev.generation >= rr->generation))) return;
  rr = rr ? rr : rec_for(m, ev.trip_id);
  if (!rr) return;
  rr->seq = ev.seq;
  rr->generation = ev.generation;
  rr->ts_ms = ev.ts_ms;
  rr->len = msg->value_len;
  memcpy(rr->bytes, msg->value, msg->value_len);
}

/* A broker that cannot look offsets up by time (devkafka's mock) makes the read below
 * start at the oldest message kept: every event since the cluster started. Bisect those
 * partitions on message timestamps first (mrd_kafka_narrow_since), from a bound 60 s
 * earlier (timestamps are the producers', nearly but not strictly in offset order), so
 * that a restart reads about the window's events however long the cluster has run. Best
 * effort: on any failure the read starts where it did. */
static void narrow(dsvc *s, int32_t n, int64_t since_ms, mrd_kafka_range *r) {
  bool any = false;
  for (int32_t p = 0; p < n; p++) any |= !r[p].exact && r[p].end > r[p].start;
  if (!any) return;
  static const char *const small_fetch[] = {"max.partition.fetch.bytes", "1024", NULL};
  mrd_kafka_consumer_opts co = MRD_KAFKA_CONSUMER_OPTS_DEFAULT;
  co.fetch_wait_max_ms = 10;
  co.extra = small_fetch;
  char err[512];
  mrd_kafka_consumer *c = NULL;
  if (mrd_kafka_consumer_new(s->cfg->kafka_brokers, &co, &c, err, sizeof err) != 0) {
    mrd_log_warn("restore_narrow", "err=%s", err);
    return;
  }
  int64_t before = 0, after = 0;
  for (int32_t p = 0; p < n; p++) before += r[p].end - r[p].start;
  double t0 = mrd_mono_s();
  int rounds =
      mrd_kafka_narrow_since(c, MRD_TOPIC_DISPATCH_EVENTS, n, since_ms - 60000, 8, 2000, 24, r);
  for (int32_t p = 0; p < n; p++) after += r[p].end - r[p].start;
  mrd_log_info("restore_narrow", "rounds=%d messages_before=%lld messages_after=%lld ms=%.0f",
               rounds, (long long)before, (long long)after, (mrd_mono_s() - t0) * 1e3);
  mrd_kafka_consumer_free(c);
}

/* Reads dispatch-events back, every partition, from the first message at or after since_ms
 * up to the ends captured here, and keeps in m the latest event (highest seq; the later
 * one on a tie) of each of this shard's trips. Returns 0 when every partition was read to
 * its end, -1 otherwise (logged; m may hold part of it). */
static int read_events(dsvc *s, int64_t since_ms, dsp_strmap *m, long *n_msgs) {
  char err[512];
  mrd_kafka_consumer_opts co = MRD_KAFKA_CONSUMER_OPTS_DEFAULT;
  co.fetch_wait_max_ms = s->cfg->kafka_fetch_wait_ms;
  mrd_kafka_consumer *c = NULL;
  if (mrd_kafka_consumer_new(s->cfg->kafka_brokers, &co, &c, err, sizeof err) != 0) {
    mrd_log_warn("restore_read", "err=%s", err);
    return -1;
  }
  int32_t n = 0;
  mrd_kafka_range *r = NULL;
  mrd_kafka_tp *tps = NULL;
  bool *done = NULL;
  int rc = -1;
  if (mrd_kafka_consumer_partitions(c, MRD_TOPIC_DISPATCH_EVENTS, 5000, &n) != 0) goto out;
  r = calloc((size_t)n, sizeof *r);
  tps = calloc((size_t)n, sizeof *tps);
  done = calloc((size_t)n, sizeof *done);
  if (!r || !tps || !done) goto out;
  if (mrd_kafka_offsets_since(c, MRD_TOPIC_DISPATCH_EVENTS, n, since_ms, 5000, r) != 0) goto out;
  narrow(s, n, since_ms, r);
  size_t n_tp = 0, left = 0;
  bool exact = true;
  for (int32_t p = 0; p < n; p++) {
    done[p] = r[p].start >= r[p].end;
    if (!done[p]) {
      tps[n_tp++] = (mrd_kafka_tp){MRD_TOPIC_DISPATCH_EVENTS, p, r[p].start};
      left++;
    }
    exact &= r[p].exact;
  }
  mrd_log_info("restore_read", "partitions=%d to_read=%zu since_ms=%lld exact=%d", (int)n, left,
               (long long)since_ms, (int)exact);
  if (n_tp > 0 && mrd_kafka_consumer_assign(c, tps, n_tp) != 0) goto out;
  double deadline = mrd_mono_s() + (double)s->cfg->restore_timeout_ms / 1e3;
  while (left > 0) {
    if (mrd_mono_s() > deadline) {
      mrd_log_warn("restore_read", "err=%s partitions_left=%zu", "timed out", left);
      goto out;
    }
    mrd_kafka_msg msg;
    int mrc = mrd_kafka_consume(c, 100, &msg);
    if (mrc != 0) continue;
    int32_t p = msg.partition;
    if (p >= 0 && p < n && !done[p] && msg.offset < r[p].end) {
      if (msg.offset >= r[p].end - 1) {
        done[p] = true;
        left--;
      }
      (*n_msgs)++;
      keep_event(s, since_ms, &msg, m);
    }
    mrd_kafka_msg_release(&msg);
  }
  rc = 0;
out:
  if (rc != 0 && mrd_kafka_consumer_errstr(c)[0])
    mrd_log_warn("restore_read", "err=%s", mrd_kafka_consumer_errstr(c));
  free(r);
  free(tps);
  free(done);
  mrd_kafka_consumer_free(c);
  return rc;
}

/* Queue the Redis write of a trip's state as read at start (the snapshot the gateway reads,
 * the live set, the pointers), as dsvc_flush does for a new event. */
static void rewrite_snapshot(dsvc *s, const restore_rec *rr, const mrd_dispatch_event *ev,
                             bool live, int64_t keep_ms) {
  dsvc_pending *p = pending_for(s, rr->trip_id);
  if (!p) return;
  memcpy(p->bytes, rr->bytes, rr->len);
  p->len = rr->len;
  p->live = live;
  p->keep_ms = keep_ms;
  snprintf(p->rider_id, sizeof p->rider_id, "%s", ev->rider_id);
  bool busy = ev->status == MRD_TRIP_OFFERED || ev->status == MRD_TRIP_MATCHED ||
              ev->status == MRD_TRIP_ARRIVED || ev->status == MRD_TRIP_STARTED;
  snprintf(p->driver_id, sizeof p->driver_id, "%s", live && busy ? ev->driver_id : "");
  if (!live && ev->driver_id[0] && p->n_released < 4)
    snprintf(p->released[p->n_released++], sizeof p->released[0], "%s", ev->driver_id);
  if (!p->dirty) {
    p->dirty = true;
    s->n_dirty++;
  }
}

static int by_ts_desc(const void *a, const void *b) {
  const restore_rec *x = *(restore_rec *const *)a, *y = *(restore_rec *const *)b;
  return x->ts_ms < y->ts_ms ? 1 : x->ts_ms > y->ts_ms ? -1 : 0;
}

static void restore_recs_free(dsp_strmap *m) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key) free(m->slots[i].value);
  dsp_strmap_close(m);
}

/* Redis: the live set names trips whose latest event may be older than the window (their
 * snapshot is then the restore source), and stale live entries to correct. Marks the
 * records of m that Redis holds live, adds those Kafka did not give (*from_redis counts
 * them), drops expired or bad entries from the live set. False when Redis did not answer. */
static bool restore_merge_redis(dsvc *s, dsp_strmap *m, bool kafka_ok, int *from_redis) {
  redisReply *rep = NULL;
  const char *argv[] = {"SMEMBERS", s->live_key};
  bool redis_ok = mrd_redis_cmd(s->redis, &rep, 2, argv, NULL) == 0;
  if (!redis_ok) mrd_log_warn("restore_redis", "err=%s", mrd_redis_errstr(s->redis));
  for (size_t i = 0; redis_ok && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
    const char *id = rep->element[i]->str;
    if (!id || strlen(id) > DSP_ID_MAX) continue;
    restore_rec *rr = kafka_ok ? dsp_strmap_get(m, id) : NULL;
    if (rr) {
      rr->redis_live = true;
      continue;
    }
    redisReply *sr = NULL;
    if (mrd_redis_cmdf(s->redis, &sr, "GET trip:snap:%s", id) != 0) continue;
    mrd_dispatch_event ev;
    if (sr->type == REDIS_REPLY_STRING && sr->len <= MRD_PROTO_MAX_SIZE &&
        mrd_dispatch_event_decode((const uint8_t *)sr->str, sr->len, &ev) == 0) {
      rr = dsp_strmap_get(m, id);
      if (!rr || ev.seq > rr->seq) { /* Kafka unread: the snapshot is all there is */
        rr = rr ? rr : rec_for(m, id);
        if (rr) {
          rr->seq = ev.seq;
          rr->ts_ms = ev.ts_ms;
          rr->from_redis = true;
          rr->len = sr->len;
          memcpy(rr->bytes, sr->str, sr->len);
          (*from_redis)++;
        }
      }
      if (rr) rr->redis_live = true;
    } else {
      mrd_redis_cmdf(s->redis, NULL, "SREM %s %s", s->live_key, id); /* expired or bad */
    }
    freeReplyObject(sr);
  }
  if (rep) freeReplyObject(rep);
  return redis_ok;
}

/* What the restore did with the trips it read. */
typedef struct restore_tally {
  int restored, ended, refused, downgraded;
} restore_tally;

/* Put one trip's latest state back: an ended trip only corrects the gateway's view (a live
 * snapshot left by a crash); a live one goes back into the core (matched again when its
 * driver is on a newer trip) and its snapshot is rewritten. */
static void restore_one(dsvc *s, restore_rec *rr, int64_t retention_ms, int64_t now_ms,
                        restore_tally *t) {
  mrd_dispatch_event ev;
  dsp_trip_restore r;
  if (mrd_dispatch_event_decode(rr->bytes, rr->len, &ev) != 0) {
    t->refused++;
    return;
  }
  if (!dspc_status_live(ev.status)) {
    t->ended++;
    /* the gateway's view (a live snapshot left by a crash) catches up */
    if (rr->redis_live) rewrite_snapshot(s, rr, &ev, false, retention_ms);
    return;
  }
  if (dspc_restore_from_proto(&ev, &r) != DSP_OK) {
    t->refused++;
    mrd_log_warn("trip_restore_failed", "trip=%s err=%s", ev.trip_id, "not a live trip");
    return;
  }
  int rc = dsp_restore_trip(s->shard, &r, now_ms);
  if (rc == DSP_ESTATE && r.status != DSP_TRIP_REQUESTED) {
    r.status = DSP_TRIP_REQUESTED; /* his newer trip has the driver: match this one again */
    r.driver_id = "";
    r.offer_id = "";
    r.expires_at_ms = 0;
    r.has_driver_pos = false;
    rc = dsp_restore_trip(s->shard, &r, now_ms);
    if (rc == DSP_OK) t->downgraded++;
  }
  if (rc == DSP_OK) {
    t->restored++;
    rewrite_snapshot(s, rr, &ev, true, 0);
    mrd_log_info("trip_restored", "trip=%s status=%s seq=%llu driver=%s source=%s", ev.trip_id,
                 mrd_trip_status_name((mrd_trip_status)r.status), (unsigned long long)ev.seq,
                 r.driver_id, rr->from_redis ? "redis" : "kafka");
  } else {
    t->refused++;
    mrd_log_warn("trip_restore_failed", "trip=%s err=%s", ev.trip_id, dsp_strerror(rc));
  }
}

/* Every record of m restored, newest first: should two trips name one driver (events of
 * one batch delivered to some partitions and not others), the newer keeps him and the
 * older is matched again. */
static void restore_all(dsvc *s, dsp_strmap *m, int64_t now_ms, restore_tally *t) {
  restore_rec **all = calloc(m->len + 1, sizeof *all);
  size_t n_all = 0;
  for (size_t i = 0; all && i < m->cap; i++)
    if (m->slots[i].key) all[n_all++] = m->slots[i].value;
  if (n_all) qsort(all, n_all, sizeof *all, by_ts_desc);
  dsp_config dc;
  dsp_config_default(&dc);
  for (size_t i = 0; i < n_all; i++) restore_one(s, all[i], dc.trip_retention_ms, now_ms, t);
  free(all);
}

int dsvc_restore(dsvc *s, int64_t now_ms) {
  dsp_strmap m;
  dsp_strmap_init(&m);
  int64_t since = mrd_wall_ms() - s->cfg->restore_window_ms;
  long n_msgs = 0;
  double t0 = mrd_mono_s();
  bool kafka_ok = read_events(s, since < 0 ? 0 : since, &m, &n_msgs) == 0;
  size_t from_kafka = m.len;
  int from_redis = 0;
  bool redis_ok = restore_merge_redis(s, &m, kafka_ok, &from_redis);
  if (!kafka_ok && !redis_ok) {
    restore_recs_free(&m);
    return -1;
  }
  restore_tally t = {0};
  restore_all(s, &m, now_ms, &t);
  restore_recs_free(&m);
  mrd_counter_add(s->m.restored, (uint64_t)t.restored);
  mrd_log_info("restore_done",
               "restored=%d ended=%d refused=%d rematched=%d kafka=%d events_read=%ld "
               "trips_in_window=%zu from_redis=%d redis=%d ms=%.0f",
               t.restored, t.ended, t.refused, t.downgraded, (int)kafka_ok, n_msgs, from_kafka,
               from_redis, (int)redis_ok, (mrd_mono_s() - t0) * 1e3);
  /* the snapshots of restored and corrected trips are written now (or once Redis is back) */
  write_snapshots(s);
  return t.restored;
}

/* ---------------------------------------------------------------- consume */

static void hot_driver_refresh(dsvc *s, const char *id, int64_t now_ms) {
  dsp_driver_view v;
  if (dsp_driver_get(s->shard, id, &v) != DSP_OK) {
    dsp_hot_driver(s->hot, id, false, (geo_latlng){0, 0}, now_ms);
    return;
  }
  bool shown = v.state == DSP_DRIVER_AVAILABLE && v.in_index && !v.halo;
  dsp_hot_driver(s->hot, id, shown, v.pos, now_ms);
}

/* A message that does not decode: parked in the dead-letter topic (its delivery is awaited
 * by dsvc_flush with the events, before the offset is committed past it), counted, logged
 * once. A message that cannot be queued stops the loop like an undelivered event would
 * (dsvc_flush fails: exit without committing, a restart reads it again). */
static void park_undecodable(dsvc *s, const mrd_kafka_msg *msg) {
  mrd_counter_inc(s->m.bad_messages);
  mrd_dlq_record r = {.consumer = "dispatch",
                      .reason = MRD_FAIL_DECODE,
                      .error = "the payload does not decode",
                      .attempts = 1,
                      .topic = msg->topic,
                      .partition = msg->partition,
                      .offset = msg->offset,
                      .key = msg->key,
                      .key_len = msg->key_len,
                      .value = msg->value,
                      .value_len = msg->value_len};
  int rc;
  while ((rc = mrd_dlq_park(s->producer, &r, NULL)) == MRD_EFULL)
    mrd_kafka_producer_poll(s->producer, 10);
  if (rc != 0) {
    s->delivery_failures++;
    mrd_log_error("dlq_park_failed", "topic=%s partition=%d offset=%lld err=%s", msg->topic,
                  (int)msg->partition, (long long)msg->offset,
                  mrd_kafka_producer_errstr(s->producer));
    return;
  }
  s->in_flight++;
  mrd_counter_inc(s->m.dlq[MRD_FAIL_DECODE]);
  mrd_log_warn("message_parked", "topic=%s partition=%d offset=%lld bytes=%zu reason=%s dlq=%s",
               msg->topic, (int)msg->partition, (long long)msg->offset, msg->value_len,
               mrd_failure_name(MRD_FAIL_DECODE), MRD_TOPIC_DLQ);
}

int dsvc_poll(dsvc *s, int wait_ms, int64_t now_ms) {
  int n = 0;
  while (n < s->cfg->poll_batch) {
    mrd_kafka_msg msg;
    int rc = mrd_kafka_consume(s->consumer, n == 0 ? wait_ms : 0, &msg);
    if (rc == MRD_EAGAIN) break;
    if (rc != 0) {
      mrd_log_warn("kafka_consume", "err=%s", mrd_kafka_consumer_errstr(s->consumer));
      break;
    }
    n++;
    /* each message at its own time: events are stamped when their message is handled, not
     * when the batch began (claims of two shards compare in trip_events by these stamps) */
    int64_t msg_us = mrd_wall_us(), msg_now = msg_us / 1000;
    if (msg_now > now_ms) now_ms = msg_now;
    if (strcmp(msg.topic, MRD_TOPIC_DRIVER_LOCATIONS) == 0) {
      mrd_driver_location loc;
      if (mrd_driver_location_decode(msg.value, msg.value_len, &loc) != 0) {
        park_undecodable(s, &msg);
      } else {
        /* routed by a newer map: apply it (and warm) first; by an older one: judged by ours
         * (docs/shards.md, the handoff) */
        if (dsp_handoff_gate(s->epoch, loc.epoch) == DSP_GATE_LOAD_FIRST) (void)dsvc_epoch_load(s);
        if (loc.epoch < s->epoch && s->have_hmap) {
          uint32_t owner = loc.owner_shard;
          dsp_handoff_judge_ping(&s->hmap, (uint32_t)s->cfg->shard, loc.geohash, &loc.halo, &owner);
          loc.owner_shard = owner;
        }
        if (dspc_apply_location(s->shard, &loc, now_ms) == DSP_OK &&
            s->lease.role == DSP_LEASE_HOLDER) {
          hot_driver_refresh(s, loc.driver_id, now_ms); /* a standby publishes nothing */
          if (!loc.halo) {
            dsp_hot_update(s->hot, (geo_latlng){loc.pos.lat, loc.pos.lon}, now_ms);
            s->owner_pings++;
          }
        }
      }
      if (!s->ready) dsp_warmup_ping(&s->warm, msg.timestamp_ms);
      s->loc_next = msg.offset + 1;
    } else {
      mrd_command c;
      mrd_counter_inc(s->m.commands);
      if (mrd_command_decode(msg.value, msg.value_len, &c) != 0) {
        park_undecodable(s, &msg);
      } else {
        /* the gateway routed it by a newer map: apply that map (its warm-up) before it */
        if (dsp_handoff_gate(s->epoch, c.epoch) == DSP_GATE_LOAD_FIRST) (void)dsvc_epoch_load(s);
        const dsp_output *o;
        size_t before = dsp_outputs(s->shard, &o);
        double t0 = mrd_mono_s();
        dspc_apply_command(s->shard, (uint32_t)s->cfg->shard, &c, msg.offset, now_ms);
        size_t after = dsp_outputs(s->shard, &o);
        if (c.kind == MRD_CMD_REQUEST && c.trace.present) {
          /* the events it made carry its trace on (REQUESTED, and OFFERED or NO_DRIVER);
           * in the batched mode the offer comes later, from a tick, untraced */
          int64_t matched_us = mrd_wall_us();
          c.trace.stamp_us[MRD_STAMP_DISPATCH_CONSUMED] = msg_us;
          c.trace.stamp_us[MRD_STAMP_DISPATCH_MATCHED] = matched_us;
          for (size_t i = before; i < after && s->n_traces < DSVC_MAX_TRACES; i++)
            if (o[i].kind == DSP_OUT_EVENT) {
              s->traces[s->n_traces].out_index = i;
              s->traces[s->n_traces++].trace = c.trace;
            }
        }
        if (c.kind == MRD_CMD_REQUEST && s->n_lat < (int)(sizeof s->lat / sizeof s->lat[0])) {
          for (size_t i = before; i < after; i++)
            if (o[i].kind == DSP_OUT_EVENT && o[i].u.event.type == DSP_EV_REQUESTED) {
              snprintf(s->lat[s->n_lat].trip_id, sizeof s->lat[0].trip_id, "%s",
                       o[i].u.event.trip_id);
              s->lat[s->n_lat++].t0_s = t0;
            }
        }
        if (c.kind == MRD_CMD_STATUS) hot_driver_refresh(s, c.driver_id, now_ms);
        /* the core keeps 64 bytes of a ref: remember the command's whole ref */
        for (size_t i = before; i < after; i++)
          if (o[i].kind == DSP_OUT_REPLY && c.ref[0] && s->n_refs < DSVC_MAX_REFS) {
            s->refs[s->n_refs].out_index = i;
            snprintf(s->refs[s->n_refs++].ref, sizeof s->refs[0].ref, "%s", c.ref);
          }
      }
      s->cmd_next = msg.offset + 1;
    }
    mrd_kafka_msg_release(&msg);
  }
  return n;
}

/* ---------------------------------------------------------------- flush */

static dsvc_pending *pending_for(dsvc *s, const char *trip_id) {
  dsvc_pending *p = dsp_strmap_get(&s->pending, trip_id);
  if (p) return p;
  p = calloc(1, sizeof *p);
  if (!p) return NULL;
  snprintf(p->trip_id, sizeof p->trip_id, "%s", trip_id);
  if (dsp_strmap_put(&s->pending, p->trip_id, p) != 0) {
    free(p);
    return NULL;
  }
  return p;
}

static int produce(dsvc *s, const mrd_dispatch_event *ev, const char *key) {
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len = 0;
  int rc = mrd_dispatch_event_encode(ev, buf, sizeof buf, &len);
  if (rc != 0) {
    mrd_log_error("event_encode", "type=%s trip=%s err=%s", mrd_event_type_name(ev->type),
                  ev->trip_id, mrd_proto_strerror(rc));
    return 0; /* a bug, not a reason to stop: logged and dropped */
  }
  for (;;) {
    rc = mrd_kafka_produce(s->producer, MRD_TOPIC_DISPATCH_EVENTS, MRD_KAFKA_PARTITION_ANY, key,
                           strlen(key), buf, len, NULL);
    if (rc == MRD_EFULL) {
      mrd_kafka_producer_poll(s->producer, 10);
      continue;
    }
    break;
  }
  if (rc != 0) {
    mrd_log_error("event_produce", "trip=%s err=%s", ev->trip_id,
                  mrd_kafka_producer_errstr(s->producer));
    return -1;
  }
  s->in_flight++;
  mrd_counter_inc(s->m.events_produced);
  return 0;
}

/* Before the kept snapshots are written again: of a rider's ended trips kept here, only the
 * one that ended last may name itself his latest (trip:last:rider:), whatever order the
 * table is walked in. */
static void mark_latest_of_riders(dsvc *s) {
  dsp_strmap latest;
  dsp_strmap_init(&latest);
  for (size_t i = 0; i < s->pending.cap; i++) {
    dsvc_pending *p = s->pending.slots[i].key ? s->pending.slots[i].value : NULL;
    if (!p || p->live || !p->rider_id[0]) continue;
    p->not_last = false;
    dsvc_pending *q = dsp_strmap_get(&latest, p->rider_id);
    if (!q) {
      if (dsp_strmap_put(&latest, p->rider_id, p) != 0) p->not_last = true; /* no memory */
      continue;
    }
    dsvc_pending *older = q->gone_ms <= p->gone_ms ? q : p;
    older->not_last = true;
    if (older == q) dsp_strmap_put(&latest, p->rider_id, p);
  }
  dsp_strmap_close(&latest);
}

/* After Redis failed, and once it answers again: it may have restarted empty, so every
 * kept snapshot (live trips' and recently ended ones', with their pointers) and every
 * hot-cell entry are written again, and every claim this shard holds is taken again (else
 * another shard could claim its drivers). A reconnection counts as a failure even when no
 * write of ours failed: Redis may have restarted between two of our calls, and the one that
 * failed may have been a claim or a read, which do not set redis_lost. */
static void redis_resync(dsvc *s, int64_t now_ms) {
  if (!s->redis_lost && now_ms - s->redis_checked_ms >= 1000) {
    /* a quiet shard sends nothing for a while: a PING a second finds a restart (its
     * connection breaks, the next call connects again) */
    s->redis_checked_ms = now_ms;
    mrd_redis_ping(s->redis);
  }
  uint64_t conns = mrd_redis_connections(s->redis);
  if (conns != s->redis_connections) {
    if (s->redis_connections != 0) s->redis_lost = true; /* not the first connection */
    s->redis_connections = conns;
  }
  if (!s->redis_lost || mrd_redis_ping(s->redis) != 0) return;
  s->redis_lost = false;
  s->redis_connections = mrd_redis_connections(s->redis);
  size_t reclaimed = dsp_claims_reassert(s->shard, now_ms);
  size_t n = 0;
  mark_latest_of_riders(s);
  for (size_t i = 0; i < s->pending.cap; i++) {
    dsvc_pending *p = s->pending.slots[i].key ? s->pending.slots[i].value : NULL;
    if (p && !p->dirty) {
      p->dirty = true;
      s->n_dirty++;
      n++;
    }
  }
  dsp_hot_forget_written(s->hot);
  dsvc_pricing_forget_written(s->pricing);
  mrd_log_info("redis_back", "resync_snapshots=%zu hot_drivers=%zu claims=%zu", n,
               dsp_hot_tracked(s->hot), reclaimed);
}

static void redis_failed(dsvc *s, const char *what, size_t n) {
  mrd_counter_inc(s->m.redis_failures);
  s->redis_lost = true;
  int64_t now_s = mrd_mono_ms() / 1000;
  if (now_s - s->last_redis_log_s >= 5) { /* once per 5 s, not per batch */
    s->last_redis_log_s = now_s;
    mrd_log_warn("redis_write_failed", "what=%s items=%zu err=%s (kept, retried)", what, n,
                 mrd_redis_errstr(s->redis));
  }
}

/* Forget the ended trips whose keys have expired in Redis: nothing is left to write again. */
static void forget_expired(dsvc *s, int64_t now_ms) {
  if (now_ms - s->expired_swept_ms < 1000) return;
  s->expired_swept_ms = now_ms;
  for (;;) { /* collect first: deleting while iterating moves entries */
    dsvc_pending *gone[512];
    size_t n_gone = 0;
    for (size_t i = 0; i < s->pending.cap && n_gone < sizeof gone / sizeof gone[0]; i++) {
      dsvc_pending *p = s->pending.slots[i].key ? s->pending.slots[i].value : NULL;
      if (p && !p->live && !p->dirty && p->gone_ms && p->gone_ms <= now_ms) gone[n_gone++] = p;
    }
    for (size_t i = 0; i < n_gone; i++) {
      dsp_strmap_del(&s->pending, gone[i]->trip_id);
      free(gone[i]);
    }
    if (n_gone < sizeof gone / sizeof gone[0]) return;
  }
}

/* Write every dirty snapshot (one pipeline). Every entry stays after it is written, a live
 * trip's until it ends, an ended trip's until its keys expire in Redis (forget_expired), so
 * that a Redis that restarted empty gets them all again: a rider cut off when his trip ended
 * still learns its end when he connects. */
static void write_snapshots(dsvc *s) {
  int64_t now_ms = mrd_wall_ms();
  redis_resync(s, now_ms);
  forget_expired(s, now_ms);
  if (s->n_dirty == 0) return;
  int queued = 0;
  bool fail = false;
  char key[DSP_ID_MAX + 32], keep[32];
  for (size_t i = 0; i < s->pending.cap && !fail; i++) {
    dsvc_pending *p = s->pending.slots[i].key ? s->pending.slots[i].value : NULL;
    if (!p || !p->dirty) continue;
    if (!p->live && !p->gone_ms) p->gone_ms = now_ms + p->keep_ms; /* its first write */
    int64_t keep_ms = p->live ? 21600000 : p->gone_ms - now_ms;
    if (keep_ms < 1) keep_ms = 1;
    snprintf(key, sizeof key, "trip:snap:%s", p->trip_id);
    snprintf(keep, sizeof keep, "%lld", (long long)keep_ms);
    const char *a[] = {"SET", key, (const char *)p->bytes, "PX", keep};
    size_t al[] = {3, strlen(key), p->len, 2, strlen(keep)};
    fail |= mrd_redis_append(s->redis, 5, a, al) != 0;
    queued++;
    for (int r = 0; r < p->n_released && !fail; r++) {
      snprintf(key, sizeof key, "trip:active:driver:%s", p->released[r]);
      const char *e[] = {"EVAL", MRD_REDIS_CAD_LUA, "1", key, p->trip_id};
      fail |= mrd_redis_append(s->redis, 5, e, NULL) != 0;
      queued++;
    }
    snprintf(key, sizeof key, "trip:active:rider:%s", p->rider_id);
    if (p->live) {
      const char *a1[] = {"SADD", s->live_key, p->trip_id};
      const char *a2[] = {"SET", key, p->trip_id, "EX", POINTER_TTL_S};
      fail |= mrd_redis_append(s->redis, 3, a1, NULL) != 0 ||
              mrd_redis_append(s->redis, 5, a2, NULL) != 0;
      queued += 2;
      if (p->driver_id[0] && !fail) {
        snprintf(key, sizeof key, "trip:active:driver:%s", p->driver_id);
        const char *a3[] = {"SET", key, p->trip_id, "EX", POINTER_TTL_S};
        fail |= mrd_redis_append(s->redis, 5, a3, NULL) != 0;
        queued++;
      }
    } else {
      const char *a1[] = {"SREM", s->live_key, p->trip_id};
      const char *a2[] = {"EVAL", MRD_REDIS_CAD_LUA, "1", key, p->trip_id};
      fail |= mrd_redis_append(s->redis, 3, a1, NULL) != 0 ||
              mrd_redis_append(s->redis, 5, a2, NULL) != 0;
      /* the rider's latest trip, for as long as its final snapshot is kept: a rider who
       * was cut off when it ended learns the end when he connects again */
      queued += 2;
      if (!p->not_last) {
        char last[DSP_ID_MAX + 32];
        snprintf(last, sizeof last, "trip:last:rider:%s", p->rider_id);
        const char *a3[] = {"SET", last, p->trip_id, "PX", keep};
        fail |= mrd_redis_append(s->redis, 5, a3, NULL) != 0;
        queued++;
      }
    }
  }
  while (mrd_redis_pending(s->redis) > 0) {
    redisReply *r = NULL;
    if (mrd_redis_get_reply(s->redis, &r) != 0) fail = true;
    if (r) freeReplyObject(r);
  }
  if (fail) {
    redis_failed(s, "snapshots", s->n_dirty);
    return;
  }
  mrd_counter_add(s->m.snapshots_written, s->n_dirty);
  for (size_t i = 0; i < s->pending.cap; i++) {
    dsvc_pending *p = s->pending.slots[i].key ? s->pending.slots[i].value : NULL;
    if (!p || !p->dirty) continue;
    p->dirty = false;
    p->n_released = 0;
  }
  s->n_dirty = 0;
  (void)queued;
}

int dsvc_flush(dsvc *s, int64_t now_ms) {
  const dsp_output *o;
  size_t n = dsp_outputs(s->shard, &o);
  if (s->lease.role != DSP_LEASE_HOLDER) { /* a standby's core makes no events; be sure */
    if (n) mrd_counter_add(s->m.outputs_dropped, n);
    dsp_outputs_clear(s->shard);
    s->n_lat = s->n_refs = s->n_traces = 0;
    return 0;
  }
  /* A holder that may no longer act (paused past its margin: SIGSTOP, store unreachable)
   * keeps its outputs queued until a renew says whether it still holds the shard. */
  if (!dsvc_may_act(s)) return 0;
  double t_now = mrd_mono_s();
  /* the latest event of each trip in this batch, for its snapshot */
  mrd_dispatch_event ev;
  for (size_t i = 0; i < n; i++) {
    if (o[i].kind == DSP_OUT_EVENT) {
      const dsp_event *e = &o[i].u.event;
      dspc_event_to_proto(e, &ev);
      dsvc_pricing_event(s->pricing, &ev, now_ms); /* the fare quote, surge demand */
      ev.generation = s->lease.generation;
      for (int k = 0; k < s->n_traces; k++)
        if (s->traces[k].out_index == i) {
          ev.trace = s->traces[k].trace;
          trace_span(s, &ev.trace);
          ev.trace.stamp_us[MRD_STAMP_DISPATCH_PRODUCED] = mrd_wall_us();
          break;
        }
      if (produce(s, &ev, e->trip_id) != 0) return -1;
      if (e->driver_id[0]) hot_driver_refresh(s, e->driver_id, now_ms);
      if (e->type == DSP_EV_REQUESTED) dsp_hot_request(s->hot, e->pickup, now_ms);
      if (e->type == DSP_EV_NO_DRIVER) mrd_counter_inc(s->m.no_driver[e->no_driver]);
      if (e->type == DSP_EV_OFFERED) {
        for (int k = 0; k < s->n_lat; k++)
          if (strcmp(s->lat[k].trip_id, e->trip_id) == 0) {
            mrd_histogram_observe(s->m.match_latency, t_now - s->lat[k].t0_s);
            s->lat[k].trip_id[0] = '\0';
          }
      }
      /* the snapshot that follows gets this event, completed */
      if (i + 1 < n && o[i + 1].kind == DSP_OUT_SNAPSHOT &&
          strcmp(o[i + 1].u.snapshot.trip_id, e->trip_id) == 0) {
        const dsp_snapshot *sp = &o[i + 1].u.snapshot;
        dsvc_pending *p = pending_for(s, e->trip_id);
        if (!p) continue;
        mrd_dispatch_event se = ev;
        memset(&se.trace, 0, sizeof se.trace); /* a snapshot is state, not this hop */
        dspc_snapshot_merge(sp, &se);
        size_t len = 0;
        if (mrd_dispatch_event_encode(&se, p->bytes, sizeof p->bytes, &len) != 0) {
          mrd_log_error("snapshot_encode", "trip=%s", e->trip_id);
          continue;
        }
        p->len = len;
        if (!p->dirty) {
          p->dirty = true;
          s->n_dirty++;
        }
        p->live = sp->keep_ms == 0;
        p->keep_ms = sp->keep_ms;
        snprintf(p->rider_id, sizeof p->rider_id, "%s", sp->rider_id);
        bool busy = sp->status == DSP_TRIP_OFFERED || sp->status == DSP_TRIP_MATCHED ||
                    sp->status == DSP_TRIP_ARRIVED || sp->status == DSP_TRIP_STARTED;
        snprintf(p->driver_id, sizeof p->driver_id, "%s", busy ? sp->driver_id : "");
        if (sp->released_driver_id[0] && p->n_released < 4)
          snprintf(p->released[p->n_released++], sizeof p->released[0], "%s",
                   sp->released_driver_id);
      }
    } else if (o[i].kind == DSP_OUT_REPLY) {
      const dsp_reply *r = &o[i].u.reply;
      const char *ref = NULL;
      for (int k = 0; k < s->n_refs; k++)
        if (s->refs[k].out_index == i) ref = s->refs[k].ref;
      dspc_reply_to_proto(r, ref, (uint32_t)s->cfg->shard, s->epoch, now_ms, &ev);
      ev.generation = s->lease.generation;
      const char *key = ev.trip_id[0]      ? ev.trip_id
                        : ev.request_id[0] ? ev.request_id
                        : ev.driver_id[0]  ? ev.driver_id
                                           : ev.rider_id;
      if (produce(s, &ev, key) != 0) return -1;
    }
  }
  dsp_outputs_clear(s->shard);
  s->n_lat = 0;
  s->n_refs = 0;
  s->n_traces = 0;
  /* durable first: every event delivered (the idempotent producer retries by itself) */
  int64_t t0_us = mrd_mono_us();
  bool awaited = s->in_flight > 0;
  while (s->in_flight > 0 && !s->delivery_failures) mrd_kafka_producer_poll(s->producer, 5);
  if (awaited)
    mrd_histogram_observe(s->m.flush_wait[DSVC_FLUSH_DELIVERY], (mrd_mono_us() - t0_us) / 1e6);
  if (s->delivery_failures) return -1;
  /* Paused while waiting (SIGSTOP): the events are out, fenced downstream if another
   * holder took over; the snapshots and offsets wait for the renew to say who holds. */
  if (!dsvc_may_act(s)) return 0;
  if (s->n_dirty > 0) {
    t0_us = mrd_mono_us();
    write_snapshots(s);
    mrd_histogram_observe(s->m.flush_wait[DSVC_FLUSH_SNAPSHOTS], (mrd_mono_us() - t0_us) / 1e6);
  }
  t0_us = mrd_mono_us();
  bool committed = false;
  /* then the offsets of what was consumed. A commit is a round trip to the group coordinator
   * that no message is consumed during: pings (a thousand a second) are committed at most
   * every MERIDIAN_DISPATCH_LOCATIONS_COMMIT, or a command would wait behind a commit on most
   * turns of the loop (docs/capacity.md); a restart re-reads those pings, which are idempotent */
  if (s->loc_next > s->loc_committed && now_ms >= s->loc_commit_due_ms) {
    committed = true;
    if (mrd_kafka_commit(s->consumer, MRD_TOPIC_DRIVER_LOCATIONS, s->cfg->shard, s->loc_next) == 0)
      s->loc_committed = s->loc_next;
    s->loc_commit_due_ms = now_ms + s->cfg->loc_commit_ms;
  }
  if (s->cmd_next > s->cmd_committed) {
    committed = true;
    if (mrd_kafka_commit(s->consumer, MRD_TOPIC_DISPATCH_COMMANDS, s->cfg->shard, s->cmd_next) == 0)
      s->cmd_committed = s->cmd_next;
    else
      mrd_log_warn("kafka_commit", "err=%s", mrd_kafka_consumer_errstr(s->consumer));
  }
  if (committed)
    mrd_histogram_observe(s->m.flush_wait[DSVC_FLUSH_COMMIT], (mrd_mono_us() - t0_us) / 1e6);
  return 0;
}

/* ---------------------------------------------------------------- hot cells */

static int hot_emit(void *ud, int argc, const char *const *argv) {
  dsvc *s = ud;
  return mrd_redis_append(s->redis, argc, argv, NULL); /* 0 or its MRD_E*, passed on */
}

void dsvc_hot_flush(dsvc *s, int64_t now_ms) {
  if (!dsvc_may_act(s)) return;
  redis_resync(s, mrd_wall_ms());
  int n = dsp_hot_collect(s->hot, now_ms, hot_emit, s);
  bool ok = n >= 0;
  int ns = ok ? dsvc_pricing_hot(s->pricing, s->hot, now_ms, hot_emit, s) : 0;
  if (ns < 0) ok = false;
  if (ns > 0) n += ns;
  while (mrd_redis_pending(s->redis) > 0) {
    redisReply *r = NULL;
    if (mrd_redis_get_reply(s->redis, &r) != 0) ok = false;
    if (r) freeReplyObject(r);
  }
  dsp_hot_done(s->hot, ok);
  dsvc_pricing_done(s->pricing, ok && ns >= 0);
  if (!ok) {
    redis_failed(s, "hot_cells", n > 0 ? (size_t)n : 0);
  } else if (n > 0) {
    mrd_counter_add(s->m.hot_commands, (uint64_t)n);
  }
}

/* ---------------------------------------------------------------- close */

void dsvc_close(dsvc *s, int timeout_ms) {
  if (s->producer && mrd_kafka_flush(s->producer, timeout_ms) != 0)
    mrd_log_warn("kafka_flush", "left=%d", mrd_kafka_outq_len(s->producer));
  mrd_kafka_consumer_free(s->consumer);
  mrd_kafka_producer_free(s->producer);
  core_free(s);
  dsvc_pricing_free(s->pricing);
  dsp_claims_redis_free(s->claims);
  mrd_redis_free(s->redis);
  mrd_pg_free(s->pg);
  dsp_lease_worker_stop(s->lease_store);
  s->lease_store = NULL;
  dsvc_map_release(&s->map);
  mrd_shardmap_close(&s->hmap);
  dsp_graph_router_free(s->router);
  geo_graph_free(s->graph);
  for (size_t i = 0; i < s->pending.cap; i++)
    if (s->pending.slots[i].key) free(s->pending.slots[i].value);
  dsp_strmap_close(&s->pending);
  mrd_admin_stop(s->admin);
  mrd_metrics_free(s->m.reg);
}

/* ---------------------------------------------------------------- ownership */

bool dsvc_may_act(const dsvc *s) { return dsp_lease_may_act(&s->lease, mrd_mono_ms()); }

/* Raise dispatch:fence:<shard> to our generation (retried every loop turn until Redis
 * answers): from then on Redis refuses the claims of every older holder. */
static void fence_raise(dsvc *s) {
  if (s->fence_raised || s->lease.role != DSP_LEASE_HOLDER) return;
  if (dsp_fence_raise(s->redis, s->fence_key, s->lease.generation) == 0) s->fence_raised = true;
}

/* Standby -> holder: the shard's live trips come back from dispatch-events (and Redis),
 * commands are consumed once the index is warm (a standby has been reading pings all
 * along: at once, usually). */
static void take_over(dsvc *s, int64_t now_ms) {
  uint64_t g = s->lease.generation;
  dsp_claims_redis_fence(s->claims, s->fence_key, g);
  s->fence_raised = false;
  fence_raise(s);
  mrd_counter_inc(s->m.lease_acquired);
  mrd_gauge_set(s->m.lease_generation, (double)g);
  mrd_log_info("lease_acquired", "shard=%d generation=%llu warm_ms=%lld", s->cfg->shard,
               (unsigned long long)g, (long long)(now_ms - s->warm_since_ms));
  if (dsvc_restore(s, now_ms) < 0)
    mrd_log_warn("restore_skipped", "reason=%s", "neither dispatch-events nor redis could be read");
  int64_t warm = s->warm_since_ms + s->cfg->warmup_ms;
  s->warm_until_ms = warm > now_ms ? warm : now_ms;
}

/* Holder -> standby: everything this process knew as the holder is the next holder's now
 * (it restores the trips from dispatch-events): forget the trips, the queued outputs and
 * snapshots, commit nothing, consume pings only (from where it is: the index warms again). */
static void step_down(dsvc *s, const char *why) {
  const dsp_output *o;
  size_t n = s->shard ? dsp_outputs(s->shard, &o) : 0;
  mrd_counter_inc(s->m.lease_lost);
  mrd_counter_add(s->m.outputs_dropped, n);
  mrd_log_warn("lease_lost",
               "shard=%d generation=%llu why=%s outputs_dropped=%zu "
               "snapshots_dropped=%zu action=%s",
               s->cfg->shard, (unsigned long long)s->lease.generation, why, n, s->n_dirty,
               "standby: trips forgotten, nothing committed, pings only");
  dsp_claims_redis_fence(s->claims, NULL, 0);
  core_free(s);
  pending_clear(s);
  s->n_lat = s->n_refs = s->n_traces = 0;
  s->ready = false;
  s->cmd_next = -1;
  s->cmd_committed = -1;
  s->loc_committed = s->loc_next; /* not ours to commit any more */
  if (core_new(s) != 0 || dsvc_assign(s, false) != 0) {
    mrd_log_error("step_down", "err=%s", "cannot rebuild the core; exiting");
    exit(1);
  }
  s->warm_since_ms = mrd_wall_ms();
  dsp_warmup_init(&s->warm, s->warm_since_ms, s->cfg->warmup_ms);
}

/* An answer of the lease store (lease_worker.h): logged, then reported to the lease. */
static void lease_answered(dsvc *s, const dsp_lease_result *r) {
  static char last_holder[200];
  if (r->op == DSP_LEASE_OP_ACQUIRE && r->answer == DSP_LEASE_TAKEN &&
      strcmp(last_holder, r->holder) != 0) {
    snprintf(last_holder, sizeof last_holder, "%s", r->holder);
    mrd_log_info("standby", "shard=%d holder=%s action=%s", s->cfg->shard, r->holder,
                 "waiting for the lease to lapse");
  }
  if (r->op == DSP_LEASE_OP_RENEW && r->answer == DSP_LEASE_GRANTED)
    s->fence_raised = false; /* Redis may have restarted empty */
  static int64_t last_warn_ms;
  int64_t mono = mrd_mono_ms();
  if (r->answer == DSP_LEASE_UNREACHABLE && (last_warn_ms == 0 || mono - last_warn_ms >= 5000)) {
    last_warn_ms = mono; /* once per 5 s, not per retry */
    mrd_log_warn("lease_store", "op=%s may_act=%d err=%s",
                 r->op == DSP_LEASE_OP_ACQUIRE ? "acquire" : "renew", (int)dsvc_may_act(s), r->err);
  }
  mrd_histogram_observe(s->m.lease_store_s, r->took_ms / 1e3);
  dsp_lease_change ch =
      dsp_lease_answered(&s->lease, r->op, r->sent_ms, mono, r->answer, r->generation);
  if (ch == DSP_LEASE_ACQUIRED)
    take_over(s, mrd_wall_ms());
  else if (ch == DSP_LEASE_LOST)
    step_down(s, "renew found another generation in shard_leases");
}

void dsvc_lease_step(dsvc *s, int64_t mono, int64_t now_ms) {
  dsp_lease_result r;
  if (dsp_lease_worker_take(s->lease_store, &r)) lease_answered(s, &r);
  if (!dsp_lease_worker_busy(s->lease_store)) {
    dsp_lease_op op = dsp_lease_due(&s->lease, mono);
    if (op != DSP_LEASE_OP_NONE)
      (void)dsp_lease_worker_post(s->lease_store, op, s->lease.generation, mono);
  }
  fence_raise(s);
  bool holder = s->lease.role == DSP_LEASE_HOLDER, act = dsvc_may_act(s);
  if (holder && !act && !s->paused)
    mrd_log_warn("lease_unconfirmed", "shard=%d generation=%llu action=%s", s->cfg->shard,
                 (unsigned long long)s->lease.generation,
                 "not acting until a renewal succeeds (PostgreSQL unreachable, or this process was "
                 "paused)");
  else if (holder && act && s->paused)
    mrd_log_info("lease_confirmed", "shard=%d generation=%llu action=%s", s->cfg->shard,
                 (unsigned long long)s->lease.generation, "acting again");
  s->paused = holder && !act;
  if (s->lease.role == DSP_LEASE_HOLDER && !s->commands_assigned && s->shard &&
      (now_ms >= s->warm_until_ms || dsp_warmup_done(&s->warm, now_ms)) && dsvc_may_act(s)) {
    if (dsvc_assign(s, true) == 0) {
      s->ready = true;
      mrd_log_info("ready", "shard=%d generation=%llu warmup_ms=%lld backlog_from_ms=%lld",
                   s->cfg->shard, (unsigned long long)s->lease.generation,
                   (long long)(now_ms - s->warm.started_ms),
                   (long long)(s->warm.first_ping_ms >= 0 ? now_ms - s->warm.first_ping_ms : -1));
    }
  }
}

void dsvc_lease_release(dsvc *s) {
  dsp_lease_result r; /* an answer on its way first: an acquire granted is ours to give back */
  if (dsp_lease_worker_wait(s->lease_store, 2000, &r))
    (void)dsp_lease_answered(&s->lease, r.op, r.sent_ms, mrd_mono_ms(), r.answer, r.generation);
  if (s->lease.role != DSP_LEASE_HOLDER) return;
  if (dsp_lease_worker_release(s->lease_store, s->lease.generation, 2000) == DSP_OK)
    mrd_log_info("lease_released", "shard=%d generation=%llu", s->cfg->shard,
                 (unsigned long long)s->lease.generation);
  dsp_lease_released(&s->lease, mrd_mono_ms());
}
