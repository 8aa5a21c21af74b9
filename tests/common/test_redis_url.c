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
  assert_int_equal(
      mrd_redis_parse_url("redis://127.0.0.1:21079", host, sizeof host, &port, &db, pw, sizeof pw),
      0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 21079);
  assert_int_equal(db, 0);
  assert_string_equal(pw, "");
  assert_int_equal(mrd_redis_parse_url("redis://cache/5", host, sizeof host, &port, &db, NULL, 0),
                   0);
  assert_string_equal(host, "cache");
  assert_int_equal(port, 6379);
  assert_int_equal(db, 5);
  assert_int_equal(
      mrd_redis_parse_url("redis://:s3cret@h:1/", host, sizeof host, &port, &db, pw, sizeof pw), 0);
  assert_string_equal(pw, "s3cret");
  assert_int_equal(port, 1);
}

static void test_redis_url_malformed_refused(void **state) {
  (void)state;
  static const char *const bad[] = {"",
                                    "127.0.0.1:6379",
                                    "http://h:1",
                                    "redis://",
                                    "redis://:1",
                                    "redis://h:0",
                                    "redis://h:65536",
                                    "redis://h:abc",
                                    "redis://h:1/x",
                                    "redis://h:1/-1",
                                    "redis://h:12x"};
  char host[64];
  int port, db;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(mrd_redis_parse_url(bad[i], host, sizeof host, &port, &db, NULL, 0),
                     MRD_EPARSE);
  char tiny[4];
  assert_int_equal(mrd_redis_parse_url("redis://longhost", tiny, sizeof tiny, &port, &db, NULL, 0),
                   MRD_EPARSE);
}

static void test_redis_url_acl_user_and_escapes(void **state) {
  (void)state;
  char host[64], user[64], pw[64];
  int port, db;
  assert_int_equal(mrd_redis_parse_url_auth("redis://meridian-app:s3cret@127.0.0.1:16479/2", host,
                                            sizeof host, &port, &db, user, sizeof user, pw,
                                            sizeof pw),
                   0);
  assert_string_equal(user, "meridian-app");
  assert_string_equal(pw, "s3cret");
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 16479);
  assert_int_equal(db, 2);
  /* a password with the URL's own separators, percent-encoded */
  assert_int_equal(mrd_redis_parse_url_auth("redis://u%2Bx:p%40ss%3Aw%2Fd%25@h", host, sizeof host,
                                            &port, &db, user, sizeof user, pw, sizeof pw),
                   0);
  assert_string_equal(user, "u+x");
  assert_string_equal(pw, "p@ss:w/d%");
  /* no user: the default user */
  assert_int_equal(mrd_redis_parse_url_auth("redis://:pw@h", host, sizeof host, &port, &db, user,
                                            sizeof user, pw, sizeof pw),
                   0);
  assert_string_equal(user, "");
  assert_string_equal(pw, "pw");
  assert_int_equal(mrd_redis_parse_url_auth("redis://h", host, sizeof host, &port, &db, user,
                                            sizeof user, pw, sizeof pw),
                   0);
  assert_string_equal(user, "");
  assert_string_equal(pw, "");
  /* the password-only parser accepts a user and ignores it */
  assert_int_equal(
      mrd_redis_parse_url("redis://u:pw@h", host, sizeof host, &port, &db, pw, sizeof pw), 0);
  assert_string_equal(pw, "pw");
  const char *bad[] = {"redis://u:p%4@h", "redis://u:p%zz@h", "redis://u:p%00@h", "redis://u%:p@h"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(mrd_redis_parse_url_auth(bad[i], host, sizeof host, &port, &db, user,
                                              sizeof user, pw, sizeof pw),
                     MRD_EPARSE);
  char tiny[3];
  assert_int_equal(mrd_redis_parse_url_auth("redis://user:pw@h", host, sizeof host, &port, &db,
                                            tiny, sizeof tiny, pw, sizeof pw),
                   MRD_EPARSE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_redis_url_host_port_db),
      cmocka_unit_test(test_redis_url_malformed_refused),
      cmocka_unit_test(test_redis_url_acl_user_and_escapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
