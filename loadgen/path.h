/*
 * path.h: a simulated vehicle's way along a libgeo route, as points with the time at which
 * the vehicle passes each: on every arc it drives at that arc's speed (its travel time spread
 * evenly over its length), through the arc's shape points. Asking where the vehicle is at
 * time t gives the position and the place on the graph (arc and fraction), so a new route
 * can start exactly there.
 *
 * Pure computation on a read-only geo_graph; no I/O, no clock of its own.
 */
#ifndef LG_PATH_H
#define LG_PATH_H

#include "geo/graph.h"
#include "geo/route.h"

/* One point of a path. */
typedef struct lg_path_pt {
  geo_latlng pos;
  double t_ms;  /* time from the start of the path at which the vehicle is here */
  uint32_t arc; /* the arc it is on (GEO_ARC_NONE for a path that stays at a node) */
  double frac;  /* fraction of that arc (of its length and of its time) from its tail */
} lg_path_pt;

/* A path: n points in time order, first at t_ms 0, last at total_ms. */
typedef struct lg_path {
  lg_path_pt *pts; /* owned */
  size_t n, cap;
  double total_ms; /* the sum of the arcs' (part) times: equals the route's time_ms to 1 ms */
  double length_m;
  geo_route_place origin; /* where the path starts (what a one-point path answers) */
} lg_path;

/* Replace p's points by the route along arcs[0..n_arcs) (geo_route_path_arcs) from place
 * `from` to place `to` (arc places as snapping gives, or node places). An empty route (n_arcs
 * 0) gives a one-point path at from. Returns GEO_OK, GEO_EINVAL (a place that fits neither
 * end of the route), GEO_ENOMEM (p unchanged then). */
geo_err lg_path_build(lg_path *p, const geo_graph *g, const uint32_t *arcs, size_t n_arcs,
                      const geo_route_place *from, const geo_route_place *to);

/* Route from `from` to `to` (contraction hierarchy when g has one, else A*) into p. Errors
 * as geo_route and lg_path_build. */
geo_err lg_path_route(lg_path *p, const geo_graph *g, geo_route_state *st,
                      const geo_route_place *from, const geo_route_place *to);

/* Where the vehicle is at t_ms from the path's start (clamped to [0, total_ms]): position
 * and place (either may be NULL). The path must have at least one point. */
void lg_path_at(const lg_path *p, double t_ms, geo_latlng *pos, geo_route_place *place);

/* The position of place pl on g (a node, or the point at pl->frac along the arc's shape). */
geo_latlng lg_place_pos(const geo_graph *g, const geo_route_place *pl);

/* Free the points; the path is empty afterwards. */
void lg_path_close(lg_path *p);

#endif /* LG_PATH_H */
