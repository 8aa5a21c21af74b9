/*
 * test_route.c: routing on small hand-made graphs read as tables (tests/data/grid.graph):
 * from, to, expected time and route, checked for every algorithm (Dijkstra, A*,
 * bidirectional, CH) and the one-to-many searches; then places along roads (one-way and
 * two-way), polylines, path lengths and argument errors.
 */
#include "graph_fixtures.h"

#include <math.h>

static uint32_t node_of(const geo_graph *g, int64_t id) {
  uint32_t v = 0;
  if (geo_graph_node_by_ext_id(g, id, &v) != GEO_OK) fail_msg("no node %lld", (long long)id);
  return v;
}

static void check_case(const geo_graph *g, geo_route_state *st, const fx_case *c,
                       geo_route_algo algo) {
  geo_route_result r = {0};
  geo_err e = geo_route_nodes(st, g, algo, node_of(g, c->from), node_of(g, c->to), &r);
  if (c->time_ms < 0) {
    if (e != GEO_EUNREACHABLE)
      fail_msg("line %d %s: %lld -> %lld should be unreachable (err %d)", c->line,
               geo_route_algo_name(algo), (long long)c->from, (long long)c->to, e);
    return;
  }
  if (e != GEO_OK)
    fail_msg("line %d %s: error %s", c->line, geo_route_algo_name(algo), geo_strerror(e));
  if ((long)r.time_ms != c->time_ms)
    fail_msg("line %d %s: %lld -> %lld took %u ms, expected %ld", c->line,
             geo_route_algo_name(algo), (long long)c->from, (long long)c->to, r.time_ms,
             c->time_ms);
  size_t n = 0;
  const uint32_t *arcs = geo_route_path_arcs(st, &n);
  /* the node sequence of the route */
  int64_t seq[64];
  int len = 0;
  seq[len++] = n ? geo_graph_node_ext_id(g, geo_graph_arc_tail(g, arcs[0])) : c->from;
  for (size_t i = 0; i < n && len < 64; i++)
    seq[len++] = geo_graph_node_ext_id(g, geo_graph_arc_head(g, arcs[i]));
  bool same = len == c->path_len;
  for (int i = 0; same && i < len; i++) same = seq[i] == c->path[i];
  if (!same) {
    char got[512] = "";
    for (int i = 0; i < len; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
               (long long)seq[i]);
    fail_msg("line %d %s: route %s differs from the table", c->line, geo_route_algo_name(algo),
             got);
  }
  double len_m = 0;
  for (size_t i = 0; i < n; i++) len_m += geo_graph_arc_length_m(g, arcs[i]);
  assert_true(fabs(len_m - r.length_m) < 1e-6);
}

static void test_grid_table_every_algorithm(void **state) {
  (void)state;
  fx_case cases[64];
  geo_graph *g = NULL;
  int n = fx_load_table("grid.graph", &g, cases, 64);
  assert_true(n >= 16);
  assert_int_equal(geo_ch_build(g, NULL), GEO_OK);
  geo_route_state *st = NULL;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  for (int algo = 0; algo < GEO_ROUTE_ALGO_COUNT; algo++)
    for (int i = 0; i < n; i++) check_case(g, st, &cases[i], (geo_route_algo)algo);
  geo_route_state_free(st);
  geo_graph_free(g);
}

