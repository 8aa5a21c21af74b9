/*
 * test_dispatch_restore.c: what meridian-dispatch relies on to survive a restart: trip ids
 * made from a caller's suffix (the same request consumed again makes the same trip id), and
 * live trips put back into a new shard from their snapshots (dsp_restore_trip) going on
 * where they stopped: the old offer id still accepted, the claim still this trip's, an
 * offer that expired during the downtime expired at the first tick, a requested trip
 * matched again, sequence numbers continuing.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dsp_fixture.h"

/* A new process: a new shard with an empty index (the claim store, like Redis, stays). */
static void crash_and_restart(fixture *f) {
  dsp_shard_free(f->s);
  f->s = NULL;
  dsp_qt_index_free(f->qi);
  assert_int_equal(dsp_qt_index_new(&f->qi), DSP_OK);
  f->cfg.incarnation++;
  fixture_restart(f);
}

/* The latest snapshot of the queued outputs, as the service would have saved it. */
static dsp_snapshot last_snapshot(const dsp_shard *s) {
  const dsp_output *o;
  size_t n = dsp_outputs(s, &o);
  for (size_t i = n; i-- > 0;)
    if (o[i].kind == DSP_OUT_SNAPSHOT) return o[i].u.snapshot;
  fail_msg("no snapshot queued");
  return (dsp_snapshot){0};
}

static dsp_trip_restore from_snapshot(const dsp_snapshot *p, uint64_t epoch) {
  return (dsp_trip_restore){.trip_id = p->trip_id,
                            .seq = p->seq,
                            .status = p->status,
                            .epoch = epoch,
                            .rider_id = p->rider_id,
                            .request_id = p->request_id,
                            .pickup = p->pickup,
                            .dropoff = p->dropoff,
                            .driver_id = p->driver_id,
                            .offer_id = p->offer_id,
                            .expires_at_ms = p->expires_at_ms,
                            .pickup_eta_s = p->pickup_eta_s};
}

static void test_trip_suffix_names_the_trip_and_is_unique(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  dsp_request r = {.request_id = "q1",
                   .rider_id = "r1",
                   .pickup = {40.75, -73.99},
                   .dropoff = {40.753, -73.987},
                   .trip_suffix = "lx2k-1a"};
  assert_int_equal(dsp_on_request(f->s, &r, NULL, 1), DSP_OK);
  char id[DSP_ID_MAX + 1];
  assert_int_equal(dsp_trip_find(f->s, "r1", "q1", id), DSP_OK);
  assert_string_equal(id, "t3-lx2k-1a");
  assert_string_equal(event_at(f->s, DSP_EV_REQUESTED, 0)->trip_id, "t3-lx2k-1a");
  check_and_clear(f);
  /* the same request again (consumed twice): no second trip */
  assert_int_equal(dsp_on_request(f->s, &r, NULL, 2), DSP_OK);
  assert_int_equal(n_events(f->s, 0), 0);
  dsp_outputs_clear(f->s);
  /* another request claiming the same suffix is refused, and makes nothing */
  dsp_request r2 = r;
  r2.request_id = "q2";
  r2.rider_id = "r2";
  assert_int_equal(dsp_on_request(f->s, &r2, NULL, 3), DSP_EINVAL);
  assert_int_equal(n_events(f->s, 0), 0);
  assert_int_equal(dsp_trip_find(f->s, "r2", "q2", id), DSP_ENOTFOUND);
  dsp_outputs_clear(f->s);
  /* a suffix that would make a malformed id is refused */
  r2.trip_suffix = "bad suffix";
  assert_int_equal(dsp_on_request(f->s, &r2, NULL, 4), DSP_EINVAL);
  dsp_outputs_clear(f->s);
}

