/*
 * route.c: point-to-point searches (Dijkstra, A*, bidirectional Dijkstra, contraction
 * hierarchy queries), one-to-many searches (plain, and CH with pruned target searches), path
 * recovery and polylines. The hierarchy itself is built in ch.c; snapping is in snap.c.
 *
 * Labels live in per-direction arrays sized to the graph, one 16-byte record a node
 * {stamp, dist, pred, heap slot}; a label is valid only when its stamp equals the
 * direction's current generation, so starting a query costs O(1). The priority queue is a
 * 4-ary heap of 64-bit entries key << 32 | node (one comparison a child) with a position
 * index (decrease-key in place). CH searches run on the
 * hierarchy's query layout (graph_internal.h: nodes by descending rank, 8-byte arcs, a
 * node's up and down arcs together): their labels are indexed by query id and their preds
 * are arc indices of that layout, mapped back to graph nodes and CH edges for paths.
 */
#include "geo/route.h"

#include "geo/ch.h"
#include "geo/geometry.h"
#include "graph_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define INF UINT32_MAX
#define NOT_IN_HEAP UINT32_MAX
/* pred values below SEED_BASE are arcs (or CH edge ids); SEED_BASE + k marks seed k. */
#define SEED_BASE 0xfffffff0u
#define MAX_SEEDS 2

/* A node's label in one direction, its four fields side by side so that a relaxation
 * touches one 16-byte record (one cache line) instead of four arrays. Valid only when stamp
 * equals the direction's generation; hpos is the node's heap slot or NOT_IN_HEAP. */
typedef struct label {
  uint32_t stamp, dist, pred, hpos;
} label;

typedef struct dir_state {
  label *lab;
  uint64_t *heap; /* entries key << 32 | node: one comparison orders by key */
  uint32_t hsize;
  uint32_t gen;
} dir_state;

/* Where a search may start or end: node, extra time to reach/leave it, and the partly
 * traversed arc (GEO_ARC_NONE for a node place) with the fraction where the place is. */
typedef struct seed {
  uint32_t node, off, arc;
  double frac;
} seed;

typedef struct seeds {
  seed s[MAX_SEEDS];
  int n;
} seeds;

/* A one-to-many target registration: target idx reached at a node with extra time off. */
typedef struct tentry {
  uint32_t next, idx, off;
} tentry;

/* A CH route found but not yet unpacked (route.c: ch_route_prepare, ch_materialize). */
typedef struct ch_lazy {
  bool pending;
  const geo_graph *g;
  uint32_t meet;                /* query id where the two searches met */
  uint32_t first_arc, last_arc; /* the partly traversed end arcs, if any */
} ch_lazy;

struct geo_route_state {
  uint32_t n;
  dir_state d[2];
  double *xyz; /* n * 3 unit vectors, for the A* heuristic (chord distance) */
  /* last path */
  bool has_path;
  uint32_t *path;
  size_t path_len, path_cap;
  double first_frac, last_frac; /* fraction where the route starts on path[0] / ends on last */
  bool first_partial, last_partial;
  ch_lazy lazy;
  uint32_t *stack;
  size_t stack_cap;
  /* plain one-to-many: registrations of targets per node (stamped heads), their entries */
  uint32_t *thead, *tstamp, tgen;
  tentry *tent;
  size_t tent_cap;
  uint32_t *pend;
  size_t pend_cap;
  /* CH one-to-many (many_ch): the source's distances, dense (INF where unreached), and the
   * target searches' labels, with the nodes each search touched, reset after it */
  uint32_t *sdist, *slist, *tlist;
  struct tlab *tlab;
};

/* A CH one-to-many target search's label: no stamp (reset through the touched list) and no
 * pred (only times are returned), 8 bytes a node. */
typedef struct tlab {
  uint32_t dist, hpos;
} tlab;

/* ---- state --------------------------------------------------------------------------- */

static void dir_free(dir_state *d) {
  geo__free(d->lab);
  geo__free(d->heap);
}

/* The heap has HEAP_PAD slots more than nodes, and every slot from hsize on holds
 * HEAP_EMPTY, above every entry: heap_down compares a node's four children without asking
 * how many there are. */
#define HEAP_PAD 4
#define HEAP_EMPTY UINT64_MAX

static bool dir_init(dir_state *d, uint32_t n) {
  d->lab = geo__calloc(n, sizeof *d->lab);
  d->heap = geo__calloc((size_t)n + HEAP_PAD, sizeof *d->heap);
  d->gen = 0;
  d->hsize = 0;
  if (d->heap)
    for (size_t i = 0; i < (size_t)n + HEAP_PAD; i++) d->heap[i] = HEAP_EMPTY;
  return d->lab && d->heap;
}

geo_err geo_route_state_new(const geo_graph *g, geo_route_state **out) {
  if (g == NULL || out == NULL) return GEO_EINVAL;
  geo_route_state *st = geo__calloc(1, sizeof *st);
  if (st == NULL) return GEO_ENOMEM;
  uint32_t n = g->n ? g->n : 1;
  st->n = g->n;
  bool ok = dir_init(&st->d[0], n) && dir_init(&st->d[1], n);
  st->xyz = geo__calloc((size_t)n * 3, sizeof *st->xyz);
  st->thead = geo__calloc(n, sizeof *st->thead);
  st->tstamp = geo__calloc(n, sizeof *st->tstamp);
  st->sdist = geo__calloc(n, sizeof *st->sdist);
  st->slist = geo__calloc(n, sizeof *st->slist);
  st->tlist = geo__calloc(n, sizeof *st->tlist);
  st->tlab = geo__calloc(n, sizeof *st->tlab);
  if (!ok || !st->xyz || !st->thead || !st->tstamp || !st->sdist || !st->slist || !st->tlist ||
      !st->tlab) {
    geo_route_state_free(st);
    return GEO_ENOMEM;
  }
  for (uint32_t v = 0; v < n; v++) {
    st->sdist[v] = INF;
    st->tlab[v] = (tlab){INF, NOT_IN_HEAP};
  }
  const double rad = 3.14159265358979323846 / 180.0;
  for (uint32_t v = 0; v < g->n; v++) {
    double la = g->pos[v].lat * rad, lo = g->pos[v].lng * rad;
    st->xyz[3 * v] = cos(la) * cos(lo);
    st->xyz[3 * v + 1] = cos(la) * sin(lo);
    st->xyz[3 * v + 2] = sin(la);
  }
  *out = st;
  return GEO_OK;
}

