/*
 * rtree.c: the segment R-tree behind geo/rtree.h.
 *
 * Nodes are 104-byte records in one array: a box in degrees, a count, a leaf flag and up to
 * RT_M = 16 child indices (node indices, or segment indices in a leaf). The same records are
 * the blob format, so a snapshot maps the file and searches it in place. Bulk load is
 * Sort-Tile-Recursive; insert is Guttman's with the quadratic split. Searches are
 * branch-and-bound: a node's exact minimum great-circle distance to the query point (a true
 * lower bound) orders and prunes its children; a segment's distance is
 * geo_project_on_segment's, so results equal a linear scan with that function.
 *
 * Not here: deletion (road graphs are rebuilt, not edited) and segments across the
 * antimeridian. Not thread-safe for writers; any number of readers may share a tree.
 */
#include "geo/rtree.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geometry.h"
#include "geo_internal.h"

#define RT_M 16
#define RT_MIN_FILL 4
#define RT_MAX_HEIGHT 48
#define NONE UINT32_MAX

typedef struct rt_node {
  double min_lat, min_lng, max_lat, max_lng; /* empty node: min > max (+inf / -inf) */
  uint32_t count;
  uint32_t leaf; /* 1: child[] are segment indices */
  uint32_t child[RT_M];
} rt_node;

typedef struct rt_blob_hdr {
  char magic[8]; /* "GEORTRE1" */
  uint32_t version, endian, node_size, seg_size, fanout, height;
  uint32_t n_nodes, n_segs, root;
  uint32_t reserved[5];
} rt_blob_hdr;

struct geo_rtree {
  rt_node *nodes;
  geo_segment *segs;
  uint32_t n_nodes, cap_nodes;
  uint32_t n_segs, cap_segs;
  uint32_t root, height; /* height 1: the root is a leaf */
  bool readonly;         /* nodes and segs point into a caller's blob */
};

typedef struct box4 {
  double min_lat, min_lng, max_lat, max_lng;
} box4;

static const box4 EMPTY_BOX = {INFINITY, INFINITY, -INFINITY, -INFINITY};

static box4 seg_box(const geo_segment *s) {
  return (box4){fmin(s->a.lat, s->b.lat), fmin(s->a.lng, s->b.lng), fmax(s->a.lat, s->b.lat),
                fmax(s->a.lng, s->b.lng)};
}
static box4 node_box(const rt_node *n) {
  return (box4){n->min_lat, n->min_lng, n->max_lat, n->max_lng};
}
static void set_box(rt_node *n, box4 b) {
  n->min_lat = b.min_lat;
  n->min_lng = b.min_lng;
  n->max_lat = b.max_lat;
  n->max_lng = b.max_lng;
}
static box4 box_union(box4 a, box4 b) {
  return (box4){fmin(a.min_lat, b.min_lat), fmin(a.min_lng, b.min_lng), fmax(a.max_lat, b.max_lat),
                fmax(a.max_lng, b.max_lng)};
}
static double box_area(box4 b) {
  return b.max_lat < b.min_lat ? 0 : (b.max_lat - b.min_lat) * (b.max_lng - b.min_lng);
}

static bool seg_valid(const geo_segment *s) {
  return geo_latlng_is_valid(s->a) && geo_latlng_is_valid(s->b) &&
         fabs(s->a.lng - s->b.lng) <= 180.0;
}

static box4 entry_box(const geo_rtree *t, const rt_node *n, uint32_t j) {
  return n->leaf ? seg_box(&t->segs[n->child[j]]) : node_box(&t->nodes[n->child[j]]);
}

static box4 recompute_box(const geo_rtree *t, const rt_node *n) {
  box4 b = EMPTY_BOX;
  for (uint32_t j = 0; j < n->count; j++) b = box_union(b, entry_box(t, n, j));
  return b;
}

/* ---- construction -------------------------------------------------------------------- */

static geo_rtree *tree_alloc(uint32_t cap_nodes, uint32_t cap_segs) {
  geo_rtree *t = geo__calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->nodes = geo__malloc((size_t)cap_nodes * sizeof *t->nodes);
  t->segs = geo__malloc((size_t)(cap_segs ? cap_segs : 1) * sizeof *t->segs);
  if (t->nodes == NULL || t->segs == NULL) {
    geo__free(t->nodes);
    geo__free(t->segs);
    geo__free(t);
    return NULL;
  }
  t->cap_nodes = cap_nodes;
  t->cap_segs = cap_segs ? cap_segs : 1;
  return t;
}

