/*
 * surge.h: the surge multiplier of each geohash-6 cell of a dispatch shard, from what the
 * shard already sees: demand (ride requests, and no_driver outcomes: requests nobody
 * could take) over a sliding window, and supply (the available drivers in the cell now).
 *
 * The function (dsp_surge_target): pressure = (requests + no_driver_weight x no_drivers) /
 * (supply + 1); target = 1 + sensitivity x max(0, pressure - threshold), capped at cap and
 * never below 1.0. It grows with demand, falls with supply and is bounded.
 * The state (dsp_surge): per cell the target is smoothed (exponential, one step per
 * dsp_surge_update), and the published multiplier (rounded to step) follows the smoothed
 * value only when the two differ by hysteresis or more, so a noisy input does not make
 * the published value flap; a cell falls back to exactly 1.0 when its smoothed value
 * comes within hysteresis of 1. What is published goes to Redis (a hash per shard:
 * geohash6 -> multiplier, only cells above 1.0) as commands handed to a callback, only
 * what changed, like hotcells.h.
 *
 * Pure: time is an argument, no I/O, not thread-safe. Not a pricing policy engine: one
 * formula, its knobs in dsp_surge_config (MERIDIAN_SURGE_* in docs/dispatch.md).
 */
#ifndef DSP_SURGE_H
#define DSP_SURGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatch.h" /* DSP_E* */
#include "geo/geo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsp_surge_config {
  int64_t window_ms;       /* demand counted over this sliding window: 300000 (5 min) */
  double no_driver_weight; /* a no_driver outcome counts this much extra demand: 1.0 */
  double threshold;        /* pressure (demand per driver) where surge starts: 1.0 */
  double sensitivity;      /* multiplier added per unit of pressure above it: 0.25 */
  double cap;              /* highest multiplier: 3.0 (>= 1) */
  double smoothing;        /* weight of the new target in each update, (0, 1]: 0.1 */
  double hysteresis;       /* published moves only when smoothed differs by this: 0.2 */
  double step;             /* published values are multiples of this: 0.1 */
  int precision;           /* geohash length of a cell: 6 */
} dsp_surge_config;

/* The defaults above. Test API (meridian-dispatch takes them from its config table, config.c):
 * tests/dispatch/test_surge.c. */
dsp_surge_config dsp_surge_config_default(void);

/* The unsmoothed multiplier of a cell with these counts (in [1, cap]); NAN-free for any
 * non-negative input, 1.0 for a config that is not valid. */
double dsp_surge_target(double requests, double no_drivers, double supply,
                        const dsp_surge_config *c);

typedef struct dsp_surge dsp_surge;

/* A new state. Errors: DSP_EINVAL (config out of range: window <= 0, cap < 1, smoothing
 * outside (0, 1], negative hysteresis / sensitivity / weight / step, precision outside
 * 1..12), DSP_ENOMEM. Free with dsp_surge_free (NULL is a no-op). */
int dsp_surge_new(const dsp_surge_config *c, dsp_surge **out);
void dsp_surge_free(dsp_surge *s);

/* A request (no_driver false) or a no_driver outcome (true) at pickup, at now_ms. Returns
 * 0, DSP_EINVAL (not a position) or DSP_ENOMEM. */
int dsp_surge_demand(dsp_surge *s, geo_latlng pickup, bool no_driver, int64_t now_ms);

/* Set a cell's current supply (available drivers); cells not set since the last update
 * count 0. cell is a geohash of the config's precision. Returns 0, DSP_EINVAL (not such a
 * cell, drivers < 0) or DSP_ENOMEM. */
int dsp_surge_supply(dsp_surge *s, const char *cell, int drivers);

/* One smoothing step at now_ms: drops demand older than the window, recomputes every
 * cell's target from its counts, smooths, applies hysteresis; supply counts are then
 * cleared for the next round. Call at a fixed period (meridian-dispatch: every 5 s). */
void dsp_surge_update(dsp_surge *s, int64_t now_ms);

/* The published multiplier of the cell holding pos (1.0 when none). */
double dsp_surge_at(const dsp_surge *s, geo_latlng pos);
/* The same for a cell by name. */
double dsp_surge_of_cell(const dsp_surge *s, const char *cell);

/* Cells published above 1.0, and the highest published multiplier (1.0 when none). */
size_t dsp_surge_active(const dsp_surge *s);
double dsp_surge_max(const dsp_surge *s);

/* Receives one Redis command (argv valid during the call). Returns 0, or a negative code
 * (the write's own, such as an MRD_E*) to stop the batch; dsp_surge_collect returns it. */
typedef int (*dsp_surge_emit_fn)(void *ud, int argc, const char *const *argv);

/* Hands emit the commands bringing Redis hash `key` to the published values (HSET for a
 * cell above 1.0 that changed, HDEL for one back at 1.0). Returns the number of commands,
 * DSP_EINVAL (no state, key or emit), or emit's code when it failed; then call
 * dsp_surge_done with whether they took effect (when not, the next collect sends them
 * again). */
int dsp_surge_collect(dsp_surge *s, const char *key, dsp_surge_emit_fn emit, void *ud);
void dsp_surge_done(dsp_surge *s, bool ok);
/* Forget what was written (Redis restarted empty): the next collect writes every cell. */
void dsp_surge_forget_written(dsp_surge *s);

/* Invariants: every published value in [1, cap], a multiple of step (or 1), smoothed in
 * [1, cap], counts non-negative. Test API (no service calls it): tests/dispatch/test_surge.c. */
bool dsp_surge_check(const dsp_surge *s);

#ifdef __cplusplus
}
#endif
#endif /* DSP_SURGE_H */
