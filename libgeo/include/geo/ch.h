/*
 * ch.h: contraction hierarchies on a geo_graph, the speed-up technique of Meridian's
 * router. Building contracts nodes one by one (edge difference, deleted neighbours and
 * lazy updates for the order; witness searches with a settle limit, which can only add
 * superfluous shortcuts, never lose a route), and attaches the hierarchy to the graph. It
 * is saved in snapshots, and queried through route.h (GEO_ROUTE_CH, and one-to-many with
 * use_ch). Answers are exactly Dijkstra's travel times. Queries read it in a layout of
 * their own, derived when it is built or loaded (nodes by descending rank, a node's up and
 * down arcs together in 8-byte records), never stored.
 *
 * This module does not handle changing costs: recalibrating a graph means rebuilding it.
 */
#ifndef GEO_CH_H
#define GEO_CH_H

#include "geo/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Counts of a built hierarchy. */
typedef struct geo_ch_stats {
  uint32_t up_edges, down_edges; /* edges to higher-ranked nodes, both directions */
  uint32_t shortcuts;            /* of which shortcuts */
} geo_ch_stats;

/* Build the hierarchy of g and attach it (replacing any earlier one). stats may be NULL.
 * Errors: GEO_EINVAL (NULL g, or g opened from a snapshot: read-only), GEO_ENOMEM (g keeps
 * its previous state). */
GEO_EXPORT geo_err geo_ch_build(geo_graph *g, geo_ch_stats *stats);

/* True when g has a hierarchy. */
GEO_EXPORT bool geo_ch_present(const geo_graph *g);

/* Test API (no service calls it): tests/libgeo/test_route_random.c and test_snapshot.c.
 * Checks the invariants of the layout CH queries read (nodes renumbered by descending rank,
 * each node's up and down arcs together; derived whenever a hierarchy is built or loaded):
 * the renumbering is a permutation, every arc leads to a higher rank and copies exactly one
 * hierarchy edge. GEO_OK (also for a graph without hierarchy), GEO_EINVAL (NULL g),
 * GEO_EFORMAT (an invariant broken), GEO_ENOMEM. */
GEO_EXPORT geo_err geo_ch_check(const geo_graph *g);

#ifdef __cplusplus
}
#endif
#endif /* GEO_CH_H */
