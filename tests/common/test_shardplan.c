/* test_shardplan.c: the rebalancing planner (mrd/shardplan.h) and the apply step's state
 * machine. The load is synthetic and skewed: every geohash-6 cell of dr5r and dr72 (Manhattan,
 * split between two shards at dr72 as migration 0002 does), lognormal per cell, three times
 * heavier south of the border and with hot blocks five times heavier. Random: prints its
 * seed, SEED= replays. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mrd/shardplan.h"

static const char GH[] = "0123456789bcdefghjkmnpqrstuvwxyz";
static unsigned long long g_rng;

static double urand(void) {
  g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
  return ((g_rng >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) { return sqrt(-2 * log(urand())) * cos(6.283185307179586 * urand()); }

static void epoch1(mrd_shardmap *m) {
  mrd_shardmap_init(m);
  assert_int_equal(mrd_shardmap_add(m, "", "dr72", 0), 0);
  assert_int_equal(mrd_shardmap_add(m, "dr72", "~", 1), 0);
  assert_int_equal(mrd_shardmap_check(m, NULL, 0), 0);
}

/* 2 x 1024 cells; south (dr5r) 3x heavier, 40 hot cells 5x. Returns the count. */
static size_t skewed_cells(mrd_cell_load *c) {
  size_t n = 0;
  const char *areas[2] = {"dr5r", "dr72"};
  for (int a = 0; a < 2; a++)
    for (int i = 0; i < 32; i++)
      for (int j = 0; j < 32; j++) {
        snprintf(c[n].cell, sizeof c[n].cell, "%s%c%c", areas[a], GH[i], GH[j]);
        c[n].load_per_s = exp(0.5 * gauss()) * (a == 0 ? 3.0 : 1.0);
        n++;
      }
  for (int h = 0; h < 40; h++) c[(size_t)(urand() * (double)n)].load_per_s *= 5;
  return n;
}

static double moved_load(const mrd_plan *p) {
  double s = 0;
  for (size_t i = 0; i < p->n_moves; i++) s += p->moves[i].load_per_s;
  return s;
}

static void check_plan(const mrd_shardmap *cur, const mrd_plan *p, uint32_t shards) {
  mrd_shardmap copy;
  mrd_shardmap_init(&copy);
  assert_int_equal(mrd_shardmap_copy(&copy, &p->map), 0);
  char err[200];
  if (mrd_shardmap_check(&copy, err, sizeof err)) fail_msg("the plan does not tile: %s", err);
  assert_int_equal(mrd_shardmap_shards(&p->map), (UINT64_C(1) << shards) - 1);
  /* applying the moves to the current map gives the plan's map */
  mrd_shardmap m;
  mrd_shardmap_init(&m);
  assert_int_equal(mrd_shardmap_copy(&m, cur), 0);
  for (size_t i = 0; i < p->n_moves; i++) {
    const mrd_shard_move *mv = &p->moves[i].range;
    assert_int_not_equal(mv->from, mv->to);
    assert_int_equal(mrd_shardmap_assign(&m, mv->start, mv->end, (int)mv->from, mv->to), 0);
  }
  assert_int_equal(m.n, p->map.n);
  for (size_t i = 0; i < m.n; i++) {
    assert_string_equal(m.r[i].start, p->map.r[i].start);
    assert_int_equal(m.r[i].shard, p->map.r[i].shard);
  }
  mrd_shardmap_close(&m);
  mrd_shardmap_close(&copy);
}

