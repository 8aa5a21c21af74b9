/*
 * quadtree.c: the moving-point index behind geo/quadtree.h.
 *
 * Layout, chosen for cache misses (a search or a move at 1M drivers is bound by them, not by
 * arithmetic). Nodes refer to each other by 32-bit index. What a search reads is a 16-byte
 * hot node {first child, count, leaf memory}; an internal node's four children are
 * consecutive (south-west, south-east, north-west, north-east), so they fill one cache line,
 * and a search computes their boxes while descending. What only updates need (box, parent,
 * capacity, depth) is in a parallel cold array. Freed blocks of four go on a free list. A
 * leaf keeps its points in one allocation: a header with its box and capacity, then the
 * positions {lat, lng as int32 fixed-point 1e-7 degree} of 8 bytes, then the entries {id,
 * packed payload (ts_ms << 8 | state)} of 16 bytes: 24 bytes a slot, cap a multiple of 8. A
 * search scans positions only (eight points a cache line) and reads the entry lines of the k
 * points it returns; a move touches one position and one entry. An open-addressing table
 * (linear probing, 16-byte entries {id, node, slot}) maps id to its slot; it holds the id
 * itself, so a lookup reads no leaf line. The cold node record repeats a leaf's capacity next
 * to its box, so a move that stays in its leaf reads the table entry and node records (a few
 * hundred KB at 1M points, cache resident) and only writes its position and payload: one
 * dependent miss, then two stores. A move that leaves its leaf does not read the new leaf's
 * header either. Leaves hold up to 192 points: large enough that most 50 m moves of a driver
 * stay in their leaf at 1M drivers in a city, small enough that a kNN scans only two or three
 * of them. kNN and inserts descend from the entry node (the deepest holding every point, see
 * entry_cover), not from the root, whose cell is the globe.
 *
 * Searches first apply an integer rectangle prefilter (latitude and longitude gaps in fixed
 * point, derived from the current threshold, see set_thresh) to boxes and points, then the
 * lower bound of h below, then the exact distance. kNN goes straight down to the leaf whose
 * cell holds the query and scans it first (its siblings' positions on their way meanwhile),
 * then the siblings of the path's nodes bottom-up, until the prefilter rectangle fits in a
 * path node's cell. It computes exact distances first for the points a planar estimate puts
 * nearest, so that few are computed; ids and payloads are read only for the k points it
 * returns (ties of distance compare ids on the way). The leaf passes are branch-free, with
 * SSE2 where the compiler targets it (QT_SSE2).
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

/* SSE2 (every x86-64) for a few leaf passes; GEO_QT_SCALAR builds the plain C paths that
 * other architectures run (the tests build both). */
#if defined(__SSE2__) && !defined(GEO_QT_SCALAR)
#define QT_SSE2 1
#include <emmintrin.h>
#endif

#define NONE UINT32_MAX
#define FIX 1e7 /* fixed-point units per degree */
#define MERGE_MAX (GEO_QT_LEAF_MAX / 2)
#define SLOT_MAX 0xFFFFFFu /* 24 bits of slot in a table entry */
#define STACK_MAX (3 * GEO_QT_MAX_DEPTH + 8)
#define TS_LIMIT (INT64_C(1) << 55) /* ts_ms must lie in [-TS_LIMIT, TS_LIMIT) */
#define DEG2RAD GEO__DEG2RAD
#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* What searches read. */
typedef struct qt_node {
  uint32_t child;     /* first of 4 children, NONE for a leaf; free-list link when free */
  uint32_t count;     /* points in the subtree (for a leaf: points in mem) */
  unsigned char *mem; /* leaf storage, NULL for internal nodes and empty leaves */
} qt_node;

/* What only updates and checks read. */
typedef struct qt_meta {
  int32_t min_lat, max_lat, min_lng, max_lng; /* closed box, fixed-point */
  uint32_t parent;                            /* NONE for the root */
  uint32_t cap;                               /* leaf slots in mem (0 without mem) */
  uint32_t depth;
  uint32_t unused;
} qt_meta;

typedef struct qt_box {
  int32_t min_lat, max_lat, min_lng, max_lng;
} qt_box;

/* An id table entry: the id itself, so that a lookup needs no leaf line, and its place. */
typedef struct tab_ent {
  uint64_t id;
  uint32_t node; /* NONE: empty */
  uint32_t slot;
} tab_ent;

static const qt_box ROOT_BOX = {-900000000, 900000000, -1800000000, 1800000000};

struct geo_quadtree {
  qt_node *nodes; /* 64-byte aligned inside nodes_raw: a block of 4 is one cache line */
  void *nodes_raw;
  qt_meta *meta;
  uint32_t n_nodes, cap_nodes;
  uint32_t free4; /* free list of blocks of 4 nodes */
  tab_ent *tab;
  size_t tab_cap; /* any size below 2^32 (see tab_home) */
  size_t n;       /* points */
  size_t leaf_bytes;
  uint32_t entry; /* a node whose subtree holds every point (see entry_cover) */
};

/* ---- leaf storage ---------------------------------------------------------------- */

/* A leaf block starts with its box and capacity (what a search reads with the positions;
 * updates take both from the node arrays): header | positions [cap] | entries [cap]. */
typedef struct leaf_hdr {
  qt_box box;
  uint32_t cap;
  uint32_t unused;
} leaf_hdr;
#define SLOT_BYTES 24u
#define HDR_BYTES sizeof(leaf_hdr)
static inline size_t block_bytes(uint32_t cap) { return HDR_BYTES + (size_t)cap * SLOT_BYTES; }
static inline const leaf_hdr *L_hdr(const unsigned char *mem) {
  return (const leaf_hdr *)(const void *)mem;
}
static inline uint32_t mem_cap(const unsigned char *mem) { return mem ? L_hdr(mem)->cap : 0; }
/* A slot's position, what searches scan (a move finds it without reading the capacity),
 * and its entry: the id and the packed payload, read for results and by updates. */
typedef struct qt_pos {
  int32_t lat, lng;
} qt_pos;
typedef struct qt_ent {
  uint64_t id;
  uint64_t pl;
} qt_ent;
static inline qt_pos *L_pos(const unsigned char *mem) {
  return (qt_pos *)(void *)(mem + HDR_BYTES);
}
static inline qt_ent *L_ent(const unsigned char *mem, uint32_t cap) {
  return (qt_ent *)(void *)(mem + HDR_BYTES + sizeof(qt_pos) * cap);
}
/* A new leaf block of cap slots for the node with this box (NULL when out of memory). */
static unsigned char *block_new(qt_box box, uint32_t cap) {
  unsigned char *mem = geo__malloc(block_bytes(cap));
  if (mem) *(leaf_hdr *)(void *)mem = (leaf_hdr){box, cap, 0};
  return mem;
}

static uint32_t round8(uint32_t n) { return (n + 7u) & ~7u; }

static inline double fix_to_deg(int32_t v) { return (double)v / FIX; }
/* lround(d * FIX) (half away from zero) for |d * FIX| < 2^31, inline: the fraction left by
 * truncation is exact at this magnitude, so one correction step rounds. */
static inline int32_t deg_to_fix(double d) {
  double r = d * FIX;
  int64_t t = (int64_t)r;
  double frac = r - (double)t;
  return (int32_t)(t + (int64_t)(frac >= 0.5) - (int64_t)(frac <= -0.5));
}

static inline uint64_t pack_pl(geo_qt_payload pl) { return ((uint64_t)pl.ts_ms << 8) | pl.state; }
static inline geo_qt_payload unpack_pl(uint64_t v) {
  int64_t ts = (int64_t)(v >> 8);
  if (ts & TS_LIMIT) ts -= 2 * TS_LIMIT; /* sign-extend 56 bits */
  return (geo_qt_payload){(uint8_t)(v & 0xFFu), ts};
}

/* The id stored in slot s of leaf idx. */
static inline uint64_t slot_id(const geo_quadtree *qt, uint32_t idx, uint32_t s) {
  return L_ent(qt->nodes[idx].mem, qt->meta[idx].cap)[s].id;
}

/* ---- id table ---------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= UINT64_C(0xbf58476d1ce4e5b9);
  x ^= x >> 27;
  x *= UINT64_C(0x94d049bb133111eb);
  x ^= x >> 31;
  return x;
}

static inline bool tab_empty(const tab_ent *e) { return e->node == NONE; }

/* Where id's probe sequence starts in a table of cap entries: the high half of its hash scaled
 * to [0, cap) by a multiply and a shift (cap < 2^32), so that the capacity need not be a
 * power of two: growing by half keeps a table of 1M ids at 25.8 MB where doubling made it
 * 33.5 MB. */
static inline size_t tab_home(uint64_t id, size_t cap) {
  return (size_t)(((mix64(id) >> 32) * (uint64_t)cap) >> 32);
}
static inline size_t tab_next(size_t i, size_t cap) { return i + 1 == cap ? 0 : i + 1; }

/* Table index of id, or SIZE_MAX. */
static size_t tab_find(const geo_quadtree *qt, uint64_t id) {
  size_t i = tab_home(id, qt->tab_cap);
  for (;;) {
    const tab_ent *e = &qt->tab[i];
    if (e->id == id && !tab_empty(e)) return i;
    if (tab_empty(e)) return SIZE_MAX;
    i = tab_next(i, qt->tab_cap);
  }
}

static void tab_put_raw(tab_ent *tab, size_t cap, tab_ent e) {
  size_t i = tab_home(e.id, cap);
  while (!tab_empty(&tab[i])) i = tab_next(i, cap);
  tab[i] = e;
}

/* Point the existing entry of id at (node, slot). */
static void tab_set(geo_quadtree *qt, uint64_t id, uint32_t node, uint32_t slot) {
  size_t i = tab_find(qt, id);
  qt->tab[i].node = node;
  qt->tab[i].slot = slot;
}

/* Delete the entry at index i, shifting later entries of the cluster back (no tombstones). */
static void tab_delete(geo_quadtree *qt, size_t i) {
  size_t j = i;
  qt->tab[i].node = NONE;
  for (;;) {
    j = tab_next(j, qt->tab_cap);
    tab_ent e = qt->tab[j];
    if (tab_empty(&e)) return;
    size_t home = tab_home(e.id, qt->tab_cap);
    /* e stays if its home lies cyclically in (i, j]. */
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    qt->tab[i] = e;
    qt->tab[j].node = NONE;
    i = j;
  }
}

/* Make room for one more id: keep the load at most 0.7 (linear probing: about 1.8 probes a
 * lookup at the top of that, mostly in one cache line), growing by half. */
