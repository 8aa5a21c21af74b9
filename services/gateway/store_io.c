/*
 * store_io.c: the gateway's Redis and PostgreSQL adapters: the shard map and its epoch
 * from PostgreSQL (LISTEN shard_map for prompt changes, max(epoch) re-read as a
 * fallback), the per-rider sliding window of ride requests (a Lua script, so
 * every replica counts in the same window atomically), request ownership for cancels,
 * idempotency of (rider, request_id) across shards and time, nearby drivers (GEOSEARCH on the
 * hot-cell GEO set) and trip snapshots.
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
    return rc;
  }
  int n = PQntuples(res);
  if (n < 1) {
    PQclear(res);
    mrd_log_error("shardmap_load", "err=%s", "shard_map is empty");
    return MRD_ENOTFOUND;
  }
  gw_shard_range *r = calloc((size_t)n, sizeof *r);
  if (!r) {
    PQclear(res);
    mrd_log_error("shardmap_load", "err=%s", mrd_strerror(MRD_ENOMEM));
    return MRD_ENOMEM;
  }
  uint64_t epoch = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  char err[200];
  for (int i = 0; i < n; i++) {
    if (gw_shard_range_parse(PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
                             &r[i], err, sizeof err) != 0) {
      PQclear(res);
      free(r);
      mrd_log_error("shardmap_load", "epoch=%llu row=%d err=%s", (unsigned long long)epoch, i, err);
      return MRD_EPARSE;
    }
  }
  PQclear(res);
  gw_shardmap *m = gw_shardmap_new(epoch, r, (size_t)n, err, sizeof err);
  free(r);
  if (!m) {
    mrd_log_error("shardmap_load", "epoch=%llu err=%s", (unsigned long long)epoch, err);
    return MRD_EINVAL; /* rows that do not tile the world (or no memory: said in err) */
  }
  /* Every shard an epoch ever named: a shard whose ranges all moved away still finishes
   * its offers and trips, whose commands must reach it (gw_shardmap_trip_shards). */
  if (mrd_pg_exec(s->pg, &res, "SELECT coalesce(bit_or(1::bigint << shard), 0) FROM shard_map", 0,
                  NULL) != 0) {
    mrd_log_error("shardmap_load", "epoch=%llu err=%s", (unsigned long long)epoch,
                  mrd_pg_errstr(s->pg));
    gw_shardmap_free(m);
    return -1;
  }
  gw_shardmap_set_history(m, (uint64_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10));
  PQclear(res);
  gw_shardmap_free(s->map);
  s->map = m;
  mrd_gauge_set(s->m.shardmap_epoch, (double)epoch);
  mrd_log_info("shardmap_loaded", "epoch=%llu ranges=%d", (unsigned long long)epoch, n);
  return 0;
}

/* The newest epoch in shard_map: 0 and *epoch, or mrd_pg_exec's MRD_E* (logged by
 * mrd_pg once per outage). */
