/*
 * test_gateway_replies.c: the messages the gateway writes (gateway.h): ack, error, nearby,
 * and the client message each dispatch event becomes for the rider and for the driver.
 * The outputs are parsed back with jansson and checked field by field; their agreement
 * with schemas/ws/server/ is checked by check_schemas.py.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway.h"

static json_t *parse(const char *buf, int n) {
  assert_true(n > 0);
  assert_int_equal(strlen(buf), (size_t)n);
  json_error_t e;
  json_t *o = json_loads(buf, 0, &e);
  if (!o) fail_msg("%s: %s", buf, e.text);
  return o;
}

static const char *str(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  if (!s) fail_msg("no string %s", k);
  return s;
}

static void test_ack_echoes_the_ref(void **state) {
  (void)state;
  char buf[256];
  json_t *o = parse(buf, gw_format_ack("q\"\\\xc3\xa9", buf, sizeof buf));
  assert_string_equal(str(o, "type"), "ack");
  assert_string_equal(str(o, "ref"), "q\"\\\xc3\xa9");
  assert_int_equal(json_object_size(o), 2);
  json_decref(o);
  assert_int_equal(gw_format_ack("abc", buf, 10), -1); /* does not fit */
  assert_int_equal(gw_format_ack(NULL, buf, sizeof buf), -1);
}

static void test_error_has_code_message_and_optional_field_and_ref(void **state) {
  (void)state;
  char buf[512];
  gw_error e;
  memset(&e, 0, sizeof e);
  gw_error_set(&e, GW_RATE_LIMITED, NULL, "slow down: %d/s", 5);
  json_t *o = parse(buf, gw_format_error(&e, buf, sizeof buf));
  assert_string_equal(str(o, "code"), "rate_limited");
  assert_string_equal(str(o, "message"), "slow down: 5/s");
  assert_null(json_object_get(o, "field"));
  assert_null(json_object_get(o, "ref"));
  json_decref(o);
  gw_error_set(&e, GW_BAD_REQUEST, "pickup.lat", "pickup.lat: bad");
  e.has_ref = true;
  strcpy(e.ref, "r-1");
  o = parse(buf, gw_format_error(&e, buf, sizeof buf));
  assert_string_equal(str(o, "type"), "error");
  assert_string_equal(str(o, "field"), "pickup.lat");
  assert_string_equal(str(o, "ref"), "r-1");
  json_decref(o);
}

static void test_nearby_lists_valid_points_only(void **state) {
  (void)state;
  char buf[512];
  mrd_latlon pts[3] = {{40.75, -73.99}, {100, 0}, {40.76, -73.98}};
  json_t *o = parse(buf, gw_format_nearby(pts, 3, "n1", buf, sizeof buf));
  json_t *d = json_object_get(o, "drivers");
  assert_int_equal(json_array_size(d), 2);
  assert_true(json_real_value(json_object_get(json_array_get(d, 1), "lat")) == 40.76);
  assert_string_equal(str(o, "ref"), "n1");
  json_decref(o);
  o = parse(buf, gw_format_nearby(NULL, 0, NULL, buf, sizeof buf));
  assert_int_equal(json_array_size(json_object_get(o, "drivers")), 0);
  assert_null(json_object_get(o, "ref"));
  json_decref(o);
}

static mrd_dispatch_event event(mrd_event_type type) {
  mrd_dispatch_event e;
  memset(&e, 0, sizeof e);
  e.type = type;
  strcpy(e.trip_id, "t1-abc");
  e.seq = 3;
  e.shard = 1;
  e.epoch = 1;
  e.ts_ms = 1700000000000;
  strcpy(e.rider_id, "rider-1");
  strcpy(e.driver_id, "drv-1");
  strcpy(e.request_id, "req-1");
  strcpy(e.offer_id, "o1-abc-1");
  e.has_pickup = e.has_dropoff = e.has_driver_pos = e.has_pickup_eta = true;
  e.pickup = (mrd_latlon){40.78, -73.97};
  e.dropoff = (mrd_latlon){40.75, -73.99};
  e.driver_pos = (mrd_latlon){40.79, -73.96};
  e.pickup_eta_s = 120;
  e.expires_at_ms = 1700000010000;
  return e;
}

