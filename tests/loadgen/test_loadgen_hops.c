/*
 * test_loadgen_hops.c: the per-hop breakdown the load generator reads from the gateway's
 * /metrics (loadgen/hops.c): the text format as mrd_metrics renders it (labels, escapes,
 * +Inf, other families sharing a prefix), malformed lines, the difference of two scrapes,
 * quantiles interpolated in a bucket, and the report of a run (hops, total, restart).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hops.h"

/* Two hops and the total, as the gateway renders them (bounds 1, 2, 4 ms). */
static const char BEFORE[] =
    "# HELP meridian_gateway_trace_hop_seconds traced ride requests, per hop\n"
    "# TYPE meridian_gateway_trace_hop_seconds histogram\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"gateway_in\",le=\"0.001\"} 1\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"gateway_in\",le=\"0.002\"} 2\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"gateway_in\",le=\"0.004\"} 2\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"gateway_in\",le=\"+Inf\"} 2\n"
    "meridian_gateway_trace_hop_seconds_sum{hop=\"gateway_in\"} 0.002\n"
    "meridian_gateway_trace_hop_seconds_count{hop=\"gateway_in\"} 2\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"events_kafka\",le=\"0.001\"} 0\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"events_kafka\",le=\"0.002\"} 0\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"events_kafka\",le=\"0.004\"} 2\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"events_kafka\",le=\"+Inf\"} 2\n"
    "meridian_gateway_trace_hop_seconds_sum{hop=\"events_kafka\"} 0.006\n"
    "meridian_gateway_trace_hop_seconds_count{hop=\"events_kafka\"} 2\n"
    "# HELP meridian_gateway_trace_seconds traced\n"
    "# TYPE meridian_gateway_trace_seconds histogram\n"
    "meridian_gateway_trace_seconds_bucket{le=\"0.001\"} 0\n"
    "meridian_gateway_trace_seconds_bucket{le=\"0.002\"} 0\n"
    "meridian_gateway_trace_seconds_bucket{le=\"0.004\"} 1\n"
    "meridian_gateway_trace_seconds_bucket{le=\"+Inf\"} 2\n"
    "meridian_gateway_trace_seconds_sum 0.008\n"
    "meridian_gateway_trace_seconds_count 2\n"
    "meridian_gateway_traces_total{result=\"ok\"} 2\n";

/* 10 more traces: gateway_in 4 in (0, 1] ms and 6 in (1, 2]; events_kafka all in (2, 4];
 * the total 10 in (2, 4]. */
static const char AFTER[] =
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"gateway_in\",le=\"0.001\"} 5\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"gateway_in\",le=\"0.002\"} 12\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"gateway_in\",le=\"0.004\"} 12\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"gateway_in\",le=\"+Inf\"} 12\n"
    "meridian_gateway_trace_hop_seconds_sum{hop=\"gateway_in\"} 0.014\n"
    "meridian_gateway_trace_hop_seconds_count{hop=\"gateway_in\"} 12\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"events_kafka\",le=\"0.001\"} 0\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"events_kafka\",le=\"0.002\"} 0\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"events_kafka\",le=\"0.004\"} 12\n"
    "meridian_gateway_trace_hop_seconds_bucket{hop=\"events_kafka\",le=\"+Inf\"} 12\n"
    "meridian_gateway_trace_hop_seconds_sum{hop=\"events_kafka\"} 0.036\n"
    "meridian_gateway_trace_hop_seconds_count{hop=\"events_kafka\"} 12\n"
    "meridian_gateway_trace_seconds_bucket{le=\"0.001\"} 0\n"
    "meridian_gateway_trace_seconds_bucket{le=\"0.002\"} 0\n"
    "meridian_gateway_trace_seconds_bucket{le=\"0.004\"} 11\n"
    "meridian_gateway_trace_seconds_bucket{le=\"+Inf\"} 12\n"
    "meridian_gateway_trace_seconds_sum 0.050\n"
    "meridian_gateway_trace_seconds_count 12\n";

static void test_reads_every_series_of_a_family_by_label(void **state) {
  (void)state;
  lg_hist_set s;
  assert_int_equal(lg_prom_histograms(BEFORE, LG_HOP_FAMILY, "hop", &s), 0);
  assert_int_equal(s.n, 2);
  assert_string_equal(s.name[0], "gateway_in");
  assert_string_equal(s.name[1], "events_kafka");
  assert_int_equal(s.h[0].n, 4);
  assert_true(s.h[0].le[0] == 0.001 && isinf(s.h[0].le[3]));
  assert_true(s.h[0].cum[1] == 2 && s.h[0].count == 2 && s.h[0].sum == 0.002);
  /* the unlabelled family is not confused with the labelled one sharing its prefix */
  assert_int_equal(lg_prom_histograms(BEFORE, LG_TRACE_FAMILY, NULL, &s), 0);
  assert_int_equal(s.n, 1);
  assert_int_equal(s.h[0].n, 4);
  assert_true(s.h[0].count == 2 && s.h[0].sum == 0.008);
  /* a family that is not there */
  assert_int_equal(lg_prom_histograms(BEFORE, "meridian_nothing_seconds", "hop", &s), 0);
  assert_int_equal(s.n, 0);
  /* escaped quotes in another label value */
  static const char esc[] = "x_bucket{a=\"q\\\"uote\",hop=\"h1\",le=\"1\"} "
                            "3\nx_bucket{a=\"\",hop=\"h1\",le=\"+Inf\"} 4\n";
  assert_int_equal(lg_prom_histograms(esc, "x", "hop", &s), 0);
  assert_int_equal(s.n, 1);
  assert_true(s.h[0].n == 2 && s.h[0].cum[1] == 4);
}

