/*
 * test_loadgen_backoff.c: the reconnection backoff of the simulated apps (loadgen/backoff.h):
 * delays grow x2 per failure up to the cap, stay in [ceil/2, ceil] whatever the random value
 * (so never 0 and never above the cap), spread over that range, and the count resets only
 * after a connection that stayed open long enough.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

static void test_backoff_doubles_per_failure_up_to_the_cap(void **state) {
  (void)state;
  lg_backoff_policy p = lg_backoff_default();
  int64_t want[] = {250000, 500000, 1000000, 2000000, 4000000, 4000000, 4000000};
  for (uint32_t n = 0; n < 7; n++) {
    /* rnd = all ones: the top of the range; 0: its bottom, half the ceiling */
    assert_int_equal(lg_backoff_delay_us(&p, n, UINT64_MAX), want[n]);
    assert_int_equal(lg_backoff_delay_us(&p, n, 0), want[n] / 2);
  }
  assert_int_equal(lg_backoff_delay_us(&p, UINT32_MAX, UINT64_MAX), 4000000); /* no overflow */
}

static void test_backoff_jitter_spreads_clients_over_the_range(void **state) {
  (void)state;
  lg_backoff_policy p = lg_backoff_default();
  int buckets[4] = {0};
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 4000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift */
    int64_t d = lg_backoff_delay_us(&p, 3, x);
    assert_true(d >= 1000000 && d <= 2000000);
    buckets[(d - 1000000) * 4 / 1000001]++;
  }
  for (int b = 0; b < 4; b++) assert_true(buckets[b] > 800); /* about 1000 each */
}

static void test_backoff_resets_only_after_a_stable_connection(void **state) {
  (void)state;
  lg_backoff_policy p = lg_backoff_default();
  assert_int_equal(lg_backoff_next_failures(&p, 0, 0, 1000), 1); /* never opened */
  assert_int_equal(lg_backoff_next_failures(&p, 3, 0, 1000), 4);
  assert_int_equal(lg_backoff_next_failures(&p, 3, 1000, 1000 + 4999999), 4); /* open < 5 s */
  assert_int_equal(lg_backoff_next_failures(&p, 3, 1000, 1000 + 5000000), 0); /* open 5 s */
  assert_int_equal(lg_backoff_next_failures(&p, UINT32_MAX, 0, 1), UINT32_MAX);
  lg_backoff_policy none = {0, 0, 0};
  assert_int_equal(lg_backoff_delay_us(&none, 5, 12345), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backoff_doubles_per_failure_up_to_the_cap),
      cmocka_unit_test(test_backoff_jitter_spreads_clients_over_the_range),
      cmocka_unit_test(test_backoff_resets_only_after_a_stable_connection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
