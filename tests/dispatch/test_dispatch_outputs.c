/*
 * test_dispatch_outputs.c: the core under allocation failure, as libgeo's failure-injection
 * tests run it. malloc, calloc and realloc are wrapped at link time (-Wl,--wrap, this
 * test's CMakeLists), so the n-th allocation of the core (and of libgeo under it) fails.
 * A scripted day (pings, requests, decline, offline, accept, trip steps, expiry, cancel, no
 * driver; and one in batched mode) is run once per allocation, that one failing (and once with
 * every allocation from it on failing): every command either does its work or refuses with
 * DSP_ENOMEM having queued nothing, every event follows the transition table with seq + 1
 * (no event lost: check_and_clear), dsp_check holds after every step and nothing leaks
 * (ASan). And the output list itself: an output the list has no room for, with no memory
 * to grow it, is counted in outputs_lost (dsp_stats), not dropped silently; and dsp_check
 * reports a broken invariant.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch_internal.h"
#include "dsp_fixture.h"

/* ---------------------------------------------------------------- failing allocator */

/* Counts allocation calls while armed; fails call number fail_at (1-based; 0: never), or
 * with fail_after every call from fail_at on. */
static struct {
  bool armed;
  long calls, fail_at;
  bool fail_after;
} fa;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static bool fail_now(void) {
  if (!fa.armed) return false;
  fa.calls++;
  return fa.fail_at && (fa.calls == fa.fail_at || (fa.fail_after && fa.calls > fa.fail_at));
}

void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return fail_now() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }

static void fa_arm(long fail_at, bool fail_after) {
  fa.calls = 0;
  fa.fail_at = fail_at;
  fa.fail_after = fail_after;
  fa.armed = true;
}

/* ---------------------------------------------------------------- the scripted day */

typedef struct run_stats {
  size_t enomem; /* commands refused with DSP_ENOMEM */
  size_t events; /* events seen */
} run_stats;

/* After one command: its rc is success, a refusal, or DSP_ENOMEM with nothing queued;
 * the shard's invariants hold; the events follow the table (check_and_clear). */
static void after(fixture *f, int rc, run_stats *rs) {
  if (rc == DSP_ENOMEM) {
    rs->enomem++;
    if (n_events(f->s, 0) != 0 || n_replies(f->s) != 0)
      fail_msg("DSP_ENOMEM after queueing %zu events, %zu replies", n_events(f->s, 0),
               n_replies(f->s));
  } else if (rc != DSP_OK && rc != DSP_ESTATE && rc != DSP_EUNKNOWN_OFFER && rc != DSP_ERANGE &&
             rc != DSP_ESTALE) {
    fail_msg("unexpected rc %d (%s)", rc, dsp_strerror(rc));
  }
  char why[256];
  if (dsp_check(f->s, why, sizeof why) != DSP_OK) fail_msg("dsp_check: %s", why);
  rs->events += n_events(f->s, 0);
  check_and_clear(f);
}

/* The offered driver and offer of rider's request, "" when there is none. */
static void offer_of(fixture *f, const char *rider, const char *req, char *driver, char *offer,
                     char *trip) {
  driver[0] = offer[0] = trip[0] = '\0';
  dsp_trip_view v;
  if (dsp_trip_find(f->s, rider, req, trip) != DSP_OK || dsp_trip_get(f->s, trip, &v) != DSP_OK)
    return;
  strcpy(driver, v.driver_id);
  strcpy(offer, v.offer_id);
}

