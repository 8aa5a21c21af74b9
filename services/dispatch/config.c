/*
 * config.c: meridian-dispatch's configuration table (mrd_config): MERIDIAN_* variables,
 * flags, defaults and help. Not the core's dsp_config (dispatch_io.c fills that from here).
 */
#include <stdlib.h>
#include <string.h>

#include "mrd/config.h"
#include "mrd/tz.h"
#include "service.h"

static mrd_config_opt g_opts[64];
static mrd_config_spec g_spec;

#define ADD(env, flag, def, help, type, lo, hi, dst)                                               \
  g_opts[n++] = (mrd_config_opt) { env, flag, def, help, type, lo, hi, false, dst }

void dsvc_config_load(dsvc_config *c, int argc, char **argv) {
  size_t n = 0;
  ADD("MERIDIAN_SHARD", "shard", "0", "the shard this process runs (= its partitions)",
      MRD_CONFIG_INT, 0, 63, &c->shard);
  ADD("MERIDIAN_GRAPH", "graph", NULL, "road graph snapshot (meridianctl graph export)",
      MRD_CONFIG_STRING, 0, 0, &c->graph_path);
  ADD("MERIDIAN_TIMEZONE", "timezone", MRD_TIMEZONE_DEFAULT,
      "local time zone of the quoted ETAs' hour and weekday (the calibration's)", MRD_CONFIG_STRING,
      0, 0, &c->timezone);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_PG_DSN(&c->pg_dsn);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_REDIS_URL(&c->redis_url);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_KAFKA_BROKERS(&c->kafka_brokers);
  /* not the shared default (1 ms): dispatch produces events, a few per request, and waits for
   * each batch's delivery before its next turn; a linger would be added to every offer */
  ADD("MERIDIAN_KAFKA_LINGER_MS", "kafka-linger-ms", "0", "producer linger.ms (events)",
      MRD_CONFIG_INT, 0, 10000, &c->kafka_linger_ms);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_KAFKA_FETCH_WAIT_MS(&c->kafka_fetch_wait_ms);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_LOG_LEVEL(&c->log_level);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_ADMIN_PORT("9100", &c->admin_port);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_ADMIN_ADDR(&c->admin_addr);
  ADD("MERIDIAN_DISPATCH_GROUP_PREFIX", "group-prefix", "dispatch-",
      "Kafka group of committed offsets: <prefix><shard>", MRD_CONFIG_STRING, 0, 0,
      &c->group_prefix);
  ADD("MERIDIAN_DISPATCH_NEARBY_KEY", "nearby-key", "drivers:available",
      "Redis GEO set of available drivers (the gateway's MERIDIAN_GW_NEARBY_KEY)",
      MRD_CONFIG_STRING, 0, 0, &c->nearby_key);
  ADD("MERIDIAN_DISPATCH_SNAP_MAX_M", "snap-max-m", "150",
      "service area: farthest a point may be from the road graph, m", MRD_CONFIG_DOUBLE, 1, 5000,
      &c->snap_max_m);
  ADD("MERIDIAN_DISPATCH_OFFER_TIMEOUT", "offer-timeout", "10s", "an offer expires after this",
      MRD_CONFIG_DURATION_MS, 1000, 600000, &c->offer_timeout_ms);
  ADD("MERIDIAN_DISPATCH_DRIVER_TTL", "driver-ttl", "30s",
      "a driver with no ping this long leaves the index", MRD_CONFIG_DURATION_MS, 1000, 3600000,
      &c->driver_ttl_ms);
  ADD("MERIDIAN_DISPATCH_TICK", "tick", "100ms", "timer period (offer expiry, claims, TTL)",
      MRD_CONFIG_DURATION_MS, 10, 5000, &c->tick_ms);
  ADD("MERIDIAN_DISPATCH_HOT_INTERVAL", "hot-interval", "500ms",
      "hot cells are written this often (what changed)", MRD_CONFIG_DURATION_MS, 50, 60000,
      &c->hot_interval_ms);
  ADD("MERIDIAN_DISPATCH_LOCATIONS_COMMIT", "locations-commit", "1s",
      "driver-locations offsets are committed this often at most (a restart re-reads that much "
      "more; commands are committed as soon as their events are out)",
      MRD_CONFIG_DURATION_MS, 0, 60000, &c->loc_commit_ms);
  ADD("MERIDIAN_DISPATCH_WARMUP", "warmup", "5s",
      "after a start, pings only for this long before commands (drivers ping every 4 s)",
      MRD_CONFIG_DURATION_MS, 0, 120000, &c->warmup_ms);
  ADD("MERIDIAN_DISPATCH_RESTORE_WINDOW", "restore-window", "15m",
      "at start, dispatch-events of this long ago are read back to restore open trips; older ones "
      "come from Redis snapshots (docs/dispatch.md, Restart)",
      MRD_CONFIG_DURATION_MS, 10000, 604800000, &c->restore_window_ms);
  ADD("MERIDIAN_DISPATCH_RESTORE_TIMEOUT", "restore-timeout", "60s",
      "longest the read-back may take before falling back to Redis snapshots",
      MRD_CONFIG_DURATION_MS, 1000, 3600000, &c->restore_timeout_ms);
  ADD("MERIDIAN_DISPATCH_EPOCH_CHECK", "epoch-check", "5s",
      "how often max(epoch) of shard_map is re-read (the fallback of LISTEN shard_map)",
      MRD_CONFIG_DURATION_MS, 100, 3600000, &c->epoch_check_ms);
  ADD("MERIDIAN_DISPATCH_LEASE_TTL", "lease-ttl", "5s",
      "shard lease: expiry after an acquire or renew (a standby takes over this long after the "
      "holder's last renew)",
      MRD_CONFIG_DURATION_MS, 500, 600000, &c->lease_ttl_ms);
  ADD("MERIDIAN_DISPATCH_LEASE_RENEW", "lease-renew", "1s",
      "shard lease: the holder renews this often", MRD_CONFIG_DURATION_MS, 50, 600000,
      &c->lease_renew_ms);
  ADD("MERIDIAN_DISPATCH_LEASE_RETRY", "lease-retry", "500ms",
      "shard lease: a standby tries to acquire this often (and a holder retries a failed renew)",
      MRD_CONFIG_DURATION_MS, 50, 600000, &c->lease_retry_ms);
  ADD("MERIDIAN_DISPATCH_LEASE_MARGIN", "lease-margin", "1500ms",
      "shard lease: the holder stops acting this long before its lease may lapse (must be < ttl - "
      "renew)",
      MRD_CONFIG_DURATION_MS, 50, 600000, &c->lease_margin_ms);
  ADD("MERIDIAN_DISPATCH_K", "k", "8", "nearest available candidates ranked by road ETA",
      MRD_CONFIG_INT, 1, 64, &c->k_candidates);
  ADD("MERIDIAN_DISPATCH_MAX_OFFERS", "max-offers", "5", "offers per trip before no_driver",
      MRD_CONFIG_INT, 1, 64, &c->max_offers);
  ADD("MERIDIAN_DISPATCH_MAX_ETA_S", "max-eta-s", "1200",
      "candidates slower than this by road are dropped, s", MRD_CONFIG_DOUBLE, 10, 7200,
      &c->max_eta_s);
  ADD("MERIDIAN_DISPATCH_PREDICT_MAX_AGE", "predict-max-age", "10s",
      "moving drivers: position predicted along the road from pings up to this old (heading and "
      "speed of the location message); 0: off",
      MRD_CONFIG_DURATION_MS, 0, 600000, &c->predict_max_age_ms);
  ADD("MERIDIAN_DISPATCH_BATCH", "batch", "false",
      "batched matching (Hungarian) instead of one by one", MRD_CONFIG_BOOL, 0, 0, &c->batch);
  ADD("MERIDIAN_DISPATCH_BATCH_WINDOW", "batch-window", "1s",
      "batched mode: the longest a request waits", MRD_CONFIG_DURATION_MS, 1, 60000,
      &c->batch_window_ms);
  ADD("MERIDIAN_DISPATCH_POLL_BATCH", "poll-batch", "256",
      "messages consumed per loop iteration at most", MRD_CONFIG_INT, 1, 100000, &c->poll_batch);
  /* fares and surge (pricing_io.c, surge.h; docs/dispatch.md, Fares and surge) */
  ADD("MERIDIAN_TARIFF", "tariff", "",
      "rate card quoted to riders (data/tariffs/*.tariff); empty: no quotes", MRD_CONFIG_STRING, 0,
      0, &c->tariff_path);
  ADD("MERIDIAN_SURGE_WINDOW", "surge-window", "5m",
      "surge: demand (requests, no_driver) counted over this sliding window",
      MRD_CONFIG_DURATION_MS, 10000, 3600000, &c->surge.window_ms);
  ADD("MERIDIAN_SURGE_INTERVAL", "surge-interval", "5s",
      "surge: update period (one smoothing step)", MRD_CONFIG_DURATION_MS, 500, 600000,
      &c->surge_interval_ms);
  ADD("MERIDIAN_SURGE_THRESHOLD", "surge-threshold", "1.0",
      "surge: demand per (available driver + 1) in the window above which surge starts",
      MRD_CONFIG_DOUBLE, 0, 1000, &c->surge.threshold);
  ADD("MERIDIAN_SURGE_SENSITIVITY", "surge-sensitivity", "0.25",
      "surge: multiplier added per unit of that pressure above the threshold", MRD_CONFIG_DOUBLE, 0,
      100, &c->surge.sensitivity);
  ADD("MERIDIAN_SURGE_NO_DRIVER_WEIGHT", "surge-no-driver-weight", "1.0",
      "surge: extra demand counted for a no_driver outcome", MRD_CONFIG_DOUBLE, 0, 100,
      &c->surge.no_driver_weight);
  ADD("MERIDIAN_SURGE_CAP", "surge-cap", "3.0", "surge: highest multiplier", MRD_CONFIG_DOUBLE, 1,
      100, &c->surge.cap);
  ADD("MERIDIAN_SURGE_SMOOTHING", "surge-smoothing", "0.1",
      "surge: weight of the new target in each update (0..1]", MRD_CONFIG_DOUBLE, 0.001, 1,
      &c->surge.smoothing);
  ADD("MERIDIAN_SURGE_HYSTERESIS", "surge-hysteresis", "0.2",
      "surge: the published multiplier moves only when the smoothed one differs by this",
      MRD_CONFIG_DOUBLE, 0, 10, &c->surge.hysteresis);
  ADD("MERIDIAN_SURGE_STEP", "surge-step", "0.1",
      "surge: published multipliers are multiples of this", MRD_CONFIG_DOUBLE, 0, 1,
      &c->surge.step);
  c->surge.precision = 6;
  g_spec = (mrd_config_spec){
      "meridian-dispatch",
      "one dispatch shard: matching by road ETA, offers, the trip state machine", g_opts, n};
  mrd_config_load_or_exit(&g_spec, argc, argv);
}

void dsvc_config_log(void) { mrd_config_log(&g_spec); }
void dsvc_config_release(void) { mrd_config_release(&g_spec); }