void geo_route_state_free(geo_route_state *st) {
  if (st == NULL) return;
  dir_free(&st->d[0]);
  dir_free(&st->d[1]);
  geo__free(st->xyz);
  geo__free(st->path);
  geo__free(st->stack);
  geo__free(st->thead);
  geo__free(st->tstamp);
  geo__free(st->tent);
  geo__free(st->pend);
  geo__free(st->sdist);
  geo__free(st->slist);
  geo__free(st->tlist);
  geo__free(st->tlab);
  geo__free(st);
}

const char *geo_route_algo_name(geo_route_algo algo) {
  switch (algo) {
  case GEO_ROUTE_DIJKSTRA: return "dijkstra";
  case GEO_ROUTE_ASTAR: return "astar";
  case GEO_ROUTE_BIDIR: return "bidir";
  case GEO_ROUTE_CH: return "ch";
  default: return "unknown";
  }
}

geo_route_place geo_route_place_node(uint32_t v) { return (geo_route_place){v, GEO_ARC_NONE, 0.0}; }

/* ---- labels and heap ------------------------------------------------------------------ */

static void dir_reset(dir_state *d, uint32_t n) {
  for (uint32_t i = 0; i < d->hsize; i++) d->heap[i] = HEAP_EMPTY; /* a search's leftovers */
  d->hsize = 0;
  if (++d->gen == 0) { /* wrapped: make every old stamp stale */
    for (uint32_t v = 0; v < n; v++) d->lab[v].stamp = 0;
    d->gen = 1;
  }
}

/* v's distance, INF when its label is stale. A mask, not a branch: whether a neighbour was
 * reached is data, and the compilers turned the conditional into a mispredicted jump. */
static inline uint32_t dist_of(const dir_state *d, uint32_t v) {
  const label *l = &d->lab[v];
  uint32_t valid = 0u - (uint32_t)(l->stamp == d->gen); /* all ones when valid */
  return (l->dist & valid) | ~valid;
}

static inline uint32_t heap_min_key(const dir_state *d) { return (uint32_t)(d->heap[0] >> 32); }

static inline void heap_up(dir_state *d, uint32_t i) {
  uint64_t x = d->heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 4;
    if (d->heap[p] <= x) break;
    d->heap[i] = d->heap[p];
    d->lab[(uint32_t)d->heap[i]].hpos = i;
    i = p;
  }
  d->heap[i] = x;
  d->lab[(uint32_t)x].hpos = i;
}

/* The least of four heap entries h[0..3] (missing children are HEAP_EMPTY) into *least, and
 * its index 0-3, chosen with masks, not branches: the order is data, not pattern, and
 * compilers branch on a plain select. */
static inline uint32_t least_of_four(const uint64_t *h, uint64_t *least) {
  uint64_t k01 = 0 - (uint64_t)(h[1] < h[0]), k23 = 0 - (uint64_t)(h[3] < h[2]);
  uint64_t m01 = h[0] ^ ((h[0] ^ h[1]) & k01), m23 = h[2] ^ ((h[2] ^ h[3]) & k23);
  uint64_t k = 0 - (uint64_t)(m23 < m01);
  *least = m01 ^ ((m01 ^ m23) & k);
  uint32_t j01 = (uint32_t)k01 & 1u, j23 = 2u + ((uint32_t)k23 & 1u);
  return j01 ^ ((j01 ^ j23) & (uint32_t)k);
}

static inline void heap_down(dir_state *d, uint32_t i) {
  uint64_t x = d->heap[i];
  uint32_t n = d->hsize;
  for (;;) {
    uint32_t c = 4 * i + 1;
    if (c >= n) break;
    uint64_t bx;
    uint32_t best = c + least_of_four(d->heap + c, &bx);
    if (bx >= x) break;
    d->heap[i] = bx;
    d->lab[(uint32_t)bx].hpos = i;
    i = best;
  }
  d->heap[i] = x;
  d->lab[(uint32_t)x].hpos = i;
}

/* Set v's label to dist (with pred) and queue it with key; the caller checked improvement. */
static inline void relax_to(dir_state *d, uint32_t v, uint32_t dist, uint32_t pred, uint32_t key) {
  label *l = &d->lab[v];
  uint32_t hpos = l->hpos | ~(0u - (uint32_t)(l->stamp == d->gen)); /* stale: NOT_IN_HEAP */
  l->stamp = d->gen;
  l->dist = dist;
  l->pred = pred;
  uint32_t i = hpos == NOT_IN_HEAP ? d->hsize++ : hpos;
  d->heap[i] = (uint64_t)key << 32 | v;
  heap_up(d, i);
}

static inline uint32_t heap_pop(dir_state *d, uint32_t *key) {
  uint64_t x = d->heap[0];
  uint32_t v = (uint32_t)x;
  *key = (uint32_t)(x >> 32);
  d->lab[v].hpos = NOT_IN_HEAP;
  uint64_t last = d->heap[--d->hsize];
  d->heap[d->hsize] = HEAP_EMPTY;
  if (d->hsize > 0) {
    d->heap[0] = last;
    heap_down(d, 0);
  }
  return v;
}

/* ---- places and seeds ----------------------------------------------------------------- */

static bool place_valid(const geo_graph *g, const geo_route_place *p) {
  if (p == NULL) return false;
  if (p->arc == GEO_ARC_NONE) return p->node < g->n;
  return p->arc < g->m && isfinite(p->frac) && p->frac >= 0.0 && p->frac <= 1.0;
}

static uint32_t part_ms(uint32_t t, double frac) {
  double x = t * frac;
  return x >= (double)INF - 1 ? INF - 1 : (uint32_t)llround(x);
}

/* Where a route leaving place p enters the graph. */
static void source_seeds(const geo_graph *g, const geo_route_place *p, seeds *out) {
  out->n = 0;
  if (p->arc == GEO_ARC_NONE) {
    out->s[out->n++] = (seed){p->node, 0, GEO_ARC_NONE, 0};
    return;
  }
  uint32_t a = p->arc, b = g->twin[a];
  out->s[out->n++] = (seed){g->head[a], part_ms(g->time_ms[a], 1.0 - p->frac), a, p->frac};
  if (b != GEO_ARC_NONE)
    out->s[out->n++] = (seed){g->head[b], part_ms(g->time_ms[b], p->frac), b, 1.0 - p->frac};
}

