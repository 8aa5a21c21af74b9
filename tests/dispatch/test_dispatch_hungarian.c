/*
 * test_dispatch_hungarian.c: the Hungarian assignment against hand-checked cases and
 * against brute force on small random matrices (with forbidden pairs). Random cases print
 * their seed; SEED=n replays them.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dsp_fixture.h"
#include "hungarian.h"

/* Greedy (cheapest cell first, or rows in arrival order) takes the 1 and is left with
 * the 100: 101. The optimum crosses over: 2 + 2 = 4. */
static void test_hungarian_beats_greedy_when_greedy_is_trapped(void **state) {
  (void)state;
  /* clang-format off */
  const double c[4] = {1, 2,
                       2, 100};
  /* clang-format on */
  int a[2];
  double total = -1;
  assert_int_equal(dsp_hungarian(c, 2, 2, a, &total), 0);
  assert_int_equal(a[0], 1);
  assert_int_equal(a[1], 0);
  assert_true(fabs(total - 4) < 1e-9);
}

/* All 6 permutations of the matrix below: 012: 1+8+9=18  021: 1+7+4=12  102: 2+3+9=14
 * 120: 2+7+9=18  201: 9+3+4=16  210: 9+8+9=26: the optimum is 0->0, 1->2, 2->1. */
static void test_hungarian_picks_the_least_total_of_all_permutations(void **state) {
  (void)state;
  /* clang-format off */
  const double c[9] = {1, 2, 9,
                       3, 8, 7,
                       9, 4, 9};
  /* clang-format on */
  int a[3];
  double total = -1;
  assert_int_equal(dsp_hungarian(c, 3, 3, a, &total), 0);
  assert_int_equal(a[0], 0);
  assert_int_equal(a[1], 2);
  assert_int_equal(a[2], 1);
  assert_true(fabs(total - 12) < 1e-9);
}

static void test_hungarian_wide_matrix_leaves_columns_unused(void **state) {
  (void)state;
  /* 2 requests, 4 drivers. */
  /* clang-format off */
  const double c[8] = {5, 1, 3, 9,
                       6, 2, 8, 4};
  /* clang-format on */
  int a[2];
  double total;
  assert_int_equal(dsp_hungarian(c, 2, 4, a, &total), 0);
  /* options: 0->1 (1) + 1->3 (4) = 5; 0->2 (3) + 1->1 (2) = 5: both 5. */
  assert_true(fabs(total - 5) < 1e-9);
  assert_true(a[0] != a[1]);
  assert_true(fabs(c[0 * 4 + a[0]] + c[1 * 4 + a[1]] - 5) < 1e-9);
}

static void test_hungarian_tall_matrix_leaves_rows_unassigned(void **state) {
  (void)state;
  /* 3 requests, 1 driver: the cheapest request gets him. */
  const double c[3] = {7, 2, 5};
  int a[3];
  double total;
  assert_int_equal(dsp_hungarian(c, 3, 1, a, &total), 0);
  assert_int_equal(a[0], -1);
  assert_int_equal(a[1], 0);
  assert_int_equal(a[2], -1);
  assert_true(fabs(total - 2) < 1e-9);
}

static void test_hungarian_never_uses_a_forbidden_pair_and_assigns_most_rows(void **state) {
  (void)state;
  /* Row 0 can only use col 0. Cheapest-total without the count rule would give col 0 to
   * row 1 (cost 1) and leave row 0 out; the contract assigns both. */
  /* clang-format off */
  const double c[4] = {100, INFINITY,
                       1, 50};
  /* clang-format on */
  int a[2];
  double total;
  assert_int_equal(dsp_hungarian(c, 2, 2, a, &total), 0);
  assert_int_equal(a[0], 0);
  assert_int_equal(a[1], 1);
  assert_true(fabs(total - 150) < 1e-9);
  /* A row with no allowed column stays unassigned. */
  /* clang-format off */
  const double d[4] = {INFINITY, INFINITY,
                       3, 4};
  /* clang-format on */
  assert_int_equal(dsp_hungarian(d, 2, 2, a, &total), 0);
  assert_int_equal(a[0], -1);
  assert_int_equal(a[1], 0);
  assert_true(fabs(total - 3) < 1e-9);
}

