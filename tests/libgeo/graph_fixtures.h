/*
 * graph_fixtures.h: helpers shared by the routing tests: a seeded PRNG (SEED= replays),
 * random road graphs, and a reader for the small hand-made graphs of tests/data/NAME.graph.
 * Header-only (static functions) so that each test stays one executable per source file.
 */
#ifndef GRAPH_FIXTURES_H
#define GRAPH_FIXTURES_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "geo/ch.h"
#include "geo/graph.h"
#include "geo/route.h"

/* xorshift64*: deterministic from a seed. */
static uint64_t fx_rng_state = 1;
static inline uint64_t fx_rand(void) {
  uint64_t x = fx_rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  fx_rng_state = x;
  return x * 0x2545F4914F6CDD1DULL;
}
static inline uint32_t fx_below(uint32_t n) { return n ? (uint32_t)(fx_rand() % n) : 0; }
static inline double fx_unit(void) { return (double)(fx_rand() >> 11) / 9007199254740992.0; }

/* The seed: SEED from the environment, else the clock; printed so a failure can be replayed. */
static inline uint64_t fx_seed(const char *test) {
  const char *s = getenv("SEED");
  uint64_t seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)clock();
  if (seed == 0) seed = 1;
  fprintf(stderr, "%s: SEED=%llu\n", test, (unsigned long long)seed);
  fx_rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
  return seed;
}

/* A random road graph of n nodes around Manhattan: each node is joined to a few near ones,
 * a share of the roads is one-way, some arcs take 0 ms, some nodes share a position
 * (zero-length roads), and parallel roads appear. The largest SCC is NOT extracted
 * (unreachable pairs are part of the test) unless keep_scc. */
static inline geo_graph *fx_random_graph(uint32_t n, uint32_t extra_roads, bool zero_times,
                                         bool keep_scc) {
  geo_graph_builder *b = NULL;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  geo_latlng *pos = calloc(n, sizeof *pos);
  for (uint32_t i = 0; i < n; i++) {
    if (i > 0 && fx_below(10) == 0)
      pos[i] = pos[fx_below(i)]; /* same spot */
    else
      pos[i] = (geo_latlng){40.70 + 0.05 * fx_unit(), -74.01 + 0.05 * fx_unit()};
    assert_int_equal(geo_graph_builder_add_node(b, 1000 + (int64_t)i, pos[i], NULL), GEO_OK);
  }
  uint32_t roads = n + extra_roads;
  for (uint32_t r = 0; r < roads; r++) {
    uint32_t u = r < n ? r : fx_below(n), v;
    /* a near neighbour: the closest of a few random candidates */
    double best = 1e18;
    v = fx_below(n);
    for (int c = 0; c < 6; c++) {
      uint32_t w = fx_below(n);
      double dl = pos[w].lat - pos[u].lat, dg = pos[w].lng - pos[u].lng, d = dl * dl + dg * dg;
      if (w != u && d < best) best = d, v = w;
    }
    if (v == u) continue;
    double len = 10 + 500 * fx_unit();
    uint32_t t = (uint32_t)(len * (50 + fx_below(100))); /* ms */
    if (zero_times && fx_below(8) == 0) t = 0;
    uint32_t back = fx_below(3) == 0 ? GEO_TIME_NONE : t + fx_below(2000);
    geo_latlng mid = {(pos[u].lat + pos[v].lat) / 2 + 0.0001, (pos[u].lng + pos[v].lng) / 2};
    geo_graph_road road = {u,          v,    t,
                           back,       len,  (geo_road_class)fx_below(GEO_ROAD_CLASS_COUNT),
                           (int64_t)r, &mid, fx_below(2)};
    assert_int_equal(geo_graph_builder_add_road(b, &road), GEO_OK);
  }
  geo_graph *g = NULL;
  geo_graph_build_opts o = {keep_scc, true};
  assert_int_equal(geo_graph_builder_build(b, &o, &g, NULL), GEO_OK);
  geo_graph_builder_free(b);
  free(pos);
  return g;
}

