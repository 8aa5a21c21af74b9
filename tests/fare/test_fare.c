/*
 * test_fare.c: the meter (services/fare/fare.c). Cases from the published NYC card and
 * from real TLC records priced by it (the meter at the trip's average speed), the
 * time-of-day windows (wrapping past midnight), surge on the metered part only, monotony
 * in distance and time, and bad input refused.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fare.h"

#define MI_M 1609.344

static mrd_tariff card_2012(void) {
  static const char txt[] = "name = nyc\nfirst_day = 2012-09-04\nflag_drop_cents = 250\n"
                            "increment_cents = 50\nincrement_distance_mi = 0.2\n"
                            "increment_time_s = 60\nslow_speed_mph = 12\n"
                            "surcharge = night all 20:00-06:00 50\n"
                            "surcharge = peak mon-fri 16:00-20:00 100\n"
                            "fixed = mta 50\nfixed = improvement 30\n";
  mrd_tariff t;
  char err[200];
  if (mrd_tariff_parse(txt, strlen(txt), &t, err, sizeof err) != 0) fail_msg("%s", err);
  return t;
}

static const mrd_fare_when NOON_TUE = {2, 12 * 60};

static mrd_fare price1(const mrd_tariff *t, double d_m, double s, mrd_fare_when w, double surge) {
  mrd_fare_leg l = {d_m, s};
  mrd_fare f;
  assert_int_equal(mrd_fare_price(t, &l, 1, 1.0, w, surge, &f), 0);
  assert_true(mrd_fare_check(&f));
  return f;
}

static void test_fare_real_tlc_records_at_average_speed(void **state) {
  (void)state;
  mrd_tariff t = card_2012();
  /* 2016-06-09 21:06:36 -> 21:13:08 (Thursday), 0.79 mi: fare_amount 6.00, extra 0.50 */
  mrd_fare f = price1(&t, 0.79 * MI_M, 392, (mrd_fare_when){4, 21 * 60 + 6}, 1);
  assert_int_equal(f.metered_cents, 600);
  assert_int_equal(f.time_surcharge_cents, 50);
  assert_int_equal(f.fixed_cents, 80);
  assert_int_equal(f.total_cents, 730); /* the record's total less its tip: 7.30 */
  assert_float_equal(f.slow_time_s, 392, 1e-9);
  /* 2016-03-01 00:00:00 -> 00:07:55 (Tuesday), 2.5 mi: fare_amount 9.00, extra 0.50 */
  f = price1(&t, 2.5 * MI_M, 475, (mrd_fare_when){2, 0}, 1);
  assert_int_equal(f.metered_cents, 900);
  assert_int_equal(f.time_surcharge_cents, 50);
  assert_float_equal(f.slow_time_s, 0, 0);
}

static void test_fare_legs_switch_between_distance_and_time(void **state) {
  (void)state;
  mrd_tariff t = card_2012();
  /* 1 mile fast (5 units) + 3 minutes stopped (3 units) = 8 units */
  mrd_fare_leg legs[] = {{MI_M, 120}, {0, 180}};
  mrd_fare f;
  assert_int_equal(mrd_fare_price(&t, legs, 2, 1.0, NOON_TUE, 1, &f), 0);
  assert_float_equal(f.units, 8, 1e-9);
  assert_int_equal(f.metered_cents, 250 + 8 * 50);
  assert_float_equal(f.slow_time_s, 180, 1e-9);
  /* time_scale 3: the first leg now runs at 10 mph, below the slow speed: 6 + 9 units */
  assert_int_equal(mrd_fare_price(&t, legs, 2, 3.0, NOON_TUE, 1, &f), 0);
  assert_float_equal(f.units, 15, 1e-9);
  assert_float_equal(f.time_s, 900, 1e-9);
  /* exactly 5 units is 5, not 6 */
  f = price1(&t, 5 * 0.2 * MI_M, 1, NOON_TUE, 1);
  assert_int_equal(f.metered_cents, 500);
  /* no legs: the flag drop */
  assert_int_equal(mrd_fare_price(&t, NULL, 0, 1.0, NOON_TUE, 1, &f), 0);
  assert_int_equal(f.metered_cents, 250);
  /* the minimum */
  t.minimum_cents = 1000;
  f = price1(&t, 100, 10, NOON_TUE, 1);
  assert_int_equal(f.metered_cents, 1000);
}

