/*
 * test_dispatch_trips.c: the trip state machine: every command in every state, allowed
 * (the right event, state and driver state) or forbidden (invalid_state / unknown_offer
 * to the sender, and nothing changed); other drivers and riders acting on a trip that is
 * not theirs; cancels releasing the driver; idempotent requests; status offline inside a
 * trip; claim renewal; forgetting ended trips.
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

enum cmd { ACCEPT, DECLINE, ARRIVED, START, COMPLETE, RIDER_CANCEL, DRIVER_CANCEL, N_CMDS };
static const char *cmd_name[N_CMDS] = {"accept",   "decline",      "arrived",      "start",
                                       "complete", "rider_cancel", "driver_cancel"};

typedef struct trip_ids {
  char trip[DSP_ID_MAX + 1];
  char offer[DSP_ID_MAX + 1]; /* the latest offer made, or a made-up one */
} trip_ids;

/* A shard (batch mode when the trip must wait in `requested`) with driver d1 next to
 * the pickup, and one trip of rider r1 (request q1) brought to state `to`. */
static void bring_to(fixture *f, dsp_trip_state to, trip_ids *ids) {
  if (to == DSP_TRIP_REQUESTED) {
    f->cfg.batch.enabled = true;
    f->cfg.batch.window_ms = 60000;
    fixture_restart(f);
  }
  int64_t t = 0;
  ping(f, "d1", 40.751, -73.99, 1, t);
  ping(f, "d2", 40.759, -73.99, 1, t); /* far (1 km), never offered first */
  if (to == DSP_TRIP_NO_DRIVER) {
    dsp_on_status(f->s, "d1", false, NULL, t);
    dsp_on_status(f->s, "d2", false, NULL, t);
  }
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, ++t), DSP_OK);
  assert_int_equal(dsp_trip_find(f->s, "r1", "q1", ids->trip), DSP_OK);
  strcpy(ids->offer, "o3-100-77");
  const dsp_event *e = event_at(f->s, DSP_EV_OFFERED, 0);
  if (e) {
    assert_string_equal(e->driver_id, "d1");
    strcpy(ids->offer, e->offer_id);
  }
  if (to == DSP_TRIP_CANCELLED) assert_int_equal(dsp_on_cancel(f->s, "q1", "r1", NULL, ++t), 0);
  if (to >= DSP_TRIP_MATCHED && to <= DSP_TRIP_COMPLETED)
    assert_int_equal(dsp_on_accept(f->s, ids->offer, "d1", NULL, ++t), DSP_OK);
  if (to >= DSP_TRIP_ARRIVED && to <= DSP_TRIP_COMPLETED)
    assert_int_equal(dsp_on_arrived(f->s, ids->trip, "d1", NULL, ++t), DSP_OK);
  if (to >= DSP_TRIP_STARTED && to <= DSP_TRIP_COMPLETED)
    assert_int_equal(dsp_on_start(f->s, ids->trip, "d1", NULL, ++t), DSP_OK);
  if (to == DSP_TRIP_COMPLETED)
    assert_int_equal(dsp_on_complete(f->s, ids->trip, "d1", NULL, ++t), DSP_OK);
  dsp_trip_view v;
  assert_int_equal(dsp_trip_get(f->s, ids->trip, &v), DSP_OK);
  assert_int_equal(v.state, to);
  check_and_clear(f);
}

static int run(fixture *f, enum cmd c, const trip_ids *ids, const char *driver, const char *rider) {
  const int64_t now = 100;
  switch (c) {
  case ACCEPT: return dsp_on_accept(f->s, ids->offer, driver, "ref", now);
  case DECLINE: return dsp_on_decline(f->s, ids->offer, driver, "ref", now);
  case ARRIVED: return dsp_on_arrived(f->s, ids->trip, driver, "ref", now);
  case START: return dsp_on_start(f->s, ids->trip, driver, "ref", now);
  case COMPLETE: return dsp_on_complete(f->s, ids->trip, driver, "ref", now);
  case RIDER_CANCEL: return dsp_on_cancel(f->s, "q1", rider, "ref", now);
  case DRIVER_CANCEL: return dsp_on_driver_cancel(f->s, ids->trip, driver, NULL, "ref", now);
  default: return -100;
  }
}

