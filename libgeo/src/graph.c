/*
 * graph.c: building the CSR road graph from roads (largest strongly connected component,
 * Z-order renumbering), its accessors, and calibration. It does not search (route.c, ch.c)
 * nor read or write files (snapshot.c).
 */
#include "graph_internal.h"

#include "geo/geometry.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARC_TIME_MS 0x7fffffffu

static const char *const CLASS_NAMES[GEO_ROAD_CLASS_COUNT] = {
    "motorway",     "motorway_link", "trunk",          "trunk_link",   "primary",
    "primary_link", "secondary",     "secondary_link", "tertiary",     "tertiary_link",
    "residential",  "living_street", "service",        "unclassified", "other"};

const char *geo_road_class_name(geo_road_class c) {
  return (unsigned)c < GEO_ROAD_CLASS_COUNT ? CLASS_NAMES[c] : "other";
}

geo_road_class geo_road_class_from_name(const char *highway) {
  if (highway == NULL) return GEO_ROAD_OTHER;
  for (int i = 0; i < GEO_ROAD_CLASS_COUNT; i++)
    if (strcmp(highway, CLASS_NAMES[i]) == 0) return (geo_road_class)i;
  return GEO_ROAD_OTHER;
}

void geo_graph_calibration_identity(geo_graph_calibration *cal) {
  if (cal == NULL) return;
  for (int i = 0; i < GEO_ROAD_CLASS_COUNT; i++) cal->class_factor[i] = 1.0;
  for (int w = 0; w < 2; w++)
    for (int h = 0; h < 24; h++) cal->hour_factor[w][h] = 1.0;
  for (int d = 0; d < 7; d++) cal->day_factor[d] = 1.0;
  cal->arc_penalty_ms = 0;
  cal->trip_base_ms = 0;
}

/* ---- builder ---------------------------------------------------------------------- */

typedef struct b_node {
  int64_t ext;
  geo_latlng pos;
} b_node;

typedef struct b_road {
  uint32_t from, to, fwd, bwd;
  double len;
  uint8_t cls;
  int64_t ext;
  size_t shape_first, shape_len;
} b_road;

struct geo_graph_builder {
  b_node *nodes;
  size_t n_nodes, cap_nodes;
  b_road *roads;
  size_t n_roads, cap_roads;
  geo_latlng *shape;
  size_t n_shape, cap_shape;
};

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t nc = *cap ? *cap : 64;
  while (nc < need) {
    if (nc > SIZE_MAX / 2 / elem) return false;
    nc *= 2;
  }
  void *np = geo__realloc(*p, *cap * elem, nc * elem);
  if (np == NULL) return false;
  *p = np;
  *cap = nc;
  return true;
}

geo_err geo_graph_builder_new(geo_graph_builder **out) {
  if (out == NULL) return GEO_EINVAL;
  geo_graph_builder *b = geo__calloc(1, sizeof *b);
  if (b == NULL) return GEO_ENOMEM;
  *out = b;
  return GEO_OK;
}

void geo_graph_builder_free(geo_graph_builder *b) {
  if (b == NULL) return;
  geo__free(b->nodes);
  geo__free(b->roads);
  geo__free(b->shape);
  geo__free(b);
}

geo_err geo_graph_builder_add_node(geo_graph_builder *b, int64_t ext_id, geo_latlng pos,
                                   uint32_t *index) {
  if (b == NULL || !geo_latlng_is_valid(pos)) return GEO_EINVAL;
  if (b->n_nodes >= 0x7fffffffu) return GEO_ERANGE;
  if (!grow((void **)&b->nodes, &b->cap_nodes, b->n_nodes + 1, sizeof *b->nodes)) return GEO_ENOMEM;
  b->nodes[b->n_nodes] = (b_node){ext_id, pos};
  if (index) *index = (uint32_t)b->n_nodes;
  b->n_nodes++;
  return GEO_OK;
}

