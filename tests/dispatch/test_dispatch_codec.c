/*
 * test_dispatch_codec.c: the mapping between the dispatch core and the Kafka payloads
 * (dispatch_codec.h): every event a real ride produces encodes as a valid DispatchEvent
 * (mrd_proto checks each type's required fields) and decodes back the same; replies
 * become COMMAND_REJECTED for their sender with the command's whole ref; a request
 * command makes the trip id of its partition offset, the same when consumed again; a
 * command for another shard is ignored; a snapshot stored as an event restores the trip; a
 * location's heading, speed and receive time reach the core's prediction.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch_codec.h"
#include "dsp_fixture.h"

static void roundtrip(const mrd_dispatch_event *ev) {
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len = 0;
  int rc = mrd_dispatch_event_encode(ev, buf, sizeof buf, &len);
  if (rc != 0)
    fail_msg("%s event does not encode: %s", mrd_event_type_name(ev->type), mrd_proto_strerror(rc));
  mrd_dispatch_event back;
  assert_int_equal(mrd_dispatch_event_decode(buf, len, &back), 0);
  assert_int_equal(back.type, ev->type);
  assert_int_equal(back.status, ev->status);
  assert_string_equal(back.trip_id, ev->trip_id);
  assert_int_equal(back.seq, ev->seq);
  assert_string_equal(back.driver_id, ev->driver_id);
  assert_string_equal(back.offer_id, ev->offer_id);
  assert_string_equal(back.reason, ev->reason);
  assert_string_equal(back.ref, ev->ref);
}

static mrd_command cmd(mrd_cmd_kind k) {
  mrd_command c;
  memset(&c, 0, sizeof c);
  c.kind = k;
  c.shard = 3;
  c.epoch = 7;
  c.ts_ms = 1700000000000;
  return c;
}

/* Encode every event queued, and return how many of each type were seen. */
static void encode_all(fixture *f, int *seen) {
  const dsp_output *o;
  size_t n = dsp_outputs(f->s, &o);
  for (size_t i = 0; i < n; i++) {
    mrd_dispatch_event ev;
    if (o[i].kind == DSP_OUT_EVENT) {
      dspc_event_to_proto(&o[i].u.event, &ev);
      roundtrip(&ev);
      seen[o[i].u.event.type]++;
    } else if (o[i].kind == DSP_OUT_REPLY) {
      dspc_reply_to_proto(&o[i].u.reply, NULL, 3, 7, 1, &ev);
      roundtrip(&ev);
      seen[11]++;
    }
  }
  dsp_outputs_clear(f->s);
}

