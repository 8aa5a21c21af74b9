/*
 * ops.c: the city state behind /v1/ops and the frames each ops connection gets (ops.h says
 * what and why). Drivers and trips live in fixed tables with a chained id hash; a slot that
 * is freed and reused gets a new generation, so a connection's view (what it was last sent,
 * per slot) tells a new driver from a moved one without keeping ids. Frames are written as
 * compact JSON by a small bounded builder and cut into messages of at most GW_OPS_MSG_MAX
 * bytes. Everything is O(drivers + trips) per frame; nothing allocates per message.
 */
#define _POSIX_C_SOURCE 200809L
#include "mrd/hash.h"
#include "ops.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "geo/geohash.h"
#include "geo/graph.h"

#define HASH_BUCKETS 131072 /* power of two, 2x the driver table */
#define REQ_SLOTS 4096      /* power of two: ride requests remembered for request -> offer */
#define NONE (-1)
#define SHARDS MRD_SHARD_COUNT
#define W GW_OPS_RATE_WINDOW_S
#define MAX_MOVES 64
#define IN_MAX 1024 /* bytes of an ops client message */

static const char *const STATE_NAMES[GW_OPS_STATE_COUNT] = {"available", "offered", "pickup",
                                                            "on_trip", "offline"};

typedef struct drv {
  char id[MRD_ID_MAX + 1];
  int32_t lat_e5, lon_e5;
  uint8_t state;
  bool live;
  uint32_t gen;   /* bumped when the slot is given to another driver */
  uint32_t owner; /* shard owning the last position */
  int64_t seen_ms;
  int32_t next; /* hash chain */
} drv;

typedef struct trip {
  char id[MRD_ID_MAX + 1];
  char driver[MRD_ID_MAX + 1];
  uint32_t shard;
  mrd_trip_status status;
  bool has_pickup, has_dropoff;
  mrd_latlon pickup, dropoff;
  uint64_t seq;
  uint32_t version; /* bumped on every change: a view resends on a new version */
  uint32_t gen;
  bool live;
  bool offered_seen;
  int64_t requested_ts_ms; /* dispatch's ts of REQUESTED (0 unknown) */
  char request_id[MRD_ID_MAX + 1];
  int64_t ended_ms; /* 0 while live */
  int32_t next;
} trip;

typedef struct rates {
  int64_t sec[W + 1];
  uint32_t req[W + 1], matched[W + 1], no_driver[W + 1], loc[W + 1];
  int64_t lat_ts[GW_OPS_LAT_SAMPLES]; /* when each latency sample was taken (ms) */
  double lat_ms[GW_OPS_LAT_SAMPLES];
  uint32_t lat_next, lat_n;
} rates;

struct gw_ops {
  gw_ops_config cfg;
  drv *d;
  int32_t *dhash;
  int32_t dfree_top, *dfree; /* stack of free slots */
  uint32_t dlimit;           /* slots ever used (scan bound) */
  size_t ndrivers;
  trip *t;
  int32_t *thash;
  int32_t tfree_top, *tfree;
  uint32_t tlimit;
  size_t ntrips;
  rates r[SHARDS];
  const gw_shardmap *map; /* borrowed: the caller sets it again whenever it may have changed */
  uint64_t map_epoch;
  gw_ops_move moves[MAX_MOVES];
  size_t n_moves;
  uint32_t shards_version; /* bumped by set_shards */
  gw_ops_hot_cell *hot;
  size_t n_hot;
  uint32_t hot_version;
  /* request -> offer: ride requests by request_id hashed into a slot, with the gateway's
   * receive time of the command (dispatch-commands), or, when the first offer came first,
   * the offer's time and shard, waiting for the command (a later request in the same slot
   * takes it: that sample is lost) */
  struct req_seen {
    char id[MRD_ID_MAX + 1];
    int64_t ts_ms;       /* the command's ts_ms (0: not seen yet) */
    int64_t offer_ts_ms; /* the first offer's ts_ms while the command is awaited (0: none) */
    uint32_t shard;      /* the offer's shard */
  } * req;
};

struct gw_ops_view {
  uint32_t *dgen; /* per driver slot: generation sent (0 = nothing sent) */
  int32_t *dlat, *dlon;
  uint8_t *dstate;
  uint32_t *tgen, *tver;
  uint32_t cursor; /* round-robin position for moved drivers */
  uint32_t shards_version, hot_version;
  bool hello_sent;
  int64_t period_ms, budget_bps;
  int64_t last_frame_ms;
  double bps;   /* smoothed bytes per second */
  uint32_t lag; /* moved drivers left for a later frame, last frame */
};

static uint32_t hash_id(const char *id) {
  return (uint32_t)(mrd_fnv1a64_str(MRD_FNV1A64_SEED, id) & (HASH_BUCKETS - 1));
}

static int32_t q5(double deg) { return (int32_t)lround(deg * GW_OPS_E5); }

gw_ops *gw_ops_new(const gw_ops_config *cfg) {
  if (!cfg || cfg->period_ms <= 0 || cfg->budget_bps <= 0 || cfg->driver_ttl_ms <= 0 ||
      cfg->trip_linger_ms < 0 || !(cfg->min_lat < cfg->max_lat) || !(cfg->min_lon < cfg->max_lon))
    return NULL;
  gw_ops *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->cfg = *cfg;
  o->d = calloc(GW_OPS_MAX_DRIVERS, sizeof *o->d);
  o->dhash = malloc(HASH_BUCKETS * sizeof *o->dhash);
  o->dfree = malloc(GW_OPS_MAX_DRIVERS * sizeof *o->dfree);
  o->t = calloc(GW_OPS_MAX_TRIPS, sizeof *o->t);
  o->thash = malloc(HASH_BUCKETS * sizeof *o->thash);
  o->tfree = malloc(GW_OPS_MAX_TRIPS * sizeof *o->tfree);
  o->req = calloc(REQ_SLOTS, sizeof *o->req);
  if (!o->d || !o->dhash || !o->dfree || !o->t || !o->thash || !o->tfree || !o->req) {
    gw_ops_free(o);
    return NULL;
  }
  for (int i = 0; i < HASH_BUCKETS; i++) o->dhash[i] = o->thash[i] = NONE;
  /* free stacks hand out low slots first (dense scans) */
  for (int i = 0; i < GW_OPS_MAX_DRIVERS; i++) o->dfree[i] = GW_OPS_MAX_DRIVERS - 1 - i;
  o->dfree_top = GW_OPS_MAX_DRIVERS;
  for (int i = 0; i < GW_OPS_MAX_TRIPS; i++) o->tfree[i] = GW_OPS_MAX_TRIPS - 1 - i;
  o->tfree_top = GW_OPS_MAX_TRIPS;
  o->shards_version = o->hot_version = 1;
  return o;
}

void gw_ops_free(gw_ops *o) {
  if (!o) return;
  free(o->d);
  free(o->dhash);
  free(o->dfree);
  free(o->t);
  free(o->thash);
  free(o->tfree);
  free(o->hot);
  free(o->req);
  free(o);
}

