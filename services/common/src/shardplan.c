/*
 * shardplan.c: the rebalancing planner (mrd/shardplan.h).
 *
 * Greedy, and deliberately so: shards above the ideal (and every shard >= N) are donors,
 * shards below it receivers. A donor walks its own cells from its highest string down and
 * hands each to the neediest receiver while that brings both closer to the ideal (a cell
 * goes when at least half of it is wanted), skipping cells too big for what is left; taken
 * cells that follow each other form one run, which is given with the gaps between them
 * (strings without load) as one assignment restricted to the donor's own ranges. The load
 * moved is therefore close to the least that must move (the receivers' shortfall), and each
 * donor's runs are few and contiguous.
 */
#include "mrd/shardplan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t cap, const char *fmt,
                                                         ...) {
  if (!err || !cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

typedef struct pcell {
  char start[MRD_RANGE_KEY_MAX + 1], end[MRD_RANGE_KEY_MAX + 1];
  double load;
  uint32_t owner;
} pcell;

static int by_cell(const void *a, const void *b) {
  return strcmp(((const pcell *)a)->start, ((const pcell *)b)->start);
}

/* The load per shard (out[MRD_SHARDS_MAX], zeroed first) of n cells under map m (checked):
 * a cell counts for the shard owning its first string. */
static void plan_loads(const mrd_shardmap *m, const mrd_cell_load *cells, size_t n, double *out) {
  for (int k = 0; k < MRD_SHARDS_MAX; k++) out[k] = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(cells[i].load_per_s))
      out[mrd_shardmap_lookup(m, cells[i].cell)] += cells[i].load_per_s;
}

double mrd_plan_imbalance(const double *load, uint64_t mask) {
  double sum = 0, max = 0;
  int n = 0;
  for (int k = 0; k < MRD_SHARDS_MAX; k++) {
    if (!(mask & (UINT64_C(1) << k))) continue;
    sum += load[k];
    if (load[k] > max) max = load[k];
    n++;
  }
  if (n == 0 || sum <= 0) return 0;
  return max / (sum / n);
}

void mrd_plan_close(mrd_plan *p) {
  if (!p) return;
  mrd_shardmap_close(&p->map);
  free(p->moves);
  p->moves = NULL;
  p->n_moves = 0;
}

/* The receiver (< shards) with the largest shortfall, or -1 when none is short. */
static int neediest(const double *load, uint32_t shards, double ideal) {
  int best = -1;
  double need = 0;
  for (uint32_t k = 0; k < shards; k++) {
    double w = ideal - load[k];
    if (w > need) {
      need = w;
      best = (int)k;
    }
  }
  return best;
}

int mrd_plan_make(const mrd_shardmap *cur, const mrd_cell_load *cells, size_t n, uint32_t shards,
                  mrd_plan *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  mrd_shardmap_init(&out->map);
  if (shards < 1 || shards > MRD_SHARDS_MAX) {
    seterr(err, errcap, "--shards must be 1..%d", MRD_SHARDS_MAX);
    return MRD_EINVAL;
  }
  pcell *pc = n ? calloc(n, sizeof *pc) : NULL;
  if (n && !pc) return MRD_ENOMEM;
  double total = 0;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    const mrd_cell_load *c = &cells[i];
    if (!c->cell[0] || strlen(c->cell) > MRD_CELL_MAX || !mrd_range_key_valid(c->cell) ||
        !isfinite(c->load_per_s) || c->load_per_s < 0) {
      seterr(err, errcap, "cell %zu ('%.*s'): not a geohash cell with a load >= 0", i, MRD_CELL_MAX,
             c->cell);
      free(pc);
      return MRD_EINVAL;
    }
    strcpy(pc[m].start, c->cell);
    mrd_geohash_prefix_end(c->cell, pc[m].end);
    pc[m].load = c->load_per_s;
    total += c->load_per_s;
    m++;
  }
  if (total <= 0) {
    seterr(err, errcap, "no load measured: nothing to balance on");
    free(pc);
    return MRD_EINVAL;
  }
  qsort(pc, m, sizeof *pc, by_cell);
  { /* duplicates add up */
    size_t w = 0;
    for (size_t i = 1; i < m; i++) {
      if (strcmp(pc[i].start, pc[w].start) == 0)
        pc[w].load += pc[i].load;
      else
        pc[++w] = pc[i];
    }
    m = m ? w + 1 : 0;
  }
  for (size_t i = 0; i < m; i++) pc[i].owner = mrd_shardmap_lookup(cur, pc[i].start);

  int rc = MRD_ENOMEM;
  if (mrd_shardmap_copy(&out->map, cur)) goto fail;
  out->shards = shards;
  out->total_per_s = total;
  out->ideal_per_s = total / shards;
  double ideal = out->ideal_per_s;
  double load[MRD_SHARDS_MAX];
  for (int k = 0; k < MRD_SHARDS_MAX; k++) load[k] = 0;
  for (size_t i = 0; i < m; i++) load[pc[i].owner] += pc[i].load;
  memcpy(out->before_per_s, load, sizeof load);

  uint64_t stuck = 0; /* donors none of whose cells fits anywhere */
  for (int round = 0; round < 4 * MRD_SHARDS_MAX; round++) {
    /* the donor with the largest excess (a shard >= N owning ranges: all it has) */
    int d = -1;
    double excess = -1;
    uint64_t owners = mrd_shardmap_shards(&out->map);
    for (int k = 0; k < MRD_SHARDS_MAX; k++) {
      double x;
      if (stuck & (UINT64_C(1) << k)) continue;
      if ((uint32_t)k >= shards) {
        if (!(owners & (UINT64_C(1) << k))) continue;
        x = load[k];
      } else {
        x = load[k] - ideal;
        if (x <= 1e-9 * total) continue;
      }
      if (x > excess) {
        excess = x;
        d = k;
      }
    }
    if (d < 0) break;
    bool removing = (uint32_t)d >= shards;
    bool moved_any = false;
    /* walk d's cells from the top; a run is [lo, hi) for receiver rr */
    const char *hi = "~";
    const char *lo = NULL;
    int rr = -1;
    for (size_t ii = m; ii-- > 0 && (removing || excess > 1e-12);) {
      pcell *c = &pc[ii];
      if (c->owner != (uint32_t)d) continue;
      /* the run's receiver while it still wants this cell, else the neediest */
      int r = lo && c->load <= 2 * (ideal - load[rr]) ? rr : neediest(load, shards, ideal);
      if (removing && r < 0) { /* everyone is full: the least loaded takes it */
        r = 0;
        for (uint32_t k = 1; k < shards; k++)
          if (load[k] < load[r]) r = (int)k;
      }
      bool take =
          r >= 0 && (removing || (c->load <= 2 * excess && c->load <= 2 * (ideal - load[r])));
      if (!take) { /* too big for what is wanted: stays; a run cannot span it */
        if (lo) {
          if (mrd_shardmap_assign(&out->map, lo, hi, d, (uint32_t)rr)) goto fail;
          lo = NULL;
        }
        hi = c->start;
        continue;
      }
      if (lo && r != rr) { /* the receiver changes: close the run here */
        if (mrd_shardmap_assign(&out->map, lo, hi, d, (uint32_t)rr)) goto fail;
        hi = lo;
        lo = NULL;
      }
      if (!lo) rr = r;
      lo = c->start;
      c->owner = (uint32_t)r;
      load[r] += c->load;
      load[d] -= c->load;
      excess -= c->load;
      moved_any = true;
    }
    if (lo && mrd_shardmap_assign(&out->map, lo, hi, d, (uint32_t)rr)) goto fail;
    if (removing) { /* what is left of it (no load) goes to the least loaded shard */
      uint32_t r = 0;
      for (uint32_t k = 1; k < shards; k++)
        if (load[k] < load[r]) r = k;
      for (;;) {
        size_t i = 0;
        while (i < out->map.n && out->map.r[i].shard != (uint32_t)d) i++;
        if (i == out->map.n) break;
        mrd_shard_range x = out->map.r[i];
        if (mrd_shardmap_assign(&out->map, x.start, x.end, d, r)) goto fail;
      }
      load[r] += load[d];
      load[d] = 0;
    } else if (!moved_any) {
      stuck |= UINT64_C(1) << d; /* nothing of it fits anywhere: as balanced as cells allow */
    }
  }

  plan_loads(&out->map, cells, n, out->after_per_s);
  mrd_shard_move *mv = NULL;
  size_t nm = 0;
  if (mrd_shardmap_diff(cur, &out->map, &mv, &nm)) goto fail;
  out->moves = nm ? calloc(nm, sizeof *out->moves) : NULL;
  if (nm && !out->moves) {
    free(mv);
    goto fail;
  }
  for (size_t i = 0; i < nm; i++) {
    out->moves[i].range = mv[i];
    for (size_t j = 0; j < m; j++)
      if (strcmp(pc[j].start, mv[i].start) >= 0 && strcmp(pc[j].start, mv[i].end) < 0)
        out->moves[i].load_per_s += pc[j].load;
  }
  out->n_moves = nm;
  free(mv);
  free(pc);
  return 0;
fail:
  free(pc);
  mrd_plan_close(out);
  return rc;
}