/* Where a route reaching place p leaves the graph. */
static void target_seeds(const geo_graph *g, const geo_route_place *p, seeds *out) {
  out->n = 0;
  if (p->arc == GEO_ARC_NONE) {
    out->s[out->n++] = (seed){p->node, 0, GEO_ARC_NONE, 0};
    return;
  }
  uint32_t a = p->arc, b = g->twin[a];
  out->s[out->n++] = (seed){g->tail[a], part_ms(g->time_ms[a], p->frac), a, p->frac};
  if (b != GEO_ARC_NONE)
    out->s[out->n++] = (seed){g->tail[b], part_ms(g->time_ms[b], 1.0 - p->frac), b, 1.0 - p->frac};
}

/* A route that stays on one road, from `from` to `to` without passing a node: its time, the
 * arc and the two fractions on that arc; INF when there is none. Two node places that are
 * the same node give 0 with arc GEO_ARC_NONE. */
static uint32_t direct_route(const geo_graph *g, const geo_route_place *from,
                             const geo_route_place *to, uint32_t *arc, double *f0, double *f1) {
  *arc = GEO_ARC_NONE;
  if (from->arc == GEO_ARC_NONE || to->arc == GEO_ARC_NONE) {
    if (from->arc == GEO_ARC_NONE && to->arc == GEO_ARC_NONE && from->node == to->node) return 0;
    return INF;
  }
  uint32_t a = from->arc, b = g->twin[a];
  double ft; /* the target's fraction on arc a */
  if (to->arc == a)
    ft = to->frac;
  else if (b != GEO_ARC_NONE && to->arc == b)
    ft = 1.0 - to->frac;
  else
    return INF;
  if (ft >= from->frac) {
    *arc = a, *f0 = from->frac, *f1 = ft;
    return part_ms(g->time_ms[a], ft - from->frac);
  }
  if (b != GEO_ARC_NONE) {
    *arc = b, *f0 = 1.0 - from->frac, *f1 = 1.0 - ft;
    return part_ms(g->time_ms[b], from->frac - ft);
  }
  return INF;
}

/* Make room for need elements of elem bytes in *p (capacity *cap elements, doubling from
 * first): the one growth rule of the search state's arrays. False when out of memory (*p and
 * *cap unchanged). */
static bool grow_array(void **p, size_t *cap, size_t need, size_t elem, size_t first) {
  if (need <= *cap) return true;
  size_t nc = *cap ? *cap * 2 : first;
  while (nc < need) nc *= 2;
  if (nc > SIZE_MAX / elem) return false;
  void *q = geo__realloc(*p, *cap * elem, nc * elem);
  if (q == NULL) return false;
  *p = q;
  *cap = nc;
  return true;
}

/* ---- path recording ------------------------------------------------------------------- */

static bool path_reserve(geo_route_state *st, size_t need) {
  void *p = st->path;
  if (!grow_array(&p, &st->path_cap, need, sizeof *st->path, 256)) return false;
  st->path = p;
  return true;
}

static bool path_push(geo_route_state *st, uint32_t arc) {
  if (!path_reserve(st, st->path_len + 1)) return false;
  st->path[st->path_len++] = arc;
  return true;
}

static void path_reverse(geo_route_state *st, size_t from) {
  for (size_t i = from, j = st->path_len; i + 1 < j; i++, j--) {
    uint32_t t = st->path[i];
    st->path[i] = st->path[j - 1];
    st->path[j - 1] = t;
  }
}

/* Start a path with the partly traversed arc of source seed s (if any). */
static bool path_begin(geo_route_state *st, const seed *s) {
  st->path_len = 0;
  st->first_partial = s->arc != GEO_ARC_NONE;
  st->first_frac = s->frac;
  return !st->first_partial || path_push(st, s->arc);
}

static bool path_end(geo_route_state *st, const seed *t) {
  st->last_partial = t->arc != GEO_ARC_NONE;
  st->last_frac = t->frac;
  return !st->last_partial || path_push(st, t->arc);
}

static double path_length(const geo_route_state *st, const geo_graph *g) {
  double len = 0;
  for (size_t i = 0; i < st->path_len; i++) {
    double f = 1.0;
    if (st->path_len == 1 && st->first_partial && st->last_partial)
      f = st->last_frac - st->first_frac;
    else if (i == 0 && st->first_partial)
      f = 1.0 - st->first_frac;
    else if (i + 1 == st->path_len && st->last_partial)
      f = st->last_frac;
    len += f * g->len_m[st->path[i]];
  }
  return len;
}

/* Arcs from the seed to v following forward preds (arc tails), appended in order. */
static bool append_fwd_chain(geo_route_state *st, const geo_graph *g, const dir_state *d,
                             uint32_t v) {
  size_t start = st->path_len;
  while (d->lab[v].pred < SEED_BASE) {
    uint32_t a = d->lab[v].pred;
    if (!path_push(st, a)) return false;
    v = g->tail[a];
  }
  path_reverse(st, start);
  return true;
}

/* Arcs from v to the target seed following backward preds (arc heads). */
static bool append_bwd_chain(geo_route_state *st, const geo_graph *g, const dir_state *d,
                             uint32_t v) {
  while (d->lab[v].pred < SEED_BASE) {
    uint32_t a = d->lab[v].pred;
    if (!path_push(st, a)) return false;
    v = g->head[a];
  }
  return true;
}

/* ---- unidirectional: Dijkstra and A* ---------------------------------------------------- */

static inline uint32_t heuristic(const geo_route_state *st, const seeds *ts, double inv_speed,
                                 uint32_t v) {
  if (inv_speed <= 0) return 0;
  const double *p = st->xyz + 3 * (size_t)v;
  double best = INFINITY;
  for (int j = 0; j < ts->n; j++) {
    const double *q = st->xyz + 3 * (size_t)ts->s[j].node;
    double dx = p[0] - q[0], dy = p[1] - q[1], dz = p[2] - q[2];
    /* the chord is shorter than the arc: a lower bound of the distance */
    double h = sqrt(dx * dx + dy * dy + dz * dz) * GEO_EARTH_RADIUS_M * inv_speed + ts->s[j].off;
    if (h < best) best = h;
  }
  best = floor(best * 0.999999);
  return best >= (double)INF ? INF - 1 : (uint32_t)best;
}

/* Forward search from ss to ts. Returns the best time (INF if none), the meeting node and
 * target seed index; *settled counts pops. A* when astar, reopening nodes when a better
 * label appears (so rounding in the heuristic can never cost exactness). */
