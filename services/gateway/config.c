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

static mrd_config_opt opts[56];
static mrd_config_spec spec;
static int poll_us; /* an INT option, copied into the int64 field */

#define OPT(env, flag, def, help, type, lo, hi, dst)                                               \
  { env, flag, def, help, type, lo, hi, false, dst }

/* Issue 13's limits: token lifetime, connection admission, per-user byte budget, header
 * size and the rate of refusal log lines. Rates and bursts of messages (above) are per
 * user: all of a user's connections share them. */
static void add_limits(mrd_config_opt *o, size_t *n, gw_config *c) {
#define ADDL(...) o[(*n)++] = (mrd_config_opt)OPT(__VA_ARGS__)
  ADDL("MERIDIAN_GW_TOKEN_MAX_LIFETIME", "token-max-lifetime", "24h",
       "longest token lifetime accepted (exp - iat, or exp - now without iat)",
       MRD_CONFIG_DURATION_MS, 1000, 31622400000.0, &c->token_max_lifetime_ms);
  ADDL("MERIDIAN_GW_MAX_CONNS", "max-conns", "10000",
       "WebSocket connections open at once (0 = no cap); above -> 503", MRD_CONFIG_INT, 0, 10000000,
       &c->max_conns);
  ADDL("MERIDIAN_GW_IP_CONN_RATE", "ip-conn-rate", "50",
       "new connections per second per client address; above -> 429", MRD_CONFIG_DOUBLE, 0.01,
       1000000, &c->ip_conn_rate);
  ADDL("MERIDIAN_GW_IP_CONN_BURST", "ip-conn-burst", "2500",
       "new connections per client address in a burst", MRD_CONFIG_DOUBLE, 1, 10000000,
       &c->ip_conn_burst);
  ADDL("MERIDIAN_GW_RX_BYTES_RATE", "rx-bytes-rate", "16384",
       "bytes per second a user may send (all frames, pings included)", MRD_CONFIG_DOUBLE, 1, 1e12,
       &c->rx_bytes_rate);
  ADDL("MERIDIAN_GW_RX_BYTES_BURST", "rx-bytes-burst", "65536",
       "bytes a user may send in a burst; twice this in debt closes with 1008", MRD_CONFIG_DOUBLE,
       1024, 1e12, &c->rx_bytes_burst);
  ADDL("MERIDIAN_GW_RX_CHECK_MS", "rx-check", "250ms",
       "how often received bytes are charged to the byte budgets", MRD_CONFIG_DURATION_MS, 10,
       60000, &c->rx_check_ms);
  ADDL("MERIDIAN_GW_MAX_HEADER_BYTES", "max-header-bytes", "8192",
       "HTTP request header bytes; above -> 431", MRD_CONFIG_INT, 1024, 131072,
       &c->max_header_bytes);
  ADDL("MERIDIAN_GW_LOG_RATE", "log-rate", "5",
       "log lines per second for refused upgrades and header errors (the rest counted)",
       MRD_CONFIG_DOUBLE, 0.01, 100000, &c->log_rate);
  ADDL("MERIDIAN_GW_LOG_CONNS", "log-conns", "false",
       "log every app connection opened and closed, with its message counts (diagnosis)",
       MRD_CONFIG_BOOL, 0, 0, &c->log_conns);
#undef ADDL
}

