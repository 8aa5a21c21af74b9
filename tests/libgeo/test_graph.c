/*
 * test_graph.c: building the CSR graph: one-way and two-way roads become arcs and twins,
 * the largest strongly connected component is kept and the rest counted, shapes follow
 * the arc's direction, caller ids are found again, bad roads are refused, and failed
 * allocations leave nothing behind.
 */
#include "graph_fixtures.h"

#include <math.h>

static geo_graph_builder *line_builder(void) {
  /* 0 <-> 1 <-> 2 -> 3 (one-way, 3 a dead end), 4 alone, 5 <-> 6 (a second component) */
  geo_graph_builder *b = NULL;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  for (int i = 0; i < 7; i++)
    assert_int_equal(
        geo_graph_builder_add_node(b, 100 + i, (geo_latlng){40.7 + 0.001 * i, -74.0}, NULL),
        GEO_OK);
  geo_latlng bend = {40.7005, -73.9995};
  geo_graph_road roads[] = {
      {0, 1, 1000, 1100, 111, GEO_ROAD_PRIMARY, 7, &bend, 1},
      {1, 2, 2000, 2000, 111, GEO_ROAD_RESIDENTIAL, 8, NULL, 0},
      {2, 3, 500, GEO_TIME_NONE, 50, GEO_ROAD_SERVICE, 9, NULL, 0},
      {5, 6, 700, 700, 70, GEO_ROAD_TERTIARY, 10, NULL, 0},
      {1, 1, 10, 10, 1, GEO_ROAD_SERVICE, 11, NULL, 0}, /* self-loop */
  };
  for (size_t i = 0; i < sizeof roads / sizeof roads[0]; i++)
    assert_int_equal(geo_graph_builder_add_road(b, &roads[i]), GEO_OK);
  return b;
}

static void test_largest_scc_is_kept_and_the_rest_counted(void **state) {
  (void)state;
  geo_graph_builder *b = line_builder();
  geo_graph *g = NULL;
  geo_graph_stats st;
  geo_graph_build_opts o = {true, true};
  assert_int_equal(geo_graph_builder_build(b, &o, &g, &st), GEO_OK);
  assert_int_equal(st.nodes, 3); /* 0, 1, 2 */
  assert_int_equal(st.dropped_nodes, 4);
  assert_int_equal(st.arcs, 4);
  assert_int_equal(st.dropped_arcs, 3); /* 2->3, 5->6, 6->5 */
  assert_int_equal(st.self_loops, 2);
  uint32_t v;
  assert_int_equal(geo_graph_node_by_ext_id(g, 103, &v), GEO_ENOTFOUND);
  assert_int_equal(geo_graph_node_by_ext_id(g, 101, &v), GEO_OK);
  assert_int_equal(geo_graph_node_ext_id(g, v), 101);
  geo_graph_free(g);
  /* without SCC extraction every node stays, the isolated one too */
  o.keep_largest_scc = false;
  assert_int_equal(geo_graph_builder_build(b, &o, &g, &st), GEO_OK);
  assert_int_equal(st.nodes, 7);
  assert_int_equal(st.arcs, 7);
  uint32_t first, end;
  assert_int_equal(geo_graph_node_by_ext_id(g, 104, &v), GEO_OK);
  geo_graph_out_arcs(g, v, &first, &end);
  assert_int_equal(first, end);
  geo_graph_free(g);
  geo_graph_builder_free(b);
}