static uint32_t search_uni(geo_route_state *st, const geo_graph *g, const seeds *ss,
                           const seeds *ts, bool astar, uint32_t *meet, int *tseed,
                           uint32_t *settled) {
  dir_state *d = &st->d[0];
  dir_reset(d, st->n);
  double inv_speed = astar && g->top_speed > 0 ? 1.0 / g->top_speed : 0;
  for (int i = 0; i < ss->n; i++) {
    uint32_t v = ss->s[i].node;
    if (ss->s[i].off < dist_of(d, v)) {
      uint32_t h = astar ? heuristic(st, ts, inv_speed, v) : 0;
      relax_to(d, v, ss->s[i].off, SEED_BASE + (uint32_t)i, geo__sat_add(ss->s[i].off, h));
    }
  }
  uint32_t best = INF, count = 0;
  while (d->hsize > 0) {
    uint32_t key;
    if (heap_min_key(d) >= best) break;
    uint32_t v = heap_pop(d, &key);
    count++;
    uint32_t dv = d->lab[v].dist;
    for (int j = 0; j < ts->n; j++) {
      if (ts->s[j].node == v) {
        uint32_t c = geo__sat_add(dv, ts->s[j].off);
        if (c < best) {
          best = c;
          *meet = v;
          *tseed = j;
        }
      }
    }
    const uint32_t end = g->fwd_off[v + 1];
    for (uint32_t a = g->fwd_off[v]; a < end; a++) {
      uint32_t w = g->head[a];
      uint32_t nd = geo__sat_add(dv, g->time_ms[a]);
      if (nd < dist_of(d, w)) {
        uint32_t key_w = astar ? geo__sat_add(nd, heuristic(st, ts, inv_speed, w)) : nd;
        relax_to(d, w, nd, a, key_w);
      }
    }
  }
  *settled = count;
  return best;
}

/* ---- bidirectional Dijkstra ----------------------------------------------------------- */

static uint32_t search_bidir(geo_route_state *st, const geo_graph *g, const seeds *ss,
                             const seeds *ts, uint32_t *meet, uint32_t *settled) {
  dir_state *f = &st->d[0], *b = &st->d[1];
  dir_reset(f, st->n);
  dir_reset(b, st->n);
  for (int i = 0; i < ss->n; i++)
    if (ss->s[i].off < dist_of(f, ss->s[i].node))
      relax_to(f, ss->s[i].node, ss->s[i].off, SEED_BASE + (uint32_t)i, ss->s[i].off);
  for (int i = 0; i < ts->n; i++)
    if (ts->s[i].off < dist_of(b, ts->s[i].node))
      relax_to(b, ts->s[i].node, ts->s[i].off, SEED_BASE + (uint32_t)i, ts->s[i].off);
  uint32_t mu = INF, count = 0;
  /* A node labelled by both sides is a meeting candidate as soon as both labels exist. */
  for (int i = 0; i < ss->n; i++) {
    uint32_t v = ss->s[i].node, c = geo__sat_add(dist_of(f, v), dist_of(b, v));
    if (dist_of(b, v) != INF && c < mu) mu = c, *meet = v;
  }
  while (f->hsize > 0 || b->hsize > 0) {
    uint32_t kf = f->hsize ? heap_min_key(f) : INF, kb = b->hsize ? heap_min_key(b) : INF;
    if (geo__sat_add(kf, kb) >= mu) break;
    bool fwd = kf <= kb;
    dir_state *d = fwd ? f : b, *o = fwd ? b : f;
    uint32_t key;
    uint32_t v = heap_pop(d, &key);
    count++;
    uint32_t dv = d->lab[v].dist;
    uint32_t first = fwd ? g->fwd_off[v] : g->rev_off[v];
    uint32_t end = fwd ? g->fwd_off[v + 1] : g->rev_off[v + 1];
    for (uint32_t i = first; i < end; i++) {
      uint32_t a = fwd ? i : g->rev_arc[i];
      uint32_t w = fwd ? g->head[a] : g->tail[a];
      uint32_t nd = geo__sat_add(dv, g->time_ms[a]);
      if (nd < dist_of(d, w)) {
        relax_to(d, w, nd, a, nd);
        uint32_t ow = dist_of(o, w);
        if (ow != INF) {
          uint32_t c = geo__sat_add(nd, ow);
          if (c < mu) mu = c, *meet = w;
        }
      }
    }
  }
  *settled = count;
  return mu;
}

/* ---- contraction hierarchy query -------------------------------------------------------- */

/* One step of an upward search in direction dir (0: up arcs, forward; 1: down arcs,
 * backward) on the query layout (labels indexed by query id, preds are arc indices of q):
 * settles the heap's minimum, *v, at distance *dv. When meeting, updates mu/meet against
 * the other direction. Stall-on-demand: a node reached more cheaply through a higher
 * neighbour is not expanded, and false says so; its label is then not its distance, so it
 * can be no meeting node of a shortest route (an exact label is never stalled). */
static inline bool ch_step(geo_route_state *st, const geo_ch_query *q, int dir, bool meeting,
                           uint32_t *mu, uint32_t *meet, uint32_t *v_out, uint32_t *dv_out) {
  dir_state *d = &st->d[dir];
  uint32_t dv;
  uint32_t v = heap_pop(d, &dv);
  *v_out = v, *dv_out = dv;
  if (meeting) {
    uint64_t c = (uint64_t)dv + dist_of(&st->d[1 - dir], v); /* 64 bits: INF stays above mu */
    if (c < *mu) *mu = (uint32_t)c, *meet = v;
  }
  const uint32_t *off = q->off + 2 * (size_t)v;
  /* this direction's arcs, then the other direction's (read for the stall test) */
  uint32_t rb = off[dir], re = off[dir + 1], sb = off[1 - dir], se = off[2 - dir];
  /* stalled when a higher neighbour reaches v more cheaply: every arc is tested, without
   * an early exit, so that the only branch is the loop's */
  bool stalled = false;
  for (uint32_t i = sb; i < se; i++)
    stalled |= (uint64_t)dist_of(d, q->arc[i].node) + q->arc[i].weight_ms < dv;
  if (stalled) return false;
  for (uint32_t i = rb; i < re; i++) {
    uint32_t w = q->arc[i].node, nd = geo__sat_add(dv, q->arc[i].weight_ms);
    if (nd < dist_of(d, w)) relax_to(d, w, nd, i, nd);
  }
  return true;
}

/* Seed direction d with the seeds of ss, at their query ids. */
static void ch_seed(dir_state *d, const geo_ch_query *q, const seeds *ss) {
  for (int i = 0; i < ss->n; i++) {
    uint32_t v = q->cid[ss->s[i].node];
    if (ss->s[i].off < dist_of(d, v))
      relax_to(d, v, ss->s[i].off, SEED_BASE + (uint32_t)i, ss->s[i].off);
  }
}