static geo_err tab_reserve(geo_quadtree *qt) {
  if ((qt->n + 1) * 10 <= qt->tab_cap * 7) return GEO_OK;
  size_t ncap = qt->tab_cap + qt->tab_cap / 2;
  if (ncap > UINT32_MAX || ncap > SIZE_MAX / sizeof(tab_ent)) return GEO_ENOMEM;
  tab_ent *t = geo__malloc(ncap * sizeof *t);
  if (t == NULL) return GEO_ENOMEM;
  geo__advise_huge(t, ncap * sizeof *t); /* every upsert reads one random entry */
  memset(t, 0xFF, ncap * sizeof *t);
  for (size_t i = 0; i < qt->tab_cap; i++) {
    if (!tab_empty(&qt->tab[i])) tab_put_raw(t, ncap, qt->tab[i]);
  }
  geo__free(qt->tab);
  qt->tab = t;
  qt->tab_cap = ncap;
  return GEO_OK;
}

/* ---- nodes --------------------------------------------------------------------------- */

static inline bool box_contains(const qt_box *b, int32_t lat, int32_t lng) {
  return lat >= b->min_lat && lat <= b->max_lat && lng >= b->min_lng && lng <= b->max_lng;
}
static inline const qt_box *meta_box(const qt_meta *m) { return (const qt_box *)(const void *)m; }

static inline int32_t mid32(int32_t lo, int32_t hi) { /* lo <= hi: a shift, no sign fix-up */
  return (int32_t)(lo + (int64_t)((uint64_t)((int64_t)hi - lo) >> 1));
}

static inline unsigned quadrant(const qt_box *b, int32_t lat, int32_t lng) {
  return (lat >= mid32(b->min_lat, b->max_lat) ? 2u : 0u) |
         (lng >= mid32(b->min_lng, b->max_lng) ? 1u : 0u);
}

/* Without branches: a search descends through random quadrants, so a branch per border
 * would be mispredicted half the time (about 13 levels per descent at 1M points). */
static inline qt_box child_box(const qt_box *b, unsigned q) {
  uint32_t mlat = (uint32_t)mid32(b->min_lat, b->max_lat),
           mlng = (uint32_t)mid32(b->min_lng, b->max_lng);
  uint32_t north = 0u - ((q >> 1) & 1u), east = 0u - (q & 1u); /* all ones or zero */
  qt_box c;
  c.min_lat = (int32_t)((mlat & north) | ((uint32_t)b->min_lat & ~north));
  c.max_lat = (int32_t)(((uint32_t)b->max_lat & north) | (mlat & ~north));
  c.min_lng = (int32_t)((mlng & east) | ((uint32_t)b->min_lng & ~east));
  c.max_lng = (int32_t)(((uint32_t)b->max_lng & east) | (mlng & ~east));
  return c;
}

/* An array of cap hot nodes aligned to 64 bytes (the raw block to free goes to *raw). */
static qt_node *nodes_alloc(uint32_t cap, void **raw) {
  unsigned char *r = geo__malloc((size_t)cap * sizeof(qt_node) + 64);
  if (r == NULL) return NULL;
  *raw = r;
  return (qt_node *)(void *)(r + ((64 - ((uintptr_t)r & 63u)) & 63u));
}

/* A block of 4 free nodes, from the free list or by growing the arrays (GEO_ENOMEM). */
static geo_err block_alloc(geo_quadtree *qt, uint32_t *out) {
  if (qt->free4 != NONE) {
    *out = qt->free4;
    qt->free4 = qt->nodes[qt->free4].child;
    return GEO_OK;
  }
  if (qt->n_nodes + 4 > qt->cap_nodes) {
    if (qt->cap_nodes > (NONE - 8) / 2) return GEO_ENOMEM;
    uint32_t ncap = qt->cap_nodes * 2;
    qt_meta *m =
        geo__realloc(qt->meta, (size_t)qt->cap_nodes * sizeof *m, (size_t)ncap * sizeof *m);
    if (m == NULL) return GEO_ENOMEM;
    qt->meta = m; /* larger than cap_nodes says until nodes grow too: harmless */
    void *raw;
    qt_node *p = nodes_alloc(ncap, &raw);
    if (p == NULL) return GEO_ENOMEM;
    memcpy(p, qt->nodes, (size_t)qt->n_nodes * sizeof *p);
    geo__free(qt->nodes_raw);
    qt->nodes = p;
    qt->nodes_raw = raw;
    qt->cap_nodes = ncap;
  }
  *out = qt->n_nodes;
  for (uint32_t i = 0; i < 4; i++) { /* so that free() and the free list see clean nodes */
    qt->nodes[qt->n_nodes + i] = (qt_node){NONE, 0, NULL};
    qt->meta[qt->n_nodes + i] = (qt_meta){0, 0, 0, 0, NONE, 0, 0, 0};
  }
  qt->n_nodes += 4;
  return GEO_OK;
}

static void block_release(geo_quadtree *qt, uint32_t b) {
  qt->nodes[b].child = qt->free4;
  qt->free4 = b;
}

static void copy_slot(unsigned char *dmem, uint32_t dcap, uint32_t d, const unsigned char *smem,
                      uint32_t scap, uint32_t s) {
  L_pos(dmem)[d] = L_pos(smem)[s];
  L_ent(dmem, dcap)[d] = L_ent(smem, scap)[s];
}

static void leaf_free_mem(geo_quadtree *qt, uint32_t idx) {
  if (qt->nodes[idx].mem) {
    qt->leaf_bytes -= block_bytes(mem_cap(qt->nodes[idx].mem));
    geo__free(qt->nodes[idx].mem);
  }
  qt->nodes[idx].mem = NULL;
  qt->meta[idx].cap = 0;
}

/* Give leaf idx room for one more point. */
static geo_err leaf_grow(geo_quadtree *qt, uint32_t idx) {
  uint32_t cap = mem_cap(qt->nodes[idx].mem);
  uint32_t ncap = cap < GEO_QT_LEAF_MAX ? cap + 8 : round8(cap + cap / 2);
  if (ncap > SLOT_MAX + 1u) ncap = SLOT_MAX + 1u;
  unsigned char *mem = block_new(*meta_box(&qt->meta[idx]), ncap);
  if (mem == NULL) return GEO_ENOMEM;
  for (uint32_t i = 0; i < qt->nodes[idx].count; i++)
    copy_slot(mem, ncap, i, qt->nodes[idx].mem, cap, i);
  leaf_free_mem(qt, idx);
  qt->nodes[idx].mem = mem;
  qt->meta[idx].cap = ncap;
  qt->leaf_bytes += block_bytes(ncap);
  return GEO_OK;
}

/* Split leaf idx into four children. On GEO_ENOMEM nothing changes. */
static geo_err leaf_split(geo_quadtree *qt, uint32_t idx) {
  uint32_t b;
  geo_err e = block_alloc(qt, &b);
  if (e != GEO_OK) return e;
  qt_box box = *meta_box(&qt->meta[idx]);
  const unsigned char *old = qt->nodes[idx].mem;
  uint32_t ocap = mem_cap(old), n = qt->nodes[idx].count;
  const qt_pos *osl = L_pos(old);
  uint32_t cnt[4] = {0, 0, 0, 0};
  for (uint32_t i = 0; i < n; i++) cnt[quadrant(&box, osl[i].lat, osl[i].lng)]++;
  unsigned char *mem[4] = {NULL, NULL, NULL, NULL};
  for (int q = 0; q < 4; q++) {
    if (cnt[q] == 0) continue;
    mem[q] = block_new(child_box(&box, (unsigned)q), round8(cnt[q]));
    if (mem[q] == NULL) {
      for (int r = 0; r < q; r++) geo__free(mem[r]);
      block_release(qt, b);
      return GEO_ENOMEM;
    }
  }
  for (uint32_t q = 0; q < 4; q++) {
    qt_box cb = child_box(&box, q);
    qt->nodes[b + q] = (qt_node){NONE, 0, mem[q]};
    qt->meta[b + q] = (qt_meta){cb.min_lat,
                                cb.max_lat,
                                cb.min_lng,
                                cb.max_lng,
                                idx,
                                mem[q] ? round8(cnt[q]) : 0,
                                qt->meta[idx].depth + 1,
                                0};
    if (mem[q]) qt->leaf_bytes += block_bytes(round8(cnt[q]));
  }
  for (uint32_t i = 0; i < n; i++) {
    uint32_t c = b + quadrant(&box, osl[i].lat, osl[i].lng);
    uint32_t s = qt->nodes[c].count++;
    copy_slot(qt->nodes[c].mem, mem_cap(qt->nodes[c].mem), s, old, ocap, i);
    tab_set(qt, L_ent(old, ocap)[i].id, c, s); /* reads the old leaf: still intact */
  }
  leaf_free_mem(qt, idx);
  qt->nodes[idx].child = b;
  return GEO_OK;
}

/* Merge the four leaf children of p into p; skipped (false) when memory is short. */
static bool try_merge_one(geo_quadtree *qt, uint32_t p) {
  uint32_t b = qt->nodes[p].child;
  for (uint32_t q = 0; q < 4; q++)
    if (qt->nodes[b + q].child != NONE) return false;
  uint32_t cap = round8(qt->nodes[p].count);
  unsigned char *mem = NULL;
  if (cap) {
    mem = block_new(*meta_box(&qt->meta[p]), cap);
    if (mem == NULL) return false;
    qt->leaf_bytes += block_bytes(cap);
  }
  qt->nodes[p].mem = mem;
  qt->meta[p].cap = cap;
  uint32_t s = 0;
  for (uint32_t q = 0; q < 4; q++) {
    uint32_t c = b + q;
    for (uint32_t i = 0; i < qt->nodes[c].count; i++, s++) {
      copy_slot(mem, cap, s, qt->nodes[c].mem, mem_cap(qt->nodes[c].mem), i);
      tab_set(qt, slot_id(qt, c, i), p, s);
    }
    leaf_free_mem(qt, c);
    qt->nodes[c].count = 0;
  }
  qt->nodes[p].child = NONE;
  block_release(qt, b);
  if (qt->entry - b < 4) qt->entry = p;
  return true;
}

static void merge_upwards(geo_quadtree *qt, uint32_t p) {
  while (p != NONE && qt->nodes[p].count <= MERGE_MAX && try_merge_one(qt, p))
    p = qt->meta[p].parent;
}

/* The entry node: kNN starts its descent there rather than at the root, and inserts theirs.
 * The root's cell is the whole globe, so a city's drivers sit a dozen single-child levels
 * down; from the entry a descent skips them. Invariant: every point lies in the entry's
 * subtree (its count is n). entry_cover raises it until its cell holds (lat, lng), before a
 * point lands there; entry_deepen lowers it while one child holds every point, after a point
 * was added or left; try_merge_one moves it to the merged node when it was one of the
 * children freed. */
