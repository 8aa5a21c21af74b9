/*
 * test_dispatch_lease.c: the shard lease's state machine (lease.h) against a model of the
 * store that behaves as shard_leases does (acquire when expired, generation + 1; renew by
 * generation; the store's clock sets the expiry when it executes a statement). Scenarios:
 * the first process acquires and renews; a standby waits; kill -9 of the holder (the
 * standby takes over within ttl + retry); a SIGSTOPped holder stops acting before anyone
 * can acquire and steps down at its first renew after SIGCONT; an unreachable store
 * pauses the holder without losing the lease; answers that do not fit are ignored.
 * The random test runs processes with random pauses and store outages and checks, at
 * every step, that no two processes may act at once and that a process acting holds the
 * store's current generation. Prints its seed; SEED=n replays.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch.h"
#include "lease.h"

/* The store: one row (generation, expires_at, holder). */
typedef struct store {
  uint64_t generation;
  int64_t expires_ms;
  int holder;
  bool down;
} store;

static dsp_lease_answer store_acquire(store *st, int who, int64_t at_ms, uint64_t *gen) {
  if (st->down) return DSP_LEASE_UNREACHABLE;
  if (st->generation > 0 && st->expires_ms > at_ms) return DSP_LEASE_TAKEN;
  st->generation++;
  st->holder = who;
  st->expires_ms = at_ms + 5000;
  *gen = st->generation;
  return DSP_LEASE_GRANTED;
}

static dsp_lease_answer store_renew(store *st, uint64_t gen, int64_t at_ms) {
  if (st->down) return DSP_LEASE_UNREACHABLE;
  if (gen != st->generation) return DSP_LEASE_TAKEN;
  st->expires_ms = at_ms + 5000;
  return DSP_LEASE_GRANTED;
}

/* One step of process `who` at now_ms: the operation due, answered by the store at
 * now_ms + delay_ms (the store's statement runs between send and answer). */
static dsp_lease_change step(dsp_lease *l, store *st, int who, int64_t now_ms, int64_t delay_ms) {
  dsp_lease_op op = dsp_lease_due(l, now_ms);
  if (op == DSP_LEASE_OP_NONE) return DSP_LEASE_SAME;
  uint64_t gen = 0;
  int64_t at = now_ms + delay_ms / 2;
  dsp_lease_answer a = op == DSP_LEASE_OP_ACQUIRE ? store_acquire(st, who, at, &gen)
                                                  : store_renew(st, l->generation, at);
  dsp_lease_change ch = dsp_lease_answered(l, op, now_ms, now_ms + delay_ms, a, gen);
  assert_true(dsp_lease_check(l));
  return ch;
}

static void init(dsp_lease *l) {
  dsp_lease_config c;
  dsp_lease_config_default(&c);
  assert_int_equal(dsp_lease_init(l, &c), DSP_OK);
  assert_true(dsp_lease_check(l));
}

static void test_lease_rejects_a_config_that_would_pause_between_renews(void **state) {
  (void)state;
  dsp_lease l;
  dsp_lease_config c;
  dsp_lease_config_default(&c);
  c.ttl_ms = c.margin_ms + c.renew_ms; /* would stop acting right at each renew */
  assert_int_equal(dsp_lease_init(&l, &c), DSP_EINVAL);
  dsp_lease_config_default(&c);
  c.retry_ms = 0;
  assert_int_equal(dsp_lease_init(&l, &c), DSP_EINVAL);
  assert_int_equal(dsp_lease_init(NULL, &c), DSP_EINVAL);
}

static void test_lease_first_process_acquires_and_renews_every_second(void **state) {
  (void)state;
  store st = {0};
  dsp_lease a;
  init(&a);
  assert_false(dsp_lease_may_act(&a, 0));
  assert_int_equal(dsp_lease_due(&a, 0), DSP_LEASE_OP_ACQUIRE);
  assert_int_equal(step(&a, &st, 1, 0, 2), DSP_LEASE_ACQUIRED);
  assert_int_equal(a.generation, 1);
  assert_true(dsp_lease_may_act(&a, 2));
  assert_int_equal(dsp_lease_due(&a, 500), DSP_LEASE_OP_NONE);
  assert_int_equal(dsp_lease_due(&a, 1000), DSP_LEASE_OP_RENEW);
  for (int64_t t = 1000; t <= 60000; t += 1000) {
    assert_int_equal(step(&a, &st, 1, t, 2), DSP_LEASE_SAME);
    assert_true(dsp_lease_may_act(&a, t + 999)); /* never a pause between renews */
  }
  assert_int_equal(a.generation, 1);
  assert_int_equal(a.acquired, 1);
  assert_int_equal(a.lost, 0);
}

