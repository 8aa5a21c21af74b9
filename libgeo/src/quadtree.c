/*
 * quadtree.c: the moving-point index behind geo/quadtree.h.
 *
 * Layout. Nodes live in one array (48 bytes each) and refer to each other by 32-bit index;
 * an internal node's four children are consecutive (south-west, south-east, north-west,
 * north-east), and freed blocks of four go on a free list. A leaf keeps its points in one
 * allocation, structure-of-arrays: ids[cap] | ts[cap] | lat[cap] | lng[cap] | state[cap]
 * (25 bytes a slot, cap a multiple of 8), so a search scans coordinates contiguously.
 * Positions are int32 fixed-point 1e-7 degree. An open-addressing table (linear probing,
 * 8-byte entries: node 32 bits | slot 24 bits | 8-bit fingerprint of the id's hash) maps id
 * to its slot; the id itself is read from the leaf, which a move touches anyway.
 *
 * Cell boxes are closed: a point on an edge may be kept by either cell, which is harmless
 * because searches treat boxes as closed too; descent sends a point at a midpoint to the
 * upper child.
 *
 * Exact pruning. With h = sin^2(dlat/2) + cos(lat_q) cos(lat_p) sin^2(dlng/2), the haversine
 * distance is 2R asin(sqrt(h)) >= 2R sqrt(h). For a box, each term is bounded below
 * separately (the latitude gap, the longitude gap taken the short way round, the smallest
 * cos(lat) in the box), with polynomial lower bounds of sin and cos, so the bound is a true
 * lower bound with no trigonometry per box. Comparisons keep a margin (1e-9 relative +
 * 1 micrometre) far above rounding, so no point that a linear scan would return is ever
 * pruned; candidates then get the exact geo_haversine_m that a linear scan would compute.
 */
#include "geo/quadtree.h"

#include <math.h>
#include <string.h>

#include "geo/geometry.h"
#include "geo_internal.h"

#define NONE UINT32_MAX
#define FIX 1e7                 /* fixed-point units per degree */
#define MERGE_MAX (GEO_QT_LEAF_MAX / 2)
#define SLOT_MAX 0xFFFFFFu      /* 24 bits of slot in a table entry */
#define TAB_EMPTY UINT64_MAX
#define STACK_MAX (3 * GEO_QT_MAX_DEPTH + 8)
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#define DEG2RAD (M_PI / 180.0)

typedef struct qt_node {
  int32_t min_lat, max_lat, min_lng, max_lng; /* closed box, fixed-point */
  uint32_t child;  /* first of 4 children, NONE for a leaf; free-list link when free */
  uint32_t parent; /* NONE for the root */
  uint32_t count;  /* points in the subtree (for a leaf: points in mem) */
  uint32_t cap;    /* leaf slots allocated in mem */
  unsigned char *mem;
  uint32_t depth;
  uint32_t unused;
} qt_node;

struct geo_quadtree {
  qt_node *nodes;
  uint32_t n_nodes, cap_nodes;
  uint32_t free4; /* free list of blocks of 4 nodes */
  uint64_t *tab;
  size_t tab_cap; /* power of two */
  int tab_shift;  /* 64 - log2(tab_cap) */
  size_t n;       /* points */
  size_t leaf_bytes;
};

/* ---- leaf storage ---------------------------------------------------------------- */

#define SLOT_BYTES 25u
static inline uint64_t *L_ids(const qt_node *nd) { return (uint64_t *)(void *)nd->mem; }
static inline int64_t *L_ts(const qt_node *nd) { return (int64_t *)(void *)(nd->mem + 8u * nd->cap); }
static inline int32_t *L_lat(const qt_node *nd) { return (int32_t *)(void *)(nd->mem + 16u * nd->cap); }
static inline int32_t *L_lng(const qt_node *nd) { return (int32_t *)(void *)(nd->mem + 20u * nd->cap); }
static inline uint8_t *L_st(const qt_node *nd) { return nd->mem + 24u * nd->cap; }

static uint32_t round8(uint32_t n) { return (n + 7u) & ~7u; }

static inline double fix_to_deg(int32_t v) { return (double)v / FIX; }
static inline int32_t deg_to_fix(double d) { return (int32_t)lround(d * FIX); }

