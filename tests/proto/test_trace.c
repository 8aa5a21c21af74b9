/*
 * test_trace.c: the trace of a ride request (mrd/trace.h): W3C traceparent parsing and
 * formatting (the spec's examples and its invalid cases), root and child spans, the
 * invariant checker, hop durations (complete, incomplete, clock skew), and the trace's
 * round trip through the DispatchCommand and DispatchEvent codecs, where a trace a consumer
 * cannot read is dropped and the payload still used.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.pb-c.h"
#include "dispatch_command.pb-c.h"
#include "dispatch_event.pb-c.h"
#include "mrd/proto.h"
#include "mrd/trace.h"

/* The W3C spec's example. */
static const char W3C_EXAMPLE[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void test_traceparent_parses_and_formats_the_w3c_example(void **state) {
  (void)state;
  mrd_traceparent tp;
  assert_true(mrd_traceparent_parse(W3C_EXAMPLE, &tp));
  assert_int_equal(tp.trace_id[0], 0x4b);
  assert_int_equal(tp.trace_id[15], 0x36);
  assert_int_equal(tp.parent_id[0], 0x00);
  assert_int_equal(tp.parent_id[7], 0xb7);
  assert_int_equal(tp.flags, 0x01);
  char buf[MRD_TRACEPARENT_LEN + 1];
  assert_int_equal(mrd_traceparent_format(&tp, buf, sizeof buf), MRD_TRACEPARENT_LEN);
  assert_string_equal(buf, W3C_EXAMPLE);
  assert_int_equal(mrd_traceparent_format(&tp, buf, sizeof buf - 1), -1); /* no room for NUL */
}

static void test_traceparent_refuses_what_the_spec_refuses(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* short */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 with more */
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* upper case */
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace-id */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent-id */
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* separator */
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  /* not hex */
      "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version not hex */
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* future, no '-' */
  };
  mrd_traceparent tp;
  memset(&tp, 0xab, sizeof tp);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (mrd_traceparent_parse(bad[i], &tp)) fail_msg("accepted [%s]", bad[i]);
    assert_int_equal(tp.flags, 0xab); /* untouched */
  }
  assert_false(mrd_traceparent_parse(NULL, &tp));
  /* a future version is read by its first 55 characters */
  assert_true(mrd_traceparent_parse(
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-later", &tp));
  assert_true(
      mrd_traceparent_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &tp));
  assert_int_equal(tp.flags, 0);
}

