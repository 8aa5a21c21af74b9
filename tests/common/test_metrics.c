/* test_metrics.c: the Prometheus text rendering of counters, gauges and histograms, label
 * escaping, and the registry's refusal of bad names and mismatched families. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mrd/metrics.h"

static char *render(mrd_metrics *m) {
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(mrd_metrics_render(m, &text, &len), 0);
  assert_int_equal(strlen(text), len);
  return text;
}

static void test_metrics_empty_registry_renders_empty_text(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  char *t = render(m);
  assert_string_equal(t, "");
  free(t);
  mrd_metrics_free(m);
  mrd_metrics_free(NULL);
}

static void test_metrics_counter_and_gauge_exact_text(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  mrd_counter *loc, *req;
  mrd_gauge *conns;
  assert_int_equal(mrd_metrics_counter(m, "gw_messages_total", "Messages received.",
                                       (const char *[]){"type", "location", NULL}, &loc),
                   0);
  assert_int_equal(mrd_metrics_counter(m, "gw_messages_total", "ignored",
                                       (const char *[]){"type", "request", NULL}, &req),
                   0);
  assert_int_equal(mrd_metrics_gauge(m, "gw_connections", "Open connections.", NULL, &conns), 0);
  mrd_counter_add(loc, 41);
  mrd_counter_inc(loc);
  mrd_counter_inc(req);
  mrd_gauge_set(conns, 10);
  mrd_gauge_add(conns, -2.5);
  assert_int_equal(mrd_counter_value(loc), 42);
  assert_true(mrd_gauge_value(conns) == 7.5);
  char *t = render(m);
  assert_string_equal(t, "# HELP gw_messages_total Messages received.\n"
                         "# TYPE gw_messages_total counter\n"
                         "gw_messages_total{type=\"location\"} 42\n"
                         "gw_messages_total{type=\"request\"} 1\n"
                         "# HELP gw_connections Open connections.\n"
                         "# TYPE gw_connections gauge\n"
                         "gw_connections 7.5\n");
  free(t);
  mrd_metrics_free(m);
}

static void test_metrics_same_labels_return_same_series(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  mrd_counter *a, *b;
  assert_int_equal(mrd_metrics_counter(m, "x_total", "h", (const char *[]){"k", "v", NULL}, &a), 0);
  assert_int_equal(mrd_metrics_counter(m, "x_total", "h", (const char *[]){"k", "v", NULL}, &b), 0);
  assert_ptr_equal(a, b);
  mrd_metrics_free(m);
}

static void test_metrics_histogram_buckets_cumulative_with_sum_and_count(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  mrd_histogram *h;
  const double bounds[] = {0.005, 0.01, 0.1};
  assert_int_equal(mrd_metrics_histogram(m, "match_seconds", "Time to match.",
                                         (const char *[]){"shard", "3", NULL}, bounds, 3, &h),
                   0);
  mrd_histogram_observe(h, 0.001);
  mrd_histogram_observe(h, 0.005); /* le is inclusive */
  mrd_histogram_observe(h, 0.05);
  mrd_histogram_observe(h, 2);
  mrd_histogram_observe(h, NAN); /* ignored */
  char *t = render(m);
  assert_string_equal(t, "# HELP match_seconds Time to match.\n"
                         "# TYPE match_seconds histogram\n"
                         "match_seconds_bucket{shard=\"3\",le=\"0.005\"} 2\n"
                         "match_seconds_bucket{shard=\"3\",le=\"0.01\"} 2\n"
                         "match_seconds_bucket{shard=\"3\",le=\"0.1\"} 3\n"
                         "match_seconds_bucket{shard=\"3\",le=\"+Inf\"} 4\n"
                         "match_seconds_sum{shard=\"3\"} 2.056\n"
                         "match_seconds_count{shard=\"3\"} 4\n");
  free(t);
  mrd_metrics_free(m);
}

static void test_metrics_label_values_and_help_escaped(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  mrd_counter *c;
  assert_int_equal(mrd_metrics_counter(m, "err_total", "Errors\\by \"kind\"\nsecond line",
                                       (const char *[]){"msg", "a \"q\" \\ b\nc", NULL}, &c),
                   0);
  char *t = render(m);
  assert_string_equal(t, "# HELP err_total Errors\\\\by \"kind\"\\nsecond line\n"
                         "# TYPE err_total counter\n"
                         "err_total{msg=\"a \\\"q\\\" \\\\ b\\nc\"} 0\n");
  free(t);
  mrd_metrics_free(m);
}

static void test_metrics_special_gauge_values(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  mrd_gauge *a, *b, *c, *d;
  assert_int_equal(mrd_metrics_gauge(m, "g", "h", (const char *[]){"k", "nan", NULL}, &a), 0);
  assert_int_equal(mrd_metrics_gauge(m, "g", "h", (const char *[]){"k", "inf", NULL}, &b), 0);
  assert_int_equal(mrd_metrics_gauge(m, "g", "h", (const char *[]){"k", "tenth", NULL}, &c), 0);
  assert_int_equal(mrd_metrics_gauge(m, "g", "h", (const char *[]){"k", "big", NULL}, &d), 0);
  mrd_gauge_set(a, NAN);
  mrd_gauge_set(b, -INFINITY);
  mrd_gauge_set(c, 0.1);
  mrd_gauge_set(d, 1e300);
  char *t = render(m);
  assert_non_null(strstr(t, "g{k=\"nan\"} NaN\n"));
  assert_non_null(strstr(t, "g{k=\"inf\"} -Inf\n"));
  assert_non_null(strstr(t, "g{k=\"tenth\"} 0.1\n"));
  assert_non_null(strstr(t, "g{k=\"big\"} 1e+300\n"));
  free(t);
  mrd_metrics_free(m);
}

