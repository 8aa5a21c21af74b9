/*
 * test_gateway_shardmap.c: the shard map (shardmap.h): building and refusing maps, lookups
 * by binary search, the shards of a geohash cell, and routing of positions with halo copies
 * at the real two-shard Manhattan border (schemas/sql/0002_shard_map.sql: 'dr72' starts
 * shard 1, at latitude 40.78125 in Manhattan). A random test checks that every point of the
 * halo circle belongs to the owner or a halo shard (prints SEED=, takes SEED= to replay).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "geo/geohash.h"
#include "geo/geometry.h"
#include "shardmap.h"

#define BIT(k) (UINT64_C(1) << (k))

static gw_shardmap *epoch1(void) {
  gw_shard_range r[] = {{"dr72", "~", 1}, {"", "dr72", 0}}; /* any order */
  char err[160];
  gw_shardmap *m = gw_shardmap_new(1, r, 2, err, sizeof err);
  if (!m) fail_msg("%s", err);
  return m;
}

static void test_new_refuses_maps_that_do_not_tile_the_world(void **state) {
  (void)state;
  static const struct {
    const char *why;
    gw_shard_range r[3];
    size_t n;
  } bad[] = {
      {"gap", {{"", "dr5", 0}, {"dr6", "~", 1}}, 2},
      {"overlap", {{"", "dr7", 0}, {"dr5", "~", 1}}, 2},
      {"no start", {{"0", "~", 0}}, 1},
      {"no end", {{"", "zz", 0}}, 1},
      {"empty range", {{"", "dr5", 0}, {"dr5", "dr5", 1}, {"dr5", "~", 2}}, 3},
      {"shard 64", {{"", "~", 64}}, 1},
      {"inverted", {{"", "dr7", 0}, {"dr7", "dr5", 1}, {"dr5", "~", 1}}, 3},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[160] = "";
    gw_shardmap *m = gw_shardmap_new(1, bad[i].r, bad[i].n, err, sizeof err);
    if (m) fail_msg("accepted a map with %s", bad[i].why);
    assert_true(strlen(err) > 0);
  }
  gw_shard_range one = {"", "~", 0};
  char err[160];
  assert_null(gw_shardmap_new(0, &one, 1, err, sizeof err)); /* epoch 0 */
  assert_null(gw_shardmap_new(1, &one, 0, err, sizeof err));
  gw_shardmap *m = gw_shardmap_new(7, &one, 1, err, sizeof err);
  assert_non_null(m);
  assert_true(gw_shardmap_epoch(m) == 7);
  assert_int_equal(gw_shardmap_size(m), 1);
  gw_shardmap_free(m);
  gw_shardmap_free(NULL);
}

static void test_lookup_finds_the_range_of_a_geohash(void **state) {
  (void)state;
  gw_shardmap *m = epoch1();
  static const struct {
    const char *gh;
    uint32_t shard;
  } table[] = {
      {"0", 0},     {"dr5ru6j2c", 0}, {"dr71zzzzz", 0},    {"dr72", 1}, {"dr720000", 1},
      {"dr72h", 1}, {"dr7", 0},       {"zzzzzzzzzzzz", 1}, {"", 0},     {"s00000000", 1},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (gw_shardmap_lookup(m, table[i].gh) != table[i].shard)
      fail_msg("%s: shard %u, want %u", table[i].gh, gw_shardmap_lookup(m, table[i].gh),
               table[i].shard);
  }
  gw_shardmap_free(m);
}

static void test_lookup_over_32_one_character_ranges(void **state) {
  (void)state;
  /* 32 ranges cut at every first character: '0'..'z' in 32 one-character ranges */
  static const char alphabet[] = "0123456789bcdefghjkmnpqrstuvwxyz";
  gw_shard_range r[32];
  for (int i = 0; i < 32; i++) {
    snprintf(r[i].start, sizeof r[i].start, "%s", i == 0 ? "" : (char[]){alphabet[i], 0});
    snprintf(r[i].end, sizeof r[i].end, "%s", i == 31 ? "~" : (char[]){alphabet[i + 1], 0});
    r[i].shard = (uint32_t)(31 - i);
  }
  char err[160];
  gw_shardmap *m = gw_shardmap_new(2, r, 32, err, sizeof err);
  if (!m) fail_msg("%s", err);
  for (int i = 0; i < 32; i++) {
    char gh[4] = {alphabet[i], 'b', 'c', 0};
    assert_int_equal(gw_shardmap_lookup(m, gh), 31 - i);
  }
  assert_true(gw_shardmap_prefix_shards(m, "") == UINT64_C(0xffffffff));
  gw_shardmap_free(m);
}

