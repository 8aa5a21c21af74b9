/*
 * test_trips_map.c: DispatchEvent -> statement parameters (trips.h): which columns each
 * event type fills, what is left NULL so the upsert keeps earlier values, the points as
 * WKT, the JSON payload, and the events that are refused or skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "trips.h"

static mrd_dispatch_event base(mrd_event_type type, mrd_trip_status st, uint64_t seq) {
  mrd_dispatch_event e;
  memset(&e, 0, sizeof e);
  e.type = type;
  e.status = st;
  strcpy(e.trip_id, "t0-abc-1");
  e.seq = seq;
  e.shard = 0;
  e.epoch = 3;
  e.ts_ms = 1700000000123;
  strcpy(e.rider_id, "r1");
  strcpy(e.request_id, "q1");
  e.has_pickup = e.has_dropoff = true;
  e.pickup = (mrd_latlon){40.75, -73.99};
  e.dropoff = (mrd_latlon){40.76, -73.98};
  return e;
}

/* Index of each step column among the trip parameters: offered_at .. cancelled_at. */
enum {
  P_DRIVER = 3,
  P_STATUS = 4,
  P_ETA = 9,
  P_REASON = 10,
  P_SEQ = 11,
  P_AT = 12,
  P_OFFERED = 13
};

static void test_requested_fills_identity_and_leaves_steps_null(void **state) {
  (void)state;
  mrd_dispatch_event e = base(MRD_EV_REQUESTED, MRD_TRIP_REQUESTED, 1);
  trp_row r;
  assert_int_equal(trp_map_event(&e, &r), 0);
  assert_string_equal(r.ev[0], "t0-abc-1");
  assert_string_equal(r.ev[1], "1");
  assert_string_equal(r.ev[2], "requested");
  assert_null(r.ev[3]);
  assert_string_equal(r.ev[5], "3");
  assert_string_equal(r.ev[6], "1700000000123");
  assert_string_equal(r.trip[1], "q1");
  assert_string_equal(r.trip[2], "r1");
  assert_string_equal(r.trip[P_STATUS], "requested");
  assert_string_equal(r.trip[7], "SRID=4326;POINT(-73.9900000 40.7500000)");
  assert_string_equal(r.trip[8], "SRID=4326;POINT(-73.9800000 40.7600000)");
  assert_string_equal(r.trip[P_SEQ], "1");
  assert_string_equal(r.trip[P_AT], "1700000000123");
  for (int i = P_OFFERED; i < TRP_TRIP_PARAMS; i++) assert_null(r.trip[i]);
  assert_null(r.trip[P_DRIVER]);
  assert_null(r.trip[P_ETA]);
  assert_null(r.trip[P_REASON]);
}

static void test_each_step_sets_its_own_timestamp_column(void **state) {
  (void)state;
  static const struct {
    mrd_event_type t;
    mrd_trip_status s;
    int col;
  } steps[] = {
      {MRD_EV_OFFERED, MRD_TRIP_OFFERED, 13},         {MRD_EV_MATCHED, MRD_TRIP_MATCHED, 14},
      {MRD_EV_ARRIVED, MRD_TRIP_ARRIVED, 15},         {MRD_EV_STARTED, MRD_TRIP_STARTED, 16},
      {MRD_EV_COMPLETED, MRD_TRIP_COMPLETED, 17},     {MRD_EV_CANCELLED, MRD_TRIP_CANCELLED, 18},
      {MRD_EV_OFFER_EXPIRED, MRD_TRIP_REQUESTED, -1}, {MRD_EV_NO_DRIVER, MRD_TRIP_NO_DRIVER, -1}};
  for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
    mrd_dispatch_event e = base(steps[k].t, steps[k].s, 2 + k);
    strcpy(e.driver_id, "d9");
    trp_row r;
    assert_int_equal(trp_map_event(&e, &r), 0);
    for (int i = P_OFFERED; i < TRP_TRIP_PARAMS; i++) {
      if (i == steps[k].col)
        assert_string_equal(r.trip[i], "1700000000123");
      else
        assert_null(r.trip[i]);
    }
    assert_string_equal(r.ev[3], "d9"); /* the event names its driver */
    /* only MATCHED makes him the trip's driver */
    if (steps[k].t == MRD_EV_MATCHED)
      assert_string_equal(r.trip[P_DRIVER], "d9");
    else
      assert_null(r.trip[P_DRIVER]);
  }
}