/* Returns the best time and the meeting node (a query id). */
static uint32_t search_ch(geo_route_state *st, const geo_graph *g, const seeds *ss, const seeds *ts,
                          uint32_t *meet, uint32_t *settled) {
  const geo_ch_query *q = &g->chq;
  dir_state *f = &st->d[0], *b = &st->d[1];
  dir_reset(f, st->n);
  dir_reset(b, st->n);
  ch_seed(f, q, ss);
  ch_seed(b, q, ts);
  uint32_t mu = INF, count = 0;
  bool turn = false;
  for (;;) {
    bool fo = f->hsize > 0 && heap_min_key(f)<mu, bo = b->hsize> 0 && heap_min_key(b) < mu;
    if (!fo && !bo) break;
    int dir = fo && bo ? (turn = !turn) : (fo ? 0 : 1);
    uint32_t v, dv;
    ch_step(st, q, dir, true, &mu, meet, &v, &dv);
    count++;
  }
  *settled = count;
  return mu;
}

static bool stack_reserve(geo_route_state *st, size_t need) {
  void *p = st->stack;
  if (!grow_array(&p, &st->stack_cap, need, sizeof *st->stack, 256)) return false;
  st->stack = p;
  return true;
}

static inline const geo_ch_edge *ch_edge(const geo_ch_data *ch, uint32_t id) {
  return id < ch->n_up ? &ch->up[id] : &ch->dn[id - ch->n_up];
}

/* Append the original arcs of CH edge id, in travel order, or in reverse when rev. The
 * caller reserved the room (ch_route_prepare): path for every arc, stack for the nesting
 * depth (the second half waits on the stack while the first is unpacked). */
static void ch_unpack(geo_route_state *st, const geo_ch_data *ch, uint32_t id, bool rev) {
  size_t sp = 0;
  st->stack[sp++] = id;
  while (sp > 0) {
    const geo_ch_edge *e = ch_edge(ch, st->stack[--sp]);
    if (e->b == GEO_ARC_NONE) {
      st->path[st->path_len++] = e->a;
      continue;
    }
    st->stack[sp++] = rev ? e->a : e->b; /* the half that comes second */
    st->stack[sp++] = rev ? e->b : e->a;
  }
}

/* A CH route is found as labels; its length and arc count come from the query layout's
 * per-arc sums, and its arcs are unpacked only when asked for (ch_materialize). This notes
 * the route in st and reserves everything unpacking needs, so that it cannot fail later.
 * *len_m receives the length. False when out of memory. */
static bool ch_route_prepare(geo_route_state *st, const geo_graph *g, const seeds *ss,
                             const seeds *ts, uint32_t meet, double *len_m) {
  const geo_ch_query *q = &g->chq;
  const label *lf = st->d[0].lab, *lb = st->d[1].lab;
  size_t n_arcs = 0;
  double len = 0;
  uint32_t x = meet;
  while (lf[x].pred < SEED_BASE) {
    uint32_t k = lf[x].pred;
    n_arcs += q->n_arcs[k], len += q->len_m[k], x = q->src[k];
  }
  const seed *s = &ss->s[lf[x].pred - SEED_BASE];
  for (x = meet; lb[x].pred < SEED_BASE;) {
    uint32_t k = lb[x].pred;
    n_arcs += q->n_arcs[k], len += q->len_m[k], x = q->src[k];
  }
  const seed *t = &ts->s[lb[x].pred - SEED_BASE];
  st->first_partial = s->arc != GEO_ARC_NONE;
  st->first_frac = s->frac;
  st->last_partial = t->arc != GEO_ARC_NONE;
  st->last_frac = t->frac;
  if (st->first_partial) n_arcs++, len += (1.0 - s->frac) * g->len_m[s->arc];
  if (st->last_partial) n_arcs++, len += t->frac * g->len_m[t->arc];
  if (!path_reserve(st, n_arcs) || !stack_reserve(st, (size_t)q->max_depth + 1)) return false;
  st->path_len = 0;
  st->lazy = (ch_lazy){true, g, meet, s->arc, t->arc};
  *len_m = len;
  return true;
}

/* Unpack the CH route ch_route_prepare noted (a no-op for any other). Only reads the labels
 * of the query that found it, which stay until the next query. */
static void ch_materialize(geo_route_state *st) {
  if (!st->lazy.pending) return;
  st->lazy.pending = false;
  const geo_graph *g = st->lazy.g;
  const geo_ch_query *q = &g->chq;
  const label *lf = st->d[0].lab, *lb = st->d[1].lab;
  st->path_len = 0;
  if (st->first_partial) st->path[st->path_len++] = st->lazy.first_arc;
  /* the forward chain runs from the meeting node back to the source: unpack each edge
   * backwards, then turn the whole chain around */
  size_t start = st->path_len;
  for (uint32_t x = st->lazy.meet; lf[x].pred < SEED_BASE; x = q->src[lf[x].pred])
    ch_unpack(st, &g->ch, q->edge[lf[x].pred], true);
  path_reverse(st, start);
  for (uint32_t x = st->lazy.meet; lb[x].pred < SEED_BASE; x = q->src[lb[x].pred])
    ch_unpack(st, &g->ch, q->edge[lb[x].pred], false);
  if (st->last_partial) st->path[st->path_len++] = st->lazy.last_arc;
}

/* ---- point-to-point entry --------------------------------------------------------------- */

static int seed_of(const dir_state *d, uint32_t v, const geo_graph *g, bool forward) {
  while (d->lab[v].pred < SEED_BASE)
    v = forward ? g->tail[d->lab[v].pred] : g->head[d->lab[v].pred];
  return (int)(d->lab[v].pred - SEED_BASE);
}

