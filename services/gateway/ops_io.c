/*
 * ops_io.c: the thin adapter of the ops stream (/v1/ops) and the ops page (/ops/). What is
 * shown and how it is coded is ops.c's (pure, unit-tested); this file only moves data:
 *   - a Kafka consumer of every partition of `driver-locations` and `dispatch-commands`
 *     from the end, made when the first ops client connects and dropped after 30 s without
 *     one (a gateway with no ops client reads no locations), polled on a 50 ms timer,
 *     bounded per turn. Assigning from the end asks every partition's leader for its end
 *     offset (about 3 s for 128 partitions here), so a helper thread makes the consumer and
 *     hands it over: the event loop never waits for it;
 *   - dispatch-events arrive through gw_ops_io_event (kafka_io.c's consumer, every replica
 *     reads them all anyway);
 *   - every 2 s: hot cells from Redis (hot:supply:{shard}, hot:demand:{shard} and
 *     hot:surge:{shard} for every shard of the map), the shard map in use, expiry;
 *   - every 0.25 s while an ops client is connected: the move in progress, from PostgreSQL
 *     (the `shard_runs` row that `meridianctl shards apply|move` keeps: in state 'running',
 *     or ended in the last 5 s so that a step quicker than a frame is seen; its step under
 *     way; whether the CLI's advisory lock is still held) and the two shards' serving
 *     epochs from Redis (dispatch:stats:{k} epoch); gw_ops_move_state names what the step
 *     is doing;
 *   - on start, the live trips dispatch keeps in Redis (dispatch:live:{shard} and
 *     trip:snap:{trip_id}), so the map shows trips that began before the gateway did;
 *   - one frame per ops connection per period, skipped while its send queue is backed up
 *     (the next frame carries the deltas from what was really queued);
 *   - HTTP: GET /v1/ops/roads (the road graph of MERIDIAN_GRAPH as GeoJSON, built once),
 *     and the static files of the page under /ops/ (MERIDIAN_OPS_WEB_DIR, default the
 *     build's ops-web directory beside bin/).
 * Configuration (environment): MERIDIAN_OPS_PERIOD_MS (1000), MERIDIAN_OPS_BUDGET_BPS
 * (150000), MERIDIAN_OPS_MAX_CONNS (8), MERIDIAN_OPS_WEB_DIR, MERIDIAN_GRAPH (optional).
 */
#define _POSIX_C_SOURCE 200809L
#include "ops_io.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "geo/snapshot.h"
#include "mrd/jwt.h"
#include "mrd/log.h"
#include "mrd/proto.h"
#include "ops.h"

#define OPS_MAX_CONNS_LIMIT 64
#define OPS_TICK_S 0.05
#define OPS_SLOW_MS 2000       /* hot cells, shard map, expiry */
#define OPS_MOVES_MS 250       /* the move in progress (a step takes about a second) */
#define OPS_MOVES_LINGER_S "5" /* a run that ended is shown this long after */
#define OPS_MOVES_MAX 8
/* meridianctl shards' advisory lock (tools/meridianctl/shards.c SHARDS_LOCK_KEY): held by
 * the live CLI for the whole run */
#define SHARDS_LOCK_KEY "7311822012"
#define OPS_POLL_MAX 4096 /* Kafka messages per tick */
#define OPS_IN_RATE 1.0   /* ops client messages per second */
#define OPS_IN_BURST 5.0

struct gw_ops_io {
  gw_ops *city;
  gw_ops_config cfg;
  int max_conns;
  gw_conn *conns[OPS_MAX_CONNS_LIMIT];
  int64_t next_frame_ms[OPS_MAX_CONNS_LIMIT];
  int n_conns;
  mrd_kafka_consumer *consumer; /* locations + commands, polled by the loop */
  /* the helper thread that makes it: state 0 none, 1 making, 2 made, 3 failed */
  atomic_int assign_state;
  pthread_t assign_thread;
  mrd_kafka_consumer *made; /* written by the helper, read after state 2 + join */
  char brokers[1024];
  int fetch_wait_ms;
  int64_t idle_since_ms; /* when the last ops client left (0 = one is connected) */
  ev_timer tick;
  int64_t last_slow_ms;
  int64_t last_moves_ms;
  gw_ops_move moves[OPS_MOVES_MAX];
  size_t n_moves;
  bool moves_failing; /* the last read failed (logged once until it works again) */
  char *roads;
  size_t roads_len;
  char web_dir[PATH_MAX];
  struct lws_http_mount mount;
  mrd_counter *frames, *bytes;
};

