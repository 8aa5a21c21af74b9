/*
 * router_graph.h: the dispatch core's router (dsp_router) on a libgeo road graph:
 * snapping to the road graph, road times of many drivers to one pickup by ONE one-to-many
 * search on the reverse graph (geo_route_one_to_many, GEO_ROUTE_TO_SOURCE), and the
 * calibrated ETA quoted for a route time (geo_graph_eta_ms).
 *
 * Snapping is onto the nearest road SEGMENT within snap_max_m (geo_graph_snap: the graph's
 * R-tree of segments, which `meridianctl graph export` puts in the snapshot; a graph without
 * one is scanned arc by arc, fine for tests, slow for a city). Pickups and driver positions
 * become places along an arc (arc + fraction), and the search runs from and to those exact
 * places: a driver half-way along a block is half a block's time from its end, not a whole
 * one. A point farther than snap_max_m from every road is outside the service area.
 *
 * The quote (dsp_router.quote_eta_s) takes the hour and weekday of the request's time in the
 * PROCESS's local time zone (localtime_r): meridian-dispatch sets TZ from MERIDIAN_TIMEZONE
 * (America/New_York, the zone the calibration was fitted in) before anything else.
 *
 * Moving drivers (dsp_router.etas_to_moving): a driver whose last ping gave a heading is put
 * on the direction of his road that the heading fits (a two-way street's arc or its twin),
 * then moved along it by his speed
 * (the road's speed when the ping had none) times the ping's age, straight on at each corner
 * (the leaving road closest to his direction, no U-turn, none sharper than 100 degrees); a
 * heading more than 60 degrees off the road (he is turning) is not moved. The search then
 * starts from that place as from any (libgeo's places may be left in either direction of a
 * two-way road: the heading moves him, it does not forbid turning round).
 *
 * Not thread-safe (one search state): one router per shard thread.
 */
#ifndef DSP_ROUTER_GRAPH_H
#define DSP_ROUTER_GRAPH_H

#include "dispatch.h"
#include "geo/graph.h"
#include "geo/route.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsp_graph_router dsp_graph_router;

/* A router on graph g (borrowed: g must outlive the router). snap_max_m > 0 is the
 * service-area rule: how far from the nearest road a point (pickup, drop-off, driver) may be.
 * use_ch: answer with the graph's contraction hierarchy (it must have one). Errors: DSP_EINVAL,
 * DSP_ENOMEM. Free with dsp_graph_router_free. */
int dsp_graph_router_new(const geo_graph *g, double snap_max_m, bool use_ch,
                         dsp_graph_router **out);
/* Free the router (not the graph); NULL is a no-op. */
void dsp_graph_router_free(dsp_graph_router *r);
/* Where a driver at place `at` (snapped from his last ping) is predicted to be after age_s
 * seconds, moving at heading_deg (NAN: unknown: `at` is returned) and speed_mps (NAN: the
 * road's speed); pure. */
geo_route_place dsp_graph_predict_place(const geo_graph *g, geo_route_place at, double heading_deg,
                                        double speed_mps, double age_s);
/* The dsp_router interface backed by r. */
dsp_router dsp_graph_router_iface(dsp_graph_router *r);
/* Test API (no service calls it): tests/dispatch/test_dispatch_router.c. */
/* The local hour (0..23) and weekday (0 = Sunday) of Unix time unix_ms in the process's time
 * zone (localtime_r). Returns 0, or DSP_ERANGE when the time cannot be converted. */
int dsp_local_hour_weekday(int64_t unix_ms, int *hour, int *weekday);
/* How many one-to-many searches r has run (each etas_to call runs at most one). */
uint64_t dsp_graph_router_searches(const dsp_graph_router *r);

#ifdef __cplusplus
}
#endif
#endif /* DSP_ROUTER_GRAPH_H */