geo_err geo_graph_builder_add_road(geo_graph_builder *b, const geo_graph_road *r) {
  if (b == NULL || r == NULL) return GEO_EINVAL;
  if (r->from >= b->n_nodes || r->to >= b->n_nodes) return GEO_EINVAL;
  if (!isfinite(r->length_m) || r->length_m < 0) return GEO_EINVAL;
  if (r->fwd_time_ms == GEO_TIME_NONE && r->bwd_time_ms == GEO_TIME_NONE) return GEO_EINVAL;
  if (r->fwd_time_ms != GEO_TIME_NONE && r->fwd_time_ms > MAX_ARC_TIME_MS) return GEO_EINVAL;
  if (r->bwd_time_ms != GEO_TIME_NONE && r->bwd_time_ms > MAX_ARC_TIME_MS) return GEO_EINVAL;
  if ((unsigned)r->road_class >= GEO_ROAD_CLASS_COUNT) return GEO_EINVAL;
  if (r->shape_len > 0 && r->shape == NULL) return GEO_EINVAL;
  for (size_t i = 0; i < r->shape_len; i++)
    if (!geo_latlng_is_valid(r->shape[i])) return GEO_EINVAL;
  if (b->n_roads >= 0x3fffffffu || b->n_shape + r->shape_len >= 0x7fffffffu) return GEO_ERANGE;
  if (!grow((void **)&b->roads, &b->cap_roads, b->n_roads + 1, sizeof *b->roads) ||
      !grow((void **)&b->shape, &b->cap_shape, b->n_shape + r->shape_len, sizeof *b->shape))
    return GEO_ENOMEM;
  if (r->shape_len) memcpy(b->shape + b->n_shape, r->shape, r->shape_len * sizeof *r->shape);
  b->roads[b->n_roads++] = (b_road){r->from,        r->to,       r->fwd_time_ms,
                                    r->bwd_time_ms, r->length_m, (uint8_t)r->road_class,
                                    r->ext_id,      b->n_shape,  r->shape_len};
  b->n_shape += r->shape_len;
  return GEO_OK;
}

/* A directed arc while building. */
typedef struct b_arc {
  uint32_t tail, head, time;
  uint32_t road;     /* builder road index */
  uint32_t reversed; /* 1 when it runs to -> from */
  uint32_t pair;     /* index of the twin in the arc list, or GEO_ARC_NONE */
  uint32_t id;       /* index before sorting */
} b_arc;

static int cmp_arc(const void *pa, const void *pb) {
  const b_arc *a = pa, *b = pb;
  if (a->tail != b->tail) return a->tail < b->tail ? -1 : 1;
  if (a->head != b->head) return a->head < b->head ? -1 : 1;
  if (a->time != b->time) return a->time < b->time ? -1 : 1;
  return a->id < b->id ? -1 : a->id > b->id;
}

/* Kosaraju's algorithm with explicit stacks: comp[v] = component id; returns the id of the
 * largest component, or -1 on allocation failure. */