static void test_lease_second_process_waits_as_standby(void **state) {
  (void)state;
  store st = {0};
  dsp_lease a, b;
  init(&a);
  init(&b);
  step(&a, &st, 1, 0, 1);
  for (int64_t t = 0; t <= 30000; t += 100) {
    step(&a, &st, 1, t, 1);
    assert_int_equal(step(&b, &st, 2, t, 1), DSP_LEASE_SAME);
    assert_int_equal(b.role, DSP_LEASE_STANDBY);
    assert_false(dsp_lease_may_act(&b, t));
  }
  assert_int_equal(st.holder, 1);
}

static void test_lease_standby_takes_over_within_ttl_after_kill(void **state) {
  (void)state;
  store st = {0};
  dsp_lease a, b;
  init(&a);
  init(&b);
  int64_t t = 0;
  for (; t <= 10000; t += 50) { /* a holds, b waits */
    step(&a, &st, 1, t, 1);
    step(&b, &st, 2, t, 1);
  }
  int64_t killed = t, last_renew = st.expires_ms - 5000;
  int64_t took = -1;
  for (; t <= killed + 20000 && took < 0; t += 50) /* a is gone: only b runs */
    if (step(&b, &st, 2, t, 1) == DSP_LEASE_ACQUIRED) took = t;
  assert_true(took > 0);
  assert_int_equal(b.generation, 2);
  /* no sooner than the store's expiry, no later than expiry + one retry (+ the step) */
  assert_true(took >= last_renew + 5000);
  assert_true(took <= last_renew + 5000 + b.cfg.retry_ms + 50);
  assert_true(took - killed <= 5000 + b.cfg.retry_ms + 50);
}

static void test_lease_stopped_holder_stops_acting_then_steps_down(void **state) {
  (void)state;
  store st = {0};
  dsp_lease a, b;
  init(&a);
  init(&b);
  int64_t t = 0;
  for (; t < 5000; t += 50) {
    step(&a, &st, 1, t, 1);
    step(&b, &st, 2, t, 1);
  }
  int64_t stop = t; /* SIGSTOP of a: it runs no step until t = stop + 10 s */
  int64_t b_acts = -1;
  for (; t < stop + 10000; t += 50) {
    if (step(&b, &st, 2, t, 1) == DSP_LEASE_ACQUIRED) b_acts = t;
    /* whenever b may act, a's own clock already says it may not */
    if (dsp_lease_may_act(&b, t)) assert_false(dsp_lease_may_act(&a, t));
  }
  assert_true(b_acts > 0);
  /* SIGCONT: before anything else, a may not act; its renew finds generation 2: LOST */
  assert_false(dsp_lease_may_act(&a, t));
  assert_int_equal(dsp_lease_due(&a, t), DSP_LEASE_OP_RENEW);
  assert_int_equal(step(&a, &st, 1, t, 1), DSP_LEASE_LOST);
  assert_int_equal(a.role, DSP_LEASE_STANDBY);
  assert_int_equal(a.lost, 1);
  assert_int_equal(a.generation, 1); /* the last held, for the metrics */
  assert_false(dsp_lease_may_act(&a, t));
  /* and it now waits as the standby of b */
  for (t += 50; t < stop + 20000; t += 50) {
    step(&b, &st, 2, t, 1);
    assert_int_equal(step(&a, &st, 1, t, 1), DSP_LEASE_SAME);
    assert_true(dsp_lease_may_act(&b, t + 1));
  }
}