static void test_plan_two_to_four_balances_within_ten_percent_and_moves_little(void **st) {
  (void)st;
  static mrd_cell_load cells[2048];
  for (int run = 0; run < 20; run++) {
    unsigned long long seed =
        getenv("SEED") ? strtoull(getenv("SEED"), NULL, 10) : 1000 + (unsigned)run;
    g_rng = seed;
    size_t n = skewed_cells(cells);
    mrd_shardmap cur;
    epoch1(&cur);
    mrd_plan p;
    char err[200];
    assert_int_equal(mrd_plan_make(&cur, cells, n, 4, &p, err, sizeof err), 0);
    check_plan(&cur, &p, 4);
    double worst = 0, need = 0, max_cell = 0;
    for (uint32_t k = 0; k < 4; k++) {
      double dev = fabs(p.after_per_s[k] - p.ideal_per_s) / p.ideal_per_s;
      if (dev > worst) worst = dev;
      if (p.before_per_s[k] < p.ideal_per_s) need += p.ideal_per_s - p.before_per_s[k];
    }
    for (size_t i = 0; i < n; i++)
      if (cells[i].load_per_s > max_cell) max_cell = cells[i].load_per_s;
    double moved = moved_load(&p);
    printf("seed %llu: worst deviation %.2f%%, moved %.0f (least possible %.0f), %zu moves, %zu "
           "ranges, imbalance %.3f -> %.3f\n",
           seed, worst * 100, moved, need, p.n_moves, p.map.n,
           mrd_plan_imbalance(p.before_per_s, 0xf), mrd_plan_imbalance(p.after_per_s, 0xf));
    if (worst > 0.10) fail_msg("seed %llu: a shard is %.1f%% off the ideal", seed, worst * 100);
    /* moves minimal: the receivers' shortfall must move; not much more than that */
    if (moved > need * 1.05 + 2 * max_cell)
      fail_msg("seed %llu: moved %.0f, need %.0f", seed, moved, need);
    /* shard 1 (north, at about the ideal already) gives little */
    double from1 = 0;
    for (size_t i = 0; i < p.n_moves; i++)
      if (p.moves[i].range.from == 1) from1 += p.moves[i].load_per_s;
    assert_true(from1 <= 0.15 * p.ideal_per_s);
    /* contiguous runs: a handful of moves, not one per cell */
    assert_true(p.n_moves <= 12);
    mrd_plan_close(&p);
    mrd_shardmap_close(&cur);
    if (getenv("SEED")) break;
  }
}

static void test_plan_of_a_balanced_map_moves_nothing(void **st) {
  (void)st;
  mrd_cell_load cells[64];
  for (int i = 0; i < 32; i++) {
    snprintf(cells[i].cell, sizeof cells[i].cell, "dr5r%c", GH[i]);
    cells[i].load_per_s = 2;
    snprintf(cells[32 + i].cell, sizeof cells[i].cell, "dr72%c", GH[i]);
    cells[32 + i].load_per_s = 2;
  }
  mrd_shardmap cur;
  epoch1(&cur);
  mrd_plan p;
  assert_int_equal(mrd_plan_make(&cur, cells, 64, 2, &p, NULL, 0), 0);
  assert_int_equal(p.n_moves, 0);
  assert_float_equal(p.after_per_s[0], 64, 1e-9);
  assert_float_equal(mrd_plan_imbalance(p.after_per_s, 3), 1.0, 1e-9);
  mrd_plan_close(&p);
  mrd_shardmap_close(&cur);
}

static void test_plan_to_fewer_shards_empties_the_ones_above(void **st) {
  (void)st;
  static mrd_cell_load cells[2048];
  g_rng = 77;
  size_t n = skewed_cells(cells);
  mrd_shardmap cur;
  epoch1(&cur);
  mrd_plan four;
  assert_int_equal(mrd_plan_make(&cur, cells, n, 4, &four, NULL, 0), 0);
  mrd_plan two;
  assert_int_equal(mrd_plan_make(&four.map, cells, n, 2, &two, NULL, 0), 0);
  check_plan(&four.map, &two, 2);
  assert_float_equal(two.after_per_s[2] + two.after_per_s[3], 0, 1e-9);
  mrd_plan one;
  assert_int_equal(mrd_plan_make(&four.map, cells, n, 1, &one, NULL, 0), 0);
  assert_int_equal(one.map.n, 1);
  assert_int_equal(one.map.r[0].shard, 0);
  mrd_plan_close(&one);
  mrd_plan_close(&two);
  mrd_plan_close(&four);
  mrd_shardmap_close(&cur);
}

