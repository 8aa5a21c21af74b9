/*
 * router_graph.h: the dispatch core's router (dsp_router) on a libgeo road graph:
 * snapping to the road graph, and road ETAs of many drivers to one pickup by ONE
 * one-to-many search on the reverse graph (geo_route_one_to_many, GEO_ROUTE_TO_SOURCE).
 *
 * Snapping is to the nearest graph node within snap_max_m (found in a QuadTree of the
 * nodes); a point farther from every node is outside the service area. This is coarser
 * than snapping onto the nearest road segment (up to half a block) and will move to
 * libgeo's segment snapping when it lands; the interface does not change.
 *
 * Not thread-safe (one search state): one router per shard thread.
 */
#ifndef DSP_ROUTER_GRAPH_H
#define DSP_ROUTER_GRAPH_H

#include "dispatch.h"
#include "geo/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsp_graph_router dsp_graph_router;

/* A router on graph g (borrowed: g must outlive the router). snap_max_m > 0 is the
 * service-area rule: how far from the nearest node a point may be. use_ch: answer with
 * the graph's contraction hierarchy (it must have one). Errors: DSP_EINVAL, DSP_ENOMEM.
 * Free with dsp_graph_router_free. */
int dsp_graph_router_new(const geo_graph *g, double snap_max_m, bool use_ch,
                         dsp_graph_router **out);
/* Free the router (not the graph); NULL is a no-op. */
void dsp_graph_router_free(dsp_graph_router *r);
/* The dsp_router interface backed by r. */
dsp_router dsp_graph_router_iface(dsp_graph_router *r);
/* How many one-to-many searches r has run (each etas_to call runs at most one). */
uint64_t dsp_graph_router_searches(const dsp_graph_router *r);

#ifdef __cplusplus
}
#endif
#endif /* DSP_ROUTER_GRAPH_H */