geo_err geo_rtree_new(geo_rtree **out) {
  if (out == NULL) return GEO_EINVAL;
  geo_rtree *t = tree_alloc(8, 16);
  if (t == NULL) return GEO_ENOMEM;
  memset(&t->nodes[0], 0, sizeof t->nodes[0]);
  set_box(&t->nodes[0], EMPTY_BOX);
  t->nodes[0].leaf = 1;
  t->n_nodes = 1;
  t->root = 0;
  t->height = 1;
  *out = t;
  return GEO_OK;
}

void geo_rtree_free(geo_rtree *t) {
  if (t == NULL) return;
  if (!t->readonly) {
    geo__free(t->nodes);
    geo__free(t->segs);
  }
  geo__free(t);
}

size_t geo_rtree_count(const geo_rtree *t) { return t ? t->n_segs : 0; }

typedef struct sort_item {
  double key;
  uint32_t idx;
  double key2;
} sort_item;

static int cmp_item(const void *a, const void *b) {
  const sort_item *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Pack n entries (segment or node indices with their boxes) into parent nodes appended to
 * t->nodes, Sort-Tile-Recursive: slices by centre longitude, runs of RT_M by latitude. */
static void str_level(geo_rtree *t, sort_item *items, size_t n, bool leaf) {
  size_t nparents = (n + RT_M - 1) / RT_M;
  size_t nslices = (size_t)ceil(sqrt((double)nparents));
  size_t slice = nslices * RT_M;
  qsort(items, n, sizeof *items, cmp_item); /* key = centre longitude */
  for (size_t s0 = 0; s0 < n; s0 += slice) {
    size_t s1 = s0 + slice < n ? s0 + slice : n;
    for (size_t i = s0; i < s1; i++) {
      double k = items[i].key;
      items[i].key = items[i].key2;
      items[i].key2 = k;
    }
    qsort(items + s0, s1 - s0, sizeof *items, cmp_item); /* now by centre latitude */
    for (size_t i = s0; i < s1; i += RT_M) {
      rt_node *p = &t->nodes[t->n_nodes++];
      memset(p, 0, sizeof *p);
      p->leaf = leaf;
      for (size_t j = i; j < s1 && j < i + RT_M; j++) p->child[p->count++] = items[j].idx;
      set_box(p, recompute_box(t, p));
    }
  }
}

geo_err geo_rtree_bulk_load(const geo_segment *segs, size_t n, geo_rtree **out) {
  if (out == NULL || (segs == NULL && n > 0) || n >= NONE / 2) return GEO_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!seg_valid(&segs[i])) return GEO_EINVAL;
  if (n == 0) return geo_rtree_new(out);
  /* Node count of a full STR pack: sum of ceil(n / M^k) over levels, plus slack for slices. */
  size_t need = 0;
  for (size_t m = n; m > 1; m = (m + RT_M - 1) / RT_M) need += (m + RT_M - 1) / RT_M + 1;
  need += 1;
  geo_rtree *t = tree_alloc((uint32_t)(need + 8), (uint32_t)n);
  sort_item *items = geo__malloc(n * sizeof *items);
  if (t == NULL || items == NULL) {
    geo_rtree_free(t);
    geo__free(items);
    return GEO_ENOMEM;
  }
  memcpy(t->segs, segs, n * sizeof *segs);
  t->n_segs = (uint32_t)n;
  for (size_t i = 0; i < n; i++) {
    box4 b = seg_box(&segs[i]);
    items[i] =
        (sort_item){(b.min_lng + b.max_lng) * 0.5, (uint32_t)i, (b.min_lat + b.max_lat) * 0.5};
  }
  size_t level_n = n, first = 0;
  bool leaf = true;
  t->height = 0;
  for (;;) {
    first = t->n_nodes;
    str_level(t, items, level_n, leaf);
    t->height++;
    level_n = t->n_nodes - first;
    if (level_n == 1) break;
    for (size_t i = 0; i < level_n; i++) {
      const rt_node *c = &t->nodes[first + i];
      items[i] = (sort_item){(c->min_lng + c->max_lng) * 0.5, (uint32_t)(first + i),
                             (c->min_lat + c->max_lat) * 0.5};
    }
    leaf = false;
  }
  geo__free(items);
  t->root = (uint32_t)first;
  *out = t;
  return GEO_OK;
}

