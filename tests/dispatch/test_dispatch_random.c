/*
 * test_dispatch_random.c: random sequences of pings, statuses, requests, answers, trip
 * steps, cancels and ticks against one shard (immediate and batched), checking after every
 * step that: every event follows the transition table with seq + 1 (check_and_clear); a
 * busy driver has exactly the trip that names him, in the matching state; a driver with a
 * live offer or trip holds the claim of that trip; an idle driver holds no trip; and the
 * core's own invariant checker (dsp_check) holds. Prints its seed; SEED=n replays.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dsp_fixture.h"

#define N_DRIVERS 12
#define N_RIDERS 8
#define MAX_TRIPS 400

typedef struct world {
  fixture f;
  int64_t now;
  uint64_t seq[N_DRIVERS];
  char trips[MAX_TRIPS][DSP_ID_MAX + 1];
  char reqs[MAX_TRIPS][DSP_ID_MAX + 1];
  int rider_of[MAX_TRIPS];
  size_t n_trips;
  int n_req;
} world;

static void drv(int i, char *out) { snprintf(out, 16, "d%d", i); }
static void rdr(int i, char *out) { snprintf(out, 16, "r%d", i); }

/* Learn the trips from the queued events, then validate and clear them. */
static void absorb(world *w) {
  for (size_t i = 0;; i++) {
    const dsp_event *e = event_at(w->f.s, DSP_EV_REQUESTED, i);
    if (!e) break;
    if (w->n_trips < MAX_TRIPS) {
      strcpy(w->trips[w->n_trips], e->trip_id);
      strcpy(w->reqs[w->n_trips], e->request_id);
      w->rider_of[w->n_trips] = atoi(e->rider_id + 1);
      w->n_trips++;
    }
  }
  check_and_clear(&w->f);
}

static void check_invariants(world *w) {
  char why[256];
  if (dsp_check(w->f.s, why, sizeof why) != DSP_OK) fail_msg("dsp_check: %s", why);
  char id[16];
  for (int i = 0; i < N_DRIVERS; i++) {
    drv(i, id);
    dsp_driver_view v;
    if (dsp_driver_get(w->f.s, id, &v) != DSP_OK) continue;
    bool busy = v.state == DSP_DRIVER_OFFERED || v.state == DSP_DRIVER_EN_ROUTE ||
                v.state == DSP_DRIVER_ON_TRIP;
    if (!busy) {
      if (v.trip_id[0]) fail_msg("idle %s holds trip %s", id, v.trip_id);
      continue;
    }
    dsp_trip_view t;
    if (dsp_trip_get(w->f.s, v.trip_id, &t) != DSP_OK)
      fail_msg("%s is %s on a missing trip %s", id, dsp_driver_state_name(v.state), v.trip_id);
    assert_string_equal(t.driver_id, id);
    dsp_trip_state want_trip = v.state == DSP_DRIVER_OFFERED   ? DSP_TRIP_OFFERED
                               : v.state == DSP_DRIVER_ON_TRIP ? DSP_TRIP_STARTED
                                                               : DSP_TRIP_MATCHED;
    if (!(t.state == want_trip || (want_trip == DSP_TRIP_MATCHED && t.state == DSP_TRIP_ARRIVED)))
      fail_msg("%s is %s but trip %s is %s", id, dsp_driver_state_name(v.state), v.trip_id,
               dsp_trip_state_name(t.state));
    const char *owner = dsp_claims_mem_owner(w->f.cm, id, w->now);
    if (!owner || !strstr(owner, v.trip_id))
      fail_msg("%s (%s, trip %s) claim owner is %s", id, dsp_driver_state_name(v.state), v.trip_id,
               owner ? owner : "nobody");
  }
  /* Every trip that names a driver in an active state is that driver's trip. */
  for (size_t i = 0; i < w->n_trips; i++) {
    dsp_trip_view t;
    if (dsp_trip_get(w->f.s, w->trips[i], &t) != DSP_OK) continue;
    if (t.state < DSP_TRIP_OFFERED || t.state > DSP_TRIP_STARTED) continue;
    dsp_driver_view v;
    assert_int_equal(dsp_driver_get(w->f.s, t.driver_id, &v), DSP_OK);
    assert_string_equal(v.trip_id, w->trips[i]);
    if (t.state == DSP_TRIP_OFFERED) assert_true(t.expires_at_ms > w->now - 1);
  }
}

