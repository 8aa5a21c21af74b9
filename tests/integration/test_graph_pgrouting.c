/*
 * test_graph_pgrouting.c: the road graph end to end against the real PostGIS of
 * MERIDIAN_PG_DSN. In a database of its own (meridian_test_monaco_<pid>, dropped at the
 * end; an import before `meridianctl db migrate` is refused, graph_meta being a migration;
 * the stack's Manhattan graph is never touched): `meridianctl graph import`
 * loads data/roads/monaco.osm.gz, a corrupt file is refused and leaves the import as it
 * was, `graph export` writes a snapshot, and the route time between pairs of nodes equals
 * pgRouting's pgr_dijkstra on the same `ways` (cost_s / reverse_cost_s) within rounding
 * (each arc is rounded to the ms). A factors file given to `graph export --factors` is
 * baked into the arc times, `--if-stale` notices when it changes, and a malformed one is
 * refused. SEED= replays the pairs.
 */
#include <libpq-fe.h>
#include <sys/stat.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "geo/ch.h"
#include "geo/route.h"
#include "geo/snapshot.h"

static char db_name[64], test_dsn[512], admin_dsn[512], snap_path[256];

static const char *env(const char *name) {
  const char *v = getenv(name);
  if (v == NULL || *v == 0)
    fail_msg("%s is not set: run under scripts/test (it sources .run/env)", name);
  return v;
}

static int run_ctl(const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s/bin/meridianctl graph %s --dsn '%s'", env("MERIDIAN_BINARY_DIR"),
           args, test_dsn);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static PGresult *q(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
  return r;
}

static int setup(void **state) {
  (void)state;
  /* a database is made and dropped: the owner's DSN (the services' role may not) */
  const char *dsn = getenv("MERIDIAN_PG_ADMIN_DSN");
  if (dsn == NULL || *dsn == '\0') dsn = getenv("MERIDIAN_PG_DSN");
  if (dsn == NULL) return 0; /* the test itself reports it */
  char *err = NULL;
  PQconninfoOption *o = PQconninfoParse(dsn, &err);
  if (o == NULL) return -1;
  char host[128] = "127.0.0.1", port[16] = "5432", user[64] = "postgres", pw[160] = "";
  for (PQconninfoOption *p = o; p->keyword; p++) {
    if (!p->val) continue;
    if (!strcmp(p->keyword, "host")) snprintf(host, sizeof host, "%s", p->val);
    if (!strcmp(p->keyword, "port")) snprintf(port, sizeof port, "%s", p->val);
    if (!strcmp(p->keyword, "user")) snprintf(user, sizeof user, "%s", p->val);
    if (!strcmp(p->keyword, "password")) snprintf(pw, sizeof pw, " password=%s", p->val);
  }
  PQconninfoFree(o);
  snprintf(db_name, sizeof db_name, "meridian_test_monaco_%ld", (long)getpid());
  snprintf(admin_dsn, sizeof admin_dsn, "host=%s port=%s user=%s%s dbname=postgres", host, port,
           user, pw);
  snprintf(test_dsn, sizeof test_dsn, "host=%s port=%s user=%s%s dbname=%s", host, port, user, pw,
           db_name);
  snprintf(snap_path, sizeof snap_path, "/tmp/%s.graph", db_name);
  PGconn *c = PQconnectdb(admin_dsn);
  if (PQstatus(c) != CONNECTION_OK) return -1;
  char sql[256];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", db_name);
  PQclear(PQexec(c, sql));
  PQfinish(c);
  c = PQconnectdb(test_dsn);
  if (PQstatus(c) != CONNECTION_OK) return -1;
  PQclear(PQexec(c, "CREATE EXTENSION IF NOT EXISTS postgis"));
  PQclear(PQexec(c, "CREATE EXTENSION IF NOT EXISTS pgrouting"));
  PQfinish(c);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (db_name[0] == 0) return 0;
  PGconn *c = PQconnectdb(admin_dsn);
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db_name);
  PQclear(PQexec(c, sql));
  PQfinish(c);
  unlink(snap_path);
  return 0;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static struct timespec mtime_of(const char *path) {
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  return sb.st_mtim;
}

/* export --factors FILE bakes the file's factors into the arcs (Monaco lies in geohash
 * cell "s"), --if-stale skips an unchanged file and notices a changed one, and a
 * malformed file fails leaving the snapshot as it was. raw: the uncalibrated export. */