static int64_t env_int(const char *name, int64_t def, int64_t lo, int64_t hi) {
  const char *v = getenv(name);
  if (!v || !*v) return def;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || *end || x < lo || x > hi) {
    mrd_log_warn("ops_config", "var=%s value=%s err=%s default=%lld", name, v, "out of range",
                 (long long)def);
    return def;
  }
  return x;
}

/* ---- Kafka ------------------------------------------------------------------------------ */

/* The helper thread: make the consumer and assign it from the end (slow: see above). */
static void *assign_main(void *arg) {
  gw_ops_io *io = arg;
  char err[256];
  mrd_kafka_consumer *c = NULL;
  mrd_kafka_consumer_opts co = MRD_KAFKA_CONSUMER_OPTS_DEFAULT;
  co.fetch_wait_max_ms = io->fetch_wait_ms;
  if (mrd_kafka_consumer_new(io->brokers, &co, &c, err, sizeof err)) {
    mrd_log_error("ops_kafka", "err=%s", err);
    atomic_store(&io->assign_state, 3);
    return NULL;
  }
  static const char *const topics[] = {MRD_TOPIC_DRIVER_LOCATIONS, MRD_TOPIC_DISPATCH_COMMANDS};
  mrd_kafka_tp tps[2 * MRD_SHARD_COUNT];
  size_t n = 0;
  for (int t = 0; t < 2; t++) {
    int32_t parts = 0;
    if (mrd_kafka_consumer_partitions(c, topics[t], 5000, &parts)) {
      mrd_log_error("ops_kafka", "topic=%s err=%s", topics[t], mrd_kafka_consumer_errstr(c));
      goto fail;
    }
    for (int32_t p = 0; p < parts && n < 2 * MRD_SHARD_COUNT; p++)
      tps[n++] = (mrd_kafka_tp){topics[t], p, MRD_KAFKA_OFFSET_END};
  }
  if (mrd_kafka_consumer_assign(c, tps, n)) {
    mrd_log_error("ops_kafka", "err=%s", mrd_kafka_consumer_errstr(c));
    goto fail;
  }
  io->made = c;
  atomic_store(&io->assign_state, 2);
  return NULL;
fail:
  mrd_kafka_consumer_free(c);
  atomic_store(&io->assign_state, 3);
  return NULL;
}

/* Start making the consumer if there is none (an ops client came). */
static void consumer_want(gw_ops_io *io) {
  io->idle_since_ms = 0;
  if (io->consumer || atomic_load(&io->assign_state) != 0) return;
  atomic_store(&io->assign_state, 1);
  if (pthread_create(&io->assign_thread, NULL, assign_main, io) != 0) {
    mrd_log_error("ops_kafka", "err=%s", "cannot start the consumer thread");
    atomic_store(&io->assign_state, 0);
  }
}

/* On the loop: take over a consumer the helper made; drop it after 30 s without clients. */
static void consumer_turn(gw_ops_io *io, int64_t now) {
  int st = atomic_load(&io->assign_state);
  if (st == 2 || st == 3) {
    pthread_join(io->assign_thread, NULL);
    if (st == 2) {
      io->consumer = io->made;
      io->made = NULL;
      mrd_log_info("ops_consumer", "state=%s", "assigned");
    }
    atomic_store(&io->assign_state, 0);
    if (st == 3 && io->n_conns > 0) consumer_want(io); /* try again */
  }
  if (io->consumer && io->n_conns == 0 && io->idle_since_ms && now - io->idle_since_ms > 30000) {
    mrd_kafka_consumer_free(io->consumer);
    io->consumer = NULL;
    mrd_log_info("ops_consumer", "state=%s", "dropped (no ops client for 30 s)");
  }
}