/* ---- tests/data/NAME.graph ---------------------------------------------------------------
 * Line formats ('#' starts a comment):
 *   node ID LAT LNG
 *   road FROM TO FWD_MS BWD_MS LENGTH_M     (BWD_MS "-" for a one-way road)
 *   route FROM TO TIME_MS N1,N2,...         (expected time and node sequence)
 *   route FROM TO unreachable
 */
typedef struct fx_case {
  int64_t from, to;
  long time_ms; /* -1: unreachable */
  int64_t path[64];
  int path_len;
  int line;
} fx_case;

static inline char *fx_data_path(const char *name) {
  const char *dir = getenv("MERIDIAN_SOURCE_DIR");
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/tests/data/%s", dir ? dir : ".", name);
  return buf;
}

/* Reads file into a graph (all nodes kept) and its cases; returns the case count. */
static inline int fx_load_table(const char *name, geo_graph **out, fx_case *cases, int max_cases) {
  FILE *f = fopen(fx_data_path(name), "r");
  if (f == NULL) fail_msg("cannot open %s (set MERIDIAN_SOURCE_DIR)", fx_data_path(name));
  geo_graph_builder *b = NULL;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  int64_t ids[256];
  uint32_t n_ids = 0, n_cases = 0, road_no = 0;
  char line[512];
  int lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char kind[16];
    if (sscanf(line, "%15s", kind) != 1) continue;
    if (strcmp(kind, "node") == 0) {
      long long id;
      double lat, lng;
      assert_int_equal(sscanf(line, "%*s %lld %lf %lf", &id, &lat, &lng), 3);
      ids[n_ids++] = id;
      assert_int_equal(geo_graph_builder_add_node(b, id, (geo_latlng){lat, lng}, NULL), GEO_OK);
    } else if (strcmp(kind, "road") == 0) {
      long long a, c;
      char fwd[32], bwd[32];
      double len;
      assert_int_equal(sscanf(line, "%*s %lld %lld %31s %31s %lf", &a, &c, fwd, bwd, &len), 5);
      uint32_t ia = UINT32_MAX, ic = UINT32_MAX;
      for (uint32_t i = 0; i < n_ids; i++) {
        if (ids[i] == a) ia = i;
        if (ids[i] == c) ic = i;
      }
      if (ia == UINT32_MAX || ic == UINT32_MAX) fail_msg("%s:%d unknown node", name, lineno);
      geo_graph_road r = {ia,
                          ic,
                          fwd[0] == '-' ? GEO_TIME_NONE : (uint32_t)atol(fwd),
                          bwd[0] == '-' ? GEO_TIME_NONE : (uint32_t)atol(bwd),
                          len,
                          GEO_ROAD_RESIDENTIAL,
                          road_no++,
                          NULL,
                          0};
      assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_OK);
    } else if (strcmp(kind, "route") == 0) {
      fx_case *c = &cases[n_cases];
      memset(c, 0, sizeof *c);
      long long a, z;
      char t[32], p[400] = "";
      int got = sscanf(line, "%*s %lld %lld %31s %399s", &a, &z, t, p);
      assert_true(got >= 3);
      c->from = a, c->to = z, c->line = lineno;
      c->time_ms = strcmp(t, "unreachable") == 0 ? -1 : atol(t);
      for (char *tok = strtok(p, ","); tok && c->path_len < 64; tok = strtok(NULL, ","))
        c->path[c->path_len++] = atoll(tok);
      if ((int)++n_cases == max_cases) break;
    } else {
      fail_msg("%s:%d unknown line kind %s", name, lineno, kind);
    }
  }
  fclose(f);
  geo_graph_build_opts o = {false, true};
  assert_int_equal(geo_graph_builder_build(b, &o, out, NULL), GEO_OK);
  geo_graph_builder_free(b);
  return (int)n_cases;
}

#endif
