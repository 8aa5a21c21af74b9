/*
 * test_tariff.c: the tariff file parser (services/fare/tariff.c): a well-formed card, the
 * errors a malformed one gets (each names its line), and every card shipped in
 * data/tariffs/ parsing and following the previous one in time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fare.h"

static const char GOOD[] = "# a card\n"
                           "name = test-card\n"
                           "source = somewhere # with a comment\n"
                           "first_day = 2012-09-04\n"
                           "flag_drop_cents = 250\n"
                           "increment_cents = 50\n"
                           "increment_distance_mi = 0.2\n"
                           "increment_time_s = 60\n"
                           "slow_speed_mph = 12\n"
                           "surcharge = night all 20:00-06:00 50\n"
                           "surcharge = peak mon-fri 16:00-20:00 100\n"
                           "fixed = mta 50\r\n";

static void test_tariff_parses_a_card(void **state) {
  (void)state;
  mrd_tariff t;
  char err[200] = "";
  assert_int_equal(mrd_tariff_parse(GOOD, strlen(GOOD), &t, err, sizeof err), 0);
  assert_string_equal(t.name, "test-card");
  int64_t d;
  assert_true(mrd_fare_civil_day(2012, 9, 4, &d));
  assert_int_equal(t.first_day, d);
  assert_int_equal(t.flag_drop_cents, 250);
  assert_int_equal(t.increment_cents, 50);
  assert_float_equal(t.increment_distance_m, 321.8688, 1e-6);
  assert_float_equal(t.increment_time_s, 60, 0);
  assert_float_equal(t.slow_speed_mps, 5.36448, 1e-9);
  assert_int_equal(t.n_windows, 2);
  assert_int_equal(t.windows[0].days_mask, 0x7f);
  assert_int_equal(t.windows[0].from_min, 1200);
  assert_int_equal(t.windows[0].to_min, 360);
  assert_int_equal(t.windows[1].days_mask, 0x3e); /* mon..fri */
  assert_int_equal(t.n_fixed, 1);
  assert_int_equal(t.fixed[0].cents, 50);
}

/* GOOD with line `line` (1-based) replaced by `with`; the parser must fail naming `expect`. */
static void expect_error(int line, const char *with, const char *expect) {
  char buf[2048] = "";
  const char *p = GOOD;
  for (int l = 1; *p; l++) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);
    if (l == line) {
      strcat(buf, with);
      strcat(buf, "\n");
    } else {
      strncat(buf, p, n);
    }
    p += n;
  }
  mrd_tariff t;
  char err[200] = "";
  assert_int_equal(mrd_tariff_parse(buf, strlen(buf), &t, err, sizeof err), -1);
  if (strstr(err, expect) == NULL) fail_msg("error \"%s\" does not name \"%s\"", err, expect);
}

static void test_tariff_rejects_malformed_lines_with_their_number(void **state) {
  (void)state;
  expect_error(5, "flag_drop_cents = 2.50", "line 5: flag_drop_cents");
  expect_error(5, "flag_drop_cents = -1", "line 5: flag_drop_cents");
  expect_error(5, "flag_drop_cents = 250 cents", "line 5: flag_drop_cents");
  expect_error(5, "flag_drop_cents =", "line 5: flag_drop_cents: empty value");
  expect_error(5, "flag_drop_cent = 250", "line 5: unknown key \"flag_drop_cent\"");
  expect_error(5, "flag_drop_cents 250", "line 5: expected `key = value`");
  expect_error(5, "increment_cents = 50", "line 6: increment_cents given twice");
  expect_error(4, "first_day = 2013-02-29", "line 4: first_day");
  expect_error(4, "first_day = 2013-2-1", "line 4: first_day");
  expect_error(7, "increment_distance_mi = 0", "line 7: increment_distance_mi");
  expect_error(7, "increment_distance_mi = nan", "line 7: increment_distance_mi");
  expect_error(8, "increment_time_s = inf", "line 8: increment_time_s");
  /* fuzz_tariff's finding: a unit of 5.5e-13 m priced a 1 km leg at 1.8e15 units */
  expect_error(7, "increment_distance_mi = 0.000000000000342", "line 7: increment_distance_mi");
  expect_error(7, "increment_distance_m = 0.5", "line 7: increment_distance_m");
  expect_error(8, "increment_time_s = 0.2", "line 8: increment_time_s");
  expect_error(9, "slow_speed_mph = 1e999", "line 9: slow_speed_mph");
  expect_error(10, "surcharge = night all 20:00-20:00 50", "line 10: surcharge");
  expect_error(10, "surcharge = night mon-fry 20:00-06:00 50", "line 10: surcharge");
  expect_error(10, "surcharge = night all 24:00-06:00 50", "line 10: surcharge");
  expect_error(10, "surcharge = night all 20:00-06:00", "line 10: surcharge");
  expect_error(10, "surcharge = night all 20:00-06:00 50 extra", "line 10: surcharge");
  expect_error(10, "surcharge = Night all 20:00-06:00 50", "line 10: surcharge");
  expect_error(12, "fixed = mta", "line 12: fixed");
  expect_error(2, "# no name", "missing name");
  expect_error(9, "# no slow speed", "missing slow_speed_mph");
}