/* What a command does in a state: the first event and the state after, with the state
 * of driver d1 after; or the refusal. */
typedef struct outcome {
  int rc;                  /* 0, DSP_ESTATE or DSP_EUNKNOWN_OFFER */
  dsp_event_type event;    /* first event when allowed */
  dsp_trip_state after;    /* trip state when allowed */
  dsp_driver_state driver; /* d1 afterwards when allowed */
  bool repeat;             /* applied already: DSP_OK, nothing emitted or changed, counted */
} outcome;

#define NO_OFFER                                                                                   \
  { DSP_EUNKNOWN_OFFER, 0, 0, 0 }
#define BAD                                                                                        \
  { DSP_ESTATE, 0, 0, 0 }
#define REPEAT                                                                                     \
  { 0, 0, 0, 0, true }

/* The table of docs/dispatch.md, command by command. Declining the only near driver's
 * offer goes on to the next candidate (d2, farther): the trip is offered again. A step the
 * trip has taken already, by its driver (his accept of its offer while he is on it, a
 * trip step in that state or past it, also once completed) is a repeat. */
/* clang-format off */
static const outcome table[9][N_CMDS] = {
    [DSP_TRIP_REQUESTED] = {NO_OFFER, NO_OFFER, BAD, BAD, BAD,
                            {0, DSP_EV_CANCELLED, DSP_TRIP_CANCELLED, DSP_DRIVER_AVAILABLE},
                            BAD},
    [DSP_TRIP_OFFERED] = {{0, DSP_EV_MATCHED, DSP_TRIP_MATCHED, DSP_DRIVER_EN_ROUTE},
                          {0, DSP_EV_OFFER_DECLINED, DSP_TRIP_OFFERED, DSP_DRIVER_AVAILABLE},
                          BAD, BAD, BAD,
                          {0, DSP_EV_CANCELLED, DSP_TRIP_CANCELLED, DSP_DRIVER_AVAILABLE},
                          BAD},
    [DSP_TRIP_MATCHED] = {REPEAT, NO_OFFER,
                          {0, DSP_EV_ARRIVED, DSP_TRIP_ARRIVED, DSP_DRIVER_EN_ROUTE},
                          BAD, BAD,
                          {0, DSP_EV_CANCELLED, DSP_TRIP_CANCELLED, DSP_DRIVER_AVAILABLE},
                          {0, DSP_EV_CANCELLED, DSP_TRIP_CANCELLED, DSP_DRIVER_AVAILABLE}},
    [DSP_TRIP_ARRIVED] = {REPEAT, NO_OFFER, REPEAT,
                          {0, DSP_EV_STARTED, DSP_TRIP_STARTED, DSP_DRIVER_ON_TRIP},
                          BAD,
                          {0, DSP_EV_CANCELLED, DSP_TRIP_CANCELLED, DSP_DRIVER_AVAILABLE},
                          {0, DSP_EV_CANCELLED, DSP_TRIP_CANCELLED, DSP_DRIVER_AVAILABLE}},
    [DSP_TRIP_STARTED] = {REPEAT, NO_OFFER, REPEAT, REPEAT,
                          {0, DSP_EV_COMPLETED, DSP_TRIP_COMPLETED, DSP_DRIVER_AVAILABLE},
                          BAD, BAD},
    [DSP_TRIP_COMPLETED] = {NO_OFFER, NO_OFFER, REPEAT, REPEAT, REPEAT, BAD, BAD},
    [DSP_TRIP_CANCELLED] = {NO_OFFER, NO_OFFER, BAD, BAD, BAD, BAD, BAD},
    [DSP_TRIP_NO_DRIVER] = {NO_OFFER, NO_OFFER, BAD, BAD, BAD, BAD, BAD},
};
/* clang-format on */

