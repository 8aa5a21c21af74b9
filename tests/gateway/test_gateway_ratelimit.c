/*
 * test_gateway_ratelimit.c: the token bucket and the flood policy (ratelimit.h), driven by
 * a hand-held clock in milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ratelimit.h"

static int take_n(gw_bucket *b, int n, int64_t now_ms) {
  int ok = 0;
  for (int i = 0; i < n; i++) ok += gw_bucket_take(b, now_ms);
  return ok;
}

static void test_bucket_allows_the_burst_then_refuses(void **state) {
  (void)state;
  gw_bucket b;
  gw_bucket_init(&b, 5, 10, 1000);
  assert_int_equal(take_n(&b, 10, 1000), 10);
  assert_false(gw_bucket_take(&b, 1000));
  assert_false(gw_bucket_take(&b, 1199)); /* 0.995 token: not yet */
  assert_true(gw_bucket_take(&b, 1200));  /* 5/s: one token per 200 ms */
  assert_false(gw_bucket_take(&b, 1200));
}

static void test_bucket_sustains_its_rate(void **state) {
  (void)state;
  gw_bucket b;
  gw_bucket_init(&b, 5, 10, 0);
  assert_int_equal(take_n(&b, 10, 0), 10);
  /* one attempt every 10 ms for 60 s: 5/s gets through, no more */
  int ok = 0;
  for (int64_t t = 10; t <= 60000; t += 10) ok += gw_bucket_take(&b, t);
  assert_in_range(ok, 299, 300);
}

static void test_bucket_refills_only_up_to_the_burst(void **state) {
  (void)state;
  gw_bucket b;
  gw_bucket_init(&b, 2, 5, 0);
  assert_int_equal(take_n(&b, 5, 0), 5);
  assert_int_equal(take_n(&b, 100, 3600 * 1000), 5); /* an hour idle still gives 5 */
}

static void test_bucket_ignores_a_clock_going_backwards(void **state) {
  (void)state;
  gw_bucket b;
  gw_bucket_init(&b, 1, 1, 10000);
  assert_true(gw_bucket_take(&b, 10000));
  assert_false(gw_bucket_take(&b, 5000)); /* no refill, no underflow */
  assert_false(gw_bucket_take(&b, 10999));
  assert_true(gw_bucket_take(&b, 11000));
}

static void test_bucket_clamps_silly_settings(void **state) {
  (void)state;
  gw_bucket b;
  gw_bucket_init(&b, 0, 0, 0); /* rate 0, burst 0 -> one token, (almost) never refilled */
  assert_true(gw_bucket_take(&b, 0));
  assert_false(gw_bucket_take(&b, 1000000));
}

static void test_flood_warns_then_closes(void **state) {
  (void)state;
  gw_flood f;
  gw_flood_init(&f, 3, 10000);
  assert_int_equal(gw_flood_hit(&f, 100), GW_FLOOD_WARN);
  assert_int_equal(gw_flood_hit(&f, 200), GW_FLOOD_WARN);
  assert_int_equal(gw_flood_hit(&f, 300), GW_FLOOD_WARN);
  assert_int_equal(gw_flood_hit(&f, 400), GW_FLOOD_CLOSE);
}

static void test_flood_forgives_after_the_window(void **state) {
  (void)state;
  gw_flood f;
  gw_flood_init(&f, 2, 1000);
  assert_int_equal(gw_flood_hit(&f, 0), GW_FLOOD_WARN);
  assert_int_equal(gw_flood_hit(&f, 999), GW_FLOOD_WARN);
  /* a new window starts at 1000: the count restarts */
  assert_int_equal(gw_flood_hit(&f, 1000), GW_FLOOD_WARN);
  assert_int_equal(gw_flood_hit(&f, 1001), GW_FLOOD_WARN);
  assert_int_equal(gw_flood_hit(&f, 1002), GW_FLOOD_CLOSE);
}

static void test_a_flooding_client_is_closed_with_a_steady_bucket(void **state) {
  (void)state;
  /* the gateway's policy end to end: 5/s burst 10, 10 warnings in 10 s; a client sending
   * 100 messages per second is closed within the first few seconds, one at 4/s never */
  for (int rate = 4; rate <= 100; rate += 96) {
    gw_bucket b;
    gw_flood f;
    gw_bucket_init(&b, 5, 10, 0);
    gw_flood_init(&f, 10, 10000);
    int64_t closed_at = -1;
    for (int64_t t = 0; t < 60000 && closed_at < 0; t += 1000 / rate) {
      if (!gw_bucket_take(&b, t) && gw_flood_hit(&f, t) == GW_FLOOD_CLOSE) closed_at = t;
    }
    if (rate == 4)
      assert_true(closed_at < 0);
    else
      assert_in_range(closed_at, 1, 3000);
  }
}

/* A charge may take more than is left: the bucket goes into debt and refills from there. */
static void test_bucket_charge_goes_into_debt(void **state) {
  (void)state;
  gw_bucket b;
  gw_bucket_init(&b, 100, 1000, 0);
  assert_true(gw_bucket_charge(&b, 600, 0) == 400);
  assert_true(gw_bucket_charge(&b, 900, 0) == -500);
  assert_false(gw_bucket_take(&b, 0));
  assert_true(gw_bucket_level(&b, 5000) == 0);     /* 100/s for 5 s */
  assert_true(gw_bucket_level(&b, 20000) == 1000); /* never above the burst */
  assert_true(gw_bucket_level(&b, -5) == -500);    /* a clock going back refills nothing */
  assert_true(gw_bucket_charge(&b, 0, 10000) == 500);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bucket_allows_the_burst_then_refuses),
      cmocka_unit_test(test_bucket_charge_goes_into_debt),
      cmocka_unit_test(test_bucket_sustains_its_rate),
      cmocka_unit_test(test_bucket_refills_only_up_to_the_burst),
      cmocka_unit_test(test_bucket_ignores_a_clock_going_backwards),
      cmocka_unit_test(test_bucket_clamps_silly_settings),
      cmocka_unit_test(test_flood_warns_then_closes),
      cmocka_unit_test(test_flood_forgives_after_the_window),
      cmocka_unit_test(test_a_flooding_client_is_closed_with_a_steady_bucket),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
