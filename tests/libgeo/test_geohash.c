/* test_geohash.c: geohash encode/decode on well-known places, strict parsing, neighbours
 * (across the antimeridian and at the poles), precision for a size, circle covers checked
 * against sampled points, the shard-range helpers, and out-of-memory in the cover.
 * Random checks print their seed; SEED= replays. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "geo/geohash.h"
#include "geo/geometry.h"
#include "testutil.h"

static void test_geohash_encodes_well_known_places(void **state) {
  (void)state;
  static const struct {
    double lat, lng;
    int prec;
    const char *hash;
  } v[] = {
      {57.64911, 10.40744, 11, "u4pruydqqvj"}, /* Wikipedia's example (Jutland) */
      {42.6, -5.6, 5, "ezs42"},                /* Wikipedia's decoding example */
      {37.8324, 112.5584, 9, "ww8p1r4t8"},     /* geohash.org / ngeohash tests */
      {38.89710201881826, -77.03669792041183, 12, "dqcjqcp84c6e"}, /* White House */
      {90, 180, 6, "zzzzzz"},
      {-90, -180, 6, "000000"},
  };
  char buf[GEO_GEOHASH_BUF];
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    assert_int_equal(geo_latlng_to_geohash((geo_latlng){v[i].lat, v[i].lng}, v[i].prec, buf),
                     GEO_OK);
    assert_string_equal(buf, v[i].hash);
    geo_bbox box;
    geo_latlng c;
    assert_int_equal(geo_geohash_decode(v[i].hash, &box, &c), GEO_OK);
    assert_true(geo_bbox_contains(box, (geo_latlng){v[i].lat, v[i].lng}));
  }
  geo_latlng c;
  assert_int_equal(geo_geohash_decode("ezs42", NULL, &c), GEO_OK);
  assert_true(fabs(c.lat - 42.605) < 0.01 && fabs(c.lng - -5.603) < 0.01);
  assert_int_equal(geo_latlng_to_geohash((geo_latlng){0, 0}, 0, buf), GEO_EINVAL);
  assert_int_equal(geo_latlng_to_geohash((geo_latlng){0, 0}, 13, buf), GEO_EINVAL);
  assert_int_equal(geo_latlng_to_geohash((geo_latlng){NAN, 0}, 5, buf), GEO_EINVAL);
  assert_int_equal(geo_latlng_to_geohash((geo_latlng){0, 0}, 5, NULL), GEO_EINVAL);
}

static void test_geohash_round_trips_and_cells_nest(void **state) {
  (void)state;
  tu_seed("geohash_round_trip");
  char buf[GEO_GEOHASH_BUF];
  for (int i = 0; i < 50000; i++) {
    geo_latlng p = {tu_uniform(-90, 90), tu_uniform(-180, 180)};
    int prec = 1 + (int)tu_below(12);
    assert_int_equal(geo_latlng_to_geohash(p, prec, buf), GEO_OK);
    assert_int_equal((int)strlen(buf), prec);
    geo_geohash h;
    assert_int_equal(geo_geohash_parse(buf, strlen(buf), &h), GEO_OK);
    geo_bbox box;
    geo_latlng c;
    assert_int_equal(geo_geohash_cell(h, &box, &c), GEO_OK);
    assert_true(geo_bbox_contains(box, p));
    /* The centre encodes back to the same cell; a prefix is the parent cell. */
    char again[GEO_GEOHASH_BUF];
    assert_int_equal(geo_latlng_to_geohash(c, prec, again), GEO_OK);
    assert_string_equal(again, buf);
    if (prec > 1) {
      char parent[GEO_GEOHASH_BUF];
      assert_int_equal(geo_latlng_to_geohash(p, prec - 1, parent), GEO_OK);
      assert_memory_equal(parent, buf, (size_t)prec - 1);
    }
  }
}

