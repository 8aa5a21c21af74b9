/*
 * shardplan.h: the rebalancing planner behind `meridianctl shards plan` (docs/shards.md). From
 * the current map and the measured load per geohash cell (location updates, requests or
 * drivers per cell, from the hot-cell counts dispatch keeps in Redis), it proposes a map for
 * N shards whose loads are close to the ideal (total / N), moving as little as it can: only
 * shards above the ideal give, only shards below it receive, and a giving shard hands over
 * contiguous runs of its cells (from the end of its ranges), so a move is a few ranges, not a
 * scatter of cells. Pure: no I/O, no clock; the caller reads Redis and PostgreSQL.
 *
 * What it does not do: split a cell (the balance is as fine as the cells: a cell holding
 * more than the tolerance of one shard's share cannot be balanced within it), or weigh the
 * cost of moving one cell against another (every unit of load costs the same to move).
 */
#ifndef MRD_SHARDPLAN_H
#define MRD_SHARDPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "mrd/shardmap.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MRD_CELL_MAX 12 /* characters of a cell's geohash */

/* The measured load of one geohash cell (any precision up to MRD_CELL_MAX), per second. */
typedef struct mrd_cell_load {
  char cell[MRD_CELL_MAX + 1];
  double load_per_s;
} mrd_cell_load;

/* One step of a plan: [start, end) goes from shard `from` to shard `to`, carrying
 * load_per_s of the measured load. */
typedef struct mrd_plan_move {
  mrd_shard_move range;
  double load_per_s;
} mrd_plan_move;

/* A plan (caller-allocated; mrd_plan_close frees what mrd_plan_make filled in). */
typedef struct mrd_plan {
  uint32_t shards;      /* N */
  mrd_shardmap map;     /* the proposed map (a tiling) */
  mrd_plan_move *moves; /* the steps, in string order */
  size_t n_moves;
  double total_per_s;                  /* the measured load, all cells */
  double ideal_per_s;                  /* total / N */
  double before_per_s[MRD_SHARDS_MAX]; /* load per shard under the current map */
  double after_per_s[MRD_SHARDS_MAX];  /* ... and under the proposed one */
} mrd_plan;

/* Plan `shards` (1..MRD_SHARDS_MAX) shards from the current map (checked) and n cells (any
 * order; duplicates add up; negative or non-finite loads are an error). Shards >= `shards`
 * give everything away. Returns 0 and fills *out, or MRD_EINVAL with a one-line reason in err
 * (no load measured, bad cell, bad shard count), MRD_ENOMEM. */
MRD_EXPORT int mrd_plan_make(const mrd_shardmap *cur, const mrd_cell_load *cells, size_t n,
                             uint32_t shards, mrd_plan *out, char *err, size_t errcap);
MRD_EXPORT void mrd_plan_close(mrd_plan *p);

/* max / mean of load[k] over the shards whose bit is set in mask (1.0 when balanced; 0 when
 * the mask is empty or the loads are all zero). */
MRD_EXPORT double mrd_plan_imbalance(const double *load, uint64_t mask);

/* ------------------------------------------------------------- one step of an apply */

/* What `meridianctl shards apply` does next for one move, from what it observes: the
 * current map and its epoch, and the epoch each shard has confirmed serving. The step is
 * a small state machine (docs/shards.md, "The handoff"):
 *   the range is all on `from`                         -> MRD_STEP_COMMIT (write the next epoch)
 *   it is all on `to`, and `from` and `to` have not both confirmed the map's epoch
 *                                                      -> MRD_STEP_WAIT (handoff under way)
 *   it is all on `to`, both confirmed                  -> MRD_STEP_DONE
 *   anything else (another shard holds part of it)     -> MRD_STEP_CONFLICT (the map moved
 *                                                         under the plan: re-plan)
 * Re-running a step that was carried out (a killed CLI) therefore waits or goes on: resume. */
typedef enum mrd_step_action {
  MRD_STEP_COMMIT = 1,
  MRD_STEP_WAIT,
  MRD_STEP_DONE,
  MRD_STEP_CONFLICT,
} mrd_step_action;

/* confirmed[k]: the epoch shard k reports serving (0 when unknown). */
MRD_EXPORT mrd_step_action mrd_plan_step(const mrd_shardmap *cur, uint64_t epoch,
                                         const mrd_shard_move *mv, const uint64_t *confirmed);

/* Test API (no service calls it): tests/common/test_shardplan.c. */
/* The action's name ("commit", "wait", "done", "conflict"). */
MRD_EXPORT const char *mrd_step_action_name(mrd_step_action a);

#ifdef __cplusplus
}
#endif
#endif /* MRD_SHARDPLAN_H */
