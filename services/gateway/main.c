/*
 * main.c: meridian-gateway: config -> log -> load the service area and the shard map ->
 * connect Redis and Kafka -> serve -> on SIGTERM drain: fail /readyz, refuse new upgrades
 * (503), close every WebSocket with 1012 "service restart" after what is queued for it, wait
 * up to MERIDIAN_GW_DRAIN_MS for the clients to answer -> flush Kafka, exit 0.
 * Bad configuration exits 2 with one line; a dependency missing at start exits 1.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mrd/log.h"
#include "mrd/signals.h"
#include "server.h"

static struct lws_context *g_ctx;

static void wake(void *ud) {
  (void)ud;
  if (g_ctx) lws_cancel_service(g_ctx);
}

/* The series of issue 13's limits (budgets, admission, token expiry, close codes). */
static int limits_metrics_init(gw_metrics *m) {
  static const char *const statuses[6] = {"401", "403", "404", "429", "503", "431"};
  int rc = 0;
  for (int i = 0; i < 6; i++)
    rc |= mrd_metrics_counter(
        m->reg, "meridian_gateway_upgrades_refused_total",
        "WebSocket upgrades and requests refused, by HTTP status (431 counts 400s too)",
        (const char *[]){"status", statuses[i], NULL}, &m->refused[i]);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_closed_expired_total",
                            "connections closed 4001 when their token expired", NULL,
                            &m->closed_expired);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_closed_replaced_total",
                            "connections closed 4002 for a newer one of the same user and role",
                            NULL, &m->closed_replaced);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_snapshots_recent_total",
                            "connections shown the event last sent to their user, newer than "
                            "the trip's snapshot in Redis",
                            NULL, &m->snapshots_recent);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_recent_full_total",
                            "events not kept for their users' next connection (table full)", NULL,
                            &m->recent_full);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_closed_bad_close_total",
                            "client close frames with an invalid code, answered 1002", NULL,
                            &m->closed_bad_close);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_rx_paused_total",
                            "times a connection stopped being read: its user's byte budget in debt",
                            NULL, &m->rx_paused);
  rc |= mrd_metrics_counter(
      m->reg, "meridian_gateway_unrouted_total",
      "offer/trip commands naming a shard not in the map (answered, not produced)", NULL,
      &m->unrouted);
  rc |= mrd_metrics_gauge(m->reg, "meridian_gateway_budgets",
                          "per-user budgets held (connected users and those still recovering)",
                          NULL, &m->budgets);
  return rc;
}

