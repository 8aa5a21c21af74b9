/*
 * test_migrations.c: `meridianctl db migrate` against the real PostgreSQL + PostGIS of the
 * stack, in a scratch database of its own: the first run applies every migration, a second
 * run is a no-op and leaves the very same schema, a migration edited after it was applied
 * is refused, and the seeded shard map tiles the whole geohash space.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>

#include "itest.h"
#include "run_cmd.h"

#define SCRATCH_DB "meridian_itest_migrate"

static char g_admin_dsn[1024], g_scratch_dsn[1024];

/* The stack's DSN with its database name replaced by db. */
static void dsn_with_db(const char *dsn, const char *db, char *out, size_t cap) {
  const char *slash = strrchr(dsn, '/');
  assert_non_null(slash);
  snprintf(out, cap, "%.*s/%s", (int)(slash - dsn), dsn, db);
}

static void exec_admin(const char *sql) {
  PGconn *c = PQconnectdb(g_admin_dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
}

static int setup(void **state) {
  (void)state;
  /* databases are made and dropped: the owner's DSN (the services' role may not) */
  const char *dsn = getenv("MERIDIAN_PG_ADMIN_DSN");
  if (dsn == NULL || *dsn == '\0') dsn = itest_env("MERIDIAN_PG_DSN");
  dsn_with_db(dsn, "postgres", g_admin_dsn, sizeof g_admin_dsn);
  dsn_with_db(dsn, SCRATCH_DB, g_scratch_dsn, sizeof g_scratch_dsn);
  exec_admin("DROP DATABASE IF EXISTS " SCRATCH_DB);
  exec_admin("CREATE DATABASE " SCRATCH_DB);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  exec_admin("DROP DATABASE IF EXISTS " SCRATCH_DB);
  return 0;
}

/* Every column, index, constraint and ledger row of the public schema, as one string. */
static char *schema_fingerprint(void) {
  PGconn *c = PQconnectdb(g_scratch_dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  const char *q =
      "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
      " SELECT format('col %s.%s %s %s %s', table_name, column_name, data_type, is_nullable,"
      "  coalesce(column_default, '')) AS x FROM information_schema.columns"
      "  WHERE table_schema = 'public'"
      " UNION ALL SELECT format('idx %s %s', indexname, indexdef) FROM pg_indexes"
      "  WHERE schemaname = 'public'"
      " UNION ALL SELECT format('con %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint"
      "  WHERE connamespace = 'public'::regnamespace"
      " UNION ALL SELECT format('mig %s %s %s', version, name, checksum) FROM schema_migrations"
      " UNION ALL SELECT format('ext %s', extname) FROM pg_extension) s";
  PGresult *r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("fingerprint: %s", PQerrorMessage(c));
  char *s = strdup(PQgetvalue(r, 0, 0));
  PQclear(r);
  PQfinish(c);
  return s;
}

static run_result *migrate(const char *verb) {
  char *argv[] = {(char *)run_bin("meridianctl"), "db", (char *)verb, "--dsn", g_scratch_dsn, NULL};
  return run_cmd(argv, NULL);
}

static void test_migrate_twice_is_a_noop_with_the_same_schema(void **state) {
  (void)state;
  run_result *r = migrate("status");
  assert_int_equal(r->status, 0);
  assert_non_null(strstr(r->out, "pending 0001_base"));
  free(r);

  r = migrate("migrate");
  if (r->status != 0) fail_msg("first migrate failed: %s", r->err);
  assert_non_null(strstr(r->out, "applied"));
  assert_non_null(strstr(r->err, "applying 0001_base"));
  free(r);
  char *first = schema_fingerprint();
  assert_non_null(strstr(first, "col trips.pickup USER-DEFINED"));
  assert_non_null(strstr(first, "ext postgis"));
  assert_non_null(strstr(first, "ext pgrouting"));

  r = migrate("migrate");
  assert_int_equal(r->status, 0);
  assert_non_null(strstr(r->out, "up to date"));
  assert_null(strstr(r->err, "applying"));
  free(r);
  char *second = schema_fingerprint();
  assert_string_equal(first, second);
  free(first);
  free(second);

  r = migrate("status");
  assert_int_equal(r->status, 0);
  assert_non_null(strstr(r->out, "0 pending"));
  free(r);
}

static void test_edited_migration_is_refused(void **state) {
  (void)state;
  run_result *r = migrate("migrate");
  assert_int_equal(r->status, 0);
  free(r);
  PGconn *c = PQconnectdb(g_scratch_dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PQclear(PQexec(c, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 2"));
  r = migrate("migrate");
  assert_int_equal(r->status, 1);
  assert_non_null(strstr(r->err, "changed after it was applied"));
  free(r);
  PQfinish(c);
}

static void test_shard_map_epoch_one_tiles_the_world(void **state) {
  (void)state;
  run_result *r = migrate("migrate");
  free(r);
  PGconn *c = PQconnectdb(g_scratch_dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *res = PQexec(c, "SELECT range_start, range_end, shard FROM shard_map WHERE epoch = 1 "
                            "ORDER BY range_start");
  assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
  int n = PQntuples(res);
  assert_true(n >= 1);
  assert_string_equal(PQgetvalue(res, 0, 0), "");
  for (int i = 1; i < n; i++) assert_string_equal(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 1));
  assert_string_equal(PQgetvalue(res, n - 1, 1), "~");
  PQclear(res);
  PQfinish(c);
}

static void test_bad_dsn_and_missing_dsn_fail_clearly(void **state) {
  (void)state;
  char *argv[] = {(char *)run_bin("meridianctl"),
                  "db",
                  "migrate",
                  "--dsn",
                  "postgresql://postgres@127.0.0.1:1/nothing",
                  NULL};
  run_result *r = run_cmd(argv, NULL);
  assert_int_equal(r->status, 1);
  assert_non_null(strstr(r->err, "cannot connect"));
  free(r);
  char *argv2[] = {(char *)run_bin("meridianctl"), "db", "migrate", NULL};
  const char *env[] = {"MERIDIAN_PG_DSN=", "MERIDIAN_PG_ADMIN_DSN=", NULL};
  r = run_cmd(argv2, env);
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "MERIDIAN_PG_DSN is not set"));
  free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_migrate_twice_is_a_noop_with_the_same_schema, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_edited_migration_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shard_map_epoch_one_tiles_the_world, setup, teardown),
      cmocka_unit_test(test_bad_dsn_and_missing_dsn_fail_clearly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
