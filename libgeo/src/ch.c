/*
 * ch.c: building contraction hierarchies. Nodes are contracted in the order of a lazily
 * updated priority (2 x edge difference + contracted neighbours); contracting v adds a
 * shortcut u -> x for every pair of its remaining in/out edges unless a witness search
 * (a Dijkstra from u that avoids v, limited to WITNESS_SETTLE_LIMIT nodes) finds a path no
 * longer than u -> v -> x. A limited witness search can only add a superfluous shortcut,
 * so the hierarchy always gives exact travel times. Queries are in route.c; they read the
 * hierarchy through its query layout (geo_ch_query, graph_internal.h), which this file
 * derives from the hierarchy whenever one is built or loaded: nodes renumbered by descending
 * rank, each node's up and down arcs together in 8-byte records.
 */
#include "geo/ch.h"

#include "graph_internal.h"

#include <string.h>

#define WITNESS_SETTLE_LIMIT 400
#define NONE UINT32_MAX

typedef struct pedge {
  uint32_t from, to, weight;
  uint32_t a, b; /* original arc (b == NONE) or the two halves' pool ids */
} pedge;

typedef struct idlist {
  uint32_t *ids;
  uint32_t len, cap;
} idlist;

typedef struct builder {
  uint32_t n;
  pedge *pool;
  size_t n_pool, cap_pool;
  idlist *out, *in;
  uint8_t *done;
  uint32_t *deleted;
  uint32_t *prio;
  /* witness search */
  uint32_t *wdist, *wstamp, wgen, *hpos, *hkey, *hnode, hsize;
  /* heap of nodes by priority */
  uint32_t *qpos, *qkey, *qnode, qsize;
  /* final lists: pool ids per node */
  idlist *up, *dn;
  bool oom;
} builder;

static bool list_push(builder *b, idlist *l, uint32_t id) {
  if (l->len == l->cap) {
    uint32_t nc = l->cap ? l->cap * 2 : 4;
    uint32_t *p = geo__realloc(l->ids, l->cap * sizeof *p, nc * sizeof *p);
    if (p == NULL) {
      b->oom = true;
      return false;
    }
    l->ids = p;
    l->cap = nc;
  }
  l->ids[l->len++] = id;
  return true;
}

static uint32_t pool_add(builder *b, uint32_t from, uint32_t to, uint32_t w, uint32_t a,
                         uint32_t bb) {
  if (b->n_pool == b->cap_pool) {
    size_t nc = b->cap_pool ? b->cap_pool * 2 : 1024;
    pedge *p = geo__realloc(b->pool, b->cap_pool * sizeof *p, nc * sizeof *p);
    if (p == NULL) {
      b->oom = true;
      return NONE;
    }
    b->pool = p;
    b->cap_pool = nc;
  }
  if (b->n_pool >= NONE - 1) {
    b->oom = true;
    return NONE;
  }
  b->pool[b->n_pool] = (pedge){from, to, w, a, bb};
  return (uint32_t)b->n_pool++;
}

/* ---- a small indexed binary heap, used for the witness search and the node order ----- */

static void hup(uint32_t *key, uint32_t *node, uint32_t *pos, uint32_t i) {
  uint32_t k = key[i], v = node[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (key[p] <= k) break;
    key[i] = key[p], node[i] = node[p], pos[node[i]] = i;
    i = p;
  }
  key[i] = k, node[i] = v, pos[v] = i;
}

static void hdown(uint32_t *key, uint32_t *node, uint32_t *pos, uint32_t size, uint32_t i) {
  uint32_t k = key[i], v = node[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= size) break;
    if (c + 1 < size && key[c + 1] < key[c]) c++;
    if (key[c] >= k) break;
    key[i] = key[c], node[i] = node[c], pos[node[i]] = i;
    i = c;
  }
  key[i] = k, node[i] = v, pos[v] = i;
}

/* Distances from u in the remaining graph avoiding `avoid`, up to `limit`. wdist is valid
 * where wstamp == wgen. */
