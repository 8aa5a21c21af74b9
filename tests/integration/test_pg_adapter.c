/* test_pg_adapter.c: the PostgreSQL adapter against the stack's PostGIS: parameterised
 * round trips (hostile strings stay data), SQL errors with their SQLSTATE, reconnection
 * after pg_terminate_backend (also inside a transaction), statements with parameters
 * prepared once per connection (and again after a reconnect or a table change), and a
 * PostGIS KNN query checked against a brute-force answer. Random points print their seed;
 * SEED= replays. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "itest.h"
#include "mrd/log.h"
#include "mrd/pg.h"

static mrd_pg *connect_stack(void) {
  mrd_pg *pg = NULL;
  mrd_pg_opts opts = {.backoff_min_ms = 20, .backoff_max_ms = 200};
  assert_int_equal(mrd_pg_new(itest_env("MERIDIAN_PG_DSN"), &opts, &pg), 0);
  assert_true(mrd_pg_connected(pg));
  return pg;
}

static void test_pg_parameterised_round_trip_keeps_hostile_text_as_data(void **state) {
  (void)state;
  mrd_pg *pg = connect_stack();
  assert_int_equal(mrd_pg_exec(pg, NULL,
                               "CREATE TEMP TABLE people (id int PRIMARY KEY, name text, "
                               "score double precision)",
                               0, NULL),
                   0);
  const char *hostile = "Robert'); DROP TABLE people;-- \"quoted\" \\ $1 \xc3\xa9";
  assert_int_equal(mrd_pg_exec(pg, NULL, "INSERT INTO people VALUES ($1, $2, $3)", 3,
                               (const char *[]){"1", hostile, "2.5"}),
                   0);
  assert_int_equal(mrd_pg_exec(pg, NULL, "INSERT INTO people VALUES ($1, $2, $3)", 3,
                               (const char *[]){"2", NULL, NULL}),
                   0);
  PGresult *res = NULL;
  assert_int_equal(mrd_pg_exec(pg, &res, "SELECT name, score FROM people WHERE id = $1", 1,
                               (const char *[]){"1"}),
                   0);
  assert_int_equal(PQntuples(res), 1);
  assert_string_equal(PQgetvalue(res, 0, 0), hostile);
  assert_string_equal(PQgetvalue(res, 0, 1), "2.5");
  PQclear(res);
  assert_int_equal(mrd_pg_exec(pg, &res, "SELECT count(*) FROM people WHERE name IS NULL", 0, NULL),
                   0);
  assert_string_equal(PQgetvalue(res, 0, 0), "1");
  PQclear(res);
  mrd_pg_free(pg);
}

static void test_pg_sql_error_gives_message_and_sqlstate(void **state) {
  (void)state;
  mrd_pg *pg = connect_stack();
  assert_int_equal(mrd_pg_exec(pg, NULL, "SELECT * FROM no_such_table_here", 0, NULL), MRD_EREPLY);
  assert_string_equal(mrd_pg_sqlstate(pg), "42P01");
  assert_non_null(strstr(mrd_pg_errstr(pg), "does not exist"));
  /* two statements in one string are refused: no way to smuggle a second one */
  assert_int_equal(mrd_pg_exec(pg, NULL, "SELECT 1; SELECT 2", 0, NULL), MRD_EREPLY);
  assert_int_equal(mrd_pg_exec(pg, NULL, "SELECT $1::int", 1, (const char *[]){"abc"}), MRD_EREPLY);
  assert_string_equal(mrd_pg_sqlstate(pg), "22P02");
  assert_int_equal(mrd_pg_ping(pg), 0);
  assert_string_equal(mrd_pg_errstr(pg), "");
  mrd_pg_free(pg);
}

