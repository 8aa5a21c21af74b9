/*
 * server.h: the running gateway: its configuration, the shared state of the event loop
 * (libwebsockets context, Kafka producer and consumer, Redis, PostgreSQL, shard map,
 * metrics) and one connection's state. Shared by main.c and the *_io.c adapters only; the
 * domain logic (gateway.h, handle.h, ratelimit.h, shardmap.h, area.h) never sees it.
 *
 * Everything runs on one thread, the lws event loop: callbacks, Kafka polling (delivery
 * reports and dispatch-events) and timers. Nothing here is thread-safe, by design.
 */
#ifndef MRD_GATEWAY_SERVER_H
#define MRD_GATEWAY_SERVER_H

#include <ev.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include "area.h"
#include "budget.h"
#include "gateway.h"
#include "handle.h"
#include "recent.h"
#include "mrd/admin.h"
#include "mrd/dlq.h"
#include "mrd/kafka.h"
#include "mrd/log.h"
#include "mrd/metrics.h"
#include "mrd/pg.h"
#include "mrd/redis.h"
#include "ratelimit.h"
#include "shardmap.h"

/* The effective configuration (config.c: one table, env MERIDIAN_*, flags override). */
typedef struct gw_config {
  char *host;                         /* listen address, 127.0.0.1 */
  int port;                           /* 8080 */
  char *brokers;                      /* Kafka bootstrap servers (required) */
  char *redis_url;                    /* redis://... (required) */
  char *pg_dsn;                       /* postgresql://... (required) */
  char *jwt_secret;                   /* HS256 secret (required, secret) */
  char *service_area;                 /* GeoJSON path */
  double halo_m;                      /* 1000 */
  double driver_rate, driver_burst;   /* locations per connection: 5/s, 10 */
  double control_rate, control_burst; /* other driver messages: 2/s, 5 */
  double rider_rate, rider_burst;     /* rider messages: 2/s, 5 */
  int requests_per_min;               /* per rider across gateways: 10 */
  int flood_warnings;                 /* 10 */
  int64_t flood_window_ms;            /* 10 s */
  int sendq;                          /* 256 messages per connection */
  int64_t blocked_ms;                 /* 10 s: a client whose queue stays full is closed */
  int nearby_max;                     /* 20 */
  char *nearby_key;                   /* Redis GEO set of available drivers */
  int64_t epoch_check_ms;             /* 1 s: max(epoch) re-read (NOTIFY is the fast path) */
  int linger_ms;                      /* the locations' producer linger: 5 ms */
  int slow_trace_ms;                  /* log a traced request this slow (0: never): 15 */
  int commands_linger_ms;             /* the commands' producer's linger: 0 ms */
  int acked_linger_ms;                /* the acked locations' producer's linger: 1 ms */
  int fetch_wait_ms;                  /* Kafka consumer fetch.wait.max.ms: 100 ms */
  int queue_max;                      /* producer local queue, messages: 100000 */
  int64_t poll_us;                    /* fallback Kafka poll period on the loop: 100000 us */
  char *event_loop;                   /* "epoll" (libev under lws, default) or "poll" (lws's own) */
  int redis_timeout_ms;               /* 200 */
  int64_t token_max_lifetime_ms;      /* 24 h: longer-lived tokens are refused (401) */
  int max_conns;                      /* 10000 WebSocket connections (0 = no cap): 503 */
  double ip_conn_rate, ip_conn_burst; /* new connections per address: 50/s, 2500: 429 */
  double rx_bytes_rate, rx_bytes_burst; /* bytes a user sends: 16 KiB/s, 64 KiB */
  int64_t rx_check_ms;                  /* 250 ms: received bytes charged this often */
  int max_header_bytes;                 /* 8192: HTTP headers above -> 431 */
  double log_rate;                      /* 5 lines/s for refused upgrades, header errors */
  int64_t drain_ms;       /* on SIGTERM: how long to wait for clients to close: 10 s */
  int64_t request_ttl_ms; /* how long a (rider, request_id) is remembered: 24 h */
  bool log_conns;         /* one log line per app connection opened and closed: false */
} gw_config;

/* Parse argv and the environment into cfg; on error prints one line and exits 2. */
void gw_config_load(gw_config *cfg, int argc, char **argv);
/* Free the strings of cfg. */
void gw_config_release(void);

/* A handle on a connection that outlives it: Kafka delivery reports hold one, and find
 * conn == NULL once the connection is gone. */
typedef struct gw_conn_ref {
  struct gw_conn *conn;
  int refs;
} gw_conn_ref;