/* ---- id table ---------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= UINT64_C(0xbf58476d1ce4e5b9);
  x ^= x >> 27;
  x *= UINT64_C(0x94d049bb133111eb);
  x ^= x >> 31;
  return x;
}

static inline uint64_t entry_make(uint32_t node, uint32_t slot, uint64_t h) {
  return ((uint64_t)node << 32) | ((uint64_t)slot << 8) | (h & 0xFFu);
}
static inline uint32_t entry_node(uint64_t e) { return (uint32_t)(e >> 32); }
static inline uint32_t entry_slot(uint64_t e) { return (uint32_t)(e >> 8) & SLOT_MAX; }

static inline uint64_t entry_id(const geo_quadtree *qt, uint64_t e) {
  return L_ids(&qt->nodes[entry_node(e)])[entry_slot(e)];
}

/* Table index of id, or SIZE_MAX. */
static size_t tab_find(const geo_quadtree *qt, uint64_t id) {
  uint64_t h = mix64(id);
  size_t mask = qt->tab_cap - 1, i = (size_t)(h >> qt->tab_shift);
  for (;;) {
    uint64_t e = qt->tab[i];
    if (e == TAB_EMPTY) return SIZE_MAX;
    if ((e & 0xFFu) == (h & 0xFFu) && entry_id(qt, e) == id) return i;
    i = (i + 1) & mask;
  }
}

static void tab_put_raw(uint64_t *tab, size_t cap, int shift, uint64_t h, uint64_t e) {
  size_t mask = cap - 1, i = (size_t)(h >> shift);
  while (tab[i] != TAB_EMPTY) i = (i + 1) & mask;
  tab[i] = e;
}

/* Point the existing entry of id at (node, slot). */
static void tab_set(geo_quadtree *qt, uint64_t id, uint32_t node, uint32_t slot) {
  size_t i = tab_find(qt, id);
  qt->tab[i] = entry_make(node, slot, qt->tab[i]);
}

/* Delete the entry at index i, shifting later entries of the cluster back (no tombstones). */
static void tab_delete(geo_quadtree *qt, size_t i) {
  size_t mask = qt->tab_cap - 1, j = i;
  qt->tab[i] = TAB_EMPTY;
  for (;;) {
    j = (j + 1) & mask;
    uint64_t e = qt->tab[j];
    if (e == TAB_EMPTY) return;
    size_t home = (size_t)(mix64(entry_id(qt, e)) >> qt->tab_shift);
    /* e stays if its home lies cyclically in (i, j]. */
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    qt->tab[i] = e;
    qt->tab[j] = TAB_EMPTY;
    i = j;
  }
}

static geo_err tab_init(geo_quadtree *qt, size_t cap) {
  uint64_t *t = geo__malloc(cap * sizeof *t);
  if (t == NULL) return GEO_ENOMEM;
  memset(t, 0xFF, cap * sizeof *t);
  int bits = 0;
  while (((size_t)1 << bits) < cap) bits++;
  geo__free(qt->tab);
  qt->tab = t;
  qt->tab_cap = cap;
  qt->tab_shift = 64 - bits;
  return GEO_OK;
}

/* Make room for one more id: keep the load at most 0.7. */
static geo_err tab_reserve(geo_quadtree *qt) {
  if ((qt->n + 1) * 10 <= qt->tab_cap * 7) return GEO_OK;
  size_t ncap = qt->tab_cap * 2;
  if (ncap > SIZE_MAX / sizeof(uint64_t)) return GEO_ENOMEM;
  uint64_t *t = geo__malloc(ncap * sizeof *t);
  if (t == NULL) return GEO_ENOMEM;
  memset(t, 0xFF, ncap * sizeof *t);
  int bits = 0;
  while (((size_t)1 << bits) < ncap) bits++;
  for (size_t i = 0; i < qt->tab_cap; i++) {
    uint64_t e = qt->tab[i];
    if (e != TAB_EMPTY) tab_put_raw(t, ncap, 64 - bits, mix64(entry_id(qt, e)), e);
  }
  geo__free(qt->tab);
  qt->tab = t;
  qt->tab_cap = ncap;
  qt->tab_shift = 64 - bits;
  return GEO_OK;
}

/* ---- nodes --------------------------------------------------------------------------- */

static bool node_contains(const qt_node *nd, int32_t lat, int32_t lng) {
  return lat >= nd->min_lat && lat <= nd->max_lat && lng >= nd->min_lng && lng <= nd->max_lng;
}

static int32_t mid32(int32_t lo, int32_t hi) { return (int32_t)(lo + ((int64_t)hi - lo) / 2); }

static unsigned quadrant(const qt_node *nd, int32_t lat, int32_t lng) {
  return (lat >= mid32(nd->min_lat, nd->max_lat) ? 2u : 0u) |
         (lng >= mid32(nd->min_lng, nd->max_lng) ? 1u : 0u);
}

/* A block of 4 free nodes, from the free list or by growing the array (GEO_ENOMEM). */
static geo_err block_alloc(geo_quadtree *qt, uint32_t *out) {
  if (qt->free4 != NONE) {
    *out = qt->free4;
    qt->free4 = qt->nodes[qt->free4].child;
    return GEO_OK;
  }
  if (qt->n_nodes + 4 > qt->cap_nodes) {
    if (qt->cap_nodes > (NONE - 8) / 2) return GEO_ENOMEM;
    uint32_t ncap = qt->cap_nodes * 2;
    qt_node *p = geo__realloc(qt->nodes, (size_t)qt->cap_nodes * sizeof *p, (size_t)ncap * sizeof *p);
    if (p == NULL) return GEO_ENOMEM;
    qt->nodes = p;
    qt->cap_nodes = ncap;
  }
  *out = qt->n_nodes;
  for (uint32_t i = 0; i < 4; i++) /* so that free() and the free list see clean nodes */
    qt->nodes[qt->n_nodes + i] = (qt_node){0, 0, 0, 0, NONE, NONE, 0, 0, NULL, 0, 0};
  qt->n_nodes += 4;
  return GEO_OK;
}

