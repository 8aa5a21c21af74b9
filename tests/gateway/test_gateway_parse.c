/*
 * test_gateway_parse.c: parsing and validation of every client message type (gateway.h),
 * read as tables: a message, the role that sends it, and the expected result (the fields
 * parsed, or the error code and the field it names). Covers wrong types, missing and
 * unknown fields, NaN / Infinity, out-of-range values, id shapes, refs, a 5 KiB message,
 * invalid UTF-8, duplicate keys and deeply nested JSON. The service area test uses the
 * project's Manhattan boundary.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway.h"

#define D GW_ROLE_DRIVER
#define R GW_ROLE_RIDER

typedef struct bad_case {
  gw_role role;
  const char *json;
  gw_code code;
  const char *field; /* the field the error must name; "" for none */
} bad_case;

static void expect_bad(const bad_case *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    gw_msg m;
    gw_error e;
    int rc = gw_parse(c[i].json, strlen(c[i].json), c[i].role, NULL, &m, &e);
    if (rc != -1) fail_msg("accepted: %s", c[i].json);
    if (e.code != c[i].code)
      fail_msg("%s: code %s, want %s (%s)", c[i].json, gw_code_name(e.code),
               gw_code_name(c[i].code), e.message);
    if (strcmp(e.field, c[i].field) != 0)
      fail_msg("%s: field '%s', want '%s' (%s)", c[i].json, e.field, c[i].field, e.message);
    if (e.message[0] == '\0') fail_msg("%s: empty message", c[i].json);
  }
}

static void parse_ok(gw_role role, const char *json, gw_msg *m) {
  gw_error e;
  if (gw_parse(json, strlen(json), role, NULL, m, &e) != 0)
    fail_msg("refused %s: %s %s (%s)", json, gw_code_name(e.code), e.field, e.message);
}

static void test_location_parses_every_field(void **state) {
  (void)state;
  gw_msg m;
  parse_ok(D,
           "{\"type\":\"location\",\"lat\":40.758,\"lon\":-73.9855,\"heading\":359.9,"
           "\"speed_mps\":12.5,\"ts\":1700000000123,\"seq\":42,\"ref\":\"a1\"}",
           &m);
  assert_int_equal(m.type, GW_MSG_LOCATION);
  assert_true(m.pos.lat == 40.758 && m.pos.lon == -73.9855);
  assert_true(m.has_heading && m.heading_deg == 359.9);
  assert_true(m.has_speed && m.speed_mps == 12.5);
  assert_true(m.ts_ms == 1700000000123);
  assert_true(m.seq == 42);
  assert_true(m.has_ref);
  assert_string_equal(m.ref, "a1");
  /* optional fields absent; integers where numbers go; extreme but valid values */
  parse_ok(D, "{\"type\":\"location\",\"lat\":-90,\"lon\":180,\"ts\":1,\"seq\":0}", &m);
  assert_false(m.has_heading);
  assert_false(m.has_speed);
  assert_false(m.has_ref);
  assert_true(m.pos.lat == -90 && m.pos.lon == 180 && m.seq == 0);
  parse_ok(D,
           "{\"seq\":9007199254740991,\"ts\":9007199254740991,\"lon\":0,\"lat\":0,"
           "\"type\":\"location\",\"heading\":0,\"speed_mps\":100}",
           &m);
  assert_true(m.seq == 9007199254740991ULL);
  /* 7.0 is an integer for JSON Schema, and for the gateway */
  parse_ok(D, "{\"type\":\"location\",\"lat\":0,\"lon\":0,\"ts\":1e3,\"seq\":7.0}", &m);
  assert_true(m.seq == 7 && m.ts_ms == 1000);
}

