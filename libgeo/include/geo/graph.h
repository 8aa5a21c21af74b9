/*
 * graph.h: the road graph in compressed sparse row (CSR) form, with travel-time costs.
 *
 * A graph is built once from nodes and road edges (geo_graph_builder), or opened from a
 * binary snapshot (snapshot.h); after that it is read-only and may be shared by any number
 * of threads, each with its own search state (route.h). Nodes are numbered 0..n-1 and
 * directed arcs 0..m-1, grouped by tail node (forward CSR); a reverse CSR lists, for every
 * node, the arcs that enter it. A two-way road is two arcs that name each other as twins.
 * Each arc carries its travel time in whole milliseconds (the routing cost), its length in
 * metres, its road class, the caller's id of the road it came from, and its shape (the
 * points between its two end nodes), so a route can be drawn and a point snapped to it.
 *
 * This module is not a routing engine (route.h, ch.h) and does no I/O (snapshot.h does).
 */
#ifndef GEO_GRAPH_H
#define GEO_GRAPH_H

#include "geo/geo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct geo_graph geo_graph;
typedef struct geo_graph_builder geo_graph_builder;

/* "No arc" / "no time": a one-way road has no time in its closed direction, an arc with no
 * twin has GEO_ARC_NONE as twin. */
#define GEO_ARC_NONE UINT32_MAX
#define GEO_TIME_NONE UINT32_MAX

/* Road classes (OSM `highway=*` values a car may use). Calibration factors are per class. */
typedef enum geo_road_class {
  GEO_ROAD_MOTORWAY = 0,
  GEO_ROAD_MOTORWAY_LINK,
  GEO_ROAD_TRUNK,
  GEO_ROAD_TRUNK_LINK,
  GEO_ROAD_PRIMARY,
  GEO_ROAD_PRIMARY_LINK,
  GEO_ROAD_SECONDARY,
  GEO_ROAD_SECONDARY_LINK,
  GEO_ROAD_TERTIARY,
  GEO_ROAD_TERTIARY_LINK,
  GEO_ROAD_RESIDENTIAL,
  GEO_ROAD_LIVING_STREET,
  GEO_ROAD_SERVICE,
  GEO_ROAD_UNCLASSIFIED,
  GEO_ROAD_OTHER,
  GEO_ROAD_CLASS_COUNT
} geo_road_class;

/* The OSM highway value of a class ("primary", ...); "other" for an unknown class. */
GEO_EXPORT const char *geo_road_class_name(geo_road_class c);
/* The class of an OSM highway value; GEO_ROAD_OTHER when not known. */
GEO_EXPORT geo_road_class geo_road_class_from_name(const char *highway);

/* ETA calibration stored with the graph. Arc times in the graph already include
 * class_factor and arc_penalty_ms (the routing cost is the calibrated time: raw time x
 * class factor + a fixed cost per arc, which stands for the intersection, with its lights,
 * that ends almost every arc of a city graph); hour_factor[weekend][hour] x
 * day_factor[weekday] scales a whole route's time for the hour and day of departure
 * (geo_graph_eta_ms). A graph that
 * was never calibrated has every factor 1.0. */
typedef struct geo_graph_calibration {
  double class_factor[GEO_ROAD_CLASS_COUNT]; /* time multiplier per road class */
  double hour_factor[2][24];                 /* [0 weekday | 1 weekend][hour 0..23] */
  double day_factor[7];                      /* [weekday 0 = Sunday .. 6 = Saturday] */
  double arc_penalty_ms;                     /* added to every arc, >= 0 */
  double trip_base_ms;                       /* added once to every ETA (pick-up, parking) */
} geo_graph_calibration;

/* Sets every factor of *cal to 1.0 and the penalty to 0 (no calibration). */
GEO_EXPORT void geo_graph_calibration_identity(geo_graph_calibration *cal);

