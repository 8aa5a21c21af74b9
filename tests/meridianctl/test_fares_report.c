/*
 * test_fares_report.c: `meridianctl fares report` as a child process. Without servers:
 * bad usage exits 2 with one clear line, a malformed or missing tariff file exits 1 naming
 * the file and the line. Against the stack's calibrated graph (MERIDIAN_GRAPH from
 * .run/env): the shipped TLC-format sample (data/trips/tlc-fares-sample.csv) is priced,
 * each trip with the card of its pickup date, and --json gives n and median_abs_pct; with
 * --tariff every trip takes that one card.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "run_cmd.h"

static char src[1024];

static const char *path_in_src(const char *rel) {
  static char buf[4][1200];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", src, rel);
  return buf[k];
}

static run_result *ctl(const char *const *args) {
  char *argv[16] = {(char *)run_bin("meridianctl")};
  int n = 1;
  for (; args[n - 1] && n < 15; n++) argv[n] = (char *)args[n - 1];
  argv[n] = NULL;
  return run_cmd(argv, NULL);
}

static void test_fares_bad_usage_exits_2(void **state) {
  (void)state;
  run_result *r = ctl((const char *[]){"fares", NULL});
  assert_int_equal(r->status, 2);
  free(r);
  r = ctl((const char *[]){"fares", "report", NULL});
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "--trips CSV is required"));
  free(r);
  r = ctl((const char *[]){"fares", "report", "--trips", "x.csv", "--frob", NULL});
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "unexpected argument --frob"));
  free(r);
  r = ctl((const char *[]){"fares", "quote", NULL});
  assert_int_equal(r->status, 2);
  free(r);
  r = ctl((const char *[]){"fares", "report", "--help", NULL});
  assert_int_equal(r->status, 0);
  assert_non_null(strstr(r->out, "--tariff FILE"));
  free(r);
}

static void test_fares_bad_tariff_file_names_file_and_line(void **state) {
  (void)state;
  char path[] = "/tmp/mrd-tariff-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char bad[] = "name = x\nfirst_day = 2020-01-01\nflag_drop_cents = lots\n";
  assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
  close(fd);
  run_result *r = ctl((const char *[]){"fares", "report", "--trips",
                                       path_in_src("data/trips/tlc-fares-sample.csv"), "--tariff",
                                       path, "--graph", "/nonexistent.graph", NULL});
  assert_int_equal(r->status, 1);
  assert_non_null(strstr(r->err, path));
  assert_non_null(strstr(r->err, "line 3: flag_drop_cents"));
  free(r);
  unlink(path);
  r = ctl((const char *[]){"fares", "report", "--trips", "x.csv", "--tariff",
                           "/nonexistent/t.tariff", "--graph", "/nonexistent.graph", NULL});
  assert_int_equal(r->status, 1);
  assert_non_null(strstr(r->err, "/nonexistent/t.tariff"));
  free(r);
  r = ctl((const char *[]){"fares", "report", "--trips", "/nonexistent.csv", "--tariffs",
                           path_in_src("data/tariffs"), "--graph", "/nonexistent.graph", NULL});
  assert_int_equal(r->status, 1);
  assert_non_null(strstr(r->err, "/nonexistent.csv"));
  free(r);
}

static json_t *report_json(const char *tariff) {
  const char *args[] = {"fares",     "report",
                        "--trips",   path_in_src("data/trips/tlc-fares-sample.csv"),
                        "--tariffs", path_in_src("data/tariffs"),
                        "--json",    tariff ? "--tariff" : NULL,
                        tariff,      NULL};
  run_result *r = ctl(args);
  if (r->status != 0) fail_msg("fares report exited %d: %s", r->status, r->err);
  json_error_t je;
  json_t *j = json_loads(r->out, 0, &je);
  if (!j) fail_msg("not one JSON object: %s (%s)", r->out, je.text);
  free(r);
  return j;
}

static void test_fares_report_prices_the_sample_by_pickup_date(void **state) {
  (void)state;
  if (!getenv("MERIDIAN_GRAPH"))
    fail_msg("MERIDIAN_GRAPH unset: run under scripts/test (the stack's .run/env)");
  json_t *j = report_json(NULL);
  size_t n = (size_t)json_integer_value(json_object_get(j, "n"));
  double med = json_number_value(json_object_get(j, "median_abs_pct"));
  printf("fares report: n %zu, median |error| %.2f%%\n", n, med);
  assert_true(n >= 600); /* 799 rows, a few ends off the map */
  assert_true(isfinite(med) && med > 0 && med < 30);
  json_t *by = json_object_get(j, "by_tariff");
  assert_int_equal(json_object_size(by), 5);
  size_t sum = 0;
  const char *k;
  json_t *v;
  json_object_foreach(by, k, v) {
    size_t m = (size_t)json_integer_value(json_object_get(v, "n"));
    assert_true(m > 0); /* the sample has trips of every card's years */
    sum += m;
  }
  assert_int_equal(sum, n);
  json_decref(j);
  j = report_json(path_in_src("data/tariffs/nyc-yellow-2022-12-19.tariff"));
  assert_int_equal((size_t)json_integer_value(json_object_get(j, "n")), n);
  assert_string_equal(json_string_value(json_object_get(j, "tariff")), "nyc-yellow-2022-12-19");
  /* one card for every year: the older trips are priced 20-40% above their meter's fare */
  assert_true(json_number_value(json_object_get(j, "median_abs_pct")) > med);
  json_decref(j);
}

