/*
 * test_gateway_auth.c: the gateway's token policy (auth.h), shared with meridianctl token:
 * sub shape, roles with an endpoint, lifetime bounds (exp - iat, or exp - now without iat),
 * and the verdict on an app's upgrade (gw_upgrade_check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

#define NOW 1700000000

static void test_token_policy_table(void **state) {
  (void)state;
  static const struct {
    const char *sub;
    mrd_role role;
    int64_t lifetime_s, max_s;
    gw_token_verdict want;
  } rows[] = {
      {"driver-42", MRD_ROLE_DRIVER, 3600, 86400, GW_TOKEN_OK},
      {"r.1:a_b-c", MRD_ROLE_RIDER, 86400, 86400, GW_TOKEN_OK},  /* exactly the maximum */
      {"r", MRD_ROLE_RIDER, 86401, 86400, GW_TOKEN_TOO_LONG},    /* one second more */
      {"r", MRD_ROLE_RIDER, 31536000, 86400, GW_TOKEN_TOO_LONG}, /* a year */
      {"r", MRD_ROLE_RIDER, 0, 86400, GW_TOKEN_NO_LIFETIME},
      {"r", MRD_ROLE_RIDER, -5, 86400, GW_TOKEN_NO_LIFETIME},
      {"ops-1", MRD_ROLE_OPS, 60, 86400, GW_TOKEN_OK}, /* /v1/ops takes ops */
      {"x", MRD_ROLE_ANY, 60, 86400, GW_TOKEN_BAD_ROLE},
      {"", MRD_ROLE_DRIVER, 60, 86400, GW_TOKEN_BAD_SUB},
      {"a b", MRD_ROLE_DRIVER, 60, 86400, GW_TOKEN_BAD_SUB},
      {"d\xc3\xa9", MRD_ROLE_DRIVER, 60, 86400, GW_TOKEN_BAD_SUB},
      {"a/b", MRD_ROLE_DRIVER, 60, 86400, GW_TOKEN_BAD_SUB},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", MRD_ROLE_DRIVER, 60,
       86400, GW_TOKEN_OK},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", MRD_ROLE_DRIVER, 60,
       86400, GW_TOKEN_BAD_SUB},
      {"bad sub", MRD_ROLE_OPS, 999999, 86400, GW_TOKEN_BAD_SUB}, /* the first reason wins */
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    gw_token_verdict v =
        gw_token_check(rows[i].sub, rows[i].role, rows[i].lifetime_s, rows[i].max_s);
    if (v != rows[i].want)
      fail_msg("row %zu (%s): got %d, want %d", i, rows[i].sub, v, rows[i].want);
    assert_non_null(gw_token_verdict_text(v));
  }
  assert_null(NULL);
  assert_int_equal(gw_token_check(NULL, MRD_ROLE_DRIVER, 60, 86400), GW_TOKEN_BAD_SUB);
}

/* On verified claims: iat fixes the lifetime; without iat what is left of it counts. */
static void test_token_policy_on_claims(void **state) {
  (void)state;
  mrd_jwt_claims c;
  memset(&c, 0, sizeof c);
  strcpy(c.sub, "d1");
  c.role = MRD_ROLE_DRIVER;
  c.has_iat = true;
  c.iat_s = NOW - 60;
  c.exp_s = NOW - 60 + 86400;
  assert_int_equal(gw_token_check_claims(&c, NOW, 86400), GW_TOKEN_OK);
  c.exp_s += 1;
  assert_int_equal(gw_token_check_claims(&c, NOW, 86400), GW_TOKEN_TOO_LONG);
  c.has_iat = false; /* 86341 s left */
  assert_int_equal(gw_token_check_claims(&c, NOW, 86400), GW_TOKEN_OK);
  c.exp_s = NOW + 2 * 86400;
  assert_int_equal(gw_token_check_claims(&c, NOW, 86400), GW_TOKEN_TOO_LONG);
  assert_int_equal(gw_token_check_claims(&c, NOW + 86400, 86400), GW_TOKEN_OK);
  assert_int_equal(gw_token_check_claims(&c, NOW, 3 * 86400), GW_TOKEN_OK);
}

