/*
 * store_io.c: the gateway's Redis and PostgreSQL adapters: the shard map and its epoch
 * from PostgreSQL (LISTEN shard_map for prompt changes, max(epoch) re-read as a
 * fallback), the per-rider sliding window of ride requests (a Lua script, so
 * every replica counts in the same window atomically), request ownership for cancels,
 * idempotency of (rider, request_id) across shards and time, nearby drivers (GEOSEARCH on the hot-cell GEO set) and trip snapshots.
 *
 * Redis calls are synchronous with a short time limit (MERIDIAN_GW_REDIS_TIMEOUT_MS); while
 * Redis is down the adapter fails fast (mrd_redis backoff) and callers answer
 * `unavailable` for what needs Redis, everything else keeps working.
 * Key layout: schemas/redis.md (gw:rl:req:{rider}, gw:req:{rider}:{request_id},
 * drivers:available, trip:active:{role}:{user}, trip:last:rider:{rider}, trip:snap:{trip_id}).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mrd/log.h"
#include "server.h"

int gw_shardmap_load(gw_server *s) {
  PGresult *res = NULL;
  int rc = mrd_pg_exec(s->pg, &res,
                       "SELECT epoch, range_start, range_end, shard FROM shard_map "
                       "WHERE epoch = (SELECT max(epoch) FROM shard_map) ORDER BY range_start",
                       0, NULL);
  if (rc) {
    mrd_log_error("shardmap_load", "err=%s", mrd_pg_errstr(s->pg));
    return -1;
  }
  int n = PQntuples(res);
  if (n < 1) {
    PQclear(res);
    mrd_log_error("shardmap_load", "err=%s", "shard_map is empty");
    return -1;
  }
  gw_shard_range *r = calloc((size_t)n, sizeof *r);
  if (!r) {
    PQclear(res);
    return -1;
  }
  uint64_t epoch = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  char err[200];
  for (int i = 0; i < n; i++) {
    if (gw_shard_range_parse(PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
                             &r[i], err, sizeof err) != 0) {
      PQclear(res);
      free(r);
      mrd_log_error("shardmap_load", "epoch=%llu row=%d err=%s", (unsigned long long)epoch, i, err);
      return -1;
    }
  }
  PQclear(res);
  gw_shardmap *m = gw_shardmap_new(epoch, r, (size_t)n, err, sizeof err);
  free(r);
  if (!m) {
    mrd_log_error("shardmap_load", "epoch=%llu err=%s", (unsigned long long)epoch, err);
    return -1;
  }
  gw_shardmap_free(s->map);
  s->map = m;
  mrd_gauge_set(s->m.shardmap_epoch, (double)epoch);
  mrd_log_info("shardmap_loaded", "epoch=%llu ranges=%d", (unsigned long long)epoch, n);
  return 0;
}

/* The newest epoch in shard_map: 0 and *epoch, or -1 (logged once per outage). */
static int read_max_epoch(gw_server *s, uint64_t *epoch) {
  PGresult *res = NULL;
  if (mrd_pg_exec(s->pg, &res, "SELECT coalesce(max(epoch), 0) FROM shard_map", 0, NULL) != 0)
    return -1;
  *epoch = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return 0;
}

static void reload_if_newer(gw_server *s, uint64_t e, const char *why) {
  uint64_t cached = s->map ? gw_shardmap_epoch(s->map) : 0;
  if (e == 0 || e == cached) return;
  mrd_log_info("epoch_changed", "new=%llu cached=%llu via=%s", (unsigned long long)e,
               (unsigned long long)cached, why);
  if (gw_shardmap_load(s) == 0) mrd_counter_inc(s->m.epoch_reloads);
}

static void on_notify(void *ud, const char *channel, const char *payload) {
  gw_server *s = ud;
  if (strcmp(channel, "shard_map") != 0) return;
  uint64_t *seen = &s->notified_epoch;
  uint64_t e = strtoull(payload, NULL, 10);
  if (e > *seen) *seen = e;
}

