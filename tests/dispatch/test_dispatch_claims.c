/*
 * test_dispatch_claims.c: the in-memory claim store keeps the Redis rules: one owner per
 * driver (SET NX), a TTL (PX), renew and release only by the owner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "claims_mem.h"

static void test_claims_first_owner_wins_and_second_loses(void **state) {
  (void)state;
  dsp_claims_mem *m = dsp_claims_mem_new();
  assert_int_equal(dsp_claims_mem_try(m, "d1", "3:t3-a:7", 12000, 1000), DSP_CLAIM_WON);
  assert_int_equal(dsp_claims_mem_try(m, "d1", "4:t4-b:7", 12000, 1001), DSP_CLAIM_LOST);
  assert_string_equal(dsp_claims_mem_owner(m, "d1", 1002), "3:t3-a:7");
  /* Another driver is independent. */
  assert_int_equal(dsp_claims_mem_try(m, "d2", "4:t4-b:7", 12000, 1001), DSP_CLAIM_WON);
  dsp_claims_mem_free(m);
}

static void test_claims_expire_after_their_ttl(void **state) {
  (void)state;
  dsp_claims_mem *m = dsp_claims_mem_new();
  assert_int_equal(dsp_claims_mem_try(m, "d1", "A", 500, 1000), DSP_CLAIM_WON);
  assert_non_null(dsp_claims_mem_owner(m, "d1", 1499));
  assert_int_equal(dsp_claims_mem_try(m, "d1", "B", 500, 1499), DSP_CLAIM_LOST);
  assert_null(dsp_claims_mem_owner(m, "d1", 1500));
  assert_int_equal(dsp_claims_mem_try(m, "d1", "B", 500, 1500), DSP_CLAIM_WON);
  dsp_claims_mem_free(m);
}

static void test_claims_owner_renews_others_cannot(void **state) {
  (void)state;
  dsp_claims_mem *m = dsp_claims_mem_new();
  assert_int_equal(dsp_claims_mem_try(m, "d1", "A", 500, 0), DSP_CLAIM_WON);
  assert_int_equal(dsp_claims_mem_refresh(m, "d1", "B", 5000, 100), DSP_CLAIM_LOST);
  assert_int_equal(dsp_claims_mem_refresh(m, "d1", "A", 5000, 400), DSP_CLAIM_WON);
  assert_non_null(dsp_claims_mem_owner(m, "d1", 5399));
  assert_null(dsp_claims_mem_owner(m, "d1", 5400));
  /* Refreshing a claim that ran out is lost (it has to be taken again). */
  assert_int_equal(dsp_claims_mem_refresh(m, "d1", "A", 5000, 6000), DSP_CLAIM_LOST);
  /* Claiming again what one holds renews it. */
  assert_int_equal(dsp_claims_mem_try(m, "d1", "A", 100, 7000), DSP_CLAIM_WON);
  assert_int_equal(dsp_claims_mem_try(m, "d1", "A", 1000, 7050), DSP_CLAIM_WON);
  assert_non_null(dsp_claims_mem_owner(m, "d1", 8000));
  dsp_claims_mem_free(m);
}

static void test_claims_release_only_by_owner(void **state) {
  (void)state;
  dsp_claims_mem *m = dsp_claims_mem_new();
  assert_int_equal(dsp_claims_mem_try(m, "d1", "A", 500, 0), DSP_CLAIM_WON);
  dsp_claims_mem_release(m, "d1", "B", 10);
  assert_string_equal(dsp_claims_mem_owner(m, "d1", 10), "A");
  dsp_claims_mem_release(m, "d1", "A", 10);
  assert_null(dsp_claims_mem_owner(m, "d1", 10));
  assert_int_equal(dsp_claims_mem_try(m, "d1", "B", 500, 11), DSP_CLAIM_WON);
  dsp_claims_mem_free(m);
}

static void test_claims_bad_arguments_are_errors(void **state) {
  (void)state;
  dsp_claims_mem *m = dsp_claims_mem_new();
  char long_id[DSP_ID_MAX + 2];
  memset(long_id, 'x', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  assert_int_equal(dsp_claims_mem_try(m, NULL, "A", 5, 0), DSP_CLAIM_ERROR);
  assert_int_equal(dsp_claims_mem_try(m, "", "A", 5, 0), DSP_CLAIM_ERROR);
  assert_int_equal(dsp_claims_mem_try(m, long_id, "A", 5, 0), DSP_CLAIM_ERROR);
  assert_int_equal(dsp_claims_mem_try(m, "d1", NULL, 5, 0), DSP_CLAIM_ERROR);
  assert_int_equal(dsp_claims_mem_try(m, "d1", "A", 0, 0), DSP_CLAIM_ERROR);
  dsp_claims_mem_free(m);
  dsp_claims_mem_free(NULL);
}

static void test_claims_sweep_drops_only_expired(void **state) {
  (void)state;
  dsp_claims_mem *m = dsp_claims_mem_new();
  char id[16];
  for (int i = 0; i < 200; i++) {
    snprintf(id, sizeof id, "d%d", i);
    assert_int_equal(dsp_claims_mem_try(m, id, "A", i % 2 ? 100 : 10000, 0), DSP_CLAIM_WON);
  }
  assert_int_equal(dsp_claims_mem_sweep(m, 100), 100);
  for (int i = 0; i < 200; i++) {
    snprintf(id, sizeof id, "d%d", i);
    if (i % 2)
      assert_null(dsp_claims_mem_owner(m, id, 100));
    else
      assert_non_null(dsp_claims_mem_owner(m, id, 100));
  }
  assert_int_equal(dsp_claims_mem_sweep(m, 100), 0);
  dsp_claims_mem_free(m);
}

static void test_claims_interface_calls_the_store(void **state) {
  (void)state;
  dsp_claims_mem *m = dsp_claims_mem_new();
  dsp_claims c = dsp_claims_mem_iface(m);
  assert_int_equal(c.try_claim(c.ud, "d1", "A", 50, 0), DSP_CLAIM_WON);
  assert_int_equal(c.try_claim(c.ud, "d1", "B", 50, 0), DSP_CLAIM_LOST);
  assert_int_equal(c.refresh(c.ud, "d1", "A", 50, 10), DSP_CLAIM_WON);
  c.release(c.ud, "d1", "A", 20);
  assert_null(dsp_claims_mem_owner(m, "d1", 20));
  dsp_claims_mem_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claims_first_owner_wins_and_second_loses),
      cmocka_unit_test(test_claims_expire_after_their_ttl),
      cmocka_unit_test(test_claims_owner_renews_others_cannot),
      cmocka_unit_test(test_claims_release_only_by_owner),
      cmocka_unit_test(test_claims_bad_arguments_are_errors),
      cmocka_unit_test(test_claims_sweep_drops_only_expired),
      cmocka_unit_test(test_claims_interface_calls_the_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