geo_err geo_route(geo_route_state *st, const geo_graph *g, geo_route_algo algo,
                  const geo_route_place *from, const geo_route_place *to, geo_route_result *out) {
  if (st == NULL || g == NULL || out == NULL || st->n != g->n) return GEO_EINVAL;
  if (!place_valid(g, from) || !place_valid(g, to)) return GEO_EINVAL;
  if ((unsigned)algo >= GEO_ROUTE_ALGO_COUNT || (algo == GEO_ROUTE_CH && !g->has_ch))
    return GEO_EINVAL;
  st->has_path = false;
  st->lazy.pending = false;
  seeds ss, ts;
  source_seeds(g, from, &ss);
  target_seeds(g, to, &ts);
  uint32_t darc;
  double f0 = 0, f1 = 0;
  uint32_t direct = direct_route(g, from, to, &darc, &f0, &f1);
  uint32_t meet = 0, settled = 0, best = INF;
  int tseed = 0;
  switch (algo) {
  case GEO_ROUTE_DIJKSTRA:
    best = search_uni(st, g, &ss, &ts, false, &meet, &tseed, &settled);
    break;
  case GEO_ROUTE_ASTAR: best = search_uni(st, g, &ss, &ts, true, &meet, &tseed, &settled); break;
  case GEO_ROUTE_BIDIR: best = search_bidir(st, g, &ss, &ts, &meet, &settled); break;
  case GEO_ROUTE_CH: best = search_ch(st, g, &ss, &ts, &meet, &settled); break;
  default: return GEO_EINVAL;
  }
  if (best == INF && direct == INF) return GEO_EUNREACHABLE;
  st->path_len = 0;
  double len_m = 0;
  if (direct <= best) {
    st->first_partial = st->last_partial = darc != GEO_ARC_NONE;
    st->first_frac = f0;
    st->last_frac = f1;
    if (darc != GEO_ARC_NONE && !path_push(st, darc)) return GEO_ENOMEM;
    best = direct;
  } else {
    bool ok = true;
    if (algo == GEO_ROUTE_DIJKSTRA || algo == GEO_ROUTE_ASTAR) {
      int s = seed_of(&st->d[0], meet, g, true);
      ok = path_begin(st, &ss.s[s]) && append_fwd_chain(st, g, &st->d[0], meet) &&
           path_end(st, &ts.s[tseed]);
    } else if (algo == GEO_ROUTE_BIDIR) {
      int s = seed_of(&st->d[0], meet, g, true), t = seed_of(&st->d[1], meet, g, false);
      ok = path_begin(st, &ss.s[s]) && append_fwd_chain(st, g, &st->d[0], meet) &&
           append_bwd_chain(st, g, &st->d[1], meet) && path_end(st, &ts.s[t]);
    } else {
      ok = ch_route_prepare(st, g, &ss, &ts, meet, &len_m);
    }
    if (!ok) return GEO_ENOMEM;
  }
  st->has_path = true;
  out->time_ms = best;
  out->length_m = st->lazy.pending ? len_m : path_length(st, g);
  out->settled = settled;
  return GEO_OK;
}

geo_err geo_route_nodes(geo_route_state *st, const geo_graph *g, geo_route_algo algo, uint32_t from,
                        uint32_t to, geo_route_result *out) {
  geo_route_place a = geo_route_place_node(from), b = geo_route_place_node(to);
  return geo_route(st, g, algo, &a, &b, out);
}

const uint32_t *geo_route_path_arcs(const geo_route_state *st, size_t *n) {
  if (st == NULL || !st->has_path) {
    if (n) *n = 0;
    return NULL;
  }
  /* st is logically unchanged: a CH route's arcs are unpacked now (room reserved, no
   * failure), the first time they are asked for */
  ch_materialize((geo_route_state *)st);
  if (n) *n = st->path_len;
  return st->path;
}

/* ---- polyline ---------------------------------------------------------------------- */

/* Point i of arc a's full polyline (tail, shape..., head). */
static geo_latlng arc_pt(const geo_graph *g, uint32_t a, size_t i, size_t np) {
  if (i == 0) return g->pos[g->tail[a]];
  if (i == np - 1) return g->pos[g->head[a]];
  return g->shape[g->shape_off[a] + i - 1];
}

/* Emit the part [f0, f1] of arc a's polyline (fractions of its length). */
static size_t emit_arc(const geo_graph *g, uint32_t a, double f0, double f1, geo_latlng *buf,
                       size_t cap, size_t n, bool skip_first) {
  size_t np = g->shape_off[a + 1] - g->shape_off[a] + 2;
  double total = 0;
  for (size_t i = 0; i + 1 < np; i++)
    total += geo_haversine_m(arc_pt(g, a, i, np), arc_pt(g, a, i + 1, np));
  double t0 = f0 * total, t1 = f1 * total, acc = 0;
#define EMIT(p)                                                                                    \
  do {                                                                                             \
    if (!skip_first) {                                                                             \
      if (n < cap) buf[n] = (p);                                                                   \
      n++;                                                                                         \
    }                                                                                              \
    skip_first = false;                                                                            \
  } while (0)
  bool started = false;
  for (size_t i = 0; i + 1 < np; i++) {
    geo_latlng p = arc_pt(g, a, i, np), q = arc_pt(g, a, i + 1, np);
    double sl = geo_haversine_m(p, q), s0 = acc, s1 = acc + sl;
    if (!started && t0 <= s1) {
      double u = sl > 0 ? (t0 - s0) / sl : 0;
      if (u < 0) u = 0;
      EMIT(((geo_latlng){p.lat + (q.lat - p.lat) * u, p.lng + (q.lng - p.lng) * u}));
      started = true;
    }
    if (started) {
      if (t1 <= s1 || i + 2 == np) {
        double u = sl > 0 ? (t1 - s0) / sl : 1;
        if (u > 1) u = 1;
        if (u < 0) u = 0;
        EMIT(((geo_latlng){p.lat + (q.lat - p.lat) * u, p.lng + (q.lng - p.lng) * u}));
        break;
      }
      EMIT(q);
    }
    acc = s1;
  }
#undef EMIT
  return n;
}

geo_err geo_route_polyline(const geo_route_state *st, const geo_graph *g, geo_latlng *buf,
                           size_t cap, size_t *n_points) {
  if (st == NULL || g == NULL || n_points == NULL || !st->has_path) return GEO_EINVAL;
  ch_materialize((geo_route_state *)st); /* as in geo_route_path_arcs */
  size_t n = 0;
  if (st->path_len == 0) {
    /* a route that stays at one node */
    *n_points = 0;
    return GEO_OK;
  }
  for (size_t i = 0; i < st->path_len; i++) {
    double f0 = 0, f1 = 1;
    if (i == 0 && st->first_partial) f0 = st->first_frac;
    if (i + 1 == st->path_len && st->last_partial) f1 = st->last_frac;
    n = emit_arc(g, st->path[i], f0, f1, buf, cap, n, i > 0);
  }
  *n_points = n;
  return n > cap ? GEO_ERANGE : GEO_OK;
}

/* ---- one-to-many ------------------------------------------------------------------------ */