static void entry_cover(geo_quadtree *qt, int32_t lat, int32_t lng) {
  while (!box_contains(meta_box(&qt->meta[qt->entry]), lat, lng))
    qt->entry = qt->meta[qt->entry].parent;
}

static void entry_deepen(geo_quadtree *qt) {
  while (qt->n > 0 && qt->nodes[qt->entry].child != NONE) {
    uint32_t b = qt->nodes[qt->entry].child, c = 0;
    while (c < 4 && qt->nodes[b + c].count != qt->n) c++;
    if (c == 4) return;
    qt->entry = b + c;
  }
}

/* Descend from start to the leaf that should take (lat, lng), splitting full leaves, and
 * make sure it has a free slot. Counts are not touched. */
static geo_err descend_reserve(geo_quadtree *qt, uint32_t start, int32_t lat, int32_t lng,
                               uint32_t *leaf) {
  uint32_t cur = start;
  qt_box box = *meta_box(&qt->meta[start]);
  for (;;) {
    const qt_node *nd = &qt->nodes[cur];
    if (nd->child != NONE) {
      unsigned q = quadrant(&box, lat, lng);
      box = child_box(&box, q);
      cur = nd->child + q;
      continue;
    }
    if (nd->count < GEO_QT_LEAF_MAX || qt->meta[cur].depth >= GEO_QT_MAX_DEPTH) break;
    geo_err e = leaf_split(qt, cur);
    if (e != GEO_OK) return e;
  }
  if (qt->nodes[cur].count > SLOT_MAX) return GEO_ERANGE;
  if (qt->nodes[cur].count == qt->meta[cur].cap) {
    geo_err e = leaf_grow(qt, cur);
    if (e != GEO_OK) return e;
  }
  *leaf = cur;
  return GEO_OK;
}

static uint32_t leaf_append(geo_quadtree *qt, uint32_t leaf, uint64_t id, int32_t lat, int32_t lng,
                            geo_qt_payload pl) {
  uint32_t s = qt->nodes[leaf].count;
  unsigned char *mem = qt->nodes[leaf].mem;
  uint32_t cap = qt->meta[leaf].cap;
  L_pos(mem)[s] = (qt_pos){lat, lng};
  L_ent(mem, cap)[s] = (qt_ent){id, pack_pl(pl)};
  return s;
}

/* Remove slot s of leaf (whose id's table entry is already gone or re-pointed): the last
 * point fills the hole. The leaf's count is not changed here. */
static void leaf_take_out(geo_quadtree *qt, uint32_t leaf, uint32_t s) {
  uint32_t last = qt->nodes[leaf].count - 1;
  if (s != last) {
    unsigned char *mem = qt->nodes[leaf].mem;
    uint32_t cap = qt->meta[leaf].cap;
    copy_slot(mem, cap, s, mem, cap, last);
    tab_set(qt, slot_id(qt, leaf, s), leaf, s); /* the copy at `last` still names it */
  }
}

/* ---- public: lifecycle and updates ---------------------------------------------------- */

geo_err geo_quadtree_new(geo_quadtree **out) {
  if (out == NULL) return GEO_EINVAL;
  geo_quadtree *qt = geo__calloc(1, sizeof *qt);
  if (qt == NULL) return GEO_ENOMEM;
  qt->cap_nodes = 64;
  qt->nodes = nodes_alloc(qt->cap_nodes, &qt->nodes_raw);
  qt->meta = geo__malloc((size_t)qt->cap_nodes * sizeof *qt->meta);
  qt->tab_cap = 64;
  qt->tab = geo__malloc(qt->tab_cap * sizeof *qt->tab);
  if (qt->nodes == NULL || qt->meta == NULL || qt->tab == NULL) {
    geo__free(qt->nodes_raw);
    geo__free(qt->meta);
    geo__free(qt->tab);
    geo__free(qt);
    return GEO_ENOMEM;
  }
  memset(qt->tab, 0xFF, qt->tab_cap * sizeof *qt->tab);
  /* The root is node 0 and 1..3 stay unused, so every block of 4 children starts at a
   * multiple of 4: one aligned cache line. */
  qt->n_nodes = 4;
  qt->free4 = NONE;
  for (uint32_t i = 0; i < 4; i++) {
    qt->nodes[i] = (qt_node){NONE, 0, NULL};
    qt->meta[i] = (qt_meta){0, 0, 0, 0, NONE, 0, 0, 0};
  }
  qt->meta[0] = (qt_meta){
      ROOT_BOX.min_lat, ROOT_BOX.max_lat, ROOT_BOX.min_lng, ROOT_BOX.max_lng, NONE, 0, 0, 0};
  *out = qt;
  return GEO_OK;
}

void geo_quadtree_free(geo_quadtree *qt) {
  if (qt == NULL) return;
  for (uint32_t i = 0; i < qt->n_nodes; i++) geo__free(qt->nodes[i].mem);
  geo__free(qt->nodes_raw);
  geo__free(qt->meta);
  geo__free(qt->tab);
  geo__free(qt);
}

geo_err geo_quadtree_upsert(geo_quadtree *qt, uint64_t id, geo_latlng pos, geo_qt_payload pl) {
  if (qt == NULL || !geo_latlng_is_valid(pos) || pl.ts_ms < -TS_LIMIT || pl.ts_ms >= TS_LIMIT)
    return GEO_EINVAL;
  int32_t lat = deg_to_fix(pos.lat), lng = deg_to_fix(pos.lng);
  size_t ti = tab_find(qt, id);
  if (ti != SIZE_MAX) {
    uint32_t leaf = qt->tab[ti].node, s = qt->tab[ti].slot;
    unsigned char *mem = qt->nodes[leaf].mem;
    const qt_meta *mt = &qt->meta[leaf];
    /* The common case: the box and capacity from the node arrays, then two stores. */
    if (box_contains(meta_box(mt), lat, lng)) {
      uint32_t cap = mt->cap;
      L_pos(mem)[s] = (qt_pos){lat, lng};
      L_ent(mem, cap)[s].pl = pack_pl(pl);
      return GEO_OK;
    }
    /* Leaving the leaf: the last point will fill the hole and its table entry be re-pointed;
     * start that miss now so it overlaps the descent to the new leaf. */
    uint32_t last = qt->nodes[leaf].count - 1;
    if (s != last) PREFETCH(&qt->tab[tab_home(L_ent(mem, mt->cap)[last].id, qt->tab_cap)]);
    entry_cover(qt, lat, lng);
    uint32_t anc = qt->meta[leaf].parent;
    while (!box_contains(meta_box(&qt->meta[anc]), lat, lng)) anc = qt->meta[anc].parent;
    uint32_t target;
    geo_err e = descend_reserve(qt, anc, lat, lng, &target); /* never reaches `leaf` */
    if (e != GEO_OK) return e;
    uint32_t ns = leaf_append(qt, target, id, lat, lng, pl);
    for (uint32_t x = target; x != anc; x = qt->meta[x].parent) qt->nodes[x].count++;
    qt->tab[ti].node = target;
    qt->tab[ti].slot = ns;
    leaf_take_out(qt, leaf, s);
    for (uint32_t x = leaf; x != anc; x = qt->meta[x].parent) qt->nodes[x].count--;
    if (qt->nodes[leaf].count == 0) leaf_free_mem(qt, leaf);
    merge_upwards(qt, qt->meta[leaf].parent);
    entry_deepen(qt);
    return GEO_OK;
  }
  geo_err e = tab_reserve(qt);
  if (e != GEO_OK) return e;
  entry_cover(qt, lat, lng);
  uint32_t target;
  e = descend_reserve(qt, qt->entry, lat, lng, &target);
  if (e != GEO_OK) return e;
  uint32_t ns = leaf_append(qt, target, id, lat, lng, pl);
  for (uint32_t x = target; x != NONE; x = qt->meta[x].parent) qt->nodes[x].count++;
  tab_put_raw(qt->tab, qt->tab_cap, (tab_ent){id, target, ns});
  qt->n++;
  entry_deepen(qt);
  return GEO_OK;
}

geo_err geo_quadtree_set_payload(geo_quadtree *qt, uint64_t id, geo_qt_payload pl) {
  if (qt == NULL || pl.ts_ms < -TS_LIMIT || pl.ts_ms >= TS_LIMIT) return GEO_EINVAL;
  size_t ti = tab_find(qt, id);
  if (ti == SIZE_MAX) return GEO_ENOTFOUND;
  uint32_t leaf = qt->tab[ti].node, s = qt->tab[ti].slot;
  L_ent(qt->nodes[leaf].mem, qt->meta[leaf].cap)[s].pl = pack_pl(pl);
  return GEO_OK;
}

geo_err geo_quadtree_remove(geo_quadtree *qt, uint64_t id) {
  if (qt == NULL) return GEO_EINVAL;
  size_t ti = tab_find(qt, id);
  if (ti == SIZE_MAX) return GEO_ENOTFOUND;
  uint32_t leaf = qt->tab[ti].node, s = qt->tab[ti].slot;
  tab_delete(qt, ti);
  leaf_take_out(qt, leaf, s);
  for (uint32_t x = leaf; x != NONE; x = qt->meta[x].parent) qt->nodes[x].count--;
  if (qt->nodes[leaf].count == 0) leaf_free_mem(qt, leaf);
  qt->n--;
  merge_upwards(qt, qt->meta[leaf].parent);
  entry_deepen(qt);
  return GEO_OK;
}

static inline geo_qt_point point_at(const unsigned char *mem, uint32_t cap, uint32_t s) {
  geo_qt_point p;
  const qt_ent *e = &L_ent(mem, cap)[s];
  p.id = e->id;
  p.pos = (geo_latlng){fix_to_deg(L_pos(mem)[s].lat), fix_to_deg(L_pos(mem)[s].lng)};
  p.payload = unpack_pl(e->pl);
  return p;
}

geo_err geo_quadtree_get(const geo_quadtree *qt, uint64_t id, geo_qt_point *out) {
  if (qt == NULL || out == NULL) return GEO_EINVAL;
  size_t ti = tab_find(qt, id);
  if (ti == SIZE_MAX) return GEO_ENOTFOUND;
  uint32_t leaf = qt->tab[ti].node;
  *out = point_at(qt->nodes[leaf].mem, qt->meta[leaf].cap, qt->tab[ti].slot);
  return GEO_OK;
}

size_t geo_quadtree_count(const geo_quadtree *qt) { return qt ? qt->n : 0; }

size_t geo_quadtree_memory_bytes(const geo_quadtree *qt) {
  if (qt == NULL) return 0;
  return sizeof *qt + 64 + (size_t)qt->cap_nodes * (sizeof(qt_node) + sizeof(qt_meta)) +
         qt->tab_cap * sizeof(tab_ent) + qt->leaf_bytes;
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
  geo__hav_origin o; /* q prepared for geo__hav_m */
  double cos_q;
  double thresh_h;    /* prune when a lower bound of h exceeds this */
  int64_t qlat, qlng; /* q rounded to fixed point */
  int64_t tlat, tlng; /* rectangle prefilter (fixed point), INT64_MAX when off */
} search;