static void test_metrics_bad_names_and_mismatches_refused(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  mrd_counter *c;
  mrd_gauge *g;
  mrd_histogram *h;
  assert_int_equal(mrd_metrics_counter(m, "1bad", "h", NULL, &c), MRD_EINVAL);
  assert_int_equal(mrd_metrics_counter(m, "bad-name", "h", NULL, &c), MRD_EINVAL);
  assert_int_equal(mrd_metrics_counter(m, "", "h", NULL, &c), MRD_EINVAL);
  assert_int_equal(mrd_metrics_counter(m, "ok", "h", (const char *[]){"bad-label", "v", NULL}, &c),
                   MRD_EINVAL);
  assert_int_equal(mrd_metrics_counter(m, "ok", "h", (const char *[]){"__x", "v", NULL}, &c),
                   MRD_EINVAL);
  assert_int_equal(
      mrd_metrics_counter(m, "ok", "h", (const char *[]){"a", "1", "a", "2", NULL}, &c),
      MRD_EINVAL);
  assert_int_equal(mrd_metrics_counter(m, "ok", "h", (const char *[]){"a", "1", NULL}, &c), 0);
  /* same family, other type or other label names */
  assert_int_equal(mrd_metrics_gauge(m, "ok", "h", (const char *[]){"a", "1", NULL}, &g),
                   MRD_EINVAL);
  assert_int_equal(mrd_metrics_counter(m, "ok", "h", (const char *[]){"b", "1", NULL}, &c),
                   MRD_EINVAL);
  assert_int_equal(mrd_metrics_counter(m, "ok", "h", NULL, &c), MRD_EINVAL);
  const double unsorted[] = {1, 0.5};
  assert_int_equal(mrd_metrics_histogram(m, "hh", "h", NULL, unsorted, 2, &h), MRD_EINVAL);
  const double inf[] = {1, INFINITY};
  assert_int_equal(mrd_metrics_histogram(m, "hh", "h", NULL, inf, 2, &h), MRD_EINVAL);
  const double ok[] = {MRD_BUCKETS_LATENCY_S};
  assert_int_equal(
      mrd_metrics_histogram(m, "hh", "h", (const char *[]){"le", "1", NULL}, ok, 2, &h),
      MRD_EINVAL);
  assert_int_equal(mrd_metrics_histogram(m, "hh", "h", NULL, ok, sizeof ok / sizeof ok[0], &h), 0);
  assert_int_equal(mrd_metrics_histogram(m, "hh", "h", NULL, ok, 3, &h), MRD_EINVAL);
  mrd_metrics_free(m);
}

enum { THREADS = 4, PER_THREAD = 100000 };
static void *hammer(void *arg) {
  void **hc = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    mrd_counter_inc(hc[0]);
    mrd_histogram_observe(hc[1], 1.0);
    mrd_gauge_add(hc[2], 1.0);
  }
  return NULL;
}

static void test_metrics_concurrent_updates_are_not_lost(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  mrd_counter *c;
  mrd_histogram *h;
  mrd_gauge *g;
  const double b[] = {0.5, 2};
  assert_int_equal(mrd_metrics_counter(m, "c_total", "h", NULL, &c), 0);
  assert_int_equal(mrd_metrics_histogram(m, "h_seconds", "h", NULL, b, 2, &h), 0);
  assert_int_equal(mrd_metrics_gauge(m, "g", "h", NULL, &g), 0);
  void *hc[3] = {c, h, g};
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_create(&t[i], NULL, hammer, hc), 0);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  assert_int_equal(mrd_counter_value(c), THREADS * PER_THREAD);
  assert_true(mrd_gauge_value(g) == THREADS * PER_THREAD);
  char *text = render(m);
  assert_non_null(strstr(text, "h_seconds_count 400000\n"));
  assert_non_null(strstr(text, "h_seconds_sum 400000\n"));
  assert_non_null(strstr(text, "h_seconds_bucket{le=\"2\"} 400000\n"));
  assert_non_null(strstr(text, "h_seconds_bucket{le=\"0.5\"} 0\n"));
  free(text);
  mrd_metrics_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_metrics_empty_registry_renders_empty_text),
      cmocka_unit_test(test_metrics_counter_and_gauge_exact_text),
      cmocka_unit_test(test_metrics_same_labels_return_same_series),
      cmocka_unit_test(test_metrics_histogram_buckets_cumulative_with_sum_and_count),
      cmocka_unit_test(test_metrics_label_values_and_help_escaped),
      cmocka_unit_test(test_metrics_special_gauge_values),
      cmocka_unit_test(test_metrics_bad_names_and_mismatches_refused),
      cmocka_unit_test(test_metrics_concurrent_updates_are_not_lost),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