static bool tent_reserve(geo_route_state *st, size_t need) {
  void *p = st->tent;
  if (!grow_array(&p, &st->tent_cap, need, sizeof *st->tent, 1024)) return false;
  st->tent = p;
  return true;
}

static bool pend_reserve(geo_route_state *st, size_t need) {
  void *p = st->pend;
  if (!grow_array(&p, &st->pend_cap, need, sizeof *st->pend, 64)) return false;
  st->pend = p;
  return true;
}

static void tent_new_gen(geo_route_state *st) {
  if (++st->tgen == 0) {
    memset(st->tstamp, 0, (size_t)st->n * sizeof *st->tstamp);
    st->tgen = 1;
  }
}

/* Register entry (idx, off) at node v; entries of a node form a list through next. */
static void tent_add(geo_route_state *st, size_t *n_ent, uint32_t v, uint32_t idx, uint32_t off) {
  uint32_t head = st->tstamp[v] == st->tgen ? st->thead[v] : UINT32_MAX;
  st->tent[*n_ent] = (tentry){head, idx, off};
  st->tstamp[v] = st->tgen;
  st->thead[v] = (uint32_t)*n_ent;
  (*n_ent)++;
}

static geo_err many_dijkstra(geo_route_state *st, const geo_graph *g, bool reverse,
                             const seeds *src, const seeds *tsd, size_t k, uint32_t bound,
                             uint32_t *times, uint32_t *settled) {
  /* pend[i]: registrations of target i not yet settled */
  if (!tent_reserve(st, k * MAX_SEEDS) || !pend_reserve(st, k)) return GEO_ENOMEM;
  tent_new_gen(st);
  size_t n_ent = 0, open = 0;
  for (size_t i = 0; i < k; i++) {
    st->pend[i] = (uint32_t)tsd[i].n;
    open += tsd[i].n > 0;
    for (int j = 0; j < tsd[i].n; j++)
      tent_add(st, &n_ent, tsd[i].s[j].node, (uint32_t)i, tsd[i].s[j].off);
  }
  dir_state *d = &st->d[0];
  dir_reset(d, st->n);
  for (int i = 0; i < src->n; i++)
    if (src->s[i].off < dist_of(d, src->s[i].node))
      relax_to(d, src->s[i].node, src->s[i].off, SEED_BASE + (uint32_t)i, src->s[i].off);
  uint32_t count = 0;
  while (d->hsize > 0 && open > 0) {
    if (heap_min_key(d) > bound) break;
    uint32_t key;
    uint32_t v = heap_pop(d, &key);
    count++;
    uint32_t dv = d->lab[v].dist;
    if (st->tstamp[v] == st->tgen) {
      for (uint32_t e = st->thead[v]; e != UINT32_MAX; e = st->tent[e].next) {
        const tentry *t = &st->tent[e];
        uint32_t c = geo__sat_add(dv, t->off);
        if (c < times[t->idx]) times[t->idx] = c;
        if (--st->pend[t->idx] == 0) open--;
      }
    }
    uint32_t first = reverse ? g->rev_off[v] : g->fwd_off[v];
    uint32_t end = reverse ? g->rev_off[v + 1] : g->fwd_off[v + 1];
    for (uint32_t i = first; i < end; i++) {
      uint32_t a = reverse ? g->rev_arc[i] : i;
      uint32_t w = reverse ? g->tail[a] : g->head[a];
      uint32_t nd = geo__sat_add(dv, g->time_ms[a]);
      if (nd < dist_of(d, w)) relax_to(d, w, nd, a, nd);
    }
  }
  *settled = count;
  return GEO_OK;
}

/* How many arcs a one-to-many target search's stall test reads (many_ch). */
#define STALL_ARCS 4

/* The target searches' heap: dir_state's heap array, positions in tlab. */
static inline void theap_up(uint64_t *heap, tlab *tl, uint32_t i) {
  uint64_t x = heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 4;
    if (heap[p] <= x) break;
    heap[i] = heap[p];
    tl[(uint32_t)heap[i]].hpos = i;
    i = p;
  }
  heap[i] = x;
  tl[(uint32_t)x].hpos = i;
}

static inline void theap_down(uint64_t *heap, tlab *tl, uint32_t n, uint32_t i) {
  uint64_t x = heap[i];
  for (;;) {
    uint32_t c = 4 * i + 1;
    if (c >= n) break;
    uint64_t bx;
    uint32_t best = c + least_of_four(heap + c, &bx);
    if (bx >= x) break;
    heap[i] = bx;
    tl[(uint32_t)bx].hpos = i;
    i = best;
  }
  heap[i] = x;
  tl[(uint32_t)x].hpos = i;
}

/* CH one-to-many: the source's upward search runs first and runs out (up to the bound),
 * in direction 1 - tdir; then each target's upward search, in direction tdir (0 = up arcs,
 * when the targets are the origins), meets the source's labels as a point-to-point query
 * would, and stops as soon as its heap's minimum reaches the best time found for it (or
 * the bound): the source's side being complete, no later node can do better. Exact: a
 * source label is the length of a real path, and the best meeting node's is its distance.
 * times[] comes in with the direct routes, which bound the searches too. The target step
 * is ch_step's, written out: it prunes at mu and reads fewer arcs for the stall test. The
 * source's settled distances are copied to a dense array (sdist) and the target searches
 * keep 8-byte labels without stamp or pred (tlab), both reset through lists of the nodes
 * written: the meeting and stall tests read 4 and 8 bytes a node instead of a 16-byte
 * record and its stamp. A source node left in the heap at the bound is not copied: its
 * label is above the bound, so no time through it is kept. */