/* --per-trip: one line per priced trip; priced over the trip's real duration, the route's
 * meter comes out at the file's fare for most trips (its fares are the card at the real
 * duration): what the report's error holds is the ETA's. */
static void test_fares_per_trip_lines(void **state) {
  (void)state;
  if (!getenv("MERIDIAN_GRAPH"))
    fail_msg("MERIDIAN_GRAPH unset: run under scripts/test (the stack's .run/env)");
  char out[] = "/tmp/fares_per_trip_XXXXXX";
  int fd = mkstemp(out);
  assert_true(fd >= 0);
  close(fd);
  const char *args[] = {"fares",     "report",
                        "--trips",   path_in_src("data/trips/tlc-fares-sample.csv"),
                        "--tariffs", path_in_src("data/tariffs"),
                        "--json",    "--per-trip",
                        out,         NULL};
  run_result *r = ctl(args);
  if (r->status != 0) fail_msg("fares report exited %d: %s", r->status, r->err);
  json_error_t je;
  json_t *j = json_loads(r->out, 0, &je);
  assert_non_null(j);
  size_t n = (size_t)json_integer_value(json_object_get(j, "n"));
  json_decref(j);
  free(r);
  FILE *f = fopen(out, "r");
  assert_non_null(f);
  char line[512];
  assert_non_null(fgets(line, sizeof line, f));
  assert_string_equal(line, "line,tariff,fare_amount_cents,metered_cents,route_m,eta_s,slow_s,"
                            "real_duration_s,metered_real_time_cents\n");
  size_t rows = 0, exact = 0, with_real = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned ln;
    char tariff[64];
    double truth, metered, route_m, eta_s, slow_s, dur, real;
    assert_int_equal(sscanf(line, "%u,%63[^,],%lf,%lf,%lf,%lf,%lf,%lf,%lf", &ln, tariff, &truth,
                            &metered, &route_m, &eta_s, &slow_s, &dur, &real),
                     9);
    assert_true(truth > 0 && metered > 0 && route_m >= 0 && slow_s >= 0 && slow_s <= eta_s + 0.1);
    rows++;
    if (real > 0) {
      with_real++;
      if (fabs(real - truth) <= 0.1 * truth) exact++;
    }
  }
  fclose(f);
  unlink(out);
  assert_int_equal(rows, n);
  printf("fares per trip: %zu of %zu within 10%% over the real duration\n", exact, with_real);
  assert_true(with_real > n / 2);
  assert_true(exact * 10 >= with_real * 7); /* the route and the meter are not the error */
  /* a file that cannot be written is an error */
  const char *bad[] = {"fares",      "report",
                       "--trips",    path_in_src("data/trips/tlc-fares-sample.csv"),
                       "--tariffs",  path_in_src("data/tariffs"),
                       "--per-trip", "/nonexistent-dir/x.csv",
                       NULL};
  r = ctl(bad);
  assert_int_equal(r->status, 1);
  assert_non_null(strstr(r->err, "/nonexistent-dir/x.csv"));
  free(r);
}

int main(void) {
  const char *s = getenv("MERIDIAN_SOURCE_DIR");
  snprintf(src, sizeof src, "%s", s ? s : ".");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fares_bad_usage_exits_2),
      cmocka_unit_test(test_fares_bad_tariff_file_names_file_and_line),
      cmocka_unit_test(test_fares_report_prices_the_sample_by_pickup_date),
      cmocka_unit_test(test_fares_per_trip_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