/* One queued outgoing message: LWS_PRE bytes of headroom, then len bytes of JSON. */
typedef struct gw_out {
  unsigned char *buf;
  size_t len;
  bool droppable;   /* a nearby answer: may be dropped when the queue is full */
  mrd_trace *trace; /* owned, or NULL: a request's trace, finished when this is written */
} gw_out;

/* One HTTP connection (lws per-session data of the "http" protocol, http_server.c). */
typedef struct gw_http_conn {
  char *body; /* the answer being written (heap), NULL when none */
  size_t len;
  uint64_t rx_base; /* socket bytes received before this request (keep-alive) */
} gw_http_conn;

/* One WebSocket connection (lws per-session data of the "meridian" protocol, ws_server.c):
 * made when the upgrade is filtered, where its token is verified, once. */
typedef struct gw_conn {
  struct lws *wsi;
  bool authenticated; /* the upgrade's token was verified (role, user, exp_s set) */
  bool is_ops;        /* an ops stream connection (/v1/ops) */
  bool ws;            /* an established WebSocket */
  gw_role role;
  char user[MRD_ID_MAX + 1]; /* the token's sub */
  gw_conn_ref *ref;
  struct gw_conn *next_in_bucket; /* registry chain by (role, user) */
  bool in_registry;               /* false once replaced by a newer connection of the user */
  int64_t exp_s;                  /* the token's exp: closed with 4001 at that time */
  gw_budget *budget;              /* the user's budget, shared with his other connections */
  uint64_t rx_bytes_seen;         /* the socket's bytes received when last charged */
  int64_t rx_checked_ms;          /* when last charged */
  bool rx_paused;                 /* reading stopped: the user's byte budget is in debt */
  int64_t opened_ms;              /* when the upgrade completed */
  uint32_t n_in, n_out;           /* messages taken in, messages queued to it */
  int64_t last_in_ms;             /* when the last message was taken in (0: none) */
  /* receive */
  char rx[GW_MAX_MESSAGE_BYTES];
  size_t rx_len;
  bool rx_too_large, rx_binary;
  bool closing;             /* close with 1008 at the next writeable (slow consumer) */
  bool drain_then_close;    /* send what is queued, then a close frame close_code/close_reason */
  uint16_t close_code;      /* 1008 flood, 4001 token expired, 4002 replaced */
  const char *close_reason; /* a string literal */
  bool going_away;          /* drained: the gateway is shutting down (1012 "service restart") */
  bool close_sent;          /* our close frame is out: waiting for the client's */
  const char *close_why;
  /* send queue: a ring */
  gw_out *q;
  int q_head, q_len;
  int64_t blocked_since_ms; /* when the queue became full (0 = not full) */
  /* ops stream (ops_io.c): the view of an ops connection, NULL for drivers and riders */
  struct gw_ops_view *ops_view;
  gw_bucket ops_bucket; /* ops only: its own messages rate (ops clients have no user budget) */
  gw_flood ops_flood;
} gw_conn;

#define GW_REGISTRY_BUCKETS 4096
#define GW_RX_SLICES 8 /* the byte budgets are charged a registry slice at a time */
/* recent.h: each user's latest event kept 30 s, for at most 16,384 users (~14 MB) */
#define GW_RECENT_CAP 16384
/* a connection closed by the gateway (replaced, expired, flooding) is cut after this many
 * seconds if its queue and close frame have not gone out by then */
#define GW_CLOSE_DRAIN_S 10
#define GW_RECENT_KEEP_MS 30000

/* Metrics series, got once at start. */
typedef struct gw_metrics {
  mrd_metrics *reg;
  mrd_gauge *conns[2];                /* by role */
  mrd_counter *in[GW_MSG_TYPE_COUNT]; /* by type; [GW_MSG_NONE] = unparsable */
  mrd_counter *out_by_type[8];        /* ack error offer matched no_driver trip nearby other */
  mrd_counter *errors[GW_CODE_COUNT]; /* by code */
  mrd_counter *rate_limited[2];       /* by role */
  mrd_counter *closed_flood, *closed_slow, *dropped_nearby;
  mrd_counter *kafka_failed, *events_in, *events_bad;
  mrd_counter *request_resends, *request_conflicts; /* same request_id again: same / other places */
  mrd_counter *dlq[MRD_FAIL_COUNT];  /* meridian_dlq_events_total{consumer="gateway"} */
  mrd_histogram *produce_latency;    /* seconds, enqueue to delivery report */
  mrd_gauge *shardmap_epoch;         /* the epoch of the map in use */
  mrd_counter *epoch_reloads;        /* maps loaded after an epoch change */
  mrd_counter *events_fenced;        /* dispatch-events of a stale lease generation, dropped */
  mrd_histogram *hop[MRD_HOP_COUNT]; /* seconds per hop of traced requests (mrd/trace.h) */
  mrd_histogram *traced;             /* seconds, gateway received -> answer sent */
  mrd_counter *traces_ok, *traces_skewed, *traces_broken; /* finished traces by outcome */
  mrd_counter *refused[6]; /* upgrades refused: 401 403 404 429 503 431/400 */
  mrd_counter *closed_expired, *closed_replaced, *closed_bad_close, *rx_paused;
  mrd_counter *unrouted;         /* accept/complete... naming a shard not in the map */
  mrd_counter *snapshots_recent; /* on connect, the event kept (recent.h) newer than Redis' */
  mrd_counter *recent_full;      /* events not kept for a reconnection: the table was full */
  mrd_gauge *budgets;            /* per-user budgets held */
} gw_metrics;