static void test_matched_carries_eta_and_payload_json(void **state) {
  (void)state;
  mrd_dispatch_event e = base(MRD_EV_MATCHED, MRD_TRIP_MATCHED, 3);
  strcpy(e.driver_id, "d1");
  strcpy(e.offer_id, "o0-abc-2");
  e.has_pickup_eta = true;
  e.pickup_eta_s = 142.5;
  e.has_driver_pos = true;
  e.driver_pos = (mrd_latlon){40.7614, -73.9776};
  trp_row r;
  assert_int_equal(trp_map_event(&e, &r), 0);
  assert_string_equal(r.trip[P_ETA], "142.500");
  json_error_t err;
  json_t *j = json_loads(r.payload, 0, &err);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "offer_id")), "o0-abc-2");
  assert_string_equal(json_string_value(json_object_get(j, "status")), "matched");
  assert_true(json_real_value(json_object_get(j, "pickup_eta_s")) == 142.5);
  assert_true(json_real_value(json_object_get(json_object_get(j, "driver_pos"), "lat")) == 40.7614);
  json_decref(j);
}

static void test_cancel_reason_is_kept_and_quotes_are_escaped(void **state) {
  (void)state;
  mrd_dispatch_event e = base(MRD_EV_CANCELLED, MRD_TRIP_CANCELLED, 4);
  strcpy(e.reason, "driver said \"no\"\\");
  trp_row r;
  assert_int_equal(trp_map_event(&e, &r), 0);
  assert_string_equal(r.trip[P_REASON], "driver said \"no\"\\");
  json_t *j = json_loads(r.payload, 0, NULL);
  assert_non_null(j); /* valid JSON whatever the reason holds */
  assert_string_equal(json_string_value(json_object_get(j, "reason")), "driver said \"no\"\\");
  json_decref(j);
}

static void test_rejections_are_skipped_and_incomplete_events_refused(void **state) {
  (void)state;
  trp_row r;
  mrd_dispatch_event e = base(MRD_EV_COMMAND_REJECTED, MRD_TRIP_NONE, 0);
  assert_int_equal(trp_map_event(&e, &r), TRP_SKIPPED);
  e = base(MRD_EV_ARRIVED, MRD_TRIP_ARRIVED, 0); /* no seq */
  assert_int_equal(trp_map_event(&e, &r), TRP_INCOMPLETE);
  e = base(MRD_EV_ARRIVED, MRD_TRIP_ARRIVED, 5);
  e.has_pickup = false;
  assert_int_equal(trp_map_event(&e, &r), TRP_INCOMPLETE);
  e = base(MRD_EV_ARRIVED, MRD_TRIP_ARRIVED, 5);
  e.request_id[0] = '\0';
  assert_int_equal(trp_map_event(&e, &r), TRP_INCOMPLETE);
  e = base(MRD_EV_ARRIVED, MRD_TRIP_ARRIVED, 5);
  e.status = MRD_TRIP_NONE;
  assert_int_equal(trp_map_event(&e, &r), TRP_INCOMPLETE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_requested_fills_identity_and_leaves_steps_null),
      cmocka_unit_test(test_each_step_sets_its_own_timestamp_column),
      cmocka_unit_test(test_matched_carries_eta_and_payload_json),
      cmocka_unit_test(test_cancel_reason_is_kept_and_quotes_are_escaped),
      cmocka_unit_test(test_rejections_are_skipped_and_incomplete_events_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