/* Half an angle in radians per fixed-point unit. */
#define HALF_RAD_PER_FIX (1e-7 * DEG2RAD * 0.5)
#define FIX_180 INT64_C(1800000000)
#define FIX_360 INT64_C(3600000000)

/* h-space threshold for "distance <= d", with the safety margin. */
static double thresh_for(double d) {
  if (!isfinite(d)) return INFINITY;
  double x = (d * (1.0 + 1e-9) + 1e-6) / (2.0 * GEO_EARTH_RADIUS_M);
  return x * x;
}

/* Set the threshold and derive the integer rectangle prefilter from it: a point (or box)
 * whose latitude gap to q exceeds tlat, or whose longitude gap (the short way round)
 * exceeds tlng, has h > t. Why: for a half-angle x <= 0.05 rad, sin x >= x - x^3/6 >=
 * 0.9995 x, and for 0.05 < x <= pi/2, sin x >= sin 0.05 > 0.049; a gap above
 * sqrt(t) / (0.999 K) units (K: half-radians per unit), plus 2 units for rounding q, therefore
 * gives sin^2 > t for latitude. For longitude the factor cos(lat_q) cos(lat_p) is bounded
 * below over the latitude band the latitude test lets through. The filter is off when
 * sqrt(t) (or sqrt(t / that factor)) is not below 0.049, so it only ever rejects what the
 * exact bound would reject. */
static void set_thresh(search *sq, double t) {
  sq->thresh_h = t;
  sq->tlat = sq->tlng = INT64_MAX;
  if (!(t < 0.049 * 0.049)) return; /* also INFINITY */
  sq->tlat = (int64_t)ceil(sqrt(t) / (0.999 * HALF_RAD_PER_FIX)) + 2;
  double band_deg = fabs(sq->q.lat) + (double)(sq->tlat + 1) * 1e-7;
  if (band_deg >= 90.0) return;
  double cc = sq->cos_q * cos_lb(band_deg * DEG2RAD);
  if (!(cc > 0)) return;
  double r = sqrt(t / cc);
  if (!(r < 0.049)) return;
  sq->tlng = (int64_t)ceil(r / (0.999 * HALF_RAD_PER_FIX)) + 2;
}

static void search_init(search *sq, geo_latlng q, double dist_m) {
  sq->q = q;
  sq->o = geo__hav_origin_of(q);
  sq->cos_q = sq->o.cos_a;
  sq->qlat = deg_to_fix(q.lat);
  sq->qlng = deg_to_fix(q.lng);
  set_thresh(sq, thresh_for(dist_m));
}

static inline int64_t lng_gap(int64_t a, int64_t b) {
  int64_t d = a > b ? a - b : b - a;
  return d > FIX_180 ? FIX_360 - d : d;
}

/* Fixed-point gaps from q to a latitude band [lo, hi] and to a longitude span [lo, hi] (the
 * short way round), 0 inside. Selects, not branches: searches test boxes on every side of q. */
static inline int64_t lat_band_gap(const search *sq, int32_t lo, int32_t hi) {
  int64_t above = sq->qlat - hi, below = lo - sq->qlat; /* one at most > 0 */
  return (above > 0 ? above : 0) + (below > 0 ? below : 0);
}
static inline int64_t lng_span_gap(const search *sq, int32_t lo, int32_t hi) {
  int64_t w = lng_gap(sq->qlng, lo), e = lng_gap(sq->qlng, hi);
  int64_t g = w < e ? w : e;
  int64_t outside = (sq->qlng < lo) | (sq->qlng > hi);
  return g & -outside;
}

/* Fixed-point gaps from q to a box (0 inside). */
static inline void box_gaps(const search *sq, const qt_box *b, int64_t *glat, int64_t *glng) {
  *glat = lat_band_gap(sq, b->min_lat, b->max_lat);
  *glng = lng_span_gap(sq, b->min_lng, b->max_lng);
}

/* True when the rectangle prefilter proves every point of the box too far. */
static inline bool box_far(const search *sq, const qt_box *b) {
  int64_t glat, glng;
  box_gaps(sq, b, &glat, &glng);
  return glat > sq->tlat || glng > sq->tlng;
}

/* True when q lies in box and every point outside the box's open interior is rejected by
 * the rectangle prefilter (its latitude or longitude gap exceeds tlat or tlng). A point
 * outside the interior has a coordinate at or beyond a border, and (for longitude, the
 * short way round) its gap is at least the gap from q to that border. */
static inline bool rect_inside(const search *sq, const qt_box *b) {
  if (sq->tlat == INT64_MAX || sq->tlng == INT64_MAX) return false;
  return sq->qlat - b->min_lat > sq->tlat && b->max_lat - sq->qlat > sq->tlat &&
         sq->qlng - b->min_lng > sq->tlng && b->max_lng - sq->qlng > sq->tlng;
}

/* Lower bound of h over a box (0 when q is inside). */
static double box_lb_h(const search *sq, const qt_box *b) {
  double minlat = b->min_lat * 1e-7, maxlat = b->max_lat * 1e-7;
  double minlng = b->min_lng * 1e-7, maxlng = b->max_lng * 1e-7;
  double dphi = 0, dlam = 0;
  if (sq->q.lat > maxlat)
    dphi = sq->q.lat - maxlat;
  else if (sq->q.lat < minlat)
    dphi = minlat - sq->q.lat;
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

/* Lower bound of h for one point, given cc = cos(lat_q) times the leaf's smallest cos(lat). */
static inline double point_lb_h(const search *sq, double cc, int32_t lat, int32_t lng) {
  double dphi = fabs(lat * 1e-7 - sq->q.lat);
  double dlam = fabs(lng * 1e-7 - sq->q.lng);
  if (dlam > 180.0) dlam = 360.0 - dlam;
  double s1 = sin_lb(dphi * (DEG2RAD * 0.5)), s2 = sin_lb(dlam * (DEG2RAD * 0.5));
  return s1 * s1 + cc * s2 * s2;
}

static double leaf_cc(const search *sq, const qt_box *b) {
  double a1 = fabs(b->min_lat * 1e-7), a2 = fabs(b->max_lat * 1e-7);
  return sq->cos_q * cos_lb((a1 > a2 ? a1 : a2) * DEG2RAD);
}

/* A leaf point that passed both bounds, waiting for its exact distance. */
typedef struct cand {
  double lb;
  uint32_t i;
} cand;
#define CHUNK 256 /* leaf points considered at a time (a deepest leaf can hold millions) */

/* 1 when the rectangle prefilter does not rule point p out, else 0 (a value, not a branch:
 * whether a point passes is as good as random to the predictor). */
static inline uint32_t rect_keeps(const search *sq, const qt_pos *p) {
  int64_t dla = (int64_t)p->lat - sq->qlat;
  dla = dla < 0 ? -dla : dla;
  return (uint32_t)((dla <= sq->tlat) & (lng_gap(p->lng, sq->qlng) <= sq->tlng));
}

/* The indices among idx[0, n) (points of sl) that the rectangle prefilter does not rule out,
 * compacted in place without branches: each index is written and the count advances by the
 * test's outcome. Returns how many. */
static uint32_t rect_pass(const search *sq, const qt_pos *sl, uint32_t *idx, uint32_t n) {
  uint32_t m = 0;
  for (uint32_t j = 0; j < n; j++) {
    uint32_t i = idx[j];
    idx[m] = i;
    m += rect_keeps(sq, &sl[i]);
  }
  return m;
}

/* True when every point of box is within half a turn of q's longitude without going round
 * the antimeridian: then the short-way longitude gap of any of its points is the plain
 * difference, which fits in 32 bits, and the vector passes below apply. */
static inline bool box_unwrapped(const search *sq, const qt_box *b) {
  return b->max_lng - sq->qlng <= FIX_180 && sq->qlng - b->min_lng <= FIX_180;
}

static inline unsigned ctz64(uint64_t x) { /* x != 0 */
#if defined(__GNUC__)
  return (unsigned)__builtin_ctzll(x);
#else
  unsigned n = 0;
  while (!(x & 1u)) {
    x >>= 1;
    n++;
  }
  return n;
#endif
}

/* Set bit j of bits (words of 64) for each point from + j of [from, to) that the rectangle
 * prefilter does not rule out; bits must hold (to - from + 63) / 64 words. Four points at a
 * time with SSE2 when the box is unwrapped: |d| <= t, for the difference d of a coordinate
 * and 0 <= t < 2^31, is (uint32)(d + t) <= 2t, a signed comparison after adding 2^31 to
 * both sides (d + t never wraps 32 bits; a larger t is clamped, which only keeps more). */
static void rect_bits(const search *sq, const qt_box *box, const qt_pos *sl, uint32_t from,
                      uint32_t to, uint64_t *bits) {
  const uint32_t m = to - from;
  for (uint32_t w = 0; w < (m + 63) / 64; w++) bits[w] = 0;
  uint32_t j = 0;
#if defined(QT_SSE2)
  if (box_unwrapped(sq, box)) {
    uint32_t tla = sq->tlat < INT32_MAX ? (uint32_t)sq->tlat : (uint32_t)INT32_MAX;
    uint32_t tlo = sq->tlng < INT32_MAX ? (uint32_t)sq->tlng : (uint32_t)INT32_MAX;
    uint32_t cla = tla - (uint32_t)sq->qlat + 0x80000000u;
    uint32_t clo = tlo - (uint32_t)sq->qlng + 0x80000000u;
    const __m128i add = _mm_set_epi32((int)clo, (int)cla, (int)clo, (int)cla);
    const __m128i lim = _mm_set_epi32((int)(2u * tlo + 0x80000000u), (int)(2u * tla + 0x80000000u),
                                      (int)(2u * tlo + 0x80000000u), (int)(2u * tla + 0x80000000u));
    const qt_pos *p = sl + from;
    for (; j + 4 <= m; j += 4) { /* two positions {lat, lng} a vector */
      __m128i pa = _mm_loadu_si128((const __m128i *)(const void *)&p[j]);
      __m128i pb = _mm_loadu_si128((const __m128i *)(const void *)&p[j + 2]);
      __m128i fa = _mm_cmpgt_epi32(_mm_add_epi32(pa, add), lim);
      __m128i fb = _mm_cmpgt_epi32(_mm_add_epi32(pb, add), lim);
      fa = _mm_or_si128(fa, _mm_srli_epi64(fa, 32)); /* a point fails on either coordinate */
      fb = _mm_or_si128(fb, _mm_srli_epi64(fb, 32));
      unsigned fail = (unsigned)_mm_movemask_ps(
          _mm_shuffle_ps(_mm_castsi128_ps(fa), _mm_castsi128_ps(fb), _MM_SHUFFLE(2, 0, 2, 0)));
      bits[j >> 6] |= (uint64_t)(~fail & 15u) << (j & 63);
    }
  }
#else
  (void)box;
#endif
  for (; j < m; j++) bits[j >> 6] |= (uint64_t)rect_keeps(sq, &sl[from + j]) << (j & 63);
}

/* Scan points [from, to) of a leaf with this box into c: those the rectangle prefilter and
 * the lower bound of h do not rule out. Returns how many. */
static uint32_t leaf_candidates(const search *sq, const qt_box *box, double cc, const qt_pos *sl,
                                uint32_t from, uint32_t to, cand *c) {
  uint64_t bits[CHUNK / 64];
  rect_bits(sq, box, sl, from, to, bits);
  uint32_t m = 0;
  for (uint32_t w = 0; w < (to - from + 63) / 64; w++)
    for (uint64_t b = bits[w]; b; b &= b - 1) {
      uint32_t i = from + w * 64 + ctz64(b);
      double lb = point_lb_h(sq, cc, sl[i].lat, sl[i].lng);
      if (lb > sq->thresh_h) continue;
      c[m++] = (cand){lb, i};
    }
  return m;
}

/* Reorder c[0, m) so that c[0, r) hold r smallest lower bounds (r < m), in no order. */
static void cand_select(cand *c, uint32_t m, uint32_t r) {
  uint32_t lo = 0, hi = m;
  while (hi - lo > 1) {
    double piv = c[lo + (hi - lo) / 2].lb;
    uint32_t lt = lo, i = lo, gt = hi;
    while (i < gt) { /* [lo, lt) < piv, [lt, i) == piv, [gt, hi) > piv */
      if (c[i].lb < piv) {
        cand t = c[lt];
        c[lt++] = c[i];
        c[i++] = t;
      } else if (c[i].lb > piv) {
        cand t = c[--gt];
        c[gt] = c[i];
        c[i] = t;
      } else {
        i++;
      }
    }
    if (r < lt)
      hi = lt;
    else if (r <= gt)
      return;
    else
      lo = gt;
  }
}

/* The same for small r (the usual k - n of a kNN): keep c[0, r) as the r best so far, sorted,
 * and insert only what beats the r-th. After the first few points that test is almost
 * always false and well predicted, where the partitions above mispredict half their
 * branches; about r ln(m / r) insertions. */
static void cand_select_small(cand *c, uint32_t m, uint32_t r) {
  for (uint32_t i = 1; i < r; i++) {
    cand t = c[i];
    uint32_t j = i;
    for (; j > 0 && c[j - 1].lb > t.lb; j--) c[j] = c[j - 1];
    c[j] = t;
  }
  for (uint32_t i = r; i < m; i++) {
    if (!(c[i].lb < c[r - 1].lb)) continue;
    cand t = c[i];
    c[i] = c[r - 1];
    uint32_t j = r - 1;
    for (; j > 0 && c[j - 1].lb > t.lb; j--) c[j] = c[j - 1];
    c[j] = t;
  }
}

/* While a kNN runs, a heap entry's point.payload.ts_ms holds the address of the point's
 * entry {id, payload} in its leaf, and point.id is not set: the k results' entries are read
 * at the end, those of points pushed out later never (see knn_offer). */
static inline const qt_ent *hit_ent(const geo_qt_hit *h) {
  return (const qt_ent *)(intptr_t)h->point.payload.ts_ms;
}

/* (d, id) order: true when a is strictly worse (farther) than b. Which of two candidates is
 * farther is a coin toss to the branch predictor, so that is a value, not a branch; only equal
 * distances (rare: duplicates) branch off to read the ids. */
static inline bool hit_worse(const geo_qt_hit *a, const geo_qt_hit *b) {
  if (a->dist_m == b->dist_m) return hit_ent(a)->id > hit_ent(b)->id;
  return a->dist_m > b->dist_m;
}

/* Move h[i] down to its place in the max-heap h[0, n): the worse child is chosen without a
 * branch, and the hole moves down instead of swapping whole entries. */
static void heap_sift_down(geo_qt_hit *h, size_t n, size_t i) {
  geo_qt_hit x = h[i];
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= n) break;
    size_t r = l + (size_t)(l + 1 < n); /* the right child, or l again when there is none */
    size_t c = l + (size_t)hit_worse(&h[r], &h[l]);
    if (!hit_worse(&h[c], &x)) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = x;
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
  qt_box box;
} stack_item;