static void test_trips_every_command_in_every_state(void **state) {
  (void)state;
  int checked_allowed = 0, checked_forbidden = 0, checked_repeats = 0;
  for (int st = DSP_TRIP_REQUESTED; st <= DSP_TRIP_NO_DRIVER; st++) {
    for (int c = 0; c < N_CMDS; c++) {
      fixture f;
      fixture_init(&f);
      fixture_city(&f);
      fixture_start(&f);
      trip_ids ids;
      bring_to(&f, (dsp_trip_state)st, &ids);
      dsp_trip_view before, after;
      dsp_driver_view d_before, d_after;
      dsp_trip_get(f.s, ids.trip, &before);
      dsp_driver_get(f.s, "d1", &d_before);
      dsp_stats st_before, st_after;
      dsp_stats_get(f.s, &st_before);
      const outcome *want = &table[st][c];
      int rc = run(&f, (enum cmd)c, &ids, "d1", "r1");
      if (rc != want->rc)
        fail_msg("%s in state %s: rc %d (%s), want %d", cmd_name[c],
                 dsp_trip_state_name((dsp_trip_state)st), rc, dsp_strerror(rc), want->rc);
      dsp_trip_get(f.s, ids.trip, &after);
      dsp_driver_get(f.s, "d1", &d_after);
      dsp_stats_get(f.s, &st_after);
      if (want->repeat) {
        /* Answered as done: no event, no reply, nothing changed, counted once. */
        assert_int_equal(n_events(f.s, 0), 0);
        assert_int_equal(n_replies(f.s), 0);
        assert_int_equal(after.state, before.state);
        assert_int_equal(after.seq, before.seq);
        assert_int_equal(d_after.state, d_before.state);
        assert_int_equal(st_after.commands_repeated, st_before.commands_repeated + 1);
        checked_repeats++;
      } else if (want->rc == 0) {
        const dsp_event *e = event_at(f.s, 0, 0);
        assert_non_null(e);
        if (e->type != want->event)
          fail_msg("%s in %s: event %s, want %s", cmd_name[c],
                   dsp_trip_state_name((dsp_trip_state)st), dsp_event_type_name(e->type),
                   dsp_event_type_name(want->event));
        assert_int_equal(after.state, want->after);
        assert_int_equal(d_after.state, want->driver);
        assert_int_equal(n_replies(f.s), 0);
        assert_int_equal(st_after.commands_repeated, st_before.commands_repeated);
        checked_allowed++;
      } else {
        /* Refused: one reply to the sender, no event, nothing changed. */
        assert_int_equal(n_events(f.s, 0), 0);
        assert_int_equal(n_replies(f.s), 1);
        const dsp_reply *r = last_reply(f.s);
        assert_int_equal(r->code,
                         want->rc == DSP_ESTATE ? DSP_ERR_INVALID_STATE : DSP_ERR_UNKNOWN_OFFER);
        assert_string_equal(r->ref, "ref");
        if (c == RIDER_CANCEL)
          assert_string_equal(r->rider_id, "r1");
        else
          assert_string_equal(r->driver_id, "d1");
        assert_int_equal(after.state, before.state);
        assert_int_equal(after.seq, before.seq);
        assert_int_equal(d_after.state, d_before.state);
        assert_int_equal(st_after.commands_repeated, st_before.commands_repeated);
        checked_forbidden++;
      }
      fixture_close(&f); /* checks the events against the transition table */
    }
  }
  assert_int_equal(checked_allowed + checked_forbidden + checked_repeats, 8 * N_CMDS);
  assert_int_equal(checked_allowed, 11);
  assert_int_equal(checked_repeats, 9);
}

/* Another driver (d2) and another rider (r2) never move r1's trip with d1. */
static void test_trips_others_cannot_act_on_a_trip(void **state) {
  (void)state;
  for (int st = DSP_TRIP_REQUESTED; st <= DSP_TRIP_NO_DRIVER; st++) {
    for (int c = 0; c < N_CMDS; c++) {
      fixture f;
      fixture_init(&f);
      fixture_city(&f);
      fixture_start(&f);
      trip_ids ids;
      bring_to(&f, (dsp_trip_state)st, &ids);
      dsp_trip_view before, after;
      dsp_trip_get(f.s, ids.trip, &before);
      int rc = run(&f, (enum cmd)c, &ids, "d2", "r2");
      int want = (c == ACCEPT || c == DECLINE) ? DSP_EUNKNOWN_OFFER
                 : c == RIDER_CANCEL           ? DSP_EFORBIDDEN
                                               : DSP_ESTATE;
      if (rc != want)
        fail_msg("%s by a stranger in %s: rc %d, want %d", cmd_name[c],
                 dsp_trip_state_name((dsp_trip_state)st), rc, want);
      dsp_trip_get(f.s, ids.trip, &after);
      assert_int_equal(after.state, before.state);
      assert_int_equal(after.seq, before.seq);
      assert_int_equal(n_events(f.s, 0), 0);
      const dsp_reply *r = last_reply(f.s);
      assert_non_null(r);
      if (c == RIDER_CANCEL) {
        assert_string_equal(r->rider_id, "r2");
        assert_int_equal(r->code, DSP_ERR_FORBIDDEN);
      } else {
        assert_string_equal(r->driver_id, "d2");
      }
      fixture_close(&f);
    }
  }
}

