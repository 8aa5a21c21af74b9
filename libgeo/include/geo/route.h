/*
 * route.h: shortest travel-time routes on a geo_graph: Dijkstra, A*, bidirectional
 * Dijkstra, contraction hierarchies (ch.h builds them) and one-to-many searches, between
 * nodes or snapped points (snap.h), with the route's polyline, time and length.
 *
 * Every search runs in a geo_route_state made once per graph and thread: its arrays are
 * sized to the graph when it is made and reused by every query (labels are invalidated by
 * a generation stamp, not cleared), so a query allocates nothing. The only exceptions are
 * buffers that grow to the largest query seen (path arcs, one-to-many target registrations), after
 * which they are reused too. All algorithms give exactly the same travel time (integer ms); they
 * may return different routes of equal time.
 *
 * This module does no I/O and keeps no global state.
 */
#ifndef GEO_ROUTE_H
#define GEO_ROUTE_H

#include "geo/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct geo_route_state geo_route_state;

/* The search algorithm of a point-to-point query. */
typedef enum geo_route_algo {
  GEO_ROUTE_DIJKSTRA = 0,
  GEO_ROUTE_ASTAR, /* straight-line distance at the graph's top speed as the heuristic */
  GEO_ROUTE_BIDIR, /* bidirectional Dijkstra */
  GEO_ROUTE_CH,    /* contraction hierarchy: needs geo_ch_build or a snapshot with one */
  GEO_ROUTE_ALGO_COUNT
} geo_route_algo;

/* A place on the graph: a node (arc == GEO_ARC_NONE), or a point on arc `arc` at fraction
 * `frac` in [0, 1] of its travel time from the arc's tail (what snapping returns). A point
 * on a two-way road can be left or reached along either direction. */
typedef struct geo_route_place {
  uint32_t node; /* when arc == GEO_ARC_NONE */
  uint32_t arc;
  double frac;
} geo_route_place;

/* The place of node v. */
GEO_EXPORT geo_route_place geo_route_place_node(uint32_t v);

/* The outcome of a point-to-point query. */
typedef struct geo_route_result {
  uint32_t time_ms; /* travel time of the route */
  double length_m;  /* its length along the roads */
  uint32_t settled; /* nodes settled by the search (both directions), a cost measure */
} geo_route_result;

/* One direction of a one-to-many search. */
typedef enum geo_route_dir {
  GEO_ROUTE_FROM_SOURCE = 0, /* times from the source to each target (forward graph) */
  GEO_ROUTE_TO_SOURCE        /* times from each target to the source (reverse graph): the
                                dispatch case, drivers (targets) to a pickup (source) */
} geo_route_dir;

/* A search state for graph g (and any graph with the same node count). Errors: GEO_EINVAL,
 * GEO_ENOMEM. Free with geo_route_state_free. Not thread-safe: one per thread. */
GEO_EXPORT geo_err geo_route_state_new(const geo_graph *g, geo_route_state **out);
/* Free a state; NULL is a no-op. */
GEO_EXPORT void geo_route_state_free(geo_route_state *st);

/* The fastest route from `from` to `to` with algorithm algo. On success *out has its time,
 * length and search cost, and the state keeps the route for geo_route_path_arcs /
 * geo_route_polyline until the next query. Errors: GEO_EINVAL (bad place, state made for
 * another graph size, GEO_ROUTE_CH on a graph without a hierarchy), GEO_EUNREACHABLE (no
 * route; *out untouched), GEO_ENOMEM (the path buffer could not grow). */
GEO_EXPORT geo_err geo_route(geo_route_state *st, const geo_graph *g, geo_route_algo algo,
                             const geo_route_place *from, const geo_route_place *to,
                             geo_route_result *out);

/* The same between two nodes. */
GEO_EXPORT geo_err geo_route_nodes(geo_route_state *st, const geo_graph *g, geo_route_algo algo,
                                   uint32_t from, uint32_t to, geo_route_result *out);

/* The arcs the last successful route traverses, in order, including a partly traversed
 * first and last arc; a borrowed pointer valid until the next query on st. *n = 0 for a
 * route that stays at one node. A CH route's arcs are unpacked at the first call here or to
 * geo_route_polyline (room reserved by geo_route: this cannot fail), so its graph must still
 * be alive; geo_route itself gives its time and length without unpacking. */
GEO_EXPORT const uint32_t *geo_route_path_arcs(const geo_route_state *st, size_t *n);

/* The polyline of the last successful route, from the exact start point to the exact end
 * point, into buf (cap points); *n_points receives the number of points (even when cap is too
 * small: call with cap 0 to ask the size). Errors: GEO_EINVAL (no route yet), GEO_ERANGE
 * (cap too small; buf unspecified). */
GEO_EXPORT geo_err geo_route_polyline(const geo_route_state *st, const geo_graph *g,
                                      geo_latlng *buf, size_t cap, size_t *n_points);

/* One search ranks K targets: times_ms[i] is the travel time between source and
 * targets[i] in direction dir, or GEO_TIME_NONE when unreachable or above bound_ms (pass
 * GEO_TIME_NONE for no bound). The search stops as soon as every target is settled or the
 * bound is passed. With use_ch the contraction hierarchy answers (one complete upward
 * search from the source, then one upward search per target that stops as soon as it cannot
 * beat the best meeting found), else one Dijkstra on the forward or reverse graph. settled (may be
 * NULL) receives the nodes settled. Errors: GEO_EINVAL (bad place, use_ch without hierarchy),
 * GEO_ENOMEM (a registration buffer could not grow). */
GEO_EXPORT geo_err geo_route_one_to_many(geo_route_state *st, const geo_graph *g, bool use_ch,
                                         geo_route_dir dir, const geo_route_place *source,
                                         const geo_route_place *targets, size_t k,
                                         uint32_t bound_ms, uint32_t *times_ms, uint32_t *settled);

/* The name of an algorithm ("dijkstra", "astar", "bidir", "ch"). */
GEO_EXPORT const char *geo_route_algo_name(geo_route_algo algo);

#ifdef __cplusplus
}
#endif
#endif /* GEO_ROUTE_H */