int gw_epoch_listen(gw_server *s) {
  int rc = mrd_pg_listen(s->pg, "shard_map");
  if (rc != 0) mrd_log_warn("epoch_listen", "err=%s", mrd_pg_errstr(s->pg));
  s->pg_connects = mrd_pg_reconnects(s->pg);
  return rc;
}

void gw_epoch_notified(gw_server *s) {
  /* reconnecting is the periodic read's job (gw_epoch_check): not every 20 ms */
  if (!mrd_pg_connected(s->pg)) return;
  s->notified_epoch = 0;
  if (mrd_pg_notifications(s->pg, on_notify, s) < 0) return; /* the fallback read covers it */
  if (mrd_pg_reconnects(s->pg) != s->pg_connects) { /* notifications may have been missed */
    s->pg_connects = mrd_pg_reconnects(s->pg);
    gw_epoch_check(s);
    return;
  }
  /* a notification names the epoch inserted; the map loaded is the newest one anyway */
  if (s->notified_epoch) reload_if_newer(s, s->notified_epoch, "notify");
}

void gw_epoch_check(gw_server *s) {
  uint64_t e = 0;
  if (read_max_epoch(s, &e) == 0) reload_if_newer(s, e, "poll");
}

static const char WINDOW_LUA[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))\n"
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end\n"
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n";

int gw_request_window(gw_server *s, const char *rider, int64_t now_ms) {
  char key[MRD_ID_MAX + 16], now[32], member[64], limit[16];
  snprintf(key, sizeof key, "gw:rl:req:%s", rider);
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  snprintf(member, sizeof member, "%lld-%d-%llu", (long long)now_ms, (int)getpid(),
           (unsigned long long)++s->counter);
  snprintf(limit, sizeof limit, "%d", s->cfg->requests_per_min);
  const char *argv[] = {"EVAL", WINDOW_LUA, "1", key, now, "60000", limit, member};
  redisReply *rep = NULL;
  if (mrd_redis_cmd(s->redis, &rep, 8, argv, NULL) != 0) return GW_UNAVAILABLE;
  int rc = (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) ? 0 : GW_RATE_LIMITED;
  freeReplyObject(rep);
  return rc;
}

/* gw:req:{rider}:{request_id} (schemas/redis.md) */
static void request_key(char *key, size_t cap, const char *rider, const char *request_id) {
  snprintf(key, cap, "gw:req:%s:%s", rider, request_id);
}

int gw_request_record(gw_server *s, const char *request_id, const char *rider, uint32_t shard,
                      mrd_latlon pickup, mrd_latlon dropoff, gw_req_seen *seen,
                      uint32_t *route_shard, char *value, size_t value_cap) {
  char key[2 * MRD_ID_MAX + 16], ttl[24];
  request_key(key, sizeof key, rider, request_id);
  if (gw_request_value(shard, pickup, dropoff, value, value_cap) < 0) return GW_INTERNAL;
  snprintf(ttl, sizeof ttl, "%lld", (long long)(s->cfg->request_ttl_ms / 1000));
  /* Redis 7: NX with GET sets the key when it is missing and answers the old value */
  const char *argv[] = {"SET", key, value, "NX", "EX", ttl, "GET"};
  redisReply *rep = NULL;
  if (mrd_redis_cmd(s->redis, &rep, 7, argv, NULL) != 0) return GW_UNAVAILABLE;
  const char *stored = rep->type == REDIS_REPLY_STRING ? rep->str : NULL;
  int rc = 0;
  if (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_NIL) {
    rc = GW_UNAVAILABLE;
  } else {
    *route_shard = shard;
    *seen = gw_request_compare(stored, value, route_shard);
  }
  freeReplyObject(rep);
  return rc;
}

void gw_request_forget(gw_server *s, const char *request_id, const char *rider,
                       const char *value) {
  char key[2 * MRD_ID_MAX + 16];
  request_key(key, sizeof key, rider, request_id);
  const char *argv[] = {"EVAL", MRD_REDIS_CAD_LUA, "1", key, value};
  redisReply *rep = NULL;
  if (mrd_redis_cmd(s->redis, &rep, 5, argv, NULL) != 0) {
    /* the key stays: a retry is a resend the shard refuses (invalid_state), never a
     * second trip; the rider sends a new request_id */
    mrd_log_warn("request_forget_failed", "rider=%s request_id=%s err=%s", rider, request_id,
                 mrd_redis_errstr(s->redis));
    return;
  }
  freeReplyObject(rep);
}

