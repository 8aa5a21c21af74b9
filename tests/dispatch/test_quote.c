/*
 * test_quote.c: a ride's fare quote in dispatch (services/dispatch/quote.c) on a small
 * built graph: a slow street then a fast avenue, so the meter counts time on the first
 * and distance on the second; surge on the metered part; an end off the graph (or not a
 * position), a legs buffer too small and no tariff are refused, each with its DSP_E*.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "geo/snap.h"
#include "quote.h"

static mrd_tariff card(void) {
  static const char txt[] = "name = t\nfirst_day = 2022-12-19\nflag_drop_cents = 300\n"
                            "increment_cents = 70\nincrement_distance_mi = 0.2\n"
                            "increment_time_s = 60\nslow_speed_mph = 12\n"
                            "surcharge = peak mon-fri 16:00-20:00 250\nfixed = mta 50\n";
  mrd_tariff t;
  char err[200];
  if (mrd_tariff_parse(txt, strlen(txt), &t, err, sizeof err) != 0) fail_msg("%s", err);
  return t;
}

/* A -> B 500 m in 100 s (5 m/s, below 12 mph), B -> C 500 m in 40 s (12.5 m/s), north. */
static geo_graph *line_graph(geo_latlng *a, geo_latlng *c) {
  geo_graph_builder *b;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  uint32_t n[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(
        geo_graph_builder_add_node(b, i + 1, (geo_latlng){40.75 + i * 0.0045, -73.99}, &n[i]),
        GEO_OK);
  geo_graph_road r1 = {n[0], n[1], 100000, 100000, 500, GEO_ROAD_RESIDENTIAL, 1, NULL, 0};
  geo_graph_road r2 = {n[1], n[2], 40000, 40000, 500, GEO_ROAD_PRIMARY, 2, NULL, 0};
  assert_int_equal(geo_graph_builder_add_road(b, &r1), GEO_OK);
  assert_int_equal(geo_graph_builder_add_road(b, &r2), GEO_OK);
  geo_graph *g;
  assert_int_equal(geo_graph_builder_build(b, NULL, &g, NULL), GEO_OK);
  geo_graph_builder_free(b);
  assert_int_equal(geo_graph_build_rtree(g), GEO_OK);
  *a = (geo_latlng){40.75, -73.99};
  *c = (geo_latlng){40.759, -73.99};
  return g;
}

static void test_quote_counts_time_on_slow_and_distance_on_fast_roads(void **state) {
  (void)state;
  geo_latlng a, c;
  geo_graph *g = line_graph(&a, &c);
  geo_route_state *st;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  mrd_tariff t = card();
  mrd_fare_leg legs[16];
  mrd_fare f;
  dsp_quote_when noon_tue = {2, 12, 0};
  assert_int_equal(dsp_quote_ride(g, st, &t, a, c, 50, noon_tue, 1.0, legs, 16, &f), 0);
  /* 100 s slow = 1.667 time units; 500 m fast = 1.553 distance units; 3.22 -> 4 */
  assert_float_equal(f.slow_time_s, 100, 0.5);
  assert_float_equal(f.units, 100 / 60.0 + 500 / 321.8688, 0.02);
  assert_int_equal(f.metered_cents, 300 + 4 * 70);
  assert_int_equal(f.total_cents, 580 + 50);
  /* surge on the metered part; the peak surcharge at 17:00 on a Tuesday */
  assert_int_equal(
      dsp_quote_ride(g, st, &t, a, c, 50, (dsp_quote_when){2, 17, 0}, 1.5, legs, 16, &f), 0);
  assert_int_equal(f.surge_cents, 290);
  assert_int_equal(f.total_cents, 580 + 290 + 250 + 50);
  assert_true(mrd_fare_check(&f));
  /* refused, each with its own code: an end off the graph or not a position, too few legs,
   * no tariff */
  mrd_fare keep = f;
  geo_latlng far = {40.80, -73.90};
  assert_int_equal(dsp_quote_ride(g, st, &t, a, far, 50, noon_tue, 1, legs, 16, &f), DSP_ENOTFOUND);
  assert_int_equal(dsp_quote_ride(g, st, &t, (geo_latlng){91, 0}, c, 50, noon_tue, 1, legs, 16, &f),
                   DSP_ENOTFOUND);
  assert_int_equal(dsp_quote_ride(g, st, &t, a, c, 50, noon_tue, 1, legs, 1, &f), DSP_ERANGE);
  assert_int_equal(dsp_quote_ride(g, st, NULL, a, c, 50, noon_tue, 1, legs, 16, &f), DSP_EINVAL);
  assert_memory_equal(&keep, &f, sizeof f);
  geo_route_state_free(st);
  geo_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quote_counts_time_on_slow_and_distance_on_fast_roads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