size_t gw_ops_driver_count(const gw_ops *o) { return o->ndrivers; }
size_t gw_ops_trip_count(const gw_ops *o) { return o->ntrips; }

/* ---- tables ---------------------------------------------------------------------------- */

static int32_t drv_find(const gw_ops *o, const char *id) {
  for (int32_t i = o->dhash[hash_id(id)]; i != NONE; i = o->d[i].next)
    if (strcmp(o->d[i].id, id) == 0) return i;
  return NONE;
}

static int32_t drv_add(gw_ops *o, const char *id) {
  if (o->dfree_top == 0 || strlen(id) > MRD_ID_MAX) return NONE;
  int32_t i = o->dfree[--o->dfree_top];
  drv *d = &o->d[i];
  uint32_t gen = d->gen + 1;
  memset(d, 0, sizeof *d);
  d->gen = gen ? gen : 1;
  memcpy(d->id, id, strlen(id) + 1);
  d->live = true;
  uint32_t h = hash_id(id);
  d->next = o->dhash[h];
  o->dhash[h] = i;
  if ((uint32_t)i + 1 > o->dlimit) o->dlimit = (uint32_t)i + 1;
  o->ndrivers++;
  return i;
}

static void drv_remove(gw_ops *o, int32_t i) {
  int32_t *pp = &o->dhash[hash_id(o->d[i].id)];
  while (*pp != NONE && *pp != i) pp = &o->d[*pp].next;
  if (*pp == i) *pp = o->d[i].next;
  o->d[i].live = false;
  o->dfree[o->dfree_top++] = i;
  o->ndrivers--;
}

static int32_t trip_find(const gw_ops *o, const char *id) {
  for (int32_t i = o->thash[hash_id(id)]; i != NONE; i = o->t[i].next)
    if (strcmp(o->t[i].id, id) == 0) return i;
  return NONE;
}

static int32_t trip_add(gw_ops *o, const char *id) {
  if (o->tfree_top == 0 || strlen(id) > MRD_ID_MAX) return NONE;
  int32_t i = o->tfree[--o->tfree_top];
  trip *t = &o->t[i];
  uint32_t gen = t->gen + 1;
  memset(t, 0, sizeof *t);
  t->gen = gen ? gen : 1;
  memcpy(t->id, id, strlen(id) + 1);
  t->live = true;
  uint32_t h = hash_id(id);
  t->next = o->thash[h];
  o->thash[h] = i;
  if ((uint32_t)i + 1 > o->tlimit) o->tlimit = (uint32_t)i + 1;
  o->ntrips++;
  return i;
}

static void trip_remove(gw_ops *o, int32_t i) {
  int32_t *pp = &o->thash[hash_id(o->t[i].id)];
  while (*pp != NONE && *pp != i) pp = &o->t[*pp].next;
  if (*pp == i) *pp = o->t[i].next;
  o->t[i].live = false;
  o->tfree[o->tfree_top++] = i;
  o->ntrips--;
}

/* ---- rates ------------------------------------------------------------------------------ */

static size_t rate_row(rates *r, int64_t now_ms) {
  int64_t s = now_ms / 1000;
  size_t i = (size_t)(s % (W + 1));
  if (r->sec[i] != s) {
    r->sec[i] = s;
    r->req[i] = r->matched[i] = r->no_driver[i] = r->loc[i] = 0;
  }
  return i;
}

/* ---- inputs ----------------------------------------------------------------------------- */

/* The map state of a driver named by a live trip in status st (AVAILABLE: none). */
static gw_ops_state state_for_trip(mrd_trip_status st) {
  switch (st) {
  case MRD_TRIP_OFFERED: return GW_OPS_OFFERED;
  case MRD_TRIP_MATCHED:
  case MRD_TRIP_ARRIVED: return GW_OPS_PICKUP;
  case MRD_TRIP_STARTED: return GW_OPS_ON_TRIP;
  default: return GW_OPS_AVAILABLE;
  }
}

/* A driver's state when he first appears on the map: that of the live trip naming him, if
 * any. His trip's events may all have come before his first position (a gateway restarted
 * mid-trip seeds the trips from Redis, while drivers appear only with their next ping), and
 * set_driver_state skips a driver not on the map yet. A scan of the trip table, once per new
 * driver: tlimit is the live trips' high-water mark. */
static gw_ops_state first_state(const gw_ops *o, const char *id) {
  for (uint32_t i = 0; i < o->tlimit; i++) {
    const trip *t = &o->t[i];
    if (t->live && !t->ended_ms && t->driver[0] == id[0] && strcmp(t->driver, id) == 0)
      return state_for_trip(t->status);
  }
  return GW_OPS_AVAILABLE;
}

int gw_ops_location(gw_ops *o, const mrd_driver_location *loc, int64_t now_ms) {
  if (loc->halo) return 0;
  int32_t i = drv_find(o, loc->driver_id);
  if (i == NONE) {
    i = drv_add(o, loc->driver_id);
    if (i != NONE) o->d[i].state = (uint8_t)first_state(o, loc->driver_id);
  }
  if (i == NONE) return -1;
  drv *d = &o->d[i];
  d->lat_e5 = q5(loc->pos.lat);
  d->lon_e5 = q5(loc->pos.lon);
  d->owner = loc->owner_shard < SHARDS ? loc->owner_shard : 0;
  d->seen_ms = now_ms;
  rates *r = &o->r[d->owner];
  r->loc[rate_row(r, now_ms)]++;
  return 0;
}

/* The gateway's receive time of request_id, or 0 when not remembered. */
static int64_t request_ts(const gw_ops *o, const char *request_id) {
  if (!request_id[0]) return 0;
  const struct req_seen *r = &o->req[hash_id(request_id) & (REQ_SLOTS - 1)];
  return strcmp(r->id, request_id) == 0 ? r->ts_ms : 0; /* 0 also while an offer waits */
}

static void add_latency(rates *r, int64_t now_ms, double ms);

void gw_ops_command(gw_ops *o, const mrd_command *cmd, int64_t now_ms) {
  if (cmd->kind == MRD_CMD_REQUEST && cmd->request_id[0] && cmd->ts_ms > 0) {
    struct req_seen *r = &o->req[hash_id(cmd->request_id) & (REQ_SLOTS - 1)];
    if (strcmp(r->id, cmd->request_id) == 0 && r->offer_ts_ms > 0) { /* its offer came first */
      if (r->offer_ts_ms >= cmd->ts_ms)
        add_latency(&o->r[r->shard], now_ms, (double)(r->offer_ts_ms - cmd->ts_ms));
    } else {
      snprintf(r->id, sizeof r->id, "%s", cmd->request_id);
    }
    r->ts_ms = cmd->ts_ms;
    r->offer_ts_ms = 0;
    return;
  }
  if (cmd->kind != MRD_CMD_STATUS) return;
  int32_t i = drv_find(o, cmd->driver_id);
  if (i == NONE) return; /* not on the map yet: his first position will show him */
  drv *d = &o->d[i];
  d->seen_ms = now_ms;
  if (cmd->status == MRD_DRIVER_OFFLINE)
    d->state = GW_OPS_OFFLINE;
  else if (cmd->status == MRD_DRIVER_AVAILABLE && d->state == GW_OPS_OFFLINE)
    d->state = GW_OPS_AVAILABLE;
}