static void test_location_bad_cases_name_the_field(void **state) {
  (void)state;
  static const bad_case cases[] = {
      {D, "{\"type\":\"location\",\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST, "lat"},
      {D, "{\"type\":\"location\",\"lat\":\"40\",\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST,
       "lat"},
      {D, "{\"type\":\"location\",\"lat\":null,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST,
       "lat"},
      {D, "{\"type\":\"location\",\"lat\":true,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST,
       "lat"},
      {D, "{\"type\":\"location\",\"lat\":90.0001,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST,
       "lat"},
      {D, "{\"type\":\"location\",\"lat\":-91,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST,
       "lat"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":180.5,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST,
       "lon"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":[1],\"ts\":1,\"seq\":0}", GW_BAD_REQUEST,
       "lon"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"seq\":0}", GW_BAD_REQUEST, "ts"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1.5,\"seq\":0}", GW_BAD_REQUEST, "ts"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":9007199254740992.0}",
       GW_BAD_REQUEST, "seq"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":-1.0}", GW_BAD_REQUEST,
       "seq"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":0,\"seq\":0}", GW_BAD_REQUEST, "ts"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":9007199254740992,\"seq\":0}",
       GW_BAD_REQUEST, "ts"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1}", GW_BAD_REQUEST, "seq"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":-1}", GW_BAD_REQUEST, "seq"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":\"1\"}", GW_BAD_REQUEST,
       "seq"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":1,\"heading\":360}",
       GW_BAD_REQUEST, "heading"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":1,\"heading\":-0.1}",
       GW_BAD_REQUEST, "heading"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":1,\"speed_mps\":101}",
       GW_BAD_REQUEST, "speed_mps"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":1,\"speed_mps\":null}",
       GW_BAD_REQUEST, "speed_mps"},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":1,\"driver_id\":\"x\"}",
       GW_BAD_REQUEST, "driver_id"},
      /* NaN and Infinity are not JSON; a number too large for a double is refused too */
      {D, "{\"type\":\"location\",\"lat\":NaN,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST, ""},
      {D, "{\"type\":\"location\",\"lat\":Infinity,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST,
       ""},
      {D, "{\"type\":\"location\",\"lat\":-Infinity,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST,
       ""},
      {D, "{\"type\":\"location\",\"lat\":1e999,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST, ""},
      {D, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":99999999999999999999}",
       GW_BAD_REQUEST, ""},
  };
  expect_bad(cases, sizeof cases / sizeof cases[0]);
}

static void test_status_accepts_only_two_values(void **state) {
  (void)state;
  gw_msg m;
  parse_ok(D, "{\"type\":\"status\",\"status\":\"available\"}", &m);
  assert_int_equal(m.status, MRD_DRIVER_AVAILABLE);
  parse_ok(D, "{\"type\":\"status\",\"status\":\"offline\"}", &m);
  assert_int_equal(m.status, MRD_DRIVER_OFFLINE);
  static const bad_case cases[] = {
      {D, "{\"type\":\"status\"}", GW_BAD_REQUEST, "status"},
      {D, "{\"type\":\"status\",\"status\":\"busy\"}", GW_BAD_REQUEST, "status"},
      {D, "{\"type\":\"status\",\"status\":\"Available\"}", GW_BAD_REQUEST, "status"},
      {D, "{\"type\":\"status\",\"status\":1}", GW_BAD_REQUEST, "status"},
  };
  expect_bad(cases, sizeof cases / sizeof cases[0]);
}

