/*
 * test_loadgen_path.c: a simulated driver's movement along a route: every position lies on
 * the route's arcs (through their shape points), the time to reach each node is the sum of
 * the arcs' travel times (partial arcs in proportion), and the place reported can start the
 * next route. A small graph built here, then random routes on a grid (SEED= replays).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "geo/geometry.h"
#include "geo/route.h"
#include "path.h"
#include "trips_csv.h"

/*   A(0) --- s --- B(1)      A-B two-way, 60 s, with a shape point s north of the line
 *                  |         B-C one-way B->C, 30 s
 *                  C(2)                                                            */
static geo_graph *small_graph(void) {
  geo_graph_builder *b;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  uint32_t a, bb, c;
  assert_int_equal(geo_graph_builder_add_node(b, 100, (geo_latlng){40.700, -74.000}, &a), GEO_OK);
  assert_int_equal(geo_graph_builder_add_node(b, 101, (geo_latlng){40.700, -73.990}, &bb), GEO_OK);
  assert_int_equal(geo_graph_builder_add_node(b, 102, (geo_latlng){40.690, -73.990}, &c), GEO_OK);
  geo_latlng shape[1] = {{40.702, -73.995}};
  geo_graph_road ab = {a, bb, 60000, 60000, 0, GEO_ROAD_RESIDENTIAL, 1, shape, 1};
  ab.length_m = geo_haversine_m((geo_latlng){40.700, -74.000}, shape[0]) +
                geo_haversine_m(shape[0], (geo_latlng){40.700, -73.990});
  geo_graph_road bc = {bb, c, 30000, GEO_TIME_NONE, 1112, GEO_ROAD_PRIMARY, 2, NULL, 0};
  assert_int_equal(geo_graph_builder_add_road(b, &ab), GEO_OK);
  assert_int_equal(geo_graph_builder_add_road(b, &bc), GEO_OK);
  geo_graph_build_opts o = {false, false};
  geo_graph *g;
  assert_int_equal(geo_graph_builder_build(b, &o, &g, NULL), GEO_OK);
  geo_graph_builder_free(b);
  return g;
}

static uint32_t node(const geo_graph *g, int64_t ext) {
  uint32_t v;
  assert_int_equal(geo_graph_node_by_ext_id(g, ext, &v), GEO_OK);
  return v;
}

/* Distance from p to the polyline of arc a, in metres. */
static double dist_to_arc(const geo_graph *g, uint32_t a, geo_latlng p) {
  size_t ns;
  const geo_latlng *sh = geo_graph_arc_shape(g, a, &ns);
  geo_latlng pts[16];
  size_t n = 0;
  pts[n++] = geo_graph_node_pos(g, geo_graph_arc_tail(g, a));
  for (size_t i = 0; i < ns && n < 15; i++) pts[n++] = sh[i];
  pts[n++] = geo_graph_node_pos(g, geo_graph_arc_head(g, a));
  double best = INFINITY;
  for (size_t i = 0; i + 1 < n; i++) {
    geo_latlng q;
    double t;
    double d = geo_project_on_segment(p, pts[i], pts[i + 1], &q, &t);
    if (d < best) best = d;
  }
  return best;
}

static void test_path_along_partial_arc_and_next_arc_takes_edge_times(void **state) {
  (void)state;
  geo_graph *g = small_graph();
  geo_route_state *st;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  uint32_t A = node(g, 100), B = node(g, 101), C = node(g, 102);
  uint32_t ab = geo_graph_find_arc(g, A, B), bc = geo_graph_find_arc(g, B, C);
  assert_true(ab != GEO_ARC_NONE && bc != GEO_ARC_NONE);
  geo_route_place from = {0, ab, 0.25}, to = {0, bc, 0.5};
  lg_path p = {0};
  assert_int_equal(lg_path_route(&p, g, st, &from, &to), GEO_OK);
  /* 3/4 of A-B (45 s) then half of B-C (15 s) */
  assert_true(fabs(p.total_ms - 60000) < 1.0);
  /* at 45 s the driver is at B */
  geo_latlng pos;
  geo_route_place pl;
  lg_path_at(&p, 45000, &pos, &pl);
  assert_true(geo_haversine_m(pos, geo_graph_node_pos(g, B)) < 0.5);
  /* at 52.5 s a quarter of B-C: on arc bc at 0.25 */
  lg_path_at(&p, 52500, &pos, &pl);
  assert_int_equal(pl.arc, bc);
  assert_true(fabs(pl.frac - 0.25) < 1e-6);
  assert_true(dist_to_arc(g, bc, pos) < 0.5);
  /* before the shape point the position is on the arc's first segment, not the chord */
  lg_path_at(&p, 0, &pos, &pl);
  assert_int_equal(pl.arc, ab);
  assert_true(fabs(pl.frac - 0.25) < 1e-9);
  assert_true(dist_to_arc(g, ab, pos) < 0.5);
  assert_true(pos.lat > 40.7004); /* the chord A-B is at 40.700: the road bends north */
  /* clamped past the end: the destination */
  lg_path_at(&p, 1e9, &pos, &pl);
  assert_int_equal(pl.arc, bc);
  assert_true(fabs(pl.frac - 0.5) < 1e-9);
  assert_true(geo_haversine_m(pos, lg_place_pos(g, &to)) < 0.01);
  lg_path_close(&p);
  geo_route_state_free(st);
  geo_graph_free(g);
}

