/*
 * test_meridianctl_cli.c: meridianctl's command line without servers: --help lists the
 * verbs, unknown verbs and bad arguments exit 2 with one clear line, and `token` prints a
 * JWT that the gateway's verifier (mrd_jwt_verify) and token policy (gw_token_check_claims)
 * accept with the right sub and role, and refuses every sub, role and ttl the gateway's
 * policy refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "auth.h"
#include "mrd/jwt.h"
#include "run_cmd.h"

#define SECRET "test-secret-for-the-cli"

static run_result *mctl(char *a1, char *a2, char *a3, char *a4, char *a5, char *a6) {
  char *argv[] = {(char *)run_bin("meridianctl"), a1, a2, a3, a4, a5, a6, NULL};
  const char *env[] = {"MERIDIAN_JWT_SECRET=" SECRET,
                       "MERIDIAN_JWT_SECRET_FILE=", "MERIDIAN_GW_TOKEN_MAX_LIFETIME=24h", NULL};
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

static run_result *token_ttl(char *ttl) {
  char *argv[] = {(char *)run_bin("meridianctl"),
                  "token",
                  "--role",
                  "rider",
                  "--sub",
                  "r-1",
                  "--ttl",
                  ttl,
                  NULL};
  const char *env[] = {"MERIDIAN_JWT_SECRET=" SECRET,
                       "MERIDIAN_JWT_SECRET_FILE=", "MERIDIAN_GW_TOKEN_MAX_LIFETIME=24h", NULL};
  return run_cmd(argv, env);
}

/* What the gateway refuses, meridianctl does not mint (one policy: gw_token_check). */
static void test_token_refuses_what_the_gateway_refuses(void **state) {
  (void)state;
  run_result *r = mctl("token", "--role", "ops", "--sub", "ops-1", NULL); /* /v1/ops takes it */
  assert_int_equal(r->status, 0);
  assert_int_equal(gw_token_check("ops-1", MRD_ROLE_OPS, 60, 86400), GW_TOKEN_OK);
  free(r);
  r = mctl("token", "--role", "ops", "--sub", "ops 1", NULL);
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "the gateway would refuse it"));
  free(r);
  char *bad_subs[] = {"driver 42", "rider/1", "d\xc3\xa9", "x\"y",
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 65 */};
  for (size_t i = 0; i < sizeof bad_subs / sizeof *bad_subs; i++) {
    r = mctl("token", "--role", "driver", "--sub", bad_subs[i], NULL);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "the gateway would refuse it"));
    assert_int_equal(gw_token_check(bad_subs[i], MRD_ROLE_DRIVER, 60, 86400), GW_TOKEN_BAD_SUB);
    free(r);
  }
  /* the default maximum lifetime is 24 h: 86400 s is allowed, one more is not */
  r = token_ttl("86401");
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "token lifetime above the maximum (86400 s"));
  free(r);
  r = token_ttl("86400");
  assert_int_equal(r->status, 0);
  free(r);
  /* the maximum is the gateway's setting, read from the same variable */
  char *argv[] = {(char *)run_bin("meridianctl"),
                  "token",
                  "--role",
                  "rider",
                  "--sub",
                  "r-1",
                  "--ttl",
                  "7200",
                  NULL};
  const char *env[] = {"MERIDIAN_JWT_SECRET=" SECRET,
                       "MERIDIAN_JWT_SECRET_FILE=", "MERIDIAN_GW_TOKEN_MAX_LIFETIME=1h", NULL};
  r = run_cmd(argv, env);
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "(3600 s"));
  free(r);
  const char *env_bad[] = {"MERIDIAN_JWT_SECRET=" SECRET,
                           "MERIDIAN_JWT_SECRET_FILE=", "MERIDIAN_GW_TOKEN_MAX_LIFETIME=forever",
                           NULL};
  r = run_cmd(argv, env_bad);
  assert_int_equal(r->status, 2);
  assert_non_null(strstr(r->err, "MERIDIAN_GW_TOKEN_MAX_LIFETIME"));
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
  assert_true(c.has_iat);
  assert_int_equal(mrd_jwt_lifetime_s(&c, now), 3600);
  assert_int_equal(gw_token_check_claims(&c, now, GW_TOKEN_MAX_LIFETIME_DEFAULT_S), GW_TOKEN_OK);
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
      cmocka_unit_test(test_token_refuses_what_the_gateway_refuses),
      cmocka_unit_test(test_token_is_verified_by_the_gateway_verifier),
      cmocka_unit_test(test_token_without_secret_exits_2),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