static void test_trips_transition_table_is_exactly_the_documented_one(void **state) {
  (void)state;
  /* from -> to, as docs/dispatch.md lists them */
  static const int allowed[][2] = {
      {DSP_TRIP_REQUESTED, DSP_TRIP_OFFERED},   {DSP_TRIP_REQUESTED, DSP_TRIP_NO_DRIVER},
      {DSP_TRIP_REQUESTED, DSP_TRIP_CANCELLED}, {DSP_TRIP_OFFERED, DSP_TRIP_REQUESTED},
      {DSP_TRIP_OFFERED, DSP_TRIP_MATCHED},     {DSP_TRIP_OFFERED, DSP_TRIP_CANCELLED},
      {DSP_TRIP_MATCHED, DSP_TRIP_ARRIVED},     {DSP_TRIP_MATCHED, DSP_TRIP_CANCELLED},
      {DSP_TRIP_ARRIVED, DSP_TRIP_STARTED},     {DSP_TRIP_ARRIVED, DSP_TRIP_CANCELLED},
      {DSP_TRIP_STARTED, DSP_TRIP_COMPLETED},
  };
  int n_allowed = 0;
  for (int a = DSP_TRIP_REQUESTED; a <= DSP_TRIP_NO_DRIVER; a++)
    for (int b = DSP_TRIP_REQUESTED; b <= DSP_TRIP_NO_DRIVER; b++) {
      bool want = false;
      for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        want |= allowed[i][0] == a && allowed[i][1] == b;
      assert_int_equal(dsp_trip_transition_allowed((dsp_trip_state)a, (dsp_trip_state)b), want);
      n_allowed += want;
    }
  assert_int_equal(n_allowed, 11);
}

static void test_trips_full_ride_releases_the_driver_and_the_claim(void **state) {
  fixture *f = *state;
  trip_ids ids;
  bring_to(f, DSP_TRIP_STARTED, &ids);
  assert_non_null(dsp_claims_mem_owner(f->cm, "d1", 10));
  assert_int_equal(dsp_on_complete(f->s, ids.trip, "d1", NULL, 20), DSP_OK);
  const dsp_event *e = last_event(f->s);
  assert_int_equal(e->type, DSP_EV_COMPLETED);
  assert_string_equal(e->driver_id, "d1");
  assert_null(dsp_claims_mem_owner(f->cm, "d1", 20));
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_AVAILABLE);
  assert_string_equal(v.trip_id, "");
  /* The snapshot of an ended trip says how long to keep it. */
  const dsp_output *o;
  size_t n = dsp_outputs(f->s, &o);
  assert_int_equal(o[n - 1].kind, DSP_OUT_SNAPSHOT);
  assert_int_equal(o[n - 1].u.snapshot.status, DSP_TRIP_COMPLETED);
  assert_true(o[n - 1].u.snapshot.keep_ms > 0);
}