static void test_grid_table_one_to_many_matches(void **state) {
  (void)state;
  fx_case cases[64];
  geo_graph *g = NULL;
  int n = fx_load_table("grid.graph", &g, cases, 64);
  assert_int_equal(geo_ch_build(g, NULL), GEO_OK);
  geo_route_state *st = NULL;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  for (int i = 0; i < n; i++) {
    const fx_case *c = &cases[i];
    uint32_t want = c->time_ms < 0 ? GEO_TIME_NONE : (uint32_t)c->time_ms;
    geo_route_place from = geo_route_place_node(node_of(g, c->from));
    geo_route_place to[2] = {geo_route_place_node(node_of(g, c->to)),
                             geo_route_place_node(node_of(g, c->from))};
    for (int use_ch = 0; use_ch < 2; use_ch++) {
      uint32_t t[2];
      assert_int_equal(geo_route_one_to_many(st, g, use_ch, GEO_ROUTE_FROM_SOURCE, &from, to, 2,
                                             GEO_TIME_NONE, t, NULL),
                       GEO_OK);
      assert_int_equal(t[0], want);
      assert_int_equal(t[1], 0);
      /* reverse: from the table's destination, asking the time from its origin to it */
      geo_route_place dst = to[0];
      geo_route_place orig = from;
      assert_int_equal(geo_route_one_to_many(st, g, use_ch, GEO_ROUTE_TO_SOURCE, &dst, &orig, 1,
                                             GEO_TIME_NONE, t, NULL),
                       GEO_OK);
      assert_int_equal(t[0], want);
    }
  }
  geo_route_state_free(st);
  geo_graph_free(g);
}

/* Places along roads: the mid-point of one-way 12 -> 13 and of two-way 21 - 22. */
static void test_places_on_one_way_and_two_way_roads(void **state) {
  (void)state;
  fx_case cases[64];
  geo_graph *g = NULL;
  fx_load_table("grid.graph", &g, cases, 64);
  assert_int_equal(geo_ch_build(g, NULL), GEO_OK);
  geo_route_state *st = NULL;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  uint32_t a1213 = geo_graph_find_arc(g, node_of(g, 12), node_of(g, 13));
  uint32_t a2122 = geo_graph_find_arc(g, node_of(g, 21), node_of(g, 22));
  assert_int_not_equal(a1213, GEO_ARC_NONE);
  assert_int_equal(geo_graph_arc_twin(g, a1213), GEO_ARC_NONE);
  assert_int_not_equal(geo_graph_arc_twin(g, a2122), GEO_ARC_NONE);
  geo_route_place mid_oneway = {0, a1213, 0.5}, mid_twoway = {0, a2122, 0.5};
  geo_route_place quarter_oneway = {0, a1213, 0.25};
  struct {
    const geo_route_place *from, *to;
    uint32_t time_ms;
    double length_m;
  } rows[] = {
      /* from the middle of one-way 12->13 back to 12: on to 13, then the 48 s detour */
      {&mid_oneway, &(geo_route_place){node_of(g, 12), GEO_ARC_NONE, 0}, 5000 + 48000, 50 + 300},
      {&mid_oneway, &(geo_route_place){node_of(g, 13), GEO_ARC_NONE, 0}, 5000, 50},
      /* on a one-way road, ahead is direct, behind is the long way round */
      {&quarter_oneway, &mid_oneway, 2500, 25},
      {&mid_oneway, &quarter_oneway, 5000 + 48000 + 2500, 50 + 300 + 25},
      /* on a two-way road either way is direct */
      {&mid_twoway, &(geo_route_place){node_of(g, 21), GEO_ARC_NONE, 0}, 5500, 50},
      {&mid_twoway, &(geo_route_place){node_of(g, 22), GEO_ARC_NONE, 0}, 5500, 50},
      {&mid_twoway, &mid_twoway, 0, 0},
      {&(geo_route_place){node_of(g, 11), GEO_ARC_NONE, 0}, &mid_oneway, 15000, 150},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    for (int algo = 0; algo < GEO_ROUTE_ALGO_COUNT; algo++) {
      geo_route_result r = {0};
      assert_int_equal(geo_route(st, g, (geo_route_algo)algo, rows[i].from, rows[i].to, &r),
                       GEO_OK);
      if (r.time_ms != rows[i].time_ms)
        fail_msg("row %zu %s: %u ms, expected %u", i, geo_route_algo_name(algo), r.time_ms,
                 rows[i].time_ms);
      assert_true(fabs(r.length_m - rows[i].length_m) < 1e-3);
    }
  }
  geo_route_state_free(st);
  geo_graph_free(g);
}

