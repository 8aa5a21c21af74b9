/*
 * config.c: the gateway's configuration table (mrd/config.h): every MERIDIAN_* variable,
 * its flag, default, range and help. `meridian-gateway --help` prints it. Secrets (the JWT
 * secret) come only from the environment or MERIDIAN_JWT_SECRET_FILE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrd/config.h"
#include "server.h"

static mrd_config_opt opts[40];
static mrd_config_spec spec;
static int poll_us; /* an INT option, copied into the int64 field */

#define OPT(env, flag, def, help, type, lo, hi, dst) \
  {env, flag, def, help, type, lo, hi, false, dst}

void gw_config_load(gw_config *c, int argc, char **argv) {
  size_t n = 0;
#define ADD(...) opts[n++] = (mrd_config_opt)OPT(__VA_ARGS__)
  ADD("MERIDIAN_GATEWAY_HOST", "host", "127.0.0.1", "listen address", MRD_CONFIG_STRING, 0, 0, &c->host);
  ADD("MERIDIAN_GATEWAY_PORT", "port", "8080", "listen port (WebSocket and HTTP)", MRD_CONFIG_INT, 1, 65535, &c->port);
  ADD("MERIDIAN_KAFKA_BROKERS", "brokers", NULL, "Kafka bootstrap servers", MRD_CONFIG_STRING, 0, 0, &c->brokers);
  ADD("MERIDIAN_REDIS_URL", "redis", NULL, "Redis URL redis://host:port", MRD_CONFIG_STRING, 0, 0, &c->redis_url);
  ADD("MERIDIAN_PG_DSN", "pg", NULL, "PostgreSQL DSN (shard map)", MRD_CONFIG_STRING, 0, 0, &c->pg_dsn);
  opts[n++] = (mrd_config_opt){"MERIDIAN_JWT_SECRET", NULL, NULL, "HS256 secret of client tokens",
                               MRD_CONFIG_STRING, 0, 0, true, &c->jwt_secret};
  ADD("MERIDIAN_SERVICE_AREA", "service-area", "data/roads/manhattan-boundary.geojson",
      "GeoJSON polygons of the service area", MRD_CONFIG_STRING, 0, 0, &c->service_area);
  ADD("MERIDIAN_HALO_M", "halo-m", "1000", "halo distance in metres (0 = none)", MRD_CONFIG_DOUBLE, 0, 20000, &c->halo_m);
  ADD("MERIDIAN_GW_DRIVER_RATE", "driver-rate", "5", "driver locations per second per connection", MRD_CONFIG_DOUBLE, 0.01, 100000, &c->driver_rate);
  ADD("MERIDIAN_GW_DRIVER_BURST", "driver-burst", "10", "driver location burst", MRD_CONFIG_DOUBLE, 1, 100000, &c->driver_burst);
  ADD("MERIDIAN_GW_CONTROL_RATE", "control-rate", "2", "other driver messages per second", MRD_CONFIG_DOUBLE, 0.01, 100000, &c->control_rate);
  ADD("MERIDIAN_GW_CONTROL_BURST", "control-burst", "5", "other driver messages burst", MRD_CONFIG_DOUBLE, 1, 100000, &c->control_burst);
  ADD("MERIDIAN_GW_RIDER_RATE", "rider-rate", "2", "rider messages per second per connection", MRD_CONFIG_DOUBLE, 0.01, 100000, &c->rider_rate);
  ADD("MERIDIAN_GW_RIDER_BURST", "rider-burst", "5", "rider message burst", MRD_CONFIG_DOUBLE, 1, 100000, &c->rider_burst);
  ADD("MERIDIAN_GW_REQUESTS_PER_MIN", "requests-per-min", "10", "ride requests per rider per minute, all gateways", MRD_CONFIG_INT, 1, 100000, &c->requests_per_min);
  ADD("MERIDIAN_GW_FLOOD_WARNINGS", "flood-warnings", "10", "rate_limited answers tolerated per window before close 1008", MRD_CONFIG_INT, 0, 100000, &c->flood_warnings);
  ADD("MERIDIAN_GW_FLOOD_WINDOW_MS", "flood-window", "10s", "flood window", MRD_CONFIG_DURATION_MS, 1, 3600000, &c->flood_window_ms);
  ADD("MERIDIAN_GW_SENDQ", "sendq", "256", "messages queued per connection", MRD_CONFIG_INT, 4, 100000, &c->sendq);
  ADD("MERIDIAN_GW_BLOCKED_MS", "blocked", "10s", "a client whose send queue stays full this long is closed", MRD_CONFIG_DURATION_MS, 100, 3600000, &c->blocked_ms);
  ADD("MERIDIAN_NEARBY_MAX", "nearby-max", "20", "drivers in a nearby answer", MRD_CONFIG_INT, 1, 100, &c->nearby_max);
  ADD("MERIDIAN_GW_NEARBY_KEY", "nearby-key", "drivers:available", "Redis GEO set of available drivers", MRD_CONFIG_STRING, 0, 0, &c->nearby_key);
  ADD("MERIDIAN_GW_EPOCH_CHECK_MS", "epoch-check", "1s", "how often max(epoch) of shard_map is re-read (the fallback of LISTEN shard_map) and blocked clients are looked for", MRD_CONFIG_DURATION_MS, 10, 3600000, &c->epoch_check_ms);
  ADD("MERIDIAN_KAFKA_LINGER_MS", "linger-ms", "1", "producer linger.ms", MRD_CONFIG_INT, 0, 10000, &c->linger_ms);
  ADD("MERIDIAN_KAFKA_FETCH_WAIT_MS", "fetch-wait-ms", "10", "consumer fetch.wait.max.ms", MRD_CONFIG_INT, 1, 10000, &c->fetch_wait_ms);
  ADD("MERIDIAN_GW_KAFKA_QUEUE", "kafka-queue", "100000", "producer local queue (messages); full -> unavailable", MRD_CONFIG_INT, 1, 10000000, &c->queue_max);
  ADD("MERIDIAN_GW_POLL_US", "poll-us", "100000", "fallback Kafka poll period on the event loop (us); librdkafka wakes the loop itself", MRD_CONFIG_INT, 100, 1000000, &poll_us);
  ADD("MERIDIAN_GW_EVENT_LOOP", "event-loop", "epoll", "event loop under lws: epoll (libev) or poll (lws's own)", MRD_CONFIG_STRING, 0, 0, &c->event_loop);
  ADD("MERIDIAN_GW_REDIS_TIMEOUT_MS", "redis-timeout-ms", "200", "Redis command time limit", MRD_CONFIG_INT, 10, 10000, &c->redis_timeout_ms);
#undef ADD
  spec = (mrd_config_spec){"meridian-gateway",
                           "the WebSocket edge for drivers and riders (docs/protocol.md)", opts, n};
  mrd_config_load_or_exit(&spec, argc, argv);
  c->poll_us = poll_us;
  if (strcmp(c->event_loop, "epoll") != 0 && strcmp(c->event_loop, "poll") != 0) {
    fprintf(stderr, "MERIDIAN_GW_EVENT_LOOP (--event-loop): \"%s\" is neither epoll nor poll\n", c->event_loop);
    mrd_config_release(&spec);
    exit(2);
  }
  mrd_config_log(&spec);
}

void gw_config_release(void) { mrd_config_release(&spec); }
