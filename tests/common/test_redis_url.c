/* test_redis_url.c: parsing of redis:// URLs (no server needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mrd/redis.h"

static void test_redis_url_host_port_db(void **state) {
  (void)state;
  char host[64], pw[64];
  int port, db;
  assert_int_equal(mrd_redis_parse_url("redis://127.0.0.1:21079", host, sizeof host, &port, &db,
                                       pw, sizeof pw), 0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 21079);
  assert_int_equal(db, 0);
  assert_string_equal(pw, "");
  assert_int_equal(mrd_redis_parse_url("redis://cache/5", host, sizeof host, &port, &db, NULL, 0), 0);
  assert_string_equal(host, "cache");
  assert_int_equal(port, 6379);
  assert_int_equal(db, 5);
  assert_int_equal(mrd_redis_parse_url("redis://:s3cret@h:1/", host, sizeof host, &port, &db, pw,
                                       sizeof pw), 0);
  assert_string_equal(pw, "s3cret");
  assert_int_equal(port, 1);
}

static void test_redis_url_malformed_refused(void **state) {
  (void)state;
  static const char *const bad[] = {"", "127.0.0.1:6379", "http://h:1", "redis://", "redis://:1",
                                    "redis://h:0", "redis://h:65536", "redis://h:abc",
                                    "redis://h:1/x", "redis://h:1/-1", "redis://h:12x"};
  char host[64];
  int port, db;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(mrd_redis_parse_url(bad[i], host, sizeof host, &port, &db, NULL, 0), MRD_EPARSE);
  char tiny[4];
  assert_int_equal(mrd_redis_parse_url("redis://longhost", tiny, sizeof tiny, &port, &db, NULL, 0),
                   MRD_EPARSE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_redis_url_host_port_db),
      cmocka_unit_test(test_redis_url_malformed_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