static void test_restored_offer_is_accepted_with_its_old_id(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 10), DSP_OK);
  const dsp_event *off = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(off);
  char offer[DSP_ID_MAX + 1], trip[DSP_ID_MAX + 1];
  strcpy(offer, off->offer_id);
  strcpy(trip, off->trip_id);
  dsp_snapshot snap = last_snapshot(f->s);
  assert_int_equal(snap.status, DSP_TRIP_OFFERED);
  dsp_outputs_clear(f->s);

  crash_and_restart(f);
  dsp_trip_restore r = from_snapshot(&snap, f->cfg.epoch);
  assert_int_equal(dsp_restore_trip(f->s, &r, 1000), DSP_OK);
  assert_int_equal(dsp_restore_trip(f->s, &r, 1000), DSP_OK); /* twice: no change */
  assert_int_equal(n_events(f->s, 0), 0);                     /* restoring says nothing */
  dsp_driver_view dv;
  assert_int_equal(dsp_driver_get(f->s, "d1", &dv), DSP_OK);
  assert_int_equal(dv.state, DSP_DRIVER_OFFERED);
  assert_false(dv.in_index); /* until his next ping */

  /* the claim made before the crash is still this trip's: accept keeps it */
  assert_int_equal(dsp_on_accept(f->s, offer, "d1", NULL, 2000), DSP_OK);
  const dsp_event *m = last_event(f->s);
  assert_int_equal(m->type, DSP_EV_MATCHED);
  assert_string_equal(m->trip_id, trip);
  assert_int_equal(m->seq, snap.seq + 1);
  char owner[160];
  snprintf(owner, sizeof owner, "3:%s:%llu", trip, (unsigned long long)f->cfg.epoch);
  assert_string_equal(dsp_claims_mem_owner(f->cm, "d1", 2000), owner);
  dsp_outputs_clear(f->s);

  /* the ride goes on to its end in the new process */
  assert_int_equal(dsp_on_arrived(f->s, trip, "d1", NULL, 3000), DSP_OK);
  assert_int_equal(dsp_on_start(f->s, trip, "d1", NULL, 3001), DSP_OK);
  assert_int_equal(dsp_on_complete(f->s, trip, "d1", NULL, 3002), DSP_OK);
  assert_int_equal(last_event(f->s)->seq, snap.seq + 4);
  assert_null(dsp_claims_mem_owner(f->cm, "d1", 3003));
  dsp_outputs_clear(f->s);
}

static void test_offer_that_expired_while_down_moves_on_at_first_tick(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 10), DSP_OK);
  dsp_snapshot snap = last_snapshot(f->s);
  dsp_outputs_clear(f->s);

  crash_and_restart(f);
  dsp_trip_restore r = from_snapshot(&snap, f->cfg.epoch);
  int64_t now = snap.expires_at_ms + 5000; /* down longer than the offer lived */
  assert_int_equal(dsp_restore_trip(f->s, &r, now), DSP_OK);
  ping(f, "d1", 40.751, -73.99, 2, now); /* pings come back after the restart */
  ping(f, "d2", 40.752, -73.99, 1, now);
  dsp_tick(f->s, now + 1);
  const dsp_event *x = event_at(f->s, DSP_EV_OFFER_EXPIRED, 0);
  assert_non_null(x);
  assert_string_equal(x->driver_id, "d1");
  assert_int_equal(x->seq, snap.seq + 1);
  const dsp_event *o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_string_equal(o->driver_id, "d2"); /* d1 was tried already */
  assert_int_equal(o->seq, snap.seq + 2);
  dsp_outputs_clear(f->s);
}

static void test_restored_requested_trip_is_matched_at_next_tick(void **state) {
  fixture *f = *state;
  dsp_snapshot snap = {.seq = 1,
                       .status = DSP_TRIP_REQUESTED,
                       .pickup = {40.75, -73.99},
                       .dropoff = {40.753, -73.987},
                       .pickup_eta_s = NAN};
  strcpy(snap.trip_id, "t3-old-1");
  strcpy(snap.rider_id, "r1");
  strcpy(snap.request_id, "q1");
  crash_and_restart(f);
  dsp_trip_restore r = from_snapshot(&snap, 1);
  assert_int_equal(dsp_restore_trip(f->s, &r, 100), DSP_OK);
  ping(f, "d1", 40.751, -73.99, 1, 100);
  assert_int_equal(n_events(f->s, 0), 0);
  dsp_tick(f->s, 200);
  const dsp_event *o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_string_equal(o->trip_id, "t3-old-1");
  assert_int_equal(o->seq, 2);
  dsp_outputs_clear(f->s);
  /* the rider's request key is known again: the same request is a duplicate */
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 300), DSP_OK);
  assert_int_equal(n_events(f->s, 0), 0);
  dsp_outputs_clear(f->s);
}

