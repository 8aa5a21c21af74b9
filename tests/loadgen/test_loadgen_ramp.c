/*
 * test_loadgen_ramp.c: the capacity ramp's pure part (loadgen/ramp.c): the steps option,
 * which steps pass, the knee (before the first failure, never after it), the table, the
 * last line (one JSON object with knee_updates_per_s and knee_requests_per_s), and the plot
 * files.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ramp.h"

static void test_steps_parse_and_refuse_nonsense(void **state) {
  (void)state;
  lg_ramp_plan_step p[4];
  char err[128];
  assert_int_equal(lg_ramp_parse_steps("500:30,1000:60.5", p, 4, err, sizeof err), 2);
  assert_int_equal(p[0].drivers, 500);
  assert_true(p[0].speedup == 30);
  assert_int_equal(p[1].drivers, 1000);
  assert_true(p[1].speedup == 60.5);
  static const char *const bad[] = {"",
                                    "500",
                                    "500:",
                                    ":30",
                                    "0:30",
                                    "1.5:30",
                                    "500:0",
                                    "500:-1",
                                    "500:30,",
                                    "500:30;1000:60",
                                    "a:b",
                                    "500:20000",
                                    "1:1,2:2,3:3,4:4,5:5"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (lg_ramp_parse_steps(bad[i], p, 4, err, sizeof err) != -1) fail_msg("accepted [%s]", bad[i]);
  assert_true(strlen(err) > 0);
}

static lg_ramp_step step(double ups, double rps, double p99, size_t req, size_t matched,
                         double dropped) {
  lg_ramp_step s;
  memset(&s, 0, sizeof s);
  s.drivers = (size_t)ups;
  s.speedup = rps * 6;
  s.updates_per_s = ups;
  s.requests_per_s = rps;
  s.offer_p50_ms = p99 / 2;
  s.offer_p99_ms = p99;
  s.requested = req;
  s.matched = matched;
  s.dropped = dropped;
  s.n_procs = 2;
  strcpy(s.proc_name[0], "gateway");
  strcpy(s.proc_name[1], "loadgen");
  s.cpu_pct[0] = ups / 100;
  s.cpu_pct[1] = ups / 200;
  return s;
}

/* Without --procs: a process per 1,000 drivers, at least 2, never more than the drivers. */
static void test_load_processes_follow_the_drivers(void **state) {
  (void)state;
  assert_int_equal(lg_ramp_procs_for(1), 1);
  assert_int_equal(lg_ramp_procs_for(2), 2);
  assert_int_equal(lg_ramp_procs_for(1000), 2);
  assert_int_equal(lg_ramp_procs_for(2000), 2);
  assert_int_equal(lg_ramp_procs_for(2001), 3);
  assert_int_equal(lg_ramp_procs_for(6000), 6);
  assert_int_equal(lg_ramp_procs_for(20000), 20);
  assert_int_equal(lg_ramp_procs_for(1000000), LG_RAMP_MAX_LOAD_PROCS);
}

static void test_knee_is_the_last_passing_step_before_the_first_failure(void **state) {
  (void)state;
  lg_ramp_criteria c = {50, 95, 0};
  lg_ramp_step s[5] = {
      step(1000, 5, 20, 100, 100, 0),     step(2000, 10, 30, 200, 196, 0),
      step(4000, 20, 49.9, 400, 390, 0),  step(8000, 40, 80, 800, 790, 0), /* p99 over */
      step(16000, 80, 40, 1600, 1600, 0), /* passes again: not trusted */
  };
  assert_true(lg_ramp_step_ok(&s[2], &c));
  assert_false(lg_ramp_step_ok(&s[3], &c));
  assert_int_equal(lg_ramp_knee(s, 5, &c), 2);
  /* each bound on its own */
  lg_ramp_step t = step(1000, 5, 20, 100, 94, 0); /* match 94% */
  assert_false(lg_ramp_step_ok(&t, &c));
  t = step(1000, 5, 20, 100, 100, 1); /* one update dropped */
  assert_false(lg_ramp_step_ok(&t, &c));
  t = step(1000, 5, 50, 100, 100, 0); /* p99 at the bound: not under it */
  assert_false(lg_ramp_step_ok(&t, &c));
  t = step(1000, 5, 20, 0, 0, 0); /* no request: shows nothing */
  assert_false(lg_ramp_step_ok(&t, &c));
  t = step(1000, 5, 20, 100, 100, NAN); /* drops unknown */
  assert_false(lg_ramp_step_ok(&t, &c));
  assert_int_equal(lg_ramp_knee(&t, 1, &c), -1);
  assert_int_equal(lg_ramp_knee(s, 0, &c), -1);
}