static void day(fixture *f, run_stats *rs) {
  char d[DSP_ID_MAX + 1], o[DSP_ID_MAX + 1], t[DSP_ID_MAX + 1];
  int64_t now = 1000;
  static const double lat[] = {40.751, 40.752, 40.749, 40.753};
  char id[16];
  for (int i = 0; i < 4; i++) {
    snprintf(id, sizeof id, "d%d", i + 1);
    after(f, ping(f, id, lat[i], -73.99, 1, now), rs);
  }
  /* a ride to the end, through a decline */
  after(f, request(f, "r1", "q1", 40.75, -73.99, ++now), rs);
  offer_of(f, "r1", "q1", d, o, t);
  after(f, dsp_on_decline(f->s, o[0] ? o : "o-none", d[0] ? d : "d1", NULL, ++now), rs);
  offer_of(f, "r1", "q1", d, o, t);
  after(f, dsp_on_accept(f->s, o[0] ? o : "o-none", d[0] ? d : "d1", NULL, ++now), rs);
  after(f, dsp_on_arrived(f->s, t[0] ? t : "t-none", d[0] ? d : "d1", NULL, ++now), rs);
  after(f, dsp_on_start(f->s, t[0] ? t : "t-none", d[0] ? d : "d1", NULL, ++now), rs);
  after(f, dsp_on_complete(f->s, t[0] ? t : "t-none", d[0] ? d : "d1", NULL, ++now), rs);
  /* an offered driver goes offline; the next offer expires; the rider cancels */
  after(f, request(f, "r2", "q2", 40.75, -73.99, ++now), rs);
  offer_of(f, "r2", "q2", d, o, t);
  after(f, dsp_on_status(f->s, d[0] ? d : "d1", false, NULL, ++now), rs);
  now += f->cfg.offer_timeout_ms;
  dsp_tick(f->s, now);
  after(f, DSP_OK, rs);
  after(f, dsp_on_cancel(f->s, "q2", "r2", NULL, ++now), rs);
  /* matched, then the driver goes offline on his way */
  after(f, request(f, "r3", "q3", 40.75, -73.99, ++now), rs);
  offer_of(f, "r3", "q3", d, o, t);
  after(f, dsp_on_accept(f->s, o[0] ? o : "o-none", d[0] ? d : "d1", NULL, ++now), rs);
  after(f, dsp_on_status(f->s, d[0] ? d : "d1", false, NULL, ++now), rs);
  /* out of the area: no driver */
  after(f, request(f, "r4", "q4", 41.5, -73.99, ++now), rs);
  /* ended trips are forgotten */
  now += f->cfg.trip_retention_ms + f->cfg.driver_ttl_ms;
  dsp_tick(f->s, now);
  after(f, DSP_OK, rs);
}

/* Batched: three requests wait for the window, are assigned together, accepted. */
static void batch_day(fixture *f, run_stats *rs) {
  char d[DSP_ID_MAX + 1], o[DSP_ID_MAX + 1], t[DSP_ID_MAX + 1], id[16], req[16];
  int64_t now = 1000;
  for (int i = 0; i < 4; i++) {
    snprintf(id, sizeof id, "d%d", i + 1);
    after(f, ping(f, id, 40.749 + 0.001 * i, -73.99, 1, now), rs);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(id, sizeof id, "r%d", i + 1);
    snprintf(req, sizeof req, "q%d", i + 1);
    after(f, request(f, id, req, 40.75 + 0.001 * i, -73.99, ++now), rs);
  }
  now += f->cfg.batch.window_ms;
  dsp_tick(f->s, now);
  after(f, DSP_OK, rs);
  for (int i = 0; i < 3; i++) {
    snprintf(id, sizeof id, "r%d", i + 1);
    snprintf(req, sizeof req, "q%d", i + 1);
    offer_of(f, id, req, d, o, t);
    after(f, dsp_on_accept(f->s, o[0] ? o : "o-none", d[0] ? d : "d1", NULL, ++now), rs);
  }
  after(f, dsp_on_cancel(f->s, "q1", "r1", NULL, ++now), rs);
  now += f->cfg.trip_retention_ms + f->cfg.driver_ttl_ms;
  dsp_tick(f->s, now);
  after(f, DSP_OK, rs);
}

static fixture *day_fixture(bool batched) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  fixture_init(f);
  fixture_city(f);
  f->cfg.trip_retention_ms = 60000;
  if (batched) f->cfg.batch = (dsp_batch_config){true, 500, 8, 8};
  fixture_start(f);
  return f;
}

/* One run of the day with allocation fail_at failing (and those after it, fail_after). */
static run_stats oom_run(bool batched, long fail_at, bool fail_after, long *calls) {
  fixture *f = day_fixture(batched);
  run_stats rs = {0};
  fa_arm(fail_at, fail_after);
  if (batched)
    batch_day(f, &rs);
  else
    day(f, &rs);
  fa.armed = false;
  if (calls) *calls = fa.calls;
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  if (st.outputs_lost != 0)
    fail_msg("fail_at %ld%s: %llu outputs lost", fail_at, fail_after ? "+" : "",
             (unsigned long long)st.outputs_lost);
  fixture_close(f);
  free(f);
  return rs;
}

static void sweep(bool batched) {
  long calls = 0;
  run_stats clean = oom_run(batched, 0, false, &calls);
  assert_int_equal(clean.enomem, 0);
  assert_true(clean.events >= (batched ? 10u : 20u)); /* the day does happen */
  assert_true(calls > 10);
  size_t refused = 0, runs = 0;
  for (long k = 1; k <= calls; k++) {
    run_stats one = oom_run(batched, k, false, NULL);
    run_stats rest = oom_run(batched, k, true, NULL);
    refused += one.enomem + rest.enomem;
    runs += 2;
  }
  fprintf(stderr,
          "%s: %ld allocations in the day, %zu events; %zu runs, %zu commands refused "
          "DSP_ENOMEM\n",
          batched ? "batched" : "immediate", calls, clean.events, runs, refused);
  assert_true(refused > 0); /* the failures did reach the commands */
}

