/*
 * handoff_io.c: meridian-dispatch's side of live rebalancing (docs/shards.md): applying a new
 * shard-map epoch (the ranges gained are warmed from the Redis hot cells before any message
 * of that epoch is handled; the drivers of ranges lost become halo copies and leave this
 * shard's hot cells without their GEO entries being removed), and the shard's figures in
 * Redis (dispatch:stats:{shard}) that `meridianctl shards show|plan|apply` read. The
 * decisions are handoff.c's (pure); this file does the Redis round trips and the logging.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "geo/geohash.h"
#include "handoff.h"
#include "mrd/clock.h"
#include "mrd/log.h"
#include "service.h"

#define STATS_TTL_MS "15000" /* dispatch:stats:{shard} outlives a dead shard by this long */

/* ---------------------------------------------------------------- warm-up */

/* The hot-cell keys (hot:drivers:<geohash5>) whose cell meets a gained range. */
static int wanted_cells(dsvc *s, const dsp_handoff *h, char ***out, size_t *n) {
  char **keys = NULL;
  size_t len = 0, cap = 0;
  char cursor[32] = "0";
  do {
    redisReply *r = NULL;
    const char *argv[] = {"SCAN", cursor, "MATCH", "hot:drivers:*", "COUNT", "1000"};
    if (mrd_redis_cmd(s->redis, &r, 6, argv, NULL) != 0) goto fail;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
      freeReplyObject(r);
      goto fail;
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str ? r->element[0]->str : "0");
    redisReply *ks = r->element[1];
    for (size_t i = 0; i < ks->elements; i++) {
      const char *k = ks->element[i]->str;
      if (!k || strlen(k) <= strlen("hot:drivers:")) continue;
      const char *cell = k + strlen("hot:drivers:");
      if (!mrd_range_key_valid(cell) || !dsp_handoff_cell_wanted(h, cell)) continue;
      if (len == cap) {
        cap = cap ? cap * 2 : 16;
        char **x = realloc(keys, cap * sizeof *x);
        if (!x) {
          freeReplyObject(r);
          goto fail;
        }
        keys = x;
      }
      keys[len] = strdup(k);
      if (!keys[len]) {
        freeReplyObject(r);
        goto fail;
      }
      len++;
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
  *out = keys;
  *n = len;
  return 0;
fail:
  for (size_t i = 0; i < len; i++) free(keys[i]);
  free(keys);
  return -1;
}

/* Put the available drivers of the gained ranges into the index, from the hot cells the
 * giving shard keeps in Redis (at most one hot interval old). Returns the drivers warmed
 * (counting those the index already held, as halo copies of drivers near our ranges),
 * or -1 when Redis could not be read (the shard then learns them from their pings). */
static long warm(dsvc *s, const dsp_handoff *h, int64_t now_ms) {
  char **keys = NULL;
  size_t nk = 0;
  if (wanted_cells(s, h, &keys, &nk) != 0) return -1;
  long warmed = 0;
  int rc = 0;
  for (size_t i = 0; i < nk && rc == 0; i++) {
    redisReply *r = NULL;
    /* every member with its position: a search around the cell's centre wide enough */
    geo_latlng c;
    const char *cell = keys[i] + strlen("hot:drivers:");
    if (geo_geohash_decode(cell, NULL, &c) != GEO_OK) continue;
    char lon[32], lat[32];
    snprintf(lon, sizeof lon, "%.7f", c.lng);
    snprintf(lat, sizeof lat, "%.7f", c.lat);
    const char *argv[] = {"GEOSEARCH", keys[i], "FROMLONLAT", lon,        lat,
                          "BYRADIUS",  "50",    "km",         "WITHCOORD"};
    if (mrd_redis_cmd(s->redis, &r, 9, argv, NULL) != 0) {
      rc = -1;
      break;
    }
    if (r->type == REDIS_REPLY_ARRAY)
      for (size_t j = 0; j < r->elements; j++) {
        redisReply *e = r->element[j];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !e->element[0]->str) continue;
        redisReply *co = e->element[1];
        if (co->type != REDIS_REPLY_ARRAY || co->elements != 2 || !co->element[0]->str ||
            !co->element[1]->str)
          continue;
        geo_latlng p = {strtod(co->element[1]->str, NULL), strtod(co->element[0]->str, NULL)};
        char gh[GEO_GEOHASH_BUF];
        if (geo_latlng_to_geohash(p, 9, gh) != GEO_OK) continue;
        if (!dsp_handoff_in(h->gained, h->n_gained, gh)) continue;
        /* created, or known already (a halo copy from his pings near our ranges): warm */
        bool created;
        if (dsp_on_warm(s->shard, e->element[0]->str, p, now_ms, &created) == DSP_OK) {
          warmed++;
          if (created) dsp_hot_driver(s->hot, e->element[0]->str, true, p, now_ms);
        }
      }
    freeReplyObject(r);
  }
  for (size_t i = 0; i < nk; i++) free(keys[i]);
  free(keys);
  return rc == 0 ? warmed : -1;
}

