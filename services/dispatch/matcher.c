/*
 * matcher.c: matching: the k nearest available drivers within a radius
 * (spatial index), ranked by road ETA with ONE one-to-many search from the pickup on the
 * reverse graph (router), the best claimed (claim store); the list walked on decline or
 * expiry; the radius widened step by step when it runs dry; no driver after the last step
 * or max_offers offers. And the batched mode: requests of a window are assigned together
 * by the Hungarian algorithm on their ETA matrix (total ETA least), greedily (cheapest
 * pair first) above hungarian_max requests.
 *
 * The matcher decides (dsp_match: this claimed driver, or no driver and why) and changes
 * no trip's state: trips.c makes the offer or ends the trip, as it applies every
 * transition.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_internal.h"
#include "hungarian.h"

typedef struct accept_ctx {
  const dsp_shard *s;
  const dsp_trip *t;
  int64_t now_ms;
} accept_ctx;

static bool tried_before(const dsp_trip *t, uint64_t handle) {
  for (size_t i = 0; i < t->n_tried; i++)
    if (t->tried[i] == handle) return true;
  return false;
}

/* A driver the trip may be offered to now. */
static bool offerable(const dsp_shard *s, const dsp_trip *t, const dsp_driver *d, int64_t now_ms) {
  return d && d->state == DSP_DRIVER_AVAILABLE && d->in_index && d->skip_until_ms <= now_ms &&
         !tried_before(t, d->handle);
}

static bool accept_cb(void *actx, uint64_t id) {
  const accept_ctx *c = actx;
  return offerable(c->s, c->t, dsp__driver_by_handle(c->s, id), c->now_ms);
}

static int cand_cmp(const void *a, const void *b) {
  const dsp_cand *x = a, *y = b;
  if (x->eta_s != y->eta_s) return x->eta_s < y->eta_s ? -1 : 1;
  if (x->dist_m != y->dist_m) return x->dist_m < y->dist_m ? -1 : 1;
  return x->handle < y->handle ? -1 : x->handle > y->handle;
}

dsp_motion dsp__motion_of(const dsp_shard *s, const dsp_driver *d, int64_t now_ms) {
  dsp_motion m = {NAN, NAN, 0};
  if (!d || !d->has_ping) return m;
  m.heading_deg = d->heading_deg;
  m.speed_mps = d->speed_mps;
  int64_t age_ms = now_ms - d->ping_rx_ms;
  if (age_ms < 0) age_ms = 0;
  if (age_ms > s->cfg.predict_max_age_ms) age_ms = s->cfg.predict_max_age_ms;
  m.age_s = (double)age_ms / 1000.0;
  return m;
}

int dsp__search(dsp_shard *s, dsp_trip *t, double radius_m, int64_t now_ms) {
  s->st.searches++;
  t->n_cands = 0;
  t->cand_next = 0;
  t->searched = true;
  accept_ctx ctx = {s, t, now_ms};
  int n = s->index.knn(s->index.ud, t->pickup, radius_m, s->cfg.k_candidates, accept_cb, &ctx,
                       s->scr_ids, s->scr_dist);
  if (n < 0) return n; /* the index's DSP_E* */
  if (n == 0) return DSP_OK;
  if ((size_t)n > s->cfg.k_candidates) n = (int)s->cfg.k_candidates;
  bool predict = s->router.etas_to_moving && s->cfg.predict_max_age_ms > 0;
  for (int i = 0; i < n; i++) {
    const dsp_driver *d = dsp__driver_by_handle(s, s->scr_ids[i]);
    s->scr_pos[i] = d ? d->pos : t->pickup;
    if (predict) s->scr_motion[i] = dsp__motion_of(s, d, now_ms);
  }
  for (int i = 0; i < n; i++) s->scr_eta[i] = INFINITY;
  /* One search from the pickup ranks every candidate at once; moving drivers are taken
   * where they are predicted to be now, not where they last pinged. */
  int rc = predict
               ? s->router.etas_to_moving(s->router.ud, &t->pickup_snap, s->scr_pos, s->scr_motion,
                                          (size_t)n, s->cfg.max_eta_s, s->scr_eta)
               : s->router.etas_to(s->router.ud, &t->pickup_snap, s->scr_pos, (size_t)n,
                                   s->cfg.max_eta_s, s->scr_eta);
  if (rc != 0) return rc; /* the router's DSP_E* */
  for (int i = 0; i < n; i++) {
    double eta = s->scr_eta[i];
    if (!dsp__driver_by_handle(s, s->scr_ids[i]) || !isfinite(eta) || eta < 0 ||
        eta > s->cfg.max_eta_s)
      continue; /* unreachable (one-way, river) or too far by road */
    t->cands[t->n_cands++] = (dsp_cand){s->scr_ids[i], eta, s->scr_dist[i]};
  }
  qsort(t->cands, t->n_cands, sizeof *t->cands, cand_cmp);
  return DSP_OK;
}