static int64_t largest_scc(uint32_t n, const b_arc *arcs, size_t m, uint32_t *comp) {
  int64_t result = -1;
  uint32_t *fo = geo__calloc((size_t)n + 1, sizeof *fo),
           *ro = geo__calloc((size_t)n + 1, sizeof *ro);
  uint32_t *fa = geo__calloc(m, sizeof *fa), *ra = geo__calloc(m, sizeof *ra);
  uint32_t *order = geo__calloc(n, sizeof *order), *stack = geo__calloc(n, sizeof *stack);
  uint32_t *it = geo__calloc(n, sizeof *it), *size = NULL;
  uint8_t *seen = geo__calloc(n, 1);
  if (!fo || !ro || !fa || !ra || !order || !stack || !it || !seen) goto done;
  for (size_t i = 0; i < m; i++) {
    fo[arcs[i].tail + 1]++;
    ro[arcs[i].head + 1]++;
  }
  for (uint32_t v = 0; v < n; v++) {
    fo[v + 1] += fo[v];
    ro[v + 1] += ro[v];
  }
  for (uint32_t v = 0; v < n; v++) it[v] = fo[v];
  for (size_t i = 0; i < m; i++) fa[it[arcs[i].tail]++] = arcs[i].head;
  for (uint32_t v = 0; v < n; v++) it[v] = ro[v];
  for (size_t i = 0; i < m; i++) ra[it[arcs[i].head]++] = arcs[i].tail;
  /* Pass 1: post-order of the forward graph. */
  uint32_t n_order = 0;
  for (uint32_t s = 0; s < n; s++) {
    if (seen[s]) continue;
    uint32_t sp = 0;
    stack[sp++] = s;
    seen[s] = 1;
    it[s] = fo[s];
    while (sp) {
      uint32_t v = stack[sp - 1];
      if (it[v] < fo[v + 1]) {
        uint32_t w = fa[it[v]++];
        if (!seen[w]) {
          seen[w] = 1;
          it[w] = fo[w];
          stack[sp++] = w;
        }
      } else {
        order[n_order++] = v;
        sp--;
      }
    }
  }
  /* Pass 2: reverse graph in decreasing post-order. */
  for (uint32_t v = 0; v < n; v++) comp[v] = UINT32_MAX;
  uint32_t n_comp = 0;
  size = geo__calloc(n ? n : 1, sizeof *size);
  if (size == NULL) goto done;
  for (uint32_t k = n; k-- > 0;) {
    uint32_t s = order[k];
    if (comp[s] != UINT32_MAX) continue;
    uint32_t sp = 0;
    stack[sp++] = s;
    comp[s] = n_comp;
    while (sp) {
      uint32_t v = stack[--sp];
      size[n_comp]++;
      for (uint32_t i = ro[v]; i < ro[v + 1]; i++) {
        uint32_t w = ra[i];
        if (comp[w] == UINT32_MAX) {
          comp[w] = n_comp;
          stack[sp++] = w;
        }
      }
    }
    n_comp++;
  }
  uint32_t best = 0;
  for (uint32_t c = 1; c < n_comp; c++)
    if (size[c] > size[best]) best = c;
  result = n_comp ? (int64_t)best : -2;
done:
  geo__free(fo);
  geo__free(ro);
  geo__free(fa);
  geo__free(ra);
  geo__free(order);
  geo__free(stack);
  geo__free(it);
  geo__free(seen);
  geo__free(size);
  return result;
}

static uint32_t spread16(uint32_t x) {
  x &= 0xffff;
  x = (x | (x << 8)) & 0x00ff00ff;
  x = (x | (x << 4)) & 0x0f0f0f0f;
  x = (x | (x << 2)) & 0x33333333;
  x = (x | (x << 1)) & 0x55555555;
  return x;
}

typedef struct key_idx {
  uint64_t key;
  uint32_t idx;
} key_idx;

static int cmp_key_idx(const void *pa, const void *pb) {
  const key_idx *a = pa, *b = pb;
  if (a->key != b->key) return a->key < b->key ? -1 : 1;
  return a->idx < b->idx ? -1 : a->idx > b->idx;
}

void *geo__graph_alloc(geo_graph *g, size_t n, size_t size) {
  if (g->n_owned >= GEO_GRAPH_MAX_OWNED) return NULL;
  void *p = geo__calloc(n ? n : 1, size);
  if (p) g->owned[g->n_owned++] = p;
  return p;
}

void geo__graph_compute_top_speed(geo_graph *g) {
  double top = 0;
  for (uint32_t a = 0; a < g->m; a++) {
    double d = geo_haversine_m(g->pos[g->tail[a]], g->pos[g->head[a]]);
    if (d <= 0) continue;
    if (g->time_ms[a] == 0) {
      g->top_speed = 0; /* no admissible straight-line heuristic */
      return;
    }
    double v = d / g->time_ms[a];
    if (v > top) top = v;
  }
  g->top_speed = top;
}

geo_err geo__graph_index_ext(geo_graph *g) {
  uint32_t *idx = geo__graph_alloc(g, g->n, sizeof *idx);
  key_idx *tmp = geo__calloc(g->n ? g->n : 1, sizeof *tmp);
  if (idx == NULL || tmp == NULL) {
    geo__free(tmp);
    return GEO_ENOMEM;
  }
  /* Order-preserving map of int64 to uint64: flip the sign bit. */
  for (uint32_t v = 0; v < g->n; v++)
    tmp[v] = (key_idx){(uint64_t)g->node_ext[v] ^ 0x8000000000000000ull, v};
  qsort(tmp, g->n, sizeof *tmp, cmp_key_idx);
  for (uint32_t v = 0; v < g->n; v++) idx[v] = tmp[v].idx;
  geo__free(tmp);
  g->node_by_ext = idx;
  return GEO_OK;
}