static void set_driver_state(gw_ops *o, const char *id, gw_ops_state s, bool only_if_offered) {
  if (!id[0]) return;
  int32_t i = drv_find(o, id);
  if (i == NONE) return;
  if (only_if_offered && o->d[i].state != GW_OPS_OFFERED) return;
  o->d[i].state = (uint8_t)s;
}

static bool trip_ended(mrd_trip_status s) {
  return s == MRD_TRIP_COMPLETED || s == MRD_TRIP_CANCELLED || s == MRD_TRIP_NO_DRIVER;
}

static mrd_trip_status status_of(mrd_event_type t) {
  switch (t) {
  case MRD_EV_REQUESTED: return MRD_TRIP_REQUESTED;
  case MRD_EV_OFFERED: return MRD_TRIP_OFFERED;
  case MRD_EV_OFFER_DECLINED:
  case MRD_EV_OFFER_EXPIRED: return MRD_TRIP_REQUESTED; /* looking again */
  case MRD_EV_MATCHED: return MRD_TRIP_MATCHED;
  case MRD_EV_ARRIVED: return MRD_TRIP_ARRIVED;
  case MRD_EV_STARTED: return MRD_TRIP_STARTED;
  case MRD_EV_COMPLETED: return MRD_TRIP_COMPLETED;
  case MRD_EV_CANCELLED: return MRD_TRIP_CANCELLED;
  case MRD_EV_NO_DRIVER: return MRD_TRIP_NO_DRIVER;
  default: return MRD_TRIP_NONE;
  }
}

static void add_latency(rates *r, int64_t now_ms, double ms) {
  r->lat_ts[r->lat_next] = now_ms;
  r->lat_ms[r->lat_next] = ms;
  r->lat_next = (r->lat_next + 1) % GW_OPS_LAT_SAMPLES;
  if (r->lat_n < GW_OPS_LAT_SAMPLES) r->lat_n++;
}

void gw_ops_event(gw_ops *o, const mrd_dispatch_event *ev, int64_t now_ms) {
  if (ev->type == MRD_EV_COMMAND_REJECTED || ev->type == MRD_EV_NONE || ev->shard >= SHARDS) return;
  rates *r = &o->r[ev->shard];
  size_t row = rate_row(r, now_ms);
  if (ev->type == MRD_EV_REQUESTED)
    r->req[row]++;
  else if (ev->type == MRD_EV_MATCHED)
    r->matched[row]++;
  else if (ev->type == MRD_EV_NO_DRIVER)
    r->no_driver[row]++;

  /* an event older than the trip's latest changes nothing */
  int32_t i = trip_find(o, ev->trip_id);
  if (i != NONE && ev->seq && ev->seq < o->t[i].seq) return;
  /* drivers */
  switch (ev->type) {
  case MRD_EV_OFFERED: set_driver_state(o, ev->driver_id, GW_OPS_OFFERED, false); break;
  case MRD_EV_OFFER_DECLINED:
  case MRD_EV_OFFER_EXPIRED: set_driver_state(o, ev->driver_id, GW_OPS_AVAILABLE, true); break;
  case MRD_EV_MATCHED:
  case MRD_EV_ARRIVED: set_driver_state(o, ev->driver_id, GW_OPS_PICKUP, false); break;
  case MRD_EV_STARTED: set_driver_state(o, ev->driver_id, GW_OPS_ON_TRIP, false); break;
  case MRD_EV_COMPLETED:
  case MRD_EV_CANCELLED: set_driver_state(o, ev->driver_id, GW_OPS_AVAILABLE, false); break;
  default: break;
  }

  /* trips: a trip seen first in the middle (after a restart) is shown from then on */
  if (i == NONE) {
    if (trip_ended(status_of(ev->type))) return; /* never shown: nothing to end */
    i = trip_add(o, ev->trip_id);
    if (i == NONE) return;
    o->t[i].shard = ev->shard;
  }
  trip *t = &o->t[i];
  t->seq = ev->seq;
  if (ev->type == MRD_EV_REQUESTED) t->requested_ts_ms = ev->ts_ms;
  if (ev->request_id[0]) snprintf(t->request_id, sizeof t->request_id, "%s", ev->request_id);
  if (ev->type == MRD_EV_OFFERED && !t->offered_seen) {
    /* from the gateway's receipt of the request (its command), which counts the time in
     * Kafka and in dispatch's queue. Not from dispatch's REQUESTED time: dispatch makes it
     * and the first offer in one go (about 0 ms). An offer read before its command waits
     * for it in the request's slot; a request whose command is never seen (made before
     * the ops consumer started) gives no sample. */
    t->offered_seen = true;
    int64_t from = request_ts(o, t->request_id);
    if (from > 0) {
      if (ev->ts_ms >= from) add_latency(r, now_ms, (double)(ev->ts_ms - from));
    } else if (t->request_id[0]) {
      struct req_seen *q = &o->req[hash_id(t->request_id) & (REQ_SLOTS - 1)];
      snprintf(q->id, sizeof q->id, "%s", t->request_id);
      q->ts_ms = 0;
      q->offer_ts_ms = ev->ts_ms > 0 ? ev->ts_ms : 1;
      q->shard = ev->shard;
    }
  }
  mrd_trip_status st = ev->status != MRD_TRIP_NONE ? ev->status : status_of(ev->type);
  if (st != MRD_TRIP_NONE) t->status = st;
  if (ev->has_pickup) {
    t->has_pickup = true;
    t->pickup = ev->pickup;
  }
  if (ev->has_dropoff) {
    t->has_dropoff = true;
    t->dropoff = ev->dropoff;
  }
  if (ev->driver_id[0] && ev->type != MRD_EV_OFFER_DECLINED && ev->type != MRD_EV_OFFER_EXPIRED)
    memcpy(t->driver, ev->driver_id, sizeof t->driver);
  if (ev->type == MRD_EV_OFFER_DECLINED || ev->type == MRD_EV_OFFER_EXPIRED) t->driver[0] = 0;
  if (trip_ended(t->status) && !t->ended_ms) t->ended_ms = now_ms;
  t->version++;
}