static void poll_kafka(gw_ops_io *io, int64_t now) {
  if (!io->consumer) return;
  for (int i = 0; i < OPS_POLL_MAX; i++) {
    mrd_kafka_msg m;
    int rc = mrd_kafka_consume(io->consumer, 0, &m);
    if (rc == MRD_EAGAIN) return;
    if (rc) continue;
    if (m.topic && strcmp(m.topic, MRD_TOPIC_DRIVER_LOCATIONS) == 0) {
      mrd_driver_location loc;
      if (mrd_driver_location_decode(m.value, m.value_len, &loc) == 0)
        gw_ops_location(io->city, &loc, now);
    } else {
      mrd_command cmd;
      if (mrd_command_decode(m.value, m.value_len, &cmd) == 0) gw_ops_command(io->city, &cmd, now);
    }
    mrd_kafka_msg_release(&m);
  }
}

/* ---- Redis -------------------------------------------------------------------------------- */

static int hot_cmp(const void *a, const void *b) {
  return strcmp(((const gw_ops_hot_cell *)a)->geohash, ((const gw_ops_hot_cell *)b)->geohash);
}

/* Add the fields of one hot hash of one shard into cells (gw_ops_hot_add). */
static void read_hot(gw_server *s, const char *key, gw_ops_hot_kind kind, gw_ops_hot_cell **cells,
                     size_t *n, size_t *cap) {
  redisReply *rep = NULL;
  const char *argv[] = {"HGETALL", key};
  if (mrd_redis_cmd(s->redis, &rep, 2, argv, NULL) != 0) return;
  if (rep->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
      const char *gh = rep->element[i]->str;
      const char *val = rep->element[i + 1]->str;
      if (gh && val && gw_ops_hot_add(cells, n, cap, gh, kind, val) < 0) break;
    }
  }
  freeReplyObject(rep);
}

static void slow_turn(gw_server *s, gw_ops_io *io, int64_t now) {
  gw_ops_hot_cell *cells = NULL;
  size_t n = 0, cap = 0;
  uint64_t shards = s->map ? gw_shardmap_prefix_shards(s->map, "") : 0;
  for (uint32_t k = 0; k < MRD_SHARD_COUNT; k++) {
    if (!(shards & (UINT64_C(1) << k))) continue;
    char key[48];
    snprintf(key, sizeof key, "hot:supply:%u", (unsigned)k);
    read_hot(s, key, GW_OPS_HOT_SUPPLY, &cells, &n, &cap);
    snprintf(key, sizeof key, "hot:demand:%u", (unsigned)k);
    read_hot(s, key, GW_OPS_HOT_DEMAND, &cells, &n, &cap);
    snprintf(key, sizeof key, "hot:surge:%u", (unsigned)k);
    read_hot(s, key, GW_OPS_HOT_SURGE, &cells, &n, &cap);
  }
  if (n) qsort(cells, n, sizeof *cells, hot_cmp);
  gw_ops_set_hot(io->city, cells, n);
  free(cells);
  gw_ops_expire(io->city, now);
}

/* A shard's serving epoch as it last reported it (dispatch:stats:{k} epoch), or 0. */
static uint64_t serving_epoch(gw_server *s, uint32_t k) {
  redisReply *rep = NULL;
  if (mrd_redis_cmdf(s->redis, &rep, "HGET dispatch:stats:%u epoch", (unsigned)k) != 0) return 0;
  uint64_t e = rep->type == REDIS_REPLY_STRING && rep->str ? strtoull(rep->str, NULL, 10) : 0;
  freeReplyObject(rep);
  return e;
}

/* The step under way of a `meridianctl shards` run (docs/shards.md, shard_runs), as moves.
 * Keeps the last moves known while PostgreSQL cannot be asked. */