static void test_polyline_runs_from_exact_start_to_exact_end(void **state) {
  (void)state;
  fx_case cases[64];
  geo_graph *g = NULL;
  fx_load_table("grid.graph", &g, cases, 64);
  geo_route_state *st = NULL;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  uint32_t a = geo_graph_find_arc(g, node_of(g, 11), node_of(g, 12));
  geo_route_place from = {0, a, 0.5};
  geo_route_place to = geo_route_place_node(node_of(g, 13));
  geo_route_result r;
  assert_int_equal(geo_route(st, g, GEO_ROUTE_ASTAR, &from, &to, &r), GEO_OK);
  size_t np = 0;
  assert_int_equal(geo_route_polyline(st, g, NULL, 0, &np), GEO_ERANGE);
  assert_int_equal(np, 3); /* mid 11-12, 12, 13 */
  geo_latlng pts[3];
  assert_int_equal(geo_route_polyline(st, g, pts, 3, &np), GEO_OK);
  assert_true(fabs(pts[0].lat - 40.7) < 1e-9 && fabs(pts[0].lng - (-73.9994)) < 1e-6);
  assert_true(fabs(pts[1].lng - (-73.9988)) < 1e-9);
  assert_true(fabs(pts[2].lng - (-73.9976)) < 1e-9);
  geo_route_state_free(st);
  geo_graph_free(g);
}

static void test_bad_arguments_are_errors(void **state) {
  (void)state;
  fx_case cases[64];
  geo_graph *g = NULL;
  fx_load_table("grid.graph", &g, cases, 64);
  geo_route_state *st = NULL;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  geo_route_result r = {0};
  uint32_t n = geo_graph_node_count(g);
  assert_int_equal(geo_route_nodes(st, g, GEO_ROUTE_DIJKSTRA, 0, n, &r), GEO_EINVAL);
  assert_int_equal(geo_route_nodes(st, g, GEO_ROUTE_CH, 0, 1, &r), GEO_EINVAL); /* no CH yet */
  assert_int_equal(geo_route_nodes(st, g, (geo_route_algo)99, 0, 1, &r), GEO_EINVAL);
  geo_route_place bad = {0, 0, 1.5};
  geo_route_place ok = geo_route_place_node(0);
  assert_int_equal(geo_route(st, g, GEO_ROUTE_DIJKSTRA, &bad, &ok, &r), GEO_EINVAL);
  bad.frac = NAN;
  assert_int_equal(geo_route(st, g, GEO_ROUTE_DIJKSTRA, &ok, &bad, &r), GEO_EINVAL);
  uint32_t t;
  assert_int_equal(
      geo_route_one_to_many(st, g, true, GEO_ROUTE_FROM_SOURCE, &ok, &ok, 1, 0, &t, NULL),
      GEO_EINVAL);
  assert_int_equal(geo_route_polyline(st, g, NULL, 0, &(size_t){0}), GEO_EINVAL); /* no route yet */
  /* a state made for another graph size is refused */
  geo_graph *small = fx_random_graph(5, 3, false, false);
  geo_route_state *st2 = NULL;
  assert_int_equal(geo_route_state_new(small, &st2), GEO_OK);
  assert_int_equal(geo_route_nodes(st2, g, GEO_ROUTE_DIJKSTRA, 0, 1, &r), GEO_EINVAL);
  geo_route_state_free(st2);
  geo_graph_free(small);
  geo_route_state_free(st);
  geo_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grid_table_every_algorithm),
      cmocka_unit_test(test_grid_table_one_to_many_matches),
      cmocka_unit_test(test_places_on_one_way_and_two_way_roads),
      cmocka_unit_test(test_polyline_runs_from_exact_start_to_exact_end),
      cmocka_unit_test(test_bad_arguments_are_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