int gw_ops_hot_add(gw_ops_hot_cell **cells, size_t *n, size_t *cap, const char *geohash,
                   gw_ops_hot_kind kind, const char *value) {
  if (!cells || !n || !cap || !geohash || !value) return 1;
  size_t len = strlen(geohash);
  if (len == 0 || len > 12 || strspn(geohash, "0123456789bcdefghjkmnpqrstuvwxyz") != len) return 1;
  char *end = NULL;
  unsigned long count = 0;
  double surge = 0;
  if (kind == GW_OPS_HOT_SURGE) {
    surge = strtod(value, &end);
    if (end == value || *end || !isfinite(surge) || surge <= 1.0 || surge > GW_OPS_SURGE_MAX)
      return 1;
  } else {
    if (value[0] < '0' || value[0] > '9') return 1; /* strtoul would take "-1" */
    count = strtoul(value, &end, 10);
    if (*end || count > UINT32_MAX) return 1;
  }
  size_t j = 0;
  while (j < *n && strcmp((*cells)[j].geohash, geohash) != 0) j++;
  if (j == *n) {
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 256;
      gw_ops_hot_cell *q = realloc(*cells, nc * sizeof *q);
      if (!q) return -1;
      *cells = q;
      *cap = nc;
    }
    memset(&(*cells)[j], 0, sizeof **cells); /* padding too: gw_ops_set_hot compares bytes */
    memcpy((*cells)[j].geohash, geohash, len + 1);
    (*n)++;
  }
  gw_ops_hot_cell *c = &(*cells)[j];
  if (kind == GW_OPS_HOT_SURGE) {
    if (surge > c->surge) c->surge = surge; /* a cell is one shard's; after a move, the higher */
  } else {
    uint32_t *v = kind == GW_OPS_HOT_SUPPLY ? &c->supply : &c->demand;
    *v = (uint64_t)*v + count > UINT32_MAX ? UINT32_MAX : *v + (uint32_t)count;
  }
  return 0;
}

int gw_ops_set_hot(gw_ops *o, const gw_ops_hot_cell *cells, size_t n) {
  gw_ops_hot_cell *c = NULL;
  if (n) {
    c = malloc(n * sizeof *c);
    if (!c) return -1;
    memcpy(c, cells, n * sizeof *c);
    for (size_t i = 0; i < n; i++) c[i].geohash[12] = 0;
  }
  bool same = n == o->n_hot && (n == 0 || memcmp(c, o->hot, n * sizeof *c) == 0);
  free(o->hot);
  o->hot = c;
  o->n_hot = n;
  if (!same) o->hot_version++;
  return 0;
}

const char *gw_ops_move_state(const char *run_state, uint64_t step_epoch, uint64_t gateway_epoch,
                              uint64_t from_serving, uint64_t to_serving, bool cli_alive) {
  if (strcmp(run_state, "done") == 0) return "done";
  if (strcmp(run_state, "running") != 0) return "failed";
  if (!cli_alive) return "interrupted";
  if (gateway_epoch < step_epoch) return "switching";
  if (to_serving < step_epoch) return "warming";
  if (from_serving < step_epoch) return "releasing";
  return "confirmed";
}

void gw_ops_set_shards(gw_ops *o, const gw_shardmap *map, const gw_ops_move *moves,
                       size_t n_moves) {
  if (n_moves > MAX_MOVES) n_moves = MAX_MOVES;
  uint64_t epoch = map ? gw_shardmap_epoch(map) : 0;
  /* a new map may reuse the old one's address: the epoch tells them apart */
  bool same = map == o->map && epoch == o->map_epoch && n_moves == o->n_moves &&
              (n_moves == 0 || memcmp(moves, o->moves, n_moves * sizeof *moves) == 0);
  o->map = map;
  o->map_epoch = epoch;
  if (n_moves) memcpy(o->moves, moves, n_moves * sizeof *moves);
  o->n_moves = n_moves;
  if (!same) o->shards_version++;
}

void gw_ops_expire(gw_ops *o, int64_t now_ms) {
  for (uint32_t i = 0; i < o->dlimit; i++)
    if (o->d[i].live && now_ms - o->d[i].seen_ms > o->cfg.driver_ttl_ms) drv_remove(o, (int32_t)i);
  for (uint32_t i = 0; i < o->tlimit; i++)
    if (o->t[i].live && o->t[i].ended_ms && now_ms - o->t[i].ended_ms > o->cfg.trip_linger_ms)
      trip_remove(o, (int32_t)i);
}

/* ---- stats --------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void gw_ops_shard_stats_get(const gw_ops *o, uint32_t k, int64_t now_ms, gw_ops_shard_stats *out) {
  memset(out, 0, sizeof *out);
  out->shard = k;
  out->match_rate = out->offer_p50_ms = out->offer_p99_ms = -1;
  if (k >= SHARDS) return;
  const rates *r = &o->r[k];
  int64_t now_s = now_ms / 1000;
  uint64_t req = 0, matched = 0, nod = 0, loc = 0;
  for (size_t i = 0; i <= W; i++) {
    /* the W whole seconds before this one */
    if (r->sec[i] >= now_s || r->sec[i] < now_s - W) continue;
    req += r->req[i];
    matched += r->matched[i];
    nod += r->no_driver[i];
    loc += r->loc[i];
  }
  out->requests_per_s = (double)req / W;
  out->matched_per_s = (double)matched / W;
  out->no_driver_per_s = (double)nod / W;
  out->locations_per_s = (double)loc / W;
  if (matched + nod) out->match_rate = (double)matched / (double)(matched + nod);
  double lat[GW_OPS_LAT_SAMPLES];
  size_t n = 0;
  for (uint32_t i = 0; i < r->lat_n; i++)
    if (now_ms - r->lat_ts[i] <= 60000) lat[n++] = r->lat_ms[i];
  if (n) {
    qsort(lat, n, sizeof *lat, cmp_double);
    out->offer_p50_ms = lat[(size_t)ceil(0.50 * (double)n) - 1];
    out->offer_p99_ms = lat[(size_t)ceil(0.99 * (double)n) - 1];
  }
  for (uint32_t i = 0; i < o->dlimit; i++)
    if (o->d[i].live && o->d[i].owner == k) out->drivers++;
  for (uint32_t i = 0; i < o->tlimit; i++)
    if (o->t[i].live && !o->t[i].ended_ms && o->t[i].shard == k) out->trips++;
}

/* ---- message builder -------------------------------------------------------------------- */

typedef struct jb {
  char buf[GW_OPS_MSG_MAX];
  size_t len;
  size_t head_len; /* bytes of the message's opening (re-used by each chunk) */
  size_t items;
  bool full; /* the last append did not fit */
  gw_ops_emit_fn emit;
  void *ud;
  size_t emitted;
  bool stopped; /* emit asked to stop */
} jb;

__attribute__((format(printf, 2, 3))) static bool jb_add(jb *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->buf + b->len, sizeof b->buf - b->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof b->buf - b->len) {
    b->buf[b->len] = 0;
    b->full = true;
    return false;
  }
  b->len += (size_t)n;
  return true;
}

