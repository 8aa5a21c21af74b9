/*
 * test_dispatch_lease_worker.c: the lease store on its own thread (lease_worker.h) against
 * the stack's real PostgreSQL (table shard_leases), on shard 63, which the stack's shards
 * never use (its row is deleted before and after).
 *
 * What it shows: acquire, renew and release answer as lease_pg.h says, one holder at a
 * time; one operation in flight; a statement blocked in PostgreSQL (its row locked by
 * another transaction) never blocks the caller, whose take answers at once, and its
 * answer keeps the time of the post; a store that cannot be reached answers UNREACHABLE
 * with the error; bad arguments are refused.
 *
 * Needs the stack (.run/env: MERIDIAN_PG_DSN, the service's role, as dispatch; and
 * MERIDIAN_PG_ADMIN_DSN for the row's cleanup and the lock).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch.h"
#include "itest.h"
#include "lease_worker.h"
#include "mrd/pg.h"

#define SHARD 63

static void clear_row(mrd_pg *pg) {
  const char *p[] = {"63"};
  assert_int_equal(
      mrd_pg_exec(pg, NULL, "DELETE FROM shard_leases WHERE shard = $1::integer", 1, p), 0);
}

/* The answer of the operation in flight, waited for (5 s at most). */
static dsp_lease_result answer(dsp_lease_worker *w) {
  dsp_lease_result r;
  memset(&r, 0, sizeof r);
  assert_true(dsp_lease_worker_wait(w, 5000, &r));
  assert_false(dsp_lease_worker_busy(w));
  return r;
}

static void test_one_holder_renew_release(void **state) {
  (void)state;
  const char *dsn = itest_env("MERIDIAN_PG_DSN");
  mrd_pg *pg = NULL; /* the owner's: the service role may not delete a lease */
  assert_int_equal(mrd_pg_new(itest_env("MERIDIAN_PG_ADMIN_DSN"), NULL, &pg), 0);
  clear_row(pg);
  dsp_lease_worker *a = NULL, *b = NULL;
  assert_int_equal(dsp_lease_worker_start(dsn, SHARD, "itest-a", 1111, 5000, &a), DSP_OK);
  assert_int_equal(dsp_lease_worker_start(dsn, SHARD, "itest-b", 2222, 5000, &b), DSP_OK);

  /* nothing posted: nothing to take or wait for */
  dsp_lease_result r;
  assert_false(dsp_lease_worker_busy(a));
  assert_false(dsp_lease_worker_take(a, &r));
  assert_false(dsp_lease_worker_wait(a, 10, &r));

  /* a acquires; a second post before the answer is taken is refused */
  assert_int_equal(dsp_lease_worker_post(a, DSP_LEASE_OP_ACQUIRE, 0, 1234), DSP_OK);
  assert_true(dsp_lease_worker_busy(a));
  assert_int_equal(dsp_lease_worker_post(a, DSP_LEASE_OP_RENEW, 1, 1235), DSP_ESTATE);
  r = answer(a);
  assert_int_equal(r.op, DSP_LEASE_OP_ACQUIRE);
  assert_int_equal(r.sent_ms, 1234);
  assert_int_equal(r.answer, DSP_LEASE_GRANTED);
  uint64_t g = r.generation;
  assert_true(g >= 1);
  assert_true(r.took_ms >= 0);

  /* b finds it taken and names the holder */
  assert_int_equal(dsp_lease_worker_post(b, DSP_LEASE_OP_ACQUIRE, 0, 1), DSP_OK);
  r = answer(b);
  assert_int_equal(r.answer, DSP_LEASE_TAKEN);
  char want[200];
  snprintf(want, sizeof want, "itest-a pid 1111 generation %llu", (unsigned long long)g);
  assert_string_equal(r.holder, want);

  /* renew: the holder's generation is granted, another is TAKEN */
  assert_int_equal(dsp_lease_worker_post(a, DSP_LEASE_OP_RENEW, g, 2), DSP_OK);
  r = answer(a);
  assert_int_equal(r.op, DSP_LEASE_OP_RENEW);
  assert_int_equal(r.answer, DSP_LEASE_GRANTED);
  assert_int_equal(dsp_lease_worker_post(b, DSP_LEASE_OP_RENEW, g + 5, 3), DSP_OK);
  assert_int_equal(answer(b).answer, DSP_LEASE_TAKEN);

  /* release, only while idle; then b acquires the next generation at once */
  assert_int_equal(dsp_lease_worker_post(a, DSP_LEASE_OP_RENEW, g, 4), DSP_OK);
  assert_int_equal(dsp_lease_worker_release(a, g, 2000), DSP_ESTATE);
  assert_int_equal(answer(a).answer, DSP_LEASE_GRANTED);
  assert_int_equal(dsp_lease_worker_release(a, g, 2000), DSP_OK);
  assert_false(dsp_lease_worker_busy(a));
  assert_int_equal(dsp_lease_worker_post(b, DSP_LEASE_OP_ACQUIRE, 0, 5), DSP_OK);
  r = answer(b);
  assert_int_equal(r.answer, DSP_LEASE_GRANTED);
  assert_int_equal(r.generation, g + 1);
  /* a's old generation is fenced */
  assert_int_equal(dsp_lease_worker_post(a, DSP_LEASE_OP_RENEW, g, 6), DSP_OK);
  assert_int_equal(answer(a).answer, DSP_LEASE_TAKEN);

  dsp_lease_worker_stop(a);
  dsp_lease_worker_stop(b);
  clear_row(pg);
  mrd_pg_free(pg);
}