/* Up to this k the best so far are kept unordered, the worst found again by a scan of k after
 * each replacement (a few selects, where a heap's sift mispredicts about every other level);
 * a max-heap on (d, id) above it. */
#define SCAN_K 16

/* The state of one k-nearest search. */
typedef struct knn_state {
  search sq;
  size_t k, n;
  double max_dist_m;
  geo_qt_filter filter;
  void *filter_ud;
  geo_qt_hit *out;   /* the n best so far: see scan */
  size_t worst;      /* out[worst] is the worst of them (0 for a heap) */
  bool scan;         /* k <= SCAN_K: out is unordered and worst found by a scan, else a heap */
  double dk[SCAN_K]; /* scan mode: out[i].dist_m, -inf past n (what arg_worst reads) */
  bool rect_stale;   /* thresh_h tightened since the rectangle prefilter was derived */
} knn_state;

/* Index of the worst of the k entries of a full scan-mode result (see knn_state.dk): the
 * largest distance, then the largest id among those at that distance. Which entry holds the
 * largest distance is random, so this selects rather than branches (two lanes at a time with
 * SSE2); only a tie at the top (rare: duplicates) takes a branch. */
static size_t arg_worst(const knn_state *ks) {
  const double *dk = ks->dk;
  const size_t n = (ks->k + 1) & ~(size_t)1; /* k <= SCAN_K, rounded up to even: -inf pads */
  uint32_t at_top = 0;                       /* bit i: dk[i] is the largest */
#if defined(QT_SSE2)
  __m128d mx = _mm_loadu_pd(dk);
  for (size_t j = 2; j < n; j += 2) mx = _mm_max_pd(mx, _mm_loadu_pd(dk + j));
  mx = _mm_max_pd(mx, _mm_unpackhi_pd(mx, mx));
  mx = _mm_unpacklo_pd(mx, mx);
  for (size_t j = 0; j < n; j += 2)
    at_top |= (uint32_t)_mm_movemask_pd(_mm_cmpeq_pd(_mm_loadu_pd(dk + j), mx)) << j;
#else
  double top = dk[0];
  for (size_t i = 1; i < n; i++) top = dk[i] > top ? dk[i] : top;
  for (size_t i = 0; i < n; i++) at_top |= (uint32_t)(dk[i] == top) << i;
#endif
  size_t w = ctz64(at_top);
  if (at_top & (at_top - 1))
    for (size_t i = w + 1; i < n; i++)
      if ((at_top >> i & 1u) && hit_ent(&ks->out[i])->id > hit_ent(&ks->out[w])->id) w = i;
  return w;
}

/* The heap's worst distance went down: tighten thresh_h at once (the leaf scan compares
 * against it), and derive the rectangle prefilter (two square roots) only when the next
 * rectangle test needs it: a leaf's offers often tighten the threshold several times. */
static inline void knn_tighten(knn_state *ks) {
  ks->sq.thresh_h = thresh_for(ks->out[ks->worst].dist_m);
  ks->rect_stale = true;
}

static inline void knn_rect(knn_state *ks) {
  if (!ks->rect_stale) return;
  set_thresh(&ks->sq, ks->sq.thresh_h);
  ks->rect_stale = false;
}

/* Offer point i of a leaf to the heap: exact distance first, then (only if it would enter)
 * the filter. Without a filter the point's entry (id, payload) is not read here, see
 * hit_ent. */
static void knn_offer(knn_state *ks, const unsigned char *mem, uint32_t cap, uint32_t i) {
  geo_qt_hit hit;
  const qt_pos *p = &L_pos(mem)[i];
  const qt_ent *e = &L_ent(mem, cap)[i];
  hit.point.id = 0;
  hit.point.pos = (geo_latlng){fix_to_deg(p->lat), fix_to_deg(p->lng)};
  hit.point.payload = (geo_qt_payload){0, (int64_t)(intptr_t)e};
  hit.dist_m = geo__hav_m(&ks->sq.o, hit.point.pos);
  if (hit.dist_m > ks->max_dist_m) return;
  if (ks->n == ks->k && !hit_worse(&ks->out[ks->worst], &hit)) return;
  if (ks->filter) {
    geo_qt_point pt = {e->id, hit.point.pos, unpack_pl(e->pl)};
    if (!ks->filter(&pt, ks->filter_ud)) return;
  }
  PREFETCH(e); /* it enters the heap: start the miss that reading the results would take */
  if (ks->n < ks->k) {
    ks->out[ks->n] = hit;
    if (ks->scan)
      ks->dk[ks->n++] = hit.dist_m;
    else
      heap_sift_up(ks->out, ks->n++);
    if (ks->n == ks->k) {
      if (ks->scan) ks->worst = arg_worst(ks);
      knn_tighten(ks);
    }
  } else {
    ks->out[ks->worst] = hit;
    if (ks->scan) {
      ks->dk[ks->worst] = hit.dist_m;
      ks->worst = arg_worst(ks);
    } else {
      heap_sift_down(ks->out, ks->n, 0);
    }
    knn_tighten(ks);
  }
}

/* Offer the points idx[0, n) of a leaf that the exact bounds (rectangle prefilter, then the
 * lower bound of h) do not rule out against the heap's current threshold. idx is reused. */
static void knn_offer_bounded(knn_state *ks, const unsigned char *mem, uint32_t cap, double cc,
                              uint32_t *idx, uint32_t n) {
  if (n == 0) return;
  knn_rect(ks);
  const qt_pos *sl = L_pos(mem);
  n = rect_pass(&ks->sq, sl, idx, n);
  for (uint32_t j = 0; j < n; j++)
    if (point_lb_h(&ks->sq, cc, sl[idx[j]].lat, sl[idx[j]].lng) <= ks->sq.thresh_h)
      knn_offer(ks, mem, cap, idx[j]);
}

/* Rank points [from, to) of a leaf by a cheap planar key (squared fixed-point gaps, the
 * longitude one scaled by cos(lat_q)): an estimate used only to choose which points to offer
 * first while the heap is not full, never to rule a point out. */
