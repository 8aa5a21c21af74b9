/* test_geometry.c: haversine, bearing and destination against published values, the
 * destination/bearing round trip, bounding boxes of circles across the antimeridian and at
 * the poles, the documented error bound of the equirectangular distance, and segment
 * projection. Random checks print their seed; SEED= replays. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "geo/geometry.h"
#include "testutil.h"

static geo_latlng dms(int d1, int m1, int s1, int d2, int m2, int s2) {
  double lat = abs(d1) + m1 / 60.0 + s1 / 3600.0, lng = abs(d2) + m2 / 60.0 + s2 / 3600.0;
  return (geo_latlng){d1 < 0 ? -lat : lat, d2 < 0 ? -lng : lng};
}

static void test_haversine_matches_published_distances(void **state) {
  (void)state;
  /* Rosetta Code "Haversine formula": BNA -> LAX is 2887.2599506 km on a 6372.8 km sphere;
   * scaled to our radius. */
  double d = geo_haversine_m((geo_latlng){36.12, -86.67}, (geo_latlng){33.94, -118.40});
  assert_true(fabs(d - 2887259.9506 * GEO_EARTH_RADIUS_M / 6372800.0) < 1.0);
  /* Movable Type Scripts: Land's End -> John o' Groats, 968.9 km. */
  geo_latlng le = dms(50, 3, 59, -5, 42, 53), jog = dms(58, 38, 38, -3, 4, 12);
  assert_true(fabs(geo_haversine_m(le, jog) - 968900.0) < 100.0);
  /* One degree along a meridian, and half the circumference between antipodes. */
  assert_true(fabs(geo_haversine_m((geo_latlng){0, 0}, (geo_latlng){1, 0}) -
                   GEO_EARTH_RADIUS_M * M_PI / 180) < 1e-6);
  assert_true(fabs(geo_haversine_m((geo_latlng){0, 0}, (geo_latlng){0, 180}) -
                   GEO_EARTH_RADIUS_M * M_PI) < 1e-3);
  assert_true(fabs(geo_haversine_m((geo_latlng){90, 0}, (geo_latlng){-90, 33}) -
                   GEO_EARTH_RADIUS_M * M_PI) < 1e-3);
  /* Across the antimeridian the short way, and symmetric bit for bit. */
  geo_latlng a = {10, 179.9}, b = {10, -179.9};
  assert_true(geo_haversine_m(a, b) < 25000);
  assert_true(geo_haversine_m(a, b) == geo_haversine_m(b, a));
  assert_true(geo_haversine_m(a, a) == 0.0);
}

static void test_bearing_matches_published_value_and_cardinal_directions(void **state) {
  (void)state;
  /* Movable Type Scripts: Land's End -> John o' Groats initial bearing 009 deg 07' 11". */
  geo_latlng le = dms(50, 3, 59, -5, 42, 53), jog = dms(58, 38, 38, -3, 4, 12);
  assert_true(fabs(geo_bearing_deg(le, jog) - (9 + 7 / 60.0 + 11 / 3600.0)) < 1.0 / 3600.0);
  assert_true(fabs(geo_bearing_deg((geo_latlng){0, 0}, (geo_latlng){1, 0}) - 0.0) < 1e-9);
  assert_true(fabs(geo_bearing_deg((geo_latlng){0, 0}, (geo_latlng){0, 1}) - 90.0) < 1e-9);
  assert_true(fabs(geo_bearing_deg((geo_latlng){0, 0}, (geo_latlng){-1, 0}) - 180.0) < 1e-9);
  assert_true(fabs(geo_bearing_deg((geo_latlng){0, 0}, (geo_latlng){0, -1}) - 270.0) < 1e-9);
  assert_true(fabs(geo_bearing_deg((geo_latlng){0, 179.5}, (geo_latlng){0, -179.5}) - 90.0) < 1e-9);
  assert_true(geo_bearing_deg((geo_latlng){5, 5}, (geo_latlng){5, 5}) == 0.0);
}

static void test_destination_matches_published_value_and_round_trips(void **state) {
  (void)state;
  /* Movable Type Scripts: from 53 19 14 N, 001 43 47 W on 096 01 18 for 124.8 km reaches
   * 53 11 18 N, 000 08 00 E. */
  geo_latlng from = dms(53, 19, 14, -1, 43, 47);
  geo_latlng to = geo_destination(from, 96 + 1 / 60.0 + 18 / 3600.0, 124800.0);
  geo_latlng want = dms(53, 11, 18, 0, 8, 0);
  assert_true(fabs(to.lat - want.lat) < 2.0 / 3600 && fabs(to.lng - want.lng) < 2.0 / 3600);
  tu_seed("destination_round_trip");
  for (int i = 0; i < 100000; i++) {
    geo_latlng p = {tu_uniform(-85, 85), tu_uniform(-180, 180)};
    double brg = tu_uniform(0, 360), d = tu_uniform(1, 2e6);
    geo_latlng q = geo_destination(p, brg, d);
    assert_true(geo_latlng_is_valid(q));
    assert_true(fabs(geo_haversine_m(p, q) - d) < 1e-6 * d + 1e-6);
    double db = fabs(geo_bearing_deg(p, q) - brg);
    if (db > 180) db = 360 - db;
    assert_true(db < 1e-6);
  }
  /* Crossing the antimeridian normalises the longitude. */
  geo_latlng e = geo_destination((geo_latlng){0, 179.99}, 90, 5000);
  assert_true(e.lng < -179.9 && e.lng >= -180);
}

