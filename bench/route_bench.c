/*
 * route_bench: Meridian's router against pgRouting on the Manhattan graph, with 1,000 real
 * pickup -> drop-off pairs of data/trips/nyc-taxi-10k.csv (the first trips whose two ends
 * snap within 100 m of a road, each end taken to the nearer node of its road).
 *
 * Meridian: the snapshot at MERIDIAN_GRAPH, mapped once (snapshot_load is timed apart),
 * queried node to node with Dijkstra, A*, bidirectional Dijkstra and the contraction
 * hierarchy; one_to_many_16 ranks 16 drop-off nodes towards one pickup (CH buckets, the
 * dispatch case); snap times snapping real trip ends to the nearest road within 100 m (the
 * snapshot's R-tree). pgRouting: pgr_dijkstra and pgr_aStar on the same `ways` table through
 * libpq, one SQL round trip per query, as a user would call it (MERIDIAN_PG_DSN).
 * Progress and a human table go to stderr; the last line of stdout is the JSON of
 * bench/README.md. Not a test: it asserts nothing.
 *
 * usage: route_bench [--pairs N] [--pg-pairs N] [--trips CSV]
 * --pg-pairs 0 skips pgRouting (no DSN needed; the ratios to it are then not printed).
 */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "geo/ch.h"
#include "geo/route.h"
#include "geo/snap.h"
#include "geo/snapshot.h"

#include "bench_machine.h"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct row {
  const char *workload, *impl, *unit;
  double median, p95;
  size_t n;
} row;

static row rows[32];
static int n_rows;

static void add_row(const char *w, const char *impl, const char *unit, double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_d);
  row r = {w, impl, unit, n ? v[n / 2] : NAN, n ? v[(size_t)(n * 0.95)] : NAN, n};
  rows[n_rows++] = r;
  fprintf(stderr, "  %-22s %-10s median %10.2f %-5s p95 %10.2f (n=%zu)\n", w, impl, r.median, unit,
          r.p95, n);
}

typedef struct pair {
  uint32_t a, b;
} pair;

/* Trip ends read by load_pairs (for the snap workload). */
static geo_latlng ends[8192];
static size_t n_ends;

static size_t load_pairs(const geo_graph *g, const char *path, pair *out, size_t want) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[1024];
  size_t n = 0;
  if (!fgets(line, sizeof line, f)) {
    fclose(f);
    return 0;
  }
  while (n < want && fgets(line, sizeof line, f)) {
    char *field[16];
    int nf = 0;
    for (char *p = line; nf < 16;) {
      field[nf++] = p;
      char *c = strchr(p, ',');
      if (!c) break;
      *c = 0;
      p = c + 1;
    }
    if (nf < 11) continue;
    geo_latlng a = {atof(field[8]), atof(field[7])}, b = {atof(field[10]), atof(field[9])};
    geo_snap sa, sb;
    if (!geo_latlng_is_valid(a) || !geo_latlng_is_valid(b)) continue;
    if (n_ends + 2 <= sizeof ends / sizeof ends[0]) ends[n_ends++] = a, ends[n_ends++] = b;
    if (geo_graph_snap(g, a, 100, &sa) != GEO_OK || geo_graph_snap(g, b, 100, &sb) != GEO_OK)
      continue;
    uint32_t na = sa.place.frac < 0.5 ? geo_graph_arc_tail(g, sa.place.arc)
                                      : geo_graph_arc_head(g, sa.place.arc);
    uint32_t nb = sb.place.frac < 0.5 ? geo_graph_arc_tail(g, sb.place.arc)
                                      : geo_graph_arc_head(g, sb.place.arc);
    if (na == nb) continue;
    out[n++] = (pair){na, nb};
  }
  fclose(f);
  return n;
}

/* pgr_dijkstra and pgr_aStar on the first pq pairs, one SQL round trip a query, as rows
 * "pgrouting". False (with a message) when PostgreSQL fails. */
