/* test_gateway_request.c: the idempotency of ride requests in the gateway (gateway.h): the
 * value of gw:req:{rider}:{request_id} and how a request compares with it (new, resend to
 * the first shard, unconfirmed, conflict). Pure, no Redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway.h"

static const mrd_latlon A = {40.758, -73.9855}, B = {40.80, -73.95}, D = {40.7484, -73.9857};

static void test_request_value_is_shard_and_places(void **state) {
  (void)state;
  char v[GW_REQ_VALUE_MAX];
  int n = gw_request_value(0, A, D, v, sizeof v);
  assert_int_equal(n, (int)strlen(v));
  assert_string_equal(v, "0|40.758000,-73.985500;40.748400,-73.985700");
  /* the worst case fits */
  mrd_latlon far = {-89.999999, -179.999999};
  assert_true(gw_request_value(63, far, far, v, sizeof v) > 0);
  char tiny[8];
  assert_int_equal(gw_request_value(0, A, D, tiny, sizeof tiny), -1);
}

static void test_request_new_resend_conflict(void **state) {
  (void)state;
  char first[GW_REQ_VALUE_MAX], again[GW_REQ_VALUE_MAX], moved[GW_REQ_VALUE_MAX];
  gw_request_value(0, A, D, first, sizeof first);
  gw_request_value(1, A, D, again, sizeof again); /* routed elsewhere now (a new map) */
  gw_request_value(1, B, D, moved, sizeof moved);
  uint32_t shard = 99;
  assert_int_equal(gw_request_compare(NULL, first, &shard), GW_REQ_NEW);
  assert_int_equal(shard, 99); /* untouched */
  /* the same places: a resend, to the shard of the first request */
  assert_int_equal(gw_request_compare(first, again, &shard), GW_REQ_RESEND);
  assert_int_equal(shard, 0);
  /* the repro: the same request_id with a pickup on the other shard */
  shard = 99;
  assert_int_equal(gw_request_compare(first, moved, &shard), GW_REQ_CONFLICT);
  assert_int_equal(shard, 99);
  /* another drop-off is another ride too */
  char other_drop[GW_REQ_VALUE_MAX];
  gw_request_value(0, A, (mrd_latlon){40.70, -74.0}, other_drop, sizeof other_drop);
  assert_int_equal(gw_request_compare(first, other_drop, &shard), GW_REQ_CONFLICT);
  /* a difference below the stored precision (0.11 m) is the same request */
  char jitter[GW_REQ_VALUE_MAX];
  gw_request_value(0, (mrd_latlon){40.7580000001, -73.9855}, D, jitter, sizeof jitter);
  assert_int_equal(gw_request_compare(first, jitter, &shard), GW_REQ_RESEND);
}

static void test_request_unreadable_value_is_a_conflict(void **state) {
  (void)state;
  char v[GW_REQ_VALUE_MAX];
  gw_request_value(0, A, D, v, sizeof v);
  uint32_t shard = 0;
  const char *bad[] = {"",
                       "|40.758000,-73.985500;40.748400,-73.985700",
                       "64|40.758000,-73.985500;40.748400,-73.985700",
                       "x|40.758000,-73.985500;40.748400,-73.985700",
                       "99999999999999999999|40.758000,-73.985500;40.748400,-73.985700",
                       "rider-1|0" /* the old layout of gw:req:{request_id} */};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(gw_request_compare(bad[i], v, &shard), GW_REQ_CONFLICT);
}

/* The chaos replay's finding: a gateway killed between setting the key and Kafka's delivery
 * report left the key set for a request that never reached dispatch, and the rider's retry,
 * flagged resend, was refused "this request has ended". The key is now set unconfirmed and
 * confirmed on delivery; a retry that finds it unconfirmed is sent as a new request. */
static void test_request_unconfirmed(void **state) {
  (void)state;
  char confirmed[GW_REQ_VALUE_MAX], pending[GW_REQ_VALUE_MAX], retry[GW_REQ_VALUE_MAX];
  int n = gw_request_value(0, A, D, confirmed, sizeof confirmed);
  assert_int_equal(gw_request_value_unconfirmed(0, A, D, pending, sizeof pending), n + 1);
  assert_string_equal(pending, "0|40.758000,-73.985500;40.748400,-73.985700*");
  gw_request_value_unconfirmed(1, A, D, retry, sizeof retry); /* the pickup's shard now */
  uint32_t shard = 99;
  /* the first copy never confirmed: a new request, to the shard the first copy went to */
  assert_int_equal(gw_request_compare(pending, retry, &shard), GW_REQ_UNCONFIRMED);
  assert_int_equal(shard, 0);
  /* confirmed: a resend */
  shard = 99;
  assert_int_equal(gw_request_compare(confirmed, retry, &shard), GW_REQ_RESEND);
  assert_int_equal(shard, 0);
  /* other places are a conflict, confirmed or not */
  char moved[GW_REQ_VALUE_MAX];
  gw_request_value_unconfirmed(1, B, D, moved, sizeof moved);
  assert_int_equal(gw_request_compare(pending, moved, &shard), GW_REQ_CONFLICT);
  assert_int_equal(gw_request_compare(confirmed, moved, &shard), GW_REQ_CONFLICT);
  /* the mark only at the end: in the middle, or twice, the value is not one we wrote */
  assert_int_equal(
      gw_request_compare("0|40.758000,-73.985500*;40.748400,-73.985700", retry, &shard),
      GW_REQ_CONFLICT);
  assert_int_equal(
      gw_request_compare("0|40.758000,-73.985500;40.748400,-73.985700**", retry, &shard),
      GW_REQ_CONFLICT);
  /* the room for the mark is checked */
  assert_int_equal(gw_request_value_unconfirmed(0, A, D, confirmed, (size_t)n + 1), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_value_is_shard_and_places),
      cmocka_unit_test(test_request_new_resend_conflict),
      cmocka_unit_test(test_request_unreadable_value_is_a_conflict),
      cmocka_unit_test(test_request_unconfirmed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