/* One road between two nodes, as given to the builder. */
typedef struct geo_graph_road {
  uint32_t from, to;    /* node indices returned by geo_graph_builder_add_node */
  uint32_t fwd_time_ms; /* from -> to travel time; GEO_TIME_NONE when closed */
  uint32_t bwd_time_ms; /* to -> from travel time; GEO_TIME_NONE when closed (one-way) */
  double length_m;      /* length along the shape, >= 0 */
  geo_road_class road_class;
  int64_t ext_id;          /* caller's id of the road (e.g. pgRouting's ways.gid) */
  const geo_latlng *shape; /* points strictly between from and to, in from -> to order */
  size_t shape_len;        /* number of those points; 0 for a straight road */
} geo_graph_road;

/* Options of geo_graph_builder_build. */
typedef struct geo_graph_build_opts {
  bool keep_largest_scc; /* keep only the largest strongly connected component */
  bool reorder_nodes;    /* renumber nodes along a Z-order curve (memory locality) */
} geo_graph_build_opts;

/* Counts of what a build kept and dropped. */
typedef struct geo_graph_stats {
  uint32_t nodes, arcs;                 /* kept */
  uint32_t dropped_nodes, dropped_arcs; /* outside the largest strongly connected component */
  uint32_t self_loops;                  /* arcs from a node to itself, dropped (never useful) */
} geo_graph_stats;

/* A new, empty builder. Errors: GEO_EINVAL (NULL out), GEO_ENOMEM. Free with
 * geo_graph_builder_free. */
GEO_EXPORT geo_err geo_graph_builder_new(geo_graph_builder **out);

/* Add a node at pos with the caller's id ext_id (e.g. ways_vertices_pgr.id); writes its
 * builder index to *index (may be NULL). Errors: GEO_EINVAL (invalid position), GEO_ENOMEM,
 * GEO_ERANGE (more than 2^31 nodes). */
GEO_EXPORT geo_err geo_graph_builder_add_node(geo_graph_builder *b, int64_t ext_id, geo_latlng pos,
                                              uint32_t *index);

/* Add a road (one or two arcs). The shape points are copied. Errors: GEO_EINVAL (unknown
 * node, negative or non-finite length, invalid shape point, no open direction, a time of
 * 2^31 ms or more), GEO_ENOMEM, GEO_ERANGE (too many arcs). */
GEO_EXPORT geo_err geo_graph_builder_add_road(geo_graph_builder *b, const geo_graph_road *r);

/* Build the graph. Node indices of the result differ from the builder's (see
 * geo_graph_node_ext_id); stats (may be NULL) receives the counts. The builder can be
 * freed afterwards. Errors: GEO_EINVAL, GEO_ENOMEM, GEO_ENOTFOUND (no node left). */
GEO_EXPORT geo_err geo_graph_builder_build(const geo_graph_builder *b,
                                           const geo_graph_build_opts *opts, geo_graph **out,
                                           geo_graph_stats *stats);

/* Free a builder; NULL is a no-op. */
GEO_EXPORT void geo_graph_builder_free(geo_graph_builder *b);

/* Free a graph (and its contraction hierarchy and R-tree, and the snapshot mapping it was
 * opened from); NULL is a no-op. */
GEO_EXPORT void geo_graph_free(geo_graph *g);

/* A copy of g whose arc times are each arc's time scaled by cal->class_factor of its class
 * plus cal->arc_penalty_ms (rounded to the ms), with cal stored as its calibration. The copy has no
 * contraction hierarchy or R-tree yet. Errors: GEO_EINVAL, GEO_ENOMEM. */
GEO_EXPORT geo_err geo_graph_calibrated(const geo_graph *g, const geo_graph_calibration *cal,
                                        geo_graph **out);

/* As geo_graph_calibrated, each arc's calibrated time then multiplied by arc_factor[arc]
 * (g's arc count entries, each finite, > 0 and <= 1000; NULL: all 1), for factors that
 * vary along the map (congestion by area). The factors are baked into the arc times; the
 * copy does not keep them. Errors: GEO_EINVAL (also for a bad factor), GEO_ENOMEM. */
GEO_EXPORT geo_err geo_graph_calibrated_arcs(const geo_graph *g, const geo_graph_calibration *cal,
                                             const double *arc_factor, geo_graph **out);

/* Sizes and per-element accessors. Indices must be in range (checked with assert only:
 * these are on the hot path). */