static void test_prefix_shards_are_every_shard_a_cell_meets(void **state) {
  (void)state;
  gw_shardmap *m = epoch1();
  assert_true(gw_shardmap_prefix_shards(m, "dr5") == BIT(0));
  assert_true(gw_shardmap_prefix_shards(m, "dr7") == (BIT(0) | BIT(1))); /* dr70, dr71 | dr72.. */
  assert_true(gw_shardmap_prefix_shards(m, "dr71") == BIT(0));
  assert_true(gw_shardmap_prefix_shards(m, "dr72") == BIT(1));
  assert_true(gw_shardmap_prefix_shards(m, "dr72b") == BIT(1));
  assert_true(gw_shardmap_prefix_shards(m, "d") == (BIT(0) | BIT(1)));
  assert_true(gw_shardmap_prefix_shards(m, "z") == BIT(1));
  assert_true(gw_shardmap_prefix_shards(m, "") == (BIT(0) | BIT(1)));
  gw_shardmap_free(m);
}

/* The border of the two Manhattan shards: the south edge of cell "dr7". */
static double border_lat(void) {
  geo_bbox box;
  assert_int_equal(geo_geohash_decode("dr72", &box, NULL), GEO_OK);
  return box.min_lat;
}

static void test_route_at_the_manhattan_border_adds_halo_copies(void **state) {
  (void)state;
  gw_shardmap *m = epoch1();
  double b = border_lat();
  assert_true(fabs(b - 40.78125) < 1e-9);
  static const struct {
    const char *where;
    double dlat_m; /* metres north (+) or south (-) of the border */
    uint32_t owner;
    uint64_t halo;
  } table[] = {
      {"Times Square, 2.6 km south", -2600, 0, 0},
      {"1.24 km south", -1240, 0, 0},
      {"860 m south", -860, 0, BIT(1)},
      {"150 m south", -150, 0, BIT(1)},
      {"30 m north", 30, 1, BIT(0)},
      {"990 m north", 990, 1, BIT(0)},
      {"1.5 km north", 1500, 1, 0},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    mrd_latlon p = {b + table[i].dlat_m / 111195.0, -73.97};
    gw_route r;
    assert_int_equal(gw_shardmap_route(m, p, 1000, &r), 0);
    if (r.owner != table[i].owner || r.halo_mask != table[i].halo)
      fail_msg("%s: owner %u halo %llx, want %u %llx", table[i].where, r.owner,
               (unsigned long long)r.halo_mask, table[i].owner, (unsigned long long)table[i].halo);
    assert_int_equal(strlen(r.geohash), GW_ROUTE_PRECISION);
    assert_int_equal(gw_shardmap_lookup(m, r.geohash), r.owner);
  }
  /* no halo distance, no copies */
  gw_route r;
  assert_int_equal(gw_shardmap_route(m, (mrd_latlon){b - 0.0001, -73.97}, 0, &r), 0);
  assert_int_equal(r.owner, 0);
  assert_true(r.halo_mask == 0);
  /* invalid input */
  assert_int_equal(gw_shardmap_route(m, (mrd_latlon){NAN, 0}, 1000, &r), -1);
  assert_int_equal(gw_shardmap_route(m, (mrd_latlon){40, -74}, -1, &r), -1);
  assert_int_equal(gw_shardmap_route(m, (mrd_latlon){40, -74}, INFINITY, &r), -1);
  gw_shardmap_free(m);
}

static void test_route_near_a_three_shard_corner(void **state) {
  (void)state;
  /* 'dr5r' (Midtown) becomes shard 2: the corner of dr5r, dr5x, dr72 meets three shards */
  gw_shard_range r[] = {
      {"", "dr5r", 0}, {"dr5r", "dr5s", 2}, {"dr5s", "dr72", 0}, {"dr72", "~", 1}};
  char err[160];
  gw_shardmap *m = gw_shardmap_new(3, r, 4, err, sizeof err);
  if (!m) fail_msg("%s", err);
  geo_bbox box;
  assert_int_equal(geo_geohash_decode("dr5r", &box, NULL), GEO_OK);
  /* 100 m inside dr5r from its north-east corner */
  mrd_latlon p = {box.max_lat - 0.0009, box.max_lng - 0.0012};
  gw_route rt;
  assert_int_equal(gw_shardmap_route(m, p, 1000, &rt), 0);
  assert_int_equal(rt.owner, 2);
  assert_true(rt.halo_mask == (BIT(0) | BIT(1)));
  gw_shardmap_free(m);
}