void dsp__requote(dsp_shard *s, dsp_trip *t, int64_t now_ms) {
  const dsp_driver *d = t->driver;
  if (!d || !d->has_pos || s->cfg.k_candidates < 1) return;
  s->scr_pos[0] = d->pos;
  double route_s = INFINITY;
  int rc;
  if (s->router.etas_to_moving && s->cfg.predict_max_age_ms > 0) {
    s->scr_motion[0] = dsp__motion_of(s, d, now_ms);
    rc = s->router.etas_to_moving(s->router.ud, &t->pickup_snap, s->scr_pos, s->scr_motion, 1,
                                  s->cfg.max_eta_s, &route_s);
  } else {
    rc =
        s->router.etas_to(s->router.ud, &t->pickup_snap, s->scr_pos, 1, s->cfg.max_eta_s, &route_s);
  }
  if (rc != 0 || !isfinite(route_s) || route_s < 0) return; /* the offer's quote stands */
  t->eta_s = dsp__quote(s, t, route_s);
}

double dsp__quote(const dsp_shard *s, const dsp_trip *t, double route_s) {
  return s->router.quote_eta_s ? s->router.quote_eta_s(s->router.ud, route_s, t->quote_at_ms)
                               : route_s;
}

/* Claim d for t's offer under owner; false when the claim is not won (or there is no room
 * for the offer). */
static bool try_claim(dsp_shard *s, const dsp_trip *t, dsp_driver *d, int64_t now_ms,
                      char owner[DSP_OWNER_MAX + 1]) {
  snprintf(owner, DSP_OWNER_MAX + 1, "%u:%s:%llu", s->cfg.shard, t->id,
           (unsigned long long)s->cfg.epoch);
  if (dsp_strmap_reserve(&s->offers, 1) != 0) return false;
  dsp_claim_result cr = s->claims.try_claim(
      s->claims.ud, d->id, owner, s->cfg.offer_timeout_ms + s->cfg.claim_margin_ms, now_ms);
  if (cr == DSP_CLAIM_LOST) { /* another shard (halo) or trip holds him */
    s->st.claims_lost++;
    d->skip_until_ms = now_ms + s->cfg.lost_backoff_ms;
    return false;
  }
  if (cr == DSP_CLAIM_ERROR) {
    s->st.claim_errors++;
    return false;
  }
  return true;
}

static void no_driver(dsp_match *out, dsp_no_driver_reason why) {
  out->offer = false;
  out->why = why;
}

void dsp__match_next(dsp_shard *s, dsp_trip *t, int64_t now_ms, dsp_match *out) {
  memset(out, 0, sizeof *out);
  for (;;) {
    if (t->offers_made >= s->cfg.max_offers) {
      no_driver(out, DSP_NO_DRIVER_MAX_OFFERS);
      return;
    }
    while (t->cand_next < t->n_cands) {
      const dsp_cand *c = &t->cands[t->cand_next++];
      dsp_driver *d = dsp__driver_by_handle(s, c->handle);
      if (offerable(s, t, d, now_ms) && try_claim(s, t, d, now_ms, out->owner)) {
        out->offer = true;
        out->driver = d;
        out->route_s = c->eta_s;
        return;
      }
    }
    /* The list is used up: search (first time) or widen the radius. */
    if (t->searched) {
      if (t->radius_step + 1 >= s->cfg.n_radii) {
        no_driver(out, DSP_NO_DRIVER_NEARBY);
        return;
      }
      t->radius_step++;
      s->st.widenings++;
    }
    if (dsp__search(s, t, s->cfg.radius_m[t->radius_step], now_ms) != 0) {
      no_driver(out, DSP_NO_DRIVER_ROUTING_ERROR);
      return;
    }
  }
}

/* ---------------------------------------------------------------- batched mode */

bool dsp__batch_add(dsp_shard *s, dsp_trip *t) {
  if (s->n_batch == s->cap_batch) {
    size_t cap = s->cap_batch ? s->cap_batch * 2 : 16;
    dsp_trip **b = realloc(s->batch, cap * sizeof *b);
    if (!b) return false; /* no room to wait */
    s->batch = b;
    s->cap_batch = cap;
  }
  s->batch[s->n_batch++] = t;
  t->in_batch = true;
  return true;
}

void dsp__batch_remove(dsp_shard *s, dsp_trip *t) {
  for (size_t i = 0; i < s->n_batch; i++) {
    if (s->batch[i] != t) continue;
    memmove(&s->batch[i], &s->batch[i + 1], (s->n_batch - i - 1) * sizeof *s->batch);
    s->n_batch--;
    break;
  }
  t->in_batch = false;
}

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

typedef struct pair {
  double eta_s;
  uint32_t row, col;
} pair;

