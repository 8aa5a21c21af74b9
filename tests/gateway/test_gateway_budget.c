/*
 * test_gateway_budget.c: per-user budgets shared by a user's connections, per-address
 * connection rates and the admission verdicts (budget.h), on a hand-held clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "budget.h"

static gw_budgets *table(void) {
  gw_budget_limits lim[2] = {
      {5, 10, 2, 5, 1000, 4000, 3,
       10000}, /* driver: 5/s burst 10; control 2/s 5; 1000 B/s, 4000 B */
      {2, 5, 2, 5, 1000, 4000, 3, 10000}, /* rider */
  };
  gw_budgets *t = gw_budgets_new(lim);
  assert_non_null(t);
  return t;
}

static int take_n(gw_bucket *b, int n, int64_t now) {
  int ok = 0;
  for (int i = 0; i < n; i++) ok += gw_bucket_take(b, now);
  return ok;
}

/* Two connections of one rider draw on one budget: 30 connections get the budget of one. */
static void test_budget_is_shared_by_a_users_connections(void **state) {
  (void)state;
  gw_budgets *t = table();
  gw_budget *a = gw_budgets_acquire(t, GW_ROLE_RIDER, "rider-1", 0);
  gw_budget *b = gw_budgets_acquire(t, GW_ROLE_RIDER, "rider-1", 0);
  assert_ptr_equal(a, b);
  assert_int_equal(a->refs, 2);
  assert_int_equal(take_n(&a->msgs, 3, 0) + take_n(&b->msgs, 3, 0), 5); /* burst 5, not 10 */
  gw_budget *many[30];
  int ok = 0;
  for (int i = 0; i < 30; i++) {
    many[i] = gw_budgets_acquire(t, GW_ROLE_RIDER, "rider-2", 0);
    ok += take_n(&many[i]->msgs, 5, 0);
  }
  assert_int_equal(ok, 5);
  /* another user, and the same id as a driver, have their own */
  gw_budget *c = gw_budgets_acquire(t, GW_ROLE_RIDER, "rider-3", 0);
  gw_budget *d = gw_budgets_acquire(t, GW_ROLE_DRIVER, "rider-1", 0);
  assert_ptr_not_equal(c, a);
  assert_ptr_not_equal(d, a);
  assert_int_equal(take_n(&d->msgs, 20, 0), 10);
  assert_int_equal(gw_budgets_count(t), 4);
  assert_true(gw_budgets_check(t));
  for (int i = 0; i < 30; i++) gw_budgets_release(t, many[i]);
  gw_budgets_free(t);
}

/* Reconnecting buys nothing: a released budget stays until its buckets are full again. */
static void test_budget_outlives_its_connections_until_refilled(void **state) {
  (void)state;
  gw_budgets *t = table();
  gw_budget *a = gw_budgets_acquire(t, GW_ROLE_RIDER, "r", 1000);
  assert_int_equal(take_n(&a->msgs, 5, 1000), 5);
  gw_budgets_release(t, a);
  assert_int_equal(gw_budgets_sweep(t, 1000), 0); /* drained: kept */
  gw_budget *again = gw_budgets_acquire(t, GW_ROLE_RIDER, "r", 1100);
  assert_ptr_equal(again, a);
  assert_false(gw_bucket_take(&again->msgs, 1100)); /* still empty after reconnecting */
  gw_budgets_release(t, again);
  assert_false(gw_budget_idle(again, 3000)); /* 2/s refills 5 tokens in 2.5 s */
  assert_true(gw_budget_idle(again, 3600));
  assert_int_equal(gw_budgets_sweep(t, 3600), 1);
  assert_int_equal(gw_budgets_count(t), 0);
  /* a held budget is never swept, however idle */
  gw_budget *h = gw_budgets_acquire(t, GW_ROLE_DRIVER, "d", 0);
  assert_int_equal(gw_budgets_sweep(t, 1000000), 0);
  gw_budgets_release(t, h);
  assert_int_equal(gw_budgets_sweep(t, 1000000), 1);
  assert_true(gw_budgets_check(t));
  gw_budgets_free(t);
}

/* Bytes (pings included) are charged after the fact: a debt pauses reading, a debt beyond a
 * whole burst is a flood, and the bucket recovers at its rate. */
static void test_budget_bytes_pause_then_close(void **state) {
  (void)state;
  gw_budgets *t = table();
  gw_budget *b = gw_budgets_acquire(t, GW_ROLE_DRIVER, "d", 0);
  assert_int_equal(gw_budget_rx_charge(b, 4000, 0), GW_RX_OK);   /* the whole burst */
  assert_int_equal(gw_budget_rx_charge(b, 500, 0), GW_RX_PAUSE); /* 500 in debt */
  assert_int_equal(gw_budget_rx_charge(b, 0, 400), GW_RX_PAUSE); /* -100 */
  assert_int_equal(gw_budget_rx_charge(b, 0, 500), GW_RX_OK);    /* out of debt at 1000 B/s */
  assert_int_equal(gw_budget_rx_charge(b, 4000, 500), GW_RX_PAUSE);
  assert_int_equal(gw_budget_rx_charge(b, 100, 500), GW_RX_CLOSE); /* -4100 < -burst */
  gw_budgets_free(t);
}

