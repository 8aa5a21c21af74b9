/*
 * quote.h: the fare a rider is quoted for a ride (services/fare applied by dispatch): the
 * fastest route from pickup to drop-off on the shard's calibrated graph, its legs timed by
 * the calibrated ETA at the request's local hour and weekday, priced with the tariff and
 * the pickup cell's surge. Pure: the caller gives the time parts and the surge.
 */
#ifndef DSP_QUOTE_H
#define DSP_QUOTE_H

#include "dispatch.h"
#include "fare.h"
#include "geo/graph.h"
#include "geo/route.h"

#ifdef __cplusplus
extern "C" {
#endif

/* When the ride is requested, in local time. */
typedef struct dsp_quote_when {
  int weekday; /* 0 = Sunday .. 6 */
  int hour;    /* 0..23 */
  int minute;  /* 0..59 */
} dsp_quote_when;

/* Price the ride from pickup to dropoff (each snapped within snap_max_m of a road of g)
 * with tariff t and surge (>= 1) into *out, using st (a route state of g) and legs (cap
 * entries; the route's arcs + 1 are needed). Returns 0, or a DSP_E* (dispatch.h):
 * DSP_ENOTFOUND (an end off the graph, or no route), DSP_ERANGE (legs too small),
 * DSP_ENOMEM, DSP_EINVAL (bad arguments, a fare the tariff cannot price); *out untouched
 * on failure. */
int dsp_quote_ride(const geo_graph *g, geo_route_state *st, const mrd_tariff *t, geo_latlng pickup,
                   geo_latlng dropoff, double snap_max_m, dsp_quote_when when, double surge,
                   mrd_fare_leg *legs, size_t cap, mrd_fare *out);

#ifdef __cplusplus
}
#endif
#endif /* DSP_QUOTE_H */