static void test_every_allocation_failing_in_turn_leaves_a_consistent_shard(void **state) {
  (void)state;
  sweep(false);
}

static void test_every_allocation_failing_in_turn_in_batched_mode(void **state) {
  (void)state;
  sweep(true);
}

/* ---------------------------------------------------------------- the output list */

static void test_an_output_with_no_room_and_no_memory_is_counted_lost(void **state) {
  (void)state;
  fixture *f = day_fixture(false);
  assert_int_equal(ping(f, "d1", 40.751, -73.99, 1, 1000), DSP_OK);
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 1001), DSP_OK);
  char trip[DSP_ID_MAX + 1];
  assert_int_equal(dsp_trip_find(f->s, "r1", "q1", trip), DSP_OK);
  check_and_clear(f);
  /* Fill the list to its capacity (with the trip's snapshot), so that the next output
   * needs it to grow. */
  dsp_shard *s = f->s;
  dsp_trip *t = dsp_strmap_get(&s->trips, trip);
  assert_non_null(t);
  while (s->n_out < s->cap_out) dsp__snapshot(s, t, 1002);
  size_t n = s->n_out;
  dsp_stats st;
  dsp_stats_get(s, &st);
  assert_int_equal(st.outputs_lost, 0);

  /* With no memory, a command refuses before it changes anything ... */
  fa_arm(1, true);
  assert_int_equal(dsp_on_cancel(s, "q1", "r1", NULL, 1003), DSP_ENOMEM);
  dsp_trip_view v;
  assert_int_equal(dsp_trip_get(s, trip, &v), DSP_OK);
  assert_int_equal(v.state, DSP_TRIP_OFFERED);
  /* ... and an output queued past the reserve is counted, not dropped silently. */
  dsp__snapshot(s, t, 1003);
  fa.armed = false;
  assert_int_equal(s->n_out, n);
  dsp_stats_get(s, &st);
  assert_int_equal(st.outputs_lost, 1);

  /* Memory again: the list grows and the next command's events are queued. */
  dsp_outputs_clear(s);
  assert_int_equal(dsp_on_cancel(s, "q1", "r1", NULL, 1004), DSP_OK);
  const dsp_event *e = last_event(s);
  assert_non_null(e);
  assert_int_equal(e->type, DSP_EV_CANCELLED);
  dsp_outputs_clear(s);
  dsp_stats_get(s, &st);
  assert_int_equal(st.outputs_lost, 1);
  fixture_close(f);
  free(f);
}

static void test_dsp_check_reports_a_broken_invariant(void **state) {
  (void)state;
  fixture *f = day_fixture(false);
  assert_int_equal(ping(f, "d1", 40.751, -73.99, 1, 1000), DSP_OK);
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 1001), DSP_OK);
  char trip[DSP_ID_MAX + 1], why[256];
  assert_int_equal(dsp_trip_find(f->s, "r1", "q1", trip), DSP_OK);
  assert_int_equal(dsp_check(f->s, why, sizeof why), DSP_OK);
  assert_string_equal(why, "");
  dsp_trip *t = dsp_strmap_get(&f->s->trips, trip);
  assert_non_null(t);
  assert_int_equal(t->state, DSP_TRIP_OFFERED);
  t->claimed = false; /* an offer without its claim */
  assert_int_equal(dsp_check(f->s, why, sizeof why), DSP_ESTATE);
  assert_non_null(strstr(why, "claimed"));
  t->claimed = true;
  t->driver->state = DSP_DRIVER_AVAILABLE; /* the offered driver thinks he is free */
  assert_int_equal(dsp_check(f->s, why, sizeof why), DSP_ESTATE);
  assert_non_null(strstr(why, "d1"));
  t->driver->state = DSP_DRIVER_OFFERED;
  assert_int_equal(dsp_check(f->s, NULL, 0), DSP_OK);
  fixture_close(f);
  free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_allocation_failing_in_turn_leaves_a_consistent_shard),
      cmocka_unit_test(test_every_allocation_failing_in_turn_in_batched_mode),
      cmocka_unit_test(test_an_output_with_no_room_and_no_memory_is_counted_lost),
      cmocka_unit_test(test_dsp_check_reports_a_broken_invariant),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