static uint32_t leaf_keys(const search *sq, const qt_pos *sl, uint32_t from, uint32_t to, cand *c) {
  const int64_t qlat = sq->qlat, qlng = sq->qlng;
  const double cq = sq->cos_q;
  for (uint32_t i = from; i < to; i++) {
    double dla = (double)((int64_t)sl[i].lat - qlat);
    double dlo = (double)lng_gap(sl[i].lng, qlng) * cq;
    c[i - from] = (cand){dla * dla + dlo * dlo, i};
  }
  return to - from;
}

/* How many of dd[0, n) (n even) are below x, and how many equal it. */
static inline void rank_of(const double *dd, size_t n, double x, uint32_t *lt, uint32_t *eq) {
#if defined(QT_SSE2)
  __m128d vx = _mm_set1_pd(x);
  __m128i l = _mm_setzero_si128(), e = _mm_setzero_si128();
  for (size_t j = 0; j < n; j += 2) { /* a true comparison is all ones, i.e. -1 */
    __m128d v = _mm_loadu_pd(dd + j);
    l = _mm_sub_epi64(l, _mm_castpd_si128(_mm_cmplt_pd(v, vx)));
    e = _mm_sub_epi64(e, _mm_castpd_si128(_mm_cmpeq_pd(v, vx)));
  }
  l = _mm_add_epi64(l, _mm_unpackhi_epi64(l, l));
  e = _mm_add_epi64(e, _mm_unpackhi_epi64(e, e));
  *lt = (uint32_t)_mm_cvtsi128_si32(l);
  *eq = (uint32_t)_mm_cvtsi128_si32(e);
#else
  uint32_t r = 0, c = 0;
  for (size_t j = 0; j < n; j++) {
    r += (uint32_t)(dd[j] < x);
    c += (uint32_t)(dd[j] == x);
  }
  *lt = r;
  *eq = c;
#endif
}

/* Planar keys of points [from, to) of a leaf with this box into key[0, to - from): squared
 * fixed-point gaps to q, the longitude one (the short way round) scaled by cos(lat_q). Only an
 * estimate of the order, never used to rule a point out. In doubles (fixed-point values and
 * their differences are exact there), two points a vector with SSE2 when the box is unwrapped
 * (then the short way round is the plain difference). */
static void fill_keys(const search *sq, const qt_box *box, const qt_pos *sl, uint32_t from,
                      uint32_t to, double *key) {
  const uint32_t m = to - from;
  const qt_pos *p = sl + from;
  const double qlat = (double)sq->qlat, qlng = (double)sq->qlng, cq = sq->cos_q;
  uint32_t j = 0;
#if defined(QT_SSE2)
  if (box_unwrapped(sq, box)) {
    const __m128d q = _mm_set_pd(qlng, qlat), w = _mm_set_pd(cq, 1.0);
    for (; j + 2 <= m; j += 2) { /* two positions {lat, lng}; cvtepi32_pd takes the low one */
      __m128i v = _mm_loadu_si128((const __m128i *)(const void *)&p[j]);
      __m128d a = _mm_mul_pd(_mm_sub_pd(_mm_cvtepi32_pd(v), q), w);
      __m128d b = _mm_mul_pd(_mm_sub_pd(_mm_cvtepi32_pd(_mm_srli_si128(v, 8)), q), w);
      a = _mm_mul_pd(a, a);
      b = _mm_mul_pd(b, b);
      _mm_storeu_pd(key + j, _mm_add_pd(_mm_unpacklo_pd(a, b), _mm_unpackhi_pd(a, b)));
    }
  }
#else
  (void)box;
#endif
  for (; j < m; j++) {
    double y = (double)p[j].lat - qlat, x = fabs((double)p[j].lng - qlng);
    x = x > (double)FIX_180 ? (double)FIX_360 - x : x;
    x *= cq;
    key[j] = y * y + x * x;
  }
}

static inline uint32_t popcount64(uint64_t x) {
#if defined(__GNUC__)
  return (uint32_t)__builtin_popcountll(x);
#else
  uint32_t n = 0;
  for (; x; x &= x - 1) n++;
  return n;
#endif
}

/* Set bit j of bits for each key[j] <= t, j < m; returns how many. */
static uint32_t keys_at_most(const double *key, uint32_t m, double t, uint64_t *bits) {
  uint32_t j = 0, n = 0;
  for (uint32_t w = 0; w < (m + 63) / 64; w++) bits[w] = 0;
#if defined(QT_SSE2)
  const __m128d vt = _mm_set1_pd(t);
  for (; j + 2 <= m; j += 2)
    bits[j >> 6] |= (uint64_t)_mm_movemask_pd(_mm_cmple_pd(_mm_loadu_pd(key + j), vt)) << (j & 63);
#endif
  for (; j < m; j++) bits[j >> 6] |= (uint64_t)(key[j] <= t) << (j & 63);
  for (uint32_t w = 0; w < (m + 63) / 64; w++) n += popcount64(bits[w]);
  return n;
}

/* The first leaf of a search without a filter (heap empty, more than k points): fill the heap
 * with few exact distances and few unpredictable branches (the points' order is random, so
 * every data-dependent branch costs a misprediction about half the time).
 * 1. A planar key per point (fill_keys): only an estimate of the order.
 * 2. A key radius that should hold about 1.5 k points at the leaf's density (widened while it
 *    holds fewer than k, narrowed once if it holds more than 2 k): the points within it get their
 *    exact distance, and the k best by (distance, id) within max_dist_m make the heap.
 * 3. The other points go through the exact bounds against the heap's threshold like any
 *    later leaf, so a point the key misjudged is still found. */
#define FILL_TARGET 1.5 /* points within the first radius, in units of k */
#define FILL_SHRINK 2   /* narrow it when it holds more than this many times k */
/* Steps 1 and 2 of knn_fill: the keys of points [from, to) into key, and in sel the points
 * within a key radius *t that holds at least k of them (how many is returned). */
static uint32_t fill_select(const knn_state *ks, const qt_box *box, const qt_pos *sl, uint32_t from,
                            uint32_t to, double *key, uint64_t *sel, double *t_out) {
  const uint32_t m = to - from, k = (uint32_t)ks->k; /* k < m <= CHUNK */
  fill_keys(&ks->sq, box, sl, from, to, key);
  double area =
      ((double)box->max_lat - box->min_lat) * ((double)box->max_lng - box->min_lng) * ks->sq.cos_q;
  double t = area * (FILL_TARGET * k) / (3.141592653589793 * m); /* pi t (m / area) */
  if (!(t > 0 && t < INFINITY)) t = INFINITY;
  uint64_t bits[CHUNK / 64];
  uint32_t ns = keys_at_most(key, m, t, sel);
  for (int tries = 0; ns < k; tries++) { /* q near the leaf's border, or sparse around it */
    t = tries < 4 ? t * (ns ? 1.6 * k / ns : 4.0) : INFINITY;
    ns = keys_at_most(key, m, t, sel);
  }
  if (ns > FILL_SHRINK * k) { /* dense around q: fewer exact distances if a narrower one holds k */
    double t2 = t * (FILL_TARGET * k / ns);
    uint32_t n2 = keys_at_most(key, m, t2, bits);
    if (n2 >= k) {
      memcpy(sel, bits, (m + 63) / 64 * sizeof *bits);
      ns = n2;
      t = t2;
    }
  }
  *t_out = t;
  return ns;
}

/* The end of a first leaf's scan: points [from, to) of the leaf not in `offered` (bit j for
 * point from + j) go through the rectangle prefilter and the lower bound against the heap's
 * threshold, and those left are offered. */
static void knn_offer_rest(knn_state *ks, const unsigned char *mem, uint32_t cap, const qt_pos *sl,
                           const qt_box *box, double cc, uint32_t from, uint32_t to,
                           const uint64_t *offered) {
  uint64_t bits[CHUNK / 64];
  knn_rect(ks);
  rect_bits(&ks->sq, box, sl, from, to, bits);
  for (uint32_t w = 0; w < (to - from + 63) / 64; w++)
    for (uint64_t b = bits[w] & ~offered[w]; b; b &= b - 1) {
      uint32_t i = from + w * 64 + ctz64(b);
      if (point_lb_h(&ks->sq, cc, sl[i].lat, sl[i].lng) <= ks->sq.thresh_h)
        knn_offer(ks, mem, cap, i);
    }
}

static void knn_fill(knn_state *ks, const unsigned char *mem, uint32_t cap, const qt_pos *sl,
                     const qt_box *box, double cc, uint32_t from, uint32_t to) {
  const uint32_t m = to - from, k = (uint32_t)ks->k, words = (m + 63) / 64; /* k < m <= CHUNK */
  double key[CHUNK], t;
  uint64_t sel[CHUNK / 64];
  fill_select(ks, box, sl, from, to, key, sel, &t);
  /* Exact distances; the first k (within max_dist_m) fill out (a heap is then built in place:
   * Floyd, branch-free sift), and the others replace the worst if better. */
  geo_qt_hit *out = ks->out;
  uint32_t n = 0;
  size_t worst = 0;
  for (uint32_t w = 0; w < words; w++)
    for (uint64_t b = sel[w]; b; b &= b - 1) {
      uint32_t i = from + w * 64 + ctz64(b);
      const qt_pos *p = &sl[i];
      geo_qt_hit hit;
      hit.point.id = 0;
      hit.point.pos = (geo_latlng){fix_to_deg(p->lat), fix_to_deg(p->lng)};
      hit.point.payload = (geo_qt_payload){0, (int64_t)(intptr_t)&L_ent(mem, cap)[i]}; /* hit_ent */
      PREFETCH(&L_ent(mem, cap)[i]); /* see knn_offer */
      hit.dist_m = geo__hav_m(&ks->sq.o, hit.point.pos);
      if (hit.dist_m > ks->max_dist_m) continue;
      if (n < k) {
        if (ks->scan) ks->dk[n] = hit.dist_m;
        out[n++] = hit;
        if (n == k && ks->scan)
          worst = arg_worst(ks);
        else if (n == k)
          for (uint32_t h = k / 2; h-- > 0;) heap_sift_down(out, k, h);
      } else if (hit_worse(&out[worst], &hit)) {
        out[worst] = hit;
        if (ks->scan) {
          ks->dk[worst] = hit.dist_m;
          worst = arg_worst(ks);
        } else
          heap_sift_down(out, k, 0);
      }
    }
  if (n < k && !ks->scan)
    for (uint32_t h = n / 2; h-- > 0;) heap_sift_down(out, n, h);
  ks->n = n;
  ks->worst = worst;
  if (n == k) knn_tighten(ks);
  knn_offer_rest(ks, mem, cap, sl, box, cc, from, to, sel); /* the points outside the radius */
}