static void test_restored_matched_trip_keeps_driver_busy(void **state) {
  fixture *f = *state;
  dsp_snapshot snap = {.seq = 3,
                       .status = DSP_TRIP_MATCHED,
                       .pickup = {40.75, -73.99},
                       .dropoff = {40.753, -73.987},
                       .pickup_eta_s = 30};
  strcpy(snap.trip_id, "t3-old-2");
  strcpy(snap.rider_id, "r1");
  strcpy(snap.request_id, "q1");
  strcpy(snap.driver_id, "d1");
  crash_and_restart(f);
  dsp_trip_restore r = from_snapshot(&snap, 1);
  assert_int_equal(dsp_restore_trip(f->s, &r, 100), DSP_OK);
  ping(f, "d1", 40.7501, -73.99, 1, 100);
  dsp_driver_view dv;
  assert_int_equal(dsp_driver_get(f->s, "d1", &dv), DSP_OK);
  assert_int_equal(dv.state, DSP_DRIVER_EN_ROUTE);
  assert_string_equal(dv.trip_id, "t3-old-2");
  /* another rider nearby does not get him */
  assert_int_equal(request(f, "r2", "q2", 40.75, -73.99, 200), DSP_OK);
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 0);
  dsp_outputs_clear(f->s);
  /* the tick renews his claim under the old owner */
  dsp_tick(f->s, 300);
  assert_string_equal(dsp_claims_mem_owner(f->cm, "d1", 300), "3:t3-old-2:1");
  assert_int_equal(dsp_on_arrived(f->s, "t3-old-2", "d1", NULL, 400), DSP_OK);
  assert_int_equal(last_event(f->s)->seq, 4);
  dsp_outputs_clear(f->s);
}

/* A shard killed after its events went out but before it committed the commands' offset
 * reads those commands again once restored: the accept and the arrived it applied are
 * repeats (answered as done, nothing emitted, counted), the next step goes on. */
static void test_commands_read_again_after_a_restart_are_repeats(void **state) {
  fixture *f = *state;
  dsp_snapshot snap = {.seq = 4,
                       .status = DSP_TRIP_ARRIVED,
                       .pickup = {40.75, -73.99},
                       .dropoff = {40.753, -73.987},
                       .pickup_eta_s = 30};
  strcpy(snap.trip_id, "t3-old-2");
  strcpy(snap.rider_id, "r1");
  strcpy(snap.request_id, "q1");
  strcpy(snap.driver_id, "d1");
  strcpy(snap.offer_id, "o3-old-1"); /* the offer he accepted */
  crash_and_restart(f);
  dsp_trip_restore r = from_snapshot(&snap, 1);
  assert_int_equal(dsp_restore_trip(f->s, &r, 100), DSP_OK);
  assert_int_equal(dsp_on_accept(f->s, "o3-old-1", "d1", "a1", 200), DSP_OK);
  assert_int_equal(dsp_on_arrived(f->s, "t3-old-2", "d1", "p1", 201), DSP_OK);
  assert_int_equal(n_events(f->s, 0), 0);
  assert_int_equal(n_replies(f->s), 0);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.commands_repeated, 2);
  /* another offer id, or another driver, is still refused */
  assert_int_equal(dsp_on_accept(f->s, "o3-old-9", "d1", "a2", 202), DSP_EUNKNOWN_OFFER);
  assert_int_equal(dsp_on_arrived(f->s, "t3-old-2", "d2", "p2", 203), DSP_ESTATE);
  assert_int_equal(n_replies(f->s), 2);
  dsp_outputs_clear(f->s);
  assert_int_equal(dsp_on_start(f->s, "t3-old-2", "d1", "p3", 300), DSP_OK);
  assert_int_equal(last_event(f->s)->type, DSP_EV_STARTED);
  assert_int_equal(last_event(f->s)->seq, 5);
  dsp_outputs_clear(f->s);
  assert_int_equal(dsp_on_complete(f->s, "t3-old-2", "d1", "p4", 400), DSP_OK);
  assert_int_equal(last_event(f->s)->type, DSP_EV_COMPLETED);
  dsp_outputs_clear(f->s);
  /* the complete again (its ack was lost): done, nothing emitted */
  assert_int_equal(dsp_on_complete(f->s, "t3-old-2", "d1", "p5", 500), DSP_OK);
  assert_int_equal(n_events(f->s, 0), 0);
  assert_int_equal(n_replies(f->s), 0);
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.commands_repeated, 3);
}

static void test_restore_refuses_bad_or_conflicting_snapshots(void **state) {
  fixture *f = *state;
  dsp_snapshot snap = {.seq = 2,
                       .status = DSP_TRIP_COMPLETED,
                       .pickup = {40.75, -73.99},
                       .dropoff = {40.753, -73.987}};
  strcpy(snap.trip_id, "t3-x-1");
  strcpy(snap.rider_id, "r1");
  strcpy(snap.request_id, "q1");
  strcpy(snap.driver_id, "d1");
  dsp_trip_restore r = from_snapshot(&snap, 1);
  assert_int_equal(dsp_restore_trip(f->s, &r, 1), DSP_EINVAL); /* ended: nothing to restore */
  r.status = DSP_TRIP_OFFERED;
  r.offer_id = "";
  assert_int_equal(dsp_restore_trip(f->s, &r, 1), DSP_EINVAL); /* offered without offer */
  r.status = DSP_TRIP_MATCHED;
  r.seq = 0;
  assert_int_equal(dsp_restore_trip(f->s, &r, 1), DSP_EINVAL);
  r.seq = 3;
  assert_int_equal(dsp_restore_trip(f->s, &r, 1), DSP_OK);
  /* the same driver on a second trip, or the same rider twice: refused */
  dsp_trip_restore r2 = r;
  r2.trip_id = "t3-x-2";
  r2.rider_id = "r2";
  r2.request_id = "q2";
  assert_int_equal(dsp_restore_trip(f->s, &r2, 1), DSP_ESTATE);
  r2.driver_id = "d2";
  r2.rider_id = "r1";
  assert_int_equal(dsp_restore_trip(f->s, &r2, 1), DSP_ESTATE);
  assert_int_equal(dsp_restore_trip(f->s, NULL, 1), DSP_EINVAL);
}