static void test_trips_rider_cancel_while_offered_tells_and_frees_the_driver(void **state) {
  fixture *f = *state;
  trip_ids ids;
  bring_to(f, DSP_TRIP_OFFERED, &ids);
  assert_int_equal(dsp_on_cancel(f->s, "q1", "r1", NULL, 5), DSP_OK);
  const dsp_event *e = last_event(f->s);
  assert_int_equal(e->type, DSP_EV_CANCELLED);
  assert_string_equal(e->reason, "rider");
  assert_string_equal(e->driver_id, "d1"); /* so the gateway withdraws his offer */
  assert_null(dsp_claims_mem_owner(f->cm, "d1", 5));
  /* The offer is gone: accepting it now is unknown_offer. */
  check_and_clear(f);
  assert_int_equal(dsp_on_accept(f->s, ids.offer, "d1", NULL, 6), DSP_EUNKNOWN_OFFER);
}

static void test_trips_driver_cancel_frees_the_driver_for_other_trips(void **state) {
  fixture *f = *state;
  trip_ids ids;
  bring_to(f, DSP_TRIP_ARRIVED, &ids);
  assert_int_equal(dsp_on_driver_cancel(f->s, ids.trip, "d1", "flat_tyre", NULL, 5), DSP_OK);
  assert_string_equal(last_event(f->s)->reason, "flat_tyre");
  check_and_clear(f);
  request(f, "r2", "q2", 40.75, -73.99, 6);
  const dsp_event *e = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(e);
  assert_string_equal(e->driver_id, "d1");
}

static void test_trips_same_request_id_is_idempotent(void **state) {
  fixture *f = *state;
  trip_ids ids;
  bring_to(f, DSP_TRIP_OFFERED, &ids);
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 5), DSP_OK);
  assert_int_equal(n_events(f->s, 0), 0);
  assert_int_equal(n_replies(f->s), 0);
  const dsp_output *o;
  assert_int_equal(dsp_outputs(f->s, &o), 1); /* the snapshot again, for resync */
  assert_int_equal(o[0].kind, DSP_OUT_SNAPSHOT);
  assert_string_equal(o[0].u.snapshot.trip_id, ids.trip);
  assert_string_equal(o[0].u.snapshot.offer_id, ids.offer);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.requests, 1);
  assert_int_equal(st.requests_duplicate, 1);
  /* The same request id from another rider is another request. */
  dsp_outputs_clear(f->s);
  assert_int_equal(request(f, "r2", "q1", 40.75, -73.99, 6), DSP_OK);
  assert_int_equal(n_events(f->s, DSP_EV_REQUESTED), 1);
}

static void test_trips_a_rider_has_one_live_trip(void **state) {
  fixture *f = *state;
  trip_ids ids;
  bring_to(f, DSP_TRIP_MATCHED, &ids);
  assert_int_equal(request(f, "r1", "q2", 40.75, -73.99, 5), DSP_ESTATE);
  assert_int_equal(last_reply(f->s)->code, DSP_ERR_INVALID_STATE);
  assert_int_equal(n_events(f->s, 0), 0);
  check_and_clear(f);
  dsp_on_cancel(f->s, "q1", "r1", NULL, 6);
  check_and_clear(f);
  assert_int_equal(request(f, "r1", "q2", 40.75, -73.99, 7), DSP_OK);
}

static void test_trips_bad_commands_get_bad_request(void **state) {
  fixture *f = *state;
  dsp_request r = {
      .request_id = "", .rider_id = "r1", .pickup = {40.75, -73.99}, .dropoff = {40.75, -73.99}};
  assert_int_equal(dsp_on_request(f->s, &r, "k", 0), DSP_EINVAL);
  assert_int_equal(last_reply(f->s)->code, DSP_ERR_BAD_REQUEST);
  r.request_id = "q1";
  r.pickup.lat = NAN;
  assert_int_equal(dsp_on_request(f->s, &r, "k", 0), DSP_EINVAL);
  assert_int_equal(dsp_on_request(f->s, NULL, "k", 0), DSP_EINVAL);
  assert_int_equal(dsp_on_accept(f->s, NULL, "d1", NULL, 0), DSP_EINVAL);
  assert_int_equal(dsp_on_arrived(f->s, "t3-1", "", NULL, 0), DSP_EINVAL);
  assert_int_equal(dsp_on_cancel(f->s, "q1", NULL, NULL, 0), DSP_EINVAL);
  assert_int_equal(dsp_on_cancel(f->s, "never", "r1", NULL, 0), DSP_ESTATE);
  assert_int_equal(n_events(f->s, 0), 0);
  assert_int_equal(n_replies(f->s), 7);
}