static void witness(builder *b, uint32_t u, uint32_t avoid, uint32_t limit) {
  if (++b->wgen == 0) {
    memset(b->wstamp, 0, b->n * sizeof *b->wstamp);
    b->wgen = 1;
  }
  b->hsize = 0;
  b->wstamp[u] = b->wgen;
  b->wdist[u] = 0;
  b->hkey[0] = 0, b->hnode[0] = u, b->hpos[u] = 0, b->hsize = 1;
  uint32_t settled = 0;
  while (b->hsize > 0 && settled < WITNESS_SETTLE_LIMIT) {
    uint32_t v = b->hnode[0], dv = b->hkey[0];
    if (dv > limit) break;
    b->hpos[v] = NONE;
    if (--b->hsize > 0) {
      b->hkey[0] = b->hkey[b->hsize], b->hnode[0] = b->hnode[b->hsize];
      hdown(b->hkey, b->hnode, b->hpos, b->hsize, 0);
    }
    settled++;
    const idlist *l = &b->out[v];
    for (uint32_t i = 0; i < l->len; i++) {
      const pedge *e = &b->pool[l->ids[i]];
      uint32_t w = e->to;
      if (w == avoid) continue;
      uint32_t nd = geo__sat_add(dv, e->weight);
      if (b->wstamp[w] != b->wgen) {
        b->wstamp[w] = b->wgen;
        b->wdist[w] = nd;
        b->hpos[w] = b->hsize;
        b->hkey[b->hsize] = nd, b->hnode[b->hsize] = w;
        hup(b->hkey, b->hnode, b->hpos, b->hsize++);
      } else if (nd < b->wdist[w]) {
        b->wdist[w] = nd;
        if (b->hpos[w] != NONE) {
          b->hkey[b->hpos[w]] = nd;
          hup(b->hkey, b->hnode, b->hpos, b->hpos[w]);
        }
      }
    }
  }
}

static uint32_t wdist_of(const builder *b, uint32_t v) {
  return b->wstamp[v] == b->wgen ? b->wdist[v] : NONE;
}

/* Contract v (really, or only count the shortcuts it would need when simulate). */
static uint32_t contract(builder *b, uint32_t v, bool simulate) {
  uint32_t shortcuts = 0;
  idlist *in = &b->in[v], *out = &b->out[v];
  uint32_t max_out = 0;
  for (uint32_t j = 0; j < out->len; j++)
    if (b->pool[out->ids[j]].weight > max_out) max_out = b->pool[out->ids[j]].weight;
  for (uint32_t i = 0; i < in->len; i++) {
    uint32_t e1 = in->ids[i];
    uint32_t u = b->pool[e1].from, w1 = b->pool[e1].weight;
    witness(b, u, v, geo__sat_add(w1, max_out));
    for (uint32_t j = 0; j < out->len; j++) {
      uint32_t e2 = out->ids[j];
      uint32_t x = b->pool[e2].to;
      if (x == u) continue;
      uint32_t via = geo__sat_add(w1, b->pool[e2].weight);
      if (wdist_of(b, x) <= via) continue;
      shortcuts++;
      if (simulate) continue;
      /* an existing u -> x edge is improved in place, else a shortcut is added */
      idlist *uo = &b->out[u];
      uint32_t found = NONE;
      for (uint32_t k = 0; k < uo->len; k++)
        if (b->pool[uo->ids[k]].to == x) {
          found = uo->ids[k];
          break;
        }
      if (found != NONE) {
        if (b->pool[found].weight > via) {
          b->pool[found].weight = via;
          b->pool[found].a = e1;
          b->pool[found].b = e2;
        }
        continue;
      }
      uint32_t id = pool_add(b, u, x, via, e1, e2);
      if (id == NONE || !list_push(b, &b->out[u], id) || !list_push(b, &b->in[x], id)) return 0;
      /* pool_add may move pool; in/out lists hold ids, so they stay valid */
    }
  }
  return shortcuts;
}

static void list_remove_node(builder *b, idlist *l, uint32_t node, bool by_to) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < l->len; i++) {
    const pedge *e = &b->pool[l->ids[i]];
    if ((by_to ? e->to : e->from) != node) l->ids[k++] = l->ids[i];
  }
  l->len = k;
}