static void block_release(geo_quadtree *qt, uint32_t b) {
  qt->nodes[b].child = qt->free4;
  qt->free4 = b;
}

static void copy_slot(qt_node *dst, uint32_t d, const qt_node *src, uint32_t s) {
  L_ids(dst)[d] = L_ids(src)[s];
  L_ts(dst)[d] = L_ts(src)[s];
  L_lat(dst)[d] = L_lat(src)[s];
  L_lng(dst)[d] = L_lng(src)[s];
  L_st(dst)[d] = L_st(src)[s];
}

static void leaf_free_mem(geo_quadtree *qt, qt_node *nd) {
  if (nd->mem) {
    geo__free(nd->mem);
    qt->leaf_bytes -= (size_t)nd->cap * SLOT_BYTES;
  }
  nd->mem = NULL;
  nd->cap = 0;
}

/* Give leaf idx room for one more point. */
static geo_err leaf_grow(geo_quadtree *qt, uint32_t idx) {
  qt_node *nd = &qt->nodes[idx];
  uint32_t ncap = nd->cap < GEO_QT_LEAF_MAX ? nd->cap + 8 : round8(nd->cap + nd->cap / 2);
  if (ncap > SLOT_MAX + 1u) ncap = SLOT_MAX + 1u;
  unsigned char *mem = geo__malloc((size_t)ncap * SLOT_BYTES);
  if (mem == NULL) return GEO_ENOMEM;
  qt_node tmp = *nd;
  tmp.mem = mem;
  tmp.cap = ncap;
  for (uint32_t i = 0; i < nd->count; i++) copy_slot(&tmp, i, nd, i);
  leaf_free_mem(qt, nd);
  nd->mem = mem;
  nd->cap = ncap;
  qt->leaf_bytes += (size_t)ncap * SLOT_BYTES;
  return GEO_OK;
}

/* Split leaf idx into four children. On GEO_ENOMEM nothing changes. */
static geo_err leaf_split(geo_quadtree *qt, uint32_t idx) {
  uint32_t b;
  geo_err e = block_alloc(qt, &b);
  if (e != GEO_OK) return e;
  qt_node *nd = &qt->nodes[idx];
  uint32_t cnt[4] = {0, 0, 0, 0};
  const int32_t *lat = L_lat(nd), *lng = L_lng(nd);
  for (uint32_t i = 0; i < nd->count; i++) cnt[quadrant(nd, lat[i], lng[i])]++;
  unsigned char *mem[4] = {NULL, NULL, NULL, NULL};
  for (int q = 0; q < 4; q++) {
    if (cnt[q] == 0) continue;
    mem[q] = geo__malloc((size_t)round8(cnt[q]) * SLOT_BYTES);
    if (mem[q] == NULL) {
      for (int r = 0; r < q; r++) geo__free(mem[r]);
      block_release(qt, b);
      return GEO_ENOMEM;
    }
  }
  int32_t mlat = mid32(nd->min_lat, nd->max_lat), mlng = mid32(nd->min_lng, nd->max_lng);
  for (uint32_t q = 0; q < 4; q++) {
    qt_node *c = &qt->nodes[b + q];
    c->min_lat = (q & 2) ? mlat : nd->min_lat;
    c->max_lat = (q & 2) ? nd->max_lat : mlat;
    c->min_lng = (q & 1) ? mlng : nd->min_lng;
    c->max_lng = (q & 1) ? nd->max_lng : mlng;
    c->child = NONE;
    c->parent = idx;
    c->count = 0;
    c->cap = cnt[q] ? round8(cnt[q]) : 0;
    c->mem = mem[q];
    c->depth = nd->depth + 1;
    c->unused = 0;
    qt->leaf_bytes += (size_t)c->cap * SLOT_BYTES;
  }
  for (uint32_t i = 0; i < nd->count; i++) {
    qt_node *c = &qt->nodes[b + quadrant(nd, lat[i], lng[i])];
    uint32_t s = c->count++;
    copy_slot(c, s, nd, i);
    tab_set(qt, L_ids(c)[s], (uint32_t)(c - qt->nodes), s); /* reads the old leaf: intact */
  }
  leaf_free_mem(qt, nd);
  nd->child = b;
  return GEO_OK;
}