static void test_trips_status_offline_while_offered_declines(void **state) {
  fixture *f = *state;
  trip_ids ids;
  bring_to(f, DSP_TRIP_OFFERED, &ids);
  assert_int_equal(dsp_on_status(f->s, "d1", false, NULL, 5), DSP_OK);
  const dsp_event *e = event_at(f->s, DSP_EV_OFFER_DECLINED, 0);
  assert_non_null(e);
  assert_string_equal(e->reason, "driver_offline");
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_OFFLINE);
  e = event_at(f->s, DSP_EV_OFFERED, 0); /* on to d2 */
  assert_non_null(e);
  assert_string_equal(e->driver_id, "d2");
}

static void test_trips_status_offline_en_route_cancels_on_trip_refused(void **state) {
  fixture *f = *state;
  trip_ids ids;
  bring_to(f, DSP_TRIP_MATCHED, &ids);
  assert_int_equal(dsp_on_status(f->s, "d1", false, NULL, 5), DSP_OK);
  const dsp_event *e = last_event(f->s);
  assert_int_equal(e->type, DSP_EV_CANCELLED);
  assert_string_equal(e->reason, "driver_offline");
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_OFFLINE);
  check_and_clear(f);

  fixture g;
  fixture_init(&g);
  fixture_city(&g);
  fixture_start(&g);
  bring_to(&g, DSP_TRIP_STARTED, &ids);
  assert_int_equal(dsp_on_status(g.s, "d1", false, "s1", 5), DSP_ESTATE);
  assert_int_equal(last_reply(g.s)->code, DSP_ERR_INVALID_STATE);
  assert_int_equal(n_events(g.s, 0), 0);
  dsp_driver_get(g.s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_ON_TRIP);
  fixture_close(&g);
}

static void test_trips_matched_driver_claim_is_renewed_by_tick(void **state) {
  fixture *f = *state;
  trip_ids ids;
  bring_to(f, DSP_TRIP_MATCHED, &ids); /* accepted at t = 2: claim until 60002 */
  for (int64_t t = 1000; t <= 100000; t += 1000) dsp_tick(f->s, t);
  assert_non_null(dsp_claims_mem_owner(f->cm, "d1", 100000));
  /* The store lost it (Redis restarted): the next renewal takes it again. */
  const char *owner = dsp_claims_mem_owner(f->cm, "d1", 100000);
  char saved[128];
  strcpy(saved, owner);
  dsp_claims_mem_release(f->cm, "d1", saved, 100000);
  for (int64_t t = 101000; t <= 130000; t += 1000) dsp_tick(f->s, t);
  assert_non_null(dsp_claims_mem_owner(f->cm, "d1", 130000));
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.claim_refresh_lost, 1);
}

static void test_trips_ended_trips_are_forgotten_after_retention(void **state) {
  fixture *f = *state;
  f->cfg.trip_retention_ms = 5000;
  fixture_restart(f);
  trip_ids ids;
  bring_to(f, DSP_TRIP_CANCELLED, &ids);
  dsp_trip_view v;
  dsp_tick(f->s, 5001);
  assert_int_equal(dsp_trip_get(f->s, ids.trip, &v), DSP_OK);
  dsp_tick(f->s, 5002 + 5000);
  assert_int_equal(dsp_trip_get(f->s, ids.trip, &v), DSP_ENOTFOUND);
  char tid[DSP_ID_MAX + 1];
  assert_int_equal(dsp_trip_find(f->s, "r1", "q1", tid), DSP_ENOTFOUND);
}

/* A resend (the gateway had seen the (rider, request_id)) never makes a trip: answered from
 * the trip the shard holds, refused once that trip is forgotten (issue 13). */