static uint32_t priority(builder *b, uint32_t v) {
  uint32_t sc = contract(b, v, true);
  int64_t ed = (int64_t)sc - (int64_t)b->in[v].len - (int64_t)b->out[v].len;
  int64_t p = 2 * ed + (int64_t)b->deleted[v] + (1 << 20);
  return p < 0 ? 0 : (uint32_t)p;
}

static void builder_free(builder *b) {
  for (uint32_t v = 0; b->out && v < b->n; v++) geo__free(b->out[v].ids);
  for (uint32_t v = 0; b->in && v < b->n; v++) geo__free(b->in[v].ids);
  for (uint32_t v = 0; b->up && v < b->n; v++) geo__free(b->up[v].ids);
  for (uint32_t v = 0; b->dn && v < b->n; v++) geo__free(b->dn[v].ids);
  geo__free(b->out);
  geo__free(b->in);
  geo__free(b->up);
  geo__free(b->dn);
  geo__free(b->pool);
  geo__free(b->done);
  geo__free(b->deleted);
  geo__free(b->prio);
  geo__free(b->wdist);
  geo__free(b->wstamp);
  geo__free(b->hpos);
  geo__free(b->hkey);
  geo__free(b->hnode);
  geo__free(b->qpos);
  geo__free(b->qkey);
  geo__free(b->qnode);
}

bool geo_ch_present(const geo_graph *g) { return g != NULL && g->has_ch; }

/* The builder's per-node arrays, all of n (at least 1) elements. */
static bool builder_init(builder *b, uint32_t n) {
  size_t nn = n ? n : 1;
  *b = (builder){.n = n};
  b->out = geo__calloc(nn, sizeof *b->out);
  b->in = geo__calloc(nn, sizeof *b->in);
  b->up = geo__calloc(nn, sizeof *b->up);
  b->dn = geo__calloc(nn, sizeof *b->dn);
  b->done = geo__calloc(nn, 1);
  b->deleted = geo__calloc(nn, sizeof *b->deleted);
  b->prio = geo__calloc(nn, sizeof *b->prio);
  b->wdist = geo__calloc(nn, sizeof *b->wdist);
  b->wstamp = geo__calloc(nn, sizeof *b->wstamp);
  b->hpos = geo__calloc(nn, sizeof *b->hpos);
  b->hkey = geo__calloc(nn, sizeof *b->hkey);
  b->hnode = geo__calloc(nn, sizeof *b->hnode);
  b->qpos = geo__calloc(nn, sizeof *b->qpos);
  b->qkey = geo__calloc(nn, sizeof *b->qkey);
  b->qnode = geo__calloc(nn, sizeof *b->qnode);
  return b->out && b->in && b->up && b->dn && b->done && b->deleted && b->prio && b->wdist &&
         b->wstamp && b->hpos && b->hkey && b->hnode && b->qpos && b->qkey && b->qnode;
}

/* The initial edges: for each (tail, head) the fastest arc; self-loops never help. */
static bool add_graph_edges(builder *b, const geo_graph *g) {
  for (uint32_t a = 0; a < g->m; a++) {
    uint32_t u = g->tail[a], x = g->head[a];
    if (u == x) continue;
    idlist *uo = &b->out[u];
    uint32_t found = NONE;
    for (uint32_t k = 0; k < uo->len; k++)
      if (b->pool[uo->ids[k]].to == x) found = uo->ids[k];
    if (found != NONE) {
      if (g->time_ms[a] < b->pool[found].weight) {
        b->pool[found].weight = g->time_ms[a];
        b->pool[found].a = a;
      }
      continue;
    }
    uint32_t id = pool_add(b, u, x, g->time_ms[a], a, NONE);
    if (id == NONE || !list_push(b, uo, id) || !list_push(b, &b->in[x], id)) return false;
  }
  return true;
}

