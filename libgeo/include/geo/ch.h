/*
 * ch.h: contraction hierarchies on a geo_graph, the speed-up technique of Meridian's
 * router. Building contracts nodes one by one (edge difference, deleted neighbours and
 * lazy updates for the order; witness searches with a settle limit, which can only add
 * superfluous shortcuts, never lose a route), and attaches the hierarchy to the graph. It
 * is saved in snapshots, and queried through route.h (GEO_ROUTE_CH, and one-to-many with
 * use_ch). Answers are exactly Dijkstra's travel times.
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

#ifdef __cplusplus
}
#endif
#endif /* GEO_CH_H */