static void test_pg_transaction_commit_and_rollback(void **state) {
  (void)state;
  mrd_pg *pg = connect_stack();
  assert_int_equal(mrd_pg_exec(pg, NULL, "CREATE TEMP TABLE tx (v int)", 0, NULL), 0);
  assert_int_equal(mrd_pg_begin(pg), 0);
  assert_int_equal(mrd_pg_begin(pg), MRD_ESTATE);
  assert_int_equal(mrd_pg_exec(pg, NULL, "INSERT INTO tx VALUES (1)", 0, NULL), 0);
  assert_int_equal(mrd_pg_commit(pg), 0);
  assert_int_equal(mrd_pg_begin(pg), 0);
  assert_int_equal(mrd_pg_exec(pg, NULL, "INSERT INTO tx VALUES (2)", 0, NULL), 0);
  assert_int_equal(mrd_pg_rollback(pg), 0);
  assert_int_equal(mrd_pg_begin(pg), 0);
  assert_int_equal(mrd_pg_exec(pg, NULL, "INSERT INTO tx VALUES (3)", 0, NULL), 0);
  assert_int_equal(mrd_pg_exec(pg, NULL, "INSERT INTO tx VALUES ('x')", 0, NULL), MRD_EREPLY);
  assert_int_equal(mrd_pg_commit(pg), MRD_EREPLY); /* rolled back, 3 is gone */
  assert_false(mrd_pg_in_transaction(pg));
  PGresult *res;
  assert_int_equal(mrd_pg_exec(pg, &res, "SELECT string_agg(v::text, ',') FROM tx", 0, NULL), 0);
  assert_string_equal(PQgetvalue(res, 0, 0), "1");
  PQclear(res);
  assert_int_equal(mrd_pg_commit(pg), MRD_ESTATE);
  mrd_pg_free(pg);
}

static char *backend_pid(mrd_pg *pg) {
  PGresult *res;
  assert_int_equal(mrd_pg_exec(pg, &res, "SELECT pg_backend_pid()", 0, NULL), 0);
  char *pid = strdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  return pid;
}

static void terminate(const char *pid) {
  mrd_pg *killer = connect_stack();
  PGresult *res;
  assert_int_equal(
      mrd_pg_exec(killer, &res, "SELECT pg_terminate_backend($1::int)", 1, (const char *[]){pid}),
      0);
  assert_string_equal(PQgetvalue(res, 0, 0), "t");
  PQclear(res);
  mrd_pg_free(killer);
  itest_sleep_ms(50); /* let the backend exit */
}

static void test_pg_reconnects_after_backend_terminated(void **state) {
  (void)state;
  mrd_pg *pg = connect_stack();
  char *before = backend_pid(pg);
  terminate(before);
  /* the first statement on the dead connection reports the loss */
  assert_int_equal(mrd_pg_exec(pg, NULL, "SELECT 1", 0, NULL), MRD_ECONN);
  assert_false(mrd_pg_connected(pg));
  assert_true(strlen(mrd_pg_errstr(pg)) > 0);
  /* the next one reconnects at once (first retry is immediate) */
  int64_t t0 = itest_now_ms();
  int rc;
  while ((rc = mrd_pg_ping(pg)) != 0 && itest_now_ms() - t0 < 5000) itest_sleep_ms(10);
  assert_int_equal(rc, 0);
  char *after = backend_pid(pg);
  assert_string_not_equal(before, after);
  free(before);
  free(after);
  mrd_pg_free(pg);
}

/* The value of a one-row, one-column query with one parameter, as an int (-1 on error). */
static int int_of(mrd_pg *pg, const char *sql, const char *param) {
  PGresult *res = NULL;
  if (mrd_pg_exec(pg, &res, sql, 1, (const char *[]){param}) != 0) return -1;
  int v = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : -1;
  PQclear(res);
  return v;
}