/* The state of one geo_graph_builder_build, step by step: arcs from the roads, the nodes
 * kept and their new numbers, the arcs kept in their final order. */
typedef struct build_ctx {
  const geo_graph_builder *b;
  geo_graph_build_opts o;
  b_arc *arcs; /* step 1: m0 arcs in road order; step 4: the m kept, sorted */
  size_t m0, m;
  uint32_t *newid; /* builder node -> graph node, or UINT32_MAX when dropped */
  uint32_t n;      /* nodes kept */
  key_idx *keys;   /* graph node -> builder node (.idx) */
  uint32_t *perm;  /* arc id before filtering -> index in the graph, or GEO_ARC_NONE */
  geo_graph_stats st;
} build_ctx;

/* Step 1: two arcs per two-way road, paired as twins; self-loops dropped (and counted). */
static geo_err collect_arcs(build_ctx *c) {
  const geo_graph_builder *b = c->b;
  c->arcs = geo__calloc(b->n_roads * 2 + 1, sizeof *c->arcs);
  if (c->arcs == NULL) return GEO_ENOMEM;
  size_t m0 = 0;
  for (size_t r = 0; r < b->n_roads; r++) {
    const b_road *rd = &b->roads[r];
    if (rd->from == rd->to) {
      c->st.self_loops += (rd->fwd != GEO_TIME_NONE) + (rd->bwd != GEO_TIME_NONE);
      continue;
    }
    size_t first = m0;
    if (rd->fwd != GEO_TIME_NONE)
      c->arcs[m0++] = (b_arc){rd->from, rd->to, rd->fwd, (uint32_t)r, 0, GEO_ARC_NONE, 0};
    if (rd->bwd != GEO_TIME_NONE)
      c->arcs[m0++] = (b_arc){rd->to, rd->from, rd->bwd, (uint32_t)r, 1, GEO_ARC_NONE, 0};
    if (m0 - first == 2) {
      c->arcs[first].pair = (uint32_t)first + 1;
      c->arcs[first + 1].pair = (uint32_t)first;
    }
  }
  c->m0 = m0;
  return GEO_OK;
}

/* Step 2: which nodes to keep (all, or the largest strongly connected component), numbered
 * in builder order for now. GEO_ENOTFOUND when none is left. */
static geo_err select_nodes(build_ctx *c) {
  uint32_t nb = (uint32_t)c->b->n_nodes;
  uint32_t *comp = geo__calloc(nb ? nb : 1, sizeof *comp);
  c->newid = geo__calloc(nb ? nb : 1, sizeof *c->newid);
  geo_err err = GEO_ENOMEM;
  if (comp == NULL || c->newid == NULL) goto done;
  uint32_t keep_comp = 0;
  if (c->o.keep_largest_scc) {
    int64_t sc = largest_scc(nb, c->arcs, c->m0, comp);
    if (sc == -1) goto done;
    if (sc == -2) {
      err = GEO_ENOTFOUND;
      goto done;
    }
    keep_comp = (uint32_t)sc;
  }
  uint32_t n = 0;
  for (uint32_t v = 0; v < nb; v++) {
    bool keep = !c->o.keep_largest_scc || comp[v] == keep_comp;
    c->newid[v] = keep ? n++ : UINT32_MAX;
  }
  c->n = n;
  c->st.dropped_nodes = nb - n;
  err = n == 0 ? GEO_ENOTFOUND : GEO_OK;
done:
  geo__free(comp);
  return err;
}

/* Step 3: the kept nodes renumbered along a Z-order curve over their bounding box (or kept
 * in builder order when !reorder_nodes), so that nodes near on the map are near in memory. */