static void test_offer_and_trip_messages_carry_their_shard(void **state) {
  (void)state;
  gw_msg m;
  parse_ok(D, "{\"type\":\"accept\",\"offer_id\":\"o1-abc\"}", &m);
  assert_int_equal(m.type, GW_MSG_ACCEPT);
  assert_string_equal(m.id, "o1-abc");
  assert_int_equal(m.shard, 1);
  parse_ok(D, "{\"type\":\"decline\",\"offer_id\":\"o63-x\"}", &m);
  assert_int_equal(m.type, GW_MSG_DECLINE);
  assert_int_equal(m.shard, 63);
  static const struct {
    const char *type;
    gw_msg_type want;
  } steps[] = {{"arrived", GW_MSG_ARRIVED}, {"start", GW_MSG_START}, {"complete", GW_MSG_COMPLETE}};
  for (size_t i = 0; i < 3; i++) {
    char json[128];
    snprintf(json, sizeof json, "{\"type\":\"%s\",\"trip_id\":\"t0-q.1\",\"ref\":\"\"}",
             steps[i].type);
    parse_ok(D, json, &m);
    assert_int_equal(m.type, steps[i].want);
    assert_string_equal(m.id, "t0-q.1");
    assert_int_equal(m.shard, 0);
    assert_true(m.has_ref);
    assert_string_equal(m.ref, "");
  }
  static const bad_case cases[] = {
      {D, "{\"type\":\"accept\"}", GW_BAD_REQUEST, "offer_id"},
      {D, "{\"type\":\"accept\",\"offer_id\":\"t1-abc\"}", GW_BAD_REQUEST, "offer_id"},
      {D, "{\"type\":\"accept\",\"offer_id\":\"o64-abc\"}", GW_BAD_REQUEST, "offer_id"},
      {D, "{\"type\":\"accept\",\"offer_id\":\"o1-\"}", GW_BAD_REQUEST, "offer_id"},
      {D, "{\"type\":\"accept\",\"offer_id\":7}", GW_BAD_REQUEST, "offer_id"},
      {D, "{\"type\":\"decline\",\"offer_id\":\"o1-a b\"}", GW_BAD_REQUEST, "offer_id"},
      {D, "{\"type\":\"decline\",\"offer_id\":\"o1-abc\",\"trip_id\":\"t1-a\"}", GW_BAD_REQUEST,
       "trip_id"},
      {D, "{\"type\":\"arrived\",\"trip_id\":\"o1-abc\"}", GW_BAD_REQUEST, "trip_id"},
      {D, "{\"type\":\"start\"}", GW_BAD_REQUEST, "trip_id"},
      {D, "{\"type\":\"complete\",\"trip_id\":\"t01-x\"}", GW_BAD_REQUEST, "trip_id"},
      {D,
       "{\"type\":\"complete\",\"trip_id\":"
       "\"t1-01234567890123456789012345678901234567890123456789012345678901\"}",
       GW_BAD_REQUEST, "trip_id"}, /* 65 characters */
  };
  expect_bad(cases, sizeof cases / sizeof cases[0]);
}