static void read_moves(gw_server *s, gw_ops_io *io) {
  if (!mrd_pg_connected(s->pg)) return; /* reconnecting is the epoch check's job */
  PGresult *res = NULL;
  if (mrd_pg_exec(
          s->pg, &res,
          "SELECT coalesce(step->>'start', ''), coalesce(step->>'end', ''), "
          "coalesce(step->>'from', ''), coalesce(step->>'to', ''), coalesce(step->>'epoch', ''), "
          "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
          "AND ((classid::bigint << 32) | objid::bigint) = " SHARDS_LOCK_KEY "), state "
          "FROM shard_runs WHERE step IS NOT NULL AND (state = 'running' "
          "OR updated_at > now() - interval '" OPS_MOVES_LINGER_S " seconds') ORDER BY id",
          0, NULL) != 0) {
    if (!io->moves_failing) mrd_log_warn("ops_moves", "err=%s", mrd_pg_errstr(s->pg));
    io->moves_failing = true;
    return;
  }
  io->moves_failing = false;
  uint64_t gw_epoch = s->map ? gw_shardmap_epoch(s->map) : 0;
  size_t n = 0;
  for (int i = 0; i < PQntuples(res) && n < OPS_MOVES_MAX; i++) {
    const char *start = PQgetvalue(res, i, 0), *end = PQgetvalue(res, i, 1);
    char *e1, *e2, *e3;
    unsigned long from = strtoul(PQgetvalue(res, i, 2), &e1, 10);
    unsigned long to = strtoul(PQgetvalue(res, i, 3), &e2, 10);
    unsigned long long epoch = strtoull(PQgetvalue(res, i, 4), &e3, 10);
    if (strlen(start) > GW_RANGE_KEY_MAX || strlen(end) > GW_RANGE_KEY_MAX || *e1 || *e2 || *e3 ||
        e1 == PQgetvalue(res, i, 2) || e2 == PQgetvalue(res, i, 3) || from >= MRD_SHARD_COUNT ||
        to >= MRD_SHARD_COUNT) {
      mrd_log_warn("ops_moves", "err=%s",
                   "a shard_runs step that is not {start,end,from,to,epoch}: skipped");
      continue;
    }
    gw_ops_move *m = &io->moves[n++];
    memset(m, 0, sizeof *m);
    snprintf(m->start, sizeof m->start, "%s", start);
    snprintf(m->end, sizeof m->end, "%s", end);
    m->from_shard = (uint32_t)from;
    m->to_shard = (uint32_t)to;
    m->epoch = epoch;
    bool cli_alive = PQgetvalue(res, i, 5)[0] == 't';
    snprintf(m->state, sizeof m->state, "%s",
             gw_ops_move_state(PQgetvalue(res, i, 6), epoch, gw_epoch,
                               serving_epoch(s, m->from_shard), serving_epoch(s, m->to_shard),
                               cli_alive));
  }
  PQclear(res);
  io->n_moves = n;
}

/* The live trips of every shard, from the snapshots dispatch keeps for restarts (also of
 * a shard whose ranges all moved away: it finishes its trips). */
static void seed_trips(gw_server *s, gw_ops_io *io, int64_t now) {
  uint64_t shards = s->map ? gw_shardmap_trip_shards(s->map) : 0;
  size_t seeded = 0;
  for (uint32_t k = 0; k < MRD_SHARD_COUNT; k++) {
    if (!(shards & (UINT64_C(1) << k))) continue;
    redisReply *rep = NULL;
    if (mrd_redis_cmdf(s->redis, &rep, "SMEMBERS dispatch:live:%u", (unsigned)k) != 0) return;
    if (rep->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < rep->elements && i < 20000; i++) {
        redisReply *snap = NULL;
        if (!rep->element[i]->str) continue;
        if (mrd_redis_cmdf(s->redis, &snap, "GET trip:snap:%s", rep->element[i]->str) != 0) break;
        mrd_dispatch_event ev;
        if (snap->type == REDIS_REPLY_STRING &&
            mrd_dispatch_event_decode((const uint8_t *)snap->str, snap->len, &ev) == 0) {
          gw_ops_event(io->city, &ev, now);
          seeded++;
        }
        freeReplyObject(snap);
      }
    }
    freeReplyObject(rep);
  }
  mrd_log_info("ops_trips_seeded", "trips=%zu", seeded);
}

/* ---- frames ------------------------------------------------------------------------------- */

