/* test_redis_adapter.c: the Redis adapter against real redis-servers: the stack's one for
 * round trips and pipelining, and a private one, started here on a free loopback port,
 * that is killed and restarted to check the same handle recovers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "itest.h"
#include "mrd/redis.h"

static mrd_redis *connect_stack(void) {
  mrd_redis *r = NULL;
  assert_int_equal(mrd_redis_new(itest_env("MERIDIAN_REDIS_URL"), NULL, &r), 0);
  assert_true(mrd_redis_connected(r));
  return r;
}

static void test_redis_binary_value_round_trip(void **state) {
  (void)state;
  mrd_redis *r = connect_stack();
  char key[64];
  snprintf(key, sizeof key, "mrd:test:%d:bin", (int)getpid());
  const char val[] = {'a', '\0', 'b', '\n', (char)0xff};
  const char *argv[] = {"SET", key, val, "PX", "60000"};
  const size_t lens[] = {3, strlen(key), sizeof val, 2, 5};
  redisReply *rep = NULL;
  assert_int_equal(mrd_redis_cmd(r, &rep, 5, argv, lens), 0);
  assert_int_equal(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  assert_int_equal(mrd_redis_cmdf(r, &rep, "GET %s", key), 0);
  assert_int_equal(rep->type, REDIS_REPLY_STRING);
  assert_int_equal(rep->len, sizeof val);
  assert_memory_equal(rep->str, val, sizeof val);
  freeReplyObject(rep);
  assert_int_equal(mrd_redis_cmdf(r, NULL, "DEL %s", key), 0);
  assert_int_equal(mrd_redis_ping(r), 0);
  mrd_redis_free(r);
}

static void test_redis_error_reply_returned_with_text(void **state) {
  (void)state;
  mrd_redis *r = connect_stack();
  char key[64];
  snprintf(key, sizeof key, "mrd:test:%d:str", (int)getpid());
  assert_int_equal(mrd_redis_cmdf(r, NULL, "SET %s notanumber PX 60000", key), 0);
  redisReply *rep = (redisReply *)0x1;
  assert_int_equal(mrd_redis_cmdf(r, &rep, "INCR %s", key), MRD_EREPLY);
  assert_null(rep);
  assert_non_null(strstr(mrd_redis_errstr(r), "not an integer"));
  /* the connection is still good after an error reply */
  assert_int_equal(mrd_redis_ping(r), 0);
  assert_string_equal(mrd_redis_errstr(r), "");
  mrd_redis_free(r);
}

static void test_redis_pipeline_replies_in_order(void **state) {
  (void)state;
  mrd_redis *r = connect_stack();
  char key[64];
  snprintf(key, sizeof key, "mrd:test:%d:pipe", (int)getpid());
  enum { N = 200 };
  assert_int_equal(mrd_redis_appendf(r, "DEL %s", key), 0);
  for (int i = 0; i < N; i++) assert_int_equal(mrd_redis_appendf(r, "INCR %s", key), 0);
  assert_int_equal(mrd_redis_appendf(r, "HSET %s f v", key), 0); /* WRONGTYPE in the middle */
  assert_int_equal(mrd_redis_appendf(r, "GET %s", key), 0);
  assert_int_equal(mrd_redis_pending(r), N + 3);
  /* a plain command is refused while replies are owed */
  assert_int_equal(mrd_redis_cmdf(r, NULL, "PING"), MRD_ESTATE);
  redisReply *rep;
  assert_int_equal(mrd_redis_get_reply(r, &rep), 0);
  freeReplyObject(rep);
  for (int i = 1; i <= N; i++) {
    assert_int_equal(mrd_redis_get_reply(r, &rep), 0);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_int_equal(rep->integer, i);
    freeReplyObject(rep);
  }
  assert_int_equal(mrd_redis_get_reply(r, &rep), MRD_EREPLY);
  assert_non_null(strstr(mrd_redis_errstr(r), "WRONGTYPE"));
  assert_int_equal(mrd_redis_get_reply(r, &rep), 0);
  assert_string_equal(rep->str, "200");
  freeReplyObject(rep);
  assert_int_equal(mrd_redis_get_reply(r, &rep), MRD_ESTATE);
  assert_int_equal(mrd_redis_cmdf(r, NULL, "DEL %s", key), 0);
  mrd_redis_free(r);
}