static void test_bbox_of_circle_handles_antimeridian_and_poles(void **state) {
  (void)state;
  geo_bbox b;
  /* Near the antimeridian: the box crosses it (min_lng > max_lng). */
  assert_int_equal(geo_bbox_of_circle((geo_latlng){0, 179.99}, 5000, &b), GEO_OK);
  assert_true(b.min_lng > b.max_lng);
  assert_true(geo_bbox_contains(b, (geo_latlng){0, -179.99}));
  assert_true(geo_bbox_contains(b, (geo_latlng){0, 179.98}));
  assert_false(geo_bbox_contains(b, (geo_latlng){0, 0}));
  assert_int_equal(geo_bbox_of_circle((geo_latlng){0, -179.99}, 5000, &b), GEO_OK);
  assert_true(b.min_lng > b.max_lng && geo_bbox_contains(b, (geo_latlng){0, 179.99}));
  /* Reaching a pole: every longitude. */
  assert_int_equal(geo_bbox_of_circle((geo_latlng){89.99, 10}, 5000, &b), GEO_OK);
  assert_true(b.max_lat == 90.0 && b.min_lng == -180.0 && b.max_lng == 180.0);
  assert_int_equal(geo_bbox_of_circle((geo_latlng){-89.99, 10}, 5000, &b), GEO_OK);
  assert_true(b.min_lat == -90.0 && b.min_lng == -180.0 && b.max_lng == 180.0);
  assert_int_equal(geo_bbox_of_circle((geo_latlng){90, 0}, 0, &b), GEO_OK);
  assert_true(b.max_lat == 90.0);
  /* Errors. */
  assert_int_equal(geo_bbox_of_circle((geo_latlng){0, 0}, -1, &b), GEO_EINVAL);
  assert_int_equal(geo_bbox_of_circle((geo_latlng){0, 0}, NAN, &b), GEO_EINVAL);
  assert_int_equal(geo_bbox_of_circle((geo_latlng){91, 0}, 1, &b), GEO_EINVAL);
  assert_int_equal(geo_bbox_of_circle((geo_latlng){0, 0}, 1, NULL), GEO_EINVAL);
  /* Every point of random circles is inside the box, and the box is tight. */
  tu_seed("bbox_of_circle");
  for (int i = 0; i < 20000; i++) {
    geo_latlng c = {tu_uniform(-90, 90), tu_uniform(-180, 180)};
    double r = tu_uniform(0, 1) < 0.5 ? tu_uniform(0, 5000) : tu_uniform(0, 3e6);
    assert_int_equal(geo_bbox_of_circle(c, r, &b), GEO_OK);
    for (int k = 0; k < 16; k++) {
      geo_latlng p = geo_destination(c, tu_uniform(0, 360), r * tu_uniform(0, 1));
      geo_bbox grown = {b.min_lat - 1e-9, b.min_lng - 1e-9, b.max_lat + 1e-9, b.max_lng + 1e-9};
      if (grown.min_lng < -180) grown.min_lng += 360;
      if (grown.max_lng > 180) grown.max_lng -= 360;
      if (b.min_lng == -180 && b.max_lng == 180) grown.min_lng = -180, grown.max_lng = 180;
      assert_true(geo_bbox_contains(grown, p));
    }
    if (b.max_lat < 90 && b.min_lat > -90) { /* the northernmost point is on the box */
      geo_latlng n = geo_destination(c, 0, r);
      assert_true(fabs(n.lat - b.max_lat) < 1e-9);
    }
  }
}

static void test_equirect_stays_within_its_documented_error_bound(void **state) {
  (void)state;
  tu_seed("equirect_bound");
  double worst10 = 0, worst1000 = 0;
  for (int i = 0; i < 200000; i++) {
    geo_latlng a = {tu_uniform(-80, 80), tu_uniform(-180, 180)};
    geo_latlng b = geo_destination(a, tu_uniform(0, 360), tu_uniform(1, 10000));
    if (fabs(b.lat) <= 80) {
      double r = fabs(geo_equirect_m(a, b) / geo_haversine_m(a, b) - 1);
      if (r > worst10) worst10 = r;
    }
    a = (geo_latlng){tu_uniform(-70, 70), tu_uniform(-180, 180)};
    b = geo_destination(a, tu_uniform(0, 360), tu_uniform(1, 1e6));
    if (fabs(b.lat) <= 70) {
      double r = fabs(geo_equirect_m(a, b) / geo_haversine_m(a, b) - 1);
      if (r > worst1000) worst1000 = r;
    }
  }
  fprintf(stderr, "equirect worst relative error: %.2e (<= 10 km), %.2e (<= 1000 km)\n", worst10,
          worst1000);
  assert_true(worst10 <= 1e-5);
  assert_true(worst1000 <= 1e-2);
  /* The short way round the antimeridian. */
  assert_true(geo_equirect_m((geo_latlng){0, 179.9}, (geo_latlng){0, -179.9}) < 25000);
}