static void test_geohash_parse_rejects_bad_input_without_crashing(void **state) {
  (void)state;
  geo_geohash h;
  assert_int_equal(geo_geohash_parse("u4pruydqqvj", 11, &h), GEO_OK);
  assert_int_equal(h.len, 11);
  assert_int_equal(geo_geohash_parse("U4PRUYDQQVJ", 11, &h), GEO_OK); /* upper case */
  char s[GEO_GEOHASH_BUF];
  assert_int_equal(geo_geohash_format(h, s), GEO_OK);
  assert_string_equal(s, "u4pruydqqvj");
  assert_int_equal(geo_geohash_parse("", 0, &h), GEO_EPARSE);
  assert_int_equal(geo_geohash_parse("u4pruydqqvjx", 12, &h), GEO_OK);
  assert_int_equal(geo_geohash_parse("u4pruydqqvjxx", 13, &h), GEO_EPARSE); /* too long */
  const char *bad[] = {"a", "i", "l", "o", "u4p-", "u4 p", "é"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(geo_geohash_parse(bad[i], strlen(bad[i]), &h), GEO_EPARSE);
  assert_int_equal(geo_geohash_parse("u4\0p", 4, &h), GEO_EPARSE); /* embedded NUL */
  assert_int_equal(geo_geohash_parse(NULL, 3, &h), GEO_EINVAL);
  assert_int_equal(geo_geohash_parse("u4p", 3, NULL), GEO_EINVAL);
  assert_int_equal(geo_geohash_decode("u4pruydqqvjxxxxxxxxxxxxxxx", NULL, NULL), GEO_EPARSE);
  assert_int_equal(geo_geohash_decode("", NULL, NULL), GEO_EPARSE);
  assert_int_equal(geo_geohash_cell((geo_geohash){0, 13}, NULL, NULL), GEO_EINVAL);
  assert_int_equal(geo_geohash_cell((geo_geohash){UINT64_C(1) << 10, 2}, NULL, NULL), GEO_EINVAL);
  assert_int_equal(geo_geohash_format((geo_geohash){0, 0}, s), GEO_EINVAL);
}

static geo_geohash gh(const char *s) {
  geo_geohash h;
  assert_int_equal(geo_geohash_parse(s, strlen(s), &h), GEO_OK);
  return h;
}

static void test_geohash_neighbours_wrap_the_antimeridian_and_stop_at_poles(void **state) {
  (void)state;
  geo_geohash out[8];
  size_t n;
  char s[GEO_GEOHASH_BUF];
  /* Published neighbours of "ezs42" (e.g. the geohash-js/ngeohash tests). */
  assert_int_equal(geo_geohash_neighbours(gh("ezs42"), out, &n), GEO_OK);
  assert_int_equal(n, 8);
  const char *want[8] = {"ezs48", "ezs49", "ezs43", "ezs41", "ezs40", "ezefp", "ezefr", "ezefx"};
  for (int i = 0; i < 8; i++) {
    geo_geohash_format(out[i], s);
    assert_string_equal(s, want[i]);
  }
  /* East of the last column is the first column. */
  char east[GEO_GEOHASH_BUF], west[GEO_GEOHASH_BUF];
  assert_int_equal(geo_latlng_to_geohash((geo_latlng){10, 179.999}, 6, east), GEO_OK);
  assert_int_equal(geo_latlng_to_geohash((geo_latlng){10, -179.999}, 6, west), GEO_OK);
  assert_int_equal(geo_geohash_neighbours(gh(east), out, &n), GEO_OK);
  geo_geohash_format(out[GEO_GH_E], s);
  assert_string_equal(s, west);
  assert_int_equal(geo_geohash_neighbours(gh(west), out, &n), GEO_OK);
  geo_geohash_format(out[GEO_GH_W], s);
  assert_string_equal(s, east);
  /* A cell on the north pole row has no north neighbours; south row likewise. */
  assert_int_equal(geo_geohash_neighbours(gh("zzzz"), out, &n), GEO_OK);
  assert_int_equal(n, 5);
  assert_int_equal(out[GEO_GH_N].len, 0);
  assert_int_equal(out[GEO_GH_NE].len, 0);
  assert_int_equal(out[GEO_GH_NW].len, 0);
  geo_geohash_format(out[GEO_GH_E], s); /* east of zzzz wraps to the first column */
  geo_bbox b;
  geo_geohash_cell(out[GEO_GH_E], &b, NULL);
  assert_true(b.min_lng == -180.0 && b.max_lat == 90.0);
  assert_int_equal(geo_geohash_neighbours(gh("0000"), out, &n), GEO_OK);
  assert_int_equal(n, 5);
  assert_int_equal(out[GEO_GH_S].len, 0);
  /* Random cells: every neighbour shares an edge or a corner. */
  tu_seed("neighbours");
  for (int i = 0; i < 20000; i++) {
    geo_latlng p = {tu_uniform(-90, 90), tu_uniform(-180, 180)};
    geo_geohash h;
    assert_int_equal(geo_geohash_from_latlng(p, 1 + (int)tu_below(12), &h), GEO_OK);
    geo_bbox c;
    geo_geohash_cell(h, &c, NULL);
    assert_int_equal(geo_geohash_neighbours(h, out, &n), GEO_OK);
    double w = c.max_lng - c.min_lng, ht = c.max_lat - c.min_lat;
    static const int dr[8] = {1, 1, 0, -1, -1, -1, 0, 1}, dc[8] = {0, 1, 1, 1, 0, -1, -1, -1};
    for (int k = 0; k < 8; k++) {
      if (out[k].len == 0) {
        assert_true((dr[k] > 0 && c.max_lat == 90.0) || (dr[k] < 0 && c.min_lat == -90.0));
        continue;
      }
      geo_bbox nb;
      geo_geohash_cell(out[k], &nb, NULL);
      assert_true(nb.min_lat == c.min_lat + dr[k] * ht);
      double lng = c.min_lng + dc[k] * w;
      if (lng < -180) lng += 360;
      if (lng >= 180) lng -= 360;
      assert_true(nb.min_lng == lng);
    }
  }
}

static void test_geohash_precision_for_size_is_the_finest_that_fits(void **state) {
  (void)state;
  int p;
  assert_int_equal(geo_geohash_precision_for_size(4800, 0, &p), GEO_OK); /* p5 cells: 4.89 km */
  assert_int_equal(p, 5);
  assert_int_equal(geo_geohash_precision_for_size(5000, 0, &p), GEO_OK);
  assert_int_equal(p, 4);
  assert_int_equal(geo_geohash_precision_for_size(0, 40, &p), GEO_OK);
  assert_int_equal(p, 12);
  assert_int_equal(geo_geohash_precision_for_size(1e8, 40, &p), GEO_OK);
  assert_int_equal(p, 1);
  assert_int_equal(geo_geohash_precision_for_size(-1, 40, &p), GEO_EINVAL);
  assert_int_equal(geo_geohash_precision_for_size(1, 91, &p), GEO_EINVAL);
  /* At 40.7 N a 1 km search fits precision 5 cells (4.9 x 3.7 km), not 6 (1.2 x 0.6 km). */
  assert_int_equal(geo_geohash_precision_for_size(1000, 40.7, &p), GEO_OK);
  assert_int_equal(p, 5);
}

static bool cover_has(const geo_geohash *cells, size_t n, geo_geohash h) {
  for (size_t i = 0; i < n; i++)
    if (cells[i].bits == h.bits && cells[i].len == h.len) return true;
  return false;
}

static void check_cover(geo_latlng c, double r, int prec) {
  geo_geohash *cells;
  size_t n;
  assert_int_equal(geo_geohash_cover_circle(c, r, prec, &cells, &n), GEO_OK);
  assert_true(n >= 1);
  for (int k = 0; k < 400; k++) { /* every point of the circle is in a returned cell */
    geo_latlng p = geo_destination(c, tu_uniform(0, 360), r * sqrt(tu_uniform(0, 1)));
    if (k == 0) p = c;
    geo_geohash h;
    assert_int_equal(geo_geohash_from_latlng(p, prec, &h), GEO_OK);
    assert_true(cover_has(cells, n, h));
  }
  for (size_t i = 0; i < n; i++) { /* no duplicates; each cell reaches the circle */
    for (size_t j = i + 1; j < n; j++) assert_false(cells[i].bits == cells[j].bits);
    geo_bbox b;
    geo_latlng cc;
    geo_geohash_cell(cells[i], &b, &cc);
    double half_diag =
        geo_haversine_m((geo_latlng){b.min_lat, b.min_lng}, (geo_latlng){b.max_lat, b.max_lng});
    assert_true(geo_haversine_m(c, cc) <= r + half_diag);
  }
  geo_geohash_cells_free(cells);
}

static void test_geohash_cover_contains_every_point_of_the_circle(void **state) {
  (void)state;
  tu_seed("cover");
  check_cover((geo_latlng){40.75, -73.98}, 1000, 6);
  check_cover((geo_latlng){40.75, -73.98}, 0, 7);
  check_cover((geo_latlng){0.0, 179.999}, 3000, 5);    /* across the antimeridian */
  check_cover((geo_latlng){89.99, 45.0}, 5000, 4);     /* over the north pole */
  check_cover((geo_latlng){-89.999, -120.0}, 2000, 3); /* south pole */
  for (int i = 0; i < 200; i++) {
    geo_latlng c = {tu_uniform(-90, 90), tu_uniform(-180, 180)};
    int prec = 2 + (int)tu_below(5);
    double r = tu_uniform(0, 3) * 1e6 / (double)(1 << (2 * prec));
    check_cover(c, r, prec);
  }
  geo_geohash *cells;
  size_t n;
  assert_int_equal(geo_geohash_cover_circle((geo_latlng){0, 0}, 1e6, 12, &cells, &n), GEO_ERANGE);
  assert_int_equal(geo_geohash_cover_circle((geo_latlng){0, 0}, -1, 5, &cells, &n), GEO_EINVAL);
  assert_int_equal(geo_geohash_cover_circle((geo_latlng){0, 0}, 1, 13, &cells, &n), GEO_EINVAL);
}

static void test_geohash_cover_out_of_memory_at_every_allocation(void **state) {
  (void)state;
  long total = 0;
  for (long fail = 1;; fail++) {
    tu_alloc_install(fail, 0);
    geo_geohash *cells = NULL;
    size_t n = 12345;
    geo_err e = geo_geohash_cover_circle((geo_latlng){40.75, -73.98}, 5000, 7, &cells, &n);
    total = tu_a.calls;
    if (e == GEO_OK) {
      assert_true(n > 100);
      geo_geohash_cells_free(cells);
    } else {
      assert_int_equal(e, GEO_ENOMEM);
      assert_int_equal(n, 12345); /* outputs untouched */
    }
    assert_int_equal(tu_a.live, 0);
    tu_alloc_restore();
    if (total < fail) break;
  }
  assert_true(total > 3);
}

static void test_geohash_shard_range_helpers(void **state) {
  (void)state;
  char a[GEO_GEOHASH_BUF], b[GEO_GEOHASH_BUF];
  assert_int_equal(geo_geohash_prefix_range("dr5", a, b), GEO_OK);
  assert_string_equal(a, "dr5");
  assert_string_equal(b, "dr6");
  assert_int_equal(geo_geohash_prefix_range("DZ", a, b), GEO_OK);
  assert_string_equal(a, "dz");
  assert_string_equal(b, "e");
  assert_int_equal(geo_geohash_prefix_range("9z", a, b), GEO_OK);
  assert_string_equal(b, "b"); /* the alphabet skips a */
  assert_int_equal(geo_geohash_prefix_range("zz", a, b), GEO_OK);
  assert_string_equal(b, "");
  assert_int_equal(geo_geohash_prefix_range("dra", a, b), GEO_EPARSE);
  assert_int_equal(geo_geohash_prefix_range("", a, b), GEO_EPARSE);
  assert_true(geo_geohash_in_range("dr5ru7", "dr5", "dr6"));
  assert_true(geo_geohash_in_range("dr5", "dr5", "dr6"));
  assert_false(geo_geohash_in_range("dr6", "dr5", "dr6"));
  assert_false(geo_geohash_in_range("dr4zzzzzzzzz", "dr5", "dr6"));
  assert_true(geo_geohash_in_range("zzzz", "dr5", ""));
  assert_true(geo_geohash_in_range("0000", "", "dr5"));
  assert_true(geo_geohash_in_range("0000", NULL, NULL));
  /* Every cell whose hash starts with a prefix is in its range, and no other. */
  tu_seed("prefix_range");
  char h[GEO_GEOHASH_BUF];
  for (int i = 0; i < 20000; i++) {
    geo_latlng p = {tu_uniform(-90, 90), tu_uniform(-180, 180)};
    geo_latlng_to_geohash(p, 12, h);
    char pre[GEO_GEOHASH_BUF];
    geo_latlng_to_geohash((geo_latlng){tu_uniform(-90, 90), tu_uniform(-180, 180)},
                          1 + (int)tu_below(2), pre);
    if (tu_below(2)) memcpy(pre, h, 2), pre[1 + tu_below(2)] = '\0';
    assert_int_equal(geo_geohash_prefix_range(pre, a, b), GEO_OK);
    assert_int_equal(geo_geohash_in_range(h, a, b), strncmp(h, pre, strlen(pre)) == 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_geohash_encodes_well_known_places),
      cmocka_unit_test(test_geohash_round_trips_and_cells_nest),
      cmocka_unit_test(test_geohash_parse_rejects_bad_input_without_crashing),
      cmocka_unit_test(test_geohash_neighbours_wrap_the_antimeridian_and_stop_at_poles),
      cmocka_unit_test(test_geohash_precision_for_size_is_the_finest_that_fits),
      cmocka_unit_test(test_geohash_cover_contains_every_point_of_the_circle),
      cmocka_unit_test(test_geohash_cover_out_of_memory_at_every_allocation),
      cmocka_unit_test(test_geohash_shard_range_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