static void test_redis_db_from_url_selected(void **state) {
  (void)state;
  char url[300];
  snprintf(url, sizeof url, "%s/3", itest_env("MERIDIAN_REDIS_URL"));
  mrd_redis *r3 = NULL, *r0 = connect_stack();
  assert_int_equal(mrd_redis_new(url, NULL, &r3), 0);
  char key[64];
  snprintf(key, sizeof key, "mrd:test:%d:db", (int)getpid());
  assert_int_equal(mrd_redis_cmdf(r3, NULL, "SET %s three PX 60000", key), 0);
  redisReply *rep;
  assert_int_equal(mrd_redis_cmdf(r0, &rep, "EXISTS %s", key), 0);
  assert_int_equal(rep->integer, 0);
  freeReplyObject(rep);
  assert_int_equal(mrd_redis_cmdf(r3, &rep, "GET %s", key), 0);
  assert_string_equal(rep->str, "three");
  freeReplyObject(rep);
  mrd_redis_free(r3);
  mrd_redis_free(r0);
}

/* Retries SET until it works; returns the ms it took, or -1 after timeout_ms. */
static int64_t until_set_works(mrd_redis *r, const char *key, int timeout_ms) {
  int64_t t0 = itest_now_ms();
  while (itest_now_ms() - t0 < timeout_ms) {
    if (mrd_redis_cmdf(r, NULL, "SET %s after", key) == 0) return itest_now_ms() - t0;
    itest_sleep_ms(10);
  }
  return -1;
}

static void test_redis_adapter_survives_server_restart(void **state) {
  (void)state;
  int port = itest_free_port();
  pid_t pid = itest_start_redis(port);
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  mrd_redis_opts opts = {.backoff_min_ms = 20, .backoff_max_ms = 200};
  mrd_redis *r = NULL;
  assert_int_equal(mrd_redis_new(url, &opts, &r), 0);
  assert_int_equal(mrd_redis_cmdf(r, NULL, "SET k before"), 0);
  assert_int_equal(mrd_redis_connections(r), 1);

  itest_kill(pid, SIGKILL); /* a crash, not a clean shutdown */
  int rc = mrd_redis_cmdf(r, NULL, "GET k");
  assert_true(rc == MRD_ECONN || rc == MRD_ETIMEDOUT);
  assert_false(mrd_redis_connected(r));
  assert_true(strlen(mrd_redis_errstr(r)) > 0);
  /* while the server is down, calls fail fast instead of blocking the loop */
  int64_t t0 = itest_now_ms();
  for (int i = 0; i < 50; i++) assert_int_equal(mrd_redis_ping(r), MRD_ECONN);
  assert_true(itest_now_ms() - t0 < 2000);

  pid = itest_start_redis(port);
  int64_t took = until_set_works(r, "k", 5000);
  assert_true(took >= 0);
  assert_true(took < 1000); /* backoff is capped at 200 ms here */
  assert_true(mrd_redis_connected(r));
  /* a new connection is counted: callers learn the server may have lost their keys */
  assert_int_equal(mrd_redis_connections(r), 2);
  redisReply *rep;
  assert_int_equal(mrd_redis_cmdf(r, &rep, "GET k"), 0);
  assert_string_equal(rep->str, "after");
  freeReplyObject(rep);

  /* and once more, with a pipeline in flight when the server dies */
  for (int i = 0; i < 10; i++) assert_int_equal(mrd_redis_appendf(r, "INCR n"), 0);
  itest_kill(pid, SIGKILL);
  int errors = 0;
  for (int i = 0; i < 10; i++) {
    rc = mrd_redis_get_reply(r, &rep);
    assert_true(rc == MRD_ECONN || rc == MRD_ETIMEDOUT);
    errors++;
  }
  assert_int_equal(errors, 10);
  assert_int_equal(mrd_redis_pending(r), 0);
  pid = itest_start_redis(port);
  assert_true(until_set_works(r, "k", 5000) >= 0);
  assert_int_equal(mrd_redis_ping(r), 0);
  assert_int_equal(mrd_redis_connections(r), 3);
  mrd_redis_free(r);
  itest_kill(pid, SIGTERM);
}

static void test_redis_unreachable_server_is_an_error_not_abort(void **state) {
  (void)state;
  int port = itest_free_port();
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  mrd_redis *r = NULL;
  assert_int_equal(mrd_redis_new(url, NULL, &r), 0);
  assert_false(mrd_redis_connected(r));
  assert_int_equal(mrd_redis_ping(r), MRD_ECONN);
  assert_non_null(strstr(mrd_redis_errstr(r), "127.0.0.1"));
  mrd_redis_free(r);
  assert_int_equal(mrd_redis_new("http://x", NULL, &r), MRD_EPARSE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_redis_binary_value_round_trip),
      cmocka_unit_test(test_redis_error_reply_returned_with_text),
      cmocka_unit_test(test_redis_pipeline_replies_in_order),
      cmocka_unit_test(test_redis_db_from_url_selected),
      cmocka_unit_test(test_redis_adapter_survives_server_restart),
      cmocka_unit_test(test_redis_unreachable_server_is_an_error_not_abort),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
