/*
 * test_dispatch_warmup.c: when a restarted shard may start matching (warmup.h): at the
 * latest after the configured warm-up; earlier only when the positions it read reach back a
 * whole warm-up (the backlog left by its crash) and it has caught up with the present.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "warmup.h"

static void test_warmup_lasts_its_time_with_no_backlog(void **state) {
  (void)state;
  dsp_warmup w;
  dsp_warmup_init(&w, 100000, 5000);
  assert_false(dsp_warmup_done(&w, 100000));
  dsp_warmup_ping(&w, 100200); /* live pings only: they reach back less than 5 s */
  dsp_warmup_ping(&w, 104000);
  assert_false(dsp_warmup_done(&w, 104500));
  assert_true(dsp_warmup_done(&w, 105000));
}

static void test_backlog_of_a_whole_warmup_ends_it_once_caught_up(void **state) {
  (void)state;
  dsp_warmup w;
  dsp_warmup_init(&w, 100000, 5000);
  dsp_warmup_ping(&w, 92000);                /* written while the shard was down, 8 s ago */
  assert_false(dsp_warmup_done(&w, 100100)); /* not caught up: the rest is still unread */
  dsp_warmup_ping(&w, 96000);
  assert_false(dsp_warmup_done(&w, 100200));
  dsp_warmup_ping(&w, 99500); /* the present */
  assert_true(dsp_warmup_done(&w, 100300));
}

static void test_short_backlog_or_unknown_timestamps_do_not_end_it(void **state) {
  (void)state;
  dsp_warmup w;
  dsp_warmup_init(&w, 100000, 5000);
  dsp_warmup_ping(&w, 97000); /* down 3 s: the backlog covers 3 s of the 5 */
  dsp_warmup_ping(&w, 100000);
  assert_false(dsp_warmup_done(&w, 100100));
  assert_false(dsp_warmup_done(&w, 102000)); /* 5 s reached back, but nothing read lately */
  dsp_warmup_ping(&w, 101800);
  assert_true(dsp_warmup_done(&w, 102000)); /* 97000 is 5 s old by then, and 101800 recent */
  dsp_warmup init_w;
  dsp_warmup_init(&init_w, 100000, 5000);
  dsp_warmup_ping(&init_w, -1); /* no timestamp */
  assert_false(dsp_warmup_done(&init_w, 104999));
  dsp_warmup_init(&init_w, 100000, 0); /* no warm-up configured */
  assert_true(dsp_warmup_done(&init_w, 100000));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_warmup_lasts_its_time_with_no_backlog),
      cmocka_unit_test(test_backlog_of_a_whole_warmup_ends_it_once_caught_up),
      cmocka_unit_test(test_short_backlog_or_unknown_timestamps_do_not_end_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