static void test_hungarian_rejects_bad_arguments(void **state) {
  (void)state;
  const double ok[1] = {1};
  const double neg[1] = {-1};
  const double nan_[1] = {NAN};
  int a[1] = {42};
  assert_int_equal(dsp_hungarian(NULL, 1, 1, a, NULL), -1);
  assert_int_equal(dsp_hungarian(ok, 0, 1, a, NULL), -1);
  assert_int_equal(dsp_hungarian(ok, 1, 0, a, NULL), -1);
  assert_int_equal(dsp_hungarian(ok, 1, 1, NULL, NULL), -1);
  assert_int_equal(dsp_hungarian(neg, 1, 1, a, NULL), -1);
  assert_int_equal(dsp_hungarian(nan_, 1, 1, a, NULL), -1);
  assert_int_equal(dsp_hungarian(ok, DSP_HUNGARIAN_MAX + 1, 1, a, NULL), -1);
  assert_int_equal(a[0], 42); /* untouched on failure */
}

/* Brute force: the best (most rows assigned, then least total) over every partial
 * injective assignment. */
typedef struct brute {
  const double *c;
  size_t rows, cols;
  bool used[8];
  int best_count;
  double best_total;
} brute;

static void brute_rec(brute *b, size_t r, int count, double total) {
  if (r == b->rows) {
    if (count > b->best_count || (count == b->best_count && total < b->best_total - 1e-9)) {
      b->best_count = count;
      b->best_total = total;
    }
    return;
  }
  brute_rec(b, r + 1, count, total); /* row r left out */
  for (size_t c = 0; c < b->cols; c++) {
    double v = b->c[r * b->cols + c];
    if (b->used[c] || !isfinite(v)) continue;
    b->used[c] = true;
    brute_rec(b, r + 1, count + 1, total + v);
    b->used[c] = false;
  }
}

static void test_hungarian_matches_brute_force_on_random_matrices(void **state) {
  (void)state;
  unsigned seed = test_seed();
  srand(seed);
  for (int iter = 0; iter < 3000; iter++) {
    size_t rows = 1 + (size_t)rand() % 6, cols = 1 + (size_t)rand() % 6;
    double c[36];
    int inf_pct = rand() % 60;
    bool integer = rand() % 2; /* integers make ties, which stress the tie handling */
    for (size_t i = 0; i < rows * cols; i++) {
      if (rand() % 100 < inf_pct)
        c[i] = INFINITY;
      else
        c[i] = integer ? (double)(rand() % 10) : (double)rand() / RAND_MAX * 1000.0;
    }
    brute b = {.c = c, .rows = rows, .cols = cols, .best_count = -1};
    brute_rec(&b, 0, 0, 0);
    int a[6];
    double total = -1;
    assert_int_equal(dsp_hungarian(c, rows, cols, a, &total), 0);
    int count = 0;
    double sum = 0;
    bool used[6] = {false};
    for (size_t r = 0; r < rows; r++) {
      if (a[r] < 0) continue;
      assert_true((size_t)a[r] < cols);
      assert_false(used[a[r]]);
      used[a[r]] = true;
      assert_true(isfinite(c[r * cols + (size_t)a[r]]));
      count++;
      sum += c[r * cols + (size_t)a[r]];
    }
    if (count != b.best_count || fabs(sum - b.best_total) > 1e-6 || fabs(total - sum) > 1e-6)
      fail_msg("SEED=%u iter %d (%zux%zu): got %d rows / %.6f, brute force %d / %.6f", seed, iter,
               rows, cols, count, sum, b.best_count, b.best_total);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hungarian_beats_greedy_when_greedy_is_trapped),
      cmocka_unit_test(test_hungarian_picks_the_least_total_of_all_permutations),
      cmocka_unit_test(test_hungarian_wide_matrix_leaves_columns_unused),
      cmocka_unit_test(test_hungarian_tall_matrix_leaves_rows_unassigned),
      cmocka_unit_test(test_hungarian_never_uses_a_forbidden_pair_and_assigns_most_rows),
      cmocka_unit_test(test_hungarian_rejects_bad_arguments),
      cmocka_unit_test(test_hungarian_matches_brute_force_on_random_matrices),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