static void test_lease_unreachable_store_pauses_without_losing(void **state) {
  (void)state;
  store st = {0};
  dsp_lease a;
  init(&a);
  step(&a, &st, 1, 0, 1);
  int64_t t = 1000;
  step(&a, &st, 1, t, 1);
  st.down = true;
  int64_t paused = -1;
  for (t = 1050; t < 20000; t += 50) {
    assert_int_equal(step(&a, &st, 1, t, 1), DSP_LEASE_SAME);
    if (paused < 0 && !dsp_lease_may_act(&a, t)) paused = t;
  }
  /* acting stops margin before the store could let the lease lapse (last renew + ttl) */
  assert_int_equal(paused, 1000 + 5000 - 1500);
  assert_int_equal(a.role, DSP_LEASE_HOLDER);
  st.down = false; /* back: nobody took it (same generation): resume at the next retry */
  t += a.cfg.retry_ms;
  assert_int_equal(dsp_lease_due(&a, t), DSP_LEASE_OP_RENEW);
  assert_int_equal(step(&a, &st, 1, t, 1), DSP_LEASE_SAME);
  assert_true(dsp_lease_may_act(&a, t + 1));
  assert_int_equal(a.generation, 1);
  assert_int_equal(a.lost, 0);
}

static void test_lease_ignores_answers_that_do_not_fit(void **state) {
  (void)state;
  dsp_lease a;
  init(&a);
  assert_int_equal(dsp_lease_answered(&a, DSP_LEASE_OP_RENEW, 0, 1, DSP_LEASE_TAKEN, 0),
                   DSP_LEASE_SAME);
  assert_int_equal(dsp_lease_answered(&a, DSP_LEASE_OP_ACQUIRE, 0, 1, DSP_LEASE_GRANTED, 0),
                   DSP_LEASE_SAME); /* a grant without a generation */
  assert_int_equal(a.role, DSP_LEASE_STANDBY);
  assert_int_equal(dsp_lease_answered(&a, DSP_LEASE_OP_ACQUIRE, 0, 1, DSP_LEASE_GRANTED, 7),
                   DSP_LEASE_ACQUIRED);
  assert_int_equal(dsp_lease_answered(&a, DSP_LEASE_OP_ACQUIRE, 2, 3, DSP_LEASE_GRANTED, 8),
                   DSP_LEASE_SAME);
  assert_int_equal(a.generation, 7);
  dsp_lease_released(&a, 10);
  assert_int_equal(a.role, DSP_LEASE_STANDBY);
  assert_int_equal(a.lost, 0);
  assert_true(dsp_lease_check(&a));
}

/* Random: 3 processes, random pauses (SIGSTOP), kills and restarts, store outages and
 * answer delays; at every step at most one may act, and it holds the store's generation. */
static void test_lease_random_never_two_act_at_once(void **state) {
  (void)state;
  unsigned seed = getenv("SEED") ? (unsigned)strtoul(getenv("SEED"), NULL, 10) : 12345u;
  printf("seed=%u (SEED= to replay)\n", seed);
  srand(seed);
  store st = {0};
  dsp_lease p[3];
  int64_t stopped_until[3] = {0};
  for (int i = 0; i < 3; i++) init(&p[i]);
  int takeovers = 0;
  for (int64_t t = 0; t < 600000; t += 10) {
    if (rand() % 2000 == 0) st.down = !st.down;
    for (int i = 0; i < 3; i++) {
      if (t < stopped_until[i]) continue;
      int r = rand() % 4000;
      if (r == 0)
        stopped_until[i] = t + rand() % 12000; /* SIGSTOP for up to 12 s */
      else if (r == 1)
        init(&p[i]); /* kill -9 and restart */
      if (step(&p[i], &st, i, t, rand() % 200) == DSP_LEASE_ACQUIRED) takeovers++;
    }
    int acting = 0;
    for (int i = 0; i < 3; i++) {
      /* a stopped process does nothing, but were it to look at its clock now... */
      if (dsp_lease_may_act(&p[i], t)) {
        acting++;
        assert_int_equal(p[i].generation, st.generation);
      }
    }
    assert_true(acting <= 1);
  }
  printf("takeovers=%d generation=%llu\n", takeovers, (unsigned long long)st.generation);
  assert_true(takeovers > 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lease_rejects_a_config_that_would_pause_between_renews),
      cmocka_unit_test(test_lease_first_process_acquires_and_renews_every_second),
      cmocka_unit_test(test_lease_second_process_waits_as_standby),
      cmocka_unit_test(test_lease_standby_takes_over_within_ttl_after_kill),
      cmocka_unit_test(test_lease_stopped_holder_stops_acting_then_steps_down),
      cmocka_unit_test(test_lease_unreachable_store_pauses_without_losing),
      cmocka_unit_test(test_lease_ignores_answers_that_do_not_fit),
      cmocka_unit_test(test_lease_random_never_two_act_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