int gw_request_lookup(gw_server *s, const char *request_id, const char *rider, uint32_t *shard) {
  char key[2 * MRD_ID_MAX + 16];
  request_key(key, sizeof key, rider, request_id);
  const char *argv[] = {"GET", key};
  redisReply *rep = NULL;
  if (mrd_redis_cmd(s->redis, &rep, 2, argv, NULL) != 0) return GW_UNAVAILABLE;
  int rc = GW_FORBIDDEN;
  if (rep->type == REDIS_REPLY_STRING) {
    char *end = NULL;
    unsigned long v = strtoul(rep->str, &end, 10);
    if (end != rep->str && *end == '|' && v < MRD_SHARD_COUNT) {
      *shard = (uint32_t)v;
      rc = 0;
    }
  }
  freeReplyObject(rep);
  return rc;
}

int gw_nearby(gw_server *s, mrd_latlon at, double radius_m, mrd_latlon *out, size_t cap,
              size_t *n) {
  redisReply *rep = NULL;
  char lon[32], lat[32], rad[32], count[16];
  snprintf(lon, sizeof lon, "%.7f", at.lon);
  snprintf(lat, sizeof lat, "%.7f", at.lat);
  snprintf(rad, sizeof rad, "%.1f", radius_m);
  snprintf(count, sizeof count, "%zu", cap);
  const char *argv[] = {"GEOSEARCH", s->cfg->nearby_key, "FROMLONLAT", lon, lat, "BYRADIUS", rad,
                        "m", "ASC", "COUNT", count, "WITHCOORD"};
  if (mrd_redis_cmd(s->redis, &rep, 12, argv, NULL) != 0) return GW_UNAVAILABLE;
  *n = 0;
  if (rep->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < rep->elements && *n < cap; i++) {
      redisReply *e = rep->element[i];
      if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) continue;
      redisReply *xy = e->element[1];
      if (xy->type != REDIS_REPLY_ARRAY || xy->elements != 2) continue;
      mrd_latlon p = {strtod(xy->element[1]->str, NULL), strtod(xy->element[0]->str, NULL)};
      if (mrd_latlon_valid(p)) out[(*n)++] = p;
    }
  }
  freeReplyObject(rep);
  return 0;
}

int gw_trip_snapshot(gw_server *s, gw_role role, const char *user, mrd_dispatch_event *ev) {
  redisReply *rep = NULL;
  if (mrd_redis_cmdf(s->redis, &rep, "GET trip:active:%s:%s",
                     role == GW_ROLE_DRIVER ? "driver" : "rider", user) != 0)
    return -1;
  char trip[MRD_ID_MAX + 1] = "";
  if (rep->type == REDIS_REPLY_STRING && mrd_trip_id_shard(rep->str, NULL))
    snprintf(trip, sizeof trip, "%s", rep->str);
  freeReplyObject(rep);
  if (!trip[0] && role == GW_ROLE_RIDER) {
    /* no live trip: his latest one if it ended lately (he may have missed its end) */
    if (mrd_redis_cmdf(s->redis, &rep, "GET trip:last:rider:%s", user) != 0) return -1;
    if (rep->type == REDIS_REPLY_STRING && mrd_trip_id_shard(rep->str, NULL))
      snprintf(trip, sizeof trip, "%s", rep->str);
    freeReplyObject(rep);
  }
  if (!trip[0]) return 0;
  if (mrd_redis_cmdf(s->redis, &rep, "GET trip:snap:%s", trip) != 0) return -1;
  int rc = 0;
  if (rep->type == REDIS_REPLY_STRING &&
      mrd_dispatch_event_decode((const uint8_t *)rep->str, rep->len, ev) == 0)
    rc = 1;
  freeReplyObject(rep);
  return rc;
}