static geo_err many_ch(geo_route_state *st, const geo_graph *g, int tdir, const seeds *src,
                       const seeds *tsd, size_t k, uint32_t bound, uint32_t *times,
                       uint32_t *settled) {
  const geo_ch_query *q = &g->chq;
  dir_state *s = &st->d[1 - tdir], *d = &st->d[tdir];
  uint32_t count = 0, v, dv, ns = 0;
  uint32_t *sdist = st->sdist, *slist = st->slist, *tlist = st->tlist;
  tlab *tl = st->tlab;
  dir_reset(s, st->n);
  ch_seed(s, q, src);
  while (s->hsize > 0 && heap_min_key(s) <= bound) {
    count++;
    ch_step(st, q, 1 - tdir, false, NULL, NULL, &v, &dv);
    sdist[v] = dv;
    slist[ns++] = v;
  }
  uint64_t *heap = d->heap;
  const geo_ch_arc *arc = q->arc;
  for (uint32_t j = 0; j < d->hsize; j++) heap[j] = HEAP_EMPTY; /* an earlier search's */
  d->hsize = 0;
  for (size_t i = 0; i < k; i++) {
    uint32_t mu = times[i], hsize = 0, nt = 0;
    for (int j = 0; j < tsd[i].n; j++) {
      uint32_t w = q->cid[tsd[i].s[j].node], o = tsd[i].s[j].off;
      if (o < tl[w].dist) {
        if (tl[w].dist == INF) tlist[nt++] = w;
        tl[w].dist = o;
        uint32_t hp = tl[w].hpos == NOT_IN_HEAP ? hsize++ : tl[w].hpos;
        heap[hp] = (uint64_t)o << 32 | w;
        theap_up(heap, tl, hp);
      }
    }
    while (hsize > 0) {
      uint32_t key = (uint32_t)(heap[0] >> 32);
      if (key > bound || key >= mu) break;
      count++;
      /* pop */
      v = (uint32_t)heap[0];
      dv = key;
      tl[v].hpos = NOT_IN_HEAP;
      uint64_t last = heap[--hsize];
      heap[hsize] = HEAP_EMPTY;
      if (hsize > 0) {
        heap[0] = last;
        theap_down(heap, tl, hsize, 0);
      }
      uint64_t c = (uint64_t)dv + sdist[v]; /* 64 bits: INF stays above mu */
      if (c < mu) mu = (uint32_t)c;
      const uint32_t *off = q->off + 2 * (size_t)v;
      uint32_t rb = off[tdir], re = off[tdir + 1], sb = off[1 - tdir], se = off[2 - tdir];
      /* The stall test reads only the first STALL_ARCS arcs: they find nearly every stall
       * (859 nodes settled a query against 836 with all arcs), and reading all of them cost
       * about 6.6 label reads a settled node, more than the few nodes it spares. Any subset
       * is exact: a stall only skips work that could not help. */
      se = se - sb > STALL_ARCS ? sb + STALL_ARCS : se;
      bool stalled = false;
      for (uint32_t a = sb; a < se; a++)
        stalled |= (uint64_t)tl[arc[a].node].dist + arc[a].weight_ms < dv;
      /* a stalled node relaxes nothing: an empty arc range, not a jump (a quarter of the
       * target searches' nodes are stalled, in no pattern) */
      re = stalled ? rb : re;
      /* a head reached at mu or later is never settled (the loop stops at mu): not queued */
      for (uint32_t a = rb; a < re; a++) {
        uint32_t w = arc[a].node, nd = geo__sat_add(dv, arc[a].weight_ms);
        uint32_t dw = tl[w].dist, lim = dw < mu ? dw : mu; /* one test, not two */
        if (nd < lim) {
          tlist[nt] = w; /* counted only when new: a store, not a jump */
          nt += dw == INF;
          tl[w].dist = nd;
          uint32_t hp = tl[w].hpos == NOT_IN_HEAP ? hsize++ : tl[w].hpos;
          heap[hp] = (uint64_t)nd << 32 | w;
          theap_up(heap, tl, hp);
        }
      }
    }
    times[i] = mu;
    for (uint32_t j = 0; j < hsize; j++) heap[j] = HEAP_EMPTY; /* the search's leftovers */
    for (uint32_t j = 0; j < nt; j++) tl[tlist[j]] = (tlab){INF, NOT_IN_HEAP};
  }
  for (uint32_t j = 0; j < ns; j++) sdist[slist[j]] = INF;
  d->hsize = 0;
  *settled = count;
  return GEO_OK;
}

geo_err geo_route_one_to_many(geo_route_state *st, const geo_graph *g, bool use_ch,
                              geo_route_dir dir, const geo_route_place *source,
                              const geo_route_place *targets, size_t k, uint32_t bound_ms,
                              uint32_t *times_ms, uint32_t *settled) {
  if (st == NULL || g == NULL || st->n != g->n || !place_valid(g, source)) return GEO_EINVAL;
  if ((k > 0 && (targets == NULL || times_ms == NULL)) || (use_ch && !g->has_ch)) return GEO_EINVAL;
  if (dir != GEO_ROUTE_FROM_SOURCE && dir != GEO_ROUTE_TO_SOURCE) return GEO_EINVAL;
  if (k > UINT32_MAX / 4) return GEO_ERANGE;
  for (size_t i = 0; i < k; i++)
    if (!place_valid(g, &targets[i])) return GEO_EINVAL;
  if (!tent_reserve(st, k * MAX_SEEDS + 1) || !pend_reserve(st, k + 1)) return GEO_ENOMEM;
  st->has_path = false;
  st->lazy.pending = false;
  bool rev = dir == GEO_ROUTE_TO_SOURCE;
  /* The search starts where the source is left (forward) or reached (reverse); target seeds
   * go into a bounded stack buffer, in chunks, so that nothing is allocated per query. */
  seeds src;
  if (rev)
    target_seeds(g, source, &src);
  else
    source_seeds(g, source, &src);
  uint32_t count = 0;
  geo_err err = GEO_OK;
  enum { CHUNK = 256 };
  seeds tsd[CHUNK];
  /* Targets are processed in chunks of CHUNK with one search each; in practice K is small
   * (dispatch ranks tens of drivers) and there is a single chunk. */
  for (size_t base = 0; base < k; base += CHUNK) {
    size_t kc = k - base < CHUNK ? k - base : CHUNK;
    for (size_t i = 0; i < kc; i++) {
      const geo_route_place *t = &targets[base + i];
      if (rev)
        source_seeds(g, t, &tsd[i]);
      else
        target_seeds(g, t, &tsd[i]);
      uint32_t darc;
      double f0, f1;
      uint32_t direct = rev ? direct_route(g, t, source, &darc, &f0, &f1)
                            : direct_route(g, source, t, &darc, &f0, &f1);
      times_ms[base + i] = direct;
    }
    uint32_t c = 0;
    if (use_ch)
      err = many_ch(st, g, rev ? 0 : 1, &src, tsd, kc, bound_ms, times_ms + base, &c);
    else
      err = many_dijkstra(st, g, rev, &src, tsd, kc, bound_ms, times_ms + base, &c);
    count += c;
    if (err != GEO_OK) return err;
    for (size_t i = 0; i < kc; i++)
      if (times_ms[base + i] > bound_ms) times_ms[base + i] = GEO_TIME_NONE;
  }
  if (settled) *settled = count;
  return GEO_OK;
}
