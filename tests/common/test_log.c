/* test_log.c: the logfmt line (fields, quoting, escaping, levels) and signals' stop flag. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>

#include <cmocka.h>

#include "mrd/log.h"
#include "mrd/signals.h"

static char line[4096];
static int lines;
static void capture(const char *l, size_t len, void *ud) {
  (void)ud;
  snprintf(line, sizeof line, "%.*s", (int)len, l);
  lines++;
}

static int setup(void **state) {
  (void)state;
  unsetenv("MERIDIAN_LOG_LEVEL");
  assert_int_equal(mrd_log_init("gateway"), 0);
  mrd_log_set_level(MRD_LOG_INFO);
  mrd_log_set_writer(capture, NULL);
  line[0] = '\0';
  lines = 0;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mrd_log_set_writer(NULL, NULL);
  return 0;
}

/* The line without its ts= field, which changes every call. */
static const char *after_ts(void) {
  assert_memory_equal(line, "ts=", 3);
  const char *sp = strchr(line, ' ');
  assert_non_null(sp);
  return sp + 1;
}

static void test_log_line_has_ts_level_svc_msg_and_fields(void **state) {
  (void)state;
  mrd_log(MRD_LOG_INFO, "listening", "port=%d addr=%s ratio=%.2f", 8080, "127.0.0.1", 0.5);
  assert_string_equal(after_ts(), "level=info svc=gateway msg=listening port=8080 "
                                  "addr=127.0.0.1 ratio=0.50\n");
  /* ts is RFC 3339 UTC with milliseconds */
  assert_int_equal(strlen("ts=2026-01-02T03:04:05.678Z"), (size_t)(strchr(line, ' ') - line));
  assert_int_equal(line[26], 'Z');
}

static void test_log_values_quoted_and_escaped(void **state) {
  (void)state;
  mrd_log(MRD_LOG_WARN, "bad input", "err=%s empty=%s eq=%s ctl=%s", "say \"hi\"\nnow\\", "", "a=b",
          "\x01");
  assert_string_equal(after_ts(), "level=warn svc=gateway msg=\"bad input\" "
                                  "err=\"say \\\"hi\\\"\\nnow\\\\\" empty=\"\" eq=\"a=b\" "
                                  "ctl=\"\\x01\"\n");
}

static void test_log_many_conversions_in_one_value(void **state) {
  (void)state;
  mrd_log(MRD_LOG_ERROR, "x", "peer=%s:%u n=%zu big=%lld hex=%#x pct=100%% w=%*d s=%.3s",
          "10.0.0.1", 443u, (size_t)7, -5000000000LL, 255u, 5, 42, "abcdef");
  assert_string_equal(after_ts(), "level=error svc=gateway msg=x peer=10.0.0.1:443 n=7 "
                                  "big=-5000000000 hex=0xff pct=100% w=\"   42\" s=abc\n");
}

static void test_log_level_filters_lines(void **state) {
  (void)state;
  mrd_log_msg(MRD_LOG_DEBUG, "hidden");
  assert_int_equal(lines, 0);
  mrd_log_set_level(MRD_LOG_ERROR);
  mrd_log_msg(MRD_LOG_WARN, "hidden");
  assert_int_equal(lines, 0);
  mrd_log_msg(MRD_LOG_ERROR, "shown");
  assert_string_equal(after_ts(), "level=error svc=gateway msg=shown\n");
  assert_int_equal(lines, 1);
  assert_false(mrd_log_enabled(MRD_LOG_INFO));
}

static void test_log_level_from_environment(void **state) {
  (void)state;
  setenv("MERIDIAN_LOG_LEVEL", "DEBUG", 1);
  assert_int_equal(mrd_log_init("svc2"), 0);
  assert_int_equal(mrd_log_get_level(), MRD_LOG_DEBUG);
  setenv("MERIDIAN_LOG_LEVEL", "loud", 1);
  assert_int_equal(mrd_log_init("svc2"), MRD_EINVAL);
  assert_int_equal(mrd_log_get_level(), MRD_LOG_INFO);
  assert_non_null(strstr(line, "msg=bad_log_level MERIDIAN_LOG_LEVEL=loud"));
  unsetenv("MERIDIAN_LOG_LEVEL");
  mrd_log_init("gateway");
}

static void test_log_quote_reports_needed_length(void **state) {
  (void)state;
  char buf[8];
  assert_int_equal(mrd_log_quote(buf, sizeof buf, "plain"), 5);
  assert_string_equal(buf, "plain");
  assert_int_equal(mrd_log_quote(buf, sizeof buf, "two words"), 11);
  assert_string_equal(buf, "\"two wo");
}

static void test_signals_sigterm_sets_stop_flag_and_wakes_fd(void **state) {
  (void)state;
  mrd_signals_reset();
  assert_int_equal(mrd_signals_install(NULL, NULL), 0);
  assert_false(mrd_should_stop());
  struct pollfd p = {.fd = mrd_signals_fd(), .events = POLLIN};
  assert_int_equal(poll(&p, 1, 0), 0);
  raise(SIGTERM);
  assert_true(mrd_should_stop());
  assert_int_equal(mrd_stop_signal(), SIGTERM);
  assert_int_equal(poll(&p, 1, 0), 1);
  mrd_signals_reset();
  assert_false(mrd_should_stop());
  raise(SIGINT);
  assert_int_equal(mrd_stop_signal(), SIGINT);
  mrd_signals_reset();
}

static void count_hook(void *ud) { (*(volatile int *)ud)++; }

static void test_signals_hook_runs_on_request_stop(void **state) {
  (void)state;
  static volatile int calls;
  mrd_signals_reset();
  assert_int_equal(mrd_signals_install(count_hook, (void *)&calls), 0);
  mrd_request_stop();
  assert_true(mrd_should_stop());
  assert_int_equal(mrd_stop_signal(), 0);
  assert_int_equal(calls, 1);
  raise(SIGTERM);
  assert_int_equal(calls, 2);
  mrd_signals_reset();
}

/* A gate writes its burst, then one line per 1/rate; the next line written reports how many
 * were held back, and the count restarts. */
static void test_log_gate_bounds_lines_and_counts_the_rest(void **state) {
  (void)state;
  mrd_log_gate g;
  mrd_log_gate_init(&g, 5, 5, 1000);
  uint64_t held = 99;
  int passed = 0;
  for (int i = 0; i < 100; i++) passed += mrd_log_gate_pass(&g, 1000, &held);
  assert_int_equal(passed, 5);
  assert_int_equal(g.suppressed, 95);
  assert_false(mrd_log_gate_pass(&g, 1199, &held)); /* 0.995 line: not yet */
  assert_true(mrd_log_gate_pass(&g, 1200, &held));
  assert_int_equal(held, 96);
  assert_true(g.suppressed == 0);
  /* one minute of 1000 lines a second writes about 5 a second */
  passed = 0;
  for (int64_t t = 1201; t <= 61200; t++) passed += mrd_log_gate_pass(&g, t, &held);
  assert_in_range(passed, 299, 301);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_gate_bounds_lines_and_counts_the_rest),
      T(test_log_line_has_ts_level_svc_msg_and_fields),
      T(test_log_values_quoted_and_escaped),
      T(test_log_many_conversions_in_one_value),
      T(test_log_level_filters_lines),
      T(test_log_level_from_environment),
      T(test_log_quote_reports_needed_length),
      T(test_signals_sigterm_sets_stop_flag_and_wakes_fd),
      T(test_signals_hook_runs_on_request_stop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