static void test_every_point_of_the_halo_circle_is_covered(void **state) {
  (void)state;
  const char *env = getenv("SEED");
  unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
  printf("test_every_point_of_the_halo_circle_is_covered: SEED=%u\n", seed);
  srand(seed);
  gw_shard_range r[] = {{"", "dr5r", 0},
                        {"dr5r", "dr5rs", 2},
                        {"dr5rs", "dr72", 3},
                        {"dr72", "dr72k", 1},
                        {"dr72k", "~", 4}};
  char err[160];
  gw_shardmap *m = gw_shardmap_new(4, r, 5, err, sizeof err);
  if (!m) fail_msg("%s", err);
  for (int i = 0; i < 300; i++) {
    mrd_latlon p = {40.70 + 0.12 * rand() / RAND_MAX, -74.02 + 0.10 * rand() / RAND_MAX};
    double halo = 50 + 1950.0 * rand() / RAND_MAX;
    gw_route rt;
    assert_int_equal(gw_shardmap_route(m, p, halo, &rt), 0);
    assert_true((rt.halo_mask & BIT(rt.owner)) == 0);
    uint64_t all = rt.halo_mask | BIT(rt.owner);
    for (int k = 0; k < 64; k++) { /* points on rings inside the circle */
      double bearing = 360.0 * rand() / RAND_MAX, d = halo * rand() / RAND_MAX;
      geo_latlng q = geo_destination((geo_latlng){p.lat, p.lon}, bearing, d * 0.999);
      char gh[GEO_GEOHASH_BUF];
      assert_int_equal(geo_latlng_to_geohash(q, 12, gh), GEO_OK);
      uint32_t s = gw_shardmap_lookup(m, gh);
      if (!(all & BIT(s)))
        fail_msg("SEED=%u: point %.6f,%.6f at %.0f m of %.6f,%.6f is in shard %u, not routed", seed,
                 q.lat, q.lng, d, p.lat, p.lon, s);
    }
  }
  gw_shardmap_free(m);
}

/* A shard_map row from PostgreSQL: boundaries longer than the key are refused, not cut;
 * the shard must be plain decimal below 64. */
/* The whole city moved to shard 1 (issue 12): shards 0, 2 and 3 own nothing now, but
 * earlier epochs named them and they still finish their trips, so their trip steps and
 * accepts must still be routed to them; a shard no epoch named is still refused. */
static void test_trip_shards_keep_shards_whose_ranges_moved_away(void **state) {
  (void)state;
  gw_shard_range whole = {"", "~", 1};
  char err[160];
  gw_shardmap *m = gw_shardmap_new(40, &whole, 1, err, sizeof err);
  if (!m) fail_msg("%s", err);
  assert_int_equal(gw_shardmap_trip_shards(m), BIT(1)); /* no history given: the map alone */
  gw_shardmap_set_history(m, BIT(0) | BIT(1) | BIT(2) | BIT(3));
  assert_int_equal(gw_shardmap_prefix_shards(m, ""), BIT(1)); /* routing is the map's */
  uint64_t trip = gw_shardmap_trip_shards(m);
  assert_int_equal(trip, BIT(0) | BIT(1) | BIT(2) | BIT(3));
  assert_false(trip & BIT(4));
  gw_shardmap_set_history(m, BIT(63)); /* the top bit, as bit_or of a bigint returns it */
  assert_int_equal(gw_shardmap_trip_shards(m), BIT(1) | BIT(63));
  gw_shardmap_free(m);
}

static void test_range_parse_is_strict(void **state) {
  (void)state;
  gw_shard_range r;
  char err[200];
  assert_int_equal(gw_shard_range_parse("", "dr72", "0", &r, err, sizeof err), 0);
  assert_string_equal(r.start, "");
  assert_string_equal(r.end, "dr72");
  assert_int_equal(r.shard, 0);
  assert_int_equal(gw_shard_range_parse("dr72", "~", "63", &r, err, sizeof err), 0);
  assert_int_equal(r.shard, 63);
  const char *bad_shards[] = {"64", "-1", "", " 1", "1 ", "0x1", "1000", "+1", "4294967297"};
  for (size_t i = 0; i < sizeof bad_shards / sizeof *bad_shards; i++) {
    err[0] = '\0';
    assert_int_equal(gw_shard_range_parse("", "~", bad_shards[i], &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "is not a number below 64"));
  }
  assert_int_equal(gw_shard_range_parse("0123456789abcdef", "~", "1", &r, err, sizeof err), -1);
  assert_non_null(strstr(err, "longer than 15"));
  assert_int_equal(gw_shard_range_parse("", "0123456789abcde", "1", &r, err, sizeof err), 0);
  assert_int_equal(gw_shard_range_parse(NULL, "~", "1", &r, err, sizeof err), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_refuses_maps_that_do_not_tile_the_world),
      cmocka_unit_test(test_range_parse_is_strict),
      cmocka_unit_test(test_trip_shards_keep_shards_whose_ranges_moved_away),
      cmocka_unit_test(test_lookup_finds_the_range_of_a_geohash),
      cmocka_unit_test(test_lookup_over_32_one_character_ranges),
      cmocka_unit_test(test_prefix_shards_are_every_shard_a_cell_meets),
      cmocka_unit_test(test_route_at_the_manhattan_border_adds_halo_copies),
      cmocka_unit_test(test_route_near_a_three_shard_corner),
      cmocka_unit_test(test_every_point_of_the_halo_circle_is_covered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