typedef struct emit_ctx {
  gw_server *s;
  gw_conn *c;
} emit_ctx;

static int emit(void *ud, const char *json, size_t len) {
  emit_ctx *e = ud;
  gw_send(e->s, e->c, json, len, false);
  return e->c->closing ? -1 : 0;
}

static void tick(gw_server *s) {
  gw_ops_io *io = s->ops;
  int64_t now = gw_now_ms();
  consumer_turn(io, now);
  poll_kafka(io, now);
  if (now - io->last_slow_ms >= OPS_SLOW_MS) {
    slow_turn(s, io, now);
    io->last_slow_ms = now;
  }
  if (io->n_conns > 0 && now - io->last_moves_ms >= OPS_MOVES_MS) {
    read_moves(s, io);
    io->last_moves_ms = now;
  }
  /* the map is borrowed: hand the current one over before any frame (a reload frees the old) */
  gw_ops_set_shards(io->city, s->map, io->moves, io->n_moves);
  for (int i = 0; i < io->n_conns; i++) {
    gw_conn *c = io->conns[i];
    if (now < io->next_frame_ms[i] || c->closing || c->drain_then_close) continue;
    gw_ops_view *v = c->ops_view;
    io->next_frame_ms[i] = now + gw_ops_view_period_ms(v);
    if (c->q_len > s->cfg->sendq / 4) continue; /* backed up: the next frame catches up */
    emit_ctx e = {s, c};
    size_t bytes = gw_ops_frame(io->city, v, now, emit, &e);
    mrd_counter_inc(io->frames);
    mrd_counter_add(io->bytes, (uint64_t)bytes);
  }
}

static void on_ev_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  tick(w->data);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int gw_ops_io_start(gw_server *s) {
  gw_ops_io *io = calloc(1, sizeof *io);
  if (!io) return MRD_ENOMEM;
  s->ops = io;
  io->cfg = (gw_ops_config)GW_OPS_CONFIG_DEFAULT;
  io->cfg.period_ms = env_int("MERIDIAN_OPS_PERIOD_MS", 1000, 100, 60000);
  io->cfg.budget_bps = env_int("MERIDIAN_OPS_BUDGET_BPS", 150000, 10000, 100000000);
  io->max_conns = (int)env_int("MERIDIAN_OPS_MAX_CONNS", 8, 0, OPS_MAX_CONNS_LIMIT);
  io->city = gw_ops_new(&io->cfg);
  if (!io->city) return MRD_ENOMEM;
  snprintf(io->brokers, sizeof io->brokers, "%s", s->cfg->brokers);
  io->fetch_wait_ms = s->cfg->fetch_wait_ms;
  mrd_metrics_counter(s->m.reg, "meridian_gateway_ops_frames_total", "ops stream frames sent", NULL,
                      &io->frames);
  mrd_metrics_counter(s->m.reg, "meridian_gateway_ops_bytes_total", "ops stream bytes queued", NULL,
                      &io->bytes);
  /* the page's files: MERIDIAN_OPS_WEB_DIR, or <bin>/../ops-web */
  const char *dir = getenv("MERIDIAN_OPS_WEB_DIR");
  if (dir && *dir) {
    snprintf(io->web_dir, sizeof io->web_dir, "%s", dir);
  } else {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
      exe[n] = 0;
      char *slash = strrchr(exe, '/');
      if (slash) *slash = 0;
      snprintf(io->web_dir, sizeof io->web_dir, "%.*s/../ops-web", (int)(sizeof io->web_dir - 16),
               exe);
    }
  }
  if (access(io->web_dir, R_OK) != 0)
    mrd_log_warn("ops_web", "dir=%s err=%s", io->web_dir,
                 "missing: /ops/ answers 404 (build with web/node_modules)");
  io->mount.mountpoint = "/ops";
  io->mount.mountpoint_len = 4;
  io->mount.origin = io->web_dir;
  io->mount.def = "index.html";
  io->mount.origin_protocol = LWSMPRO_FILE;
  /* the road graph, as GeoJSON, once */
  const char *graph = getenv("MERIDIAN_GRAPH");
  if (graph && *graph) {
    geo_graph *g = NULL;
    if (geo_snapshot_load(graph, &g) == GEO_OK) {
      if (gw_ops_roads_geojson(g, &io->roads, &io->roads_len) == 0)
        mrd_log_info("ops_roads", "graph=%s bytes=%zu", graph, io->roads_len);
      geo_graph_free(g);
    } else {
      mrd_log_warn("ops_roads", "graph=%s err=%s", graph,
                   "cannot load the snapshot: no roads on the map");
    }
  }
  seed_trips(s, io, gw_now_ms());
  gw_ops_set_shards(io->city, s->map, NULL, 0);
  return 0;
}