GEO_EXPORT uint32_t geo_graph_node_count(const geo_graph *g);
GEO_EXPORT uint32_t geo_graph_arc_count(const geo_graph *g);
GEO_EXPORT geo_latlng geo_graph_node_pos(const geo_graph *g, uint32_t node);
GEO_EXPORT int64_t geo_graph_node_ext_id(const geo_graph *g, uint32_t node);
/* The node with the caller's id ext_id, by binary search. Errors: GEO_ENOTFOUND. */
GEO_EXPORT geo_err geo_graph_node_by_ext_id(const geo_graph *g, int64_t ext_id, uint32_t *node);

/* Forward adjacency: the arcs leaving node are [*first, *end). */
GEO_EXPORT void geo_graph_out_arcs(const geo_graph *g, uint32_t node, uint32_t *first,
                                   uint32_t *end);
GEO_EXPORT uint32_t geo_graph_arc_tail(const geo_graph *g, uint32_t arc);
GEO_EXPORT uint32_t geo_graph_arc_head(const geo_graph *g, uint32_t arc);
GEO_EXPORT uint32_t geo_graph_arc_time_ms(const geo_graph *g, uint32_t arc);
GEO_EXPORT double geo_graph_arc_length_m(const geo_graph *g, uint32_t arc);
GEO_EXPORT geo_road_class geo_graph_arc_class(const geo_graph *g, uint32_t arc);
GEO_EXPORT int64_t geo_graph_arc_ext_id(const geo_graph *g, uint32_t arc);
/* The arc of the same road in the other direction, or GEO_ARC_NONE (one-way). */
GEO_EXPORT uint32_t geo_graph_arc_twin(const geo_graph *g, uint32_t arc);
/* The arc's interior shape points (tail and head excluded): a borrowed pointer valid as long
 * as g, and their number in *len. */
GEO_EXPORT const geo_latlng *geo_graph_arc_shape(const geo_graph *g, uint32_t arc, size_t *len);
/* The arc tail -> head with the least time, or GEO_ARC_NONE. */
GEO_EXPORT uint32_t geo_graph_find_arc(const geo_graph *g, uint32_t tail, uint32_t head);

/* Reverse adjacency: the arcs entering node are rev_arc(i) for i in [*first, *end). */
GEO_EXPORT void geo_graph_in_arcs(const geo_graph *g, uint32_t node, uint32_t *first,
                                  uint32_t *end);
GEO_EXPORT uint32_t geo_graph_in_arc(const geo_graph *g, uint32_t i);

/* The highest speed of any arc, in metres per millisecond (straight-line distance between
 * its end nodes over its time): what makes the A* heuristic admissible. 0 when some arc of
 * non-zero length takes 0 ms (A* then falls back to Dijkstra's order). */
GEO_EXPORT double geo_graph_top_speed_m_per_ms(const geo_graph *g);

/* The graph's calibration (identity unless calibrated). */
GEO_EXPORT const geo_graph_calibration *geo_graph_get_calibration(const geo_graph *g);

/* The ETA of a route of route_time_ms (a route time on g: arc times already calibrated)
 * departing at hour (0..23) on weekday (0 = Sunday .. 6 = Saturday), in ms:
 * route_time_ms x hour_factor[weekend][hour] x day_factor[weekday] + trip_base_ms. This is
 * the ETA `meridianctl graph eta-report` measures; services call it on every route or
 * one-to-many time they quote. An out-of-range hour or weekday gives route time + trip base. */
GEO_EXPORT double geo_graph_eta_ms(const geo_graph *g, uint32_t route_time_ms, int hour,
                                   int weekday);

/* Build counts recorded in the graph (for a snapshot: those of the export). */
GEO_EXPORT geo_graph_stats geo_graph_get_stats(const geo_graph *g);

/* A 64-bit value the caller stores with the graph (e.g. a checksum of the source data);
 * 0 unless set. Kept in snapshots. */
GEO_EXPORT uint64_t geo_graph_source_tag(const geo_graph *g);
GEO_EXPORT void geo_graph_set_source_tag(geo_graph *g, uint64_t tag);

#ifdef __cplusplus
}
#endif
#endif /* GEO_GRAPH_H */
