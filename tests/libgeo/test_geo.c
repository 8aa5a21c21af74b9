/* test_geo.c: error strings, coordinate validation and the allocation hooks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "geo/geo.h"

static void test_strerror_names_every_code(void **state) {
  (void)state;
  for (int e = 0; e < GEO_ERR_COUNT; e++) {
    const char *s = geo_strerror((geo_err)e);
    assert_non_null(s);
    assert_string_not_equal(s, "unknown error");
  }
  assert_string_equal(geo_strerror((geo_err)999), "unknown error");
}

static void test_latlng_validation_rejects_out_of_range_and_nan(void **state) {
  (void)state;
  assert_true(geo_latlng_is_valid((geo_latlng){40.7, -73.9}));
  assert_true(geo_latlng_is_valid((geo_latlng){90.0, 180.0}));
  assert_true(geo_latlng_is_valid((geo_latlng){-90.0, -180.0}));
  assert_false(geo_latlng_is_valid((geo_latlng){90.0001, 0}));
  assert_false(geo_latlng_is_valid((geo_latlng){0, -180.0001}));
  assert_false(geo_latlng_is_valid((geo_latlng){NAN, 0}));
  assert_false(geo_latlng_is_valid((geo_latlng){0, INFINITY}));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_names_every_code),
      cmocka_unit_test(test_latlng_validation_rejects_out_of_range_and_nan),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