static void test_fare_time_of_day_windows(void **state) {
  (void)state;
  mrd_tariff t = card_2012();
  struct {
    int wd, h, m;
    int64_t cents;
  } cases[] = {
      {2, 12, 0, 0},  {2, 16, 0, 100}, {2, 19, 59, 100}, {2, 20, 0, 50},
      {5, 23, 0, 50}, {6, 3, 0, 50},   {6, 6, 0, 0},     {6, 16, 30, 0},
      {0, 17, 0, 0},  {1, 5, 59, 50},  {1, 16, 0, 100},  {5, 16, 0, 100},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t c = mrd_fare_time_surcharge_cents(
        &t, (mrd_fare_when){cases[i].wd, cases[i].h * 60 + cases[i].m});
    if (c != cases[i].cents)
      fail_msg("weekday %d %02d:%02d: %lld cents, expected %lld", cases[i].wd, cases[i].h,
               cases[i].m, (long long)c, (long long)cases[i].cents);
  }
  /* a wrapping window on weekdays only: Saturday 03:00 is Friday's night, Monday 03:00
   * is Sunday's (not in the mask) */
  t.windows[0].days_mask = 0x3e;
  assert_int_equal(mrd_fare_time_surcharge_cents(&t, (mrd_fare_when){6, 180}), 50);
  assert_int_equal(mrd_fare_time_surcharge_cents(&t, (mrd_fare_when){1, 180}), 0);
  assert_int_equal(mrd_fare_time_surcharge_cents(&t, (mrd_fare_when){-1, 180}), 0);
  assert_int_equal(mrd_fare_time_surcharge_cents(&t, (mrd_fare_when){1, 1440}), 0);
}

static void test_fare_surge_multiplies_the_metered_part_only(void **state) {
  (void)state;
  mrd_tariff t = card_2012();
  mrd_fare a = price1(&t, 3000, 900, (mrd_fare_when){2, 17 * 60}, 1.0);
  mrd_fare b = price1(&t, 3000, 900, (mrd_fare_when){2, 17 * 60}, 1.5);
  assert_int_equal(b.metered_cents, a.metered_cents);
  assert_int_equal(b.surge_cents, llround(a.metered_cents * 0.5));
  assert_int_equal(b.total_cents - a.total_cents, b.surge_cents);
  mrd_fare c = price1(&t, 3000, 900, (mrd_fare_when){2, 17 * 60}, 0.5); /* floor 1 */
  assert_int_equal(c.total_cents, a.total_cents);
  assert_float_equal(c.surge, 1.0, 0);
}

static void test_fare_grows_with_distance_and_time(void **state) {
  (void)state;
  mrd_tariff t = card_2012();
  unsigned seed = getenv("SEED") ? (unsigned)strtoul(getenv("SEED"), NULL, 10) : 15u;
  printf("SEED=%u\n", seed);
  srand(seed);
  for (int i = 0; i < 2000; i++) {
    double d = rand() % 20000, s = 1 + rand() % 3600;
    mrd_fare f0 = price1(&t, d, s, NOON_TUE, 1);
    mrd_fare f1 = price1(&t, d + rand() % 500, s, NOON_TUE, 1);
    mrd_fare f2 = price1(&t, d, s + rand() % 300, NOON_TUE, 1);
    assert_true(f1.metered_cents >= f0.metered_cents);
    /* more time on the same distance: slower, never cheaper */
    assert_true(f2.metered_cents >= f0.metered_cents);
  }
}

static void test_fare_refuses_bad_input(void **state) {
  (void)state;
  mrd_tariff t = card_2012();
  mrd_fare f = {0};
  f.total_cents = 12345;
  mrd_fare_leg bad[] = {{-1, 10}, {10, -1}, {NAN, 1}, {1, INFINITY}};
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(mrd_fare_price(&t, &bad[i], 1, 1.0, NOON_TUE, 1, &f), -1);
  mrd_fare_leg ok = {10, 10};
  assert_int_equal(mrd_fare_price(&t, &ok, 1, 0, NOON_TUE, 1, &f), -1);
  assert_int_equal(mrd_fare_price(&t, &ok, 1, NAN, NOON_TUE, 1, &f), -1);
  assert_int_equal(mrd_fare_price(&t, &ok, 1, 1, NOON_TUE, NAN, &f), -1);
  assert_int_equal(mrd_fare_price(NULL, &ok, 1, 1, NOON_TUE, 1, &f), -1);
  assert_int_equal(mrd_fare_price(&t, NULL, 1, 1, NOON_TUE, 1, &f), -1);
  mrd_fare_leg huge = {1e15, 1};
  assert_int_equal(mrd_fare_price(&t, &huge, 1, 1, NOON_TUE, 1, &f), -1);
  assert_int_equal(f.total_cents, 12345); /* untouched */
  assert_false(mrd_fare_check(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fare_real_tlc_records_at_average_speed),
      cmocka_unit_test(test_fare_legs_switch_between_distance_and_time),
      cmocka_unit_test(test_fare_time_of_day_windows),
      cmocka_unit_test(test_fare_surge_multiplies_the_metered_part_only),
      cmocka_unit_test(test_fare_grows_with_distance_and_time),
      cmocka_unit_test(test_fare_refuses_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