/* Quadratic split of the RT_M + 1 entries in ent/box into node a (kept) and node b (new). */
static void quadratic_split(geo_rtree *t, uint32_t a, uint32_t b, const uint32_t *ent,
                            const box4 *bx, int n) {
  bool used[RT_M + 1] = {false};
  int s1 = 0, s2 = 1;
  double worst = -1;
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) {
      double d = box_area(box_union(bx[i], bx[j])) - box_area(bx[i]) - box_area(bx[j]);
      if (d > worst) {
        worst = d;
        s1 = i;
        s2 = j;
      }
    }
  rt_node *na = &t->nodes[a], *nb = &t->nodes[b];
  na->count = nb->count = 0;
  na->child[na->count++] = ent[s1];
  nb->child[nb->count++] = ent[s2];
  box4 ba = bx[s1], bb = bx[s2];
  used[s1] = used[s2] = true;
  int left = n - 2;
  while (left > 0) {
    /* Give every remaining entry to one group when the other needs them for minimum fill. */
    if ((int)na->count + left == RT_MIN_FILL || (int)nb->count + left == RT_MIN_FILL) {
      rt_node *g = (int)na->count + left == RT_MIN_FILL ? na : nb;
      box4 *gb = g == na ? &ba : &bb;
      for (int i = 0; i < n; i++)
        if (!used[i]) {
          used[i] = true;
          g->child[g->count++] = ent[i];
          *gb = box_union(*gb, bx[i]);
        }
      break;
    }
    int pick = -1;
    double best = -1, da = 0, db = 0;
    for (int i = 0; i < n; i++) {
      if (used[i]) continue;
      double ea = box_area(box_union(ba, bx[i])) - box_area(ba);
      double eb = box_area(box_union(bb, bx[i])) - box_area(bb);
      if (fabs(ea - eb) > best) {
        best = fabs(ea - eb);
        pick = i;
        da = ea;
        db = eb;
      }
    }
    used[pick] = true;
    left--;
    bool to_a = da < db || (da == db && na->count <= nb->count);
    if (to_a && na->count < RT_M) {
      na->child[na->count++] = ent[pick];
      ba = box_union(ba, bx[pick]);
    } else {
      nb->child[nb->count++] = ent[pick];
      bb = box_union(bb, bx[pick]);
    }
  }
  set_box(na, ba);
  set_box(nb, bb);
}

/* Add entry e (box eb) to node idx; if it overflows, split into idx and a new node written
 * to *split (NONE otherwise). Capacity was reserved by the caller. */
static void node_add(geo_rtree *t, uint32_t idx, uint32_t e, box4 eb, uint32_t *split) {
  rt_node *n = &t->nodes[idx];
  *split = NONE;
  if (n->count < RT_M) {
    n->child[n->count++] = e;
    set_box(n, box_union(node_box(n), eb));
    return;
  }
  uint32_t ent[RT_M + 1];
  box4 bx[RT_M + 1];
  for (uint32_t j = 0; j < RT_M; j++) {
    ent[j] = n->child[j];
    bx[j] = entry_box(t, n, j);
  }
  ent[RT_M] = e;
  bx[RT_M] = eb;
  uint32_t nb = t->n_nodes++;
  memset(&t->nodes[nb], 0, sizeof t->nodes[nb]);
  t->nodes[nb].leaf = t->nodes[idx].leaf;
  quadratic_split(t, idx, nb, ent, bx, RT_M + 1);
  *split = nb;
}

static geo_err grow(void **arr, uint32_t *cap, uint32_t need, size_t elem) {
  if (need <= *cap) return GEO_OK;
  uint32_t ncap = *cap;
  while (ncap < need) {
    if (ncap > NONE / 4) return GEO_ENOMEM;
    ncap *= 2;
  }
  void *p = geo__realloc(*arr, (size_t)*cap * elem, (size_t)ncap * elem);
  if (p == NULL) return GEO_ENOMEM;
  *arr = p;
  *cap = ncap;
  return GEO_OK;
}