static void check_factors_file(const geo_graph *raw) {
  char factors[256], cal_path[256], args[1024];
  snprintf(factors, sizeof factors, "/tmp/%s-factors.txt", db_name);
  snprintf(cal_path, sizeof cal_path, "/tmp/%s-cal.graph", db_name);
  double cell_f[2] = {1.5, 1.75};
  for (int round = 0; round < 2; round++) {
    char text[512];
    snprintf(text, sizeof text,
             "# test factors\nclass.residential=2\narc_penalty_ms=100\ntrip_base_ms=5000\n"
             "hour.weekday.8=1.2\nday.2=1.1\ncell_precision=1\ncell.s=%.2f\n",
             cell_f[round]);
    write_text(factors, text);
    snprintf(args, sizeof args, "export --if-stale --factors %s --out %s", factors, cal_path);
    assert_int_equal(run_ctl(args), 0);
    geo_graph *g = NULL;
    assert_int_equal(geo_snapshot_load(cal_path, &g), GEO_OK);
    assert_int_equal(geo_graph_arc_count(g), geo_graph_arc_count(raw));
    for (uint32_t a = 0; a < geo_graph_arc_count(g); a++) {
      double cls = geo_graph_arc_class(raw, a) == GEO_ROAD_RESIDENTIAL ? 2 : 1;
      double want = (geo_graph_arc_time_ms(raw, a) * cls + 100) * cell_f[round];
      if (fabs(geo_graph_arc_time_ms(g, a) - want) > 0.5)
        fail_msg("arc %u: %u ms, want %.1f", a, geo_graph_arc_time_ms(g, a), want);
    }
    /* Tuesday 08:00: route time x hour x day + trip base */
    assert_true(fabs(geo_graph_eta_ms(g, 1000, 8, 2) - (1000 * 1.2 * 1.1 + 5000)) < 1e-6);
    geo_graph_free(g);
    /* unchanged file: --if-stale leaves the snapshot alone */
    struct timespec before = mtime_of(cal_path);
    assert_int_equal(run_ctl(args), 0);
    struct timespec after = mtime_of(cal_path);
    assert_true(before.tv_sec == after.tv_sec && before.tv_nsec == after.tv_nsec);
  }
  /* a malformed file: a failure, and the snapshot stays */
  write_text(factors, "class.residential=2\ncell_precision=1\ncell.s=-3\n");
  struct timespec before = mtime_of(cal_path);
  assert_int_not_equal(run_ctl(args), 0);
  struct timespec after = mtime_of(cal_path);
  assert_true(before.tv_sec == after.tv_sec && before.tv_nsec == after.tv_nsec);
  unlink(factors);
  unlink(cal_path);
}

static void test_monaco_import_export_and_route_costs_equal_pgr_dijkstra(void **state) {
  (void)state;
  env("MERIDIAN_PG_DSN");
  char args[1024];
  snprintf(args, sizeof args, "import %s/data/roads/monaco.osm.gz", env("MERIDIAN_SOURCE_DIR"));
  /* graph_meta is a migration: an unmigrated database is refused with a clear error */
  assert_int_not_equal(run_ctl(args), 0);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s/bin/meridianctl db migrate --dsn '%s' >/dev/null",
           env("MERIDIAN_BINARY_DIR"), test_dsn);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(run_ctl(args), 0);
  PGconn *c = PQconnectdb(test_dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = q(c, "SELECT count(*) FROM ways");
  long ways = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  assert_true(ways > 300);
  /* a corrupt file: a clear failure, and the graph stays as it was */
  char bad[256];
  snprintf(bad, sizeof bad, "/tmp/%s-corrupt.osm.gz", db_name);
  FILE *f = fopen(bad, "wb");
  fputs("\x1f\x8bthis is not gzip data at all", f);
  fclose(f);
  snprintf(args, sizeof args, "import %s", bad);
  assert_int_not_equal(run_ctl(args), 0);
  unlink(bad);
  r = q(c, "SELECT count(*) FROM ways");
  assert_int_equal(atol(PQgetvalue(r, 0, 0)), ways);
  PQclear(r);
  /* export without calibration: the arc times are osm2pgrouting's cost_s */
  snprintf(args, sizeof args, "export --no-calibration --out %s", snap_path);
  assert_int_equal(run_ctl(args), 0);
  geo_graph *g = NULL;
  assert_int_equal(geo_snapshot_load(snap_path, &g), GEO_OK);
  assert_true(geo_ch_present(g));
  geo_route_state *st = NULL;
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  const char *s = getenv("SEED");
  unsigned seed = s ? (unsigned)atol(s) : (unsigned)time(NULL);
  fprintf(stderr, "SEED=%u\n", seed);
  srand(seed);
  uint32_t n = geo_graph_node_count(g);
  int compared = 0;
  for (int i = 0; i < 60; i++) {
    uint32_t a = (uint32_t)rand() % n, b = (uint32_t)rand() % n;
    if (a == b) continue;
    char sql[512];
    snprintf(
        sql, sizeof sql,
        "SELECT coalesce(max(agg_cost), -1), count(*) FROM pgr_dijkstra('SELECT gid AS id, source, "
        "target, "
        "cost_s AS cost, reverse_cost_s AS reverse_cost FROM ways', %lld, %lld, directed := true)",
        (long long)geo_graph_node_ext_id(g, a), (long long)geo_graph_node_ext_id(g, b));
    r = q(c, sql);
    double pg_s = atof(PQgetvalue(r, 0, 0));
    long rows = atol(PQgetvalue(r, 0, 1));
    PQclear(r);
    for (int algo = 0; algo < GEO_ROUTE_ALGO_COUNT; algo++) {
      geo_route_result res;
      geo_err e = geo_route_nodes(st, g, (geo_route_algo)algo, a, b, &res);
      /* the snapshot keeps the largest strongly connected component: all pairs connect */
      assert_int_equal(e, GEO_OK);
      assert_true(pg_s >= 0);
      size_t arcs = 0;
      geo_route_path_arcs(st, &arcs);
      double tol_ms = (double)(arcs > (size_t)rows ? arcs : (size_t)rows) * 0.5 + 1;
      if (fabs(res.time_ms - pg_s * 1000) > tol_ms)
        fail_msg("%s %u->%u: %u ms, pgr_dijkstra %.1f ms", geo_route_algo_name(algo), a, b,
                 res.time_ms, pg_s * 1000);
    }
    compared++;
  }
  assert_true(compared > 40);
  check_factors_file(g);
  geo_route_state_free(st);
  geo_graph_free(g);
  PQfinish(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_monaco_import_export_and_route_costs_equal_pgr_dijkstra,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
