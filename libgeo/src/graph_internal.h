/*
 * graph_internal.h: the layout of geo_graph, shared by graph.c, route.c, ch.c, snap.c and
 * snapshot.c. Every array is either owned (built in memory) or a view into a snapshot's
 * memory map; nothing else in libgeo depends on which.
 */
#ifndef GEO_GRAPH_INTERNAL_H
#define GEO_GRAPH_INTERNAL_H

#include "geo/graph.h"
#include "geo/rtree.h"
#include "geo_internal.h"

/* One edge of the contraction hierarchy. For an original arc, b == GEO_ARC_NONE and a is
 * the arc's index; for a shortcut, a and b are the CH edge ids of its two halves
 * (tail -> middle, then middle -> head). CH edge ids: [0, n_up) are up[], then
 * [n_up, n_up + n_dn) are dn[]. */
typedef struct geo_ch_edge {
  uint32_t node;   /* up[]: the head (higher rank); dn[]: the tail (higher rank) */
  uint32_t weight; /* ms */
  uint32_t a, b;
} geo_ch_edge;

typedef struct geo_ch_data {
  const uint32_t *rank;   /* n: contraction order */
  const uint32_t *up_off; /* n + 1: edges to higher-ranked heads, by tail */
  const geo_ch_edge *up;
  const uint32_t *dn_off; /* n + 1: edges from higher-ranked tails, by head */
  const geo_ch_edge *dn;
  uint32_t n_up, n_dn;
} geo_ch_data;

#define GEO_GRAPH_MAX_OWNED 40

struct geo_graph {
  uint32_t n, m;
  const geo_latlng *pos;        /* n */
  const int64_t *node_ext;      /* n */
  const uint32_t *node_by_ext;  /* n: node indices sorted by node_ext */
  const uint32_t *fwd_off;      /* n + 1 */
  const uint32_t *tail;         /* m */
  const uint32_t *head;         /* m */
  const uint32_t *time_ms;      /* m */
  const float *len_m;           /* m */
  const uint8_t *cls;           /* m */
  const uint32_t *twin;         /* m */
  const int64_t *arc_ext;       /* m */
  const uint32_t *shape_off;    /* m + 1 */
  const geo_latlng *shape;      /* shape_off[m] */
  const uint32_t *rev_off;      /* n + 1 */
  const uint32_t *rev_arc;      /* m */
  double top_speed;             /* m per ms; 0 = no heuristic */
  geo_graph_calibration cal;
  geo_graph_stats stats;
  uint64_t source_tag;
  bool has_ch;
  geo_ch_data ch;
  void *ch_mem[5];              /* owned arrays of ch (built in memory) */
  geo_rtree *rtree;             /* owned; may view the snapshot */
  void *owned[GEO_GRAPH_MAX_OWNED];
  int n_owned;
  bool read_only;               /* opened from a snapshot */
  void *map;                    /* snapshot mapping, or NULL */
  size_t map_len;
};

/* Allocate n * size bytes (zeroed) owned by g; NULL on failure or when g is full. */
void *geo__graph_alloc(geo_graph *g, size_t n, size_t size);
/* Compute g->top_speed from its arcs. */
void geo__graph_compute_top_speed(geo_graph *g);
/* Compute node_by_ext (owned) for g. GEO_ENOMEM on failure. */
geo_err geo__graph_index_ext(geo_graph *g);
/* g's R-tree (snap.c): free it; its blob size (0 when none); write it; open a blob as g's
 * tree (read-only view). */
void geo__graph_free_rtree(geo_graph *g);
size_t geo__graph_rtree_blob_size(const geo_graph *g);
geo_err geo__graph_rtree_write_blob(const geo_graph *g, void *buf, size_t len);
geo_err geo__graph_rtree_open_blob(geo_graph *g, const void *buf, size_t len);
/* Release a mapping (snapshot.c). */
void geo__snapshot_unmap(void *map, size_t len);

static inline uint32_t geo__sat_add(uint32_t a, uint32_t b) {
  uint32_t s = a + b;
  return s < a ? UINT32_MAX : s;
}

#endif