/* Merge the four leaf children of p into p; skipped (false) when memory is short. */
static bool try_merge_one(geo_quadtree *qt, uint32_t p) {
  qt_node *nd = &qt->nodes[p];
  uint32_t b = nd->child;
  for (uint32_t q = 0; q < 4; q++)
    if (qt->nodes[b + q].child != NONE) return false;
  uint32_t cap = round8(nd->count);
  unsigned char *mem = NULL;
  if (cap) {
    mem = geo__malloc((size_t)cap * SLOT_BYTES);
    if (mem == NULL) return false;
  }
  nd->mem = mem;
  nd->cap = cap;
  qt->leaf_bytes += (size_t)cap * SLOT_BYTES;
  uint32_t s = 0;
  for (uint32_t q = 0; q < 4; q++) {
    qt_node *c = &qt->nodes[b + q];
    for (uint32_t i = 0; i < c->count; i++, s++) {
      copy_slot(nd, s, c, i);
      tab_set(qt, L_ids(nd)[s], p, s); /* the child still holds the id: found there */
    }
    leaf_free_mem(qt, c);
    c->count = 0;
  }
  nd->child = NONE;
  block_release(qt, b);
  return true;
}

static void merge_upwards(geo_quadtree *qt, uint32_t p) {
  while (p != NONE && qt->nodes[p].count <= MERGE_MAX && try_merge_one(qt, p))
    p = qt->nodes[p].parent;
}

/* Descend from start to the leaf that should take (lat, lng), splitting full leaves, and
 * make sure it has a free slot. Counts are not touched. */
static geo_err descend_reserve(geo_quadtree *qt, uint32_t start, int32_t lat, int32_t lng,
                               uint32_t *leaf) {
  uint32_t cur = start;
  for (;;) {
    qt_node *nd = &qt->nodes[cur];
    if (nd->child != NONE) {
      cur = nd->child + quadrant(nd, lat, lng);
      continue;
    }
    if (nd->count < GEO_QT_LEAF_MAX || nd->depth >= GEO_QT_MAX_DEPTH) break;
    geo_err e = leaf_split(qt, cur);
    if (e != GEO_OK) return e;
  }
  qt_node *nd = &qt->nodes[cur];
  if (nd->count > SLOT_MAX) return GEO_ERANGE;
  if (nd->count == nd->cap) {
    geo_err e = leaf_grow(qt, cur);
    if (e != GEO_OK) return e;
  }
  *leaf = cur;
  return GEO_OK;
}

static uint32_t leaf_append(geo_quadtree *qt, uint32_t leaf, uint64_t id, int32_t lat,
                            int32_t lng, geo_qt_payload pl) {
  qt_node *nd = &qt->nodes[leaf];
  uint32_t s = nd->count;
  L_ids(nd)[s] = id;
  L_ts(nd)[s] = pl.ts_ms;
  L_lat(nd)[s] = lat;
  L_lng(nd)[s] = lng;
  L_st(nd)[s] = pl.state;
  return s;
}

/* Remove slot s of leaf (whose id's table entry is already gone or re-pointed): the last
 * point fills the hole. The leaf's count is not changed here. */
static void leaf_take_out(geo_quadtree *qt, uint32_t leaf, uint32_t s) {
  qt_node *nd = &qt->nodes[leaf];
  uint32_t last = nd->count - 1;
  if (s != last) {
    copy_slot(nd, s, nd, last);
    tab_set(qt, L_ids(nd)[s], leaf, s); /* the copy at `last` still names it */
  }
}

/* ---- public: lifecycle and updates ---------------------------------------------------- */

geo_err geo_quadtree_new(geo_quadtree **out) {
  if (out == NULL) return GEO_EINVAL;
  geo_quadtree *qt = geo__calloc(1, sizeof *qt);
  if (qt == NULL) return GEO_ENOMEM;
  qt->cap_nodes = 64;
  qt->nodes = geo__malloc((size_t)qt->cap_nodes * sizeof *qt->nodes);
  if (qt->nodes == NULL || tab_init(qt, 64) != GEO_OK) {
    geo__free(qt->nodes);
    geo__free(qt);
    return GEO_ENOMEM;
  }
  qt->n_nodes = 1;
  qt->free4 = NONE;
  qt->nodes[0] = (qt_node){-900000000, 900000000, -1800000000, 1800000000, NONE, NONE, 0, 0,
                           NULL, 0, 0};
  *out = qt;
  return GEO_OK;
}

void geo_quadtree_free(geo_quadtree *qt) {
  if (qt == NULL) return;
  for (uint32_t i = 0; i < qt->n_nodes; i++)
    geo__free(qt->nodes[i].mem);
  geo__free(qt->nodes);
  geo__free(qt->tab);
  geo__free(qt);
}