mrd_step_action mrd_plan_step(const mrd_shardmap *cur, uint64_t epoch, const mrd_shard_move *mv,
                              const uint64_t *confirmed) {
  bool any_from = false, any_to = false, other = false;
  for (size_t i = 0; i < cur->n; i++) {
    const mrd_shard_range *r = &cur->r[i];
    if (strcmp(r->end, mv->start) <= 0 || strcmp(r->start, mv->end) >= 0) continue;
    if (r->shard == mv->to)
      any_to = true;
    else if (r->shard == mv->from)
      any_from = true;
    else
      other = true;
  }
  if (other) return MRD_STEP_CONFLICT;
  if (any_from) return MRD_STEP_COMMIT;  /* what is still on `from` moves (all of it, normally) */
  if (!any_to) return MRD_STEP_CONFLICT; /* an empty range: cannot happen in a tiling */
  if (confirmed[mv->from] >= epoch && confirmed[mv->to] >= epoch) return MRD_STEP_DONE;
  return MRD_STEP_WAIT;
}

const char *mrd_step_action_name(mrd_step_action a) {
  switch (a) {
  case MRD_STEP_COMMIT: return "commit";
  case MRD_STEP_WAIT: return "wait";
  case MRD_STEP_DONE: return "done";
  case MRD_STEP_CONFLICT: return "conflict";
  }
  return "?";
}