static void test_normalize_lng_and_projection_on_segment(void **state) {
  (void)state;
  assert_true(geo_normalize_lng(190) == -170);
  assert_true(geo_normalize_lng(-190) == 170);
  assert_true(geo_normalize_lng(180) == -180);
  assert_true(geo_normalize_lng(540) == -180);
  assert_true(geo_normalize_lng(12.5) == 12.5);
  geo_latlng proj;
  double frac;
  geo_latlng a = {40.0, -74.0}, b = {40.0, -73.99};
  double d = geo_project_on_segment((geo_latlng){40.001, -73.995}, a, b, &proj, &frac);
  assert_true(fabs(frac - 0.5) < 1e-9 && fabs(proj.lat - 40.0) < 1e-12);
  assert_true(fabs(d - GEO_EARTH_RADIUS_M * 0.001 * M_PI / 180) < 0.01);
  d = geo_project_on_segment((geo_latlng){40.0, -74.1}, a, b, &proj, &frac); /* beyond a */
  assert_true(frac == 0.0 && proj.lng == a.lng);
  assert_true(fabs(d - geo_haversine_m((geo_latlng){40.0, -74.1}, a)) < 1e-9);
  d = geo_project_on_segment((geo_latlng){1, 1}, a, a, NULL, &frac); /* degenerate segment */
  assert_true(frac == 0.0 && d == geo_haversine_m((geo_latlng){1, 1}, a));
}

/* The haversine with long double trigonometry: what the double implementation (Taylor
 * polynomials within 0.02 rad, libm beyond) must agree with at every scale. */
static double haversine_ref_m(geo_latlng a, geo_latlng b) {
  const long double d2r = 3.14159265358979323846264338327950288L / 180.0L;
  long double p1 = a.lat * d2r, p2 = b.lat * d2r, dp = p2 - p1,
              dl = ((long double)b.lng - a.lng) * d2r;
  long double s1 = sinl(dp / 2), s2 = sinl(dl / 2);
  long double h = s1 * s1 + cosl(p1) * cosl(p2) * s2 * s2;
  if (h > 1) h = 1;
  return (double)(2.0L * GEO_EARTH_RADIUS_M * asinl(sqrtl(h)));
}

static void test_haversine_agrees_with_long_double_at_every_scale(void **state) {
  (void)state;
  tu_seed("test_haversine_agrees_with_long_double_at_every_scale");
  double worst = 0;
  for (int i = 0; i < 400000; i++) {
    double lat = tu_uniform(-89.9, 89.9), lng = tu_uniform(-180, 180);
    double span = 1.5 * pow(10, -tu_uniform(0, 8)); /* degrees: 1.5 down to 1.5e-8 */
    geo_latlng a = {lat, lng};
    geo_latlng b = {lat + tu_uniform(-span, span), lng + tu_uniform(-span, span)};
    if (b.lat > 90 || b.lat < -90) continue;
    double d = geo_haversine_m(a, b), ref = haversine_ref_m(a, b);
    double err = fabs(d - ref);
    /* 1e-14 relative, plus what rounding a latitude in radians can move a point (~1e-9 m). */
    if (!(err <= 1e-14 * ref + 1e-8)) {
      fprintf(stderr, "a=(%.17g, %.17g) b=(%.17g, %.17g): %.17g vs %.17g\n", a.lat, a.lng, b.lat,
              b.lng, d, ref);
      fail();
    }
    if (ref > 1000 && err / ref > worst) worst = err / ref;
    assert_true(fabs(d - geo_haversine_m(b, a)) <= 1e-14 * ref + 1e-8); /* symmetric to ulps */
  }
  fprintf(stderr, "worst relative error above 1 km: %.3g\n", worst);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_haversine_matches_published_distances),
      cmocka_unit_test(test_haversine_agrees_with_long_double_at_every_scale),
      cmocka_unit_test(test_bearing_matches_published_value_and_cardinal_directions),
      cmocka_unit_test(test_destination_matches_published_value_and_round_trips),
      cmocka_unit_test(test_bbox_of_circle_handles_antimeridian_and_poles),
      cmocka_unit_test(test_equirect_stays_within_its_documented_error_bound),
      cmocka_unit_test(test_normalize_lng_and_projection_on_segment),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
