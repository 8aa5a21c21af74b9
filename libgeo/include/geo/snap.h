/*
 * snap.h: snapping a position to the nearest drivable road of a geo_graph: which arc, how
 * far along it (the place routes start or end at, route.h), the point on the road and the
 * distance to it. A graph answers from its R-tree of road segments when it has one
 * (geo_graph_build_rtree, or a snapshot that holds one), else by scanning every arc.
 *
 * Only one arc of a two-way road is indexed: a place on it can be left either way anyway.
 */
#ifndef GEO_SNAP_H
#define GEO_SNAP_H

#include "geo/graph.h"
#include "geo/route.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a position snapped to. */
typedef struct geo_snap {
  geo_route_place place; /* arc and fraction along it (of its length and so of its time) */
  geo_latlng point;      /* the closest point on the road */
  double dist_m;         /* from the position to point */
} geo_snap;

/* Build the R-tree of g's road segments and attach it (replacing an earlier one), so that
 * snapping is logarithmic and snapshots carry it. Errors: GEO_EINVAL (NULL or read-only g),
 * GEO_ENOMEM. */
GEO_EXPORT geo_err geo_graph_build_rtree(geo_graph *g);

/* Snap p to the nearest road within max_dist_m (INFINITY: no bound). Errors: GEO_EINVAL
 * (invalid position or bound), GEO_ENOTFOUND (no road that close; *out untouched). */
GEO_EXPORT geo_err geo_graph_snap(const geo_graph *g, geo_latlng p, double max_dist_m,
                                  geo_snap *out);

#ifdef __cplusplus
}
#endif
#endif /* GEO_SNAP_H */
