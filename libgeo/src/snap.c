/*
 * snap.c: snapping positions to the nearest road of a graph (snap.h). Candidates come from
 * the graph's R-tree of road segments when it has one, else from a scan of every arc with
 * a cheap bounding-box bound; the exact distance is geo_project_on_segment's.
 */
#include "geo/snap.h"

#include "geo/geometry.h"
#include "geo/rtree.h"
#include "graph_internal.h"

#include <math.h>

/* Point i of arc a's polyline (tail, shape..., head) of np points. */
static geo_latlng pt(const geo_graph *g, uint32_t a, uint32_t i, uint32_t np) {
  if (i == 0) return g->pos[g->tail[a]];
  if (i == np - 1) return g->pos[g->head[a]];
  return g->shape[g->shape_off[a] + i - 1];
}

/* Distance from p to arc a, with the fraction of the arc's length where the closest point
 * lies; seg = segment index to consider only that one (UINT32_MAX: all). */
static double arc_distance(const geo_graph *g, uint32_t a, geo_latlng p, uint32_t seg,
                           geo_latlng *proj, double *frac) {
  uint32_t np = g->shape_off[a + 1] - g->shape_off[a] + 2;
  double total = 0, best = INFINITY, at = 0;
  for (uint32_t i = 0; i + 1 < np; i++) {
    geo_latlng s0 = pt(g, a, i, np), s1 = pt(g, a, i + 1, np);
    double sl = geo_haversine_m(s0, s1);
    if (seg == UINT32_MAX || seg == i) {
      geo_latlng q = p;
      double f;
      double d = geo_project_on_segment(p, s0, s1, &q, &f);
      if (d < best) best = d, *proj = q, at = total + f * sl;
    }
    total += sl;
  }
  *frac = total > 0 ? at / total : 0.0;
  if (*frac > 1) *frac = 1;
  return best;
}

static bool indexed(const geo_graph *g, uint32_t a) {
  return g->twin[a] == GEO_ARC_NONE || a < g->twin[a];
}

#define SEG_BITS 20

geo_err geo_graph_snap(const geo_graph *g, geo_latlng p, double max_dist_m, geo_snap *out) {
  if (g == NULL || out == NULL || !geo_latlng_is_valid(p) || isnan(max_dist_m) || max_dist_m < 0)
    return GEO_EINVAL;
  if (g->rtree != NULL) {
    geo_rtree_hit hit;
    geo_err e = geo_rtree_nearest(g->rtree, p, max_dist_m, NULL, NULL, &hit);
    if (e != GEO_OK) return e;
    uint64_t a = hit.id >> SEG_BITS, seg = hit.id & ((1u << SEG_BITS) - 1);
    /* ids come from the snapshot: check them like any other index */
    if (a >= g->m || seg + 1 >= (uint64_t)(g->shape_off[a + 1] - g->shape_off[a] + 2))
      return GEO_ENOTFOUND;
    geo_latlng q = p;
    double f;
    double d = arc_distance(g, (uint32_t)a, p, (uint32_t)seg, &q, &f);
    out->place = (geo_route_place){0, (uint32_t)a, f};
    out->point = q;
    out->dist_m = d;
    return GEO_OK;
  }
  double best = INFINITY, frac = 0;
  uint32_t best_arc = GEO_ARC_NONE;
  geo_latlng proj = p;
  /* degrees -> metres, a lower bound for the box test (shrunk by 1% for safety) */
  const double m_per_deg_lat = 111195.0 * 0.99;
  const double m_per_deg_lng = m_per_deg_lat * cos(p.lat * 3.14159265358979323846 / 180.0);
  for (uint32_t a = 0; a < g->m; a++) {
    if (!indexed(g, a)) continue;
    uint32_t np = g->shape_off[a + 1] - g->shape_off[a] + 2;
    double lo_lat = 90, hi_lat = -90, lo_lng = 180, hi_lng = -180;
    for (uint32_t i = 0; i < np; i++) {
      geo_latlng q = pt(g, a, i, np);
      lo_lat = fmin(lo_lat, q.lat), hi_lat = fmax(hi_lat, q.lat);
      lo_lng = fmin(lo_lng, q.lng), hi_lng = fmax(hi_lng, q.lng);
    }
    double dy = p.lat < lo_lat ? lo_lat - p.lat : p.lat > hi_lat ? p.lat - hi_lat : 0;
    double dx = p.lng < lo_lng ? lo_lng - p.lng : p.lng > hi_lng ? p.lng - hi_lng : 0;
    double lower =
        sqrt(dy * m_per_deg_lat * dy * m_per_deg_lat + dx * m_per_deg_lng * dx * m_per_deg_lng);
    if (lower > best || lower > max_dist_m) continue;
    geo_latlng q = p;
    double f;
    double d = arc_distance(g, a, p, UINT32_MAX, &q, &f);
    if (d < best) best = d, best_arc = a, proj = q, frac = f;
  }
  if (best_arc == GEO_ARC_NONE || best > max_dist_m) return GEO_ENOTFOUND;
  out->place = (geo_route_place){0, best_arc, frac};
  out->point = proj;
  out->dist_m = best;
  return GEO_OK;
}

geo_err geo_graph_build_rtree(geo_graph *g) {
  if (g == NULL || g->read_only) return GEO_EINVAL;
  size_t n = 0;
  for (uint32_t a = 0; a < g->m; a++)
    if (indexed(g, a)) n += g->shape_off[a + 1] - g->shape_off[a] + 1;
  geo_segment *segs = geo__calloc(n ? n : 1, sizeof *segs);
  if (segs == NULL) return GEO_ENOMEM;
  size_t k = 0;
  for (uint32_t a = 0; a < g->m; a++) {
    if (!indexed(g, a)) continue;
    uint32_t np = g->shape_off[a + 1] - g->shape_off[a] + 2;
    for (uint32_t i = 0; i + 1 < np && i < (1u << SEG_BITS); i++)
      segs[k++] =
          (geo_segment){pt(g, a, i, np), pt(g, a, i + 1, np), ((uint64_t)a << SEG_BITS) | i};
  }
  geo_rtree *t = NULL;
  geo_err e = geo_rtree_bulk_load(segs, k, &t);
  geo__free(segs);
  if (e != GEO_OK) return e;
  geo_rtree_free(g->rtree);
  g->rtree = t;
  return GEO_OK;
}

void geo__graph_free_rtree(geo_graph *g) { geo_rtree_free(g->rtree); }

size_t geo__graph_rtree_blob_size(const geo_graph *g) {
  return g->rtree ? geo_rtree_blob_size(g->rtree) : 0;
}

geo_err geo__graph_rtree_write_blob(const geo_graph *g, void *buf, size_t len) {
  return g->rtree ? geo_rtree_write_blob(g->rtree, buf, len) : GEO_EINVAL;
}

geo_err geo__graph_rtree_open_blob(geo_graph *g, const void *buf, size_t len) {
  geo_rtree *t = NULL;
  geo_err e = geo_rtree_open_blob(buf, len, &t);
  if (e != GEO_OK) return e;
  g->rtree = t;
  return GEO_OK;
}