/* knn_fill with a filter (the first leaf, heap empty, more than k points): the points within
 * the key radius are offered (exact distance, then the filter for those that would enter);
 * while the heap is not full the radius doubles and the points it adds are offered; then the
 * rest go through the exact bounds. The same vector passes as without a filter. */
static void knn_fill_filtered(knn_state *ks, const unsigned char *mem, uint32_t cap,
                              const qt_pos *sl, const qt_box *box, double cc, uint32_t from,
                              uint32_t to) {
  const uint32_t m = to - from, words = (m + 63) / 64;
  double key[CHUNK], t;
  uint64_t sel[CHUNK / 64], done[CHUNK / 64] = {0};
  uint32_t ns = fill_select(ks, box, sl, from, to, key, sel, &t);
  for (;;) {
    for (uint32_t w = 0; w < words; w++) {
      for (uint64_t b = sel[w] & ~done[w]; b; b &= b - 1)
        knn_offer(ks, mem, cap, from + w * 64 + ctz64(b));
      done[w] |= sel[w];
    }
    if (ks->n == ks->k || ns == m) break;
    t *= 2;
    ns = keys_at_most(key, m, t, sel);
  }
  knn_offer_rest(ks, mem, cap, sl, box, cc, from, to, done);
}

/* Bytes from a leaf's start to the end of its first CHUNK positions: what a search asks for
 * at once rather than let the hardware prefetcher ramp up on the lines one by one (at most
 * 25 lines, short of the deepest leaves). The PREFETCH loops stay in their callers: GCC
 * drops calls to a function that only prefetches, as if it did nothing. */
static inline size_t position_bytes(const qt_node *nd) {
  return HDR_BYTES + sizeof(qt_pos) * (size_t)(nd->count < CHUNK ? nd->count : CHUNK);
}

static void knn_leaf(knn_state *ks, const qt_node *nd, const qt_box *box) {
  const unsigned char *mem = nd->mem;
  for (size_t off = 0, end = position_bytes(nd); off < end; off += 64) PREFETCH(mem + off);
  uint32_t cap = mem_cap(mem);
  const qt_pos *sl = L_pos(mem);
  double cc = leaf_cc(&ks->sq, box);
  cand c[CHUNK];
  for (uint32_t from = 0; from < nd->count; from += CHUNK) {
    uint32_t to = nd->count - from > CHUNK ? from + CHUNK : nd->count;
    if (ks->n == 0 && to - from > ks->k) {
      if (ks->filter)
        knn_fill_filtered(ks, mem, cap, sl, box, cc, from, to);
      else
        knn_fill(ks, mem, cap, sl, box, cc, from, to);
      continue;
    }
    if (ks->n < ks->k) {
      /* No threshold to filter with yet (the home leaf, usually): offer the r = k - n
       * points with the smallest planar keys, again while some of them fail the filter, so
       * that about k exact distances fill the heap; the rest then go through the bounds. */
      uint32_t m = leaf_keys(&ks->sq, sl, from, to, c), j = 0;
      while (j < m && ks->n < ks->k) {
        uint32_t r = (uint32_t)(ks->k - ks->n);
        if (m - j > r) {
          if (r <= 32)
            cand_select_small(c + j, m - j, r);
          else
            cand_select(c + j, m - j, r);
        } else {
          r = m - j;
        }
        for (uint32_t end = j + r; j < end; j++) knn_offer(ks, mem, cap, c[j].i);
      }
      uint32_t idx[CHUNK], n2 = 0;
      for (; j < m; j++) idx[n2++] = c[j].i;
      knn_offer_bounded(ks, mem, cap, cc, idx, n2);
      continue;
    }
    knn_rect(ks);
    uint32_t m = leaf_candidates(&ks->sq, box, cc, sl, from, to, c);
    for (uint32_t j = 0; j < m; j++)
      if (c[j].lb <= ks->sq.thresh_h) knn_offer(ks, mem, cap, c[j].i);
  }
}

/* Push the children of internal node `node` (cell box) other than `skip` onto st[sp, ...) that
 * may hold results, nearest last (popped first), by a cheap planar estimate of the gap; the
 * exact pruning happens when each is popped. Ranked and compacted without branches (which
 * children a search keeps is as good as random to the predictor), and what popping a kept
 * one reads first (the leaf's first line or its children's line) is asked for now. Returns
 * the new stack size. */
static int knn_push_children(const geo_quadtree *qt, const knn_state *ks, uint32_t node,
                             const qt_box *box, uint32_t skip, stack_item *st, int sp) {
  const uint32_t first = qt->nodes[node].child;
  const qt_node *cn = &qt->nodes[first];
  /* The children's cells are two latitude bands by two longitude spans (as child_box cuts
   * them): gaps and keys per band and span, combined per child. */
  const int32_t mlat = mid32(box->min_lat, box->max_lat), mlng = mid32(box->min_lng, box->max_lng);
  const int32_t lat_lo[2] = {box->min_lat, mlat}, lat_hi[2] = {mlat, box->max_lat};
  const int32_t lng_lo[2] = {box->min_lng, mlng}, lng_hi[2] = {mlng, box->max_lng};
  int64_t glat[2], glng[2];
  double ky[2], kx[2];
  for (unsigned h = 0; h < 2; h++) {
    glat[h] = lat_band_gap(&ks->sq, lat_lo[h], lat_hi[h]);
    glng[h] = lng_span_gap(&ks->sq, lng_lo[h], lng_hi[h]);
    double gy = (double)glat[h], gx = (double)glng[h] * ks->sq.cos_q;
    ky[h] = gy * gy;
    kx[h] = gx * gx;
  }
  stack_item ch[4];
  double key[4];
  uint32_t keep[4];
  for (unsigned c = 0; c < 4; c++) {
    unsigned r = c >> 1, e = c & 1u; /* north, east */
    ch[c] = (stack_item){first + c, {lat_lo[r], lat_hi[r], lng_lo[e], lng_hi[e]}};
    keep[c] = (uint32_t)((cn[c].count != 0) & (first + c != skip) & (glat[r] <= ks->sq.tlat) &
                         (glng[e] <= ks->sq.tlng));
    key[c] = ky[r] + kx[e];
    uintptr_t leaf = (uintptr_t)cn[c].mem;
    uintptr_t sub = (uintptr_t)&qt->nodes[cn[c].child & (0u - (cn[c].child != NONE))];
    uintptr_t use_leaf = 0u - (uintptr_t)(leaf != 0), use = 0u - (uintptr_t)keep[c];
    uintptr_t next = (leaf & use_leaf) | (sub & ~use_leaf);
    PREFETCH((const void *)((next & use) | ((uintptr_t)&key[c] & ~use)));
  }
  /* Farthest first: the nearest child is in the nearer band and the nearer span, the
   * farthest in neither; of the other two, the one whose step away from the nearest costs
   * more is the farther. */
  unsigned near = (unsigned)(ky[1] < ky[0]) << 1 | (unsigned)(kx[1] < kx[0]);
  unsigned other_band = near ^ 2u, other_span = near ^ 1u;
  unsigned band_farther = (unsigned)(key[other_band] > key[other_span]);
  unsigned order[4] = {near ^ 3u, band_farther ? other_band : other_span,
                       band_farther ? other_span : other_band, near};
  for (unsigned j = 0; j < 4; j++) {
    st[sp] = ch[order[j]];
    sp += (int)keep[order[j]];
  }
  return sp;
}

geo_err geo_quadtree_knn(const geo_quadtree *qt, geo_latlng q, size_t k, double max_dist_m,
                         geo_qt_filter filter, void *filter_ud, geo_qt_hit *out, size_t *n_out) {
  if (qt == NULL || n_out == NULL || (out == NULL && k > 0) || !geo_latlng_is_valid(q) ||
      isnan(max_dist_m) || max_dist_m < 0)
    return GEO_EINVAL;
  if (k == 0 || qt->n == 0) {
    *n_out = 0;
    return GEO_OK;
  }
  if (k > UINT32_MAX) k = UINT32_MAX; /* never more points than that anyway */
  knn_state ks = {.k = k,
                  .max_dist_m = max_dist_m,
                  .filter = filter,
                  .filter_ud = filter_ud,
                  .out = out,
                  .scan = k <= SCAN_K};
  for (size_t i = 0; i < SCAN_K; i++) ks.dk[i] = -INFINITY;
  search_init(&ks.sq, q, max_dist_m);
  /* 1. Straight down to the leaf whose cell holds q (one quadrant test a level, no stack),
   * and scan it first: its points are usually the nearest, so the threshold is tight before
   * any other node is looked at. */
  uint32_t path[GEO_QT_MAX_DEPTH + 1];
  qt_box pbox[GEO_QT_MAX_DEPTH + 1];
  int d = 0;
  path[0] = qt->entry; /* no point lies outside its subtree */
  pbox[0] = *meta_box(&qt->meta[qt->entry]);
  const int32_t qlat = (int32_t)ks.sq.qlat, qlng = (int32_t)ks.sq.qlng;
  while (qt->nodes[path[d]].child != NONE) {
    unsigned c = quadrant(&pbox[d], qlat, qlng);
    pbox[d + 1] = child_box(&pbox[d], c);
    path[d + 1] = qt->nodes[path[d]].child + c;
    d++;
  }
  const uint32_t home = path[d];
  /* The home cell's siblings are the likeliest other leaves to hold results (a query near a
   * border of its cell: 0.6 of them a kNN(10) at 1M drivers), then its parent's siblings
   * (0.34). Their records are in lines the descent read, so ask now for the siblings'
   * positions and for the parent's siblings' positions or children's line, to arrive while
   * the home leaf is scanned. */
  for (int up = 1; up <= 2 && up <= d; up++) {
    const qt_node *sib = &qt->nodes[qt->nodes[path[d - up]].child];
    for (unsigned c = 0; c < 4; c++) {
      if (sib + c == &qt->nodes[path[d - up + 1]] || sib[c].count == 0) continue;
      if (sib[c].mem) {
        for (size_t off = 0, end = position_bytes(&sib[c]); off < end; off += 64)
          PREFETCH(sib[c].mem + off);
      } else {
        PREFETCH(&qt->nodes[sib[c].child]);
      }
    }
  }
  if (qt->nodes[home].count) knn_leaf(&ks, &qt->nodes[home], &pbox[d]);
  /* 2. The rest of the tree is the siblings of the path's nodes: those of the home leaf
   * first (the nearest cells), then those of its parent, and so on up. Every point stored
   * outside a cell lies outside its open interior, so once the rectangle prefilter rejects
   * everything beyond a path node's borders (rect_inside), nothing above it can hold results;
   * the threshold tightens on the way, so that often happens low. */
  stack_item st[STACK_MAX];
  for (int l = d; l > 0; l--) {
    knn_rect(&ks);
    if (rect_inside(&ks.sq, &pbox[l])) break;
    int sp = knn_push_children(qt, &ks, path[l - 1], &pbox[l - 1], path[l], st, 0);
    while (sp > 0) {
      stack_item it = st[--sp];
      knn_rect(&ks);
      if (box_far(&ks.sq, &it.box)) continue;
      const qt_node *nd = &qt->nodes[it.node];
      if (nd->child != NONE)
        sp = knn_push_children(qt, &ks, it.node, &it.box, NONE, st, sp);
      else if (box_lb_h(&ks.sq, &it.box) <= ks.sq.thresh_h)
        knn_leaf(&ks, nd, &it.box);
    }
  }
  /* Ascending order: for a usual k, by ranks without branches; heapsort otherwise.
   * A rank counts the smaller distances (two lanes at a time where SSE2 is there); only when
   * two distances are equal (duplicates) do ids decide, in a second pass ((d, id) pairs are
   * distinct: ids are). */
  size_t m = ks.n;
  if (m <= 16) {
    geo_qt_hit sorted[16];
    double dd[16];
    uint32_t rank[16], eq[16], ties = 0;
    for (size_t i = 0; i < 16; i++) dd[i] = INFINITY;
    for (size_t i = 0; i < m; i++) dd[i] = out[i].dist_m;
    for (size_t i = 0; i < m; i++) {
      rank_of(dd, (m + 1) & ~(size_t)1, dd[i], &rank[i], &eq[i]);
      ties |= eq[i] - 1u;
    }
    if (ties)
      for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++)
          rank[i] += (uint32_t)((eq[i] > 1) & (dd[j] == dd[i]) &
                                (hit_ent(&out[j])->id < hit_ent(&out[i])->id));
    for (size_t i = 0; i < m; i++) sorted[rank[i]] = out[i];
    memcpy(out, sorted, m * sizeof *out);
    m = 0;
  }
  while (m > 1) {
    geo_qt_hit t = out[0];
    out[0] = out[m - 1];
    out[m - 1] = t;
    heap_sift_down(out, --m, 0);
  }
  for (size_t i = 0; i < ks.n; i++) { /* the results' entries, see hit_ent */
    const qt_ent *e = hit_ent(&out[i]);
    out[i].point.id = e->id;
    out[i].point.payload = unpack_pl(e->pl);
  }
  *n_out = ks.n;
  return GEO_OK;
}