static bool pg_anchor(const geo_graph *g, const char *dsn, const pair *pairs, size_t pq) {
  double *v = calloc(pq + 1, sizeof *v);
  size_t k;
  if (v == NULL) return false;
  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "route_bench: PostgreSQL: %s", PQerrorMessage(c));
    PQfinish(c);
    free(v);
    return false;
  }
  const char *sql[2] = {
      "SELECT max(agg_cost) FROM pgr_dijkstra('SELECT gid AS id, source, target, cost_s AS cost, "
      "reverse_cost_s AS reverse_cost FROM ways', $1::bigint, $2::bigint, directed := true)",
      "SELECT max(agg_cost) FROM pgr_aStar('SELECT gid AS id, source, target, cost_s AS cost, "
      "reverse_cost_s AS reverse_cost, x1, y1, x2, y2 FROM ways', $1::bigint, $2::bigint, directed "
      ":= true)"};
  for (int a = 0; a < 2; a++) {
    k = 0;
    fprintf(stderr, "route_bench: pgRouting %s on %zu pairs...\n", a ? "pgr_aStar" : "pgr_dijkstra",
            pq);
    for (size_t i = 0; i < pq; i++) {
      char s1[32], s2[32];
      snprintf(s1, sizeof s1, "%lld", (long long)geo_graph_node_ext_id(g, pairs[i].a));
      snprintf(s2, sizeof s2, "%lld", (long long)geo_graph_node_ext_id(g, pairs[i].b));
      const char *params[2] = {s1, s2};
      double t0 = now_us();
      PGresult *r = PQexecParams(c, sql[a], 2, NULL, params, NULL, NULL, 0);
      double t1 = now_us();
      if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "route_bench: pgRouting: %s", PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        free(v);
        return false;
      }
      PQclear(r);
      v[k++] = t1 - t0;
    }
    add_row(a ? "p2p_astar" : "p2p_dijkstra", "pgrouting", "us", v, k);
  }
  PQfinish(c);
  free(v);
  return true;
}