/* ---------------------------------------------------------------- release */

typedef struct release_ctx {
  dsvc *s;
  const mrd_shardmap *map;
} release_ctx;

static bool owner_of(void *ud, geo_latlng pos, uint32_t *owner) {
  release_ctx *c = ud;
  char gh[GEO_GEOHASH_BUF];
  if (geo_latlng_to_geohash(pos, 9, gh) != GEO_OK) return false;
  *owner = mrd_shardmap_lookup(c->map, gh);
  return true;
}

static void released(void *ud, const char *id) {
  release_ctx *c = ud;
  dsp_hot_disown(c->s->hot, id);
}

/* ---------------------------------------------------------------- apply an epoch */

int dsvc_handoff(dsvc *s, const dsvc_map *next, int64_t now_ms) {
  uint64_t epoch = next->epoch;
  mrd_shardmap nm;
  mrd_shardmap_init(&nm);
  for (size_t i = 0; i < next->n; i++)
    if (mrd_shardmap_add(&nm, next->ranges[i].start, next->ranges[i].end, next->ranges[i].shard)) {
      mrd_shardmap_close(&nm);
      return -1;
    }
  char err[256];
  if (mrd_shardmap_check(&nm, err, sizeof err) != 0) {
    mrd_log_error("handoff", "epoch=%llu err=%s", (unsigned long long)epoch, err);
    mrd_shardmap_close(&nm);
    return -1;
  }
  dsp_handoff h;
  if (dsp_handoff_diff(s->have_hmap ? &s->hmap : NULL, &nm, (uint32_t)s->cfg->shard, &h) != 0) {
    mrd_log_error("handoff", "epoch=%llu err=%s", (unsigned long long)epoch, "out of memory");
    mrd_shardmap_close(&nm);
    return -1;
  }
  double t0 = ((double)mrd_mono_us() / 1e3);
  long warmed = 0;
  size_t released_n = 0;
  if (s->shard && s->hot && h.n_gained) {
    warmed = warm(s, &h, now_ms);
    if (warmed < 0)
      mrd_log_warn("handoff_warm_failed", "epoch=%llu err=%s action=%s", (unsigned long long)epoch,
                   mrd_redis_errstr(s->redis), "the gained ranges fill from their pings");
  }
  if (s->shard && s->hot && h.n_lost) {
    release_ctx rc = {s, &nm};
    released_n = dsp_release_owned(s->shard, owner_of, &rc, released);
  }
  double ms = ((double)mrd_mono_us() / 1e3) - t0;
  for (size_t i = 0; i < h.n_gained; i++)
    mrd_log_info("handoff_gained", "epoch=%llu range=%s:%s from=%u", (unsigned long long)epoch,
                 h.gained[i].start, h.gained[i].end, h.gained[i].from);
  for (size_t i = 0; i < h.n_lost; i++)
    mrd_log_info("handoff_lost", "epoch=%llu range=%s:%s to=%u", (unsigned long long)epoch,
                 h.lost[i].start, h.lost[i].end, h.lost[i].to);
  if (h.n_gained || h.n_lost) {
    mrd_log_info("handoff", "epoch=%llu gained=%zu lost=%zu warmed=%ld released=%zu ms=%.1f",
                 (unsigned long long)epoch, h.n_gained, h.n_lost, warmed < 0 ? 0 : warmed,
                 released_n, ms);
    if (h.n_gained) {
      s->last_warmed = warmed < 0 ? 0 : warmed;
      s->last_warm_ms = ms;
    }
  }
  dsp_handoff_close(&h);
  mrd_shardmap_close(&s->hmap);
  s->hmap = nm; /* takes ownership */
  s->have_hmap = true;
  return 0;
}

