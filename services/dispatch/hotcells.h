/*
 * hotcells.h: what one dispatch shard publishes about its area in Redis, and only what
 * changed since the last batch: the available drivers it owns as GEO sets (one for the
 * whole city, which the gateway's `nearby` searches, and one per geohash cell), and per
 * geohash cell the supply (available drivers) and the demand (ride requests in the last
 * minute).
 *
 * Pure bookkeeping: it keeps the state last written and the state wanted, and turns the
 * difference into Redis commands handed to a callback (meridian-dispatch pipelines them
 * every 500 ms). If the batch fails (Redis down) nothing is marked written, so the next
 * batch sends it again: the store catches up when Redis returns. Not thread-safe.
 *
 * Keys (config): <geo_key> (GEO: driver id at his position), <cell_prefix><geohash5>
 * (GEO, per cell), <supply_key>, <demand_key> and <updates_key> (HASH: geohash6 -> count;
 * one hash per shard, readers add the shards up). Halo copies are not published: the owner
 * does. When a driver's range moves to another shard (docs/shards.md) the old owner
 * disowns him: it stops counting him without removing the GEO entries the new owner writes.
 */
#ifndef DSP_HOTCELLS_H
#define DSP_HOTCELLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatch.h" /* DSP_E* */
#include "geo/geo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsp_hot_config {
  const char *geo_key;      /* "drivers:available" (the gateway's MERIDIAN_GW_NEARBY_KEY) */
  const char *cell_prefix;  /* "hot:drivers:" + geohash of cell_precision */
  const char *supply_key;   /* "hot:supply:<shard>" */
  const char *demand_key;   /* "hot:demand:<shard>" */
  const char *updates_key;  /* "hot:updates:<shard>" (NULL: location updates not counted) */
  int cell_precision;       /* 5 (about 4.9 x 4.9 km) */
  int count_precision;      /* 6 (about 1.2 x 0.6 km) */
  int64_t demand_window_ms; /* 60000 */
  int64_t ttl_ms;           /* a driver not updated for this long is no longer shown: 30000 */
  double move_m;            /* a shown driver is written again after moving this far: 5 */
} dsp_hot_config;

typedef struct dsp_hot dsp_hot;

/* A new tracker; the config's strings are copied (each at most 64 bytes). Errors:
 * DSP_EINVAL (bad config), DSP_ENOMEM. Free with dsp_hot_free. */
int dsp_hot_new(const dsp_hot_config *c, dsp_hot **out);
void dsp_hot_free(dsp_hot *h);

/* The driver's state as the shard sees it at now_ms: shown (available, owned, with a
 * fresh position) at pos, or not shown. Returns 0, DSP_EINVAL (bad id or position) or
 * DSP_ENOMEM. */
int dsp_hot_driver(dsp_hot *h, const char *id, bool shown, geo_latlng pos, int64_t now_ms);

/* A ride request at pickup, counted in its cell's demand for demand_window_ms. Returns 0,
 * DSP_EINVAL (bad position) or DSP_ENOMEM. */
int dsp_hot_request(dsp_hot *h, geo_latlng pickup, int64_t now_ms);

/* A location update at pos, counted in its cell's updates for the last minute (in 6 buckets
 * of 10 s; the count is recounted, and rewritten when it changed, when a new bucket begins).
 * Returns 0, DSP_EINVAL (bad position) or DSP_ENOMEM. */
int dsp_hot_update(dsp_hot *h, geo_latlng pos, int64_t now_ms);

/* The driver is now another shard's (his range moved): stop showing him and counting him in
 * this shard's supply, but leave the GEO entries alone (the new owner keeps them). Returns 0
 * or DSP_ENOMEM. */
int dsp_hot_disown(dsp_hot *h, const char *id);

/* Receives one Redis command (argv strings valid during the call). Returns 0, or a negative
 * code (the write's own, such as an MRD_E*) to stop the batch (nothing of it is then marked
 * written); dsp_hot_collect returns that code as it is. */
typedef int (*dsp_hot_emit_fn)(void *ud, int argc, const char *const *argv);

/* Hands emit the commands that bring Redis from the written state to the wanted one at
 * now_ms (drivers not updated for ttl_ms are no longer shown; requests older than the
 * window leave the demand). Returns the number of commands, emit's code when emit failed, or
 * DSP_ENOMEM. Then call dsp_hot_done with whether they all took effect. */
int dsp_hot_collect(dsp_hot *h, int64_t now_ms, dsp_hot_emit_fn emit, void *ud);

/* ok: the last collected batch is written (remembered as such); !ok: it is not, and the
 * next collect sends it again. */
void dsp_hot_done(dsp_hot *h, bool ok);

/* Forget what was written (Redis may have restarted empty): the next collect writes every
 * shown driver and every cell count again. */
void dsp_hot_forget_written(dsp_hot *h);

/* Calls fn for every count cell (geohash of count_precision) with its wanted supply
 * (available drivers shown in it) and demand (requests in the window at the last collect):
 * what surge pricing reads. */
void dsp_hot_each_cell(const dsp_hot *h,
                       void (*fn)(void *ud, const char *cell, int supply, int demand), void *ud);

/* Drivers shown as last written, and drivers tracked. */
size_t dsp_hot_shown(const dsp_hot *h);
size_t dsp_hot_tracked(const dsp_hot *h);

#ifdef __cplusplus
}
#endif
#endif /* DSP_HOTCELLS_H */