static void test_refuses_malformed_lines_of_the_family(void **state) {
  (void)state;
  static const char *const bad[] = {
      "x_bucket{hop=\"a\",le=\"1\"} many\n",                              /* not a number */
      "x_bucket{hop=\"a\",le=\"2\"} 1\nx_bucket{hop=\"a\",le=\"1\"} 2\n", /* bounds not increasing
                                                                           */
      "x_bucket{hop=\"a\",le=\"1} 1\n",                                   /* unterminated */
      "x_bucket{hop=\"a\"} 1\n",                                          /* no le */
      "x_bucket{hop=\"a\",le=\"one\"} 1\n",                               /* bad le */
  };
  lg_hist_set s;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (lg_prom_histograms(bad[i], "x", "hop", &s) != -1) fail_msg("accepted: %s", bad[i]);
  /* lines of other families are never read */
  assert_int_equal(lg_prom_histograms("y_bucket{hop=\"a\",le=\"one\"} 1\n", "x", "hop", &s), 0);
  assert_int_equal(s.n, 0);
}

static void test_quantiles_interpolate_inside_a_bucket(void **state) {
  (void)state;
  lg_hist h = {.n = 4, .le = {1, 2, 4, INFINITY}, .cum = {4, 10, 10, 10}, .sum = 14, .count = 10};
  assert_float_equal(lg_hist_quantile(&h, 0.5), 1.0 + (5.0 - 4.0) / 6.0, 1e-12);
  assert_float_equal(lg_hist_quantile(&h, 0.2), 0.5, 1e-12); /* first bucket from 0 */
  assert_float_equal(lg_hist_quantile(&h, 0.4), 1.0, 1e-12); /* exactly a bound */
  assert_float_equal(lg_hist_mean(&h), 1.4, 1e-12);
  lg_hist tail = {.n = 3, .le = {1, 2, INFINITY}, .cum = {1, 1, 10}, .count = 10};
  assert_float_equal(lg_hist_quantile(&tail, 0.99), 2.0, 1e-12); /* in +Inf: the last bound */
  lg_hist empty = {.n = 2, .le = {1, INFINITY}};
  assert_true(isnan(lg_hist_quantile(&empty, 0.5)));
  assert_true(isnan(lg_hist_mean(&empty)));
  assert_true(isnan(lg_hist_quantile(&h, 0)) && isnan(lg_hist_quantile(&h, 1)));
}

static void test_delta_refuses_a_restart_and_other_bounds(void **state) {
  (void)state;
  lg_hist a = {.n = 2, .le = {1, INFINITY}, .cum = {5, 9}, .sum = 3, .count = 9};
  lg_hist b = {.n = 2, .le = {1, INFINITY}, .cum = {2, 3}, .sum = 1, .count = 3};
  lg_hist d;
  assert_int_equal(lg_hist_delta(&a, &b, &d), 0);
  assert_true(d.cum[0] == 3 && d.cum[1] == 6 && d.count == 6 && d.sum == 2);
  assert_int_equal(lg_hist_delta(&b, &a, &d), -1); /* counts went down */
  b.le[0] = 2;
  assert_int_equal(lg_hist_delta(&a, &b, &d), -1);
  b.n = 1;
  assert_int_equal(lg_hist_delta(&a, &b, &d), -1);
}

static void test_report_of_a_run_is_the_difference_of_two_scrapes(void **state) {
  (void)state;
  lg_hops_report r;
  assert_int_equal(lg_hops_from_scrapes(BEFORE, AFTER, &r), 0);
  assert_true(r.have);
  assert_int_equal(r.n, 2);
  assert_string_equal(r.hop[0].name, "gateway_in");
  assert_true(r.hop[0].n == 10);
  /* 4 in (0, 1], 6 in (1, 2]: rank 5 is 1/6 into the second bucket */
  assert_float_equal(r.hop[0].p50_ms, 1.0 + 1.0 / 6.0, 1e-9);
  assert_float_equal(r.hop[0].mean_ms, 1.2, 1e-9);
  assert_string_equal(r.hop[1].name, "events_kafka");
  assert_float_equal(r.hop[1].p50_ms, 3.0, 1e-9);
  assert_float_equal(r.hop[1].mean_ms, 3.0, 1e-9);
  assert_true(r.total.n == 10);
  assert_float_equal(r.total.mean_ms, 4.2, 1e-9);
  /* the means add up: 1.2 + 3.0 = 4.2 */
  assert_float_equal(r.hop[0].mean_ms + r.hop[1].mean_ms, r.total.mean_ms, 1e-9);
  /* the same scrape twice: nothing traced */
  assert_int_equal(lg_hops_from_scrapes(AFTER, AFTER, &r), -1);
  assert_false(r.have);
  assert_non_null(strstr(r.why, "no traced request"));
  /* a restarted gateway (counts went down) */
  assert_int_equal(lg_hops_from_scrapes(AFTER, BEFORE, &r), -1);
  assert_non_null(strstr(r.why, "restarted"));
  /* a gateway without the histograms */
  assert_int_equal(lg_hops_from_scrapes("", "up 1\n", &r), -1);
  assert_non_null(strstr(r.why, "no trace histograms"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reads_every_series_of_a_family_by_label),
      cmocka_unit_test(test_refuses_malformed_lines_of_the_family),
      cmocka_unit_test(test_quantiles_interpolate_inside_a_bucket),
      cmocka_unit_test(test_delta_refuses_a_restart_and_other_bounds),
      cmocka_unit_test(test_report_of_a_run_is_the_difference_of_two_scrapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