static void test_two_way_roads_are_twins_and_shapes_follow_direction(void **state) {
  (void)state;
  geo_graph_builder *b = line_builder();
  geo_graph *g = NULL;
  assert_int_equal(geo_graph_builder_build(b, NULL, &g, NULL), GEO_OK);
  uint32_t n0, n1, n2;
  geo_graph_node_by_ext_id(g, 100, &n0);
  geo_graph_node_by_ext_id(g, 101, &n1);
  geo_graph_node_by_ext_id(g, 102, &n2);
  uint32_t a = geo_graph_find_arc(g, n0, n1), r = geo_graph_find_arc(g, n1, n0);
  assert_int_not_equal(a, GEO_ARC_NONE);
  assert_int_equal(geo_graph_arc_twin(g, a), r);
  assert_int_equal(geo_graph_arc_twin(g, r), a);
  assert_int_equal(geo_graph_arc_time_ms(g, a), 1000);
  assert_int_equal(geo_graph_arc_time_ms(g, r), 1100);
  assert_int_equal(geo_graph_arc_class(g, a), GEO_ROAD_PRIMARY);
  assert_int_equal(geo_graph_arc_ext_id(g, r), 7);
  size_t len;
  const geo_latlng *s = geo_graph_arc_shape(g, a, &len);
  assert_int_equal(len, 1);
  assert_true(s[0].lat == 40.7005);
  /* reverse adjacency lists the arcs entering a node */
  uint32_t first, end, found = 0;
  geo_graph_in_arcs(g, n1, &first, &end);
  for (uint32_t i = first; i < end; i++) {
    uint32_t arc = geo_graph_in_arc(g, i);
    assert_int_equal(geo_graph_arc_head(g, arc), n1);
    found += geo_graph_arc_tail(g, arc) == n0 || geo_graph_arc_tail(g, arc) == n2;
  }
  assert_int_equal(found, 2);
  assert_true(geo_graph_top_speed_m_per_ms(g) > 0);
  geo_graph_free(g);
  geo_graph_builder_free(b);
}

static void test_bad_roads_are_refused(void **state) {
  (void)state;
  geo_graph_builder *b = NULL;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  assert_int_equal(geo_graph_builder_add_node(b, 1, (geo_latlng){91, 0}, NULL), GEO_EINVAL);
  assert_int_equal(geo_graph_builder_add_node(b, 1, (geo_latlng){NAN, 0}, NULL), GEO_EINVAL);
  assert_int_equal(geo_graph_builder_add_node(b, 1, (geo_latlng){40, -74}, NULL), GEO_OK);
  assert_int_equal(geo_graph_builder_add_node(b, 2, (geo_latlng){40.001, -74}, NULL), GEO_OK);
  geo_graph_road r = {0, 5, 10, 10, 1, GEO_ROAD_PRIMARY, 0, NULL, 0};
  assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_EINVAL); /* unknown node */
  r.to = 1;
  r.length_m = -1;
  assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_EINVAL);
  r.length_m = 1;
  r.fwd_time_ms = r.bwd_time_ms = GEO_TIME_NONE;
  assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_EINVAL); /* closed both ways */
  r.fwd_time_ms = 0x80000000u;
  assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_EINVAL);
  r.fwd_time_ms = 10;
  r.road_class = GEO_ROAD_CLASS_COUNT;
  assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_EINVAL);
  r.road_class = GEO_ROAD_PRIMARY;
  r.shape_len = 2;
  assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_EINVAL); /* shape NULL */
  geo_graph *g = NULL;
  /* no road: the largest component is a single node */
  assert_int_equal(geo_graph_builder_build(b, NULL, &g, NULL), GEO_OK);
  assert_int_equal(geo_graph_node_count(g), 1);
  geo_graph_free(g);
  geo_graph_builder_free(b);
  /* calibration factors must be positive */
  geo_graph_calibration cal;
  geo_graph_calibration_identity(&cal);
  cal.class_factor[0] = 0;
  b = line_builder();
  assert_int_equal(geo_graph_builder_build(b, NULL, &g, NULL), GEO_OK);
  geo_graph *c = NULL;
  assert_int_equal(geo_graph_calibrated(g, &cal, &c), GEO_EINVAL);
  assert_null(c);
  geo_graph_calibration_identity(&cal);
  cal.day_factor[4] = NAN;
  assert_int_equal(geo_graph_calibrated(g, &cal, &c), GEO_EINVAL);
  /* per-arc factors: finite, positive, at most 1000 */
  geo_graph_calibration_identity(&cal);
  uint32_t m = geo_graph_arc_count(g);
  double *f = calloc(m, sizeof *f);
  for (uint32_t a = 0; a < m; a++) f[a] = 1.0 + a;
  assert_int_equal(geo_graph_calibrated_arcs(g, &cal, f, &c), GEO_OK);
  for (uint32_t a = 0; a < m; a++)
    assert_true(fabs(geo_graph_arc_time_ms(c, a) - geo_graph_arc_time_ms(g, a) * (1.0 + a)) <= 0.5);
  geo_graph_free(c);
  c = NULL;
  double bad[] = {0, -1, NAN, INFINITY, 1001};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    f[m - 1] = bad[i];
    assert_int_equal(geo_graph_calibrated_arcs(g, &cal, f, &c), GEO_EINVAL);
    assert_null(c);
  }
  free(f);
  geo_graph_free(g);
  geo_graph_builder_free(b);
}

