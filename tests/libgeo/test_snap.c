/*
 * test_snap.c: snapping positions to roads (snap.h). A hand-made street gives known
 * answers (arc, fraction, distance, bound); on random graphs the R-tree answers exactly as
 * the scan of every arc does (same arc, fraction and distance), for points near and far.
 * SEED= replays the random parts.
 */
#include "graph_fixtures.h"

#include "geo/geometry.h"
#include "geo/snap.h"

#include <math.h>

/* One two-way street A-B running east along 40.75 N (about 843 m), and a one-way street
 * B->C running north, with a bend (one shape point). */
static geo_graph *street(void) {
  geo_graph_builder *b = NULL;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  assert_int_equal(geo_graph_builder_add_node(b, 1, (geo_latlng){40.75, -73.99}, NULL), GEO_OK);
  assert_int_equal(geo_graph_builder_add_node(b, 2, (geo_latlng){40.75, -73.98}, NULL), GEO_OK);
  assert_int_equal(geo_graph_builder_add_node(b, 3, (geo_latlng){40.76, -73.98}, NULL), GEO_OK);
  geo_latlng bend = {40.755, -73.979};
  geo_graph_road ab = {0, 1, 60000, 60000, 843, GEO_ROAD_RESIDENTIAL, 10, NULL, 0};
  geo_graph_road bc = {1, 2, 80000, GEO_TIME_NONE, 1120, GEO_ROAD_PRIMARY, 11, &bend, 1};
  assert_int_equal(geo_graph_builder_add_road(b, &ab), GEO_OK);
  assert_int_equal(geo_graph_builder_add_road(b, &bc), GEO_OK);
  geo_graph *g = NULL;
  geo_graph_build_opts o = {false, true};
  assert_int_equal(geo_graph_builder_build(b, &o, &g, NULL), GEO_OK);
  geo_graph_builder_free(b);
  return g;
}

static void check_street(const geo_graph *g) {
  geo_snap s;
  /* 50 m north of the middle of A-B: on A-B, half-way, 50 m away */
  geo_latlng p = {40.75 + 50 / 111195.0, -73.985};
  assert_int_equal(geo_graph_snap(g, p, 100, &s), GEO_OK);
  assert_int_equal(geo_graph_arc_ext_id(g, s.place.arc), 10);
  uint32_t a_node;
  assert_int_equal(geo_graph_node_by_ext_id(g, 1, &a_node), GEO_OK);
  double frac = geo_graph_arc_tail(g, s.place.arc) == a_node ? s.place.frac : 1 - s.place.frac;
  assert_true(fabs(frac - 0.5) < 1e-3);
  assert_true(fabs(s.dist_m - 50) < 0.5);
  assert_true(fabs(s.point.lat - 40.75) < 1e-6);
  /* just east of the bend: on B->C, past the middle of its length */
  assert_int_equal(geo_graph_snap(g, (geo_latlng){40.7551, -73.9785}, 100, &s), GEO_OK);
  assert_int_equal(geo_graph_arc_ext_id(g, s.place.arc), 11);
  assert_true(s.place.frac > 0.4 && s.place.frac < 0.6);
  /* the bound: 50 m away is too far for 40 m; a bound of 0 finds only a point on a road */
  geo_snap untouched = {.dist_m = -1};
  s = untouched;
  assert_int_equal(geo_graph_snap(g, p, 40, &s), GEO_ENOTFOUND);
  assert_true(s.dist_m == -1);
  assert_int_equal(geo_graph_snap(g, (geo_latlng){40.75, -73.985}, 0, &s), GEO_OK);
  assert_true(s.dist_m < 1e-6);
  assert_int_equal(geo_graph_snap(g, (geo_latlng){41.5, -73.985}, INFINITY, &s), GEO_OK);
  assert_int_equal(geo_graph_arc_ext_id(g, s.place.arc), 11); /* C is the northernmost */
  /* bad arguments */
  assert_int_equal(geo_graph_snap(NULL, p, 10, &s), GEO_EINVAL);
  assert_int_equal(geo_graph_snap(g, p, 10, NULL), GEO_EINVAL);
  assert_int_equal(geo_graph_snap(g, (geo_latlng){91, 0}, 10, &s), GEO_EINVAL);
  assert_int_equal(geo_graph_snap(g, p, NAN, &s), GEO_EINVAL);
  assert_int_equal(geo_graph_snap(g, p, -1, &s), GEO_EINVAL);
}

static void test_street_snaps_with_scan_and_rtree(void **state) {
  (void)state;
  geo_graph *g = street();
  check_street(g);
  assert_int_equal(geo_graph_build_rtree(g), GEO_OK);
  check_street(g);
  assert_int_equal(geo_graph_build_rtree(g), GEO_OK); /* rebuilding replaces, leaks nothing */
  check_street(g);
  assert_int_equal(geo_graph_build_rtree(NULL), GEO_EINVAL);
  geo_graph_free(g);
}

static void test_rtree_snaps_equal_the_scan_on_random_graphs(void **state) {
  (void)state;
  fx_seed("test_rtree_snaps_equal_the_scan_on_random_graphs");
  for (int round = 0; round < 20; round++) {
    geo_graph *g = fx_random_graph(20 + fx_below(200), fx_below(200), false, fx_below(2));
    enum { N = 300 };
    geo_latlng pts[N];
    double bound[N];
    geo_snap scan[N];
    geo_err scan_e[N];
    for (int i = 0; i < N; i++) {
      /* inside the graph's area and a bit around it */
      pts[i] = (geo_latlng){40.69 + 0.07 * fx_unit(), -74.02 + 0.07 * fx_unit()};
      bound[i] = fx_below(3) == 0 ? INFINITY : 5 + 300 * fx_unit();
      scan_e[i] = geo_graph_snap(g, pts[i], bound[i], &scan[i]);
    }
    assert_int_equal(geo_graph_build_rtree(g), GEO_OK);
    for (int i = 0; i < N; i++) {
      geo_snap s;
      geo_err e = geo_graph_snap(g, pts[i], bound[i], &s);
      assert_int_equal(e, scan_e[i]);
      if (e != GEO_OK) continue;
      if (s.dist_m != scan[i].dist_m || s.place.arc != scan[i].place.arc ||
          s.place.frac != scan[i].place.frac)
        fail_msg("point %d (%.6f, %.6f): R-tree arc %u frac %.9f at %.6f m, scan arc %u frac %.9f "
                 "at %.6f m",
                 i, pts[i].lat, pts[i].lng, s.place.arc, s.place.frac, s.dist_m, scan[i].place.arc,
                 scan[i].place.frac, scan[i].dist_m);
    }
    geo_graph_free(g);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_street_snaps_with_scan_and_rtree),
      cmocka_unit_test(test_rtree_snaps_equal_the_scan_on_random_graphs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
