/*
 * router_graph.c: dsp_router over geo_graph + geo_route_one_to_many. Nodes are indexed
 * in a geo_quadtree (id = node) for nearest-node snapping. A snapped place keeps its node
 * in dsp_snap.data[0].
 */
#include "router_graph.h"

#include <math.h>
#include <stdlib.h>

#include "geo/quadtree.h"
#include "geo/route.h"

struct dsp_graph_router {
  const geo_graph *g;
  double snap_max_m;
  bool use_ch;
  geo_quadtree *nodes;
  geo_route_state *st;
  geo_route_place *targets; /* grown to the largest n asked */
  uint32_t *times_ms;
  bool *off; /* origins with no node near enough */
  size_t cap;
  uint64_t searches;
};

int dsp_graph_router_new(const geo_graph *g, double snap_max_m, bool use_ch,
                         dsp_graph_router **out) {
  if (!g || !out || !(snap_max_m > 0) || !isfinite(snap_max_m)) return DSP_EINVAL;
  dsp_graph_router *r = calloc(1, sizeof *r);
  if (!r) return DSP_ENOMEM;
  r->g = g;
  r->snap_max_m = snap_max_m;
  r->use_ch = use_ch;
  int rc = DSP_ENOMEM;
  if (geo_quadtree_new(&r->nodes) != GEO_OK) goto fail;
  if (geo_route_state_new(g, &r->st) != GEO_OK) goto fail;
  uint32_t n = geo_graph_node_count(g);
  for (uint32_t v = 0; v < n; v++)
    if (geo_quadtree_upsert(r->nodes, v, geo_graph_node_pos(g, v), (geo_qt_payload){0, 0}) !=
        GEO_OK)
      goto fail;
  *out = r;
  return DSP_OK;
fail:
  dsp_graph_router_free(r);
  return rc;
}

void dsp_graph_router_free(dsp_graph_router *r) {
  if (!r) return;
  geo_quadtree_free(r->nodes);
  geo_route_state_free(r->st);
  free(r->targets);
  free(r->times_ms);
  free(r->off);
  free(r);
}

uint64_t dsp_graph_router_searches(const dsp_graph_router *r) {
  return r->searches;
}

/* The nearest node within snap_max_m of p: 0 and *node, 1 when none. */
static int nearest(const dsp_graph_router *r, geo_latlng p, uint32_t *node, double *dist) {
  geo_qt_hit hit;
  size_t n = 0;
  if (!geo_latlng_is_valid(p) ||
      geo_quadtree_knn(r->nodes, p, 1, r->snap_max_m, NULL, NULL, &hit, &n) != GEO_OK || n == 0)
    return 1;
  *node = (uint32_t)hit.point.id;
  *dist = hit.dist_m;
  return 0;
}

static int gr_snap(void *ud, geo_latlng p, dsp_snap *out) {
  dsp_graph_router *r = ud;
  uint32_t v;
  double d;
  if (nearest(r, p, &v, &d) != 0) return 1;
  *out = (dsp_snap){.pos = geo_graph_node_pos(r->g, v), .off_road_m = d};
  out->data[0] = v;
  return 0;
}

static int gr_etas(void *ud, const dsp_snap *target, const geo_latlng *origins, size_t n,
                   double max_eta_s, double *out_eta_s) {
  dsp_graph_router *r = ud;
  if (n == 0) return 0;
  if (n > r->cap) {
    geo_route_place *t = realloc(r->targets, n * sizeof *t);
    if (!t) return -1;
    r->targets = t;
    uint32_t *tm = realloc(r->times_ms, n * sizeof *tm);
    if (!tm) return -1;
    r->times_ms = tm;
    bool *off = realloc(r->off, n * sizeof *off);
    if (!off) return -1;
    r->off = off;
    r->cap = n;
  }
  /* Origins off the graph get the pickup's own node as a stand-in and INFINITY after. */
  uint32_t src = (uint32_t)target->data[0];
  bool *off = r->off;
  for (size_t i = 0; i < n; i++) {
    uint32_t v = src;
    double d;
    off[i] = nearest(r, origins[i], &v, &d) != 0;
    r->targets[i] = geo_route_place_node(off[i] ? src : v);
  }
  geo_route_place source = geo_route_place_node(src);
  double bound = max_eta_s * 1000.0;
  uint32_t bound_ms = bound >= (double)UINT32_MAX ? GEO_TIME_NONE : (uint32_t)bound;
  r->searches++;
  geo_err e = geo_route_one_to_many(r->st, r->g, r->use_ch, GEO_ROUTE_TO_SOURCE, &source,
                                    r->targets, n, bound_ms, r->times_ms, NULL);
  if (e != GEO_OK) return -1;
  for (size_t i = 0; i < n; i++)
    out_eta_s[i] = off[i] || r->times_ms[i] == GEO_TIME_NONE ? INFINITY : r->times_ms[i] / 1000.0;
  return 0;
}

dsp_router dsp_graph_router_iface(dsp_graph_router *r) {
  return (dsp_router){.ud = r, .snap = gr_snap, .etas_to = gr_etas};
}
