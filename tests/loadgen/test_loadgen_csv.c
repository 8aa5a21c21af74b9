/*
 * test_loadgen_csv.c: both trip CSV formats, with every kind of bad row counted, skipped
 * and its line number reported; the real sample file parses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trips_csv.h"

/* A box around Manhattan stands in for the service area. */
static bool in_box(void *ud, double lat, double lon) {
  (void)ud;
  return lat > 40.68 && lat < 40.88 && lon > -74.03 && lon < -73.90;
}

static const char SAMPLE_HEADER[] =
    "obs_id,train_id,duration,day,hour,minute,weekday,pickup_longitude,pickup_latitude,"
    "dropoff_longitude,dropoff_latitude,trip_distance,pickup_NTACode,dropoff_NTACode\n";

static void test_sample_format_rows_kept_and_bad_rows_counted(void **state) {
  (void)state;
  char text[4096];
  snprintf(text, sizeof text, "%s%s", SAMPLE_HEADER,
           /* line 2: good */
           "id_1,train,1183,5,10,48,5,-73.9657,40.7588,-73.9464,40.7811,2.1,MN19,MN32\n"
           /* line 3: too few columns */
           "id_2,train,629,12,14,22,5,-73.9613,40.7715\n"
           /* line 4: non-numeric latitude */
           "id_3,train,278,14,2,7,7,-73.9742,forty,-73.9554,40.7767,1.9,MN19,MN32\n"
           /* line 5: missing duration (NA): kept, counted */
           "id_4,test,NA,9,18,4,2,-73.9618,40.7557,-73.9537,40.7849,2.5,MN19,MN40\n"
           /* line 6: drop-off in Queens-ish, out of the box */
           "id_5,test,NA,19,15,47,5,-74.0071,40.7291,-73.8000,40.7715,11.4,MN23,QN27\n"
           /* line 7: missing pickup coordinate */
           "id_6,train,300,1,9,54,1,,40.7657,-73.9388,40.8448,6.8,MN31,MN36\n"
           "\n"
           /* line 9: hour out of range */
           "id_7,train,300,1,24,54,1,-73.9578,40.7657,-73.9388,40.8448,6.8,MN31,MN36\n"
           /* line 10: good, CRLF */
           "id_8,valid,480,29,16,26,1,-74.0075,40.7409,-73.9948,40.7501,1.6,MN23,MN17\r\n");
  lg_trip_set set;
  char err[200];
  assert_int_equal(lg_trips_parse(text, strlen(text), in_box, NULL, 7, &set, err, sizeof err), 0);
  assert_int_equal(set.format, LG_CSV_SAMPLE);
  assert_int_equal(set.rows, 8);
  assert_int_equal(set.n, 3);
  assert_int_equal(set.skipped[LG_SKIP_COLUMNS], 1);
  assert_int_equal(set.skipped[LG_SKIP_NUMBER], 2);
  assert_int_equal(set.skipped[LG_SKIP_OUT_OF_AREA], 1);
  assert_int_equal(set.skipped[LG_SKIP_MISSING], 1);
  assert_int_equal(set.skipped_total, 5);
  assert_int_equal(set.no_duration, 1);
  uint32_t want_lines[] = {3, 4, 6, 7, 9};
  assert_int_equal(set.n_first_skipped, 5);
  for (int i = 0; i < 5; i++) assert_int_equal(set.first_skipped[i], want_lines[i]);
  const lg_trip *t = &set.trips[0];
  assert_int_equal(t->line, 2);
  assert_int_equal(t->hour, 10);
  assert_int_equal(t->minute, 48);
  assert_true(t->second >= 0 && t->second < 60);
  assert_int_equal(t->weekday, 4);
  assert_true(fabs(t->pickup_lat - 40.7588) < 1e-9 && fabs(t->pickup_lon + 73.9657) < 1e-9);
  assert_true(fabs(t->duration_s - 1183) < 1e-9);
  assert_true(fabs(t->tod_s - (10 * 3600 + 48 * 60 + t->second)) < 1e-9);
  assert_int_equal(set.trips[1].line, 5);
  assert_true(set.trips[1].duration_s < 0); /* NA: unknown */
  assert_int_equal(set.trips[2].line, 10);
  lg_trip_set_free(&set);
}