static void test_road_class_names_round_trip(void **state) {
  (void)state;
  for (int c = 0; c < GEO_ROAD_CLASS_COUNT; c++)
    assert_int_equal(geo_road_class_from_name(geo_road_class_name((geo_road_class)c)), c);
  assert_int_equal(geo_road_class_from_name("footway"), GEO_ROAD_OTHER);
}

/* Allocation failure injection: the n-th allocation fails; every outcome is clean. */
static int fail_at = -1, n_alloc = 0;
static void *chaos_malloc(size_t size, void *ud) {
  (void)ud;
  if (n_alloc++ == fail_at) return NULL;
  return malloc(size);
}
static void *chaos_realloc(void *p, size_t size, void *ud) {
  (void)ud;
  if (n_alloc++ == fail_at) return NULL;
  return realloc(p, size);
}
static void chaos_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

static void test_allocation_failures_are_reported_and_leak_nothing(void **state) {
  (void)state;
  fx_seed("test_allocation_failures_are_reported_and_leak_nothing");
  geo_allocator al = {chaos_malloc, chaos_realloc, chaos_free, NULL};
  int failures = 0;
  for (fail_at = 0;; fail_at++) {
    n_alloc = 0;
    geo_set_allocator(&al);
    fx_rng_state = 42;
    geo_graph_builder *b = NULL;
    geo_graph *g = NULL;
    geo_route_state *st = NULL;
    geo_err e = geo_graph_builder_new(&b);
    for (int i = 0; e == GEO_OK && i < 30; i++)
      e = geo_graph_builder_add_node(
          b, i, (geo_latlng){40.7 + 0.001 * (i % 5), -74 + 0.001 * (i / 5)}, NULL);
    for (int i = 0; e == GEO_OK && i < 60; i++) {
      geo_graph_road r = {(uint32_t)(i % 30),
                          (uint32_t)((i * 7 + 1) % 30),
                          100 + i,
                          120 + i,
                          10,
                          GEO_ROAD_PRIMARY,
                          i,
                          NULL,
                          0};
      if (r.from != r.to) e = geo_graph_builder_add_road(b, &r);
    }
    if (e == GEO_OK) e = geo_graph_builder_build(b, NULL, &g, NULL);
    if (e == GEO_OK) e = geo_ch_build(g, NULL);
    if (e == GEO_OK) e = geo_route_state_new(g, &st);
    geo_route_result res;
    if (e == GEO_OK) {
      e = geo_route_nodes(st, g, GEO_ROUTE_CH, 0, geo_graph_node_count(g) - 1, &res);
      if (e == GEO_EUNREACHABLE) e = GEO_OK;
    }
    geo_route_state_free(st);
    geo_graph_free(g);
    geo_graph_builder_free(b);
    geo_set_allocator(NULL);
    if (e == GEO_OK && n_alloc <= fail_at) break; /* every allocation point was tried */
    if (e != GEO_OK) {
      assert_int_equal(e, GEO_ENOMEM);
      failures++;
    }
  }
  assert_true(failures > 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_largest_scc_is_kept_and_the_rest_counted),
      cmocka_unit_test(test_two_way_roads_are_twins_and_shapes_follow_direction),
      cmocka_unit_test(test_bad_roads_are_refused),
      cmocka_unit_test(test_road_class_names_round_trip),
      cmocka_unit_test(test_allocation_failures_are_reported_and_leak_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
