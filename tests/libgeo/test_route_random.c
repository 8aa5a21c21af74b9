/*
 * test_route_random.c: property tests on random graphs. For every ordered pair of nodes,
 * and for random snapped places, A*, bidirectional Dijkstra, the contraction hierarchy and
 * the one-to-many searches (plain and CH buckets, both directions) must give exactly
 * Dijkstra's travel time, and every returned path must be a real path of that time.
 * The seed is printed; SEED=<n> replays a run.
 */
#include "graph_fixtures.h"

static uint32_t path_time(const geo_graph *g, const geo_route_state *st,
                          const geo_route_place *from, const geo_route_place *to) {
  size_t n = 0;
  const uint32_t *arcs = geo_route_path_arcs(st, &n);
  if (n == 0) return 0;
  /* consecutive arcs must connect */
  for (size_t i = 0; i + 1 < n; i++)
    assert_int_equal(geo_graph_arc_head(g, arcs[i]), geo_graph_arc_tail(g, arcs[i + 1]));
  if (from->arc == GEO_ARC_NONE) assert_int_equal(geo_graph_arc_tail(g, arcs[0]), from->node);
  if (to->arc == GEO_ARC_NONE) assert_int_equal(geo_graph_arc_head(g, arcs[n - 1]), to->node);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += geo_graph_arc_time_ms(g, arcs[i]);
  return (uint32_t)sum;
}

/* Every algorithm against Dijkstra on every pair of nodes, and one-to-many rows. */
static void check_all_pairs(geo_graph *g, geo_route_state *st) {
  uint32_t n = geo_graph_node_count(g);
  uint32_t *ref = calloc((size_t)n * n, sizeof *ref);
  for (uint32_t s = 0; s < n; s++) {
    for (uint32_t t = 0; t < n; t++) {
      geo_route_result r = {0};
      geo_err e = geo_route_nodes(st, g, GEO_ROUTE_DIJKSTRA, s, t, &r);
      if (e == GEO_EUNREACHABLE) {
        ref[(size_t)s * n + t] = GEO_TIME_NONE;
      } else {
        assert_int_equal(e, GEO_OK);
        ref[(size_t)s * n + t] = r.time_ms;
        geo_route_place a = geo_route_place_node(s), b = geo_route_place_node(t);
        assert_int_equal(path_time(g, st, &a, &b), r.time_ms);
      }
      for (int algo = GEO_ROUTE_ASTAR; algo <= GEO_ROUTE_CH; algo++) {
        geo_route_result q = {0};
        e = geo_route_nodes(st, g, (geo_route_algo)algo, s, t, &q);
        if (ref[(size_t)s * n + t] == GEO_TIME_NONE) {
          if (e != GEO_EUNREACHABLE)
            fail_msg("%s %u->%u: expected unreachable, got %d", geo_route_algo_name(algo), s, t, e);
        } else {
          assert_int_equal(e, GEO_OK);
          if (q.time_ms != ref[(size_t)s * n + t])
            fail_msg("%s %u->%u: %u ms, dijkstra %u ms", geo_route_algo_name(algo), s, t, q.time_ms,
                     ref[(size_t)s * n + t]);
          geo_route_place a = geo_route_place_node(s), b = geo_route_place_node(t);
          assert_int_equal(path_time(g, st, &a, &b), q.time_ms);
        }
      }
    }
  }
  geo_route_place *targets = calloc(n, sizeof *targets);
  uint32_t *times = calloc(n, sizeof *times);
  for (uint32_t i = 0; i < n; i++) targets[i] = geo_route_place_node(i);
  for (uint32_t s = 0; s < n; s++) {
    geo_route_place src = geo_route_place_node(s);
    for (int use_ch = 0; use_ch < 2; use_ch++) {
      for (int dir = 0; dir < 2; dir++) {
        assert_int_equal(geo_route_one_to_many(st, g, use_ch, (geo_route_dir)dir, &src, targets, n,
                                               GEO_TIME_NONE, times, NULL),
                         GEO_OK);
        for (uint32_t t = 0; t < n; t++) {
          uint32_t want =
              dir == GEO_ROUTE_FROM_SOURCE ? ref[(size_t)s * n + t] : ref[(size_t)t * n + s];
          if (times[t] != want)
            fail_msg("one_to_many ch=%d dir=%d %u/%u: %u, dijkstra %u", use_ch, dir, s, t, times[t],
                     want);
        }
      }
    }
    /* with a bound: the times at or under it are exact, the rest are GEO_TIME_NONE */
    uint32_t bound = (uint32_t)fx_below(40000);
    for (int use_ch = 0; use_ch < 2; use_ch++) {
      assert_int_equal(geo_route_one_to_many(st, g, use_ch, GEO_ROUTE_TO_SOURCE, &src, targets, n,
                                             bound, times, NULL),
                       GEO_OK);
      for (uint32_t t = 0; t < n; t++) {
        uint32_t want = ref[(size_t)t * n + s];
        if (want > bound) want = GEO_TIME_NONE;
        assert_int_equal(times[t], want);
      }
    }
  }
  free(targets);
  free(times);
  free(ref);
}

