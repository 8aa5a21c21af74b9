/*
 * fare_route.h: the legs of a route on the road graph (route.h), timed as Meridian's
 * calibrated ETA says, for mrd_fare_price. The pricing itself stays in fare.h; this is the
 * bridge from libgeo's route to legs, and nothing else.
 */
#ifndef MRD_FARE_ROUTE_H
#define MRD_FARE_ROUTE_H

#include "fare.h"
#include "geo/graph.h"
#include "geo/route.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The legs of the last successful route on st (its result r, on graph g): one leg per arc
 * of the path, then one stopped leg (no distance) for the ETA's trip base; a route inside
 * one arc is one moving leg of r->length_m and the base. Each arc's length is scaled so the
 * legs add up to r->length_m (the first and last arcs are only partly driven); each arc's
 * calibrated time is scaled so the moving legs add up to the calibrated ETA
 * (geo_graph_eta_ms of r->time_ms at hour and weekday) less its trip base. An arc's speed
 * class (below the slow-traffic speed or not) is thus its calibrated speed at that hour.
 * Variable-size output: *n receives the number of legs needed (path arcs + 1, at least 2)
 * even when cap is too small. Returns 0; -1 for a NULL argument or cap < *n. */
int mrd_fare_route_legs(const geo_graph *g, const geo_route_state *st, const geo_route_result *r,
                        int hour, int weekday, mrd_fare_leg *legs, size_t cap, size_t *n);

#ifdef __cplusplus
}
#endif
#endif /* MRD_FARE_ROUTE_H */