/* The gateway. */
typedef struct gw_server {
  gw_config *cfg;
  struct lws_context *ctx;
  struct ev_loop *loop; /* the libev (epoll) loop lws runs on; NULL on lws's own poll() loop */
  struct lws_vhost *vhost;
  gw_area *area;
  gw_shardmap *map;
  mrd_kafka_producer *producer; /* driver-locations (and the DLQ) */
  mrd_kafka_producer
      *cmd_producer; /* dispatch-commands: few, each one a rider or driver waits on */
  mrd_kafka_producer *acked_producer; /* driver-locations sent with a ref: the app awaits the ack */
  mrd_kafka_consumer *consumer;
  int wake_fd[2]; /* pipe librdkafka writes to when a Kafka queue gets work; the read
                     end is adopted by the lws loop (-1 when not made) */
  mrd_redis *redis;
  mrd_pg *pg;
  gw_metrics m;
  mrd_health health; /* what /readyz and /metrics answer (mrd_admin_respond) */
  gw_conn *registry[GW_REGISTRY_BUCKETS];
  lws_sorted_usec_list_t sul_poll, sul_housekeeping; /* timers on lws's poll() loop */
  ev_timer ev_poll, ev_housekeeping;                 /* the same on the libev loop */
  bool kafka_ready, stopping;
  bool wake_adopted; /* the lws loop owns wake_fd[0] (and closes it) */
  uint64_t counter;  /* for unique ids (rate-limit window members) */
  gw_plan *plan;     /* the plan of the message being handled (handle.h), refilled each time */
  uint64_t notified_epoch;       /* the highest epoch named by the notifications just read */
  unsigned pg_connects;          /* mrd_pg_reconnects when last looked at */
  int64_t next_notify_ms;        /* notifications are read at most every GW_NOTIFY_MS */
  mrd_fence fence;               /* highest lease generation seen per dispatch shard */
  gw_budgets *budgets;           /* per (role, user), shared by his connections */
  gw_iprate *iprate;             /* new connections per client address */
  gw_recent *recent;             /* each user's latest event, for the snapshot on connect */
  int open_ws;                   /* WebSocket connections established and not yet closed */
  mrd_log_gate refusal_log;      /* 401/403/429/503 and header errors, MERIDIAN_GW_LOG_RATE */
  lws_sorted_usec_list_t sul_rx; /* rx byte accounting on lws's poll() loop */
  int rx_slice;                  /* the registry slice charged next (rx_check_slice) */
  ev_timer ev_rx;                /* the same on the libev loop */
  struct gw_ops_io *ops;         /* the ops stream (ops_io.c); NULL until started */
  uint64_t rng;                  /* splitmix64 state for trace and span ids, seeded at start */
} gw_server;

/* Kafka (kafka_io.c) ---------------------------------------------------------------- */

/* Create the producer and the consumer of every partition of dispatch-events from the
 * end, and the wake pipe (s->wake_fd) librdkafka writes to when either has work. Returns
 * 0, or a negative MRD_E* with a log line. */
int gw_kafka_start(gw_server *s);
/* Serve delivery reports and dispatch-events without blocking (on a wake-up of the pipe,
 * and from a slow fallback timer). Returns true when events are left (the bound per call
 * was reached): call again soon, the pipe will not say so. */
bool gw_kafka_poll(gw_server *s);
/* Stop librdkafka writing to the wake pipe (before the loop that reads it goes away). */
void gw_kafka_wake_off(gw_server *s);
/* Flush the producer for at most timeout_ms, then destroy both handles and the pipe's
 * write end (the loop closed the read end). */
