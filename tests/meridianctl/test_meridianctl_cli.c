/*
 * test_meridianctl_cli.c: meridianctl's command line without servers: --help lists the
 * verbs, unknown verbs and bad arguments exit 2 with one clear line, and `token` prints a
 * JWT that the gateway's verifier (mrd_jwt_verify) accepts with the right sub and role.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "mrd/jwt.h"
#include "run_cmd.h"

#define SECRET "test-secret-for-the-cli"

static run_result *mctl(char *a1, char *a2, char *a3, char *a4, char *a5, char *a6) {
  char *argv[] = {(char *)run_bin("meridianctl"), a1, a2, a3, a4, a5, a6, NULL};
  const char *env[] = {"MERIDIAN_JWT_SECRET=" SECRET, "MERIDIAN_JWT_SECRET_FILE=", NULL};
  return run_cmd(argv, env);
}

static void test_help_lists_every_verb(void **state) {
  (void)state;
  run_result *r = mctl("--help", NULL, NULL, NULL, NULL, NULL);
  assert_int_equal(r->status, 0);
  assert_non_null(strstr(r->out, "db"));
  assert_non_null(strstr(r->out, "token"));
  free(r);
}

static void test_unknown_verb_and_missing_verb_exit_2(void **state) {
  (void)state;
  run_result *r = mctl("frobnicate", NULL, NULL, NULL, NULL, NULL);
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "unknown verb \"frobnicate\""));
  free(r);
  r = mctl(NULL, NULL, NULL, NULL, NULL, NULL);
  assert_int_equal(r->status, 2);
  free(r);
  r = mctl("db", "explode", NULL, NULL, NULL, NULL);
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "unknown verb \"explode\""));
  free(r);
}

static void test_token_bad_arguments_exit_2(void **state) {
  (void)state;
  run_result *r = mctl("token", "--role", "admin", "--sub", "d1", NULL);
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "--role must be driver, rider or ops"));
  free(r);
  r = mctl("token", "--role", "driver", NULL, NULL, NULL);
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "--sub ID is required"));
  free(r);
  r = mctl("token", "--role", "driver", "--sub", "d1", "--ttl");
  assert_int_equal(r->status, 2);
  free(r);
  r = mctl("token", "--bogus", NULL, NULL, NULL, NULL);
  assert_int_equal(r->status, 2);
  free(r);
}

static void test_token_is_verified_by_the_gateway_verifier(void **state) {
  (void)state;
  run_result *r = mctl("token", "--role", "driver", "--sub", "driver-42", NULL);
  assert_int_equal(r->status, 0);
  char *nl = strchr(r->out, '\n');
  assert_non_null(nl);
  *nl = '\0';
  mrd_jwt_claims c;
  int64_t now = (int64_t)time(NULL);
  assert_int_equal(mrd_jwt_verify(SECRET, strlen(SECRET), r->out, MRD_ROLE_DRIVER, now, &c), 0);
  assert_string_equal(c.sub, "driver-42");
  assert_int_equal(c.role, MRD_ROLE_DRIVER);
  /* The default ttl is an hour: expired two hours on, and not a rider token. */
  assert_int_equal(mrd_jwt_verify(SECRET, strlen(SECRET), r->out, MRD_ROLE_ANY, now + 7200, &c),
                   MRD_EEXPIRED);
  assert_int_equal(mrd_jwt_verify(SECRET, strlen(SECRET), r->out, MRD_ROLE_RIDER, now, &c),
                   MRD_EFORBIDDEN);
  assert_int_not_equal(mrd_jwt_verify("other", 5, r->out, MRD_ROLE_ANY, now, &c), 0);
  free(r);
}

static void test_token_without_secret_exits_2(void **state) {
  (void)state;
  char *argv[] = {(char *)run_bin("meridianctl"), "token", "--role", "rider", "--sub", "r", NULL};
  const char *env[] = {"MERIDIAN_JWT_SECRET=", "MERIDIAN_JWT_SECRET_FILE=", NULL};
  run_result *r = run_cmd(argv, env);
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "MERIDIAN_JWT_SECRET is not set"));
  free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_help_lists_every_verb),
      cmocka_unit_test(test_unknown_verb_and_missing_verb_exit_2),
      cmocka_unit_test(test_token_bad_arguments_exit_2),
      cmocka_unit_test(test_token_is_verified_by_the_gateway_verifier),
      cmocka_unit_test(test_token_without_secret_exits_2),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
