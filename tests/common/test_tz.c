/*
 * test_tz.c: mrd_timezone_set and mrd_local_hour_weekday (services/common tz.c): the local
 * hour and weekday of a Unix time in New York on both sides of a daylight-saving change, in
 * UTC, before 1970; zone names that glibc would silently take as UTC (unknown names, paths
 * out of the zone directory) refused with MRD_EINVAL and the zone left as it was; $TZDIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mrd/tz.h"

static void assert_local(int64_t unix_ms, int want_hour, int want_weekday) {
  int hour = -1, weekday = -1;
  assert_int_equal(mrd_local_hour_weekday(unix_ms, &hour, &weekday), 0);
  assert_int_equal(hour, want_hour);
  assert_int_equal(weekday, want_weekday);
}

static void test_tz_new_york_follows_daylight_saving(void **state) {
  (void)state;
  assert_int_equal(mrd_timezone_set(MRD_TIMEZONE_DEFAULT), 0);
  assert_string_equal(getenv("TZ"), "America/New_York");
  assert_local(1704893400000LL, 8, 3); /* 2024-01-10 13:30 UTC: Wed 08:30 EST (UTC-5) */
  assert_local(1720614600000LL, 8, 3); /* 2024-07-10 12:30 UTC: Wed 08:30 EDT (UTC-4) */
  assert_local(1705152600000LL, 8, 6); /* 2024-01-13 13:30 UTC: Sat 08:30 EST */
  /* 2024-03-10: 01:59:59.999 EST is followed by 03:00 EDT (07:00 UTC) */
  assert_local(1710053999999LL, 1, 0);
  assert_local(1710054000000LL, 3, 0);
  /* just after midnight UTC on a Thursday is still Wednesday evening in New York */
  assert_local(1704931200000LL, 19, 3); /* 2024-01-11 00:00 UTC */
}

static void test_tz_utc_and_times_before_1970(void **state) {
  (void)state;
  assert_int_equal(mrd_timezone_set("UTC"), 0);
  assert_local(0, 0, 4);      /* 1970-01-01 was a Thursday */
  assert_local(-1, 23, 3);    /* one millisecond earlier: Wednesday 23:59:59.999 */
  assert_local(-1000, 23, 3); /* whole seconds round down too */
  assert_local(1704893400000LL, 13, 3);
  int hour, weekday;
  assert_int_equal(mrd_local_hour_weekday(INT64_MAX, &hour, &weekday), 0);
  assert_in_range(hour, 0, 23);
  assert_in_range(weekday, 0, 6);
}

static void test_tz_refuses_unknown_zones_and_keeps_the_current_one(void **state) {
  (void)state;
  assert_int_equal(mrd_timezone_set("America/New_York"), 0);
  const char *bad[] = {"",
                       "Mars/Olympus_Mons",
                       "../../etc/passwd",
                       "America/../../../etc/passwd",
                       "/usr/share/zoneinfo/America/New_York",
                       "America/New_York_"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(mrd_timezone_set(bad[i]), MRD_EINVAL);
    assert_string_equal(getenv("TZ"), "America/New_York");
  }
  assert_int_equal(mrd_timezone_set(NULL), MRD_EINVAL);
  assert_local(1704893400000LL, 8, 3);
  int hour;
  assert_int_equal(mrd_local_hour_weekday(0, &hour, NULL), MRD_EINVAL);
  assert_int_equal(mrd_local_hour_weekday(0, NULL, &hour), MRD_EINVAL);
}

static void test_tz_looks_zones_up_under_tzdir(void **state) {
  (void)state;
  char dir[] = "/tmp/meridian-test-tz-XXXXXX";
  assert_non_null(mkdtemp(dir));
  assert_int_equal(setenv("TZDIR", dir, 1), 0);
  /* an empty zone directory has no New York ... */
  assert_int_equal(mrd_timezone_set("America/New_York"), MRD_EINVAL);
  /* ... but UTC needs no file */
  assert_int_equal(mrd_timezone_set("UTC"), 0);
  /* a zone file there is found (its content is glibc's business, not this check's) */
  char path[128];
  snprintf(path, sizeof path, "%s/Test_Zone", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fclose(f);
  assert_int_equal(mrd_timezone_set("Test_Zone"), 0);
  assert_string_equal(getenv("TZ"), "Test_Zone");
  unlink(path);
  rmdir(dir);
  unsetenv("TZDIR");
  assert_int_equal(mrd_timezone_set("UTC"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tz_new_york_follows_daylight_saving),
      cmocka_unit_test(test_tz_utc_and_times_before_1970),
      cmocka_unit_test(test_tz_refuses_unknown_zones_and_keeps_the_current_one),
      cmocka_unit_test(test_tz_looks_zones_up_under_tzdir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