static void jb_emit(jb *b, const char *tail) {
  /* tail is short (closing brackets) and GW_OPS_MSG_MAX keeps room for it: see jb_item */
  size_t n = strlen(tail);
  memcpy(b->buf + b->len, tail, n);
  b->len += n;
  if (!b->stopped && b->emit(b->ud, b->buf, b->len) != 0) b->stopped = true;
  b->emitted += b->len;
}

/* Start a chunked array message: head is everything up to and including the '['. */
static void jb_begin(jb *b, const char *head) {
  size_t n = strlen(head);
  memcpy(b->buf, head, n);
  b->len = b->head_len = n;
  b->items = 0;
  b->full = false;
}

#define JB_TAIL_ROOM 16

/* Append one item (already formatted) to the open array; emits the message and starts
 * another with the same head when it would not fit. */
static void jb_item(jb *b, const char *item, size_t n, const char *tail) {
  if (b->len + n + 1 + JB_TAIL_ROOM > sizeof b->buf) {
    jb_emit(b, tail);
    b->len = b->head_len;
    b->items = 0;
  }
  if (b->items++) b->buf[b->len++] = ',';
  memcpy(b->buf + b->len, item, n);
  b->len += n;
}

/* Close the open array message; emits it if it holds an item (or always when force). */
static void jb_end(jb *b, const char *tail, bool force) {
  if (b->items || force) jb_emit(b, tail);
  b->len = 0;
  b->items = 0;
}

/* JSON string of a valid id (ids are [A-Za-z0-9_.:-]: nothing to escape). */

/* ---- frames ----------------------------------------------------------------------------- */

gw_ops_view *gw_ops_view_new(const gw_ops *o) {
  gw_ops_view *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->dgen = calloc(GW_OPS_MAX_DRIVERS, sizeof *v->dgen);
  v->dlat = calloc(GW_OPS_MAX_DRIVERS, sizeof *v->dlat);
  v->dlon = calloc(GW_OPS_MAX_DRIVERS, sizeof *v->dlon);
  v->dstate = calloc(GW_OPS_MAX_DRIVERS, sizeof *v->dstate);
  v->tgen = calloc(GW_OPS_MAX_TRIPS, sizeof *v->tgen);
  v->tver = calloc(GW_OPS_MAX_TRIPS, sizeof *v->tver);
  if (!v->dgen || !v->dlat || !v->dlon || !v->dstate || !v->tgen || !v->tver) {
    gw_ops_view_free(v);
    return NULL;
  }
  v->period_ms = o->cfg.period_ms;
  v->budget_bps = o->cfg.budget_bps;
  return v;
}

void gw_ops_view_free(gw_ops_view *v) {
  if (!v) return;
  free(v->dgen);
  free(v->dlat);
  free(v->dlon);
  free(v->dstate);
  free(v->tgen);
  free(v->tver);
  free(v);
}

int64_t gw_ops_view_period_ms(const gw_ops_view *v) { return v->period_ms; }

static void frame_hello(gw_ops *o, gw_ops_view *v, int64_t now_ms, jb *b) {
  b->len = 0;
  jb_add(b,
         "{\"type\":\"hello\",\"ts\":%lld,\"period_ms\":%lld,\"budget_bps\":%lld,\"e5\":%d,"
         "\"states\":[",
         (long long)now_ms, (long long)v->period_ms, (long long)v->budget_bps, (int)GW_OPS_E5);
  for (int s = 0; s < GW_OPS_STATE_COUNT; s++) jb_add(b, "%s\"%s\"", s ? "," : "", STATE_NAMES[s]);
  jb_add(b, "],\"bounds\":[%.5f,%.5f,%.5f,%.5f]", o->cfg.min_lat, o->cfg.min_lon, o->cfg.max_lat,
         o->cfg.max_lon);
  jb_emit(b, "}");
}

static void frame_shards(gw_ops *o, jb *b) {
  b->len = 0;
  if (!o->map) {
    jb_add(b, "{\"type\":\"shards\",\"epoch\":0,\"ranges\":[],\"moves\":[]");
    jb_emit(b, "}");
    return;
  }
  /* boxes as fine as fit one message */
  static char cells[2048][13];
  for (int prec = 6; prec >= 1; prec--) {
    b->len = 0;
    b->full = false;
    jb_add(b, "{\"type\":\"shards\",\"epoch\":%llu,\"ranges\":[",
           (unsigned long long)gw_shardmap_epoch(o->map));
    for (size_t i = 0; i < gw_shardmap_size(o->map); i++) {
      const gw_shard_range *r = gw_shardmap_range(o->map, i);
      size_t n = gw_ops_range_cells(r->start, r->end, o->cfg.min_lat, o->cfg.min_lon,
                                    o->cfg.max_lat, o->cfg.max_lon, prec, cells, 2048);
      if (n > 2048) {
        b->full = true;
        break;
      }
      jb_add(b, "%s{\"start\":\"%s\",\"end\":\"%s\",\"shard\":%u,\"cells\":[", i ? "," : "",
             r->start, r->end, (unsigned)r->shard);
      for (size_t c = 0; c < n; c++) jb_add(b, "%s\"%s\"", c ? "," : "", cells[c]);
      jb_add(b, "]}");
    }
    jb_add(b, "],\"moves\":[");
    for (size_t i = 0; i < o->n_moves; i++) {
      const gw_ops_move *m = &o->moves[i];
      jb_add(b,
             "%s{\"start\":\"%s\",\"end\":\"%s\",\"from\":%u,\"to\":%u,\"epoch\":%llu,\"state\":\"%"
             "s\"}",
             i ? "," : "", m->start, m->end, (unsigned)m->from_shard, (unsigned)m->to_shard,
             (unsigned long long)m->epoch, m->state);
    }
    jb_add(b, "]");
    if (!b->full && b->len + JB_TAIL_ROOM < sizeof b->buf) {
      jb_emit(b, "}");
      return;
    }
  }
}

static void frame_hot(gw_ops *o, int64_t now_ms, jb *b) {
  char head[96];
  snprintf(head, sizeof head, "{\"type\":\"hot\",\"ts\":%lld,\"cells\":[", (long long)now_ms);
  jb_begin(b, head);
  char item[96];
  for (size_t i = 0; i < o->n_hot; i++) {
    const gw_ops_hot_cell *c = &o->hot[i];
    int n = c->surge > 0 ? snprintf(item, sizeof item, "[\"%s\",%u,%u,%.2f]", c->geohash, c->supply,
                                    c->demand, c->surge)
                         : snprintf(item, sizeof item, "[\"%s\",%u,%u,null]", c->geohash, c->supply,
                                    c->demand);
    jb_item(b, item, (size_t)n, "]}");
  }
  jb_end(b, "]}", true); /* an empty list clears the layer */
}

