/*
 * config.c: meridian-trips' configuration table (mrd_config).
 */
#include "mrd/config.h"
#include "mrd/tz.h"
#include "service.h"

static mrd_config_opt g_opts[20];
static mrd_config_spec g_spec;

#define ADD(env, flag, def, help, type, lo, hi, dst)                                               \
  g_opts[n++] = (mrd_config_opt) { env, flag, def, help, type, lo, hi, false, dst }

void tsvc_config_load(tsvc_config *c, int argc, char **argv) {
  size_t n = 0;
  g_opts[n++] = (mrd_config_opt)MRD_OPT_PG_DSN(&c->pg_dsn);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_KAFKA_BROKERS(&c->kafka_brokers);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_KAFKA_FETCH_WAIT_MS(&c->kafka_fetch_wait_ms);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_LOG_LEVEL(&c->log_level);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_ADMIN_PORT("9105", &c->admin_port);
  g_opts[n++] = (mrd_config_opt)MRD_OPT_ADMIN_ADDR(&c->admin_addr);
  ADD("MERIDIAN_TRIPS_GROUP", "group", "trips", "Kafka group of the committed offsets",
      MRD_CONFIG_STRING, 0, 0, &c->group);
  ADD("MERIDIAN_TRIPS_PARTITIONS", "partitions", "64",
      "partitions of dispatch-events (all are read)", MRD_CONFIG_INT, 1, 1024, &c->partitions);
  ADD("MERIDIAN_TRIPS_BATCH", "batch", "500", "events recorded per transaction at most",
      MRD_CONFIG_INT, 1, 100000, &c->batch_max);
  ADD("MERIDIAN_TRIPS_BACKOFF_MIN", "backoff-min", "100ms", "first wait after a failed transaction",
      MRD_CONFIG_DURATION_MS, 1, 60000, &c->backoff_min_ms);
  ADD("MERIDIAN_TRIPS_BACKOFF_MAX", "backoff-max", "5s", "longest wait between retries",
      MRD_CONFIG_DURATION_MS, 1, 600000, &c->backoff_max_ms);
  ADD("MERIDIAN_TRIPS_MAX_ATTEMPTS", "max-attempts", "5",
      "attempts of an event failing transiently (deadlock, time-out) before it is parked in "
      "dispatch-events-dlq (a lost connection is retried for as long as it lasts)",
      MRD_CONFIG_INT, 1, 1000, &c->max_attempts);
  ADD("MERIDIAN_GRAPH", "graph", "",
      "road graph snapshot for the trip's route, ETA and fare (empty: none)", MRD_CONFIG_STRING, 0,
      0, &c->graph_path);
  ADD("MERIDIAN_TIMEZONE", "timezone", MRD_TIMEZONE_DEFAULT,
      "local time zone of the trip ETA's hour and weekday (the calibration's)", MRD_CONFIG_STRING,
      0, 0, &c->timezone);
  ADD("MERIDIAN_TARIFF", "tariff", "",
      "rate card of the fare estimate and the final fare (data/tariffs/*.tariff; empty: none)",
      MRD_CONFIG_STRING, 0, 0, &c->tariff_path);
  g_spec = (mrd_config_spec){"meridian-trips",
                             "the durable trip record in PostGIS from dispatch-events", g_opts, n};
  mrd_config_load_or_exit(&g_spec, argc, argv);
}

void tsvc_config_log(void) { mrd_config_log(&g_spec); }
void tsvc_config_release(void) { mrd_config_release(&g_spec); }