static void test_root_and_child_spans_keep_the_trace_and_are_never_zero(void **state) {
  (void)state;
  uint8_t rnd[24];
  for (int i = 0; i < 24; i++) rnd[i] = (uint8_t)(i + 1);
  mrd_traceparent root, child;
  mrd_traceparent_root(rnd, &root);
  assert_memory_equal(root.trace_id, rnd, 16);
  assert_memory_equal(root.parent_id, rnd + 16, 8);
  assert_int_equal(root.flags, 1);
  uint8_t r8[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  mrd_traceparent_child(&root, r8, &child);
  assert_memory_equal(child.trace_id, root.trace_id, 16);
  assert_memory_equal(child.parent_id, r8, 8);
  assert_int_equal(child.flags, root.flags);
  mrd_traceparent_child(&child, r8, &child); /* in place */
  assert_memory_equal(child.trace_id, root.trace_id, 16);
  /* an all-zero source still gives valid ids */
  uint8_t zero[24] = {0};
  mrd_traceparent_root(zero, &root);
  char buf[64];
  assert_int_equal(mrd_traceparent_format(&root, buf, sizeof buf), MRD_TRACEPARENT_LEN);
  assert_true(mrd_traceparent_parse(buf, &child));
  mrd_traceparent_child(&root, zero, &child);
  assert_int_equal(mrd_traceparent_format(&child, buf, sizeof buf), MRD_TRACEPARENT_LEN);
}

static mrd_trace full_trace(void) {
  mrd_trace t;
  memset(&t, 0, sizeof t);
  assert_true(mrd_traceparent_parse(W3C_EXAMPLE, &t.tp));
  t.present = true;
  /* received, produced, consumed, matched, event produced, consumed, sent */
  const int64_t us[MRD_STAMP_COUNT] = {1700000000000000, 1700000000000400, 1700000000001900,
                                       1700000000002100, 1700000000002600, 1700000000004100,
                                       1700000000004350};
  memcpy(t.stamp_us, us, sizeof us);
  return t;
}

static void test_hops_of_a_complete_trace_add_up_to_the_total(void **state) {
  (void)state;
  mrd_trace t = full_trace();
  assert_true(mrd_trace_check(&t));
  double hops[MRD_HOP_COUNT], total = -1;
  assert_int_equal(mrd_trace_hops_ms(&t, 0, hops, &total), MRD_TRACE_OK);
  const double want[MRD_HOP_COUNT] = {0.4, 1.5, 0.2, 0.5, 1.5, 0.25};
  double sum = 0;
  for (int h = 0; h < MRD_HOP_COUNT; h++) {
    assert_float_equal(hops[h], want[h], 1e-9);
    sum += hops[h];
  }
  assert_float_equal(total, 4.35, 1e-9);
  assert_float_equal(sum, total, 1e-9);
  assert_string_equal(mrd_trace_hop_name(MRD_HOP_GATEWAY_IN), "gateway_in");
  assert_string_equal(mrd_trace_hop_name(MRD_HOP_COMMANDS_KAFKA), "commands_kafka");
  assert_string_equal(mrd_trace_hop_name(MRD_HOP_DISPATCH_MATCH), "dispatch_match");
  assert_string_equal(mrd_trace_hop_name(MRD_HOP_DISPATCH_OUT), "dispatch_out");
  assert_string_equal(mrd_trace_hop_name(MRD_HOP_EVENTS_KAFKA), "events_kafka");
  assert_string_equal(mrd_trace_hop_name(MRD_HOP_GATEWAY_OUT), "gateway_out");
  assert_string_equal(mrd_trace_hop_name(MRD_HOP_COUNT), "none");
}

static void test_hops_refuse_incomplete_absent_and_skewed_traces(void **state) {
  (void)state;
  double hops[MRD_HOP_COUNT] = {-7}, total = -7;
  mrd_trace t = full_trace();
  t.stamp_us[MRD_STAMP_GATEWAY_SENT] = 0;
  assert_int_equal(mrd_trace_hops_ms(&t, 0, hops, &total), MRD_TRACE_EINCOMPLETE);
  t = full_trace();
  t.stamp_us[MRD_STAMP_DISPATCH_MATCHED] = 0; /* a gap: fails the invariant */
  assert_false(mrd_trace_check(&t));
  assert_int_equal(mrd_trace_hops_ms(&t, 0, hops, &total), MRD_TRACE_EABSENT);
  mrd_trace none;
  memset(&none, 0, sizeof none);
  assert_true(mrd_trace_check(&none));
  assert_int_equal(mrd_trace_hops_ms(&none, 0, hops, &total), MRD_TRACE_EABSENT);
  none.stamp_us[0] = 5; /* absent but not zero */
  assert_false(mrd_trace_check(&none));
  t = full_trace();
  t.stamp_us[MRD_STAMP_DISPATCH_CONSUMED] = t.stamp_us[MRD_STAMP_GATEWAY_PRODUCED] - 30;
  assert_int_equal(mrd_trace_hops_ms(&t, 10, hops, &total), MRD_TRACE_ESKEW);
  assert_true(hops[0] == -7 && total == -7); /* nothing written */
  /* within the tolerance: clamped to 0 */
  assert_int_equal(mrd_trace_hops_ms(&t, 50, hops, NULL), MRD_TRACE_OK);
  assert_true(hops[MRD_HOP_COMMANDS_KAFKA] == 0.0);
  t = full_trace();
  t.stamp_us[2] = -1;
  assert_false(mrd_trace_check(&t));
  t = full_trace();
  memset(t.tp.trace_id, 0, sizeof t.tp.trace_id);
  assert_false(mrd_trace_check(&t));
}

static mrd_command sample_request(void) {
  mrd_command c;
  memset(&c, 0, sizeof c);
  c.kind = MRD_CMD_REQUEST;
  c.shard = 1;
  c.epoch = 2;
  c.ts_ms = 1700000000000;
  strcpy(c.request_id, "q-1");
  strcpy(c.rider_id, "r-1");
  c.pickup = (mrd_latlon){40.75, -73.99};
  c.dropoff = (mrd_latlon){40.76, -73.98};
  return c;
}

static void test_command_carries_the_trace_and_its_wire_stamps(void **state) {
  (void)state;
  mrd_command in = sample_request(), out;
  in.trace = full_trace();
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len = 0;
  assert_int_equal(mrd_command_encode(&in, buf, sizeof buf, &len), MRD_PROTO_OK);
  assert_int_equal(mrd_command_decode(buf, len, &out), MRD_PROTO_OK);
  assert_true(out.trace.present);
  assert_memory_equal(&out.trace.tp, &in.trace.tp, sizeof in.trace.tp);
  for (int i = 0; i < MRD_STAMP_WIRE_COUNT; i++)
    assert_true(out.trace.stamp_us[i] == in.trace.stamp_us[i]);
  for (int i = MRD_STAMP_WIRE_COUNT; i < MRD_STAMP_COUNT; i++)
    assert_true(out.trace.stamp_us[i] == 0);
  /* without a trace: absent on the other side */
  in.trace.present = false;
  memset(&in.trace, 0, sizeof in.trace);
  assert_int_equal(mrd_command_encode(&in, buf, sizeof buf, &len), MRD_PROTO_OK);
  assert_int_equal(mrd_command_decode(buf, len, &out), MRD_PROTO_OK);
  assert_false(out.trace.present);
  /* a producer cannot write a broken trace */
  in.trace = full_trace();
  in.trace.stamp_us[1] = 0;
  assert_int_equal(mrd_command_encode(&in, buf, sizeof buf, &len), MRD_PROTO_EINVAL);
  in.trace = full_trace();
  memset(in.trace.tp.parent_id, 0, 8);
  assert_int_equal(mrd_command_encode(&in, buf, sizeof buf, &len), MRD_PROTO_EINVAL);
}

/* A command whose trace is of another version or malformed: the command decodes, the trace
 * is dropped. */
static void test_unreadable_trace_is_dropped_not_the_command(void **state) {
  (void)state;
  mrd_command in = sample_request(), out;
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len = 0;
  assert_int_equal(mrd_command_encode(&in, buf, sizeof buf, &len), MRD_PROTO_OK);
  Meridian__V1__DispatchCommand *pb = meridian__v1__dispatch_command__unpack(NULL, len, buf);
  assert_non_null(pb);
  static const struct {
    uint32_t version;
    const char *tp;
    int64_t received_us, produced_us;
  } cases[] = {
      {2, W3C_EXAMPLE, 1, 2},                                            /* other version */
      {1, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", 1, 2}, /* truncated */
      {1, NULL, 1, 2},                                                   /* none */
      {1, W3C_EXAMPLE, -5, 2},                                           /* negative */
      {1, W3C_EXAMPLE, 0, 2},                                            /* a gap */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    Meridian__V1__Trace tr;
    meridian__v1__trace__init(&tr);
    tr.has_version = 1;
    tr.version = cases[i].version;
    tr.traceparent = (char *)cases[i].tp;
    tr.has_gateway_received_us = cases[i].received_us != 0;
    tr.gateway_received_us = cases[i].received_us;
    tr.has_gateway_produced_us = 1;
    tr.gateway_produced_us = cases[i].produced_us;
    pb->trace = &tr;
    uint8_t forged[MRD_PROTO_MAX_SIZE];
    size_t n = meridian__v1__dispatch_command__pack(pb, forged);
    pb->trace = NULL;
    assert_int_equal(mrd_command_decode(forged, n, &out), MRD_PROTO_OK);
    assert_false(out.trace.present);
    assert_string_equal(out.request_id, "q-1");
  }
  meridian__v1__dispatch_command__free_unpacked(pb, NULL);
}

static void test_event_carries_the_trace(void **state) {
  (void)state;
  mrd_dispatch_event in, out;
  memset(&in, 0, sizeof in);
  in.type = MRD_EV_OFFERED;
  strcpy(in.trip_id, "t1-abc");
  in.seq = 2;
  in.shard = 1;
  in.epoch = 1;
  in.ts_ms = 1700000000002;
  strcpy(in.driver_id, "d-1");
  strcpy(in.offer_id, "o1-abc-1");
  in.has_pickup = in.has_dropoff = in.has_pickup_eta = true;
  in.pickup = (mrd_latlon){40.75, -73.99};
  in.dropoff = (mrd_latlon){40.76, -73.98};
  in.pickup_eta_s = 120;
  in.expires_at_ms = 1700000015000;
  in.trace = full_trace();
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len = 0;
  assert_int_equal(mrd_dispatch_event_encode(&in, buf, sizeof buf, &len), MRD_PROTO_OK);
  assert_int_equal(mrd_dispatch_event_decode(buf, len, &out), MRD_PROTO_OK);
  assert_true(out.trace.present);
  assert_memory_equal(&out.trace.tp, &in.trace.tp, sizeof in.trace.tp);
  assert_true(out.trace.stamp_us[MRD_STAMP_DISPATCH_PRODUCED] ==
              in.trace.stamp_us[MRD_STAMP_DISPATCH_PRODUCED]);
  assert_true(out.trace.stamp_us[MRD_STAMP_GATEWAY_CONSUMED] == 0);
  in.trace.tp.flags = 0;
  memset(in.trace.tp.trace_id, 0, 16);
  assert_int_equal(mrd_dispatch_event_encode(&in, buf, sizeof buf, &len), MRD_PROTO_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_traceparent_parses_and_formats_the_w3c_example),
      cmocka_unit_test(test_traceparent_refuses_what_the_spec_refuses),
      cmocka_unit_test(test_root_and_child_spans_keep_the_trace_and_are_never_zero),
      cmocka_unit_test(test_hops_of_a_complete_trace_add_up_to_the_total),
      cmocka_unit_test(test_hops_refuse_incomplete_absent_and_skewed_traces),
      cmocka_unit_test(test_command_carries_the_trace_and_its_wire_stamps),
      cmocka_unit_test(test_unreadable_trace_is_dropped_not_the_command),
      cmocka_unit_test(test_event_carries_the_trace),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
