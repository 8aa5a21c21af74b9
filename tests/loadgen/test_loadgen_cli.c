/*
 * test_loadgen_cli.c: meridian-loadgen's command line, run as a child process, no servers:
 * --help prints the usage (exit 0); no command, an unknown command or option, a missing or
 * bad value, a missing required flag, a bad --run-id, --url, secret, graph or area each
 * exit 2 with one clear line on stderr, before anything connects; and likewise `ramp`'s
 * options, steps and --url.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "run_cmd.h"

#define MAX_ARGS 12

/* Run meridian-loadgen with the NULL-terminated args, the secret set (or not) and no
 * graph in the environment unless graph is given. */
static run_result *lg(bool secret, const char *graph, const char *const *args) {
  char *argv[MAX_ARGS + 2] = {(char *)run_bin("meridian-loadgen")};
  for (int i = 0; args[i] && i < MAX_ARGS; i++) argv[i + 1] = (char *)args[i];
  char g[512];
  snprintf(g, sizeof g, "MERIDIAN_GRAPH=%s", graph ? graph : "");
  const char *env[] = {secret ? "MERIDIAN_JWT_SECRET=test-secret" : "MERIDIAN_JWT_SECRET=", g,
                       "MERIDIAN_GATEWAY_URL=", "MERIDIAN_SERVICE_AREA=", NULL};
  return run_cmd(argv, env);
}

/* Exit status `want` and `needle` on stderr (stdout for exit 0). */
static void expect(run_result *r, int want, const char *needle) {
  const char *where = want == 0 ? r->out : r->err;
  if (r->status != want || !strstr(where, needle))
    fail_msg("exit %d (want %d), %s does not say \"%s\":\n%s", r->status, want,
             want == 0 ? "stdout" : "stderr", needle, where);
  free(r);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_help_and_missing_or_unknown_command(void **state) {
  (void)state;
  expect(lg(true, NULL, ARGS("--help")), 0, "usage: meridian-loadgen replay --trips FILE");
  expect(lg(true, NULL, ARGS("-h")), 0, "--drivers N");
  expect(lg(true, NULL, (const char *const[]){NULL}), 2, "usage: meridian-loadgen replay");
  expect(lg(true, NULL, ARGS("frob")), 2, "unknown command 'frob'");
}

static void test_replay_usage_errors_exit_2_with_one_line(void **state) {
  (void)state;
  expect(lg(true, NULL, ARGS("replay", "--trips")), 2, "--trips needs a value");
  expect(lg(true, NULL, ARGS("replay", "--trips", "t.csv", "--drivers")), 2,
         "--drivers needs a value");
  expect(lg(true, NULL, ARGS("replay", "--bogus")), 2, "unknown option '--bogus'");
  expect(lg(true, NULL, ARGS("replay", "stray")), 2, "unknown option 'stray'");
  expect(lg(true, NULL, ARGS("replay", "--drivers", "x")), 2, "bad value for --drivers: 'x'");
  expect(lg(true, NULL, ARGS("replay", "--drivers", "2.5")), 2, "bad value for --drivers: '2.5'");
  expect(lg(true, NULL, ARGS("replay", "--drivers=0")), 2, "bad value for --drivers: '0'");
  expect(lg(true, NULL, ARGS("replay", "--speedup", "0")), 2, "bad value for --speedup: '0'");
  expect(lg(true, NULL, ARGS("replay", "--pace", "fast")), 2, "bad value for --pace: 'fast'");
  expect(lg(true, NULL, ARGS("replay", "--seed", "12x")), 2, "bad value for --seed: '12x'");
  expect(lg(true, NULL, ARGS("replay", "--start", "25:00")), 2, "bad value for --start: '25:00'");
  expect(lg(true, NULL, ARGS("replay", "--part", "2/2")), 2, "bad value for --part: '2/2'");
  expect(lg(true, NULL, ARGS("replay", "--accept-prob", "1.5")), 2,
         "bad value for --accept-prob: '1.5'");
  expect(lg(true, NULL, ARGS("replay", "--trips", "t.csv")), 2,
         "replay needs --trips FILE and --drivers N");
  expect(lg(true, NULL, ARGS("replay", "--drivers", "3", "--no-motion", "--quiet")), 2,
         "replay needs --trips FILE and --drivers N");
  expect(lg(true, NULL, ARGS("replay", "--trips", "t.csv", "--drivers", "3", "--run-id", "a-b")), 2,
         "--run-id must be 1-");
}

static void test_replay_environment_and_inputs_are_checked_before_connecting(void **state) {
  (void)state;
  expect(lg(false, NULL, ARGS("replay", "--trips", "t.csv", "--drivers", "3")), 2,
         "MERIDIAN_JWT_SECRET is not set");
  expect(lg(true, NULL, ARGS("replay", "--trips", "t.csv", "--drivers", "3")), 2,
         "no graph snapshot");
  expect(
      lg(true, "g.snap", ARGS("replay", "--trips", "t.csv", "--drivers", "3", "--url", "http://x")),
      2, "--url must be ws://HOST:PORT[/PREFIX], not 'http://x'");
  expect(lg(true, "g.snap",
            ARGS("replay", "--trips", "t.csv", "--drivers", "3", "--area", "/nonexistent.geojson")),
         2, "service area /nonexistent.geojson");
}

static void test_ramp_usage_errors_exit_2_with_one_line(void **state) {
  (void)state;
  expect(lg(true, NULL, ARGS("ramp", "--help")), 0, "usage: meridian-loadgen ramp --trips FILE");
  expect(lg(true, NULL, ARGS("ramp")), 2, "ramp: needs --trips FILE");
  expect(lg(true, NULL, ARGS("ramp", "--trips")), 2, "ramp: --trips needs a value");
  expect(lg(true, NULL, ARGS("ramp", "--bogus", "x")), 2, "ramp: unknown option '--bogus'");
  expect(lg(true, NULL, ARGS("ramp", "--trips", "t", "--hold", "0")), 2,
         "ramp: bad value for --hold: '0'");
  expect(lg(true, NULL, ARGS("ramp", "--trips", "t", "--procs", "2.5")), 2,
         "ramp: bad value for --procs: '2.5'");
  expect(lg(true, NULL, ARGS("ramp", "--trips", "t", "--pids", "a=1,b")), 2,
         "ramp: bad value for --pids: 'a=1,b'");
  expect(lg(true, NULL, ARGS("ramp", "--trips", "t", "--steps", "zz")), 2, "ramp: --steps: step 1");
  expect(lg(true, NULL, ARGS("ramp", "--trips", "t", "--steps", "1:60", "--procs", "2")), 2,
         "step 1 has fewer drivers than --procs");
  expect(lg(true, NULL, ARGS("ramp", "--trips", "t", "--url", "http://x")), 2,
         "ramp: --url must be ws://HOST:PORT, not 'http://x'");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_help_and_missing_or_unknown_command),
      cmocka_unit_test(test_replay_usage_errors_exit_2_with_one_line),
      cmocka_unit_test(test_replay_environment_and_inputs_are_checked_before_connecting),
      cmocka_unit_test(test_ramp_usage_errors_exit_2_with_one_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
