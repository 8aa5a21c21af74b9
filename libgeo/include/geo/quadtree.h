/*
 * quadtree.h: an index of moving points (drivers) keyed by a 64-bit id, for k-nearest,
 * within-radius and within-box searches by great-circle distance.
 *
 * Built for the case where points move all the time: a move that stays inside its leaf
 * cell is a hash lookup and an in-place write that touches nothing else; leaves split (above
 * GEO_QT_LEAF_MAX points) and merge again, down to a bounded depth of GEO_QT_MAX_DEPTH, where
 * a leaf simply grows, so any number of points on one spot is fine. Positions are stored as
 * fixed-point 1e-7 degrees (about 1.1 cm): geo_quadtree_get returns the stored position,
 * which is the input rounded to 1e-7 degree, and every distance is computed from it.
 * Searches are exact: results equal a linear scan with geo_haversine_m(query, point),
 * ordered by (distance, id). A filter given to a search is applied during it, so "the 10
 * nearest available drivers" never returns fewer because unavailable ones were nearer.
 *
 * Not thread-safe: one writer, or many readers with no writer. Not persistent.
 */
#ifndef GEO_QUADTREE_H
#define GEO_QUADTREE_H

#include "geo/geo.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GEO_QT_LEAF_MAX 192 /* points in a leaf before it splits (unless at max depth) */
#define GEO_QT_MAX_DEPTH 24 /* levels below the world; a deepest cell is about 2.4 x 1.2 m */

typedef struct geo_quadtree geo_quadtree;

/* The payload stored with each point: an application state (Meridian: the driver state
 * enum) and the timestamp of the position in milliseconds (Meridian: Unix ms of the ping).
 * ts_ms must lie in [-2^55, 2^55) (about +/- 1.1 million years): it is stored in 56 bits
 * next to the state, so that a point takes 24 bytes. */
typedef struct geo_qt_payload {
  uint8_t state;
  int64_t ts_ms;
} geo_qt_payload;

/* One indexed point as searches and get report it (pos is the stored position). */
typedef struct geo_qt_point {
  uint64_t id;
  geo_latlng pos;
  geo_qt_payload payload;
} geo_qt_point;

/* A search result: the point and its great-circle distance from the query in metres
 * (geo_haversine_m(query, point.pos), bit for bit; 0 for box searches). */
typedef struct geo_qt_hit {
  geo_qt_point point;
  double dist_m;
} geo_qt_hit;

/* Return true to accept a point during a search. Called only for points that are otherwise
 * candidates (inside the radius or box, or near enough to enter a k-nearest result), never
 * after the search. Must not modify the tree. */
typedef bool (*geo_qt_filter)(const geo_qt_point *p, void *ud);

/* Called once per result of a radius or box search, in no particular order; return false
 * to stop the search early. Must not modify the tree. */
typedef bool (*geo_qt_visit)(const geo_qt_hit *hit, void *ud);

/* Create an empty tree covering the whole world. Errors: GEO_EINVAL (NULL out),
 * GEO_ENOMEM. The caller frees it with geo_quadtree_free. */
GEO_EXPORT geo_err geo_quadtree_new(geo_quadtree **out);

/* Free the tree and everything in it. NULL is a no-op. */
GEO_EXPORT void geo_quadtree_free(geo_quadtree *qt);

/* Insert id at pos with payload, or move it there (and replace its payload) if present.
 * A move within the point's current leaf cell allocates nothing and cannot fail.
 * Errors: GEO_EINVAL (NULL, invalid position, ts_ms out of range), GEO_ERANGE (more than 16,777,215
 * points on one deepest cell), GEO_ENOMEM; on any error the tree is unchanged (the point, if it
 * existed, stays where it was) and remains fully usable. */
GEO_EXPORT geo_err geo_quadtree_upsert(geo_quadtree *qt, uint64_t id, geo_latlng pos,
                                       geo_qt_payload payload);

/* Replace the payload of id, keeping its position. Errors: GEO_EINVAL (NULL, ts_ms out of
 * range), GEO_ENOTFOUND. */
GEO_EXPORT geo_err geo_quadtree_set_payload(geo_quadtree *qt, uint64_t id, geo_qt_payload payload);

/* Remove id. Never allocates (a merge of leaves that cannot get memory is skipped).
 * Errors: GEO_EINVAL (NULL), GEO_ENOTFOUND. */
GEO_EXPORT geo_err geo_quadtree_remove(geo_quadtree *qt, uint64_t id);

/* Copy the point with this id to *out. Errors: GEO_EINVAL (NULL), GEO_ENOTFOUND. */
GEO_EXPORT geo_err geo_quadtree_get(const geo_quadtree *qt, uint64_t id, geo_qt_point *out);

/* Number of points in the tree (0 for NULL). */
GEO_EXPORT size_t geo_quadtree_count(const geo_quadtree *qt);

/* The k nearest points to q that pass filter (NULL: all) and lie within max_dist_m
 * (INFINITY: no bound), nearest first, ties broken by the lower id. Writes up to k hits to
 * out (caller-owned, room for k) and their number to *n_out (fewer than k when fewer
 * qualify). Allocates nothing. Errors: GEO_EINVAL (NULL pointers, invalid q, negative or
 * NaN max_dist_m). */
GEO_EXPORT geo_err geo_quadtree_knn(const geo_quadtree *qt, geo_latlng q, size_t k,
                                    double max_dist_m, geo_qt_filter filter, void *filter_ud,
                                    geo_qt_hit *out, size_t *n_out);

/* Visit every point within radius_m of centre (distance <= radius_m, borders included;
 * across the antimeridian and the poles too) that passes filter (NULL: all). Writes the
 * number of points visited to *n_out (may be NULL). Allocates nothing.
 * Errors: GEO_EINVAL (NULL tree or visit, invalid centre, negative or NaN radius). */
GEO_EXPORT geo_err geo_quadtree_within_radius(const geo_quadtree *qt, geo_latlng centre,
                                              double radius_m, geo_qt_filter filter,
                                              void *filter_ud, geo_qt_visit visit, void *visit_ud,
                                              size_t *n_out);

/* Visit every point inside box (geo_bbox_contains: borders included; a box with
 * min_lng > max_lng crosses the antimeridian) that passes filter (NULL: all); dist_m is 0.
 * Writes the number visited to *n_out (may be NULL). Allocates nothing.
 * Errors: GEO_EINVAL (NULL tree or visit, non-finite box, min_lat > max_lat). */
GEO_EXPORT geo_err geo_quadtree_within_box(const geo_quadtree *qt, geo_bbox box,
                                           geo_qt_filter filter, void *filter_ud,
                                           geo_qt_visit visit, void *visit_ud, size_t *n_out);

/* Bytes currently allocated by the tree (nodes, leaves, id table, handle): for capacity
 * planning and the bytes-per-driver benchmark. */
GEO_EXPORT size_t geo_quadtree_memory_bytes(const geo_quadtree *qt);

/* Check every internal invariant (counts, boxes, id table, depth); for tests. Returns
 * GEO_OK or GEO_EFORMAT at the first violation. Linear in the size of the tree. */
GEO_EXPORT geo_err geo_quadtree_check(const geo_quadtree *qt);

#ifdef __cplusplus
}
#endif
#endif /* GEO_QUADTREE_H */