static void frame_trips(gw_ops *o, gw_ops_view *v, int64_t now_ms, jb *b) {
  char head[96];
  snprintf(head, sizeof head, "{\"type\":\"trips\",\"ts\":%lld,\"trips\":[", (long long)now_ms);
  jb_begin(b, head);
  static const char *const st[] = {"none",    "requested", "offered",   "matched",  "arrived",
                                   "started", "completed", "cancelled", "no_driver"};
  char item[512];
  for (uint32_t i = 0; i < o->tlimit; i++) {
    trip *t = &o->t[i];
    if (!t->live || (v->tgen[i] == t->gen && v->tver[i] == t->version)) continue;
    if (v->tgen[i] != t->gen && t->ended_ms) { /* ended before this view saw it */
      v->tgen[i] = t->gen;
      v->tver[i] = t->version;
      continue;
    }
    int n = snprintf(item, sizeof item, "{\"id\":\"%s\",\"state\":\"%s\",\"shard\":%u,\"seq\":%llu",
                     t->id, (unsigned)t->status < 9 ? st[t->status] : "none", (unsigned)t->shard,
                     (unsigned long long)t->seq);
    if (t->has_pickup)
      n += snprintf(item + n, sizeof item - (size_t)n, ",\"pickup\":[%.5f,%.5f]", t->pickup.lat,
                    t->pickup.lon);
    if (t->has_dropoff)
      n += snprintf(item + n, sizeof item - (size_t)n, ",\"dropoff\":[%.5f,%.5f]", t->dropoff.lat,
                    t->dropoff.lon);
    if (t->driver[0])
      n += snprintf(item + n, sizeof item - (size_t)n, ",\"driver\":\"%s\"", t->driver);
    n += snprintf(item + n, sizeof item - (size_t)n, "}");
    jb_item(b, item, (size_t)n, "]}");
    v->tgen[i] = t->gen;
    v->tver[i] = t->version;
  }
  jb_end(b, "]}", false);
}

static int digits(int64_t x) {
  int n = x < 0 ? 2 : 1;
  if (x < 0) x = -x;
  while (x >= 10) {
    x /= 10;
    n++;
  }
  return n;
}

/* Drivers within the byte allowance: deletions, then new drivers and state changes, then
 * moves from the round-robin cursor. Returns the bytes emitted. */
static size_t frame_drivers(gw_ops *o, gw_ops_view *v, int64_t now_ms, int64_t allowance, jb *b) {
  size_t before = b->emitted;
  char head[96], item[160];
  /* deletions: slots this view knows that are gone or given to someone else */
  snprintf(head, sizeof head, "{\"type\":\"drivers\",\"ts\":%lld,\"del\":[", (long long)now_ms);
  jb_begin(b, head);
  for (uint32_t i = 0; i < GW_OPS_MAX_DRIVERS && i < o->dlimit; i++) {
    if (!v->dgen[i] || (o->d[i].live && o->d[i].gen == v->dgen[i])) continue;
    if (o->d[i].live) continue; /* reused: the add below rebinds the slot */
    int n = snprintf(item, sizeof item, "%u", (unsigned)i);
    jb_item(b, item, (size_t)n, "]}");
    v->dgen[i] = 0;
  }
  jb_end(b, "]}", false);

  /* new drivers and state changes: [slot,"id",lat_e5,lon_e5,state] */
  snprintf(head, sizeof head, "{\"type\":\"drivers\",\"ts\":%lld,\"add\":[", (long long)now_ms);
  jb_begin(b, head);
  for (uint32_t i = 0; i < o->dlimit; i++) {
    drv *d = &o->d[i];
    if (!d->live || (v->dgen[i] == d->gen && v->dstate[i] == d->state)) continue;
    if ((int64_t)(b->emitted - before + b->len) > allowance) break;
    int n = snprintf(item, sizeof item, "[%u,\"%s\",%d,%d,%u]", (unsigned)i, d->id, (int)d->lat_e5,
                     (int)d->lon_e5, (unsigned)d->state);
    jb_item(b, item, (size_t)n, "]}");
    v->dgen[i] = d->gen;
    v->dlat[i] = d->lat_e5;
    v->dlon[i] = d->lon_e5;
    v->dstate[i] = d->state;
  }
  jb_end(b, "]}", false);

  /* moves: flat [dslot,dlat,dlon, ...] with dslot from the previous entry's slot */
  snprintf(head, sizeof head, "{\"type\":\"drivers\",\"ts\":%lld,\"n\":%zu,\"move\":[",
           (long long)now_ms, o->ndrivers);
  jb_begin(b, head);
  uint32_t lim = o->dlimit, sent = 0, moved = 0;
  int64_t prev = 0;
  uint32_t start = lim ? v->cursor % lim : 0, i = start;
  bool out_of_budget = false;
  for (uint32_t k = 0; k < lim; k++, i = (i + 1 == lim ? 0 : i + 1)) {
    drv *d = &o->d[i];
    if (!d->live || v->dgen[i] != d->gen) continue;
    int32_t dl = d->lat_e5 - v->dlat[i], dn = d->lon_e5 - v->dlon[i];
    if (!dl && !dn) continue;
    moved++;
    if (out_of_budget) continue;
    int64_t cost = digits((int64_t)i - prev) + digits(dl) + digits(dn) + 3;
    if ((int64_t)(b->emitted - before + b->len) + cost > allowance) {
      out_of_budget = true;
      v->cursor = i; /* the next frame starts with the driver left out */
      continue;
    }
    /* chunk boundary: the first entry of a new message is relative to 0 again */
    if (b->len + 40 + JB_TAIL_ROOM > sizeof b->buf) {
      jb_emit(b, "]}");
      b->len = b->head_len;
      b->items = 0;
      prev = 0;
    }
    int n =
        snprintf(item, sizeof item, "%lld,%d,%d", (long long)((int64_t)i - prev), (int)dl, (int)dn);
    jb_item(b, item, (size_t)n, "]}");
    prev = i;
    v->dlat[i] = d->lat_e5;
    v->dlon[i] = d->lon_e5;
    sent++;
  }
  if (!out_of_budget) v->cursor = i;
  v->lag = moved - sent;
  jb_end(b, "]}", true); /* always: carries n, and tells the client a frame went by */
  return b->emitted - before;
}