/* ---------------------------------------------------------------- figures */

void dsvc_stats_publish(dsvc *s, int64_t now_ms) {
  if (!s->shard || !dsvc_may_act(s)) return; /* a standby, or a holder that lost its lease */
  dsp_stats st;
  dsp_stats_get(s->shard, &st);
  /* the rates over the last minute, from one sample a second */
  int i = s->rate_n % DSVC_RATE_SAMPLES;
  s->rate[i].t_ms = now_ms;
  s->rate[i].pings = s->owner_pings;
  s->rate[i].requests = st.requests;
  s->rate_n++;
  int oldest = s->rate_n > DSVC_RATE_SAMPLES ? (int)(s->rate_n % DSVC_RATE_SAMPLES) : 0;
  double dt = (double)(now_ms - s->rate[oldest].t_ms) / 1e3;
  double upd = dt > 0 ? (double)(s->owner_pings - s->rate[oldest].pings) / dt : 0;
  double req = dt > 0 ? (double)(st.requests - s->rate[oldest].requests) / dt : 0;
  int ranges = 0;
  ranges = dsvc_map_owned(&s->map, (uint32_t)s->cfg->shard);
  char key[48], v[12][48];
  snprintf(key, sizeof key, "dispatch:stats:%d", s->cfg->shard);
  snprintf(v[0], sizeof v[0], "%llu", (unsigned long long)s->epoch);
  snprintf(v[1], sizeof v[1], "%lld", (long long)now_ms);
  snprintf(v[2], sizeof v[2], "%ld", (long)getpid());
  snprintf(v[3], sizeof v[3], "%lld", (long long)s->since_ms);
  snprintf(v[4], sizeof v[4], "%llu", (unsigned long long)st.drivers_indexed);
  snprintf(v[5], sizeof v[5], "%llu", (unsigned long long)st.trips_live);
  snprintf(v[6], sizeof v[6], "%.2f", upd);
  snprintf(v[7], sizeof v[7], "%.3f", req);
  snprintf(v[8], sizeof v[8], "%ld", s->last_warmed);
  snprintf(v[9], sizeof v[9], "%.1f", s->last_warm_ms);
  snprintf(v[10], sizeof v[10], "%d", ranges);
  snprintf(v[11], sizeof v[11], "%d", s->ready ? 1 : 0);
  const char *argv[] = {"HSET",           key,     "epoch",      v[0], "ts_ms",         v[1],
                        "host",           s->host, "pid",        v[2], "since_ms",      v[3],
                        "drivers",        v[4],    "open_trips", v[5], "updates_per_s", v[6],
                        "requests_per_s", v[7],    "warmed",     v[8], "warm_ms",       v[9],
                        "ranges",         v[10],   "ready",      v[11]};
  const char *exp[] = {"PEXPIRE", key, STATS_TTL_MS};
  if (mrd_redis_append(s->redis, (int)(sizeof argv / sizeof argv[0]), argv, NULL) != 0 ||
      mrd_redis_append(s->redis, 3, exp, NULL) != 0)
    return;
  while (mrd_redis_pending(s->redis) > 0) {
    redisReply *r = NULL;
    if (mrd_redis_get_reply(s->redis, &r) != 0) break;
    if (r) freeReplyObject(r);
  }
}