static geo_err order_nodes(build_ctx *c) {
  const geo_graph_builder *b = c->b;
  uint32_t nb = (uint32_t)b->n_nodes;
  c->keys = geo__calloc(c->n, sizeof *c->keys);
  if (c->keys == NULL) return GEO_ENOMEM;
  double min_lat = 90, max_lat = -90, min_lng = 180, max_lng = -180;
  for (uint32_t v = 0; v < nb; v++) {
    if (c->newid[v] == UINT32_MAX) continue;
    geo_latlng p = b->nodes[v].pos;
    min_lat = fmin(min_lat, p.lat), max_lat = fmax(max_lat, p.lat);
    min_lng = fmin(min_lng, p.lng), max_lng = fmax(max_lng, p.lng);
  }
  double slat = max_lat > min_lat ? 65535.0 / (max_lat - min_lat) : 0;
  double slng = max_lng > min_lng ? 65535.0 / (max_lng - min_lng) : 0;
  for (uint32_t v = 0; v < nb; v++) {
    if (c->newid[v] == UINT32_MAX) continue;
    geo_latlng p = b->nodes[v].pos;
    uint32_t qy = (uint32_t)((p.lat - min_lat) * slat), qx = (uint32_t)((p.lng - min_lng) * slng);
    uint64_t key = c->o.reorder_nodes ? ((uint64_t)(spread16(qy) << 1 | spread16(qx))) : 0;
    c->keys[c->newid[v]] = (key_idx){key, v};
  }
  qsort(c->keys, c->n, sizeof *c->keys, cmp_key_idx);
  for (uint32_t i = 0; i < c->n; i++) c->newid[c->keys[i].idx] = i;
  return GEO_OK;
}

/* Step 4: the arcs between kept nodes, renumbered and sorted by (tail, head, time); perm
 * maps an arc's id before filtering to its index. GEO_ERANGE past 2^31 - 1 arcs. */
static geo_err keep_arcs(build_ctx *c) {
  size_t m = 0;
  for (size_t i = 0; i < c->m0; i++) {
    b_arc a = c->arcs[i];
    if (c->newid[a.tail] == UINT32_MAX || c->newid[a.head] == UINT32_MAX) {
      c->st.dropped_arcs++; /* a twin has the same two ends, so it goes too */
      continue;
    }
    a.tail = c->newid[a.tail];
    a.head = c->newid[a.head];
    a.id = (uint32_t)i;
    c->arcs[m++] = a;
  }
  if (m >= 0x7fffffffu) return GEO_ERANGE;
  c->m = m;
  qsort(c->arcs, m, sizeof *c->arcs, cmp_arc);
  c->perm = geo__calloc(c->m0 + 1, sizeof *c->perm);
  if (c->perm == NULL) return GEO_ENOMEM;
  for (size_t i = 0; i < c->m0; i++) c->perm[i] = GEO_ARC_NONE;
  for (size_t i = 0; i < m; i++) c->perm[c->arcs[i].id] = (uint32_t)i;
  return GEO_OK;
}

/* Step 5a: positions and external ids of the nodes, in their new order. */
static geo_err fill_nodes(const build_ctx *c, geo_graph *g) {
  geo_latlng *pos = geo__graph_alloc(g, c->n, sizeof *pos);
  int64_t *next = geo__graph_alloc(g, c->n, sizeof *next);
  if (!pos || !next) return GEO_ENOMEM;
  for (uint32_t i = 0; i < c->n; i++) {
    pos[i] = c->b->nodes[c->keys[i].idx].pos;
    next[i] = c->b->nodes[c->keys[i].idx].ext;
  }
  g->pos = pos;
  g->node_ext = next;
  return GEO_OK;
}

/* Step 5b: the arcs' columns, the forward and reverse CSR offsets, the twins and the road
 * shapes (reversed for an arc that runs to -> from). */