geo_err geo_quadtree_upsert(geo_quadtree *qt, uint64_t id, geo_latlng pos, geo_qt_payload pl) {
  if (qt == NULL || !geo_latlng_is_valid(pos)) return GEO_EINVAL;
  int32_t lat = deg_to_fix(pos.lat), lng = deg_to_fix(pos.lng);
  size_t ti = tab_find(qt, id);
  if (ti != SIZE_MAX) {
    uint32_t leaf = entry_node(qt->tab[ti]), s = entry_slot(qt->tab[ti]);
    qt_node *nd = &qt->nodes[leaf];
    if (node_contains(nd, lat, lng)) { /* the common case: stays in its cell */
      L_lat(nd)[s] = lat;
      L_lng(nd)[s] = lng;
      L_ts(nd)[s] = pl.ts_ms;
      L_st(nd)[s] = pl.state;
      return GEO_OK;
    }
    uint32_t anc = nd->parent;
    while (!node_contains(&qt->nodes[anc], lat, lng)) anc = qt->nodes[anc].parent;
    uint32_t target;
    geo_err e = descend_reserve(qt, anc, lat, lng, &target); /* never reaches `leaf` */
    if (e != GEO_OK) return e;
    uint32_t ns = leaf_append(qt, target, id, lat, lng, pl);
    for (uint32_t x = target; x != anc; x = qt->nodes[x].parent) qt->nodes[x].count++;
    qt->tab[ti] = entry_make(target, ns, qt->tab[ti]);
    leaf_take_out(qt, leaf, s);
    for (uint32_t x = leaf; x != anc; x = qt->nodes[x].parent) qt->nodes[x].count--;
    if (qt->nodes[leaf].count == 0) leaf_free_mem(qt, &qt->nodes[leaf]);
    merge_upwards(qt, qt->nodes[leaf].parent);
    return GEO_OK;
  }
  geo_err e = tab_reserve(qt);
  if (e != GEO_OK) return e;
  uint32_t target;
  e = descend_reserve(qt, 0, lat, lng, &target);
  if (e != GEO_OK) return e;
  uint32_t ns = leaf_append(qt, target, id, lat, lng, pl);
  for (uint32_t x = target; x != NONE; x = qt->nodes[x].parent) qt->nodes[x].count++;
  uint64_t h = mix64(id);
  tab_put_raw(qt->tab, qt->tab_cap, qt->tab_shift, h, entry_make(target, ns, h));
  qt->n++;
  return GEO_OK;
}

geo_err geo_quadtree_set_payload(geo_quadtree *qt, uint64_t id, geo_qt_payload pl) {
  if (qt == NULL) return GEO_EINVAL;
  size_t ti = tab_find(qt, id);
  if (ti == SIZE_MAX) return GEO_ENOTFOUND;
  qt_node *nd = &qt->nodes[entry_node(qt->tab[ti])];
  uint32_t s = entry_slot(qt->tab[ti]);
  L_ts(nd)[s] = pl.ts_ms;
  L_st(nd)[s] = pl.state;
  return GEO_OK;
}

geo_err geo_quadtree_remove(geo_quadtree *qt, uint64_t id) {
  if (qt == NULL) return GEO_EINVAL;
  size_t ti = tab_find(qt, id);
  if (ti == SIZE_MAX) return GEO_ENOTFOUND;
  uint32_t leaf = entry_node(qt->tab[ti]), s = entry_slot(qt->tab[ti]);
  tab_delete(qt, ti);
  leaf_take_out(qt, leaf, s);
  for (uint32_t x = leaf; x != NONE; x = qt->nodes[x].parent) qt->nodes[x].count--;
  if (qt->nodes[leaf].count == 0) leaf_free_mem(qt, &qt->nodes[leaf]);
  qt->n--;
  merge_upwards(qt, qt->nodes[leaf].parent);
  return GEO_OK;
}

static geo_qt_point point_at(const qt_node *nd, uint32_t s) {
  geo_qt_point p;
  p.id = L_ids(nd)[s];
  p.pos = (geo_latlng){fix_to_deg(L_lat(nd)[s]), fix_to_deg(L_lng(nd)[s])};
  p.payload.state = L_st(nd)[s];
  p.payload.ts_ms = L_ts(nd)[s];
  return p;
}

geo_err geo_quadtree_get(const geo_quadtree *qt, uint64_t id, geo_qt_point *out) {
  if (qt == NULL || out == NULL) return GEO_EINVAL;
  size_t ti = tab_find(qt, id);
  if (ti == SIZE_MAX) return GEO_ENOTFOUND;
  *out = point_at(&qt->nodes[entry_node(qt->tab[ti])], entry_slot(qt->tab[ti]));
  return GEO_OK;
}

size_t geo_quadtree_count(const geo_quadtree *qt) { return qt ? qt->n : 0; }

size_t geo_quadtree_memory_bytes(const geo_quadtree *qt) {
  if (qt == NULL) return 0;
  return sizeof *qt + (size_t)qt->cap_nodes * sizeof(qt_node) + qt->tab_cap * sizeof(uint64_t) +
         qt->leaf_bytes;
}