static int read_max_epoch(gw_server *s, uint64_t *epoch) {
  PGresult *res = NULL;
  int rc = mrd_pg_exec(s->pg, &res, "SELECT coalesce(max(epoch), 0) FROM shard_map", 0, NULL);
  if (rc != 0) return rc;
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

int gw_request_window(gw_server *s, const char *rider, int64_t now_ms, bool *allowed) {
  char key[MRD_ID_MAX + 16], now[32], member[64], limit[16];
  snprintf(key, sizeof key, "gw:rl:req:%s", rider);
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  snprintf(member, sizeof member, "%lld-%d-%llu", (long long)now_ms, (int)getpid(),
           (unsigned long long)++s->counter);
  snprintf(limit, sizeof limit, "%d", s->cfg->requests_per_min);
  const char *argv[] = {"EVAL", WINDOW_LUA, "1", key, now, "60000", limit, member};
  redisReply *rep = NULL;
  int rc = mrd_redis_cmd(s->redis, &rep, 8, argv, NULL);
  if (rc != 0) return rc;
  *allowed = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
  freeReplyObject(rep);
  return 0;
}

/* gw:req:{rider}:{request_id} (schemas/redis.md) */
static void request_key(char *key, size_t cap, const char *rider, const char *request_id) {
  snprintf(key, cap, "gw:req:%s:%s", rider, request_id);
}

int gw_request_claim(gw_server *s, const char *rider, const char *request_id, const char *value,
                     bool *existed, char *stored, size_t cap) {
  char key[2 * MRD_ID_MAX + 16], ttl[24];
  request_key(key, sizeof key, rider, request_id);
  snprintf(ttl, sizeof ttl, "%lld", (long long)(s->cfg->request_ttl_ms / 1000));
  /* Redis 7: NX with GET sets the key when it is missing and answers the old value */
  const char *argv[] = {"SET", key, value, "NX", "EX", ttl, "GET"};
  redisReply *rep = NULL;
  int rc = mrd_redis_cmd(s->redis, &rep, 7, argv, NULL);
  if (rc != 0) return rc;
  if (rep->type == REDIS_REPLY_STRING) {
    *existed = true;
    snprintf(stored, cap, "%s", rep->str); /* a longer value is not one we wrote: a conflict */
  } else if (rep->type == REDIS_REPLY_NIL) {
    *existed = false;
  } else {
    rc = MRD_EREPLY;
  }
  freeReplyObject(rep);
  return rc;
}

void gw_request_forget(gw_server *s, const gw_request_key *k) {
  char key[2 * MRD_ID_MAX + 16];
  request_key(key, sizeof key, k->rider, k->request_id);
  const char *argv[] = {"EVAL", MRD_REDIS_CAD_LUA, "1", key, k->value};
  redisReply *rep = NULL;
  if (mrd_redis_cmd(s->redis, &rep, 5, argv, NULL) != 0) {
    /* the key stays: a retry is a resend the shard refuses (invalid_state), never a
     * second trip; the rider sends a new request_id */
    mrd_log_warn("request_forget_failed", "rider=%s request_id=%s err=%s", k->rider, k->request_id,
                 mrd_redis_errstr(s->redis));
    return;
  }
  freeReplyObject(rep);
}

/* KEYS[1] the key, ARGV[1] the unconfirmed value, ARGV[2] the confirmed one */
#define CONFIRM_LUA                                                                                \
  "if redis.call('GET', KEYS[1]) == ARGV[1] then "                                                 \
  "return redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') end return 0"

void gw_request_confirm(gw_server *s, const gw_request_key *k) {
  char key[2 * MRD_ID_MAX + 16], confirmed[GW_REQ_VALUE_MAX];
  size_t n = strlen(k->value);
  if (n == 0 || k->value[n - 1] != GW_REQ_UNCONFIRMED_MARK || n > sizeof confirmed) return;
  memcpy(confirmed, k->value, n - 1);
  confirmed[n - 1] = '\0';
  request_key(key, sizeof key, k->rider, k->request_id);
  const char *argv[] = {"EVAL", CONFIRM_LUA, "1", key, k->value, confirmed};
  redisReply *rep = NULL;
  if (mrd_redis_cmd(s->redis, &rep, 6, argv, NULL) != 0) {
    mrd_log_warn("request_confirm_failed", "rider=%s request_id=%s err=%s", k->rider, k->request_id,
                 mrd_redis_errstr(s->redis));
    return;
  }
  freeReplyObject(rep);
}

int gw_request_get(gw_server *s, const char *rider, const char *request_id, char *value,
                   size_t cap) {
  char key[2 * MRD_ID_MAX + 16];
  request_key(key, sizeof key, rider, request_id);
  const char *argv[] = {"GET", key};
  redisReply *rep = NULL;
  int rc = mrd_redis_cmd(s->redis, &rep, 2, argv, NULL);
  if (rc != 0) return rc;
  if (rep->type == REDIS_REPLY_STRING)
    snprintf(value, cap, "%s", rep->str);
  else
    rc = MRD_ENOTFOUND; /* nil: unknown, expired or another rider's */
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
  const char *argv[] = {
      "GEOSEARCH", s->cfg->nearby_key, "FROMLONLAT", lon, lat, "BYRADIUS", rad, "m", "ASC", "COUNT",
      count,       "WITHCOORD"};
  int rc = mrd_redis_cmd(s->redis, &rep, 12, argv, NULL);
  if (rc != 0) return rc;
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

int gw_trip_snapshot(gw_server *s, gw_role role, const char *user, mrd_dispatch_event *ev,
                     bool *found) {
  redisReply *rep = NULL;
  *found = false;
  int rc = mrd_redis_cmdf(s->redis, &rep, "GET trip:active:%s:%s",
                          role == GW_ROLE_DRIVER ? "driver" : "rider", user);
  if (rc != 0) return rc;
  char trip[MRD_ID_MAX + 1] = "";
  if (rep->type == REDIS_REPLY_STRING && mrd_trip_id_shard(rep->str, NULL))
    snprintf(trip, sizeof trip, "%s", rep->str);
  freeReplyObject(rep);
  if (!trip[0] && role == GW_ROLE_RIDER) {
    /* no live trip: his latest one if it ended lately (he may have missed its end) */
    rc = mrd_redis_cmdf(s->redis, &rep, "GET trip:last:rider:%s", user);
    if (rc != 0) return rc;
    if (rep->type == REDIS_REPLY_STRING && mrd_trip_id_shard(rep->str, NULL))
      snprintf(trip, sizeof trip, "%s", rep->str);
    freeReplyObject(rep);
  }
  if (!trip[0]) return 0;
  rc = mrd_redis_cmdf(s->redis, &rep, "GET trip:snap:%s", trip);
  if (rc != 0) return rc;
  *found = rep->type == REDIS_REPLY_STRING &&
           mrd_dispatch_event_decode((const uint8_t *)rep->str, rep->len, ev) == 0;
  freeReplyObject(rep);
  return 0;
}

/* ---- handle.h's ports ---------------------------------------------------------------- */

static int port_window(void *ud, const char *rider, int64_t now_ms, bool *allowed) {
  return gw_request_window(ud, rider, now_ms, allowed);
}
static int port_claim(void *ud, const char *rider, const char *request_id, const char *value,
                      bool *existed, char *stored, size_t cap) {
  return gw_request_claim(ud, rider, request_id, value, existed, stored, cap);
}
static int port_get(void *ud, const char *rider, const char *request_id, char *value, size_t cap) {
  return gw_request_get(ud, rider, request_id, value, cap);
}
static int port_nearby(void *ud, mrd_latlon at, double radius_m, mrd_latlon *out, size_t cap,
                       size_t *n) {
  return gw_nearby(ud, at, radius_m, out, cap, n);
}
static int64_t port_now_us(void *ud) {
  (void)ud;
  return gw_now_us();
}
static void port_random(void *ud, uint8_t *out, size_t n) { gw_random_bytes(ud, out, n); }

gw_ports gw_store_ports(gw_server *s) {
  return (gw_ports){s, port_window, port_claim, port_get, port_nearby, port_now_us, port_random};
}