void gw_kafka_stop(gw_server *s, int timeout_ms);
/* A ride request's idempotency key gw:req:{rider}:{request_id} and the value this gateway
 * set it to (all borrowed). */
typedef struct gw_request_key {
  const char *request_id, *rider, *value;
} gw_request_key;

/* Produce payload to topic/partition with key; topic must be a string literal (kept
 * until the delivery report). When ack_ref is non-NULL the client gets
 * ack {ref} on delivery (or error unavailable on failure). forget (copied; may be NULL): a
 * new ride request's key, confirmed (gw_request_confirm) on delivery and deleted
 * (gw_request_forget) if the delivery fails, so that the client's retry is new. Returns 0 or a
 * negative MRD_E*: MRD_EFULL when the local queue is full, MRD_ENOMEM, or the producer's error
 * (logged). */
int gw_kafka_produce(gw_server *s, gw_conn *c, const char *topic, int32_t partition,
                     const char *key, const void *payload, size_t len, const char *ack_ref,
                     const gw_request_key *forget);

/* Stores (store_io.c): Redis and PostgreSQL ------------------------------------------ */

/* Load the newest shard map from PostgreSQL; swaps it in on success. Returns 0, or a
 * negative MRD_E* (logged): PostgreSQL's, MRD_ENOTFOUND (no rows), MRD_EPARSE (a bad row),
 * MRD_EINVAL (rows that do not tile the world), MRD_ENOMEM. */
int gw_shardmap_load(gw_server *s);
/* LISTEN shard_map on the PostgreSQL handle (again after each reconnect). Returns 0 or
 * an MRD_E* (logged; the periodic read still works). */
int gw_epoch_listen(gw_server *s);
/* Read the shard_map notifications that arrived (never blocks) and reload the map when one
 * names another epoch; after a reconnect, re-read max(epoch). Called from the loop's Kafka
 * poll, at most every GW_NOTIFY_MS. */
#define GW_NOTIFY_MS 20
void gw_epoch_notified(gw_server *s);
/* The fallback: read max(epoch) from PostgreSQL and reload the map when it differs. */
void gw_epoch_check(gw_server *s);
/* The Redis side of handle.h's ports (gw_ports), each 0 or a negative MRD_E* (Redis
 * unreachable, timed out, or an unexpected reply: MRD_EREPLY): */
/* the sliding-window limit on ride requests per rider across gateways (*allowed);
 * MERIDIAN_GW_REQUESTS_PER_MIN in 60 s */
int gw_request_window(gw_server *s, const char *rider, int64_t now_ms, bool *allowed);
/* SET gw:req:{rider}:{request_id} value NX EX <request TTL> GET (schemas/redis.md): the old
 * value into stored (cap bytes) with *existed, or *existed = false when the key was new */
int gw_request_claim(gw_server *s, const char *rider, const char *request_id, const char *value,
                     bool *existed, char *stored, size_t cap);
/* GET gw:req:{rider}:{request_id} into value (cap bytes): MRD_ENOTFOUND when there is none */
int gw_request_get(gw_server *s, const char *rider, const char *request_id, char *value,
                   size_t cap);
/* GEOSEARCH of the available drivers' GEO set: up to cap points within radius_m, in out, *n */
int gw_nearby(gw_server *s, mrd_latlon at, double radius_m, mrd_latlon *out, size_t cap, size_t *n);
/* Deletes the request's key if it still holds k->value (compare-and-delete): the request it
 * recorded never reached Kafka, so the client's retry must count as new. Logs a failure (the
 * key then stays: a retry is a resend the shard refuses, never a second trip). */
void gw_request_forget(gw_server *s, const gw_request_key *k);
/* The request's command was delivered: the key's unconfirmed value k->value becomes the
 * confirmed one (compare-and-set, Lua, keeping the TTL), so that a retry from now on is a
 * resend. Logs a failure (the key then stays unconfirmed: a retry goes to the same shard
 * unflagged, which answers from the trip it holds). */
void gw_request_confirm(gw_server *s, const gw_request_key *k);
/* handle.h's ports on s: the functions above, the wall clock and gw_random_bytes. */
gw_ports gw_store_ports(gw_server *s);
/* The latest event of the user's active trip (or, for a rider, of his trip that ended
 * lately): 0 with *found and *ev, or a negative MRD_E*. */
int gw_trip_snapshot(gw_server *s, gw_role role, const char *user, mrd_dispatch_event *ev,
                     bool *found);

/* HTTP side (http_server.c) ------------------------------------------------------------ */

/* The HTTP protocol callback: /healthz /readyz /metrics, /v1/ops/roads, keep-alive, the 431
 * check, connections dropped before a whole request. user: a gw_http_conn, or NULL. */