/* A renew blocked in PostgreSQL for ~300 ms: the caller's take and busy answer at once
 * all the while, and the answer, when it comes, carries the post's time. */
static void test_blocked_statement_does_not_block_the_caller(void **state) {
  (void)state;
  const char *dsn = itest_env("MERIDIAN_PG_DSN");
  mrd_pg *pg = NULL; /* the owner's: the service role may not delete a lease */
  assert_int_equal(mrd_pg_new(itest_env("MERIDIAN_PG_ADMIN_DSN"), NULL, &pg), 0);
  clear_row(pg);
  dsp_lease_worker *w = NULL;
  assert_int_equal(dsp_lease_worker_start(dsn, SHARD, "itest-w", 3333, 5000, &w), DSP_OK);
  assert_int_equal(dsp_lease_worker_post(w, DSP_LEASE_OP_ACQUIRE, 0, 10), DSP_OK);
  dsp_lease_result r = answer(w);
  assert_int_equal(r.answer, DSP_LEASE_GRANTED);
  uint64_t g = r.generation;

  const char *p[] = {"63"};
  assert_int_equal(mrd_pg_begin(pg), 0);
  assert_int_equal(mrd_pg_exec(pg, NULL,
                               "SELECT 1 FROM shard_leases WHERE shard = $1::integer FOR UPDATE", 1,
                               p),
                   0);
  int64_t posted = itest_now_ms();
  assert_int_equal(dsp_lease_worker_post(w, DSP_LEASE_OP_RENEW, g, posted), DSP_OK);
  int64_t slowest_us = 0;
  int turns = 0;
  while (itest_now_ms() - posted < 300) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool got = dsp_lease_worker_take(w, &r);
    bool busy = dsp_lease_worker_busy(w);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_false(got); /* the row is locked: the UPDATE waits */
    assert_true(busy);
    int64_t us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    if (us > slowest_us) slowest_us = us;
    turns++;
    itest_sleep_ms(5);
  }
  assert_true(turns >= 10);
  assert_true(slowest_us < 50000); /* a mutex, never the statement: far below its 300 ms */
  assert_int_equal(mrd_pg_commit(pg), 0);
  r = answer(w);
  assert_int_equal(r.answer, DSP_LEASE_GRANTED);
  assert_int_equal(r.sent_ms, posted);
  assert_true(r.took_ms >= 250);

  /* blocked again: a wait and a release that do not come in time say so */
  assert_int_equal(mrd_pg_begin(pg), 0);
  assert_int_equal(mrd_pg_exec(pg, NULL,
                               "SELECT 1 FROM shard_leases WHERE shard = $1::integer FOR UPDATE", 1,
                               p),
                   0);
  assert_int_equal(dsp_lease_worker_post(w, DSP_LEASE_OP_RENEW, g, 11), DSP_OK);
  itest_sleep_ms(50);
  assert_false(dsp_lease_worker_wait(w, 50, &r)); /* not in time */
  assert_int_equal(dsp_lease_worker_release(w, g, 50), DSP_ESTATE);
  assert_int_equal(mrd_pg_commit(pg), 0);
  dsp_lease_worker_stop(w);
  clear_row(pg);
  mrd_pg_free(pg);
}

static void test_unreachable_store_and_bad_arguments(void **state) {
  (void)state;
  dsp_lease_worker *w = NULL;
  int port = itest_free_port();
  char dsn[160];
  snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%d dbname=x user=x connect_timeout=2", port);
  assert_int_equal(dsp_lease_worker_start(dsn, SHARD, "itest-u", 4444, 5000, &w), DSP_OK);
  assert_int_equal(dsp_lease_worker_post(w, DSP_LEASE_OP_ACQUIRE, 0, 7), DSP_OK);
  dsp_lease_result r = answer(w);
  assert_int_equal(r.answer, DSP_LEASE_UNREACHABLE);
  assert_true(strlen(r.err) > 0);
  assert_int_equal(dsp_lease_worker_post(w, DSP_LEASE_OP_RENEW, 3, 8), DSP_OK);
  assert_int_equal(answer(w).answer, DSP_LEASE_UNREACHABLE);
  assert_int_equal(dsp_lease_worker_release(w, 3, 2000), DSP_ENOTFOUND);
  assert_int_equal(dsp_lease_worker_post(w, DSP_LEASE_OP_NONE, 0, 9), DSP_EINVAL);
  dsp_lease_worker_stop(w);
  dsp_lease_worker_stop(NULL);

  w = NULL;
  assert_int_equal(dsp_lease_worker_start(NULL, SHARD, "h", 1, 5000, &w), DSP_EINVAL);
  assert_int_equal(dsp_lease_worker_start(dsn, 64, "h", 1, 5000, &w), DSP_EINVAL);
  assert_int_equal(dsp_lease_worker_start(dsn, -1, "h", 1, 5000, &w), DSP_EINVAL);
  assert_int_equal(dsp_lease_worker_start(dsn, SHARD, "h", 1, 0, &w), DSP_EINVAL);
  assert_int_equal(dsp_lease_worker_start(dsn, SHARD, NULL, 1, 5000, &w), DSP_EINVAL);
  assert_null(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_holder_renew_release),
      cmocka_unit_test(test_blocked_statement_does_not_block_the_caller),
      cmocka_unit_test(test_unreachable_store_and_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
