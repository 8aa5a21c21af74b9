/*
 * test_gateway_area.c: the service area (area.h): GeoJSON shapes accepted and refused,
 * holes, and the real Manhattan boundary against known places in and out of it; the
 * latitude strips answer as the whole-ring scan does, point for point.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

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

/* The shipped Manhattan boundary (data/roads, under MERIDIAN_SOURCE_DIR). */
static gw_area *manhattan(void) {
  const char *src = getenv("MERIDIAN_SOURCE_DIR");
  char path[1024], err[200];
  snprintf(path, sizeof path, "%s/data/roads/manhattan-boundary.geojson", src ? src : ".");
  gw_area *a = gw_area_load(path, err, sizeof err);
  if (!a) fail_msg("%s", err);
  return a;
}

static void test_manhattan_boundary_holds_manhattan_only(void **state) {
  (void)state;
  gw_area *a = manhattan();
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

static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static double unit(uint64_t *s) { return (double)(mix(s) >> 11) * 0x1p-53; }

/* Points a strip could get wrong: random ones over the bounding box, and ones at the exact
 * latitude (and longitude) of vertices, at strip boundaries and on edges. Every answer must
 * be the scan's. Returns how many were inside (so that both answers are exercised). */
static int agree_everywhere(const gw_area *a, double lat0, double lat1, double lon0, double lon1,
                            const double *vlat, const double *vlon, int nv) {
  uint64_t seed = 42;
  int in = 0;
  for (int i = 0; i < 200000; i++) {
    double lat = lat0 + (lat1 - lat0) * unit(&seed), lon = lon0 + (lon1 - lon0) * unit(&seed);
    if (i % 4 == 1 && nv > 0) lat = vlat[mix(&seed) % (uint64_t)nv];
    if (i % 4 == 2 && nv > 0) {
      int k = (int)(mix(&seed) % (uint64_t)nv);
      lat = vlat[k];
      lon = vlon[k];
    }
    bool fast = gw_area_contains(a, lat, lon), ref = gw_area_contains_scan(a, lat, lon);
    if (fast != ref) fail_msg("(%.9f, %.9f): strips say %d, the scan %d", lat, lon, fast, ref);
    in += fast;
  }
  return in;
}

static void test_strips_answer_as_the_scan(void **state) {
  (void)state;
  /* a ring of 2,000 positions (a wobbly circle) with a hole of 500: both get strips */
  enum { N = 2000, H = 500 };
  static char json[200000];
  static double vlat[N + H], vlon[N + H];
  size_t o = (size_t)snprintf(json, sizeof json, "{\"type\":\"Polygon\",\"coordinates\":[[");
  for (int i = 0; i <= N; i++) {
    double t = 6.283185307179586 * (i % N) / N, r = 1 + 0.3 * sin(7 * t);
    double lon = r * cos(t), lat = r * sin(t);
    if (i < N) vlat[i] = lat, vlon[i] = lon;
    o += (size_t)snprintf(json + o, sizeof json - o, "%s[%.9f,%.9f]", i ? "," : "", lon, lat);
  }
  o += (size_t)snprintf(json + o, sizeof json - o, "],[");
  for (int i = 0; i <= H; i++) {
    double t = 6.283185307179586 * (i % H) / H;
    double lon = 0.3 * cos(t), lat = 0.3 * sin(t);
    if (i < H) vlat[N + i] = lat, vlon[N + i] = lon;
    o += (size_t)snprintf(json + o, sizeof json - o, "%s[%.9f,%.9f]", i ? "," : "", lon, lat);
  }
  snprintf(json + o, sizeof json - o, "]]}");
  gw_area *a = from(json);
  /* along lon 0, northwards: the hole to 0.3, the ring to 0.7 (r = 1 + 0.3 sin(3.5 pi)) */
  assert_false(gw_area_contains(a, 0, 0));
  assert_true(gw_area_contains(a, 0.5, 0));
  assert_false(gw_area_contains(a, 0.9, 0));
  int in = agree_everywhere(a, -1.4, 1.4, -1.4, 1.4, vlat, vlon, N + H);
  assert_true(in > 10000 && in < 190000);
  gw_area_free(a);
}

static void test_manhattan_strips_answer_as_the_scan(void **state) {
  (void)state;
  gw_area *a = manhattan();
  /* the places of the test above, and every latitude of the box's corners, as vertices */
  static const double vlat[] = {40.7580, 40.7829, 40.7060, 40.8677, 40.6782, 40.7447, 40.70, 40.88},
                      vlon[] = {-73.9855, -73.9654, -74.0086, -73.9212,
                                -73.9442, -73.9485, -74.02,   -73.90};
  int in = agree_everywhere(a, 40.68, 40.88, -74.05, -73.90, vlat, vlon, 8);
  assert_true(in > 10000);
  gw_area_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_polygon_with_a_hole),
      cmocka_unit_test(test_feature_collection_of_polygons),
      cmocka_unit_test(test_bad_geojson_is_refused_with_a_reason),
      cmocka_unit_test(test_manhattan_boundary_holds_manhattan_only),
      cmocka_unit_test(test_strips_answer_as_the_scan),
      cmocka_unit_test(test_manhattan_strips_answer_as_the_scan),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