geo_err geo_rtree_insert(geo_rtree *t, const geo_segment *seg) {
  if (t == NULL || seg == NULL || t->readonly || !seg_valid(seg)) return GEO_EINVAL;
  if (t->height >= RT_MAX_HEIGHT || t->n_segs >= NONE / 2) return GEO_ERANGE;
  /* Reserve everything first: a split per level plus a new root, and the segment. */
  geo_err e = grow((void **)&t->nodes, &t->cap_nodes, t->n_nodes + t->height + 1, sizeof *t->nodes);
  if (e == GEO_OK) e = grow((void **)&t->segs, &t->cap_segs, t->n_segs + 1, sizeof *t->segs);
  if (e != GEO_OK) return e;
  uint32_t si = t->n_segs++;
  t->segs[si] = *seg;
  box4 sb = seg_box(seg);
  uint32_t path[RT_MAX_HEIGHT];
  int depth = 0;
  uint32_t cur = t->root;
  while (!t->nodes[cur].leaf) {
    path[depth++] = cur;
    const rt_node *n = &t->nodes[cur];
    uint32_t best = n->child[0];
    double best_enl = INFINITY, best_area = INFINITY;
    for (uint32_t j = 0; j < n->count; j++) {
      box4 cb = node_box(&t->nodes[n->child[j]]);
      double area = box_area(cb), enl = box_area(box_union(cb, sb)) - area;
      if (enl < best_enl || (enl == best_enl && area < best_area)) {
        best_enl = enl;
        best_area = area;
        best = n->child[j];
      }
    }
    cur = best;
  }
  uint32_t split;
  node_add(t, cur, si, sb, &split);
  uint32_t child = cur;
  while (depth > 0) {
    uint32_t parent = path[--depth];
    set_box(&t->nodes[parent], recompute_box(t, &t->nodes[parent]));
    if (split != NONE) {
      uint32_t s2;
      node_add(t, parent, split, node_box(&t->nodes[split]), &s2);
      split = s2;
    }
    child = parent;
  }
  if (split != NONE) { /* the root split: grow a level */
    uint32_t r = t->n_nodes++;
    rt_node *n = &t->nodes[r];
    memset(n, 0, sizeof *n);
    n->child[0] = child;
    n->child[1] = split;
    n->count = 2;
    set_box(n, recompute_box(t, n));
    t->root = r;
    t->height++;
  }
  return GEO_OK;
}

/* ---- searches ------------------------------------------------------------------------ */

typedef struct nn_ctx {
  const geo_rtree *t;
  geo_latlng p;
  double max_d;
  geo_rtree_filter filter;
  void *ud;
  bool found;
  geo_rtree_hit best;
} nn_ctx;

static double box_lb_m(geo_latlng p, box4 b) {
  if (b.min_lat > b.max_lat) return INFINITY;
  double d = geo__box_min_dist_m(p, b.min_lat, b.min_lng, b.max_lat, b.max_lng);
  return d * (1.0 - 1e-9) - 1e-6; /* a margin far above rounding */
}

static double bound(const nn_ctx *c) { return c->found ? c->best.dist_m : c->max_d; }

static void nn_visit(nn_ctx *c, uint32_t idx, int level) {
  const rt_node *n = &c->t->nodes[idx];
  if (n->leaf) {
    for (uint32_t j = 0; j < n->count; j++) {
      const geo_segment *s = &c->t->segs[n->child[j]];
      if (box_lb_m(c->p, seg_box(s)) > bound(c)) continue;
      if (c->filter && !c->filter(s->id, c->ud)) continue;
      geo_rtree_hit h;
      h.id = s->id;
      h.dist_m = geo_project_on_segment(c->p, s->a, s->b, &h.proj, &h.frac);
      if (h.dist_m > c->max_d) continue;
      if (!c->found || h.dist_m < c->best.dist_m ||
          (h.dist_m == c->best.dist_m && h.id < c->best.id)) {
        c->best = h;
        c->found = true;
      }
    }
    return;
  }
  if (level <= 0) return; /* deeper than the tree's height: only a corrupt blob; validated */
  double lb[RT_M];
  uint32_t order[RT_M];
  uint32_t m = 0;
  for (uint32_t j = 0; j < n->count; j++) {
    double d = box_lb_m(c->p, node_box(&c->t->nodes[n->child[j]]));
    if (d > bound(c)) continue;
    uint32_t k = m++;
    while (k > 0 && lb[k - 1] > d) {
      lb[k] = lb[k - 1];
      order[k] = order[k - 1];
      k--;
    }
    lb[k] = d;
    order[k] = n->child[j];
  }
  for (uint32_t k = 0; k < m; k++) {
    if (lb[k] > bound(c)) break;
    nn_visit(c, order[k], level - 1);
  }
}