static void frame_stats(gw_ops *o, gw_ops_view *v, int64_t now_ms, jb *b) {
  b->len = 0;
  jb_add(b, "{\"type\":\"stats\",\"ts\":%lld,\"shards\":[", (long long)now_ms);
  uint64_t mask = 0;
  if (o->map)
    for (size_t i = 0; i < gw_shardmap_size(o->map); i++)
      mask |= UINT64_C(1) << gw_shardmap_range(o->map, i)->shard;
  double req = 0, matched = 0, nod = 0, loc = 0;
  bool first = true;
  for (uint32_t k = 0; k < SHARDS; k++) {
    if (!(mask & (UINT64_C(1) << k))) continue;
    gw_ops_shard_stats s;
    gw_ops_shard_stats_get(o, k, now_ms, &s);
    req += s.requests_per_s;
    matched += s.matched_per_s;
    nod += s.no_driver_per_s;
    loc += s.locations_per_s;
    /* as many shards as fit one message with the totals after them (about 40 of 64) */
    if (b->len + 420 > sizeof b->buf - 800) continue;
    jb_add(
        b,
        "%s{\"shard\":%u,\"requests_per_s\":%.2f,\"matched_per_s\":%.2f,\"no_driver_per_s\":%.2f,"
        "\"locations_per_s\":%.1f,\"drivers\":%u,\"trips\":%u",
        first ? "" : ",", (unsigned)k, s.requests_per_s, s.matched_per_s, s.no_driver_per_s,
        s.locations_per_s, s.drivers, s.trips);
    if (s.match_rate >= 0)
      jb_add(b, ",\"match_rate\":%.4f", s.match_rate);
    else
      jb_add(b, ",\"match_rate\":null");
    if (s.offer_p50_ms >= 0)
      jb_add(b, ",\"offer_p50_ms\":%.1f,\"offer_p99_ms\":%.1f", s.offer_p50_ms, s.offer_p99_ms);
    else
      jb_add(b, ",\"offer_p50_ms\":null,\"offer_p99_ms\":null");
    jb_add(b, "}");
    first = false;
  }
  uint32_t by_state[GW_OPS_STATE_COUNT] = {0};
  for (uint32_t i = 0; i < o->dlimit; i++)
    if (o->d[i].live) by_state[o->d[i].state < GW_OPS_STATE_COUNT ? o->d[i].state : 0]++;
  size_t live_trips = 0;
  for (uint32_t i = 0; i < o->tlimit; i++)
    if (o->t[i].live && !o->t[i].ended_ms) live_trips++;
  jb_add(
      b,
      "],\"totals\":{\"drivers\":%zu,\"trips\":%zu,\"requests_per_s\":%.2f,\"matched_per_s\":%.2f,"
      "\"no_driver_per_s\":%.2f,\"locations_per_s\":%.1f,\"by_state\":{",
      o->ndrivers, live_trips, req, matched, nod, loc);
  for (int s = 0; s < GW_OPS_STATE_COUNT; s++)
    jb_add(b, "%s\"%s\":%u", s ? "," : "", STATE_NAMES[s], by_state[s]);
  jb_add(b, "}},\"stream\":{\"bytes_per_s\":%.0f,\"budget_bps\":%lld,\"lag_drivers\":%u}", v->bps,
         (long long)v->budget_bps, v->lag);
  jb_emit(b, "}");
}

size_t gw_ops_frame(gw_ops *o, gw_ops_view *v, int64_t now_ms, gw_ops_emit_fn emit, void *ud) {
  static jb b; /* one frame at a time (one thread) */
  memset(&b, 0, offsetof(jb, emit));
  b.emit = emit;
  b.ud = ud;
  b.emitted = 0;
  b.stopped = false;
  int64_t period =
      v->last_frame_ms && now_ms > v->last_frame_ms ? now_ms - v->last_frame_ms : v->period_ms;
  if (period > 10 * v->period_ms) period = 10 * v->period_ms;
  int64_t allowance = v->budget_bps * period / 1000;
  if (!v->hello_sent) {
    frame_hello(o, v, now_ms, &b);
    v->hello_sent = true;
  }
  if (v->shards_version != o->shards_version) {
    frame_shards(o, &b);
    v->shards_version = o->shards_version;
  }
  if (v->hot_version != o->hot_version) {
    frame_hot(o, now_ms, &b);
    v->hot_version = o->hot_version;
  }
  frame_trips(o, v, now_ms, &b);
  size_t reserve = 2048; /* the stats message that closes the frame */
  int64_t left = allowance - (int64_t)b.emitted - (int64_t)reserve;
  frame_drivers(o, v, now_ms, left > 0 ? left : 0, &b);
  double secs = (double)period / 1000.0;
  double inst = secs > 0 ? (double)b.emitted / secs : 0;
  v->bps = v->last_frame_ms ? 0.7 * v->bps + 0.3 * inst : inst;
  frame_stats(o, v, now_ms, &b);
  v->last_frame_ms = now_ms;
  return b.emitted;
}

/* ---- client messages ------------------------------------------------------------------- */

static int reply_error(char *reply, size_t cap, gw_code code, const char *field, const char *ref,
                       const char *msg) {
  gw_error e;
  memset(&e, 0, sizeof e);
  gw_error_set(&e, code, field, "%s", msg);
  if (ref) {
    e.has_ref = true;
    snprintf(e.ref, sizeof e.ref, "%s", ref);
  }
  if (gw_format_error(&e, reply, cap) < 0 && cap) reply[0] = 0;
  return -1;
}

int gw_ops_handle(gw_ops *o, gw_ops_view *v, const char *text, size_t len, char *reply,
                  size_t cap) {
  if (len > IN_MAX)
    return reply_error(reply, cap, GW_TOO_LARGE, NULL, NULL,
                       "ops messages are limited to 1024 bytes");
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root || !json_is_object(root)) {
    json_decref(root);
    return reply_error(reply, cap, GW_BAD_REQUEST, NULL, NULL, "not a JSON object");
  }
  const char *ref = NULL;
  json_t *jr = json_object_get(root, "ref");
  char refbuf[MRD_REF_MAX + 1] = "";
  if (jr) {
    if (!json_is_string(jr) || json_string_length(jr) > GW_REF_MAX_CHARS ||
        json_string_length(jr) > MRD_REF_MAX) {
      json_decref(root);
      return reply_error(reply, cap, GW_BAD_REQUEST, "ref", NULL,
                         "ref: must be a string of at most 128 characters");
    }
    snprintf(refbuf, sizeof refbuf, "%s", json_string_value(jr));
    ref = refbuf;
  }
  json_t *jt = json_object_get(root, "type");
  if (!json_is_string(jt) || strcmp(json_string_value(jt), "config") != 0) {
    json_decref(root);
    return reply_error(reply, cap, GW_BAD_REQUEST, "type", ref,
                       "type: the ops stream takes only \"config\"");
  }
  const char *key;
  json_t *val;
  int64_t period = v->period_ms, budget = v->budget_bps;
  int rc = 0;
  json_object_foreach(root, key, val) {
    if (strcmp(key, "type") == 0 || strcmp(key, "ref") == 0) continue;
    if (strcmp(key, "period_ms") == 0) {
      if (!json_is_integer(val) || json_integer_value(val) < 250 ||
          json_integer_value(val) > 10000) {
        rc = reply_error(reply, cap, GW_BAD_REQUEST, "period_ms", ref,
                         "period_ms: must be an integer in [250, 10000]");
        break;
      }
      period = json_integer_value(val);
    } else if (strcmp(key, "budget_bps") == 0) {
      if (!json_is_integer(val) || json_integer_value(val) < 10000 ||
          json_integer_value(val) > o->cfg.budget_bps) {
        char msg[96];
        snprintf(msg, sizeof msg, "budget_bps: must be an integer in [10000, %lld]",
                 (long long)o->cfg.budget_bps);
        rc = reply_error(reply, cap, GW_BAD_REQUEST, "budget_bps", ref, msg);
        break;
      }
      budget = json_integer_value(val);
    } else {
      char field[32];
      snprintf(field, sizeof field, "%s", key);
      char msg[96];
      snprintf(msg, sizeof msg, "%s: unknown field", field);
      rc = reply_error(reply, cap, GW_BAD_REQUEST, field, ref, msg);
      break;
    }
  }
  json_decref(root);
  if (rc) return rc;
  v->period_ms = period;
  v->budget_bps = budget;
  if (ref) {
    if (gw_format_ack(ref, reply, cap) < 0 && cap) reply[0] = 0;
  } else if (cap) {
    reply[0] = 0;
  }
  return 0;
}

