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

/* One arc of the hierarchy's query layout: the other end (a query id) and the weight. */
typedef struct geo_ch_arc {
  uint32_t node;
  uint32_t weight_ms;
} geo_ch_arc;

/* The hierarchy as its queries read it, derived from geo_ch_data whenever a hierarchy is
 * attached or loaded (ch.c: geo__ch_query_make; never stored in a snapshot). Nodes get query
 * ids in descending rank (the last contracted node is 0), so the upward searches of every
 * query converge on the same few thousand low ids, which stay in cache. A node's arcs sit
 * together, 8 bytes each: up arcs (to higher ranks, the forward search) then down arcs
 * (from higher ranks, the backward search; each direction reads the other's for its
 * stall-on-demand test). Invariants (geo__ch_query_check): cid and node are inverse
 * permutations; off rises from 0 to n_up + n_dn; every arc leads to a lower query id and
 * names, in edge[], the CH edge it copies (same ends and weight), each CH edge exactly once;
 * src[k] is the query id whose range holds arc k; every arc stands for at least one original
 * arc, and a shortcut's count and length are the sums of its halves'. */
typedef struct geo_ch_query {
  uint32_t *cid;  /* n: graph node -> query id */
  uint32_t *node; /* n: query id -> graph node */
  uint32_t
      *off; /* 2n + 1: query id q's up arcs [off[2q], off[2q+1]), down [off[2q+1], off[2q+2]) */
  geo_ch_arc *arc; /* n_up + n_dn */
  uint32_t *edge;  /* n_up + n_dn: the CH edge id (up[] then dn[]) of each arc, for paths */
  /* per arc, so that a route's length and arc count need no unpacking (route.c): */
  uint32_t *src;      /* n_up + n_dn: the query id the arc belongs to (a pred's other end) */
  uint32_t *n_arcs;   /* n_up + n_dn: original arcs the CH edge unpacks to (saturated) */
  double *len_m;      /* n_up + n_dn: their total length */
  uint32_t max_depth; /* the deepest shortcut nesting: unpacking needs max_depth + 1 slots */
} geo_ch_query;

/* The query layout of hierarchy ch on n nodes into *q (owned arrays; *q untouched on
 * failure), with lengths from the graph's arc lengths len_m. ch must be valid (built, or
 * passed by the snapshot's check: a shortcut's halves meet at a lower rank). Errors:
 * GEO_ENOMEM. A pure function of ch and len_m. */
geo_err geo__ch_query_make(const geo_ch_data *ch, uint32_t n, const float *len_m, geo_ch_query *q);
/* Free q's arrays and zero it. */
void geo__ch_query_free(geo_ch_query *q);
/* GEO_OK when q satisfies its invariants against ch, else GEO_EFORMAT. */
geo_err geo__ch_query_check(const geo_ch_data *ch, uint32_t n, const geo_ch_query *q);

#define GEO_GRAPH_MAX_OWNED 40

struct geo_graph {
  uint32_t n, m;
  const geo_latlng *pos;       /* n */
  const int64_t *node_ext;     /* n */
  const uint32_t *node_by_ext; /* n: node indices sorted by node_ext */
  const uint32_t *fwd_off;     /* n + 1 */
  const uint32_t *tail;        /* m */
  const uint32_t *head;        /* m */
  const uint32_t *time_ms;     /* m */
  const float *len_m;          /* m */
  const uint8_t *cls;          /* m */
  const uint32_t *twin;        /* m */
  const int64_t *arc_ext;      /* m */
  const uint32_t *shape_off;   /* m + 1 */
  const geo_latlng *shape;     /* shape_off[m] */
  const uint32_t *rev_off;     /* n + 1 */
  const uint32_t *rev_arc;     /* m */
  double top_speed;            /* m per ms; 0 = no heuristic */
  geo_graph_calibration cal;
  geo_graph_stats stats;
  uint64_t source_tag;
  bool has_ch;
  geo_ch_data ch;
  void *ch_mem[5];  /* owned arrays of ch (built in memory) */
  geo_ch_query chq; /* ch's query layout (owned, always built in memory) */
  geo_rtree *rtree; /* owned; may view the snapshot */
  void *owned[GEO_GRAPH_MAX_OWNED];
  int n_owned;
  bool read_only; /* opened from a snapshot */
  void *map;      /* snapshot mapping, or NULL */
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