static void test_last_line_is_one_json_object_with_the_knee(void **state) {
  (void)state;
  lg_ramp_criteria c = {50, 95, 0};
  lg_ramp_step s[3] = {step(1000, 5, 20, 100, 100, 0), step(2000, 10.25, 30, 200, 200, 0),
                       step(4000, 20, 90, 400, 400, 0)};
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&buf, &len);
  assert_non_null(fp);
  lg_ramp_print_table(fp, s, 3, &c);
  lg_ramp_print_knee(fp, s, 3, &c);
  fclose(fp);
  assert_non_null(strstr(buf, "gateway%"));
  assert_non_null(strstr(buf, "loadgen%"));
  /* the table: a header and one line per step, the third not ok */
  char *last = buf + len - 1;
  assert_true(*last == '\n');
  *last = '\0';
  char *nl = strrchr(buf, '\n');
  assert_non_null(nl);
  json_error_t je;
  json_t *k = json_loads(nl + 1, 0, &je);
  if (!k) fail_msg("last line is not JSON: %s (%s)", nl + 1, je.text);
  assert_true(json_is_object(k));
  assert_float_equal(json_number_value(json_object_get(k, "knee_updates_per_s")), 2000, 1e-9);
  assert_float_equal(json_number_value(json_object_get(k, "knee_requests_per_s")), 10.25, 1e-9);
  assert_int_equal(json_integer_value(json_object_get(k, "knee_step")), 2);
  assert_int_equal(json_integer_value(json_object_get(k, "steps")), 3);
  json_decref(k);
  *nl = '\0';
  assert_non_null(strstr(buf, " no"));
  free(buf);
  /* nothing passed: a knee of 0 */
  buf = NULL;
  fp = open_memstream(&buf, &len);
  lg_ramp_print_knee(fp, &s[2], 1, &c);
  fclose(fp);
  k = json_loads(buf, 0, &je);
  assert_non_null(k);
  assert_true(json_number_value(json_object_get(k, "knee_updates_per_s")) == 0);
  assert_int_equal(json_integer_value(json_object_get(k, "knee_step")), -1);
  json_decref(k);
  free(buf);
}

static void test_plot_files_hold_every_step_and_process(void **state) {
  (void)state;
  lg_ramp_criteria c = {50, 95, 0};
  lg_ramp_step s[2] = {step(1000, 5, 20, 100, 100, 0), step(2000, 10, 30, 200, 200, 0)};
  char dir[] = "/tmp/lg-ramp-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char png[256], path[300], line[512];
  snprintf(png, sizeof png, "%s/c.png", dir);
  assert_int_equal(lg_ramp_write_plot(png, s, 2, &c), 0);
  snprintf(path, sizeof path, "%s.dat", png);
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  int rows = 0;
  while (fgets(line, sizeof line, fp))
    if (line[0] != '#')
      rows++;
    else
      assert_non_null(strstr(line, "cpu_gateway cpu_loadgen"));
  fclose(fp);
  assert_int_equal(rows, 2);
  unlink(path);
  snprintf(path, sizeof path, "%s.gp", png);
  fp = fopen(path, "r");
  assert_non_null(fp);
  size_t n = fread(line, 1, sizeof line - 1, fp);
  line[n] = '\0';
  fclose(fp);
  assert_non_null(strstr(line, "set output"));
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_steps_parse_and_refuse_nonsense),
      cmocka_unit_test(test_load_processes_follow_the_drivers),
      cmocka_unit_test(test_knee_is_the_last_passing_step_before_the_first_failure),
      cmocka_unit_test(test_last_line_is_one_json_object_with_the_knee),
      cmocka_unit_test(test_plot_files_hold_every_step_and_process),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