/* Every node in the queue with its initial priority, heapified. */
static bool queue_init(builder *b) {
  for (uint32_t v = 0; v < b->n; v++) {
    b->qkey[v] = priority(b, v);
    b->qnode[v] = v;
    b->qpos[v] = v;
  }
  if (b->oom) return false;
  b->qsize = b->n;
  for (uint32_t i = b->n / 2 + 1; i-- > 0;)
    if (i < b->n) hdown(b->qkey, b->qnode, b->qpos, b->qsize, i);
  return true;
}

/* Lazy update of the queue's head: its priority is recomputed; when it is no longer the
 * minimum it goes back into the heap and false says to look at the new head. */
static bool head_still_first(builder *b) {
  uint32_t v = b->qnode[0];
  uint32_t p = priority(b, v);
  if (p > b->qkey[0] && b->qsize > 1) {
    b->qkey[0] = p;
    hdown(b->qkey, b->qnode, b->qpos, b->qsize, 0);
    return b->qnode[0] == v;
  }
  return true;
}

static uint32_t queue_pop(builder *b) {
  uint32_t v = b->qnode[0];
  b->qpos[v] = NONE;
  if (--b->qsize > 0) {
    b->qkey[0] = b->qkey[b->qsize], b->qnode[0] = b->qnode[b->qsize];
    hdown(b->qkey, b->qnode, b->qpos, b->qsize, 0);
  }
  return v;
}

/* After contracting v: its remaining edges become final (up and down), its neighbours
 * forget it. */
static bool settle(builder *b, uint32_t v) {
  for (uint32_t i = 0; i < b->out[v].len; i++) {
    uint32_t id = b->out[v].ids[i], x = b->pool[id].to;
    if (!list_push(b, &b->up[v], id)) return false;
    list_remove_node(b, &b->in[x], v, false);
    b->deleted[x]++;
  }
  for (uint32_t i = 0; i < b->in[v].len; i++) {
    uint32_t id = b->in[v].ids[i], u = b->pool[id].from;
    if (!list_push(b, &b->dn[v], id)) return false;
    list_remove_node(b, &b->out[u], v, true);
    b->deleted[u]++;
  }
  return true;
}

/* v's neighbours' priorities change: update them in the queue. */
static void requeue_neighbours(builder *b, uint32_t v) {
  for (int side = 0; side < 2; side++) {
    idlist *l = side ? &b->in[v] : &b->out[v];
    for (uint32_t i = 0; i < l->len; i++) {
      uint32_t w = side ? b->pool[l->ids[i]].from : b->pool[l->ids[i]].to;
      if (b->qpos[w] == NONE) continue;
      uint32_t np = priority(b, w);
      uint32_t pos = b->qpos[w];
      uint32_t old = b->qkey[pos];
      b->qkey[pos] = np;
      if (np < old)
        hup(b->qkey, b->qnode, b->qpos, pos);
      else
        hdown(b->qkey, b->qnode, b->qpos, b->qsize, pos);
    }
  }
}

/* Contracts every node in priority order; rank[v] = the order v was contracted in. */
static bool contract_all(builder *b, uint32_t *rank) {
  uint32_t next_rank = 0;
  while (b->qsize > 0) {
    bool first = head_still_first(b);
    if (b->oom) return false;
    if (!first) continue;
    uint32_t v = queue_pop(b);
    contract(b, v, false);
    if (b->oom) return false;
    b->done[v] = 1;
    rank[v] = next_rank++;
    if (!settle(b, v)) return false;
    requeue_neighbours(b, v);
    if (b->oom) return false;
  }
  return true;
}

/* The final hierarchy, as the graph keeps it: CSR up and down edge lists, shortcuts
 * pointing at their two halves by final index (down edges numbered after the up ones). */
typedef struct ch_arrays {
  uint32_t *up_off, *dn_off;
  geo_ch_edge *up, *dn;
  size_t n_up, n_dn;
  uint32_t n_short;
} ch_arrays;

static void ch_arrays_free(ch_arrays *h) {
  geo__free(h->up_off);
  geo__free(h->dn_off);
  geo__free(h->up);
  geo__free(h->dn);
}

/* fin[pool id] = the edge's final index (NONE for edges that ended in neither list), and
 * the lists' offsets. */