static void test_every_event_of_real_rides_encodes(void **state) {
  fixture *f = *state;
  int seen[12] = {0};
  ping(f, "d1", 40.751, -73.99, 1, 0);
  ping(f, "d2", 40.752, -73.99, 1, 0);
  mrd_command c = cmd(MRD_CMD_REQUEST);
  strcpy(c.request_id, "q1");
  strcpy(c.rider_id, "r1");
  c.pickup = (mrd_latlon){40.75, -73.99};
  c.dropoff = (mrd_latlon){40.753, -73.987};
  assert_int_equal(dspc_apply_command(f->s, 3, &c, 42, 10), DSP_OK);
  const dsp_event *o1 = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o1);
  char trip[DSP_ID_MAX + 1], offer[DSP_ID_MAX + 1], drv[DSP_ID_MAX + 1];
  strcpy(trip, o1->trip_id);
  strcpy(offer, o1->offer_id);
  strcpy(drv, o1->driver_id);
  encode_all(f, seen);
  mrd_command d = cmd(MRD_CMD_DECLINE);
  strcpy(d.offer_id, offer);
  strcpy(d.driver_id, drv);
  assert_int_equal(dspc_apply_command(f->s, 3, &d, 43, 20), DSP_OK);
  const dsp_event *o2 = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o2);
  strcpy(offer, o2->offer_id);
  strcpy(drv, o2->driver_id);
  encode_all(f, seen);
  mrd_command a = cmd(MRD_CMD_ACCEPT);
  strcpy(a.offer_id, offer);
  strcpy(a.driver_id, drv);
  assert_int_equal(dspc_apply_command(f->s, 3, &a, 44, 30), DSP_OK);
  mrd_cmd_kind steps[] = {MRD_CMD_ARRIVED, MRD_CMD_START, MRD_CMD_COMPLETE};
  for (int i = 0; i < 3; i++) {
    mrd_command s = cmd(steps[i]);
    strcpy(s.trip_id, trip);
    strcpy(s.driver_id, drv);
    assert_int_equal(dspc_apply_command(f->s, 3, &s, 45 + i, 40 + i), DSP_OK);
  }
  /* a refused step (complete by a driver not on the trip: the same again by its driver is
   * a repeat, answered as done), with a long ref */
  mrd_command s = cmd(MRD_CMD_COMPLETE);
  strcpy(s.trip_id, trip);
  strcpy(s.driver_id, "d9");
  memset(s.ref, 'x', 300);
  assert_int_equal(dspc_apply_command(f->s, 3, &s, 50, 50), DSP_ESTATE);
  const dsp_reply *rep = last_reply(f->s);
  assert_non_null(rep);
  mrd_dispatch_event rj;
  dspc_reply_to_proto(rep, s.ref, 3, 7, 50, &rj);
  assert_int_equal(strlen(rj.ref), 300); /* the command's whole ref, not the core's 64 */
  assert_string_equal(rj.driver_id, "d9");
  assert_string_equal(rj.rider_id, "");
  assert_string_equal(rj.error_code, "invalid_state");
  assert_string_equal(rj.trip_id, trip);
  roundtrip(&rj);
  encode_all(f, seen);
  /* a second trip: cancelled by its rider; a third: no driver (out of area) */
  c = cmd(MRD_CMD_REQUEST);
  strcpy(c.request_id, "q2");
  strcpy(c.rider_id, "r2");
  c.pickup = (mrd_latlon){40.75, -73.99};
  c.dropoff = (mrd_latlon){40.753, -73.987};
  assert_int_equal(dspc_apply_command(f->s, 3, &c, 60, 60), DSP_OK);
  mrd_command x = cmd(MRD_CMD_CANCEL);
  strcpy(x.request_id, "q2");
  strcpy(x.rider_id, "r2");
  assert_int_equal(dspc_apply_command(f->s, 3, &x, 61, 61), DSP_OK);
  c.pickup = (mrd_latlon){41.5, -72.0};
  strcpy(c.request_id, "q3");
  strcpy(c.rider_id, "r3");
  assert_int_equal(dspc_apply_command(f->s, 3, &c, 62, 62), DSP_OK);
  encode_all(f, seen);
  /* and an expiry */
  c.pickup = (mrd_latlon){40.75, -73.99};
  strcpy(c.request_id, "q4");
  strcpy(c.rider_id, "r4");
  assert_int_equal(dspc_apply_command(f->s, 3, &c, 63, 63), DSP_OK);
  dsp_tick(f->s, 63 + f->cfg.offer_timeout_ms);
  encode_all(f, seen);
  for (int t = DSP_EV_REQUESTED; t <= 11; t++)
    if (seen[t] == 0) fail_msg("no event of type %d was produced", t);
}

static void test_request_trip_id_comes_from_its_offset(void **state) {
  fixture *f = *state;
  char a[DSPC_SUFFIX_MAX], b[DSPC_SUFFIX_MAX];
  dspc_trip_suffix(1700000000000, 35, a);
  dspc_trip_suffix(1700000000000, 35, b);
  assert_string_equal(a, b);
  assert_string_equal(a, "loyw3v28-z");
  dspc_trip_suffix(1700000000000, 36, b);
  assert_string_not_equal(a, b);
  mrd_command c = cmd(MRD_CMD_REQUEST);
  strcpy(c.request_id, "q1");
  strcpy(c.rider_id, "r1");
  c.pickup = (mrd_latlon){40.75, -73.99};
  c.dropoff = (mrd_latlon){40.753, -73.987};
  assert_int_equal(dspc_apply_command(f->s, 3, &c, 35, 10), DSP_OK);
  assert_string_equal(event_at(f->s, DSP_EV_REQUESTED, 0)->trip_id, "t3-loyw3v28-z");
  dsp_outputs_clear(f->s);
  /* consumed again after a crash: the same request, nothing new */
  assert_int_equal(dspc_apply_command(f->s, 3, &c, 35, 20), DSP_OK);
  assert_int_equal(n_events(f->s, 0), 0);
  /* a command for another shard is not this shard's business */
  c.shard = 4;
  strcpy(c.request_id, "q9");
  assert_int_equal(dspc_apply_command(f->s, 3, &c, 36, 30), DSP_EINVAL);
  assert_int_equal(n_events(f->s, 0) + n_replies(f->s), 0);
  /* a status command */
  mrd_command st = cmd(MRD_CMD_STATUS);
  strcpy(st.driver_id, "d7");
  st.status = MRD_DRIVER_OFFLINE;
  assert_int_equal(dspc_apply_command(f->s, 3, &st, 37, 40), DSP_OK);
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(f->s, "d7", &v), DSP_OK);
  assert_int_equal(v.state, DSP_DRIVER_OFFLINE);
}

