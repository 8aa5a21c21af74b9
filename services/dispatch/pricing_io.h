/*
 * pricing_io.h: fares and surge in meridian-dispatch, the adapter around the pure parts
 * (quote.h, surge.h). It sees every event the shard produces: a REQUESTED event is
 * quoted (the ride's fare on the calibrated graph with the pickup cell's surge) and the
 * quote is then carried on every later event of the trip (fare_quote_cents, surge,
 * tariff) until its final one; requests and no_driver outcomes are the surge's demand.
 * With the hot cells (their supply of available drivers) it updates the surge every
 * interval, publishes it in Redis (hot:surge:<shard>) and in /metrics.
 *
 * Kept apart from dispatch_io.c on purpose: the loop calls four functions. Not thread-safe.
 * A restarted shard has no quotes in memory: the events of trips it restores carry none
 * (their REQUESTED event, recorded by meridian-trips, has it).
 */
#ifndef DSP_PRICING_IO_H
#define DSP_PRICING_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "geo/graph.h"
#include "hotcells.h"
#include "mrd/metrics.h"
#include "mrd/proto.h"
#include "surge.h"

typedef struct dsvc_pricing dsvc_pricing;

typedef struct dsvc_pricing_config {
  const char *tariff_path; /* rate card file; NULL or "": no quotes (surge still runs) */
  dsp_surge_config surge;
  int64_t interval_ms; /* surge update period */
  double snap_max_m;   /* as the shard's service area */
  int shard;           /* for the Redis key hot:surge:<shard> */
} dsvc_pricing_config;

/* Load the tariff, create the surge state and register the metrics in reg. Returns 0, or
 * -1 after logging why (a tariff file that does not parse stops the service). */
int dsvc_pricing_open(dsvc_pricing **out, const dsvc_pricing_config *c, const geo_graph *g,
                      mrd_metrics *reg);
void dsvc_pricing_free(dsvc_pricing *p);

/* An event about to be produced: fills its fare fields, feeds the surge's demand. */
void dsvc_pricing_event(dsvc_pricing *p, mrd_dispatch_event *ev, int64_t now_ms);

/* With the hot cells' supply: a surge update when interval_ms passed, then the Redis
 * commands of what changed, appended through emit. Returns how many, or emit's negative code.
 * dsvc_pricing_done says whether they took effect. */
int dsvc_pricing_hot(dsvc_pricing *p, const dsp_hot *hot, int64_t now_ms, dsp_surge_emit_fn emit,
                     void *ud);
void dsvc_pricing_done(dsvc_pricing *p, bool ok);
/* Redis lost its data: publish everything again. */
void dsvc_pricing_forget_written(dsvc_pricing *p);

#endif /* DSP_PRICING_IO_H */