static int metrics_init(gw_server *s) {
  gw_metrics *m = &s->m;
  if (mrd_metrics_new(&m->reg)) return -1;
  static const char *const roles[2] = {"driver", "rider"};
  static const char *const outs[8] = {"ack",       "error", "offer",  "matched",
                                      "no_driver", "trip",  "nearby", "other"};
  static const double lat[] = {MRD_BUCKETS_LATENCY_S};
  int rc = 0;
  for (int r = 0; r < 2; r++) {
    rc |= mrd_metrics_gauge(m->reg, "meridian_gateway_connections", "open WebSocket connections",
                            (const char *[]){"role", roles[r], NULL}, &m->conns[r]);
    rc |= mrd_metrics_counter(m->reg, "meridian_gateway_rate_limited_total",
                              "messages over a rate limit",
                              (const char *[]){"role", roles[r], NULL}, &m->rate_limited[r]);
  }
  for (int t = 0; t < GW_MSG_TYPE_COUNT; t++)
    rc |= mrd_metrics_counter(m->reg, "meridian_gateway_messages_in_total",
                              "client messages by type (none = refused before its type was known)",
                              (const char *[]){"type", gw_msg_type_name((gw_msg_type)t), NULL},
                              &m->in[t]);
  for (int t = 0; t < 8; t++)
    rc |= mrd_metrics_counter(m->reg, "meridian_gateway_messages_out_total",
                              "server messages by type", (const char *[]){"type", outs[t], NULL},
                              &m->out_by_type[t]);
  for (int c = GW_BAD_REQUEST; c < GW_CODE_COUNT; c++)
    rc |= mrd_metrics_counter(m->reg, "meridian_gateway_errors_total", "error replies by code",
                              (const char *[]){"code", gw_code_name((gw_code)c), NULL},
                              &m->errors[c]);
  m->errors[GW_OK] = m->errors[GW_INTERNAL];
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_closed_flood_total",
                            "connections closed 1008 for flooding", NULL, &m->closed_flood);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_closed_slow_total",
                            "connections closed for a full send queue", NULL, &m->closed_slow);
  rc |=
      mrd_metrics_counter(m->reg, "meridian_gateway_dropped_nearby_total",
                          "nearby answers dropped from full send queues", NULL, &m->dropped_nearby);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_kafka_failed_total",
                            "Kafka messages that failed delivery", NULL, &m->kafka_failed);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_events_total", "dispatch-events consumed",
                            NULL, &m->events_in);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_events_bad_total",
                            "dispatch-events that failed to decode", NULL, &m->events_bad);
  rc |= mrd_dlq_metrics(m->reg, "gateway", m->dlq);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_request_resends_total",
                            "ride requests re-sent with a request_id already seen (same places): "
                            "sent to the shard that holds it",
                            NULL, &m->request_resends);
  rc |= mrd_metrics_counter(
      m->reg, "meridian_gateway_request_conflicts_total",
      "ride requests refused: request_id already used by the rider with other places", NULL,
      &m->request_conflicts);
  rc |= mrd_metrics_histogram(m->reg, "meridian_gateway_kafka_produce_seconds",
                              "Kafka produce latency, enqueue to delivery report", NULL, lat,
                              sizeof lat / sizeof lat[0], &m->produce_latency);
  rc |= mrd_metrics_gauge(m->reg, "meridian_gateway_shardmap_epoch",
                          "epoch of the shard map in use", NULL, &m->shardmap_epoch);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_epoch_reloads_total",
                            "shard maps loaded after an epoch change (NOTIFY or the periodic read)",
                            NULL, &m->epoch_reloads);
  rc |= mrd_metrics_counter(m->reg, "meridian_gateway_events_fenced_total",
                            "dispatch-events of a stale lease generation, not delivered", NULL,
                            &m->events_fenced);
  /* 50 us to 5 s, about 1.3x apart below 50 ms: fine enough that the loadgen's p50 / p99
   * read from the buckets (loadgen/README.md) are within a few percent; up to 5 s so that an
   * overloaded machine's figures are read, not clamped to the last bound */
  static const double hop_b[] = {0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075,
                                 0.001,   0.0013, 0.0017,  0.0022, 0.003,  0.004,  0.005,  0.0065,
                                 0.008,   0.01,   0.013,   0.017,  0.022,  0.03,   0.04,   0.05,
                                 0.1,     0.25,   0.5,     1,      2.5,    5};
  for (int h = 0; h < MRD_HOP_COUNT; h++)
    rc |= mrd_metrics_histogram(
        m->reg, "meridian_gateway_trace_hop_seconds",
        "traced ride requests, per hop: gateway_in (received -> produced), commands_kafka, "
        "dispatch_match (consumed -> matched), dispatch_out (-> event produced), "
        "events_kafka, gateway_out (consumed -> sent)",
        (const char *[]){"hop", mrd_trace_hop_name((mrd_trace_hop)h), NULL}, hop_b,
        sizeof hop_b / sizeof hop_b[0], &m->hop[h]);
  rc |= mrd_metrics_histogram(
      m->reg, "meridian_gateway_trace_seconds",
      "traced ride requests: gateway received -> first answer (offer or no_driver) sent", NULL,
      hop_b, sizeof hop_b / sizeof hop_b[0], &m->traced);
  static const char *const outcomes[3] = {"ok", "skewed", "broken"};
  mrd_counter **dst[3] = {&m->traces_ok, &m->traces_skewed, &m->traces_broken};
  for (int i = 0; i < 3; i++)
    rc |= mrd_metrics_counter(
        m->reg, "meridian_gateway_traces_total",
        "finished traces: ok, skewed (clocks out of step), broken (a stamp missing)",
        (const char *[]){"result", outcomes[i], NULL}, dst[i]);
  rc |= limits_metrics_init(m);
  return rc ? -1 : 0;
}