int main(int argc, char **argv) {
  size_t want = 1000, pg_want = 1000;
  const char *trips = "data/trips/nyc-taxi-10k.csv";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--pairs") == 0 && i + 1 < argc)
      want = (size_t)atol(argv[++i]);
    else if (strcmp(argv[i], "--pg-pairs") == 0 && i + 1 < argc)
      pg_want = (size_t)atol(argv[++i]);
    else if (strcmp(argv[i], "--trips") == 0 && i + 1 < argc)
      trips = argv[++i];
    else {
      fprintf(stderr, "usage: route_bench [--pairs N] [--pg-pairs N] [--trips CSV]\n");
      return 2;
    }
  }
  /* pgRouting reads the road graph's tables, which the services' role may not read: the
   * owner's DSN when .run/env has it (docs/security.md) */
  const char *path = getenv("MERIDIAN_GRAPH"), *dsn = getenv("MERIDIAN_PG_ADMIN_DSN");
  if (dsn == NULL || *dsn == '\0') dsn = getenv("MERIDIAN_PG_DSN");
  if (path == NULL || (dsn == NULL && pg_want > 0)) {
    fprintf(stderr, "route_bench: set MERIDIAN_GRAPH and MERIDIAN_PG_DSN (source .run/env), or "
                    "pass --pg-pairs 0\n");
    return 2;
  }
  /* snapshot_load */
  double *v = calloc(want * 20 + 64, sizeof *v);
  size_t k = 0;
  geo_graph *g = NULL;
  for (int i = 0; i < 21; i++) {
    geo_graph *h = NULL;
    double t0 = now_us();
    geo_err e = geo_snapshot_load(path, &h);
    double t1 = now_us();
    if (e != GEO_OK) {
      fprintf(stderr, "route_bench: %s: %s\n", path, geo_strerror(e));
      return 1;
    }
    if (i > 0) v[k++] = (t1 - t0) / 1000.0;
    if (g == NULL)
      g = h;
    else
      geo_graph_free(h);
  }
  fprintf(stderr, "route_bench: %s: %u nodes, %u arcs, CH %s\n", path, geo_graph_node_count(g),
          geo_graph_arc_count(g), geo_ch_present(g) ? "yes" : "no");
  add_row("snapshot_load", "meridian", "ms", v, k);
  pair *pairs = calloc(want + 16, sizeof *pairs);
  size_t np = load_pairs(g, trips, pairs, want + 16);
  if (np < 32) {
    fprintf(stderr, "route_bench: only %zu usable pairs from %s\n", np, trips);
    return 1;
  }
  size_t nq = np > want ? want : np;
  /* snap: nearest road within 100 m of a real trip end (the snapshot's R-tree) */
  k = 0;
  for (size_t i = 0; i < n_ends && k < want * 2; i++) {
    geo_snap sn;
    double t0 = now_us();
    geo_graph_snap(g, ends[i], 100, &sn);
    v[k++] = now_us() - t0;
  }
  add_row("snap", "meridian", "us", v, k);
  fprintf(stderr, "route_bench: %zu pickup -> drop-off pairs\n", nq);
  geo_route_state *st = NULL;
  geo_route_state_new(g, &st);
  static const char *names[] = {"p2p_dijkstra", "p2p_astar", "p2p_bidir", "p2p_ch"};
  static char settled_names[4][32];
  double *settled = calloc(nq + 1, sizeof *settled);
  double astar_median = 0;
  for (int algo = 0; algo < 4; algo++) {
    if (algo == GEO_ROUTE_CH && !geo_ch_present(g)) continue;
    k = 0;
    for (size_t i = 0; i < nq; i++) {
      geo_route_result r;
      double t0 = now_us();
      geo_err e = geo_route_nodes(st, g, (geo_route_algo)algo, pairs[i].a, pairs[i].b, &r);
      double t1 = now_us();
      if (e != GEO_OK) continue;
      settled[k] = r.settled;
      v[k++] = t1 - t0;
    }
    add_row(names[algo], "meridian", "us", v, k);
    if (algo == GEO_ROUTE_ASTAR) astar_median = rows[n_rows - 1].median;
    snprintf(settled_names[algo], sizeof settled_names[algo], "%s_settled", names[algo]);
    add_row(settled_names[algo], "meridian", "nodes", settled, k);
  }
  /* one_to_many_16: 16 drop-off nodes towards one pickup, on the reverse graph */
  k = 0;
  bool use_ch = geo_ch_present(g);
  for (size_t i = 0; i + 16 < np && k < nq; i++) {
    geo_route_place src = geo_route_place_node(pairs[i].a), tg[16];
    uint32_t times[16], s;
    for (int j = 0; j < 16; j++) tg[j] = geo_route_place_node(pairs[i + 1 + j].b);
    double t0 = now_us();
    geo_route_one_to_many(st, g, use_ch, GEO_ROUTE_TO_SOURCE, &src, tg, 16, GEO_TIME_NONE, times,
                          &s);
    double t1 = now_us();
    settled[k] = s;
    v[k++] = t1 - t0;
  }
  add_row("one_to_many_16", "meridian", "us", v, k);
  add_row("one_to_many_16_settled", "meridian", "nodes", settled, k);
  /* the same with plain Dijkstra on the reverse graph, for reference */
  k = 0;
  for (size_t i = 0; i + 16 < np && k < nq; i++) {
    geo_route_place src = geo_route_place_node(pairs[i].a), tg[16];
    uint32_t times[16], s;
    for (int j = 0; j < 16; j++) tg[j] = geo_route_place_node(pairs[i + 1 + j].b);
    double t0 = now_us();
    geo_route_one_to_many(st, g, false, GEO_ROUTE_TO_SOURCE, &src, tg, 16, GEO_TIME_NONE, times,
                          &s);
    v[k++] = now_us() - t0;
  }
  add_row("one_to_many_16_dijkstra", "meridian", "us", v, k);

  /* pgRouting through libpq, unless skipped */
  if (pg_want > 0 && !pg_anchor(g, dsn, pairs, pg_want < nq ? pg_want : nq)) return 1;
  /* ratios */
  double pg_astar = 0, pg_dij = 0, ch = 0, m_dij = 0, otm = 0;
  for (int i = 0; i < n_rows; i++) {
    if (!strcmp(rows[i].impl, "pgrouting") && !strcmp(rows[i].workload, "p2p_astar"))
      pg_astar = rows[i].median;
    if (!strcmp(rows[i].impl, "pgrouting") && !strcmp(rows[i].workload, "p2p_dijkstra"))
      pg_dij = rows[i].median;
    if (!strcmp(rows[i].impl, "meridian") && !strcmp(rows[i].workload, "p2p_ch"))
      ch = rows[i].median;
    if (!strcmp(rows[i].impl, "meridian") && !strcmp(rows[i].workload, "p2p_dijkstra"))
      m_dij = rows[i].median;
    if (!strcmp(rows[i].impl, "meridian") && !strcmp(rows[i].workload, "one_to_many_16"))
      otm = rows[i].median;
  }
  if (pg_want > 0)
    fprintf(stderr,
            "ratios (median): p2p_dijkstra pgRouting/Meridian %.0fx; p2p_astar pgRouting/Meridian "
            "%.0fx; pgRouting astar / Meridian CH %.0fx; ",
            pg_dij / m_dij, pg_astar / astar_median, pg_astar / ch);
  fprintf(stderr, "one_to_many_16 / p2p_astar %.2f\n", otm / astar_median);
  char m[512];
  bench_machine(m, sizeof m);
  printf("{\"bench\": \"route_bench\", \"machine\": \"%s\", \"rows\": [", m);
  for (int i = 0; i < n_rows; i++)
    printf("%s{\"workload\": \"%s\", \"impl\": \"%s\", \"unit\": \"%s\", \"median\": %.3f, "
           "\"p95\": %.3f, \"n\": %zu}",
           i ? ", " : "", rows[i].workload, rows[i].impl, rows[i].unit, rows[i].median, rows[i].p95,
           rows[i].n);
  printf("]}\n");
  geo_route_state_free(st);
  geo_graph_free(g);
  free(pairs);
  free(v);
  free(settled);
  return 0;
}