/* ---- searches ------------------------------------------------------------------------ */

/* sin(x) >= x - x^3/6 and cos(x) >= 1 - x^2/2 + x^4/24 - x^6/720 for x >= 0. */
static inline double sin_lb(double x) { return x * (1.0 - x * x * (1.0 / 6.0)); }
static inline double cos_lb(double x) {
  double x2 = x * x;
  double c = 1.0 - x2 * (0.5 - x2 * (1.0 / 24.0 - x2 * (1.0 / 720.0)));
  return c > 0 ? c : 0;
}

typedef struct search {
  geo_latlng q;
  double cos_q;
  double thresh_h; /* prune when a lower bound of h exceeds this */
  geo_qt_filter filter;
  void *filter_ud;
} search;

/* h-space threshold for "distance <= d", with the safety margin. */
static double thresh_for(double d) {
  if (!isfinite(d)) return INFINITY;
  double x = (d * (1.0 + 1e-9) + 1e-6) / (2.0 * GEO_EARTH_RADIUS_M);
  return x * x;
}

/* Lower bound of h over the node's box (0 when q is inside). */
static double box_lb_h(const search *sq, const qt_node *nd) {
  double minlat = nd->min_lat * 1e-7, maxlat = nd->max_lat * 1e-7;
  double minlng = nd->min_lng * 1e-7, maxlng = nd->max_lng * 1e-7;
  double dphi = 0, dlam = 0;
  if (sq->q.lat > maxlat) dphi = sq->q.lat - maxlat;
  else if (sq->q.lat < minlat) dphi = minlat - sq->q.lat;
  if (sq->q.lng < minlng || sq->q.lng > maxlng) {
    double dw = fabs(sq->q.lng - minlng), de = fabs(sq->q.lng - maxlng);
    if (dw > 180.0) dw = 360.0 - dw;
    if (de > 180.0) de = 360.0 - de;
    dlam = dw < de ? dw : de;
  }
  if (dphi == 0 && dlam == 0) return 0;
  double a = fabs(minlat) > fabs(maxlat) ? fabs(minlat) : fabs(maxlat);
  double s1 = sin_lb(dphi * DEG2RAD * 0.5), s2 = sin_lb(dlam * DEG2RAD * 0.5);
  return s1 * s1 + sq->cos_q * cos_lb(a * DEG2RAD) * s2 * s2;
}

/* Lower bound of h for one point, given the leaf's smallest cos(lat) times cos(lat_q). */
static inline double point_lb_h(const search *sq, double cc, int32_t lat, int32_t lng) {
  double dphi = fabs(lat * 1e-7 - sq->q.lat);
  double dlam = fabs(lng * 1e-7 - sq->q.lng);
  if (dlam > 180.0) dlam = 360.0 - dlam;
  double s1 = sin_lb(dphi * (DEG2RAD * 0.5)), s2 = sin_lb(dlam * (DEG2RAD * 0.5));
  return s1 * s1 + cc * s2 * s2;
}

static double leaf_cc(const search *sq, const qt_node *nd) {
  double a1 = fabs(nd->min_lat * 1e-7), a2 = fabs(nd->max_lat * 1e-7);
  return sq->cos_q * cos_lb((a1 > a2 ? a1 : a2) * DEG2RAD);
}

/* (d, id) order: true when a is strictly worse (farther) than b. */
static inline bool hit_worse(const geo_qt_hit *a, const geo_qt_hit *b) {
  return a->dist_m > b->dist_m || (a->dist_m == b->dist_m && a->point.id > b->point.id);
}

static void heap_sift_down(geo_qt_hit *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && hit_worse(&h[l], &h[m])) m = l;
    if (r < n && hit_worse(&h[r], &h[m])) m = r;
    if (m == i) return;
    geo_qt_hit t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static void heap_sift_up(geo_qt_hit *h, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!hit_worse(&h[i], &h[p])) return;
    geo_qt_hit t = h[i];
    h[i] = h[p];
    h[p] = t;
    i = p;
  }
}

typedef struct stack_item {
  uint32_t node;
  double lb;
} stack_item;