geo_err geo_rtree_nearest(const geo_rtree *t, geo_latlng p, double max_dist_m,
                          geo_rtree_filter filter, void *ud, geo_rtree_hit *out) {
  if (t == NULL || out == NULL || !geo_latlng_is_valid(p) || isnan(max_dist_m) || max_dist_m < 0)
    return GEO_EINVAL;
  nn_ctx c = {t, p, max_dist_m, filter, ud, false, {0, 0, {0, 0}, 0}};
  if (t->n_segs > 0) nn_visit(&c, t->root, (int)t->height);
  if (!c.found) return GEO_ENOTFOUND;
  *out = c.best;
  return GEO_OK;
}

typedef struct range_ctx {
  const geo_rtree *t;
  box4 q1, q2; /* the query, split in two when it crosses the antimeridian */
  bool two;
  bool (*fn)(const geo_segment *, void *);
  void *ud;
  size_t visited;
  bool stop;
} range_ctx;

static bool meets(box4 a, box4 b) {
  return a.min_lat <= b.max_lat && a.max_lat >= b.min_lat && a.min_lng <= b.max_lng &&
         a.max_lng >= b.min_lng;
}

static bool meets_query(const range_ctx *c, box4 b) {
  return meets(c->q1, b) || (c->two && meets(c->q2, b));
}

static void range_visit(range_ctx *c, uint32_t idx, int level) {
  const rt_node *n = &c->t->nodes[idx];
  for (uint32_t j = 0; j < n->count && !c->stop; j++) {
    if (n->leaf) {
      const geo_segment *s = &c->t->segs[n->child[j]];
      if (!meets_query(c, seg_box(s))) continue;
      c->visited++;
      if (!c->fn(s, c->ud)) c->stop = true;
    } else if (level > 1 && meets_query(c, node_box(&c->t->nodes[n->child[j]]))) {
      range_visit(c, n->child[j], level - 1);
    }
  }
}

size_t geo_rtree_range(const geo_rtree *t, geo_bbox box,
                       bool (*fn)(const geo_segment *seg, void *ud), void *ud) {
  if (t == NULL || fn == NULL || isnan(box.min_lat) || isnan(box.max_lat) || isnan(box.min_lng) ||
      isnan(box.max_lng) || box.min_lat > box.max_lat)
    return 0;
  range_ctx c = {
      t, {box.min_lat, box.min_lng, box.max_lat, box.max_lng}, EMPTY_BOX, false, fn, ud, 0, false};
  if (box.min_lng > box.max_lng) { /* crosses the antimeridian */
    c.q1 = (box4){box.min_lat, box.min_lng, box.max_lat, 180.0};
    c.q2 = (box4){box.min_lat, -180.0, box.max_lat, box.max_lng};
    c.two = true;
  }
  if (t->n_segs > 0) range_visit(&c, t->root, (int)t->height);
  return c.visited;
}

/* ---- blobs ----------------------------------------------------------------------------- */

#define BLOB_MAGIC "GEORTRE1"
#define BLOB_VERSION 1u
#define BLOB_ENDIAN 0x01020304u

size_t geo_rtree_blob_size(const geo_rtree *t) {
  if (t == NULL) return 0;
  return sizeof(rt_blob_hdr) + (size_t)t->n_nodes * sizeof(rt_node) +
         (size_t)t->n_segs * sizeof(geo_segment);
}