void gw_config_load(gw_config *c, int argc, char **argv) {
  size_t n = 0;
#define ADD(...) opts[n++] = (mrd_config_opt)OPT(__VA_ARGS__)
  ADD("MERIDIAN_GATEWAY_HOST", "host", "127.0.0.1", "listen address", MRD_CONFIG_STRING, 0, 0,
      &c->host);
  ADD("MERIDIAN_GATEWAY_PORT", "port", "8080", "listen port (WebSocket and HTTP)", MRD_CONFIG_INT,
      1, 65535, &c->port);
  ADD("MERIDIAN_KAFKA_BROKERS", "brokers", NULL, "Kafka bootstrap servers", MRD_CONFIG_STRING, 0, 0,
      &c->brokers);
  ADD("MERIDIAN_REDIS_URL", "redis", NULL, "Redis URL redis://host:port", MRD_CONFIG_STRING, 0, 0,
      &c->redis_url);
  ADD("MERIDIAN_PG_DSN", "pg", NULL, "PostgreSQL DSN (shard map)", MRD_CONFIG_STRING, 0, 0,
      &c->pg_dsn);
  opts[n++] = (mrd_config_opt){"MERIDIAN_JWT_SECRET", NULL, NULL, "HS256 secret of client tokens",
                               MRD_CONFIG_STRING,     0,    0,    true,
                               &c->jwt_secret};
  ADD("MERIDIAN_SERVICE_AREA", "service-area", "data/roads/manhattan-boundary.geojson",
      "GeoJSON polygons of the service area", MRD_CONFIG_STRING, 0, 0, &c->service_area);
  ADD("MERIDIAN_HALO_M", "halo-m", "1000", "halo distance in metres (0 = none)", MRD_CONFIG_DOUBLE,
      0, 20000, &c->halo_m);
  ADD("MERIDIAN_GW_DRIVER_RATE", "driver-rate", "5", "driver locations per second per connection",
      MRD_CONFIG_DOUBLE, 0.01, 100000, &c->driver_rate);
  ADD("MERIDIAN_GW_DRIVER_BURST", "driver-burst", "10", "driver location burst", MRD_CONFIG_DOUBLE,
      1, 100000, &c->driver_burst);
  ADD("MERIDIAN_GW_CONTROL_RATE", "control-rate", "2", "other driver messages per second",
      MRD_CONFIG_DOUBLE, 0.01, 100000, &c->control_rate);
  ADD("MERIDIAN_GW_CONTROL_BURST", "control-burst", "5", "other driver messages burst",
      MRD_CONFIG_DOUBLE, 1, 100000, &c->control_burst);
  ADD("MERIDIAN_GW_RIDER_RATE", "rider-rate", "2", "rider messages per second per connection",
      MRD_CONFIG_DOUBLE, 0.01, 100000, &c->rider_rate);
  ADD("MERIDIAN_GW_RIDER_BURST", "rider-burst", "5", "rider message burst", MRD_CONFIG_DOUBLE, 1,
      100000, &c->rider_burst);
  ADD("MERIDIAN_GW_REQUESTS_PER_MIN", "requests-per-min", "10",
      "ride requests per rider per minute, all gateways", MRD_CONFIG_INT, 1, 100000,
      &c->requests_per_min);
  ADD("MERIDIAN_GW_FLOOD_WARNINGS", "flood-warnings", "10",
      "rate_limited answers tolerated per window before close 1008", MRD_CONFIG_INT, 0, 100000,
      &c->flood_warnings);
  ADD("MERIDIAN_GW_FLOOD_WINDOW_MS", "flood-window", "10s", "flood window", MRD_CONFIG_DURATION_MS,
      1, 3600000, &c->flood_window_ms);
  ADD("MERIDIAN_GW_SENDQ", "sendq", "256", "messages queued per connection", MRD_CONFIG_INT, 4,
      100000, &c->sendq);
  ADD("MERIDIAN_GW_BLOCKED_MS", "blocked", "10s",
      "a client whose send queue stays full this long is closed", MRD_CONFIG_DURATION_MS, 100,
      3600000, &c->blocked_ms);
  ADD("MERIDIAN_NEARBY_MAX", "nearby-max", "20", "drivers in a nearby answer", MRD_CONFIG_INT, 1,
      100, &c->nearby_max);
  ADD("MERIDIAN_GW_NEARBY_KEY", "nearby-key", "drivers:available",
      "Redis GEO set of available drivers", MRD_CONFIG_STRING, 0, 0, &c->nearby_key);
  ADD("MERIDIAN_GW_EPOCH_CHECK_MS", "epoch-check", "1s",
      "how often max(epoch) of shard_map is re-read (the fallback of LISTEN shard_map) and blocked "
      "clients are looked for",
      MRD_CONFIG_DURATION_MS, 10, 3600000, &c->epoch_check_ms);
  ADD("MERIDIAN_KAFKA_LINGER_MS", "linger-ms", "5",
      "linger.ms of the locations' producer: a few ms gather a partition's pings into one "
      "produce request (docs/capacity.md)",
      MRD_CONFIG_INT, 0, 10000, &c->linger_ms);
  ADD("MERIDIAN_GW_COMMANDS_LINGER_MS", "commands-linger-ms", "0",
      "linger.ms of the producer of dispatch-commands (requests and trip steps: a few a second, "
      "each one awaited; locations keep MERIDIAN_KAFKA_LINGER_MS)",
      MRD_CONFIG_INT, 0, 10000, &c->commands_linger_ms);
  ADD("MERIDIAN_GW_ACKED_LINGER_MS", "acked-linger-ms", "1",
      "linger.ms of the producer of the locations sent with a ref (the app waits for their ack; "
      "those without one are batched with MERIDIAN_KAFKA_LINGER_MS)",
      MRD_CONFIG_INT, 0, 10000, &c->acked_linger_ms);
  ADD("MERIDIAN_GW_SLOW_TRACE_MS", "slow-trace-ms", "15",
      "a traced ride request whose first answer took at least this long (gateway received -> "
      "sent) is logged as slow_request with its traceparent and hops; 0: never",
      MRD_CONFIG_INT, 0, 600000, &c->slow_trace_ms);
  ADD("MERIDIAN_KAFKA_FETCH_WAIT_MS", "fetch-wait-ms", "100", "consumer fetch.wait.max.ms",
      MRD_CONFIG_INT, 1, 10000, &c->fetch_wait_ms);
  ADD("MERIDIAN_GW_KAFKA_QUEUE", "kafka-queue", "100000",
      "producer local queue (messages); full -> unavailable", MRD_CONFIG_INT, 1, 10000000,
      &c->queue_max);
  ADD("MERIDIAN_GW_POLL_US", "poll-us", "100000",
      "fallback Kafka poll period on the event loop (us); librdkafka wakes the loop itself",
      MRD_CONFIG_INT, 100, 1000000, &poll_us);
  ADD("MERIDIAN_GW_EVENT_LOOP", "event-loop", "epoll",
      "event loop under lws: epoll (libev) or poll (lws's own)", MRD_CONFIG_STRING, 0, 0,
      &c->event_loop);
  ADD("MERIDIAN_GW_REDIS_TIMEOUT_MS", "redis-timeout-ms", "200", "Redis command time limit",
      MRD_CONFIG_INT, 10, 10000, &c->redis_timeout_ms);
  add_limits(opts, &n, c);
  ADD("MERIDIAN_GW_DRAIN_MS", "drain", "10s",
      "on SIGTERM: time for clients to answer the 1012 close before exit", MRD_CONFIG_DURATION_MS,
      0, 600000, &c->drain_ms);
  ADD("MERIDIAN_GW_REQUEST_TTL", "request-ttl", "24h",
      "how long a rider's request_id is remembered (gw:req:{rider}:{request_id}): a resend within "
      "it never makes a second trip",
      MRD_CONFIG_DURATION_MS, 60000, 2592000000LL, &c->request_ttl_ms);
#undef ADD
  spec = (mrd_config_spec){"meridian-gateway",
                           "the WebSocket edge for drivers and riders (docs/protocol.md)", opts, n};
  mrd_config_load_or_exit(&spec, argc, argv);
  c->poll_us = poll_us;
  if (strcmp(c->event_loop, "epoll") != 0 && strcmp(c->event_loop, "poll") != 0) {
    fprintf(stderr, "MERIDIAN_GW_EVENT_LOOP (--event-loop): \"%s\" is neither epoll nor poll\n",
            c->event_loop);
    mrd_config_release(&spec);
    exit(2);
  }
  mrd_config_log(&spec);
}

void gw_config_release(void) { mrd_config_release(&spec); }