static void number_final_edges(const builder *b, ch_arrays *h, uint32_t *fin) {
  for (size_t i = 0; i < b->n_pool; i++) fin[i] = NONE;
  uint32_t k = 0;
  for (uint32_t v = 0; v < b->n; v++) {
    h->up_off[v] = k;
    for (uint32_t i = 0; i < b->up[v].len; i++) fin[b->up[v].ids[i]] = k++;
  }
  h->up_off[b->n] = k;
  k = 0;
  for (uint32_t v = 0; v < b->n; v++) {
    h->dn_off[v] = k;
    for (uint32_t i = 0; i < b->dn[v].len; i++) fin[b->dn[v].ids[i]] = (uint32_t)h->n_up + k++;
  }
  h->dn_off[b->n] = k;
}

static void copy_final_edges(const builder *b, ch_arrays *h, const uint32_t *fin) {
  for (int side = 0; side < 2; side++) {
    for (uint32_t v = 0; v < b->n; v++) {
      const idlist *l = side ? &b->dn[v] : &b->up[v];
      for (uint32_t i = 0; i < l->len; i++) {
        const pedge *e = &b->pool[l->ids[i]];
        geo_ch_edge ce = {side ? e->from : e->to, e->weight, e->a, GEO_ARC_NONE};
        if (e->b != NONE) {
          ce.a = fin[e->a];
          ce.b = fin[e->b];
          h->n_short++;
        }
        uint32_t id = fin[l->ids[i]];
        if (side)
          h->dn[id - h->n_up] = ce;
        else
          h->up[id] = ce;
      }
    }
  }
}

/* The builder's up/down lists flattened into h (empty on failure). */
static geo_err flatten(const builder *b, ch_arrays *h) {
  size_t n_up = 0, n_dn = 0;
  for (uint32_t v = 0; v < b->n; v++) n_up += b->up[v].len, n_dn += b->dn[v].len;
  if (n_up + n_dn >= NONE - 1) return GEO_ERANGE;
  *h = (ch_arrays){.n_up = n_up, .n_dn = n_dn};
  h->up_off = geo__calloc((size_t)b->n + 1, sizeof *h->up_off);
  h->dn_off = geo__calloc((size_t)b->n + 1, sizeof *h->dn_off);
  h->up = geo__calloc(n_up ? n_up : 1, sizeof *h->up);
  h->dn = geo__calloc(n_dn ? n_dn : 1, sizeof *h->dn);
  uint32_t *fin = geo__calloc(b->n_pool ? b->n_pool : 1, sizeof *fin);
  if (!h->up_off || !h->dn_off || !h->up || !h->dn || !fin) {
    geo__free(fin);
    ch_arrays_free(h);
    *h = (ch_arrays){0};
    return GEO_ENOMEM;
  }
  number_final_edges(b, h, fin);
  copy_final_edges(b, h, fin);
  geo__free(fin);
  return GEO_OK;
}

/* ---- query layout ----------------------------------------------------------------------- */

void geo__ch_query_free(geo_ch_query *q) {
  geo__free(q->cid);
  geo__free(q->node);
  geo__free(q->off);
  geo__free(q->arc);
  geo__free(q->edge);
  geo__free(q->src);
  geo__free(q->n_arcs);
  geo__free(q->len_m);
  *q = (geo_ch_query){0};
}

/* Query id q's arcs, up then down, copied from ch (cid maps graph nodes to query ids);
 * k is the next free arc slot, returned advanced. */
static uint32_t query_fill_node(const geo_ch_data *ch, geo_ch_query *q, uint32_t qid, uint32_t k) {
  uint32_t v = q->node[qid];
  q->off[2 * (size_t)qid] = k;
  for (uint32_t i = ch->up_off[v]; i < ch->up_off[v + 1]; i++, k++) {
    q->arc[k] = (geo_ch_arc){q->cid[ch->up[i].node], ch->up[i].weight};
    q->edge[k] = i;
    q->src[k] = qid;
  }
  q->off[2 * (size_t)qid + 1] = k;
  for (uint32_t i = ch->dn_off[v]; i < ch->dn_off[v + 1]; i++, k++) {
    q->arc[k] = (geo_ch_arc){q->cid[ch->dn[i].node], ch->dn[i].weight};
    q->edge[k] = ch->n_up + i;
    q->src[k] = qid;
  }
  return k;
}