static void test_tariff_rejects_nul_too_long_and_too_many(void **state) {
  (void)state;
  mrd_tariff t;
  char err[200];
  char nul[] = "name = a\0b\n";
  assert_int_equal(mrd_tariff_parse(nul, sizeof nul - 1, &t, err, sizeof err), -1);
  assert_non_null(strstr(err, "NUL"));
  size_t big = MRD_TARIFF_FILE_MAX + 1;
  char *b = malloc(big);
  assert_non_null(b);
  memset(b, '#', big);
  assert_int_equal(mrd_tariff_parse(b, big, &t, err, sizeof err), -1);
  free(b);
  char many[4096];
  strcpy(many, GOOD);
  for (int i = 0; i < MRD_TARIFF_FIXED_MAX; i++) strcat(many, "fixed = x 1\n");
  assert_int_equal(mrd_tariff_parse(many, strlen(many), &t, err, sizeof err), -1);
  assert_non_null(strstr(err, "more than"));
  assert_int_equal(mrd_tariff_parse(NULL, 0, &t, err, sizeof err), -1);
  assert_int_equal(mrd_tariff_load("/nonexistent/x.tariff", &t, err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent/x.tariff"));
}

static void test_tariff_shipped_cards_follow_one_another(void **state) {
  (void)state;
  const char *src = getenv("MERIDIAN_SOURCE_DIR");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/data/tariffs", src ? src : ".");
  mrd_tariff_set set;
  char err[300] = "";
  if (mrd_tariff_set_load_dir(dir, &set, err, sizeof err) != 0) fail_msg("%s", err);
  assert_true(set.n >= 5);
  int64_t d2012, d2011, d2023, d2003;
  assert_true(mrd_fare_civil_day(2012, 9, 4, &d2012));
  assert_true(mrd_fare_civil_day(2011, 6, 1, &d2011));
  assert_true(mrd_fare_civil_day(2023, 3, 1, &d2023));
  assert_true(mrd_fare_civil_day(2003, 1, 1, &d2003));
  assert_null(mrd_tariff_set_at(&set, d2003));
  assert_int_equal(mrd_tariff_set_at(&set, d2011)->increment_cents, 40);
  assert_string_equal(mrd_tariff_set_at(&set, d2012)->name, "nyc-yellow-2012-09-04");
  assert_int_equal(mrd_tariff_set_at(&set, d2012 - 1)->increment_cents, 40);
  assert_int_equal(mrd_tariff_set_at(&set, d2023)->flag_drop_cents, 300);
  for (size_t i = 0; i < set.n; i++) {
    /* each file names its first day: name ends with it */
    char day[16];
    const char *n = set.cards[i].name;
    snprintf(day, sizeof day, "%s", n + strlen(n) - 10);
    int y, m, dd;
    int64_t v;
    assert_int_equal(sscanf(day, "%d-%d-%d", &y, &m, &dd), 3);
    assert_true(mrd_fare_civil_day(y, m, dd, &v));
    assert_int_equal(v, set.cards[i].first_day);
    if (i) assert_true(set.cards[i].first_day > set.cards[i - 1].first_day);
  }
  mrd_tariff_set_free(&set);
  mrd_tariff_set_free(&set); /* zeroed: a no-op */
  assert_int_equal(mrd_tariff_set_load_dir("/nonexistent", &set, err, sizeof err), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tariff_parses_a_card),
      cmocka_unit_test(test_tariff_rejects_malformed_lines_with_their_number),
      cmocka_unit_test(test_tariff_rejects_nul_too_long_and_too_many),
      cmocka_unit_test(test_tariff_shipped_cards_follow_one_another),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