static geo_route_place random_place(const geo_graph *g) {
  if (fx_below(4) == 0) return geo_route_place_node(fx_below(geo_graph_node_count(g)));
  geo_route_place p = {0, fx_below(geo_graph_arc_count(g)), fx_unit()};
  if (fx_below(6) == 0) p.frac = fx_below(2) ? 0.0 : 1.0;
  return p;
}

/* Snapped places (points along arcs, both directions of two-way roads). */
static void check_places(geo_graph *g, geo_route_state *st, int queries) {
  enum { K = 16 };
  for (int q = 0; q < queries; q++) {
    geo_route_place a = random_place(g);
    geo_route_place ts[K];
    uint32_t ref[K], times[K];
    for (int i = 0; i < K; i++) {
      ts[i] = random_place(g);
      geo_route_result r = {0};
      geo_err e = geo_route(st, g, GEO_ROUTE_DIJKSTRA, &a, &ts[i], &r);
      ref[i] = e == GEO_OK ? r.time_ms : GEO_TIME_NONE;
      if (e != GEO_OK) assert_int_equal(e, GEO_EUNREACHABLE);
      for (int algo = GEO_ROUTE_ASTAR; algo <= GEO_ROUTE_CH; algo++) {
        geo_route_result x = {0};
        e = geo_route(st, g, (geo_route_algo)algo, &a, &ts[i], &x);
        uint32_t got = e == GEO_OK ? x.time_ms : GEO_TIME_NONE;
        if (got != ref[i])
          fail_msg("%s place query %d/%d: %u, dijkstra %u", geo_route_algo_name(algo), q, i, got,
                   ref[i]);
        if (e == GEO_OK) {
          size_t np = 0;
          geo_err pe = geo_route_polyline(st, g, NULL, 0, &np);
          assert_int_equal(pe, np > 0 ? GEO_ERANGE : GEO_OK);
          size_t n_arcs = 0;
          geo_route_path_arcs(st, &n_arcs);
          if (n_arcs > 0) assert_true(np >= 2);
          geo_latlng *pts = calloc(np + 1, sizeof *pts);
          size_t np2 = 0;
          assert_int_equal(geo_route_polyline(st, g, pts, np, &np2), GEO_OK);
          assert_int_equal(np, np2);
          free(pts);
        }
      }
    }
    for (int use_ch = 0; use_ch < 2; use_ch++) {
      assert_int_equal(geo_route_one_to_many(st, g, use_ch, GEO_ROUTE_FROM_SOURCE, &a, ts, K,
                                             GEO_TIME_NONE, times, NULL),
                       GEO_OK);
      for (int i = 0; i < K; i++)
        if (times[i] != ref[i])
          fail_msg("one_to_many fwd ch=%d %d/%d: %u vs %u", use_ch, q, i, times[i], ref[i]);
      /* reverse: each target to a, checked against Dijkstra target -> a */
      assert_int_equal(geo_route_one_to_many(st, g, use_ch, GEO_ROUTE_TO_SOURCE, &a, ts, K,
                                             GEO_TIME_NONE, times, NULL),
                       GEO_OK);
      for (int i = 0; i < K; i++) {
        geo_route_result r = {0};
        geo_err e = geo_route(st, g, GEO_ROUTE_DIJKSTRA, &ts[i], &a, &r);
        uint32_t want = e == GEO_OK ? r.time_ms : GEO_TIME_NONE;
        if (times[i] != want)
          fail_msg("one_to_many rev ch=%d %d/%d: %u vs %u", use_ch, q, i, times[i], want);
      }
    }
  }
}

static void run(uint32_t n, uint32_t extra, bool zero, bool scc) {
  geo_graph *g = fx_random_graph(n, extra, zero, scc);
  assert_int_equal(geo_ch_build(g, NULL), GEO_OK);
  assert_int_equal(geo_ch_check(g), GEO_OK);
  geo_route_state *st = NULL;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  check_all_pairs(g, st);
  check_places(g, st, 40);
  geo_route_state_free(st);
  geo_graph_free(g);
}

static void test_random_graphs_all_algorithms_equal_dijkstra(void **state) {
  (void)state;
  fx_seed("test_random_graphs_all_algorithms_equal_dijkstra");
  for (int i = 0; i < 6; i++) run(40 + fx_below(120), fx_below(200), false, false);
}

static void test_random_graphs_with_zero_times_and_shared_positions(void **state) {
  (void)state;
  fx_seed("test_random_graphs_with_zero_times_and_shared_positions");
  for (int i = 0; i < 6; i++) run(30 + fx_below(100), fx_below(150), true, fx_below(2));
}

static void test_dense_graph_ch_exact(void **state) {
  (void)state;
  fx_seed("test_dense_graph_ch_exact");
  run(120, 900, fx_below(2), true);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_graphs_all_algorithms_equal_dijkstra),
      cmocka_unit_test(test_random_graphs_with_zero_times_and_shared_positions),
      cmocka_unit_test(test_dense_graph_ch_exact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