/* Redis restarted empty under a running shard: its claims are gone from the store, so
 * another shard could claim its drivers. dsp_claims_reassert takes them again: the offer's
 * until the offer's end plus the margin, the trip's for the trip TTL; one taken by another
 * shard in between is counted, not stolen back. */
static void test_claims_lost_by_the_store_are_taken_again(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  ping(f, "d2", 40.7455, -73.985, 1, 0);
  ping(f, "d3", 40.745, -73.995, 1, 0);
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 10), DSP_OK);
  assert_int_equal(request(f, "r2", "q2", 40.745, -73.985, 10), DSP_OK);
  assert_int_equal(request(f, "r3", "q3", 40.745, -73.995, 10), DSP_OK);
  char offer2[DSP_ID_MAX + 1] = "";
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 3); /* each driver one offer */
  for (size_t i = 0; i < 3; i++)
    if (strcmp(event_at(f->s, DSP_EV_OFFERED, i)->driver_id, "d2") == 0)
      strcpy(offer2, event_at(f->s, DSP_EV_OFFERED, i)->offer_id);
  assert_true(offer2[0]);
  dsp_outputs_clear(f->s);
  assert_int_equal(dsp_on_accept(f->s, offer2, "d2", NULL, 20), DSP_OK); /* d2 on a trip */
  dsp_outputs_clear(f->s);
  char own1[160], own2[160], own3[160];
  snprintf(own1, sizeof own1, "%s", dsp_claims_mem_owner(f->cm, "d1", 30));
  snprintf(own2, sizeof own2, "%s", dsp_claims_mem_owner(f->cm, "d2", 30));
  snprintf(own3, sizeof own3, "%s", dsp_claims_mem_owner(f->cm, "d3", 30));
  /* the store forgets them all; another shard takes d3 before we notice */
  dsp_claims_mem_release(f->cm, "d1", own1, 40);
  dsp_claims_mem_release(f->cm, "d2", own2, 40);
  dsp_claims_mem_release(f->cm, "d3", own3, 40);
  assert_int_equal(dsp_claims_mem_try(f->cm, "d3", "5:t5-x:7", 60000, 40), DSP_CLAIM_WON);
  assert_int_equal(dsp_claims_reassert(f->s, 50), 2);
  assert_string_equal(dsp_claims_mem_owner(f->cm, "d1", 50), own1);
  assert_string_equal(dsp_claims_mem_owner(f->cm, "d2", 50), own2);
  assert_string_equal(dsp_claims_mem_owner(f->cm, "d3", 50), "5:t5-x:7");
  assert_int_equal(n_events(f->s, 0), 0); /* says nothing */
  /* another shard cannot take them now; the offer's claim ends with the offer (10 s +
   * margin 2 s from its start), the trip's lives on */
  assert_int_equal(dsp_claims_mem_try(f->cm, "d1", "5:t5-y:7", 60000, 60), DSP_CLAIM_LOST);
  assert_int_equal(dsp_claims_mem_try(f->cm, "d2", "5:t5-z:7", 60000, 60), DSP_CLAIM_LOST);
  assert_null(dsp_claims_mem_owner(f->cm, "d1", 12011));
  assert_string_equal(dsp_claims_mem_owner(f->cm, "d2", 12011), own2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_claims_lost_by_the_store_are_taken_again,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_trip_suffix_names_the_trip_and_is_unique,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_restored_offer_is_accepted_with_its_old_id,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_offer_that_expired_while_down_moves_on_at_first_tick,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_restored_requested_trip_is_matched_at_next_tick,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_restored_matched_trip_keeps_driver_busy,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_restore_refuses_bad_or_conflicting_snapshots,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_commands_read_again_after_a_restart_are_repeats,
                                      fixture_setup_city, fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