/* An app's upgrade, judged once (at the upgrade, ws_server.c keeps the claims): the
 * endpoint, the token's signature and expiry, its role against the endpoint, the policy. */
static void test_upgrade_verdicts(void **state) {
  (void)state;
  const char *secret = "test-secret";
  char *drv = NULL, *rid = NULL, *ops = NULL, *old = NULL, *year = NULL, *other = NULL;
  assert_int_equal(mrd_jwt_mint(secret, strlen(secret), "drv-1", MRD_ROLE_DRIVER, 3600, NOW, &drv),
                   0);
  assert_int_equal(mrd_jwt_mint(secret, strlen(secret), "rider-1", MRD_ROLE_RIDER, 3600, NOW, &rid),
                   0);
  assert_int_equal(mrd_jwt_mint(secret, strlen(secret), "ops-1", MRD_ROLE_OPS, 3600, NOW, &ops), 0);
  assert_int_equal(
      mrd_jwt_mint(secret, strlen(secret), "drv-1", MRD_ROLE_DRIVER, 60, NOW - 120, &old), 0);
  assert_int_equal(
      mrd_jwt_mint(secret, strlen(secret), "drv-1", MRD_ROLE_DRIVER, 31536000, NOW, &year), 0);
  assert_int_equal(mrd_jwt_mint("other", 5, "drv-1", MRD_ROLE_DRIVER, 3600, NOW, &other), 0);
  static const int64_t MAX_S = 86400;
  const struct {
    const char *path, *token;
    gw_upgrade_verdict want;
  } rows[] = {
      {"/v1/driver", drv, GW_UPGRADE_OK},
      {"/v1/rider", rid, GW_UPGRADE_OK},
      {"/v1/rider", drv, GW_UPGRADE_FORBIDDEN},  /* the other app's token */
      {"/v1/driver", ops, GW_UPGRADE_FORBIDDEN}, /* an ops token on an app's endpoint */
      {"/v1/driver", NULL, GW_UPGRADE_UNAUTHORIZED},
      {"/v1/driver", "", GW_UPGRADE_UNAUTHORIZED},
      {"/v1/driver", "not.a.token", GW_UPGRADE_UNAUTHORIZED},
      {"/v1/driver", old, GW_UPGRADE_UNAUTHORIZED},   /* expired */
      {"/v1/driver", year, GW_UPGRADE_UNAUTHORIZED},  /* lifetime above the maximum */
      {"/v1/driver", other, GW_UPGRADE_UNAUTHORIZED}, /* another secret's signature */
      {"/v1/ops", ops, GW_UPGRADE_NOT_FOUND},         /* ops_io.c's, not this check's */
      {"/v1/drivers", drv, GW_UPGRADE_NOT_FOUND},
      {"", drv, GW_UPGRADE_NOT_FOUND},
      {NULL, drv, GW_UPGRADE_NOT_FOUND},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    gw_upgrade_claims cl;
    memset(&cl, 0, sizeof cl);
    const char *why = NULL;
    gw_upgrade_verdict v =
        gw_upgrade_check(rows[i].path, rows[i].token, secret, NOW, MAX_S, &cl, &why);
    if (v != rows[i].want)
      fail_msg("row %zu: got %d, want %d (%s)", i, v, rows[i].want, why ? why : "");
    if (v != GW_UPGRADE_OK) assert_true(why && *why);
  }
  gw_upgrade_claims cl;
  const char *why = NULL;
  assert_int_equal(gw_upgrade_check("/v1/rider", rid, secret, NOW, MAX_S, &cl, &why),
                   GW_UPGRADE_OK);
  assert_int_equal(cl.role, GW_ROLE_RIDER);
  assert_string_equal(cl.user, "rider-1");
  assert_int_equal(cl.exp_s, NOW + 3600);
  free(drv), free(rid), free(ops), free(old), free(year), free(other);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_token_policy_table),
      cmocka_unit_test(test_token_policy_on_claims),
      cmocka_unit_test(test_upgrade_verdicts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