static void test_path_leaving_a_two_way_road_backwards_uses_the_twin(void **state) {
  (void)state;
  geo_graph *g = small_graph();
  geo_route_state *st;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  uint32_t A = node(g, 100), B = node(g, 101);
  uint32_t ab = geo_graph_find_arc(g, A, B), ba = geo_graph_find_arc(g, B, A);
  geo_route_place from = {0, ab, 0.75}, to = geo_route_place_node(A);
  lg_path p = {0};
  assert_int_equal(lg_path_route(&p, g, st, &from, &to), GEO_OK);
  /* 3/4 of the way back along B->A: 45 s */
  assert_true(fabs(p.total_ms - 45000) < 1.0);
  geo_latlng pos;
  geo_route_place pl;
  lg_path_at(&p, 20000, &pos, &pl);
  assert_int_equal(pl.arc, ba);
  assert_true(dist_to_arc(g, ba, pos) < 0.5);
  assert_true(fabs(pl.frac - (0.25 + 20000.0 / 60000.0)) < 1e-6);
  lg_path_close(&p);
  geo_route_state_free(st);
  geo_graph_free(g);
}

/* A grid of n x n nodes 200 m apart, two-way roads with random times and random shapes. */
static geo_graph *grid(int n, uint64_t *rng) {
  geo_graph_builder *b;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  uint32_t *id = calloc((size_t)(n * n), sizeof *id);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      assert_int_equal(
          geo_graph_builder_add_node(
              b, i * n + j, (geo_latlng){40.70 + i * 0.0018, -74.0 + j * 0.0024}, &id[i * n + j]),
          GEO_OK);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      for (int dir = 0; dir < 2; dir++) {
        int i2 = i + (dir == 0), j2 = j + (dir == 1);
        if (i2 >= n || j2 >= n) continue;
        geo_latlng u = {40.70 + i * 0.0018, -74.0 + j * 0.0024},
                   v = {40.70 + i2 * 0.0018, -74.0 + j2 * 0.0024};
        geo_latlng mid = {(u.lat + v.lat) / 2 + (double)(lg_mix64((*rng)++) % 100) * 1e-6,
                          (u.lng + v.lng) / 2 + (double)(lg_mix64((*rng)++) % 100) * 1e-6};
        uint32_t t = 10000 + (uint32_t)(lg_mix64((*rng)++) % 50000);
        geo_graph_road r = {id[i * n + j],
                            id[i2 * n + j2],
                            t,
                            t + 1000,
                            geo_haversine_m(u, mid) + geo_haversine_m(mid, v),
                            GEO_ROAD_RESIDENTIAL,
                            i * 1000 + j * 2 + dir,
                            &mid,
                            1};
        assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_OK);
      }
  free(id);
  geo_graph_build_opts o = {true, false};
  geo_graph *g;
  assert_int_equal(geo_graph_builder_build(b, &o, &g, NULL), GEO_OK);
  geo_graph_builder_free(b);
  return g;
}

static void test_random_routes_positions_on_route_arcs_and_times_match(void **state) {
  (void)state;
  const char *env = getenv("SEED");
  uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
  printf("test_loadgen_path: SEED=%llu\n", (unsigned long long)seed);
  uint64_t rng = seed;
  geo_graph *g = grid(8, &rng);
  geo_route_state *st;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  uint32_t m = geo_graph_arc_count(g);
  lg_path p = {0};
  for (int k = 0; k < 200; k++) {
    geo_route_place from = {0, (uint32_t)(lg_mix64(rng++) % m),
                            (double)(lg_mix64(rng++) % 1001) / 1000};
    geo_route_place to = {0, (uint32_t)(lg_mix64(rng++) % m),
                          (double)(lg_mix64(rng++) % 1001) / 1000};
    geo_route_result res;
    assert_int_equal(geo_route(st, g, GEO_ROUTE_DIJKSTRA, &from, &to, &res), GEO_OK);
    size_t na;
    const uint32_t *arcs = geo_route_path_arcs(st, &na);
    assert_int_equal(lg_path_build(&p, g, arcs, na, &from, &to), GEO_OK);
    /* the path's time is the route's time (which rounds partial arcs to the ms) */
    assert_true(fabs(p.total_ms - res.time_ms) <= 2.0);
    /* the time at which each intermediate node is reached is the sum of full arc times */
    double t = 0;
    for (size_t i = 0; i < p.n; i++) {
      const lg_path_pt *q = &p.pts[i];
      assert_true(q->t_ms >= t - 1e-9);
      t = q->t_ms;
    }
    for (int s = 0; s <= 20; s++) {
      double at = p.total_ms * s / 20.0;
      geo_latlng pos;
      geo_route_place pl;
      lg_path_at(&p, at, &pos, &pl);
      bool on_route = false;
      for (size_t i = 0; i < na; i++)
        if (pl.arc == arcs[i]) on_route = true;
      if (na == 0) on_route = true;
      assert_true(on_route);
      if (na) assert_true(dist_to_arc(g, pl.arc, pos) < 1.0);
      /* the place and the position agree */
      if (na) assert_true(geo_haversine_m(lg_place_pos(g, &pl), pos) < 1.0);
    }
  }
  lg_path_close(&p);
  geo_route_state_free(st);
  geo_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_path_along_partial_arc_and_next_arc_takes_edge_times),
      cmocka_unit_test(test_path_leaving_a_two_way_road_backwards_uses_the_twin),
      cmocka_unit_test(test_random_routes_positions_on_route_arcs_and_times_match),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