/* Arc counts, lengths and nesting depths of every arc's CH edge. A shortcut's halves are
 * edges of its middle node, which has a lower rank (a higher query id) than both its ends:
 * going through query ids downwards meets the halves first. depth (scratch, per arc) and
 * at (scratch, per CH edge: its arc) have n_up + n_dn elements. */
static void query_fill_lengths(const geo_ch_data *ch, uint32_t n, const float *len_m,
                               geo_ch_query *q, uint32_t *depth, uint32_t *at) {
  size_t total = (size_t)ch->n_up + ch->n_dn;
  for (size_t k = 0; k < total; k++) at[q->edge[k]] = (uint32_t)k;
  q->max_depth = 0;
  for (uint32_t qid = n; qid-- > 0;) {
    for (uint32_t k = q->off[2 * (size_t)qid]; k < q->off[2 * (size_t)qid + 2]; k++) {
      uint32_t id = q->edge[k];
      const geo_ch_edge *e = id < ch->n_up ? &ch->up[id] : &ch->dn[id - ch->n_up];
      if (e->b == GEO_ARC_NONE) {
        q->n_arcs[k] = 1, q->len_m[k] = len_m[e->a], depth[k] = 1;
      } else {
        uint32_t ka = at[e->a], kb = at[e->b];
        q->n_arcs[k] = geo__sat_add(q->n_arcs[ka], q->n_arcs[kb]);
        q->len_m[k] = q->len_m[ka] + q->len_m[kb];
        depth[k] = 1 + (depth[ka] > depth[kb] ? depth[ka] : depth[kb]);
      }
      if (depth[k] > q->max_depth) q->max_depth = depth[k];
    }
  }
}

geo_err geo__ch_query_make(const geo_ch_data *ch, uint32_t n, const float *len_m,
                           geo_ch_query *out) {
  size_t nn = n ? n : 1, total = (size_t)ch->n_up + ch->n_dn, nt = total ? total : 1;
  geo_ch_query q = {0};
  q.cid = geo__calloc(nn, sizeof *q.cid);
  q.node = geo__calloc(nn, sizeof *q.node);
  q.off = geo__calloc(2 * (size_t)n + 1, sizeof *q.off);
  q.arc = geo__calloc(nt, sizeof *q.arc);
  q.edge = geo__calloc(nt, sizeof *q.edge);
  q.src = geo__calloc(nt, sizeof *q.src);
  q.n_arcs = geo__calloc(nt, sizeof *q.n_arcs);
  q.len_m = geo__calloc(nt, sizeof *q.len_m);
  uint32_t *depth = geo__calloc(nt, sizeof *depth), *at = geo__calloc(nt, sizeof *at);
  if (!q.cid || !q.node || !q.off || !q.arc || !q.edge || !q.src || !q.n_arcs || !q.len_m ||
      !depth || !at) {
    geo__free(depth);
    geo__free(at);
    geo__ch_query_free(&q);
    return GEO_ENOMEM;
  }
  for (uint32_t v = 0; v < n; v++) {
    q.cid[v] = n - 1 - ch->rank[v];
    q.node[q.cid[v]] = v;
  }
  uint32_t k = 0;
  for (uint32_t qid = 0; qid < n; qid++) k = query_fill_node(ch, &q, qid, k);
  q.off[2 * (size_t)n] = k;
  query_fill_lengths(ch, n, len_m, &q, depth, at);
  geo__free(depth);
  geo__free(at);
  *out = q;
  return GEO_OK;
}