/* ---- range -> cells --------------------------------------------------------------------- */

typedef struct cellwalk {
  const char *start, *end;
  double min_lat, min_lon, max_lat, max_lon;
  int max_prec;
  char (*cells)[13];
  size_t cap, n;
} cellwalk;

static const char B32[] = "0123456789bcdefghjkmnpqrstuvwxyz";

/* Does the cell `p` (all geohashes starting with p) intersect the box? */
static bool cell_in_box(const cellwalk *w, const char *p) {
  if (!p[0]) return true;
  geo_bbox box;
  geo_latlng c;
  if (geo_geohash_decode(p, &box, &c) != GEO_OK) return false;
  return !(box.max_lat < w->min_lat || box.min_lat > w->max_lat || box.max_lng < w->min_lon ||
           box.min_lng > w->max_lon);
}

static void walk(cellwalk *w, char *p, int len) {
  /* every geohash with prefix p is in [p, p + "~") */
  char hi[16];
  memcpy(hi, p, (size_t)len);
  hi[len] = '~';
  hi[len + 1] = 0;
  if (strcmp(hi, w->start) <= 0 || strcmp(p, w->end) >= 0) return; /* disjoint */
  if (!cell_in_box(w, p)) return;
  if (len == w->max_prec) {
    /* a cell the range cuts goes to the range holding its first point, p */
    if (strcmp(p, w->start) < 0) return;
    if (w->n < w->cap) memcpy(w->cells[w->n], p, (size_t)len + 1);
    w->n++;
    return;
  }
  for (int i = 0; i < 32; i++) {
    p[len] = B32[i];
    p[len + 1] = 0;
    walk(w, p, len + 1);
  }
  p[len] = 0;
}

size_t gw_ops_range_cells(const char *start, const char *end, double min_lat, double min_lon,
                          double max_lat, double max_lon, int precision, char (*cells)[13],
                          size_t cap) {
  if (precision < 1) precision = 1;
  if (precision > 12) precision = 12;
  cellwalk w = {start, end, min_lat, min_lon, max_lat, max_lon, precision, cells, cap, 0};
  char p[16] = "";
  walk(&w, p, 0);
  return w.n;
}

/* ---- invariants ------------------------------------------------------------------------- */

int gw_ops_check(const gw_ops *o, char *why, size_t cap) {
  size_t live = 0;
  for (uint32_t i = 0; i < o->dlimit; i++) {
    if (!o->d[i].live) continue;
    live++;
    if (drv_find(o, o->d[i].id) != (int32_t)i) {
      snprintf(why, cap, "driver slot %u (%s) is not found by its id", (unsigned)i, o->d[i].id);
      return -1;
    }
    if (o->d[i].state >= GW_OPS_STATE_COUNT) {
      snprintf(why, cap, "driver slot %u has state %u", (unsigned)i, (unsigned)o->d[i].state);
      return -1;
    }
  }
  if (live != o->ndrivers || live + (size_t)o->dfree_top != GW_OPS_MAX_DRIVERS) {
    snprintf(why, cap, "driver count %zu, live slots %zu, free slots %d", o->ndrivers, live,
             (int)o->dfree_top);
    return -1;
  }
  size_t tl = 0;
  for (uint32_t i = 0; i < o->tlimit; i++) {
    if (!o->t[i].live) continue;
    tl++;
    if (trip_find(o, o->t[i].id) != (int32_t)i) {
      snprintf(why, cap, "trip slot %u (%s) is not found by its id", (unsigned)i, o->t[i].id);
      return -1;
    }
  }
  if (tl != o->ntrips || tl + (size_t)o->tfree_top != GW_OPS_MAX_TRIPS) {
    snprintf(why, cap, "trip count %zu, live slots %zu, free slots %d", o->ntrips, tl,
             (int)o->tfree_top);
    return -1;
  }
  return 0;
}

/* ---- roads ------------------------------------------------------------------------------- */

typedef struct sbuf {
  char *p;
  size_t len, cap;
  bool oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_add(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->oom = true;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap * 2 + (size_t)n + 1;
    char *q = realloc(b->p, cap);
    if (!q) {
      b->oom = true;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
}

int gw_ops_roads_geojson(const geo_graph *g, char **out, size_t *len) {
  sbuf b = {malloc(1 << 16), 0, 1 << 16, false};
  if (!b.p) return -1;
  sb_add(&b, "{\"type\":\"FeatureCollection\",\"features\":[");
  uint32_t arcs = geo_graph_arc_count(g);
  bool first_feature = true;
  for (int cls = 0; cls < GEO_ROAD_CLASS_COUNT; cls++) {
    bool first_line = true;
    for (uint32_t a = 0; a < arcs && !b.oom; a++) {
      if ((int)geo_graph_arc_class(g, a) != cls) continue;
      uint32_t twin = geo_graph_arc_twin(g, a);
      if (twin != GEO_ARC_NONE && twin < a) continue; /* the road is drawn once */
      if (first_line) {
        sb_add(&b,
               "%s{\"type\":\"Feature\",\"properties\":{\"class\":%d},\"geometry\":"
               "{\"type\":\"MultiLineString\",\"coordinates\":[",
               first_feature ? "" : ",", cls);
        first_feature = false;
      }
      geo_latlng t = geo_graph_node_pos(g, geo_graph_arc_tail(g, a));
      geo_latlng h = geo_graph_node_pos(g, geo_graph_arc_head(g, a));
      sb_add(&b, "%s[[%.5f,%.5f]", first_line ? "" : ",", t.lng, t.lat);
      first_line = false;
      size_t n = 0;
      const geo_latlng *sh = geo_graph_arc_shape(g, a, &n);
      for (size_t i = 0; i < n; i++) sb_add(&b, ",[%.5f,%.5f]", sh[i].lng, sh[i].lat);
      sb_add(&b, ",[%.5f,%.5f]]", h.lng, h.lat);
    }
    if (!first_line) sb_add(&b, "]}}");
  }
  sb_add(&b, "]}");
  if (b.oom) {
    free(b.p);
    return -1;
  }
  *out = b.p;
  *len = b.len;
  return 0;
}
