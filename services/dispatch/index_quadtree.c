/*
 * index_quadtree.c: dsp_index over geo_quadtree. The core's accept callback (by handle)
 * becomes a QuadTree filter, applied during the search, so the k nearest *acceptable*
 * drivers come back even when unacceptable ones are nearer.
 *
 * It is the boundary between libgeo's positive geo_err and the core's negative DSP_E*:
 * every geo_err is mapped here, once, by dsp_err_of_geo (dsp_geo_err.h).
 */
#include "index_quadtree.h"

#include <stdlib.h>

#include "dsp_geo_err.h"

struct dsp_qt_index {
  geo_quadtree *qt;
  geo_qt_hit *hits; /* result buffer of knn, grown to the largest k asked */
  size_t cap;
};

int dsp_qt_index_new(dsp_qt_index **out) {
  if (!out) return DSP_EINVAL;
  dsp_qt_index *ix = calloc(1, sizeof *ix);
  if (!ix) return DSP_ENOMEM;
  int rc = dsp_err_of_geo(geo_quadtree_new(&ix->qt));
  if (rc != DSP_OK) {
    free(ix);
    return rc;
  }
  *out = ix;
  return DSP_OK;
}

void dsp_qt_index_free(dsp_qt_index *ix) {
  if (!ix) return;
  geo_quadtree_free(ix->qt);
  free(ix->hits);
  free(ix);
}

const geo_quadtree *dsp_qt_index_tree(const dsp_qt_index *ix) { return ix->qt; }

static int qi_upsert(void *ud, uint64_t id, geo_latlng pos, uint8_t state, int64_t seen_ms) {
  dsp_qt_index *ix = ud;
  geo_qt_payload p = {.state = state, .ts_ms = seen_ms};
  return dsp_err_of_geo(geo_quadtree_upsert(ix->qt, id, pos, p));
}

static void qi_set_state(void *ud, uint64_t id, uint8_t state) {
  dsp_qt_index *ix = ud;
  geo_qt_point p;
  if (geo_quadtree_get(ix->qt, id, &p) != GEO_OK) return;
  p.payload.state = state;
  geo_quadtree_set_payload(ix->qt, id, p.payload);
}

static void qi_remove(void *ud, uint64_t id) {
  dsp_qt_index *ix = ud;
  geo_quadtree_remove(ix->qt, id); /* GEO_ENOTFOUND: already gone, fine */
}

typedef struct filter_ctx {
  bool (*accept)(void *actx, uint64_t id);
  void *actx;
} filter_ctx;

static bool qi_filter(const geo_qt_point *p, void *ud) {
  const filter_ctx *c = ud;
  return c->accept(c->actx, p->id);
}

static int qi_knn(void *ud, geo_latlng center, double radius_m, size_t k,
                  bool (*accept)(void *actx, uint64_t id), void *actx, uint64_t *out_ids,
                  double *out_dist_m) {
  dsp_qt_index *ix = ud;
  if (k == 0) return 0;
  if (k > ix->cap) {
    geo_qt_hit *h = realloc(ix->hits, k * sizeof *h);
    if (!h) return DSP_ENOMEM;
    ix->hits = h;
    ix->cap = k;
  }
  filter_ctx fc = {accept, actx};
  size_t n = 0;
  int rc = dsp_err_of_geo(
      geo_quadtree_knn(ix->qt, center, k, radius_m, accept ? qi_filter : NULL, &fc, ix->hits, &n));
  if (rc != DSP_OK) return rc;
  for (size_t i = 0; i < n; i++) {
    out_ids[i] = ix->hits[i].point.id;
    out_dist_m[i] = ix->hits[i].dist_m;
  }
  return (int)n;
}

dsp_index dsp_qt_index_iface(dsp_qt_index *ix) {
  return (dsp_index){
      .ud = ix, .upsert = qi_upsert, .set_state = qi_set_state, .remove = qi_remove, .knn = qi_knn};
}