static int pair_cmp(const void *a, const void *b) {
  const pair *x = a, *y = b;
  if (x->eta_s != y->eta_s) return x->eta_s < y->eta_s ? -1 : 1;
  if (x->row != y->row) return x->row < y->row ? -1 : 1;
  return x->col < y->col ? -1 : x->col > y->col;
}

/* Greedy assignment: cheapest finite pair first, each row and column once. */
static int greedy(const double *cost, size_t rows, size_t cols, int *row_to_col) {
  size_t np = 0;
  for (size_t i = 0; i < rows * cols; i++)
    if (isfinite(cost[i])) np++;
  pair *p = malloc((np ? np : 1) * sizeof *p);
  bool *col_used = calloc(cols, sizeof *col_used);
  if (!p || !col_used) {
    free(p);
    free(col_used);
    return -1;
  }
  np = 0;
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < cols; c++)
      if (isfinite(cost[r * cols + c]))
        p[np++] = (pair){cost[r * cols + c], (uint32_t)r, (uint32_t)c};
  qsort(p, np, sizeof *p, pair_cmp);
  for (size_t r = 0; r < rows; r++) row_to_col[r] = -1;
  for (size_t i = 0; i < np; i++) {
    if (row_to_col[p[i].row] >= 0 || col_used[p[i].col]) continue;
    row_to_col[p[i].row] = (int)p[i].col;
    col_used[p[i].col] = true;
  }
  free(p);
  free(col_used);
  return 0;
}

size_t dsp__batch_plan(dsp_shard *s, int64_t now_ms, dsp_trip ***order) {
  size_t n = s->n_batch;
  *order = NULL;
  if (n == 0) return 0;
  dsp_trip **trips = malloc(2 * n * sizeof *trips); /* the requests, then their order */
  if (!trips) return 0;
  memcpy(trips, s->batch, n * sizeof *trips);
  s->n_batch = 0;
  for (size_t i = 0; i < n; i++) {
    trips[i]->in_batch = false;
    trips[i]->radius_step = 0;
    if (dsp__search(s, trips[i], s->cfg.radius_m[0], now_ms) != 0) {
      trips[i]->n_cands = 0; /* match_next widens, and reports a broken router */
      trips[i]->searched = false;
    }
  }
  /* Columns: every candidate driver of any request, once. */
  size_t m = 0;
  for (size_t i = 0; i < n; i++) m += trips[i]->n_cands;
  uint64_t *cols = malloc((m ? m : 1) * sizeof *cols);
  int *assign = malloc(n * sizeof *assign);
  double *cost = NULL;
  bool assigned = false;
  if (cols && assign) {
    m = 0;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < trips[i]->n_cands; j++) cols[m++] = trips[i]->cands[j].handle;
    qsort(cols, m, sizeof *cols, u64_cmp);
    size_t u = 0;
    for (size_t j = 0; j < m; j++)
      if (u == 0 || cols[u - 1] != cols[j]) cols[u++] = cols[j];
    m = u;
    cost = m ? malloc(n * m * sizeof *cost) : NULL;
  }
  if (cost) {
    for (size_t i = 0; i < n * m; i++) cost[i] = INFINITY;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < trips[i]->n_cands; j++) {
        const uint64_t *c = bsearch(&trips[i]->cands[j].handle, cols, m, sizeof *cols, u64_cmp);
        cost[i * m + (size_t)(c - cols)] = trips[i]->cands[j].eta_s;
      }
    if (n <= s->cfg.batch.hungarian_max && m <= DSP_HUNGARIAN_MAX &&
        dsp_hungarian(cost, n, m, assign, NULL) == 0) {
      s->st.batches_hungarian++;
      assigned = true;
    } else if (greedy(cost, n, m, assign) == 0) {
      s->st.batches_greedy++;
      assigned = true;
    }
  }
  if (assigned) {
    /* The assigned driver goes first in each list (the rest are the fallbacks). */
    for (size_t i = 0; i < n; i++) {
      if (assign[i] < 0) continue;
      dsp_trip *t = trips[i];
      for (size_t j = 0; j < t->n_cands; j++) {
        if (t->cands[j].handle != cols[assign[i]]) continue;
        dsp_cand first = t->cands[j];
        memmove(&t->cands[1], &t->cands[0], j * sizeof *t->cands);
        t->cands[0] = first;
        break;
      }
    }
    /* Assigned requests first, so those left over cannot take their drivers. */
    size_t k = n;
    for (size_t i = 0; i < n; i++)
      if (assign[i] >= 0) trips[k++] = trips[i];
    for (size_t i = 0; i < n; i++)
      if (assign[i] < 0) trips[k++] = trips[i];
    memcpy(trips, trips + n, n * sizeof *trips);
  } /* else nothing to assign, or no memory: arrival order, best first */
  free(cost);
  free(cols);
  free(assign);
  *order = trips;
  return n;
}