geo_err geo_quadtree_knn(const geo_quadtree *qt, geo_latlng q, size_t k, double max_dist_m,
                         geo_qt_filter filter, void *filter_ud, geo_qt_hit *out,
                         size_t *n_out) {
  if (qt == NULL || n_out == NULL || (out == NULL && k > 0) || !geo_latlng_is_valid(q) ||
      isnan(max_dist_m) || max_dist_m < 0)
    return GEO_EINVAL;
  size_t n = 0;
  if (k == 0 || qt->n == 0) {
    *n_out = 0;
    return GEO_OK;
  }
  search sq = {q, cos(q.lat * DEG2RAD), thresh_for(max_dist_m), filter, filter_ud};
  stack_item st[STACK_MAX];
  int sp = 0;
  st[sp++] = (stack_item){0, 0.0};
  while (sp > 0) {
    stack_item it = st[--sp];
    if (it.lb > sq.thresh_h) continue;
    const qt_node *nd = &qt->nodes[it.node];
    if (nd->child == NONE) {
      double cc = leaf_cc(&sq, nd);
      const int32_t *lat = L_lat(nd), *lng = L_lng(nd);
      for (uint32_t i = 0; i < nd->count; i++) {
        if (point_lb_h(&sq, cc, lat[i], lng[i]) > sq.thresh_h) continue;
        geo_qt_hit hit;
        hit.point = point_at(nd, i);
        if (filter && !filter(&hit.point, filter_ud)) continue;
        hit.dist_m = geo_haversine_m(q, hit.point.pos);
        if (hit.dist_m > max_dist_m) continue;
        if (n < k) {
          out[n] = hit;
          heap_sift_up(out, n++);
          if (n == k) sq.thresh_h = thresh_for(out[0].dist_m);
        } else if (hit_worse(&out[0], &hit)) {
          out[0] = hit;
          heap_sift_down(out, n, 0);
          sq.thresh_h = thresh_for(out[0].dist_m);
        }
      }
      continue;
    }
    stack_item ch[4];
    int nc = 0;
    for (uint32_t c = 0; c < 4; c++) {
      const qt_node *cn = &qt->nodes[nd->child + c];
      if (cn->count == 0) continue;
      double lb = box_lb_h(&sq, cn);
      if (lb > sq.thresh_h) continue;
      int j = nc++;
      while (j > 0 && ch[j - 1].lb < lb) { /* descending, so the nearest is pushed last */
        ch[j] = ch[j - 1];
        j--;
      }
      ch[j] = (stack_item){nd->child + c, lb};
    }
    for (int j = 0; j < nc; j++) st[sp++] = ch[j];
  }
  /* Heap -> ascending order. */
  size_t m = n;
  while (m > 1) {
    geo_qt_hit t = out[0];
    out[0] = out[m - 1];
    out[m - 1] = t;
    heap_sift_down(out, --m, 0);
  }
  *n_out = n;
  return GEO_OK;
}

geo_err geo_quadtree_within_radius(const geo_quadtree *qt, geo_latlng centre, double radius_m,
                                   geo_qt_filter filter, void *filter_ud, geo_qt_visit visit,
                                   void *visit_ud, size_t *n_out) {
  if (qt == NULL || visit == NULL || !geo_latlng_is_valid(centre) || isnan(radius_m) ||
      radius_m < 0)
    return GEO_EINVAL;
  search sq = {centre, cos(centre.lat * DEG2RAD), thresh_for(radius_m), filter, filter_ud};
  size_t n = 0;
  uint32_t st[STACK_MAX * 2];
  int sp = 0;
  if (qt->n) st[sp++] = 0;
  while (sp > 0) {
    const qt_node *nd = &qt->nodes[st[--sp]];
    if (nd->child == NONE) {
      double cc = leaf_cc(&sq, nd);
      const int32_t *lat = L_lat(nd), *lng = L_lng(nd);
      for (uint32_t i = 0; i < nd->count; i++) {
        if (point_lb_h(&sq, cc, lat[i], lng[i]) > sq.thresh_h) continue;
        geo_qt_hit hit;
        hit.point = point_at(nd, i);
        hit.dist_m = geo_haversine_m(centre, hit.point.pos);
        if (hit.dist_m > radius_m) continue;
        if (filter && !filter(&hit.point, filter_ud)) continue;
        n++;
        if (!visit(&hit, visit_ud)) goto done;
      }
      continue;
    }
    for (uint32_t c = 0; c < 4; c++) {
      const qt_node *cn = &qt->nodes[nd->child + c];
      if (cn->count == 0 || box_lb_h(&sq, cn) > sq.thresh_h) continue;
      st[sp++] = nd->child + c;
    }
  }
done:
  if (n_out) *n_out = n;
  return GEO_OK;
}

static bool node_meets_box(const qt_node *nd, int32_t la0, int32_t la1, int32_t lo0, int32_t lo1) {
  return nd->max_lat >= la0 && nd->min_lat <= la1 && nd->max_lng >= lo0 && nd->min_lng <= lo1;
}

