/*
 * epoch_io.c: how meridian-dispatch follows the shard map (docs/shards.md): the map and
 * its epoch come from PostgreSQL `shard_map` only; `LISTEN shard_map` (migration 0006
 * notifies every new epoch) makes a change known within one loop turn, and max(epoch) is
 * re-read every MERIDIAN_DISPATCH_EPOCH_CHECK as the fallback (a notification sent while
 * the connection was down is lost). Whatever the path, a new epoch takes effect in ONE
 * place, dsvc_on_epoch: the range handoff (warm-up of ranges received, grace of ranges
 * given away) extends that function and nothing else.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mrd/clock.h"
#include "mrd/log.h"
#include "service.h"

void dsvc_map_release(dsvc_map *m) {
  free(m->ranges);
  memset(m, 0, sizeof *m);
}

int dsvc_map_owned(const dsvc_map *m, uint32_t shard) {
  int n = 0;
  for (size_t i = 0; i < m->n; i++) n += m->ranges[i].shard == shard;
  return n;
}

/* The map of the newest epoch, into *out (released by the caller). 0, or -1 (logged). */
static int map_read(dsvc *s, dsvc_map *out) {
  memset(out, 0, sizeof *out);
  PGresult *res = NULL;
  if (mrd_pg_exec(s->pg, &res,
                  "SELECT epoch, range_start, range_end, shard FROM shard_map "
                  "WHERE epoch = (SELECT max(epoch) FROM shard_map) ORDER BY range_start",
                  0, NULL) != 0) {
    mrd_log_warn("shardmap_load", "err=%s", mrd_pg_errstr(s->pg));
    return -1;
  }
  int n = PQntuples(res);
  if (n < 1) {
    PQclear(res);
    mrd_log_error("shardmap_load", "err=%s", "shard_map is empty (run the migrations)");
    return -1;
  }
  out->ranges = calloc((size_t)n, sizeof *out->ranges);
  if (!out->ranges) {
    PQclear(res);
    return -1;
  }
  out->epoch = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  out->n = (size_t)n;
  for (int i = 0; i < n; i++) {
    snprintf(out->ranges[i].start, sizeof out->ranges[i].start, "%s", PQgetvalue(res, i, 1));
    snprintf(out->ranges[i].end, sizeof out->ranges[i].end, "%s", PQgetvalue(res, i, 2));
    out->ranges[i].shard = (uint32_t)strtoul(PQgetvalue(res, i, 3), NULL, 10);
  }
  PQclear(res);
  return 0;
}

void dsvc_on_epoch(dsvc *s, dsvc_map *next) {
  uint32_t me = (uint32_t)s->cfg->shard;
  /* the handoff first: the ranges gained are warm before the epoch is served */
  (void)dsvc_handoff(s, next, mrd_wall_ms());
  char owns[512];
  size_t w = 0;
  owns[0] = '\0';
  for (size_t i = 0; i < next->n && w < sizeof owns - 40; i++)
    if (next->ranges[i].shard == me)
      w += (size_t)snprintf(owns + w, sizeof owns - w, "%s[%s,%s)", w ? " " : "",
                            next->ranges[i].start, next->ranges[i].end);
  int n = dsvc_map_owned(next, me);
  if (n == 0)
    mrd_log_warn("shardmap",
                 "epoch=%llu shard=%d ranges=0 (owns nothing: halo and in-flight "
                 "trips only)",
                 (unsigned long long)next->epoch, s->cfg->shard);
  else
    mrd_log_info("shardmap", "epoch=%llu shard=%d ranges=%d owns=%s",
                 (unsigned long long)next->epoch, s->cfg->shard, n, owns);
  mrd_log_info("epoch", "old=%llu new=%llu", (unsigned long long)s->map.epoch,
               (unsigned long long)next->epoch);
  dsvc_map_release(&s->map);
  s->map = *next; /* takes ownership */
  memset(next, 0, sizeof *next);
  s->epoch = s->map.epoch;
  if (s->shard) dsp_shard_set_epoch(s->shard, s->epoch);
  if (s->m.epoch) mrd_gauge_set(s->m.epoch, (double)s->epoch);
}

int dsvc_epoch_load(dsvc *s) {
  dsvc_map m;
  if (map_read(s, &m) != 0) return -1;
  if (m.epoch == s->map.epoch) {
    dsvc_map_release(&m);
    return 0;
  }
  dsvc_on_epoch(s, &m);
  return 0;
}

static void on_notify(void *ud, const char *channel, const char *payload) {
  dsvc *s = ud;
  if (strcmp(channel, "shard_map") != 0) return;
  uint64_t e = strtoull(payload, NULL, 10);
  if (e > s->notified_epoch) s->notified_epoch = e;
}

void dsvc_epoch_listen(dsvc *s) {
  if (mrd_pg_listen(s->pg, "shard_map") != 0)
    mrd_log_warn("epoch_listen", "err=%s (the periodic read still follows the epoch)",
                 mrd_pg_errstr(s->pg));
  s->pg_connects = mrd_pg_reconnects(s->pg);
}

void dsvc_epoch_poll(dsvc *s, int64_t now_ms) {
  if (now_ms >= s->next_notify_ms) {
    s->next_notify_ms = now_ms + 20; /* a non-blocking read of the socket: cheap, not free */
    s->notified_epoch = 0;
    if (mrd_pg_notifications(s->pg, on_notify, s) >= 0) {
      bool reconnected = mrd_pg_reconnects(s->pg) != s->pg_connects;
      s->pg_connects = mrd_pg_reconnects(s->pg);
      if (reconnected || (s->notified_epoch && s->notified_epoch != s->map.epoch)) {
        mrd_log_info("epoch_notified", "epoch=%llu reconnected=%d",
                     (unsigned long long)s->notified_epoch, (int)reconnected);
        (void)dsvc_epoch_load(s);
        s->next_epoch_ms = now_ms + s->cfg->epoch_check_ms;
      }
    }
  }
  if (now_ms >= s->next_epoch_ms) {
    s->next_epoch_ms = now_ms + s->cfg->epoch_check_ms;
    (void)dsvc_epoch_load(s);
  }
}