geo_err geo_quadtree_within_radius(const geo_quadtree *qt, geo_latlng centre, double radius_m,
                                   geo_qt_filter filter, void *filter_ud, geo_qt_visit visit,
                                   void *visit_ud, size_t *n_out) {
  if (qt == NULL || visit == NULL || !geo_latlng_is_valid(centre) || isnan(radius_m) ||
      radius_m < 0)
    return GEO_EINVAL;
  search sq;
  search_init(&sq, centre, radius_m);
  size_t n = 0;
  stack_item st[STACK_MAX];
  cand c[CHUNK];
  int sp = 0;
  if (qt->n) st[sp++] = (stack_item){0, ROOT_BOX};
  while (sp > 0) {
    stack_item it = st[--sp];
    const qt_node *nd = &qt->nodes[it.node];
    if (nd->child == NONE) {
      const unsigned char *mem = nd->mem;
      uint32_t cap = mem_cap(mem);
      const qt_pos *sl = L_pos(mem);
      double cc = leaf_cc(&sq, &it.box);
      for (uint32_t from = 0; from < nd->count; from += CHUNK) {
        uint32_t to = nd->count - from > CHUNK ? from + CHUNK : nd->count;
        uint32_t m = leaf_candidates(&sq, &it.box, cc, sl, from, to, c);
        for (uint32_t j = 0; j < m; j++) {
          geo_qt_hit hit;
          hit.point = point_at(mem, cap, c[j].i);
          hit.dist_m = geo__hav_m(&sq.o, hit.point.pos);
          if (hit.dist_m > radius_m) continue;
          if (filter && !filter(&hit.point, filter_ud)) continue;
          n++;
          if (!visit(&hit, visit_ud)) goto done;
        }
      }
      continue;
    }
    const qt_node *cn = &qt->nodes[nd->child];
    for (unsigned ci = 0; ci < 4; ci++) {
      if (cn[ci].count == 0) continue;
      qt_box cb = child_box(&it.box, ci);
      if (box_far(&sq, &cb) || box_lb_h(&sq, &cb) > sq.thresh_h) continue;
      st[sp++] = (stack_item){nd->child + ci, cb};
    }
  }
done:
  if (n_out) *n_out = n;
  return GEO_OK;
}

static bool box_meets(const qt_box *b, int32_t la0, int32_t la1, int32_t lo0, int32_t lo1) {
  return b->max_lat >= la0 && b->min_lat <= la1 && b->max_lng >= lo0 && b->min_lng <= lo1;
}

geo_err geo_quadtree_within_box(const geo_quadtree *qt, geo_bbox box, geo_qt_filter filter,
                                void *filter_ud, geo_qt_visit visit, void *visit_ud,
                                size_t *n_out) {
  if (qt == NULL || visit == NULL || !isfinite(box.min_lat) || !isfinite(box.max_lat) ||
      !isfinite(box.min_lng) || !isfinite(box.max_lng) || box.min_lat > box.max_lat)
    return GEO_EINVAL;
  /* Conservative fixed-point bounds (one unit of slack); the exact test is per point. */
  const double LIM = 2e9;
  int32_t la0 = (int32_t)fmax(-LIM, fmin(LIM, floor(box.min_lat * FIX) - 1));
  int32_t la1 = (int32_t)fmax(-LIM, fmin(LIM, ceil(box.max_lat * FIX) + 1));
  int32_t lo0 = (int32_t)fmax(-LIM, fmin(LIM, floor(box.min_lng * FIX) - 1));
  int32_t lo1 = (int32_t)fmax(-LIM, fmin(LIM, ceil(box.max_lng * FIX) + 1));
  bool wraps = box.min_lng > box.max_lng;
  size_t n = 0;
  stack_item st[STACK_MAX];
  int sp = 0;
  if (qt->n) st[sp++] = (stack_item){0, ROOT_BOX};
  while (sp > 0) {
    stack_item it = st[--sp];
    const qt_node *nd = &qt->nodes[it.node];
    if (nd->child == NONE) {
      uint32_t cap = mem_cap(nd->mem);
      for (uint32_t i = 0; i < nd->count; i++) {
        geo_qt_hit hit;
        hit.point = point_at(nd->mem, cap, i);
        if (!geo_bbox_contains(box, hit.point.pos)) continue;
        if (filter && !filter(&hit.point, filter_ud)) continue;
        hit.dist_m = 0;
        n++;
        if (!visit(&hit, visit_ud)) goto done;
      }
      continue;
    }
    const qt_node *cn = &qt->nodes[nd->child];
    for (unsigned c = 0; c < 4; c++) {
      if (cn[c].count == 0) continue;
      qt_box cb = child_box(&it.box, c);
      bool meets = wraps ? box_meets(&cb, la0, la1, lo0, INT32_MAX) ||
                               box_meets(&cb, la0, la1, INT32_MIN, lo1)
                         : box_meets(&cb, la0, la1, lo0, lo1);
      if (meets) st[sp++] = (stack_item){nd->child + c, cb};
    }
  }
done:
  if (n_out) *n_out = n;
  return GEO_OK;
}

/* ---- invariants ------------------------------------------------------------------------ */

static geo_err check_node(const geo_quadtree *qt, uint32_t idx, uint32_t parent, qt_box box,
                          uint32_t depth, size_t *points, size_t *visited) {
  if (idx >= qt->n_nodes || ++*visited > qt->n_nodes) return GEO_EFORMAT;
  const qt_node *nd = &qt->nodes[idx];
  const qt_meta *mt = &qt->meta[idx];
  if (mt->parent != parent || mt->depth != depth || depth > GEO_QT_MAX_DEPTH) return GEO_EFORMAT;
  if (memcmp(meta_box(mt), &box, sizeof box) != 0) return GEO_EFORMAT;
  if (nd->child == NONE) {
    if (nd->count > mem_cap(nd->mem) || (nd->count > 0) != (nd->mem != NULL)) return GEO_EFORMAT;
    if (mt->cap != mem_cap(nd->mem)) return GEO_EFORMAT;
    if (nd->mem && memcmp(&L_hdr(nd->mem)->box, &box, sizeof box) != 0) return GEO_EFORMAT;
    if (nd->count > GEO_QT_LEAF_MAX && depth < GEO_QT_MAX_DEPTH) return GEO_EFORMAT;
    for (uint32_t i = 0; i < nd->count; i++) {
      if (!box_contains(&box, L_pos(nd->mem)[i].lat, L_pos(nd->mem)[i].lng)) return GEO_EFORMAT;
      size_t ti = tab_find(qt, slot_id(qt, idx, i));
      if (ti == SIZE_MAX || qt->tab[ti].node != idx || qt->tab[ti].slot != i) return GEO_EFORMAT;
    }
    *points += nd->count;
    return GEO_OK;
  }
  if (nd->mem != NULL || nd->child + 4 > qt->n_nodes) return GEO_EFORMAT;
  size_t sum = 0;
  for (uint32_t c = 0; c < 4; c++) {
    size_t before = *points;
    geo_err e = check_node(qt, nd->child + c, idx, child_box(&box, c), depth + 1, points, visited);
    if (e != GEO_OK) return e;
    if (qt->nodes[nd->child + c].count != *points - before) return GEO_EFORMAT;
    sum += qt->nodes[nd->child + c].count;
  }
  return sum == nd->count ? GEO_OK : GEO_EFORMAT;
}

geo_err geo_quadtree_check(const geo_quadtree *qt) {
  if (qt == NULL) return GEO_EINVAL;
  size_t points = 0, visited = 0;
  geo_err e = check_node(qt, 0, NONE, ROOT_BOX, 0, &points, &visited);
  if (e != GEO_OK) return e;
  if (points != qt->n || qt->nodes[0].count != qt->n) return GEO_EFORMAT;
  /* The entry: a live node (each step up is a child of its parent) holding every point. */
  for (uint32_t x = qt->entry; x != 0; x = qt->meta[x].parent) {
    uint32_t p = x < qt->n_nodes ? qt->meta[x].parent : NONE;
    if (p >= qt->n_nodes || qt->nodes[p].child == NONE || x - qt->nodes[p].child >= 4)
      return GEO_EFORMAT;
  }
  if (qt->nodes[qt->entry].count != qt->n) return GEO_EFORMAT;
  size_t used = 0;
  for (size_t i = 0; i < qt->tab_cap; i++) used += !tab_empty(&qt->tab[i]);
  return used == qt->n ? GEO_OK : GEO_EFORMAT;
}