int gw_ops_io_timers(gw_server *s) {
  gw_ops_io *io = s->ops;
  if (!io) return MRD_ESTATE;
  if (!s->loop) {
    mrd_log_error("ops", "err=%s",
                  "the ops stream needs the epoll event loop (MERIDIAN_GW_EVENT_LOOP=epoll)");
    return 0; /* the rest of the gateway works; /v1/ops streams nothing */
  }
  ev_timer_init(&io->tick, on_ev_tick, OPS_TICK_S, OPS_TICK_S);
  io->tick.data = s;
  ev_timer_start(s->loop, &io->tick);
  return 0;
}

const struct lws_http_mount *gw_ops_io_mount(gw_server *s) {
  return s->ops ? &s->ops->mount : NULL;
}

void gw_ops_io_stop(gw_server *s) {
  gw_ops_io *io = s->ops;
  if (!io) return;
  if (s->loop) ev_timer_stop(s->loop, &io->tick);
  if (atomic_load(&io->assign_state) != 0) pthread_join(io->assign_thread, NULL);
  mrd_kafka_consumer_free(io->made);
  mrd_kafka_consumer_free(io->consumer);
  gw_ops_free(io->city);
  free(io->roads);
  free(io);
  s->ops = NULL;
}

void gw_ops_io_event(gw_server *s, const mrd_dispatch_event *ev) {
  if (s->ops) gw_ops_event(s->ops->city, ev, gw_now_ms());
}

/* ---- connections ---------------------------------------------------------------------------- */

bool gw_ops_io_is_ops(struct lws *wsi) {
  char uri[64];
  return lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) > 0 && strcmp(uri, "/v1/ops") == 0;
}

int gw_ops_io_filter(gw_server *s, struct lws *wsi, char *user, int64_t *exp_s) {
  static char tok[MRD_JWT_MAX_TOKEN + 16];
  const char *token = NULL;
  int n = lws_hdr_copy(wsi, tok, sizeof tok, WSI_TOKEN_HTTP_AUTHORIZATION);
  if (n > 7 && strncmp(tok, "Bearer ", 7) == 0)
    token = tok + 7;
  else
    token = lws_get_urlarg_by_name(wsi, "token=", tok, sizeof tok);
  if (!token || !*token) return 401;
  mrd_jwt_claims cl;
  if (mrd_jwt_verify(s->cfg->jwt_secret, strlen(s->cfg->jwt_secret), token, MRD_ROLE_ANY,
                     gw_now_ms() / 1000, &cl) ||
      !mrd_id_valid(cl.sub))
    return 401;
  if (cl.role != MRD_ROLE_OPS) return 403;
  /* the same policy as the apps' endpoints: sub shape, lifetime at most the maximum */
  if (gw_token_check_claims(&cl, gw_now_ms() / 1000, s->cfg->token_max_lifetime_ms / 1000) !=
      GW_TOKEN_OK)
    return 401;
  if (!s->ops || s->ops->n_conns >= s->ops->max_conns) return 503;
  if (user) memcpy(user, cl.sub, strlen(cl.sub) + 1);
  if (exp_s) *exp_s = cl.exp_s;
  return 0;
}