static void test_tlc_format_detected_and_duration_from_datetimes(void **state) {
  (void)state;
  const char *text =
      "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,"
      "pickup_longitude,pickup_latitude,RateCodeID,store_and_fwd_flag,dropoff_longitude,"
      "dropoff_latitude,payment_type,fare_amount\n"
      /* 2: good, 2015-01-15 was a Thursday */
      "2,2015-01-15 19:05:39,2015-01-15 "
      "19:23:42,1,1.59,-73.993896,40.750111,1,N,-73.974785,40.750618,1,12\n"
      /* 3: GPS zeros = missing */
      "1,2015-01-10 20:33:38,2015-01-10 20:53:28,1,3.30,0,0,1,N,0,0,1,17\n"
      /* 4: bad pickup time */
      "1,2015-13-10 20:33:38,2015-01-10 20:53:28,1,3.30,-73.97,40.75,1,N,-73.98,40.76,1,17\n"
      /* 5: drop-off before pickup: kept without duration */
      "1,2015-01-10 20:33:38,2015-01-10 20:13:28,1,3.30,-73.97,40.75,1,N,-73.98,40.76,1,17\n"
      /* 6: extra column */
      "1,2015-01-10 20:33:38,2015-01-10 20:53:28,1,3.30,-73.97,40.75,1,N,-73.98,40.76,1,17,9\n"
      /* 7: pickup in New Jersey */
      "1,2015-01-10 20:33:38,2015-01-10 20:53:28,1,3.30,-74.10,40.75,1,N,-73.98,40.76,1,17\n";
  lg_trip_set set;
  char err[200];
  assert_int_equal(lg_trips_parse(text, strlen(text), in_box, NULL, 1, &set, err, sizeof err), 0);
  assert_int_equal(set.format, LG_CSV_TLC);
  assert_int_equal(set.rows, 6);
  assert_int_equal(set.n, 2);
  assert_int_equal(set.skipped[LG_SKIP_MISSING], 1);
  assert_int_equal(set.skipped[LG_SKIP_TIME], 1);
  assert_int_equal(set.skipped[LG_SKIP_COLUMNS], 1);
  assert_int_equal(set.skipped[LG_SKIP_OUT_OF_AREA], 1);
  assert_int_equal(set.no_duration, 1);
  const lg_trip *t = &set.trips[0];
  assert_int_equal(t->day, 15);
  assert_int_equal(t->hour, 19);
  assert_int_equal(t->minute, 5);
  assert_int_equal(t->second, 39);
  assert_int_equal(t->weekday, 4);
  assert_true(fabs(t->duration_s - (18 * 60 + 3)) < 1e-9);
  assert_int_equal(t->year, 2015);
  assert_int_equal(t->month, 1);
  assert_float_equal(t->fare_amount_usd, 12, 0);
  assert_int_equal(t->rate_code, 1);
  assert_true(set.trips[1].duration_s < 0);
  lg_trip_set_free(&set);
}

static void test_unknown_header_is_an_error(void **state) {
  (void)state;
  const char *text = "a,b,c\n1,2,3\n";
  lg_trip_set set;
  char err[200] = "";
  assert_int_equal(lg_trips_parse(text, strlen(text), in_box, NULL, 1, &set, err, sizeof err), -1);
  assert_non_null(strstr(err, "longitude"));
  assert_int_equal(lg_trips_parse("", 0, in_box, NULL, 1, &set, err, sizeof err), -1);
  assert_int_equal(lg_trips_load("/nonexistent/trips.csv", in_box, NULL, 1, &set, err, sizeof err),
                   -1);
  assert_non_null(strstr(err, "No such file"));
}

static void test_sample_seconds_depend_on_seed_only(void **state) {
  (void)state;
  char text[1024];
  snprintf(text, sizeof text, "%s%s", SAMPLE_HEADER,
           "id_1,train,1183,5,10,48,5,-73.9657,40.7588,-73.9464,40.7811,2.1,MN19,MN32\n");
  lg_trip_set a, b;
  char err[200];
  assert_int_equal(lg_trips_parse(text, strlen(text), in_box, NULL, 42, &a, err, sizeof err), 0);
  assert_int_equal(lg_trips_parse(text, strlen(text), in_box, NULL, 42, &b, err, sizeof err), 0);
  assert_int_equal(a.trips[0].second, b.trips[0].second);
  lg_trip_set_free(&a);
  lg_trip_set_free(&b);
}

static void test_real_sample_file_parses(void **state) {
  (void)state;
  const char *src = getenv("MERIDIAN_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/data/trips/nyc-taxi-10k.csv", src ? src : ".");
  lg_trip_set set;
  char err[300];
  assert_int_equal(lg_trips_load(path, in_box, NULL, 1, &set, err, sizeof err), 0);
  assert_int_equal(set.rows, 10000);
  assert_int_equal(set.n + set.skipped_total, 10000);
  assert_true(set.n > 8500);
  assert_true(set.no_duration > 1500 && set.no_duration < 2000);
  lg_trip_set_free(&set);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sample_format_rows_kept_and_bad_rows_counted),
      cmocka_unit_test(test_tlc_format_detected_and_duration_from_datetimes),
      cmocka_unit_test(test_unknown_header_is_an_error),
      cmocka_unit_test(test_sample_seconds_depend_on_seed_only),
      cmocka_unit_test(test_real_sample_file_parses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