static void test_pg_parameterised_statements_prepared_once_per_connection(void **state) {
  (void)state;
  mrd_pg *pg = connect_stack();
  const char *ins = "INSERT INTO prep_t VALUES ($1, $2)";
  const char *count_prepared = "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1";
  assert_int_equal(mrd_pg_exec(pg, NULL, "CREATE TEMP TABLE prep_t (a int, b text)", 0, NULL), 0);
  for (int i = 0; i < 100; i++) {
    char a[16];
    snprintf(a, sizeof a, "%d", i);
    assert_int_equal(mrd_pg_exec(pg, NULL, ins, 2, (const char *[]){a, i % 2 ? NULL : "x"}), 0);
  }
  assert_int_equal(int_of(pg, "SELECT count(*) FROM prep_t WHERE a >= $1::int", "0"), 100);
  assert_int_equal(int_of(pg, "SELECT count(*) FROM prep_t WHERE b IS NULL AND a >= $1::int", "0"),
                   50);
  /* on the server once, under the adapter's name */
  assert_int_equal(int_of(pg, count_prepared, ins), 1);
  assert_int_equal(
      int_of(pg, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE $1", "mrd\\_%"), 5);

  /* a table changed under a prepared SELECT *: that call fails, the next prepares it again */
  PGresult *res = NULL;
  const char *star = "SELECT * FROM prep_t WHERE a = $1::int";
  assert_int_equal(mrd_pg_exec(pg, &res, star, 1, (const char *[]){"4"}), 0);
  assert_int_equal(PQnfields(res), 2);
  PQclear(res);
  assert_int_equal(mrd_pg_exec(pg, NULL, "ALTER TABLE prep_t ADD COLUMN c int", 0, NULL), 0);
  assert_int_equal(mrd_pg_exec(pg, &res, star, 1, (const char *[]){"4"}), MRD_EREPLY);
  assert_string_equal(mrd_pg_sqlstate(pg), "0A000");
  assert_int_equal(mrd_pg_exec(pg, &res, star, 1, (const char *[]){"4"}), 0);
  assert_int_equal(PQnfields(res), 3);
  assert_int_equal(PQntuples(res), 1);
  PQclear(res);

  /* a statement the server refuses is refused each time, cleanly */
  for (int i = 0; i < 2; i++) {
    assert_int_equal(mrd_pg_exec(pg, NULL, "SELEC $1", 1, (const char *[]){"1"}), MRD_EREPLY);
    assert_string_equal(mrd_pg_sqlstate(pg), "42601");
  }

  /* more distinct statements than the handle keeps prepared: the rest run unprepared */
  for (int k = 0; k < 80; k++) {
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT $1::int + %d", k);
    assert_int_equal(int_of(pg, sql, "1"), 1 + k);
  }

  /* a reconnect drops every prepared statement: they are prepared again on the new one */
  char *before = backend_pid(pg);
  terminate(before);
  free(before);
  assert_int_equal(mrd_pg_exec(pg, NULL, "SELECT 1", 0, NULL), MRD_ECONN);
  int64_t t0 = itest_now_ms();
  while (mrd_pg_ping(pg) != 0 && itest_now_ms() - t0 < 5000) itest_sleep_ms(10);
  assert_int_equal(int_of(pg, "SELECT $1::int + 1", "41"), 42);
  assert_int_equal(int_of(pg, count_prepared, "SELECT $1::int + 1"), 1);
  mrd_pg_free(pg);
}

typedef struct notes {
  int n;
  char channel[64], payload[64];
} notes;

static void on_note(void *ud, const char *channel, const char *payload) {
  notes *ns = ud;
  ns->n++;
  snprintf(ns->channel, sizeof ns->channel, "%s", channel);
  snprintf(ns->payload, sizeof ns->payload, "%s", payload);
}

static int wait_notes(mrd_pg *pg, notes *ns, int want) {
  for (int64_t t0 = itest_now_ms(); ns->n < want && itest_now_ms() - t0 < 3000;) {
    if (mrd_pg_notifications(pg, on_note, ns) < 0)
      itest_sleep_ms(10);
    else if (ns->n < want)
      itest_sleep_ms(5);
  }
  return ns->n;
}

static void test_pg_listen_gets_notifications_also_after_a_reconnect(void **state) {
  (void)state;
  mrd_pg *pg = connect_stack(), *other = connect_stack();
  assert_int_equal(mrd_pg_listen(pg, "Bad-Name"), MRD_EINVAL);
  assert_int_equal(mrd_pg_listen(pg, "itest_chan"), 0);
  notes ns = {0};
  assert_int_equal(mrd_pg_notifications(pg, on_note, &ns), 0); /* nothing yet: no wait */
  assert_int_equal(mrd_pg_exec(other, NULL, "SELECT pg_notify('itest_chan', '42')", 0, NULL), 0);
  assert_int_equal(wait_notes(pg, &ns, 1), 1);
  assert_string_equal(ns.channel, "itest_chan");
  assert_string_equal(ns.payload, "42");
  /* the backend dies: the handle reconnects and listens again by itself */
  unsigned c0 = mrd_pg_reconnects(pg);
  char *pid = backend_pid(pg);
  terminate(pid);
  free(pid);
  (void)mrd_pg_exec(pg, NULL, "SELECT 1", 0, NULL); /* finds the loss */
  int64_t t0 = itest_now_ms();
  while (mrd_pg_ping(pg) != 0 && itest_now_ms() - t0 < 5000) itest_sleep_ms(10);
  assert_true(mrd_pg_reconnects(pg) > c0);
  assert_int_equal(mrd_pg_exec(other, NULL, "SELECT pg_notify('itest_chan', '43')", 0, NULL), 0);
  assert_int_equal(wait_notes(pg, &ns, 2), 2);
  assert_string_equal(ns.payload, "43");
  mrd_pg_free(other);
  mrd_pg_free(pg);
}

static void test_pg_connection_lost_in_transaction_refuses_rest(void **state) {
  (void)state;
  mrd_pg *pg = connect_stack();
  assert_int_equal(mrd_pg_begin(pg), 0);
  char *pid = backend_pid(pg);
  terminate(pid);
  free(pid);
  assert_int_equal(mrd_pg_exec(pg, NULL, "SELECT 1", 0, NULL), MRD_ECONN);
  /* even once the server is reachable again, the rest of the transaction must not run
   * outside one */
  itest_sleep_ms(50);
  assert_int_equal(mrd_pg_exec(pg, NULL, "SELECT 2", 0, NULL), MRD_ECONN);
  assert_non_null(strstr(mrd_pg_errstr(pg), "transaction"));
  assert_int_equal(mrd_pg_commit(pg), MRD_ECONN);
  assert_false(mrd_pg_in_transaction(pg));
  assert_int_equal(mrd_pg_exec(pg, NULL, "SELECT 3", 0, NULL), 0);
  mrd_pg_free(pg);
}

static void test_pg_unreachable_server_is_an_error(void **state) {
  (void)state;
  char dsn[128];
  snprintf(dsn, sizeof dsn, "postgresql://postgres@127.0.0.1:%d/x?connect_timeout=2",
           itest_free_port());
  mrd_pg *pg = NULL;
  assert_int_equal(mrd_pg_new(dsn, NULL, &pg), 0);
  assert_false(mrd_pg_connected(pg));
  assert_int_equal(mrd_pg_ping(pg), MRD_ECONN);
  assert_non_null(strstr(mrd_pg_errstr(pg), "connect"));
  mrd_pg_free(pg);
  assert_int_equal(mrd_pg_new("", NULL, &pg), MRD_EINVAL);
}

static char notice_line[1024];
static void capture(const char *line, size_t len, void *ud) {
  (void)ud;
  if (strstr(line, "msg=libpq")) snprintf(notice_line, sizeof notice_line, "%.*s", (int)len, line);
}

static void test_pg_server_notices_logged_as_logfmt(void **state) {
  (void)state;
  mrd_pg *pg = connect_stack();
  mrd_log_set_writer(capture, NULL);
  int rc = mrd_pg_exec(pg, NULL, "DO $$ BEGIN RAISE NOTICE 'meridian says %', 42; END $$", 0, NULL);
  mrd_log_set_writer(NULL, NULL);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(notice_line, "level=info"));
  assert_non_null(strstr(notice_line, "text=\"NOTICE:  meridian says 42\"\n"));
  mrd_pg_free(pg);
}

/* xorshift64*: small, seedable, the same everywhere */
static uint64_t rng_state;
static double rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

enum { N_POINTS = 2000, K = 7, QUERIES = 5 };

static void test_pg_postgis_knn_returns_nearest_rows(void **state) {
  (void)state;
  const char *seed_env = getenv("SEED");
  uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
  printf("test_pg_postgis_knn: SEED=%llu\n", (unsigned long long)seed);
  rng_state = seed ? seed : 1;
  mrd_pg *pg = connect_stack();
  assert_int_equal(mrd_pg_exec(pg, NULL,
                               "CREATE TEMP TABLE cars (id int PRIMARY KEY, "
                               "geom geometry(Point, 4326) NOT NULL)",
                               0, NULL),
                   0);
  static double lon[N_POINTS], lat[N_POINTS];
  assert_int_equal(mrd_pg_begin(pg), 0);
  for (int i = 0; i < N_POINTS; i++) {
    lon[i] = -74.02 + rnd() * 0.09; /* Manhattan-sized box */
    lat[i] = 40.70 + rnd() * 0.18;
    char id[16], x[32], y[32];
    snprintf(id, sizeof id, "%d", i);
    snprintf(x, sizeof x, "%.9f", lon[i]);
    snprintf(y, sizeof y, "%.9f", lat[i]);
    lon[i] = strtod(x, NULL); /* what the server stores */
    lat[i] = strtod(y, NULL);
    assert_int_equal(
        mrd_pg_exec(pg, NULL,
                    "INSERT INTO cars VALUES ($1, ST_SetSRID(ST_MakePoint($2, $3), 4326))", 3,
                    (const char *[]){id, x, y}),
        0);
  }
  assert_int_equal(mrd_pg_commit(pg), 0);
  assert_int_equal(mrd_pg_exec(pg, NULL, "CREATE INDEX ON cars USING gist (geom)", 0, NULL), 0);
  assert_int_equal(mrd_pg_exec(pg, NULL, "ANALYZE cars", 0, NULL), 0);

  for (int q = 0; q < QUERIES; q++) {
    double qx = -74.02 + rnd() * 0.09, qy = 40.70 + rnd() * 0.18;
    char x[32], y[32], k[8];
    snprintf(x, sizeof x, "%.9f", qx);
    snprintf(y, sizeof y, "%.9f", qy);
    snprintf(k, sizeof k, "%d", K);
    qx = strtod(x, NULL);
    qy = strtod(y, NULL);
    PGresult *res;
    assert_int_equal(mrd_pg_exec(pg, &res,
                                 "SELECT id FROM cars ORDER BY geom <-> "
                                 "ST_SetSRID(ST_MakePoint($1, $2), 4326) LIMIT $3",
                                 3, (const char *[]){x, y, k}),
                     0);
    assert_int_equal(PQntuples(res), K);
    /* brute force: planar distance in degrees, as <-> on geometry measures */
    int best[K];
    double bestd[K];
    for (int j = 0; j < K; j++) bestd[j] = INFINITY, best[j] = -1;
    for (int i = 0; i < N_POINTS; i++) {
      double d = hypot(lon[i] - qx, lat[i] - qy);
      for (int j = 0; j < K; j++) {
        if (d < bestd[j]) {
          for (int m = K - 1; m > j; m--) bestd[m] = bestd[m - 1], best[m] = best[m - 1];
          bestd[j] = d;
          best[j] = i;
          break;
        }
      }
    }
    for (int j = 0; j < K; j++) assert_int_equal(atoi(PQgetvalue(res, j, 0)), best[j]);
    PQclear(res);
  }
  mrd_pg_free(pg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pg_parameterised_round_trip_keeps_hostile_text_as_data),
      cmocka_unit_test(test_pg_sql_error_gives_message_and_sqlstate),
      cmocka_unit_test(test_pg_transaction_commit_and_rollback),
      cmocka_unit_test(test_pg_reconnects_after_backend_terminated),
      cmocka_unit_test(test_pg_parameterised_statements_prepared_once_per_connection),
      cmocka_unit_test(test_pg_connection_lost_in_transaction_refuses_rest),
      cmocka_unit_test(test_pg_listen_gets_notifications_also_after_a_reconnect),
      cmocka_unit_test(test_pg_unreachable_server_is_an_error),
      cmocka_unit_test(test_pg_postgis_knn_returns_nearest_rows),
      cmocka_unit_test(test_pg_server_notices_logged_as_logfmt),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