static geo_err fill_arcs(const build_ctx *c, geo_graph *g) {
  uint32_t n = c->n;
  size_t m = c->m;
  uint32_t *fwd_off = geo__graph_alloc(g, (size_t)n + 1, sizeof *fwd_off);
  uint32_t *rev_off = geo__graph_alloc(g, (size_t)n + 1, sizeof *rev_off);
  uint32_t *tail = geo__graph_alloc(g, m, sizeof *tail);
  uint32_t *head = geo__graph_alloc(g, m, sizeof *head);
  uint32_t *time = geo__graph_alloc(g, m, sizeof *time);
  float *len = geo__graph_alloc(g, m, sizeof *len);
  uint8_t *cls = geo__graph_alloc(g, m, 1);
  uint32_t *twin = geo__graph_alloc(g, m, sizeof *twin);
  int64_t *aext = geo__graph_alloc(g, m, sizeof *aext);
  uint32_t *shape_off = geo__graph_alloc(g, m + 1, sizeof *shape_off);
  if (!fwd_off || !rev_off || !tail || !head || !time || !len || !cls || !twin || !aext ||
      !shape_off)
    return GEO_ENOMEM;
  size_t n_shape = 0;
  for (size_t i = 0; i < m; i++) {
    const b_arc *a = &c->arcs[i];
    const b_road *rd = &c->b->roads[a->road];
    tail[i] = a->tail;
    head[i] = a->head;
    time[i] = a->time;
    len[i] = (float)rd->len;
    cls[i] = rd->cls;
    aext[i] = rd->ext;
    fwd_off[a->tail + 1]++;
    rev_off[a->head + 1]++;
    shape_off[i] = (uint32_t)n_shape;
    n_shape += rd->shape_len;
  }
  shape_off[m] = (uint32_t)n_shape;
  for (uint32_t v = 0; v < n; v++) {
    fwd_off[v + 1] += fwd_off[v];
    rev_off[v + 1] += rev_off[v];
  }
  /* pair was an index into the pre-filter list, which is the old id. */
  for (size_t i = 0; i < m; i++) {
    uint32_t p = c->arcs[i].pair;
    twin[i] = p == GEO_ARC_NONE ? GEO_ARC_NONE : c->perm[p];
  }
  geo_latlng *shape = geo__graph_alloc(g, n_shape, sizeof *shape);
  if (shape == NULL) return GEO_ENOMEM;
  for (size_t i = 0; i < m; i++) {
    const b_road *rd = &c->b->roads[c->arcs[i].road];
    geo_latlng *dst = shape + shape_off[i];
    const geo_latlng *src = c->b->shape + rd->shape_first;
    for (size_t k = 0; k < rd->shape_len; k++)
      dst[k] = c->arcs[i].reversed ? src[rd->shape_len - 1 - k] : src[k];
  }
  g->fwd_off = fwd_off;
  g->rev_off = rev_off;
  g->tail = tail;
  g->head = head;
  g->time_ms = time;
  g->len_m = len;
  g->cls = cls;
  g->twin = twin;
  g->arc_ext = aext;
  g->shape_off = shape_off;
  g->shape = shape;
  return GEO_OK;
}

/* Step 5c: the reverse adjacency: for each node, the arcs that end there (by rev_off). */
static geo_err fill_reverse_arcs(geo_graph *g) {
  uint32_t *rev_arc = geo__graph_alloc(g, g->m, sizeof *rev_arc);
  uint32_t *fill = geo__calloc(g->n ? g->n : 1, sizeof *fill);
  if (rev_arc == NULL || fill == NULL) {
    geo__free(fill);
    return GEO_ENOMEM;
  }
  memcpy(fill, g->rev_off, g->n * sizeof *fill);
  for (uint32_t i = 0; i < g->m; i++) rev_arc[fill[g->head[i]]++] = i;
  geo__free(fill);
  g->rev_arc = rev_arc;
  return GEO_OK;
}

/* Step 5: the graph itself, owning its arrays; *out untouched on failure. */
static geo_err fill_graph(const build_ctx *c, geo_graph **out) {
  geo_graph *g = geo__calloc(1, sizeof *g);
  if (g == NULL) return GEO_ENOMEM;
  g->n = c->n;
  g->m = (uint32_t)c->m;
  geo_err err;
  if ((err = fill_nodes(c, g)) != GEO_OK || (err = fill_arcs(c, g)) != GEO_OK ||
      (err = fill_reverse_arcs(g)) != GEO_OK || (err = geo__graph_index_ext(g)) != GEO_OK) {
    geo_graph_free(g);
    return err;
  }
  geo_graph_calibration_identity(&g->cal);
  geo__graph_compute_top_speed(g);
  g->stats = c->st;
  g->stats.nodes = c->n;
  g->stats.arcs = (uint32_t)c->m;
  *out = g;
  return GEO_OK;
}