/* Arc k (of query id qid, up when up) copies the CH edge it names. */
static bool query_arc_ok(const geo_ch_data *ch, uint32_t n, const geo_ch_query *q, uint32_t qid,
                         uint32_t k, bool up) {
  uint32_t id = q->edge[k], v = q->node[qid];
  if (q->arc[k].node >= qid) return false; /* a higher rank is a lower query id */
  if (q->src[k] != qid || q->n_arcs[k] == 0 || !(q->len_m[k] >= 0)) return false;
  if (up ? id >= ch->n_up : id < ch->n_up || id - ch->n_up >= ch->n_dn) return false;
  const uint32_t *off = up ? ch->up_off : ch->dn_off;
  uint32_t i = up ? id : id - ch->n_up;
  const geo_ch_edge *e = up ? &ch->up[i] : &ch->dn[i];
  return i >= off[v] && i < off[v + 1] && e->node < n && q->cid[e->node] == q->arc[k].node &&
         e->weight == q->arc[k].weight_ms;
}

geo_err geo__ch_query_check(const geo_ch_data *ch, uint32_t n, const geo_ch_query *q) {
  size_t total = (size_t)ch->n_up + ch->n_dn;
  if (q->off[0] != 0 || q->off[2 * (size_t)n] != total) return GEO_EFORMAT;
  for (uint32_t v = 0; v < n; v++)
    if (q->cid[v] >= n || q->node[q->cid[v]] != v) return GEO_EFORMAT;
  uint8_t *seen = geo__calloc(total ? total : 1, 1);
  if (seen == NULL) return GEO_ENOMEM;
  geo_err err = GEO_EFORMAT;
  for (uint32_t qid = 0; qid < n; qid++) {
    const uint32_t *o = q->off + 2 * (size_t)qid;
    if (o[0] > o[1] || o[1] > o[2]) goto done;
    for (uint32_t k = o[0]; k < o[2]; k++) {
      if (!query_arc_ok(ch, n, q, qid, k, k < o[1]) || seen[q->edge[k]]) goto done;
      seen[q->edge[k]] = 1;
    }
  }
  err = GEO_OK; /* total arcs, each naming a distinct edge of total: every edge once */
done:
  geo__free(seen);
  return err;
}

geo_err geo_ch_check(const geo_graph *g) {
  if (g == NULL) return GEO_EINVAL;
  return g->has_ch ? geo__ch_query_check(&g->ch, g->n, &g->chq) : GEO_OK;
}

/* The hierarchy goes to g, replacing an earlier one; g takes ownership of rank, h and q. */
static void attach(geo_graph *g, uint32_t *rank, const ch_arrays *h, const geo_ch_query *q) {
  for (int i = 0; i < 5; i++) geo__free(g->ch_mem[i]);
  geo__ch_query_free(&g->chq);
  g->chq = *q;
  g->ch_mem[0] = rank, g->ch_mem[1] = h->up_off, g->ch_mem[2] = h->up, g->ch_mem[3] = h->dn_off,
  g->ch_mem[4] = h->dn;
  g->ch =
      (geo_ch_data){rank, h->up_off, h->up, h->dn_off, h->dn, (uint32_t)h->n_up, (uint32_t)h->n_dn};
  g->has_ch = true;
}

geo_err geo_ch_build(geo_graph *g, geo_ch_stats *stats) {
  if (g == NULL || g->read_only) return GEO_EINVAL;
  builder b;
  geo_err err = GEO_ENOMEM;
  uint32_t *rank = NULL;
  ch_arrays h = {0};
  if (!builder_init(&b, g->n) || !add_graph_edges(&b, g) || !queue_init(&b)) goto fail;
  rank = geo__calloc(g->n ? g->n : 1, sizeof *rank);
  if (rank == NULL || !contract_all(&b, rank)) goto fail;
  if ((err = flatten(&b, &h)) != GEO_OK) goto fail;
  geo_ch_data data = {rank, h.up_off, h.up, h.dn_off, h.dn, (uint32_t)h.n_up, (uint32_t)h.n_dn};
  geo_ch_query q;
  if ((err = geo__ch_query_make(&data, g->n, g->len_m, &q)) != GEO_OK) goto fail;
  attach(g, rank, &h, &q);
  if (stats) *stats = (geo_ch_stats){(uint32_t)h.n_up, (uint32_t)h.n_dn, h.n_short};
  rank = NULL;
  h = (ch_arrays){0};
  err = GEO_OK;
fail:
  geo__free(rank);
  ch_arrays_free(&h);
  builder_free(&b);
  return err;
}