/* The table: for each event type, the message type each role gets ("" = nothing). */
static void test_each_event_goes_to_the_right_roles_as_the_right_message(void **state) {
  (void)state;
  static const struct {
    mrd_event_type type;
    const char *rider, *driver, *status; /* status of a trip message */
  } table[] = {
      {MRD_EV_REQUESTED, "trip", "", "requested"},
      {MRD_EV_OFFERED, "trip", "offer", "offered"},
      {MRD_EV_OFFER_DECLINED, "", "", NULL},
      {MRD_EV_OFFER_EXPIRED, "", "trip", "offer_expired"},
      {MRD_EV_MATCHED, "matched", "trip", "matched"},
      {MRD_EV_ARRIVED, "trip", "trip", "arrived"},
      {MRD_EV_STARTED, "trip", "trip", "started"},
      {MRD_EV_COMPLETED, "trip", "trip", "completed"},
      {MRD_EV_CANCELLED, "trip", "trip", "cancelled"},
      {MRD_EV_NO_DRIVER, "no_driver", "", NULL},
  };
  char buf[1024];
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    mrd_dispatch_event ev = event(table[i].type);
    const char *want[2] = {table[i].driver, table[i].rider}; /* indexed by gw_role */
    const char *rid, *did;
    gw_event_targets(&ev, &rid, &did);
    assert_true((rid != NULL) == (table[i].rider[0] != '\0'));
    assert_true((did != NULL) == (table[i].driver[0] != '\0'));
    for (int role = 0; role < 2; role++) {
      int n = gw_format_event(&ev, (gw_role)role, buf, sizeof buf);
      if (want[role][0] == '\0') {
        assert_int_equal(n, 0);
        continue;
      }
      json_t *o = parse(buf, n);
      if (strcmp(str(o, "type"), want[role]) != 0)
        fail_msg("event %s role %d: got %s want %s", mrd_event_type_name(ev.type), role,
                 str(o, "type"), want[role]);
      if (strcmp(want[role], "trip") == 0) {
        assert_string_equal(str(o, "status"), table[i].status);
        assert_int_equal(json_integer_value(json_object_get(o, "seq")), 3);
        assert_string_equal(str(o, "trip_id"), "t1-abc");
        /* a rider learns nothing of the driver before he is matched */
        bool before_match = ev.type == MRD_EV_REQUESTED || ev.type == MRD_EV_OFFERED;
        if (role == GW_ROLE_RIDER && before_match) {
          assert_null(json_object_get(o, "driver_id"));
          assert_null(json_object_get(o, "driver"));
        }
        if (role == GW_ROLE_RIDER) assert_null(json_object_get(o, "offer_id"));
      }
      json_decref(o);
    }
  }
}

static void test_offer_and_matched_carry_what_the_schema_requires(void **state) {
  (void)state;
  char buf[1024];
  mrd_dispatch_event ev = event(MRD_EV_OFFERED);
  json_t *o = parse(buf, gw_format_event(&ev, GW_ROLE_DRIVER, buf, sizeof buf));
  assert_string_equal(str(o, "offer_id"), "o1-abc-1");
  assert_string_equal(str(o, "trip_id"), "t1-abc");
  assert_true(json_integer_value(json_object_get(o, "expires_at")) == 1700000010000);
  assert_true(json_number_value(json_object_get(o, "pickup_eta_s")) == 120);
  assert_true(json_number_value(json_object_get(json_object_get(o, "pickup"), "lat")) == 40.78);
  json_decref(o);
  ev = event(MRD_EV_MATCHED);
  o = parse(buf, gw_format_event(&ev, GW_ROLE_RIDER, buf, sizeof buf));
  assert_string_equal(str(o, "driver_id"), "drv-1");
  assert_true(json_number_value(json_object_get(json_object_get(o, "driver"), "lon")) == -73.96);
  json_decref(o);
}

static void test_rejected_command_becomes_an_error_for_its_sender_only(void **state) {
  (void)state;
  char buf[512];
  mrd_dispatch_event ev = event(MRD_EV_COMMAND_REJECTED);
  ev.rider_id[0] = '\0';
  strcpy(ev.error_code, "unknown_offer");
  strcpy(ev.ref, "acc-7");
  const char *rid, *did;
  gw_event_targets(&ev, &rid, &did);
  assert_null(rid);
  assert_string_equal(did, "drv-1");
  assert_int_equal(gw_format_event(&ev, GW_ROLE_RIDER, buf, sizeof buf), 0);
  json_t *o = parse(buf, gw_format_event(&ev, GW_ROLE_DRIVER, buf, sizeof buf));
  assert_string_equal(str(o, "type"), "error");
  assert_string_equal(str(o, "code"), "unknown_offer");
  assert_string_equal(str(o, "ref"), "acc-7");
  json_decref(o);
}

static void test_event_too_big_for_the_buffer_fails_cleanly(void **state) {
  (void)state;
  char buf[32];
  mrd_dispatch_event ev = event(MRD_EV_MATCHED);
  assert_int_equal(gw_format_event(&ev, GW_ROLE_RIDER, buf, sizeof buf), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ack_echoes_the_ref),
      cmocka_unit_test(test_error_has_code_message_and_optional_field_and_ref),
      cmocka_unit_test(test_nearby_lists_valid_points_only),
      cmocka_unit_test(test_each_event_goes_to_the_right_roles_as_the_right_message),
      cmocka_unit_test(test_offer_and_matched_carry_what_the_schema_requires),
      cmocka_unit_test(test_rejected_command_becomes_an_error_for_its_sender_only),
      cmocka_unit_test(test_event_too_big_for_the_buffer_fails_cleanly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