int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);
/* /readyz (mrd_health's callback, ud = the gw_server): Kafka assigned, a shard map loaded,
 * Redis answering, not stopping. 0 ready, 1 not (with the reasons in reason). */
int gw_ready(void *ud, char *reason, size_t cap);
/* Write a whole raw HTTP/1.1 answer of status (401 403 404 429 503 431) before the upgrade;
 * the caller then closes. */
void gw_refuse_http(struct lws *wsi, int status);
/* Refuse an upgrade bound to a protocol that is no WebSocket endpoint (http_server.c). */
void gw_refuse_not_ours(gw_server *s, struct lws *wsi);
/* Count a refusal in /metrics and log it, at most MERIDIAN_GW_LOG_RATE lines a second. */
void gw_log_refusal(gw_server *s, struct lws *wsi, int status, const char *why);
/* The bytes the kernel received and sent on wsi's socket (TCP_INFO); false when it cannot say. */
bool gw_socket_bytes(struct lws *wsi, uint64_t *received, uint64_t *sent);
/* lws's own header buffer: far above MERIDIAN_GW_MAX_HEADER_BYTES, so that the 431 check
 * runs once lws has the whole head (lws drops a request beyond it without an answer). */
#define GW_LWS_HEADER_BUFFER (256 * 1024)
/* Answer 431 (and log) when the request's head, the bytes received since rx_base, passes
 * MERIDIAN_GW_MAX_HEADER_BYTES. True when refused: the callback returns -1. */
bool gw_refuse_large_headers(gw_server *s, struct lws *wsi, uint64_t rx_base);
/* A connection lws closed before a whole request arrived: counted and logged (rate-limited). */
void gw_note_header_error(gw_server *s, struct lws *wsi);

/* WebSocket side (ws_server.c) ---------------------------------------------------------- */

/* Create the lws context and listen. Returns 0, or a negative MRD_E* with a log line
 * (MRD_ENOMEM; MRD_EIO: lws could not make its context, listen or adopt the wake pipe). */
int gw_ws_start(gw_server *s);

/* One turn of the event loop (blocks until something happens or a timer is due): libev's
 * ev_run(EVRUN_ONCE) or lws_service(). Returns 0, or MRD_EIO when the loop cannot continue. */
int gw_ws_run_once(gw_server *s);

/* The per-user budgets, per-address rates and refusal log gate (before gw_ws_start).
 * Returns 0 or MRD_ENOMEM. */
int gw_limits_start(gw_server *s);
/* Free what gw_limits_start made (after gw_ws_stop). */
void gw_limits_stop(gw_server *s);
/* Graceful shutdown, step one (s->stopping set first, so /readyz fails and new upgrades get
 * 503): every open WebSocket sends what it has queued, then a close frame 1012 "service
 * restart", on which clients reconnect (to another gateway). Returns the connections asked to
 * close. */
size_t gw_ws_drain(gw_server *s);
/* Open WebSocket connections (the registry's). */
size_t gw_ws_open(const gw_server *s);

/* Destroys the lws context and then the libev loop (each may be NULL). */
void gw_ws_stop(gw_server *s);
/* Queue a JSON text for a connection (copied). droppable: see gw_out. */
void gw_send(gw_server *s, gw_conn *c, const char *json, size_t len, bool droppable);
/* Send an error reply. */
void gw_send_error(gw_server *s, gw_conn *c, const gw_error *err);
/* Deliver one dispatch event to every connection it concerns. An event whose trace has the
 * gateway's consumed stamp (kafka_io.c sets it on OFFERED and NO_DRIVER) gives its trace to
 * the rider's copy, finished (gw_trace_finish) when that copy is written to the socket. */
void gw_deliver_event(gw_server *s, const mrd_dispatch_event *ev);
/* Milliseconds / microseconds of wall-clock time (Unix epoch). */
int64_t gw_now_ms(void);
int64_t gw_now_us(void);

/* Traces (ws_server.c) ------------------------------------------------------------------- */

/* n random bytes for trace and span ids (splitmix64 on s->rng: unique, not secret). */
void gw_random_bytes(gw_server *s, uint8_t *out, size_t n);
/* A trace is tolerated this much backwards between two processes' clocks (hops clamp to 0). */
#define GW_TRACE_SKEW_US 1000
/* Stamp t sent at sent_us, and record its hops and total in the metrics. */
void gw_trace_finish(gw_server *s, mrd_trace *t, int64_t sent_us);

#endif /* MRD_GATEWAY_SERVER_H */
