/*
 * test_gateway_area.c: the service area (area.h): GeoJSON shapes accepted and refused,
 * holes, and the real Manhattan boundary against known places in and out of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "area.h"

static gw_area *from(const char *json) {
  char err[200];
  gw_area *a = gw_area_from_geojson(json, strlen(json), err, sizeof err);
  if (!a) fail_msg("%s: %s", json, err);
  return a;
}

static void test_polygon_with_a_hole(void **state) {
  (void)state;
  gw_area *a = from("{\"type\":\"Polygon\",\"coordinates\":["
                    "[[0,0],[10,0],[10,10],[0,10],[0,0]],"
                    "[[4,4],[6,4],[6,6],[4,6],[4,4]]]}");
  assert_true(gw_area_contains(a, 1, 1)); /* lat 1, lon 1 */
  assert_true(gw_area_contains(a, 9, 5));
  assert_false(gw_area_contains(a, 5, 5)); /* in the hole */
  assert_false(gw_area_contains(a, 11, 5));
  assert_false(gw_area_contains(a, 5, -0.1));
  assert_int_equal(gw_area_polygon_count(a), 1);
  assert_int_equal(gw_area_vertex_count(a), 10);
  gw_area_free(a);
}

static void test_feature_collection_of_polygons(void **state) {
  (void)state;
  gw_area *a = from("{\"type\":\"FeatureCollection\",\"features\":["
                    "{\"type\":\"Feature\",\"properties\":{},\"geometry\":{\"type\":\"Polygon\","
                    "\"coordinates\":[[[0,0],[1,0],[1,1],[0,0]]]}},"
                    "{\"type\":\"Feature\",\"geometry\":{\"type\":\"MultiPolygon\",\"coordinates\":"
                    "[[[[5,5],[6,5],[6,6],[5,6],[5,5]]]]}}]}");
  assert_true(gw_area_contains(a, 0.2, 0.8)); /* below the diagonal of the triangle */
  assert_false(gw_area_contains(a, 0.8, 0.2));
  assert_true(gw_area_contains(a, 5.5, 5.5));
  assert_false(gw_area_contains(a, 3, 3));
  assert_int_equal(gw_area_polygon_count(a), 2);
  gw_area_free(a);
}

static void test_bad_geojson_is_refused_with_a_reason(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "{\"type\":\"Point\",\"coordinates\":[0,0]}",
      "{\"type\":\"Polygon\",\"coordinates\":[[[0,0],[1,0],[0,0]]]}",
      "{\"type\":\"Polygon\",\"coordinates\":[[[0,0],[1,0],[1,\"x\"],[0,0]]]}",
      "{\"type\":\"Polygon\",\"coordinates\":[[[0,0],[1,0],[1,91],[0,0]]]}",
      "{\"type\":\"Polygon\",\"coordinates\":[]}",
      "{\"type\":\"FeatureCollection\",\"features\":[]}",
      "{\"type\":\"MultiPolygon\",\"coordinates\":{}}",
      "{\"coordinates\":[]}",
      "[1,2]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[200] = "";
    gw_area *a = gw_area_from_geojson(bad[i], strlen(bad[i]), err, sizeof err);
    if (a) fail_msg("accepted: %s", bad[i]);
    assert_true(strlen(err) > 0);
  }
  char err[200] = "";
  assert_null(gw_area_load("/nonexistent/area.geojson", err, sizeof err));
  assert_non_null(strstr(err, "/nonexistent/area.geojson"));
  gw_area_free(NULL);
}

static void test_manhattan_boundary_holds_manhattan_only(void **state) {
  (void)state;
  const char *src = getenv("MERIDIAN_SOURCE_DIR");
  char path[1024], err[200];
  snprintf(path, sizeof path, "%s/data/roads/manhattan-boundary.geojson", src ? src : ".");
  gw_area *a = gw_area_load(path, err, sizeof err);
  if (!a) fail_msg("%s", err);
  assert_int_equal(gw_area_polygon_count(a), 8);
  static const struct {
    const char *name;
    double lat, lon;
    bool in;
  } places[] = {
      {"Times Square", 40.7580, -73.9855, true},
      {"Central Park", 40.7829, -73.9654, true},
      {"Wall Street", 40.7060, -74.0086, true},
      {"Inwood", 40.8677, -73.9212, true},
      {"Harlem", 40.8116, -73.9465, true},
      {"Roosevelt Island", 40.7615, -73.9505, true},
      {"Brooklyn (Prospect Heights)", 40.6782, -73.9442, false},
      {"Queens (Long Island City)", 40.7447, -73.9485, false},
      {"Jersey City", 40.7178, -74.0431, false},
      {"Hudson River", 40.7700, -74.0000, false},
      {"The Bronx", 40.8448, -73.8648, false},
      {"JFK airport", 40.6413, -73.7781, false},
      {"Null Island", 0, 0, false},
  };
  for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
    if (gw_area_contains(a, places[i].lat, places[i].lon) != places[i].in)
      fail_msg("%s (%g, %g): expected %s", places[i].name, places[i].lat, places[i].lon,
               places[i].in ? "in" : "out");
  }
  gw_area_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_polygon_with_a_hole),
      cmocka_unit_test(test_feature_collection_of_polygons),
      cmocka_unit_test(test_bad_geojson_is_refused_with_a_reason),
      cmocka_unit_test(test_manhattan_boundary_holds_manhattan_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
