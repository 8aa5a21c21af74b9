/*
 * test_loadgen_report.c: nearest-rank percentiles, summaries, errors by code, and the JSON
 * report's keys that scripts read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"
#include "trips_csv.h"

static void test_percentile_nearest_rank(void **state) {
  (void)state;
  double v[10];
  for (int i = 0; i < 10; i++) v[i] = i + 1; /* 1..10 */
  assert_true(lg_percentile_sorted(v, 10, 50) == 5);
  assert_true(lg_percentile_sorted(v, 10, 51) == 6);
  assert_true(lg_percentile_sorted(v, 10, 95) == 10);
  assert_true(lg_percentile_sorted(v, 10, 90) == 9);
  assert_true(lg_percentile_sorted(v, 10, 0) == 1);
  assert_true(lg_percentile_sorted(v, 10, 100) == 10);
  double one = 7;
  assert_true(lg_percentile_sorted(&one, 1, 99) == 7);
  assert_true(isnan(lg_percentile_sorted(v, 0, 50)));
}

static void test_summary_of_unsorted_samples(void **state) {
  (void)state;
  lg_samples s = {0};
  for (int i = 1000; i >= 1; i--) assert_int_equal(lg_samples_add(&s, i), 0);
  lg_summary m = lg_samples_summary(&s);
  assert_int_equal(m.n, 1000);
  assert_true(m.p50 == 500);
  assert_true(m.p95 == 950);
  assert_true(m.p99 == 990);
  assert_true(m.max == 1000);
  assert_true(fabs(m.mean - 500.5) < 1e-9);
  assert_true(s.v[0] == 1000); /* the samples keep their order */
  lg_samples_close(&s);
  lg_summary e = lg_samples_summary(&s);
  assert_int_equal(e.n, 0);
  assert_true(isnan(e.p99));
}

static void test_median_of_absolute_errors(void **state) {
  (void)state;
  lg_samples s = {0};
  double v[] = {-50, 10, -5, 20, 30};
  for (int i = 0; i < 5; i++) lg_samples_add(&s, v[i]);
  assert_true(lg_samples_median_abs(&s) == 20);
  lg_samples_close(&s);
}

static void test_errors_counted_by_code(void **state) {
  (void)state;
  lg_stats st = {0};
  lg_stats_error(&st, "unknown_offer");
  lg_stats_error(&st, "rate_limited");
  lg_stats_error(&st, "unknown_offer");
  assert_int_equal(lg_stats_errors(&st, "unknown_offer"), 2);
  assert_int_equal(lg_stats_errors(&st, "rate_limited"), 1);
  assert_int_equal(lg_stats_errors(&st, "internal"), 0);
  char code[16];
  for (int i = 0; i < 40; i++) {
    snprintf(code, sizeof code, "c%d", i);
    lg_stats_error(&st, code);
  }
  assert_int_equal(st.n_error_codes, LG_MAX_ERROR_CODES);
  size_t total = 0;
  for (size_t i = 0; i < st.n_error_codes; i++) total += st.errors[i].n;
  assert_int_equal(total, 43);
  lg_stats_close(&st);
}

static void test_json_report_has_the_keys_scripts_read(void **state) {
  (void)state;
  lg_stats st = {0};
  st.requested = 10, st.matched = 9, st.no_driver = 1, st.completed = 8, st.cancelled = 1;
  for (int i = 1; i <= 100; i++)
    lg_samples_add(&st.match_ms, i), lg_samples_add(&st.offer_ms, i / 2.0);
  lg_samples_add(&st.pickup_eta_err_pct, -12);
  for (int i = 1; i <= 20; i++)
    lg_samples_add(&st.wait_s, i * 10), lg_samples_add(&st.pickup_eta_s, 100);
  st.updates_in_window = 500;
  st.replay_wall_s = 10;
  lg_stats_error(&st, "unknown_offer");
  size_t skipped[LG_SKIP_REASON_COUNT] = {0};
  uint32_t first[1] = {0};
  lg_report_info info = {"t.csv", "nyc-tlc", "ws://x:1", "r1", 5, 10, 0, 0, skipped, first, 0,
                         60,      60,        0.9,        0.0,  0, 2,  1, 4, 30,      1.25,  true};
  char path[] = "/tmp/lg_report_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(lg_report_write_json(path, &info, &st), 0);
  json_error_t je;
  json_t *o = json_load_file(path, 0, &je);
  unlink(path);
  assert_non_null(o);
  const char *ints[] = {"requested", "matched", "no_driver", "cancelled", "completed"};
  long want[] = {10, 9, 1, 1, 8};
  for (int i = 0; i < 5; i++)
    assert_int_equal(json_integer_value(json_object_get(o, ints[i])), want[i]);
  assert_true(json_real_value(json_object_get(json_object_get(o, "match_latency_ms"), "p99")) ==
              99);
  assert_true(json_real_value(json_object_get(json_object_get(o, "offer_latency_ms"), "p50")) ==
              25);
  assert_true(json_is_object(json_object_get(json_object_get(o, "offer_latency_ms"), "p95")) == 0);
  assert_true(json_real_value(json_object_get(o, "updates_per_s")) == 50);
  assert_true(json_real_value(json_object_get(o, "eta_error_pct")) == 12);
  /* the rider's wait (request -> driver at the pickup) and the quoted pickup ETA */
  assert_true(json_real_value(json_object_get(json_object_get(o, "wait_s"), "mean")) == 105);
  assert_true(json_real_value(json_object_get(json_object_get(o, "wait_s"), "p50")) == 100);
  assert_true(json_real_value(json_object_get(json_object_get(o, "wait_s"), "p95")) == 190);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "wait_s"), "n")), 20);
  assert_true(json_real_value(json_object_get(json_object_get(o, "pickup_eta_s"), "mean")) == 100);
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(o, "errors"), "unknown_offer")), 1);
  /* the simulated ping period (asked, and as the wall-clock cap let it be) and the pace */
  json_t *cfg = json_object_get(o, "config");
  assert_true(json_real_value(json_object_get(cfg, "ping_period_s")) == 4);
  assert_true(json_real_value(json_object_get(cfg, "ping_gap_s")) == 30);
  assert_true(json_real_value(json_object_get(cfg, "drive_pace")) == 1.25);
  assert_true(json_is_true(json_object_get(cfg, "motion")));
  json_decref(o);
  lg_stats_close(&st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_percentile_nearest_rank),
      cmocka_unit_test(test_summary_of_unsorted_samples),
      cmocka_unit_test(test_median_of_absolute_errors),
      cmocka_unit_test(test_errors_counted_by_code),
      cmocka_unit_test(test_json_report_has_the_keys_scripts_read),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