geo_err geo_rtree_write_blob(const geo_rtree *t, void *buf, size_t len) {
  if (t == NULL || buf == NULL || ((uintptr_t)buf & 7u) != 0) return GEO_EINVAL;
  if (len < geo_rtree_blob_size(t)) return GEO_ERANGE;
  rt_blob_hdr h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, BLOB_MAGIC, 8);
  h.version = BLOB_VERSION;
  h.endian = BLOB_ENDIAN;
  h.node_size = sizeof(rt_node);
  h.seg_size = sizeof(geo_segment);
  h.fanout = RT_M;
  h.height = t->height;
  h.n_nodes = t->n_nodes;
  h.n_segs = t->n_segs;
  h.root = 0;
  unsigned char *b = buf;
  memcpy(b, &h, sizeof h);
  /* Breadth-first renumbering in place in the output: the root becomes 0 and every child
   * gets a larger index than its parent, which open_blob checks. */
  rt_node *out = (rt_node *)(void *)(b + sizeof h);
  out[0] = t->nodes[t->root];
  uint32_t next = 1;
  for (uint32_t i = 0; i < next; i++) {
    if (out[i].leaf) continue;
    for (uint32_t j = 0; j < out[i].count; j++) {
      out[next] = t->nodes[out[i].child[j]];
      out[i].child[j] = next++;
    }
  }
  if (next != t->n_nodes) return GEO_EFORMAT; /* unreachable nodes: cannot happen */
  memcpy(b + sizeof h + (size_t)t->n_nodes * sizeof(rt_node), t->segs,
         (size_t)t->n_segs * sizeof(geo_segment));
  return GEO_OK;
}

geo_err geo_rtree_open_blob(const void *buf, size_t len, geo_rtree **out) {
  if (buf == NULL || out == NULL || ((uintptr_t)buf & 7u) != 0) return GEO_EINVAL;
  rt_blob_hdr h;
  if (len < sizeof h) return GEO_EFORMAT;
  memcpy(&h, buf, sizeof h);
  if (memcmp(h.magic, BLOB_MAGIC, 8) != 0 || h.version != BLOB_VERSION || h.endian != BLOB_ENDIAN ||
      h.node_size != sizeof(rt_node) || h.seg_size != sizeof(geo_segment) || h.fanout != RT_M ||
      h.n_nodes == 0 || h.root != 0 || h.height == 0 || h.height > RT_MAX_HEIGHT)
    return GEO_EFORMAT;
  uint64_t need = (uint64_t)sizeof h + (uint64_t)h.n_nodes * sizeof(rt_node) +
                  (uint64_t)h.n_segs * sizeof(geo_segment);
  if (need > len) return GEO_EFORMAT;
  const unsigned char *b = buf;
  const rt_node *nodes = (const rt_node *)(const void *)(b + sizeof h);
  const geo_segment *segs =
      (const geo_segment *)(const void *)(b + sizeof h + (size_t)h.n_nodes * sizeof(rt_node));
  for (uint32_t i = 0; i < h.n_segs; i++)
    if (!seg_valid(&segs[i])) return GEO_EFORMAT;
  uint8_t *level = geo__calloc(h.n_nodes, 1);
  if (level == NULL) return GEO_ENOMEM;
  geo_err err = GEO_OK;
  level[0] = 1;
  for (uint32_t i = 0; i < h.n_nodes && err == GEO_OK; i++) {
    const rt_node *n = &nodes[i];
    if (level[i] == 0 || n->count > RT_M || n->leaf > 1 || isnan(n->min_lat) || isnan(n->max_lat) ||
        isnan(n->min_lng) || isnan(n->max_lng) || (n->leaf != (level[i] == h.height))) {
      err = GEO_EFORMAT;
      break;
    }
    for (uint32_t j = 0; j < n->count; j++) {
      uint32_t c = n->child[j];
      if (n->leaf ? c >= h.n_segs : (c <= i || c >= h.n_nodes || level[c] != 0)) {
        err = GEO_EFORMAT;
        break;
      }
      if (!n->leaf) level[c] = (uint8_t)(level[i] + 1);
    }
  }
  geo__free(level);
  if (err != GEO_OK) return err;
  geo_rtree *t = geo__calloc(1, sizeof *t);
  if (t == NULL) return GEO_ENOMEM;
  t->nodes = (rt_node *)(uintptr_t)nodes; /* read-only: never written through */
  t->segs = (geo_segment *)(uintptr_t)segs;
  t->n_nodes = t->cap_nodes = h.n_nodes;
  t->n_segs = t->cap_segs = h.n_segs;
  t->root = 0;
  t->height = h.height;
  t->readonly = true;
  *out = t;
  return GEO_OK;
}