geo_err geo_quadtree_within_box(const geo_quadtree *qt, geo_bbox box, geo_qt_filter filter,
                                void *filter_ud, geo_qt_visit visit, void *visit_ud,
                                size_t *n_out) {
  if (qt == NULL || visit == NULL || !isfinite(box.min_lat) || !isfinite(box.max_lat) ||
      !isfinite(box.min_lng) || !isfinite(box.max_lng) || box.min_lat > box.max_lat)
    return GEO_EINVAL;
  /* Conservative fixed-point bounds (one unit of slack); the exact test is per point. */
  double la0 = floor(box.min_lat * FIX) - 1, la1 = ceil(box.max_lat * FIX) + 1;
  double lo0 = floor(box.min_lng * FIX) - 1, lo1 = ceil(box.max_lng * FIX) + 1;
  const double LIM = 2e9;
  int32_t ila0 = (int32_t)fmax(-LIM, fmin(LIM, la0)), ila1 = (int32_t)fmax(-LIM, fmin(LIM, la1));
  int32_t ilo0 = (int32_t)fmax(-LIM, fmin(LIM, lo0)), ilo1 = (int32_t)fmax(-LIM, fmin(LIM, lo1));
  bool wraps = box.min_lng > box.max_lng;
  size_t n = 0;
  uint32_t st[STACK_MAX * 2];
  int sp = 0;
  if (qt->n) st[sp++] = 0;
  while (sp > 0) {
    const qt_node *nd = &qt->nodes[st[--sp]];
    if (nd->child == NONE) {
      for (uint32_t i = 0; i < nd->count; i++) {
        geo_qt_hit hit;
        hit.point = point_at(nd, i);
        if (!geo_bbox_contains(box, hit.point.pos)) continue;
        if (filter && !filter(&hit.point, filter_ud)) continue;
        hit.dist_m = 0;
        n++;
        if (!visit(&hit, visit_ud)) goto done;
      }
      continue;
    }
    for (uint32_t c = 0; c < 4; c++) {
      const qt_node *cn = &qt->nodes[nd->child + c];
      if (cn->count == 0) continue;
      bool meets = wraps ? node_meets_box(cn, ila0, ila1, ilo0, INT32_MAX) ||
                               node_meets_box(cn, ila0, ila1, INT32_MIN, ilo1)
                         : node_meets_box(cn, ila0, ila1, ilo0, ilo1);
      if (meets) st[sp++] = nd->child + c;
    }
  }
done:
  if (n_out) *n_out = n;
  return GEO_OK;
}

/* ---- invariants ------------------------------------------------------------------------ */

static geo_err check_node(const geo_quadtree *qt, uint32_t idx, uint32_t parent,
                          uint32_t depth, size_t *points, size_t *visited) {
  if (idx >= qt->n_nodes || ++*visited > qt->n_nodes) return GEO_EFORMAT;
  const qt_node *nd = &qt->nodes[idx];
  if (nd->parent != parent || nd->depth != depth || depth > GEO_QT_MAX_DEPTH) return GEO_EFORMAT;
  if (nd->min_lat > nd->max_lat || nd->min_lng > nd->max_lng) return GEO_EFORMAT;
  if (nd->child == NONE) {
    if (nd->count > nd->cap || (nd->count > 0 && nd->mem == NULL)) return GEO_EFORMAT;
    if (nd->count > GEO_QT_LEAF_MAX && depth < GEO_QT_MAX_DEPTH) return GEO_EFORMAT;
    for (uint32_t i = 0; i < nd->count; i++) {
      if (!node_contains(nd, L_lat(nd)[i], L_lng(nd)[i])) return GEO_EFORMAT;
      size_t ti = tab_find(qt, L_ids(nd)[i]);
      if (ti == SIZE_MAX || entry_node(qt->tab[ti]) != idx || entry_slot(qt->tab[ti]) != i)
        return GEO_EFORMAT;
    }
    *points += nd->count;
    return GEO_OK;
  }
  if (nd->mem != NULL || nd->child + 4 > qt->n_nodes) return GEO_EFORMAT;
  size_t sum = 0;
  for (uint32_t c = 0; c < 4; c++) {
    size_t before = *points;
    geo_err e = check_node(qt, nd->child + c, idx, depth + 1, points, visited);
    if (e != GEO_OK) return e;
    const qt_node *cn = &qt->nodes[nd->child + c];
    if (cn->count != *points - before) return GEO_EFORMAT;
    if (cn->min_lat < nd->min_lat || cn->max_lat > nd->max_lat || cn->min_lng < nd->min_lng ||
        cn->max_lng > nd->max_lng)
      return GEO_EFORMAT;
    sum += cn->count;
  }
  return sum == nd->count ? GEO_OK : GEO_EFORMAT;
}

geo_err geo_quadtree_check(const geo_quadtree *qt) {
  if (qt == NULL) return GEO_EINVAL;
  size_t points = 0, visited = 0;
  geo_err e = check_node(qt, 0, NONE, 0, &points, &visited);
  if (e != GEO_OK) return e;
  if (points != qt->n || qt->nodes[0].count != qt->n) return GEO_EFORMAT;
  size_t used = 0;
  for (size_t i = 0; i < qt->tab_cap; i++) used += qt->tab[i] != TAB_EMPTY;
  return used == qt->n ? GEO_OK : GEO_EFORMAT;
}