static void test_budget_refuses_bad_keys(void **state) {
  (void)state;
  gw_budgets *t = table();
  assert_null(gw_budgets_acquire(t, GW_ROLE_RIDER, "", 0));
  assert_null(gw_budgets_acquire(t, GW_ROLE_RIDER, "a b", 0));
  assert_null(gw_budgets_acquire(t, (gw_role)7, "a", 0));
  assert_int_equal(gw_budgets_count(t), 0);
  gw_budgets_free(t);
  gw_budgets_free(NULL);
}

/* Many users: the table stays consistent through acquires, releases and sweeps. */
static void test_budget_table_invariants_under_churn(void **state) {
  (void)state;
  gw_budgets *t = table();
  gw_budget *held[2000];
  char id[32];
  for (int i = 0; i < 2000; i++) {
    snprintf(id, sizeof id, "user-%d", i % 1500);
    held[i] = gw_budgets_acquire(t, (gw_role)(i % 2), id, i);
    assert_non_null(held[i]);
    gw_bucket_take(&held[i]->msgs, i);
  }
  assert_true(gw_budgets_check(t));
  for (int i = 0; i < 2000; i += 2) gw_budgets_release(t, held[i]);
  gw_budgets_sweep(t, 100000);
  assert_true(gw_budgets_check(t));
  for (int i = 1; i < 2000; i += 2) gw_budgets_release(t, held[i]);
  gw_budgets_sweep(t, 200000);
  assert_int_equal(gw_budgets_count(t), 0);
  assert_true(gw_budgets_check(t));
  gw_budgets_free(t);
}

/* New connections per address: the burst, then the rate; other addresses unaffected; full
 * buckets are swept. */
static void test_iprate_limits_each_address(void **state) {
  (void)state;
  gw_iprate *r = gw_iprate_new(10, 20);
  assert_non_null(r);
  int ok = 0;
  for (int i = 0; i < 3000; i++) ok += gw_iprate_allow(r, "10.0.0.1", 0); /* 3000 in one instant */
  assert_int_equal(ok, 20);
  assert_true(gw_iprate_allow(r, "10.0.0.2", 0));
  assert_false(gw_iprate_allow(r, "10.0.0.1", 99));
  assert_true(gw_iprate_allow(r, "10.0.0.1", 100)); /* 10/s */
  assert_int_equal(gw_iprate_count(r), 2);
  assert_int_equal(gw_iprate_sweep(r, 50), 0);
  assert_int_equal(gw_iprate_sweep(r, 2200), 2);
  assert_int_equal(gw_iprate_count(r), 0);
  /* an address longer than GW_IP_MAX is cut, not overflowed */
  char longip[200];
  memset(longip, '9', sizeof longip - 1);
  longip[sizeof longip - 1] = '\0';
  assert_true(gw_iprate_allow(r, longip, 0));
  gw_iprate_free(r);
  gw_iprate_free(NULL);
}

/* The cap answers 503 and costs the address nothing; the address rate answers 429. */
static void test_admit_cap_then_address_rate(void **state) {
  (void)state;
  gw_iprate *r = gw_iprate_new(1, 2);
  assert_int_equal(gw_admit(r, "a", 10, 10, 0), GW_ADMIT_FULL);
  assert_int_equal(gw_admit(r, "a", 11, 10, 0), GW_ADMIT_FULL);
  assert_int_equal(gw_admit(r, "a", 9, 10, 0), GW_ADMIT_OK);
  assert_int_equal(gw_admit(r, "a", 9, 10, 0), GW_ADMIT_OK);
  assert_int_equal(gw_admit(r, "a", 9, 10, 0), GW_ADMIT_IP_RATE);
  assert_int_equal(gw_admit(r, "b", 9, 0, 0), GW_ADMIT_OK); /* 0 = no cap */
  assert_int_equal(gw_admit(r, "a", 100000, 0, 1000), GW_ADMIT_OK);
  assert_int_equal((int)GW_ADMIT_FULL, 503);
  assert_int_equal((int)GW_ADMIT_IP_RATE, 429);
  gw_iprate_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_budget_is_shared_by_a_users_connections),
      cmocka_unit_test(test_budget_outlives_its_connections_until_refilled),
      cmocka_unit_test(test_budget_bytes_pause_then_close),
      cmocka_unit_test(test_budget_refuses_bad_keys),
      cmocka_unit_test(test_budget_table_invariants_under_churn),
      cmocka_unit_test(test_iprate_limits_each_address),
      cmocka_unit_test(test_admit_cap_then_address_rate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