geo_err geo_graph_builder_build(const geo_graph_builder *b, const geo_graph_build_opts *opts,
                                geo_graph **out, geo_graph_stats *stats) {
  if (b == NULL || out == NULL) return GEO_EINVAL;
  build_ctx c = {.b = b, .o = opts ? *opts : (geo_graph_build_opts){true, true}};
  geo_graph *g = NULL;
  geo_err err;
  if ((err = collect_arcs(&c)) == GEO_OK && (err = select_nodes(&c)) == GEO_OK &&
      (err = order_nodes(&c)) == GEO_OK && (err = keep_arcs(&c)) == GEO_OK &&
      (err = fill_graph(&c, &g)) == GEO_OK) {
    if (stats) *stats = g->stats;
    *out = g;
  }
  geo__free(c.arcs);
  geo__free(c.newid);
  geo__free(c.perm);
  geo__free(c.keys);
  return err;
}

void geo_graph_free(geo_graph *g) {
  if (g == NULL) return;
  geo__graph_free_rtree(g);
  for (int i = 0; i < g->n_owned; i++) geo__free(g->owned[i]);
  for (int i = 0; i < 5; i++) geo__free(g->ch_mem[i]);
  geo__ch_query_free(&g->chq);
  if (g->map) geo__snapshot_unmap(g->map, g->map_len);
  geo__free(g);
}

geo_err geo_graph_calibrated(const geo_graph *g, const geo_graph_calibration *cal,
                             geo_graph **out) {
  return geo_graph_calibrated_arcs(g, cal, NULL, out);
}

geo_err geo_graph_calibrated_arcs(const geo_graph *g, const geo_graph_calibration *cal,
                                  const double *arc_factor, geo_graph **out) {
  if (g == NULL || cal == NULL || out == NULL) return GEO_EINVAL;
  if (arc_factor)
    for (uint32_t a = 0; a < g->m; a++)
      if (!isfinite(arc_factor[a]) || arc_factor[a] <= 0 || arc_factor[a] > 1000) return GEO_EINVAL;
  for (int c = 0; c < GEO_ROAD_CLASS_COUNT; c++)
    if (!isfinite(cal->class_factor[c]) || cal->class_factor[c] <= 0) return GEO_EINVAL;
  for (int w = 0; w < 2; w++)
    for (int h = 0; h < 24; h++)
      if (!isfinite(cal->hour_factor[w][h]) || cal->hour_factor[w][h] <= 0) return GEO_EINVAL;
  for (int d = 0; d < 7; d++)
    if (!isfinite(cal->day_factor[d]) || cal->day_factor[d] <= 0) return GEO_EINVAL;
  if (!isfinite(cal->arc_penalty_ms) || cal->arc_penalty_ms < 0 || cal->arc_penalty_ms > 1e6 ||
      !isfinite(cal->trip_base_ms) || cal->trip_base_ms < 0 || cal->trip_base_ms > 1e8)
    return GEO_EINVAL;
  geo_graph *c = geo__calloc(1, sizeof *c);
  if (c == NULL) return GEO_ENOMEM;
  uint32_t n = g->n, m = g->m, ns = g->shape_off[g->m];
  c->n = n;
  c->m = m;
#define DUP(field, count)                                                                          \
  do {                                                                                             \
    void *p_ = geo__graph_alloc(c, (count), sizeof *g->field);                                     \
    if (p_ == NULL) goto fail;                                                                     \
    memcpy(p_, g->field, (size_t)(count) * sizeof *g->field);                                      \
    c->field = p_;                                                                                 \
  } while (0)
  DUP(pos, n);
  DUP(node_ext, n);
  DUP(node_by_ext, n);
  DUP(fwd_off, n + 1);
  DUP(tail, m);
  DUP(head, m);
  DUP(len_m, m);
  DUP(cls, m);
  DUP(twin, m);
  DUP(arc_ext, m);
  DUP(shape_off, m + 1);
  DUP(shape, ns);
  DUP(rev_off, n + 1);
  DUP(rev_arc, m);
#undef DUP
  uint32_t *time = geo__graph_alloc(c, m, sizeof *time);
  if (time == NULL) goto fail;
  for (uint32_t a = 0; a < m; a++) {
    double t = g->time_ms[a] * cal->class_factor[g->cls[a]] + cal->arc_penalty_ms;
    if (arc_factor) t *= arc_factor[a];
    time[a] = t >= MAX_ARC_TIME_MS ? MAX_ARC_TIME_MS : (uint32_t)llround(t);
  }
  c->time_ms = time;
  c->cal = *cal;
  c->stats = g->stats;
  c->source_tag = g->source_tag;
  geo__graph_compute_top_speed(c);
  *out = c;
  return GEO_OK;
fail:
  geo_graph_free(c);
  return GEO_ENOMEM;
}

