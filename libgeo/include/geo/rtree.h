/*
 * rtree.h: an R-tree of line segments (road edges), for snapping points to roads.
 *
 * Nodes live in one flat array with 32-bit child indices, never pointers, so a built tree
 * can be written into a file as one blob and used in place from a memory map
 * (geo_rtree_blob_size / geo_rtree_write_blob / geo_rtree_open_blob). A tree opened from a
 * blob is read-only. Distances are great-circle metres; boxes are in degrees. The tree does
 * not cross the antimeridian (road networks of one city never do): segments must not either.
 */
#ifndef GEO_RTREE_H
#define GEO_RTREE_H

#include "geo/geo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct geo_rtree geo_rtree;

/* One segment a->b, with the caller's id (for a road graph: the edge index). */
typedef struct geo_segment {
  geo_latlng a, b;
  uint64_t id;
} geo_segment;

/* The answer of a nearest-segment query. */
typedef struct geo_rtree_hit {
  uint64_t id;     /* the segment's id */
  double dist_m;   /* distance from the query point to proj */
  geo_latlng proj; /* the closest point on the segment */
  double frac;     /* position of proj along a->b, in [0, 1] */
} geo_rtree_hit;

/* Return true to accept segment id during a search (applied while searching). */
typedef bool (*geo_rtree_filter)(uint64_t id, void *ud);

/* Create an empty tree. Errors: GEO_ENOMEM. The caller frees it with geo_rtree_free. */
GEO_EXPORT geo_err geo_rtree_new(geo_rtree **out);

/* Build a tree from n segments at once (Sort-Tile-Recursive packing), much faster and
 * tighter than n inserts. Copies the segments. Errors: GEO_EINVAL (NULL, invalid coordinates),
 * GEO_ENOMEM. */
GEO_EXPORT geo_err geo_rtree_bulk_load(const geo_segment *segs, size_t n, geo_rtree **out);

/* Insert one segment. Errors: GEO_EINVAL, GEO_ENOMEM (tree unchanged), and GEO_EINVAL for a
 * read-only tree opened from a blob. */
GEO_EXPORT geo_err geo_rtree_insert(geo_rtree *t, const geo_segment *seg);

/* Number of segments in the tree. */
GEO_EXPORT size_t geo_rtree_count(const geo_rtree *t);

/* The segment nearest to p within max_dist_m (use INFINITY for no bound) that passes filter
 * (NULL: all). Ties are broken by the lower id. Errors: GEO_EINVAL, GEO_ENOTFOUND when no
 * segment qualifies (*out untouched). */
GEO_EXPORT geo_err geo_rtree_nearest(const geo_rtree *t, geo_latlng p, double max_dist_m,
                                     geo_rtree_filter filter, void *ud, geo_rtree_hit *out);

/* Call fn for every segment whose bounding box intersects box; stop early when fn returns
 * false. Returns the number of segments visited. */
GEO_EXPORT size_t geo_rtree_range(const geo_rtree *t, geo_bbox box,
                                  bool (*fn)(const geo_segment *seg, void *ud), void *ud);

/* Serialisation: the size in bytes of the tree as a blob; write it to buf (at least that
 * size, 8-byte aligned) ; open a read-only tree over a blob (no copy: the blob must outlive
 * the tree). open validates every index and size and returns GEO_EFORMAT for a corrupt or
 * truncated blob, never crashing. */
GEO_EXPORT size_t geo_rtree_blob_size(const geo_rtree *t);
GEO_EXPORT geo_err geo_rtree_write_blob(const geo_rtree *t, void *buf, size_t len);
GEO_EXPORT geo_err geo_rtree_open_blob(const void *buf, size_t len, geo_rtree **out);

/* Free the tree (not the blob it may view). NULL is a no-op. */
GEO_EXPORT void geo_rtree_free(geo_rtree *t);

#ifdef __cplusplus
}
#endif
#endif /* GEO_RTREE_H */