static void test_trips_resend_of_a_forgotten_request_makes_no_trip(void **state) {
  fixture *f = *state;
  f->cfg.trip_retention_ms = 5000;
  fixture_restart(f);
  trip_ids ids;
  bring_to(f, DSP_TRIP_CANCELLED, &ids);
  dsp_outputs_clear(f->s);
  dsp_request r = {.request_id = "q1",
                   .rider_id = "r1",
                   .pickup = {40.75, -73.99},
                   .dropoff = {40.752, -73.985},
                   .resend = true};
  assert_int_equal(dsp_on_request(f->s, &r, "ref", 6000), DSP_OK); /* still held */
  assert_int_equal(n_events(f->s, 0), 0);
  assert_int_equal(n_replies(f->s), 0);
  dsp_outputs_clear(f->s);
  dsp_tick(f->s, 20000); /* forgotten */
  dsp_trip_view v;
  assert_int_equal(dsp_trip_get(f->s, ids.trip, &v), DSP_ENOTFOUND);
  dsp_outputs_clear(f->s);
  assert_int_equal(dsp_on_request(f->s, &r, "ref", 20001), DSP_ESTATE);
  assert_int_equal(n_events(f->s, 0), 0);
  assert_int_equal(last_reply(f->s)->code, DSP_ERR_INVALID_STATE);
  assert_non_null(strstr(last_reply(f->s)->message, "ended"));
  char tid[DSP_ID_MAX + 1];
  assert_int_equal(dsp_trip_find(f->s, "r1", "q1", tid), DSP_ENOTFOUND);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.requests, 1);
  /* the same id, not a resend (the gateway's key expired): a new trip, as before */
  dsp_outputs_clear(f->s);
  r.resend = false;
  assert_int_equal(dsp_on_request(f->s, &r, "ref", 20002), DSP_OK);
  assert_int_equal(n_events(f->s, DSP_EV_REQUESTED), 1);
}

static void test_trips_bad_config_is_refused(void **state) {
  (void)state;
  fixture f;
  fixture_init(&f);
  fixture_city(&f);
  fixture_start(&f);
  dsp_index ix = dsp_qt_index_iface(f.qi);
  dsp_router rt = dsp_graph_router_iface(f.gr);
  dsp_claims cl = dsp_claims_mem_iface(f.cm);
  dsp_shard *s = NULL;
  dsp_config c = f.cfg;
  c.n_radii = 0;
  assert_int_equal(dsp_shard_new(&c, &ix, &rt, &cl, &s), DSP_EINVAL);
  c = f.cfg;
  c.radius_m[1] = c.radius_m[0]; /* must widen */
  assert_int_equal(dsp_shard_new(&c, &ix, &rt, &cl, &s), DSP_EINVAL);
  c = f.cfg;
  c.offer_timeout_ms = 0;
  assert_int_equal(dsp_shard_new(&c, &ix, &rt, &cl, &s), DSP_EINVAL);
  c = f.cfg;
  c.max_eta_s = NAN;
  assert_int_equal(dsp_shard_new(&c, &ix, &rt, &cl, &s), DSP_EINVAL);
  c = f.cfg;
  c.batch.enabled = true;
  c.batch.window_ms = 0;
  assert_int_equal(dsp_shard_new(&c, &ix, &rt, &cl, &s), DSP_EINVAL);
  dsp_router none = {0};
  assert_int_equal(dsp_shard_new(&f.cfg, &ix, &none, &cl, &s), DSP_EINVAL);
  assert_null(s);
  dsp_shard_free(NULL);
  fixture_close(&f);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup_city, fixture_teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_trips_every_command_in_every_state),
      cmocka_unit_test(test_trips_others_cannot_act_on_a_trip),
      cmocka_unit_test(test_trips_transition_table_is_exactly_the_documented_one),
      T(test_trips_full_ride_releases_the_driver_and_the_claim),
      T(test_trips_rider_cancel_while_offered_tells_and_frees_the_driver),
      T(test_trips_driver_cancel_frees_the_driver_for_other_trips),
      T(test_trips_same_request_id_is_idempotent),
      T(test_trips_a_rider_has_one_live_trip),
      T(test_trips_bad_commands_get_bad_request),
      T(test_trips_status_offline_while_offered_declines),
      T(test_trips_status_offline_en_route_cancels_on_trip_refused),
      T(test_trips_matched_driver_claim_is_renewed_by_tick),
      T(test_trips_ended_trips_are_forgotten_after_retention),
      T(test_trips_resend_of_a_forgotten_request_makes_no_trip),
      cmocka_unit_test(test_trips_bad_config_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