/* ---- accessors ------------------------------------------------------------------- */

uint32_t geo_graph_node_count(const geo_graph *g) { return g->n; }
uint32_t geo_graph_arc_count(const geo_graph *g) { return g->m; }
geo_latlng geo_graph_node_pos(const geo_graph *g, uint32_t v) {
  assert(v < g->n);
  return g->pos[v];
}
int64_t geo_graph_node_ext_id(const geo_graph *g, uint32_t v) {
  assert(v < g->n);
  return g->node_ext[v];
}

geo_err geo_graph_node_by_ext_id(const geo_graph *g, int64_t ext, uint32_t *node) {
  if (g == NULL || node == NULL) return GEO_EINVAL;
  uint32_t lo = 0, hi = g->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (g->node_ext[g->node_by_ext[mid]] < ext)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == g->n || g->node_ext[g->node_by_ext[lo]] != ext) return GEO_ENOTFOUND;
  *node = g->node_by_ext[lo];
  return GEO_OK;
}

void geo_graph_out_arcs(const geo_graph *g, uint32_t v, uint32_t *first, uint32_t *end) {
  assert(v < g->n);
  *first = g->fwd_off[v];
  *end = g->fwd_off[v + 1];
}
uint32_t geo_graph_arc_tail(const geo_graph *g, uint32_t a) { return g->tail[a]; }
uint32_t geo_graph_arc_head(const geo_graph *g, uint32_t a) { return g->head[a]; }
uint32_t geo_graph_arc_time_ms(const geo_graph *g, uint32_t a) { return g->time_ms[a]; }
double geo_graph_arc_length_m(const geo_graph *g, uint32_t a) { return g->len_m[a]; }
geo_road_class geo_graph_arc_class(const geo_graph *g, uint32_t a) {
  return (geo_road_class)g->cls[a];
}
int64_t geo_graph_arc_ext_id(const geo_graph *g, uint32_t a) { return g->arc_ext[a]; }
uint32_t geo_graph_arc_twin(const geo_graph *g, uint32_t a) { return g->twin[a]; }
const geo_latlng *geo_graph_arc_shape(const geo_graph *g, uint32_t a, size_t *len) {
  *len = g->shape_off[a + 1] - g->shape_off[a];
  return g->shape + g->shape_off[a];
}
uint32_t geo_graph_find_arc(const geo_graph *g, uint32_t t, uint32_t h) {
  if (t >= g->n) return GEO_ARC_NONE;
  uint32_t best = GEO_ARC_NONE;
  for (uint32_t a = g->fwd_off[t]; a < g->fwd_off[t + 1]; a++)
    if (g->head[a] == h && (best == GEO_ARC_NONE || g->time_ms[a] < g->time_ms[best])) best = a;
  return best;
}
void geo_graph_in_arcs(const geo_graph *g, uint32_t v, uint32_t *first, uint32_t *end) {
  assert(v < g->n);
  *first = g->rev_off[v];
  *end = g->rev_off[v + 1];
}
uint32_t geo_graph_in_arc(const geo_graph *g, uint32_t i) { return g->rev_arc[i]; }
double geo_graph_top_speed_m_per_ms(const geo_graph *g) { return g->top_speed; }
const geo_graph_calibration *geo_graph_get_calibration(const geo_graph *g) { return &g->cal; }
geo_graph_stats geo_graph_get_stats(const geo_graph *g) { return g->stats; }
uint64_t geo_graph_source_tag(const geo_graph *g) { return g->source_tag; }
void geo_graph_set_source_tag(geo_graph *g, uint64_t tag) { g->source_tag = tag; }

double geo_graph_eta_ms(const geo_graph *g, uint32_t t, int hour, int weekday) {
  if (hour < 0 || hour > 23 || weekday < 0 || weekday > 6) return t + g->cal.trip_base_ms;
  int we = weekday == 0 || weekday == 6;
  return t * g->cal.hour_factor[we][hour] * g->cal.day_factor[weekday] + g->cal.trip_base_ms;
}