static void test_request_cancel_and_nearby_for_riders(void **state) {
  (void)state;
  gw_msg m;
  parse_ok(
      R,
      "{\"type\":\"request\",\"request_id\":\"req-1\",\"pickup\":{\"lat\":40.75,\"lon\":-73.99},"
      "\"dropoff\":{\"lon\":-73.95,\"lat\":40.8},\"ref\":\"r\"}",
      &m);
  assert_int_equal(m.type, GW_MSG_REQUEST);
  assert_string_equal(m.id, "req-1");
  assert_true(m.pickup.lat == 40.75 && m.pickup.lon == -73.99);
  assert_true(m.dropoff.lat == 40.8 && m.dropoff.lon == -73.95);
  parse_ok(R, "{\"type\":\"cancel\",\"request_id\":\"req-1\"}", &m);
  assert_int_equal(m.type, GW_MSG_CANCEL);
  assert_string_equal(m.id, "req-1");
  parse_ok(R, "{\"type\":\"nearby\",\"lat\":40.7,\"lon\":-74,\"radius_m\":5000}", &m);
  assert_int_equal(m.type, GW_MSG_NEARBY);
  assert_true(m.radius_m == 5000 && m.pos.lon == -74);
  static const bad_case cases[] = {
      {R,
       "{\"type\":\"request\",\"pickup\":{\"lat\":1,\"lon\":1},\"dropoff\":{\"lat\":1,\"lon\":1}}",
       GW_BAD_REQUEST, "request_id"},
      {R,
       "{\"type\":\"request\",\"request_id\":\"\",\"pickup\":{\"lat\":1,\"lon\":1},\"dropoff\":{"
       "\"lat\":1,\"lon\":1}}",
       GW_BAD_REQUEST, "request_id"},
      {R, "{\"type\":\"request\",\"request_id\":\"r\",\"dropoff\":{\"lat\":1,\"lon\":1}}",
       GW_BAD_REQUEST, "pickup"},
      {R,
       "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":[1,1],\"dropoff\":{\"lat\":1,\"lon\":"
       "1}}",
       GW_BAD_REQUEST, "pickup"},
      {R,
       "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":{\"lat\":91,\"lon\":1},\"dropoff\":{"
       "\"lat\":1,\"lon\":1}}",
       GW_BAD_REQUEST, "pickup.lat"},
      {R,
       "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":{\"lat\":1},\"dropoff\":{\"lat\":1,"
       "\"lon\":1}}",
       GW_BAD_REQUEST, "pickup.lon"},
      {R,
       "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":{\"lat\":1,\"lon\":1,\"alt\":3},"
       "\"dropoff\":{\"lat\":1,\"lon\":1}}",
       GW_BAD_REQUEST, "pickup"},
      {R,
       "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":{\"lat\":1,\"lon\":1},\"dropoff\":{"
       "\"lat\":1,\"lon\":\"x\"}}",
       GW_BAD_REQUEST, "dropoff.lon"},
      {R, "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":{\"lat\":1,\"lon\":1}}",
       GW_BAD_REQUEST, "dropoff"},
      {R, "{\"type\":\"cancel\",\"request_id\":\"a/b\"}", GW_BAD_REQUEST, "request_id"},
      {R,
       "{\"type\":\"cancel\",\"request_id\":"
       "\"01234567890123456789012345678901234567890123456789012345678901234\"}",
       GW_BAD_REQUEST, "request_id"},
      {R, "{\"type\":\"nearby\",\"lat\":1,\"lon\":1}", GW_BAD_REQUEST, "radius_m"},
      {R, "{\"type\":\"nearby\",\"lat\":1,\"lon\":1,\"radius_m\":0.5}", GW_BAD_REQUEST, "radius_m"},
      {R, "{\"type\":\"nearby\",\"lat\":1,\"lon\":1,\"radius_m\":5000.01}", GW_BAD_REQUEST,
       "radius_m"},
      {R, "{\"type\":\"nearby\",\"lat\":1,\"radius_m\":10}", GW_BAD_REQUEST, "lon"},
  };
  expect_bad(cases, sizeof cases / sizeof cases[0]);
}

static void test_type_is_required_known_and_of_the_role(void **state) {
  (void)state;
  static const bad_case cases[] = {
      {D, "{\"lat\":1}", GW_BAD_REQUEST, "type"},
      {D, "{\"type\":3}", GW_BAD_REQUEST, "type"},
      {D, "{\"type\":\"teleport\"}", GW_BAD_REQUEST, "type"},
      {D, "{\"type\":\"Location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST, "type"},
      {D, "{\"type\":\"request\",\"request_id\":\"r\"}", GW_BAD_REQUEST, "type"}, /* rider's */
      {R, "{\"type\":\"location\",\"lat\":1,\"lon\":1,\"ts\":1,\"seq\":0}", GW_BAD_REQUEST, "type"},
      {R, "{\"type\":\"accept\",\"offer_id\":\"o1-a\"}", GW_BAD_REQUEST, "type"},
      {R, "{\"type\":\"none\"}", GW_BAD_REQUEST, "type"},
  };
  expect_bad(cases, sizeof cases / sizeof cases[0]);
}

static void test_malformed_json_is_a_bad_request(void **state) {
  (void)state;
  static const bad_case cases[] = {
      {D, "", GW_BAD_REQUEST, ""},
      {D, "   ", GW_BAD_REQUEST, ""},
      {D, "{", GW_BAD_REQUEST, ""},
      {D, "{\"type\":\"status\",\"status\":\"offline\"} trailing", GW_BAD_REQUEST, ""},
      {D, "[\"type\",\"status\"]", GW_BAD_REQUEST, ""},
      {D, "\"status\"", GW_BAD_REQUEST, ""},
      {D, "null", GW_BAD_REQUEST, ""},
      {D, "{'type':'status'}", GW_BAD_REQUEST, ""},
      {D, "{\"type\":\"status\",\"status\":\"offline\",}", GW_BAD_REQUEST, ""},
      /* duplicate keys: which one would win is not a question we answer */
      {D, "{\"type\":\"status\",\"status\":\"offline\",\"status\":\"available\"}", GW_BAD_REQUEST,
       ""},
      /* "\u0000" inside a string */
      {D, "{\"type\":\"status\",\"status\":\"off\\u0000line\"}", GW_BAD_REQUEST, ""},
  };
  expect_bad(cases, sizeof cases / sizeof cases[0]);
}

static void test_invalid_utf8_is_refused(void **state) {
  (void)state;
  static const char *const bad[] = {
      "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"\xff\"}",
      "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"\xc3\"}",         /* truncated */
      "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"\xc0\xaf\"}",     /* overlong '/' */
      "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"\xed\xa0\x80\"}", /* surrogate */
      "{\"type\":\"status\",\"st\xe9tus\":\"offline\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    gw_msg m;
    gw_error e;
    assert_int_equal(gw_parse(bad[i], strlen(bad[i]), D, NULL, &m, &e), -1);
    assert_int_equal(e.code, GW_BAD_REQUEST);
  }
  /* bytes that are not UTF-8 in a token jansson cannot read: its error text quotes them,
   * and the error must still format as JSON (a client gets an answer) */
  static const char *const unquotable[] = {"\"c\\\xde\x8f", "{\"type\":\xff\xfe}",
                                           "{\"a\":tru\xc3\xa9}"};
  for (size_t i = 0; i < sizeof unquotable / sizeof unquotable[0]; i++) {
    gw_msg m;
    gw_error e;
    memset(&e, 0, sizeof e);
    assert_int_equal(gw_parse(unquotable[i], strlen(unquotable[i]), D, NULL, &m, &e), -1);
    assert_int_equal(e.code, GW_BAD_REQUEST);
    for (const char *p = e.message; *p; p++)
      assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    char buf[1024];
    assert_true(gw_format_error(&e, buf, sizeof buf) > 0);
  }
  /* valid multi-byte UTF-8 in a ref is fine and comes back intact */
  gw_msg m;
  parse_ok(D,
           "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"caf\xc3\xa9 \xf0\x9f\x9a\x95\"}",
           &m);
  assert_string_equal(m.ref, "caf\xc3\xa9 \xf0\x9f\x9a\x95");
}

static void test_refs_are_strings_of_at_most_128_characters(void **state) {
  (void)state;
  char json[1200], ref[700];
  gw_msg m;
  gw_error e;
  /* 128 two-byte characters: 256 bytes, accepted */
  ref[0] = '\0';
  for (int i = 0; i < 128; i++) strcat(ref, "\xc3\xa9");
  snprintf(json, sizeof json, "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"%s\"}", ref);
  parse_ok(D, json, &m);
  assert_int_equal(strlen(m.ref), 256);
  /* 129 characters: refused, and the error cannot echo it */
  strcat(ref, "x");
  snprintf(json, sizeof json, "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"%s\"}", ref);
  assert_int_equal(gw_parse(json, strlen(json), D, NULL, &m, &e), -1);
  assert_string_equal(e.field, "ref");
  assert_false(e.has_ref);
  static const bad_case cases[] = {
      {D, "{\"type\":\"status\",\"status\":\"offline\",\"ref\":5}", GW_BAD_REQUEST, "ref"},
      {D, "{\"type\":\"status\",\"status\":\"offline\",\"ref\":null}", GW_BAD_REQUEST, "ref"},
  };
  expect_bad(cases, sizeof cases / sizeof cases[0]);
  /* an error on another field carries the valid ref, so the client can match it */
  const char *bad = "{\"type\":\"status\",\"status\":\"lunch\",\"ref\":\"k-9\"}";
  assert_int_equal(gw_parse(bad, strlen(bad), D, NULL, &m, &e), -1);
  assert_true(e.has_ref);
  assert_string_equal(e.ref, "k-9");
  assert_string_equal(e.field, "status");
}

static void test_size_limit_is_4_kib(void **state) {
  (void)state;
  /* a valid message padded with spaces to exactly 4096 bytes is fine; 5 KiB is too large */
  static char buf[5 * 1024 + 1];
  const char *msg = "{\"type\":\"status\",\"status\":\"offline\"}";
  memset(buf, ' ', sizeof buf);
  memcpy(buf, msg, strlen(msg));
  gw_msg m;
  gw_error e;
  assert_int_equal(gw_parse(buf, GW_MAX_MESSAGE_BYTES, D, NULL, &m, &e), 0);
  assert_int_equal(gw_parse(buf, GW_MAX_MESSAGE_BYTES + 1, D, NULL, &m, &e), -1);
  assert_int_equal(e.code, GW_TOO_LARGE);
  assert_int_equal(gw_parse(buf, 5 * 1024, D, NULL, &m, &e), -1);
  assert_int_equal(e.code, GW_TOO_LARGE);
}

static void test_deeply_nested_json_is_refused_before_parsing(void **state) {
  (void)state;
  static char buf[4096];
  size_t n = 0;
  n += (size_t)snprintf(buf, sizeof buf, "{\"type\":\"status\",\"status\":\"offline\",\"x\":");
  for (int i = 0; i < 1500; i++) buf[n++] = '[';
  for (int i = 0; i < 1500; i++) buf[n++] = ']';
  buf[n++] = '}';
  gw_msg m;
  gw_error e;
  assert_int_equal(gw_parse(buf, n, D, NULL, &m, &e), -1);
  assert_int_equal(e.code, GW_BAD_REQUEST);
  assert_non_null(strstr(e.message, "nested"));
  /* brackets inside strings do not count */
  const char *s = "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"[[[[[[{{{{{{\\\"[[[\"}";
  assert_int_equal(gw_parse(s, strlen(s), D, NULL, &m, &e), 0);
  /* depth 5 refused, depth 4 reaches field validation */
  s = "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":{\"lat\":[[[1]]],\"lon\":1},"
      "\"dropoff\":{\"lat\":1,\"lon\":1}}";
  assert_int_equal(gw_parse(s, strlen(s), R, NULL, &m, &e), -1);
  assert_non_null(strstr(e.message, "nested"));
  s = "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":{\"lat\":[[1]],\"lon\":1},"
      "\"dropoff\":{\"lat\":1,\"lon\":1}}";
  assert_int_equal(gw_parse(s, strlen(s), R, NULL, &m, &e), -1);
  assert_string_equal(e.field, "pickup.lat");
}

static void test_text_need_not_be_nul_terminated(void **state) {
  (void)state;
  const char *s = "{\"type\":\"status\",\"status\":\"offline\"}GARBAGE";
  gw_msg m;
  gw_error e;
  assert_int_equal(gw_parse(s, strlen(s) - 7, D, NULL, &m, &e), 0);
  assert_int_equal(m.status, MRD_DRIVER_OFFLINE);
}

static gw_area *manhattan(void) {
  const char *src = getenv("MERIDIAN_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/data/roads/manhattan-boundary.geojson", src ? src : ".");
  char err[256];
  gw_area *a = gw_area_load(path, err, sizeof err);
  if (!a) fail_msg("%s", err);
  return a;
}

static void test_positions_and_pickups_outside_the_area_are_out_of_area(void **state) {
  (void)state;
  gw_area *area = manhattan();
  gw_msg m;
  gw_error e;
  const char *in = "{\"type\":\"location\",\"lat\":40.758,\"lon\":-73.9855,\"ts\":1,\"seq\":1}";
  const char *out =
      "{\"type\":\"location\",\"lat\":40.6782,\"lon\":-73.9442,\"ts\":1,\"seq\":1}"; /* Brooklyn */
  assert_int_equal(gw_parse(in, strlen(in), D, area, &m, &e), 0);
  assert_int_equal(gw_parse(out, strlen(out), D, area, &m, &e), -1);
  assert_int_equal(e.code, GW_OUT_OF_AREA);
  const char *req_out =
      "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":{\"lat\":40.6782,\"lon\":-73.9442},"
      "\"dropoff\":{\"lat\":40.758,\"lon\":-73.9855},\"ref\":\"z\"}";
  assert_int_equal(gw_parse(req_out, strlen(req_out), R, area, &m, &e), -1);
  assert_int_equal(e.code, GW_OUT_OF_AREA);
  assert_string_equal(e.field, "pickup");
  assert_string_equal(e.ref, "z");
  /* the drop-off may leave the area (8% of real Manhattan trips do) */
  const char *req_in =
      "{\"type\":\"request\",\"request_id\":\"r\",\"pickup\":{\"lat\":40.758,\"lon\":-73.9855},"
      "\"dropoff\":{\"lat\":40.6413,\"lon\":-73.7781}}";
  assert_int_equal(gw_parse(req_in, strlen(req_in), R, area, &m, &e), 0);
  /* nearby is not restricted */
  const char *nb = "{\"type\":\"nearby\",\"lat\":40.6782,\"lon\":-73.9442,\"radius_m\":100}";
  assert_int_equal(gw_parse(nb, strlen(nb), R, area, &m, &e), 0);
  gw_area_free(area);
}

static void test_names_of_codes_and_types(void **state) {
  (void)state;
  static const char *const want[] = {
      "bad_request",   "unauthorized",  "forbidden", "rate_limited", "out_of_area",
      "unknown_offer", "invalid_state", "too_large", "unavailable",  "internal"};
  for (int c = GW_BAD_REQUEST; c < GW_CODE_COUNT; c++) {
    assert_string_equal(gw_code_name((gw_code)c), want[c - 1]);
    assert_true(mrd_error_code_valid(gw_code_name((gw_code)c)));
  }
  assert_string_equal(gw_code_name((gw_code)99), "internal");
  assert_string_equal(gw_msg_type_name(GW_MSG_NEARBY), "nearby");
  assert_string_equal(gw_msg_type_name((gw_msg_type)99), "none");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_location_parses_every_field),
      cmocka_unit_test(test_location_bad_cases_name_the_field),
      cmocka_unit_test(test_status_accepts_only_two_values),
      cmocka_unit_test(test_offer_and_trip_messages_carry_their_shard),
      cmocka_unit_test(test_request_cancel_and_nearby_for_riders),
      cmocka_unit_test(test_type_is_required_known_and_of_the_role),
      cmocka_unit_test(test_malformed_json_is_a_bad_request),
      cmocka_unit_test(test_invalid_utf8_is_refused),
      cmocka_unit_test(test_refs_are_strings_of_at_most_128_characters),
      cmocka_unit_test(test_size_limit_is_4_kib),
      cmocka_unit_test(test_deeply_nested_json_is_refused_before_parsing),
      cmocka_unit_test(test_text_need_not_be_nul_terminated),
      cmocka_unit_test(test_positions_and_pickups_outside_the_area_are_out_of_area),
      cmocka_unit_test(test_names_of_codes_and_types),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