int main(int argc, char **argv) {
  mrd_log_init("gateway");
  gw_config cfg;
  memset(&cfg, 0, sizeof cfg);
  gw_config_load(&cfg, argc, argv);
  mrd_log_hook_lws();

  gw_server s;
  memset(&s, 0, sizeof s);
  s.cfg = &cfg;
  s.wake_fd[0] = s.wake_fd[1] = -1;
  s.rng = (uint64_t)gw_now_us() ^ ((uint64_t)getpid() << 32); /* ids: unique, not secret */
  int rc = 1;
  char err[256];
  if (metrics_init(&s)) goto out;
  s.area = gw_area_load(cfg.service_area, err, sizeof err);
  if (!s.area) {
    mrd_log_error("service_area", "path=%s err=%s", cfg.service_area, err);
    goto out;
  }
  mrd_log_info("service_area", "path=%s polygons=%zu vertices=%zu", cfg.service_area,
               gw_area_polygon_count(s.area), gw_area_vertex_count(s.area));
  /* PostgreSQL is read from the event loop (the epoch): a reconnect attempt must not stall
   * it long, and not often while the database is unreachable */
  mrd_pg_opts po = {.connect_timeout_s = 1, .backoff_max_ms = 10000};
  if (mrd_pg_new(cfg.pg_dsn, &po, &s.pg) || gw_shardmap_load(&s)) goto out;
  gw_epoch_listen(&s); /* a failure is logged; the periodic read still follows the epoch */
  mrd_redis_opts ro = {.command_timeout_ms = cfg.redis_timeout_ms,
                       .connect_timeout_ms = cfg.redis_timeout_ms};
  if (mrd_redis_new(cfg.redis_url, &ro, &s.redis)) {
    mrd_log_error("redis", "url=%s err=%s", cfg.redis_url, "bad URL");
    goto out;
  }
  if (gw_limits_start(&s) || gw_kafka_start(&s) || gw_ws_start(&s)) goto out;
  g_ctx = s.ctx;
  if (mrd_signals_install(wake, NULL)) goto out;
  while (!mrd_should_stop()) {
    if (gw_ws_run_once(&s) < 0) break;
  }
  mrd_log_info("stopping", "signal=%d", mrd_stop_signal());
  s.stopping = true;
  rc = 0;
  {
    size_t asked = gw_ws_drain(&s);
    int64_t t0 = gw_now_ms(), deadline = t0 + cfg.drain_ms;
    while (gw_ws_open(&s) > 0 && gw_now_ms() < deadline) {
      if (gw_ws_run_once(&s) < 0) break;
    }
    mrd_log_info("drained", "connections=%zu left_open=%zu ms=%lld", asked, gw_ws_open(&s),
                 (long long)(gw_now_ms() - t0));
  }
out:
  gw_kafka_wake_off(&s); /* before the loop that reads the wake pipe goes */
  g_ctx = NULL;          /* a second signal must not reach a context being destroyed */
  gw_ws_stop(&s);        /* closes connections: no more work taken */
  if (!s.wake_adopted && s.wake_fd[0] >= 0) close(s.wake_fd[0]);
  gw_kafka_stop(&s, 5000);
  gw_limits_stop(&s);
  gw_shardmap_free(s.map);
  gw_area_free(s.area);
  mrd_redis_free(s.redis);
  mrd_pg_free(s.pg);
  mrd_metrics_free(s.m.reg);
  gw_config_release();
  mrd_log_info("exit", "code=%d", rc);
  return rc;
}