int gw_ops_io_open(gw_server *s, gw_conn *c) {
  gw_ops_io *io = s->ops;
  if (!io) return MRD_ESTATE;
  if (io->n_conns >= io->max_conns) return MRD_EFULL;
  c->ops_view = gw_ops_view_new(io->city);
  c->ref = calloc(1, sizeof *c->ref);
  c->q = calloc((size_t)s->cfg->sendq, sizeof *c->q);
  if (!c->ops_view || !c->ref || !c->q) return MRD_ENOMEM;
  c->ref->conn = c;
  c->ref->refs = 1;
  c->ws = true;
  c->role = GW_ROLE_RIDER; /* unused for ops: never in the registry */
  int64_t now = gw_now_ms();
  gw_bucket_init(&c->ops_bucket, OPS_IN_RATE, OPS_IN_BURST, now);
  gw_flood_init(&c->ops_flood, (uint32_t)s->cfg->flood_warnings, s->cfg->flood_window_ms);
  consumer_want(io);
  io->next_frame_ms[io->n_conns] = now; /* the first frame at the next tick */
  io->conns[io->n_conns++] = c;
  mrd_log_info("ops_connected", "user=%s conns=%d", c->user, io->n_conns);
  return 0;
}

int gw_ops_io_conns(gw_server *s, gw_conn *const **conns) {
  if (!s->ops) {
    *conns = NULL;
    return 0;
  }
  *conns = s->ops->conns;
  return s->ops->n_conns;
}

int gw_ops_io_receive(gw_server *s, gw_conn *c) {
  if (c->drain_then_close || c->closing) return 0;
  int64_t now = gw_now_ms();
  if (!gw_bucket_take(&c->ops_bucket, now)) {
    if (gw_flood_hit(&c->ops_flood, now) == GW_FLOOD_CLOSE) {
      c->drain_then_close = true;
      lws_callback_on_writable(c->wsi);
      return 0;
    }
    gw_error e;
    memset(&e, 0, sizeof e);
    gw_error_set(&e, GW_RATE_LIMITED, NULL, "over the rate limit; slow down");
    gw_send_error(s, c, &e);
    return 0;
  }
  char reply[1024];
  if (c->rx_too_large) {
    gw_error e;
    memset(&e, 0, sizeof e);
    gw_error_set(&e, GW_TOO_LARGE, NULL, "ops messages are limited to 1024 bytes");
    gw_send_error(s, c, &e);
    return 0;
  }
  if (c->rx_binary) {
    gw_error e;
    memset(&e, 0, sizeof e);
    gw_error_set(&e, GW_BAD_REQUEST, NULL, "binary messages are not accepted");
    gw_send_error(s, c, &e);
    return 0;
  }
  gw_ops_handle(s->ops->city, c->ops_view, c->rx, c->rx_len, reply, sizeof reply);
  if (reply[0]) gw_send(s, c, reply, strlen(reply), false);
  return 0;
}

void gw_ops_io_close(gw_server *s, gw_conn *c) {
  gw_ops_io *io = s->ops;
  if (!io) return;
  for (int i = 0; i < io->n_conns; i++) {
    if (io->conns[i] != c) continue;
    io->conns[i] = io->conns[io->n_conns - 1];
    io->next_frame_ms[i] = io->next_frame_ms[io->n_conns - 1];
    io->n_conns--;
    break;
  }
  gw_ops_view_free(c->ops_view);
  c->ops_view = NULL;
  if (io->n_conns == 0) io->idle_since_ms = gw_now_ms();
  mrd_log_info("ops_disconnected", "user=%s conns=%d", c->user, io->n_conns);
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

int gw_ops_io_http(gw_server *s, const char *path, bool *answered, unsigned *status,
                   const char **type, char **body, size_t *len) {
  *answered = strcmp(path, "/v1/ops/roads") == 0;
  if (!*answered) return 0;
  gw_ops_io *io = s->ops;
  *type = "application/geo+json";
  if (!io || !io->roads) {
    *status = 404;
    *body = strdup("{\"type\":\"FeatureCollection\",\"features\":[]}");
  } else {
    *status = 200;
    *body = malloc(io->roads_len);
    if (*body) memcpy(*body, io->roads, io->roads_len);
  }
  if (!*body) return MRD_ENOMEM;
  *len = *status == 200 ? io->roads_len : strlen(*body);
  return 0;
}