static void step(world *w) {
  char id[16], rid[16], req[24];
  int op = rand() % 100;
  dsp_shard *s = w->f.s;
  if (op < 30) { /* ping, sometimes stale */
    int i = rand() % N_DRIVERS;
    drv(i, id);
    uint64_t seq = rand() % 10 == 0 && w->seq[i] > 0 ? w->seq[i] - 1 : ++w->seq[i];
    ping(&w->f, id, 40.74 + 0.001 * (rand() % 21), -74.0 + 0.001 * (rand() % 21), seq, w->now);
  } else if (op < 34) {
    drv(rand() % N_DRIVERS, id);
    dsp_on_status(s, id, rand() % 3 != 0, NULL, w->now);
  } else if (op < 46) {
    int r = rand() % N_RIDERS;
    rdr(r, rid);
    snprintf(req, sizeof req, "q%d", w->n_req++);
    dsp_request rq = {.request_id = req,
                      .rider_id = rid,
                      .pickup = {40.74 + 0.001 * (rand() % 21), -74.0 + 0.001 * (rand() % 21)}};
    rq.dropoff = (geo_latlng){40.745, -73.995};
    if (rand() % 20 == 0) rq.pickup.lat = 41.5; /* out of area */
    dsp_on_request(s, &rq, NULL, w->now);
  } else if (op < 80 && w->n_trips > 0) { /* something on a known trip */
    size_t k = (size_t)rand() % w->n_trips;
    dsp_trip_view t;
    if (dsp_trip_get(s, w->trips[k], &t) != DSP_OK) return;
    const char *who = t.driver_id[0] && rand() % 8 ? t.driver_id : "d0";
    if (rand() % 2) { /* the step the trip expects next, so trips do run to the end */
      switch (t.state) {
      case DSP_TRIP_OFFERED: dsp_on_accept(s, t.offer_id, who, NULL, w->now); return;
      case DSP_TRIP_MATCHED: dsp_on_arrived(s, w->trips[k], who, NULL, w->now); return;
      case DSP_TRIP_ARRIVED: dsp_on_start(s, w->trips[k], who, NULL, w->now); return;
      case DSP_TRIP_STARTED: dsp_on_complete(s, w->trips[k], who, NULL, w->now); return;
      default: break;
      }
    }
    switch (rand() % 8) {
    case 0:
    case 1: dsp_on_accept(s, t.offer_id[0] ? t.offer_id : "o3-x", who, NULL, w->now); break;
    case 2: dsp_on_decline(s, t.offer_id[0] ? t.offer_id : "o3-x", who, NULL, w->now); break;
    case 3: dsp_on_arrived(s, w->trips[k], who, NULL, w->now); break;
    case 4: dsp_on_start(s, w->trips[k], who, NULL, w->now); break;
    case 5: dsp_on_complete(s, w->trips[k], who, NULL, w->now); break;
    case 6:
      rdr(rand() % 6 ? w->rider_of[k] : rand() % N_RIDERS, rid);
      dsp_on_cancel(s, w->reqs[k], rid, NULL, w->now);
      break;
    default: dsp_on_driver_cancel(s, w->trips[k], who, NULL, NULL, w->now); break;
    }
  } else {
    w->now += rand() % 1500;
    dsp_tick(s, w->now);
  }
}

static void run(unsigned seed, bool batch) {
  world *w = calloc(1, sizeof *w);
  assert_non_null(w);
  fixture_init(&w->f);
  fixture_city(&w->f);
  w->f.cfg.trip_retention_ms = 60000;
  if (batch) w->f.cfg.batch = (dsp_batch_config){true, 3000, 5, 3};
  fixture_start(&w->f);
  srand(seed);
  for (int i = 0; i < 4000; i++) {
    step(w);
    absorb(w);
    check_invariants(w);
  }
  dsp_stats st;
  dsp_stats_get(w->f.s, &st);
  fprintf(stderr,
          "%s: %llu requests, %llu offers, %llu matched, %llu completed, %llu no_driver, "
          "%llu rejected, %llu stale pings, %llu hungarian / %llu greedy batches\n",
          batch ? "batched" : "immediate", (unsigned long long)st.requests,
          (unsigned long long)st.offers, (unsigned long long)st.matched,
          (unsigned long long)st.completed, (unsigned long long)st.no_driver,
          (unsigned long long)st.rejected, (unsigned long long)st.pings_stale,
          (unsigned long long)st.batches_hungarian, (unsigned long long)st.batches_greedy);
  assert_true(st.matched > 0);
  assert_true(st.completed > 0);
  assert_int_equal(st.outputs_lost, 0);
  fixture_close(&w->f);
  free(w);
}

static void test_random_commands_keep_drivers_trips_and_claims_consistent(void **state) {
  (void)state;
  unsigned seed = test_seed();
  run(seed, false);
}

static void test_random_commands_in_batched_mode_keep_everything_consistent(void **state) {
  (void)state;
  unsigned seed = test_seed();
  run(seed, true);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_commands_keep_drivers_trips_and_claims_consistent),
      cmocka_unit_test(test_random_commands_in_batched_mode_keep_everything_consistent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