static void test_plan_refuses_no_load_bad_cells_and_bad_counts(void **st) {
  (void)st;
  mrd_shardmap cur;
  epoch1(&cur);
  mrd_plan p;
  char err[200];
  mrd_cell_load zero[1] = {{"dr5ru", 0}};
  assert_int_equal(mrd_plan_make(&cur, zero, 1, 4, &p, err, sizeof err), MRD_EINVAL);
  assert_non_null(strstr(err, "no load"));
  assert_int_equal(mrd_plan_make(&cur, NULL, 0, 4, &p, err, sizeof err), MRD_EINVAL);
  mrd_cell_load bad[1] = {{"dr5ra", 1}};
  assert_int_equal(mrd_plan_make(&cur, bad, 1, 4, &p, err, sizeof err), MRD_EINVAL);
  mrd_cell_load neg[1] = {{"dr5ru", -1}};
  assert_int_equal(mrd_plan_make(&cur, neg, 1, 4, &p, err, sizeof err), MRD_EINVAL);
  mrd_cell_load nan_[1] = {{"dr5ru", NAN}};
  assert_int_equal(mrd_plan_make(&cur, nan_, 1, 4, &p, err, sizeof err), MRD_EINVAL);
  mrd_cell_load ok[1] = {{"dr5ru", 1}};
  assert_int_equal(mrd_plan_make(&cur, ok, 1, 0, &p, err, sizeof err), MRD_EINVAL);
  assert_int_equal(mrd_plan_make(&cur, ok, 1, 65, &p, err, sizeof err), MRD_EINVAL);
  mrd_shardmap_close(&cur);
}

/* The apply step: commit while the range is on `from`, wait until both shards confirm the
 * new epoch, done; a range someone else took is a conflict. Also what a resumed apply sees. */
static void test_step_commits_waits_for_both_shards_then_is_done(void **st) {
  (void)st;
  mrd_shardmap m;
  epoch1(&m);
  mrd_shard_move mv = {"dr5r", "dr5s", 0, 2};
  uint64_t conf[MRD_SHARDS_MAX] = {0};
  conf[0] = conf[1] = conf[2] = 1;
  assert_int_equal(mrd_plan_step(&m, 1, &mv, conf), MRD_STEP_COMMIT);
  assert_int_equal(mrd_shardmap_assign(&m, mv.start, mv.end, (int)mv.from, mv.to), 0); /* epoch 2 */
  assert_int_equal(mrd_plan_step(&m, 2, &mv, conf), MRD_STEP_WAIT);
  conf[2] = 2; /* the receiver warmed and serves epoch 2 */
  assert_int_equal(mrd_plan_step(&m, 2, &mv, conf), MRD_STEP_WAIT);
  conf[0] = 2; /* the giver let go */
  assert_int_equal(mrd_plan_step(&m, 2, &mv, conf), MRD_STEP_DONE);
  /* a CLI killed after the commit: the same step, re-run, is not committed twice */
  assert_int_equal(mrd_plan_step(&m, 2, &mv, conf), MRD_STEP_DONE);
  /* someone moved part of it to shard 3: conflict */
  assert_int_equal(mrd_shardmap_assign(&m, "dr5rb", "dr5rc", -1, 3), 0);
  assert_int_equal(mrd_plan_step(&m, 3, &mv, conf), MRD_STEP_CONFLICT);
  /* half on from, half on to (an older partial move): the rest is committed */
  mrd_shardmap h;
  epoch1(&h);
  assert_int_equal(mrd_shardmap_assign(&h, "dr5r", "dr5rm", -1, 2), 0);
  assert_int_equal(mrd_plan_step(&h, 2, &mv, conf), MRD_STEP_COMMIT);
  assert_string_equal(mrd_step_action_name(MRD_STEP_WAIT), "wait");
  mrd_shardmap_close(&h);
  mrd_shardmap_close(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plan_two_to_four_balances_within_ten_percent_and_moves_little),
      cmocka_unit_test(test_plan_of_a_balanced_map_moves_nothing),
      cmocka_unit_test(test_plan_to_fewer_shards_empties_the_ones_above),
      cmocka_unit_test(test_plan_refuses_no_load_bad_cells_and_bad_counts),
      cmocka_unit_test(test_step_commits_waits_for_both_shards_then_is_done),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
