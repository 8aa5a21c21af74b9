/*
 * test_loadgen_ramp_smoke.c: `meridian-loadgen ramp` against the stack, two short light
 * steps of two processes each (a smoke test of the mode scripts/capacity runs, not a
 * capacity measurement: the bound on p99 is loose, so the figures of an ASan build on a
 * shared machine pass). It checks the table, the per-process CPU columns (the stack's
 * processes named by --pids, and the load generator's own), the plot files, and that the
 * last line is one JSON object with the knee at a step that carried load.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *env(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v)
    fail_msg(
        "%s is not set: run with the stack up (scripts/test, or scripts/stack up and . .run/env)",
        name);
  return v;
}

static void test_ramp_prints_table_plot_and_knee_line(void **state) {
  (void)state;
  const char *src = env("MERIDIAN_SOURCE_DIR");
  env("MERIDIAN_JWT_SECRET");
  env("MERIDIAN_GATEWAY_URL");
  env("MERIDIAN_GRAPH");
  char dir[] = "/tmp/lg-ramp-it-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[4096], pidfile[1024], pids[256] = "";
  snprintf(pidfile, sizeof pidfile, "%s/.run/pid/svc-gateway", src);
  FILE *pf = fopen(pidfile, "r");
  long gw_pid = 0;
  if (pf && fscanf(pf, "%ld", &gw_pid) == 1)
    snprintf(pids, sizeof pids, "--pids gateway=%ld", gw_pid);
  if (pf) fclose(pf);
  snprintf(cmd, sizeof cmd,
           "'%s' ramp --trips '%s/data/trips/nyc-taxi-10k.csv' --steps 40:60,80:60 --hold 4 "
           "--procs 2 --drain 2 --start 18:00 --p99-max-ms 5000 --match-min-pct 50 %s --out %s "
           "> %s/out.txt",
           LOADGEN_BIN, src, pids, dir, dir);
  printf("%s\n", cmd);
  int rc = system(cmd);
  snprintf(cmd, sizeof cmd, "cat %s/out.txt", dir);
  if (system(cmd) != 0) fail_msg("no output");
  assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
  char path[512], line[4096], last[4096] = "";
  snprintf(path, sizeof path, "%s/out.txt", dir);
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  int step_rows = 0;
  bool header = false;
  while (fgets(line, sizeof line, fp)) {
    if (strncmp(line, "step drivers", 12) == 0) {
      header = true;
      assert_non_null(strstr(line, "loadgen%"));
      if (gw_pid) assert_non_null(strstr(line, "gateway%"));
    } else if (header && (strncmp(line, "   1 ", 5) == 0 || strncmp(line, "   2 ", 5) == 0)) {
      step_rows++;
    }
    if (line[0] && line[0] != '\n') snprintf(last, sizeof last, "%s", line);
  }
  fclose(fp);
  assert_true(header);
  assert_int_equal(step_rows, 2);
  json_error_t je;
  json_t *k = json_loads(last, 0, &je);
  if (!k) fail_msg("last line is not one JSON object: %s (%s)", last, je.text);
  json_t *ups = json_object_get(k, "knee_updates_per_s"),
         *rps = json_object_get(k, "knee_requests_per_s");
  assert_true(json_is_number(ups) && json_is_number(rps));
  assert_int_equal(json_integer_value(json_object_get(k, "steps")), 2);
  /* light steps under a loose bound: the knee is a step that carried load */
  assert_true(json_integer_value(json_object_get(k, "knee_step")) >= 1);
  assert_true(json_number_value(ups) > 10 && json_number_value(rps) > 0);
  json_decref(k);
  struct stat sb;
  snprintf(path, sizeof path, "%s/capacity.png.dat", dir);
  assert_int_equal(stat(path, &sb), 0);
  snprintf(path, sizeof path, "%s/capacity.png", dir);
  assert_int_equal(stat(path, &sb), 0);
  assert_true(sb.st_size > 1000);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ramp_prints_table_plot_and_knee_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