static void test_snapshot_event_restores_the_trip(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 10), DSP_OK);
  const dsp_output *o;
  size_t n = dsp_outputs(f->s, &o);
  /* the last event, completed by the snapshot that follows it, as the service stores it */
  mrd_dispatch_event ev;
  const dsp_snapshot *snap = NULL;
  for (size_t i = 0; i + 1 < n; i++)
    if (o[i].kind == DSP_OUT_EVENT && o[i + 1].kind == DSP_OUT_SNAPSHOT) {
      dspc_event_to_proto(&o[i].u.event, &ev);
      snap = &o[i + 1].u.snapshot;
    }
  assert_non_null(snap);
  dspc_snapshot_merge(snap, &ev);
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len;
  assert_int_equal(mrd_dispatch_event_encode(&ev, buf, sizeof buf, &len), 0);
  mrd_dispatch_event back;
  assert_int_equal(mrd_dispatch_event_decode(buf, len, &back), 0);
  assert_true(dspc_status_live(back.status));
  dsp_trip_restore r;
  assert_int_equal(dspc_restore_from_proto(&back, &r), DSP_OK);
  assert_int_equal(r.status, DSP_TRIP_OFFERED);
  assert_string_equal(r.driver_id, "d1");
  assert_true(r.expires_at_ms > 10);
  assert_true(r.has_driver_pos);
  char offer[DSP_ID_MAX + 1];
  strcpy(offer, r.offer_id);
  dsp_outputs_clear(f->s);
  /* a new process */
  dsp_shard_free(f->s);
  f->s = NULL;
  dsp_qt_index_free(f->qi);
  assert_int_equal(dsp_qt_index_new(&f->qi), DSP_OK);
  fixture_restart(f);
  assert_int_equal(dsp_restore_trip(f->s, &r, 100), DSP_OK);
  assert_int_equal(dsp_on_accept(f->s, offer, "d1", NULL, 200), DSP_OK);
  const dsp_event *m = last_event(f->s);
  assert_int_equal(m->type, DSP_EV_MATCHED);
  assert_true(m->has_driver_pos); /* from the snapshot, before his next ping */
  mrd_dispatch_event mev;
  dspc_event_to_proto(m, &mev);
  roundtrip(&mev);
  dsp_outputs_clear(f->s);
  /* ended trips are not restored */
  back.status = MRD_TRIP_COMPLETED;
  assert_int_equal(dspc_restore_from_proto(&back, &r), DSP_EINVAL);
}

/* A location's heading, speed and gateway receive time reach the core: the offer quotes
 * the driver where he is predicted to be (dispatch.h, dsp_motion), and a location without
 * them is taken where it was. */
static void test_location_motion_reaches_the_core(void **state) {
  fixture *f = *state;
  mrd_driver_location m = {.pos = {40.7505, -73.99},
                           .has_heading = true,
                           .heading_deg = 0,
                           .has_speed = true,
                           .speed_mps = 10,
                           .ts_ms = 999,
                           .seq = 1,
                           .epoch = 1,
                           .received_ms = 1000};
  snprintf(m.driver_id, sizeof m.driver_id, "moving");
  assert_int_equal(dspc_apply_location(f->s, &m, 1200), DSP_OK);
  /* 5 s after the gateway received it, at 10 m/s north: half a block nearer (15 s) */
  assert_int_equal(request(f, "r1", "q1", 40.7525, -73.99, 6000), DSP_OK);
  const dsp_event *o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_string_equal(o->driver_id, "moving");
  assert_true(fabs(o->pickup_eta_s - 15) < 0.1);
  check_and_clear(f);
  /* no motion fields: from the ping's place (2 blocks, 20 s) */
  mrd_driver_location still = {.pos = {40.7505, -73.985}, .ts_ms = 999, .seq = 1, .epoch = 1};
  snprintf(still.driver_id, sizeof still.driver_id, "still");
  assert_int_equal(dspc_apply_location(f->s, &still, 6000), DSP_OK);
  assert_int_equal(request(f, "r2", "q2", 40.7525, -73.985, 11000), DSP_OK);
  if (!event_at(f->s, DSP_EV_OFFERED, 0) && last_event(f->s))
    fail_msg("no offer: event %d reason %s", last_event(f->s)->type, last_event(f->s)->reason);
  o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_string_equal(o->driver_id, "still");
  assert_true(fabs(o->pickup_eta_s - 20) < 0.1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_every_event_of_real_rides_encodes, fixture_setup_city,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_request_trip_id_comes_from_its_offset,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_snapshot_event_restores_the_trip, fixture_setup_city,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_location_motion_reaches_the_core, fixture_setup_city,
                                      fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
