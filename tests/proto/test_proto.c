/*
 * test_proto.c: the Kafka payload codecs of mrd_proto: round trips of every message kind,
 * the validation rules on encode and decode, versions, and garbage that must be refused
 * without a crash (random bytes; SEED= replays). The ids' shapes are in test_proto_ids.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dispatch_command.pb-c.h"
#include "dispatch_event.pb-c.h"
#include "driver_location.pb-c.h"
#include "mrd/proto.h"

static mrd_driver_location sample_location(void) {
  mrd_driver_location m;
  memset(&m, 0, sizeof m);
  strcpy(m.driver_id, "drv-42");
  m.pos = (mrd_latlon){40.7580, -73.9855};
  m.has_heading = true;
  m.heading_deg = 359.5;
  m.has_speed = true;
  m.speed_mps = 12.25;
  m.ts_ms = 1700000000123;
  m.seq = 77;
  m.halo = true;
  m.owner_shard = 1;
  m.epoch = 3;
  strcpy(m.geohash, "dr5ru6j2c");
  m.received_ms = 1700000000150;
  return m;
}

static void test_location_round_trip_keeps_every_field(void **state) {
  (void)state;
  mrd_driver_location in = sample_location(), out;
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len = 0;
  assert_int_equal(mrd_driver_location_encode(&in, buf, sizeof buf, &len), MRD_PROTO_OK);
  assert_true(len > 0 && len < 200);
  assert_int_equal(mrd_driver_location_decode(buf, len, &out), MRD_PROTO_OK);
  assert_string_equal(out.driver_id, "drv-42");
  assert_true(out.pos.lat == in.pos.lat && out.pos.lon == in.pos.lon);
  assert_true(out.has_heading && out.heading_deg == 359.5);
  assert_true(out.has_speed && out.speed_mps == 12.25);
  assert_true(out.ts_ms == in.ts_ms);
  assert_true(out.seq == 77);
  assert_true(out.halo);
  assert_int_equal(out.owner_shard, 1);
  assert_true(out.epoch == 3);
  assert_string_equal(out.geohash, "dr5ru6j2c");
  assert_true(out.received_ms == in.received_ms);
}

static void test_location_optional_fields_stay_absent(void **state) {
  (void)state;
  mrd_driver_location in = sample_location(), out;
  in.has_heading = in.has_speed = false;
  in.halo = false;
  in.geohash[0] = '\0';
  in.received_ms = 0;
  uint8_t buf[256];
  size_t len;
  assert_int_equal(mrd_driver_location_encode(&in, buf, sizeof buf, &len), MRD_PROTO_OK);
  assert_int_equal(mrd_driver_location_decode(buf, len, &out), MRD_PROTO_OK);
  assert_false(out.has_heading);
  assert_false(out.has_speed);
  assert_false(out.halo);
  assert_string_equal(out.geohash, "");
  assert_true(out.received_ms == 0);
}

static void test_location_encode_refuses_invalid_fields(void **state) {
  (void)state;
  uint8_t buf[256];
  size_t len;
  struct {
    const char *what;
    void (*spoil)(mrd_driver_location *);
  } cases[] = {
      {"empty driver", NULL},
  };
  (void)cases;
  mrd_driver_location m;
#define BAD(stmt)                                                                                  \
  do {                                                                                             \
    m = sample_location();                                                                         \
    stmt;                                                                                          \
    assert_int_equal(mrd_driver_location_encode(&m, buf, sizeof buf, &len), MRD_PROTO_EINVAL);     \
  } while (0)
  BAD(m.driver_id[0] = '\0');
  BAD(strcpy(m.driver_id, "drv 42"));
  BAD(m.pos.lat = NAN);
  BAD(m.pos.lon = INFINITY);
  BAD(m.pos.lat = 90.0001);
  BAD(m.pos.lon = -180.5);
  BAD(m.heading_deg = 360.0);
  BAD(m.heading_deg = -1.0);
  BAD(m.speed_mps = 100.5);
  BAD(m.speed_mps = NAN);
  BAD(m.ts_ms = 0);
  BAD(m.owner_shard = 64);
  BAD(m.epoch = 0);
  BAD(strcpy(m.geohash, "dr5ru6j2a")); /* 'a' is not in the geohash alphabet */
#undef BAD
  /* absent heading may hold any value */
  m = sample_location();
  m.has_heading = false;
  m.heading_deg = NAN;
  assert_int_equal(mrd_driver_location_encode(&m, buf, sizeof buf, &len), MRD_PROTO_OK);
}

static void test_encode_reports_small_buffer(void **state) {
  (void)state;
  mrd_driver_location m = sample_location();
  uint8_t buf[16];
  size_t len;
  assert_int_equal(mrd_driver_location_encode(&m, buf, sizeof buf, &len), MRD_PROTO_ERANGE);
}

static void test_location_decode_refuses_other_versions(void **state) {
  (void)state;
  Meridian__V1__DriverLocation pb;
  meridian__v1__driver_location__init(&pb);
  pb.driver_id = "d1";
  pb.has_lat = pb.has_lon = pb.has_ts_ms = pb.has_seq = pb.has_owner_shard = pb.has_epoch = 1;
  pb.lat = 40.7;
  pb.lon = -74.0;
  pb.ts_ms = 5;
  pb.epoch = 1;
  uint8_t buf[256];
  mrd_driver_location out;
  size_t len = meridian__v1__driver_location__pack(&pb, buf); /* no version */
  assert_int_equal(mrd_driver_location_decode(buf, len, &out), MRD_PROTO_EVERSION);
  pb.has_version = 1;
  pb.version = 2;
  len = meridian__v1__driver_location__pack(&pb, buf);
  assert_int_equal(mrd_driver_location_decode(buf, len, &out), MRD_PROTO_EVERSION);
  pb.version = 1;
  len = meridian__v1__driver_location__pack(&pb, buf);
  assert_int_equal(mrd_driver_location_decode(buf, len, &out), MRD_PROTO_OK);
  pb.lat = NAN; /* a producer that skipped the wrapper */
  len = meridian__v1__driver_location__pack(&pb, buf);
  assert_int_equal(mrd_driver_location_decode(buf, len, &out), MRD_PROTO_EINVAL);
  pb.lat = 40.7;
  pb.has_ts_ms = 0; /* a required field missing */
  len = meridian__v1__driver_location__pack(&pb, buf);
  assert_int_equal(mrd_driver_location_decode(buf, len, &out), MRD_PROTO_EINVAL);
  pb.has_ts_ms = 1;
  char long_id[100];
  memset(long_id, 'x', 99);
  long_id[99] = '\0';
  pb.driver_id = long_id; /* longer than MRD_ID_MAX */
  len = meridian__v1__driver_location__pack(&pb, buf);
  assert_int_equal(mrd_driver_location_decode(buf, len, &out), MRD_PROTO_EINVAL);
}

static mrd_command base_command(mrd_cmd_kind kind, uint32_t shard) {
  mrd_command c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.shard = shard;
  c.epoch = 1;
  c.ts_ms = 1700000000000;
  return c;
}

static void roundtrip_command(const mrd_command *in, mrd_command *out) {
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len;
  assert_int_equal(mrd_command_encode(in, buf, sizeof buf, &len), MRD_PROTO_OK);
  assert_int_equal(mrd_command_decode(buf, len, out), MRD_PROTO_OK);
  assert_int_equal(out->kind, in->kind);
  assert_int_equal(out->shard, in->shard);
  assert_true(out->epoch == in->epoch && out->ts_ms == in->ts_ms);
  assert_string_equal(out->ref, in->ref);
}

static void test_command_round_trip_of_every_kind(void **state) {
  (void)state;
  mrd_command in, out;
  in = base_command(MRD_CMD_REQUEST, 0);
  strcpy(in.ref, "r-\xc3\xa9-1");
  strcpy(in.request_id, "req-1");
  strcpy(in.rider_id, "rider-7");
  in.pickup = (mrd_latlon){40.7128, -74.0060};
  in.dropoff = (mrd_latlon){40.8, -73.95};
  roundtrip_command(&in, &out);
  assert_string_equal(out.request_id, "req-1");
  assert_string_equal(out.rider_id, "rider-7");
  assert_true(out.pickup.lat == 40.7128 && out.dropoff.lon == -73.95);

  in = base_command(MRD_CMD_CANCEL, 1);
  strcpy(in.request_id, "req-1");
  strcpy(in.rider_id, "rider-7");
  roundtrip_command(&in, &out);
  assert_string_equal(out.request_id, "req-1");

  mrd_cmd_kind replies[] = {MRD_CMD_ACCEPT, MRD_CMD_DECLINE};
  for (size_t i = 0; i < 2; i++) {
    in = base_command(replies[i], 1);
    strcpy(in.offer_id, "o1-abc");
    strcpy(in.driver_id, "drv-1");
    roundtrip_command(&in, &out);
    assert_string_equal(out.offer_id, "o1-abc");
    assert_string_equal(out.driver_id, "drv-1");
  }
  mrd_cmd_kind steps[] = {MRD_CMD_ARRIVED, MRD_CMD_START, MRD_CMD_COMPLETE};
  for (size_t i = 0; i < 3; i++) {
    in = base_command(steps[i], 63);
    strcpy(in.trip_id, "t63-x.y:z_1");
    strcpy(in.driver_id, "drv-1");
    roundtrip_command(&in, &out);
    assert_string_equal(out.trip_id, "t63-x.y:z_1");
  }
  mrd_driver_status sts[] = {MRD_DRIVER_AVAILABLE, MRD_DRIVER_OFFLINE};
  for (size_t i = 0; i < 2; i++) {
    in = base_command(MRD_CMD_STATUS, 5);
    strcpy(in.driver_id, "drv-1");
    in.status = sts[i];
    roundtrip_command(&in, &out);
    assert_int_equal(out.status, sts[i]);
  }
}

static void test_command_encode_refuses_inconsistent_commands(void **state) {
  (void)state;
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len;
  mrd_command c = base_command(MRD_CMD_ACCEPT, 1);
  strcpy(c.offer_id, "o0-abc"); /* names shard 0, routed to 1 */
  strcpy(c.driver_id, "d");
  assert_int_equal(mrd_command_encode(&c, buf, sizeof buf, &len), MRD_PROTO_EINVAL);
  c.shard = 0;
  assert_int_equal(mrd_command_encode(&c, buf, sizeof buf, &len), MRD_PROTO_OK);
  strcpy(c.trip_id, "t0-abc"); /* a field accept does not use */
  assert_int_equal(mrd_command_encode(&c, buf, sizeof buf, &len), MRD_PROTO_EINVAL);

  c = base_command(MRD_CMD_REQUEST, 0);
  strcpy(c.request_id, "r1");
  strcpy(c.rider_id, "u1");
  c.pickup = (mrd_latlon){NAN, 0};
  assert_int_equal(mrd_command_encode(&c, buf, sizeof buf, &len), MRD_PROTO_EINVAL);
  c.pickup = (mrd_latlon){40, -74};
  assert_int_equal(mrd_command_encode(&c, buf, sizeof buf, &len), MRD_PROTO_OK);
  c.epoch = 0;
  assert_int_equal(mrd_command_encode(&c, buf, sizeof buf, &len), MRD_PROTO_EINVAL);

  c = base_command(MRD_CMD_STATUS, 0);
  strcpy(c.driver_id, "d");
  assert_int_equal(mrd_command_encode(&c, buf, sizeof buf, &len), MRD_PROTO_EINVAL); /* no status */
  c = base_command(MRD_CMD_NONE, 0);
  assert_int_equal(mrd_command_encode(&c, buf, sizeof buf, &len), MRD_PROTO_EINVAL);
}

static void test_command_decode_refuses_missing_body_and_bad_status(void **state) {
  (void)state;
  Meridian__V1__DispatchCommand pb;
  meridian__v1__dispatch_command__init(&pb);
  pb.has_version = pb.has_shard = pb.has_epoch = pb.has_ts_ms = 1;
  pb.version = 1;
  pb.epoch = 1;
  pb.ts_ms = 1;
  uint8_t buf[256];
  mrd_command out;
  size_t len = meridian__v1__dispatch_command__pack(&pb, buf);
  assert_int_equal(mrd_command_decode(buf, len, &out), MRD_PROTO_EINVAL);
  Meridian__V1__DriverStatus st;
  meridian__v1__driver_status__init(&st);
  st.driver_id = "d";
  st.has_status = 1;
  st.status = (Meridian__V1__DriverStatus__Status)7; /* not a known value */
  pb.body_case = MERIDIAN__V1__DISPATCH_COMMAND__BODY_STATUS;
  pb.status = &st;
  len = meridian__v1__dispatch_command__pack(&pb, buf);
  assert_int_equal(mrd_command_decode(buf, len, &out), MRD_PROTO_EINVAL);
  st.status = MERIDIAN__V1__DRIVER_STATUS__STATUS__OFFLINE;
  len = meridian__v1__dispatch_command__pack(&pb, buf);
  assert_int_equal(mrd_command_decode(buf, len, &out), MRD_PROTO_OK);
  assert_int_equal(out.status, MRD_DRIVER_OFFLINE);
}

static mrd_dispatch_event sample_offer_event(void) {
  mrd_dispatch_event e;
  memset(&e, 0, sizeof e);
  e.type = MRD_EV_OFFERED;
  strcpy(e.trip_id, "t1-9f8e");
  e.seq = 2;
  e.shard = 1;
  e.epoch = 1;
  e.ts_ms = 1700000000000;
  strcpy(e.rider_id, "rider-1");
  strcpy(e.driver_id, "drv-1");
  strcpy(e.request_id, "req-1");
  strcpy(e.offer_id, "o1-9f8e-1");
  e.has_pickup = e.has_dropoff = e.has_driver_pos = e.has_pickup_eta = true;
  e.pickup = (mrd_latlon){40.78, -73.97};
  e.dropoff = (mrd_latlon){40.75, -73.99};
  e.driver_pos = (mrd_latlon){40.79, -73.96};
  e.pickup_eta_s = 181.5;
  e.expires_at_ms = 1700000010000;
  e.status = MRD_TRIP_OFFERED;
  return e;
}

static void test_event_round_trip_keeps_every_field(void **state) {
  (void)state;
  mrd_dispatch_event in = sample_offer_event(), out;
  strcpy(in.reason, "none");
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len;
  assert_int_equal(mrd_dispatch_event_encode(&in, buf, sizeof buf, &len), MRD_PROTO_OK);
  assert_int_equal(mrd_dispatch_event_decode(buf, len, &out), MRD_PROTO_OK);
  assert_int_equal(out.type, MRD_EV_OFFERED);
  assert_string_equal(out.trip_id, "t1-9f8e");
  assert_true(out.seq == 2 && out.shard == 1 && out.epoch == 1 && out.ts_ms == in.ts_ms);
  assert_string_equal(out.rider_id, "rider-1");
  assert_string_equal(out.driver_id, "drv-1");
  assert_string_equal(out.request_id, "req-1");
  assert_string_equal(out.offer_id, "o1-9f8e-1");
  assert_true(out.has_pickup && out.pickup.lat == 40.78);
  assert_true(out.has_dropoff && out.dropoff.lon == -73.99);
  assert_true(out.has_driver_pos && out.driver_pos.lat == 40.79);
  assert_true(out.has_pickup_eta && out.pickup_eta_s == 181.5);
  assert_true(out.expires_at_ms == in.expires_at_ms);
  assert_int_equal(out.status, MRD_TRIP_OFFERED);
  assert_string_equal(out.reason, "none");
  assert_string_equal(mrd_event_type_name(out.type), "offered");
  assert_string_equal(mrd_trip_status_name(out.status), "offered");
}

static void test_event_requires_fields_by_type(void **state) {
  (void)state;
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len;
  mrd_dispatch_event e;
#define EXPECT(rc, stmt)                                                                           \
  do {                                                                                             \
    e = sample_offer_event();                                                                      \
    stmt;                                                                                          \
    assert_int_equal(mrd_dispatch_event_encode(&e, buf, sizeof buf, &len), rc);                    \
  } while (0)
  EXPECT(MRD_PROTO_OK, (void)0);
  EXPECT(MRD_PROTO_EINVAL, e.offer_id[0] = '\0'); /* OFFERED needs the offer */
  EXPECT(MRD_PROTO_EINVAL, e.expires_at_ms = 0);  /* and its expiry */
  EXPECT(MRD_PROTO_EINVAL, e.has_pickup_eta = false);
  EXPECT(MRD_PROTO_EINVAL, strcpy(e.trip_id, "t0-9f8e")); /* trip names another shard */
  EXPECT(MRD_PROTO_EINVAL, e.seq = 0);
  EXPECT(MRD_PROTO_EINVAL, e.epoch = 0);
  EXPECT(MRD_PROTO_EINVAL, e.pickup_eta_s = -1);
  EXPECT(MRD_PROTO_EINVAL, e.driver_pos.lat = NAN);
  EXPECT(MRD_PROTO_EINVAL, strcpy(e.error_code, "internal")); /* only on COMMAND_REJECTED */
  EXPECT(MRD_PROTO_OK, (e.type = MRD_EV_MATCHED, e.status = MRD_TRIP_MATCHED));
  EXPECT(MRD_PROTO_EINVAL, (e.type = MRD_EV_MATCHED, e.rider_id[0] = '\0'));
  EXPECT(MRD_PROTO_EINVAL, (e.type = MRD_EV_MATCHED, e.has_driver_pos = false));
  EXPECT(MRD_PROTO_OK,
         (e.type = MRD_EV_ARRIVED, e.has_driver_pos = false, e.has_pickup_eta = false));
  EXPECT(MRD_PROTO_OK, (e.type = MRD_EV_CANCELLED, e.driver_id[0] = '\0'));
  EXPECT(MRD_PROTO_EINVAL, (e.type = MRD_EV_NO_DRIVER, e.request_id[0] = '\0'));
  EXPECT(MRD_PROTO_EINVAL, e.type = (mrd_event_type)12);
  EXPECT(MRD_PROTO_EINVAL, e.status = (mrd_trip_status)9);
  /* COMMAND_REJECTED: a code and exactly one addressee, trip optional */
  EXPECT(MRD_PROTO_OK, (e.type = MRD_EV_COMMAND_REJECTED, strcpy(e.error_code, "unknown_offer"),
                        e.rider_id[0] = '\0', e.trip_id[0] = '\0', e.seq = 0));
  EXPECT(MRD_PROTO_EINVAL,
         (e.type = MRD_EV_COMMAND_REJECTED, strcpy(e.error_code, "unknown_offer")));
  EXPECT(MRD_PROTO_EINVAL,
         (e.type = MRD_EV_COMMAND_REJECTED, strcpy(e.error_code, "oops"), e.rider_id[0] = '\0'));
#undef EXPECT
}

static void test_event_decode_refuses_unknown_enum_values(void **state) {
  (void)state;
  Meridian__V1__DispatchEvent pb;
  meridian__v1__dispatch_event__init(&pb);
  pb.has_version = pb.has_type = pb.has_shard = pb.has_ts_ms = pb.has_seq = pb.has_epoch = 1;
  pb.version = 1;
  pb.type = MERIDIAN__V1__DISPATCH_EVENT__TYPE__CANCELLED;
  pb.trip_id = "t0-a";
  pb.rider_id = "r";
  pb.seq = 1;
  pb.epoch = 1;
  pb.ts_ms = 1;
  uint8_t buf[256];
  mrd_dispatch_event out;
  size_t len = meridian__v1__dispatch_event__pack(&pb, buf);
  assert_int_equal(mrd_dispatch_event_decode(buf, len, &out), MRD_PROTO_OK);
  pb.type = (Meridian__V1__DispatchEvent__Type)99;
  len = meridian__v1__dispatch_event__pack(&pb, buf);
  assert_int_equal(mrd_dispatch_event_decode(buf, len, &out), MRD_PROTO_EINVAL);
  pb.type = MERIDIAN__V1__DISPATCH_EVENT__TYPE__CANCELLED;
  pb.has_status = 1;
  pb.status = (Meridian__V1__DispatchEvent__Status)-3;
  len = meridian__v1__dispatch_event__pack(&pb, buf);
  assert_int_equal(mrd_dispatch_event_decode(buf, len, &out), MRD_PROTO_EINVAL);
}

static void test_decoders_refuse_truncated_payloads(void **state) {
  (void)state;
  mrd_dispatch_event e = sample_offer_event(), out;
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len;
  assert_int_equal(mrd_dispatch_event_encode(&e, buf, sizeof buf, &len), MRD_PROTO_OK);
  /* A proper prefix either fails (cut inside a field, or a required field lost) or ends on
   * a field boundary after the required fields: then it is a valid, shorter event that
   * re-encodes to exactly those bytes. Cutting inside the first 20 bytes loses trip_id. */
  size_t valid = 0;
  for (size_t n = 0; n < len; n++) {
    int rc = mrd_dispatch_event_decode(buf, n, &out);
    if (rc == MRD_PROTO_OK) {
      uint8_t again[MRD_PROTO_MAX_SIZE];
      size_t alen;
      assert_int_equal(mrd_dispatch_event_encode(&out, again, sizeof again, &alen), MRD_PROTO_OK);
      assert_int_equal(alen, n);
      assert_memory_equal(again, buf, n);
      valid++;
    } else {
      assert_true(n > 0 || rc == MRD_PROTO_EVERSION);
    }
  }
  assert_true(valid < 4); /* only the optional tail fields (driver_pos, status) can go */
  assert_int_equal(mrd_dispatch_event_decode(NULL, 0, &out), MRD_PROTO_EVERSION);
}

static void test_decoders_survive_random_bytes(void **state) {
  (void)state;
  const char *env = getenv("SEED");
  unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
  printf("test_decoders_survive_random_bytes: SEED=%u\n", seed);
  srand(seed);
  uint8_t buf[512];
  mrd_driver_location loc;
  mrd_command cmd;
  mrd_dispatch_event ev;
  mrd_dispatch_event good = sample_offer_event();
  uint8_t enc[MRD_PROTO_MAX_SIZE];
  size_t enc_len;
  assert_int_equal(mrd_dispatch_event_encode(&good, enc, sizeof enc, &enc_len), MRD_PROTO_OK);
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)rand() % sizeof buf;
    if (i % 2) {
      for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)rand();
    } else { /* a valid event with a few bytes flipped: deeper into the parser */
      n = enc_len;
      memcpy(buf, enc, n);
      for (int f = 0; f < 3; f++) buf[(size_t)rand() % n] = (uint8_t)rand();
    }
    int r1 = mrd_driver_location_decode(buf, n, &loc);
    int r2 = mrd_command_decode(buf, n, &cmd);
    int r3 = mrd_dispatch_event_decode(buf, n, &ev);
    /* whatever decodes must re-encode: decode validated it */
    uint8_t again[MRD_PROTO_MAX_SIZE];
    size_t alen;
    if (r1 == MRD_PROTO_OK)
      assert_int_equal(mrd_driver_location_encode(&loc, again, sizeof again, &alen), MRD_PROTO_OK);
    if (r2 == MRD_PROTO_OK)
      assert_int_equal(mrd_command_encode(&cmd, again, sizeof again, &alen), MRD_PROTO_OK);
    if (r3 == MRD_PROTO_OK)
      assert_int_equal(mrd_dispatch_event_encode(&ev, again, sizeof again, &alen), MRD_PROTO_OK);
  }
}

static void test_strerror_names_every_code(void **state) {
  (void)state;
  for (int e = MRD_PROTO_ENOMEM; e <= MRD_PROTO_OK; e++)
    assert_string_not_equal(mrd_proto_strerror(e), "unknown error");
  assert_string_equal(mrd_proto_strerror(-99), "unknown error");
}

static void test_fence_drops_a_lower_generation_per_shard(void **state) {
  (void)state;
  mrd_fence f = {0};
  assert_true(mrd_fence_admit(&f, 3, 5));
  assert_true(mrd_fence_admit(&f, 3, 5));  /* the same holder again */
  assert_true(mrd_fence_admit(&f, 3, 6));  /* a takeover */
  assert_false(mrd_fence_admit(&f, 3, 5)); /* the old holder's late event */
  assert_int_equal(f.highest[3], 6);
  assert_true(mrd_fence_admit(&f, 4, 1));  /* shards are independent */
  assert_true(mrd_fence_admit(&f, 3, 0));  /* no generation (before leases): used */
  assert_true(mrd_fence_admit(&f, 64, 1)); /* not a shard: not fenced */
  assert_true(mrd_fence_admit(NULL, 3, 1));
}

static void test_event_generation_round_trips(void **state) {
  (void)state;
  mrd_dispatch_event e, d;
  memset(&e, 0, sizeof e);
  e.type = MRD_EV_REQUESTED;
  e.status = MRD_TRIP_REQUESTED;
  snprintf(e.trip_id, sizeof e.trip_id, "t2-abc");
  e.seq = 1;
  e.shard = 2;
  e.epoch = 1;
  e.ts_ms = 1700000000000;
  snprintf(e.rider_id, sizeof e.rider_id, "r1");
  snprintf(e.request_id, sizeof e.request_id, "q1");
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len = 0;
  assert_int_equal(mrd_dispatch_event_encode(&e, buf, sizeof buf, &len), 0);
  assert_int_equal(mrd_dispatch_event_decode(buf, len, &d), 0);
  assert_int_equal(d.generation, 0); /* absent */
  e.generation = 12345678901ull;
  assert_int_equal(mrd_dispatch_event_encode(&e, buf, sizeof buf, &len), 0);
  assert_int_equal(mrd_dispatch_event_decode(buf, len, &d), 0);
  assert_int_equal(d.generation, 12345678901ull);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_location_round_trip_keeps_every_field),
      cmocka_unit_test(test_location_optional_fields_stay_absent),
      cmocka_unit_test(test_location_encode_refuses_invalid_fields),
      cmocka_unit_test(test_encode_reports_small_buffer),
      cmocka_unit_test(test_location_decode_refuses_other_versions),
      cmocka_unit_test(test_command_round_trip_of_every_kind),
      cmocka_unit_test(test_command_encode_refuses_inconsistent_commands),
      cmocka_unit_test(test_command_decode_refuses_missing_body_and_bad_status),
      cmocka_unit_test(test_event_round_trip_keeps_every_field),
      cmocka_unit_test(test_event_requires_fields_by_type),
      cmocka_unit_test(test_event_decode_refuses_unknown_enum_values),
      cmocka_unit_test(test_decoders_refuse_truncated_payloads),
      cmocka_unit_test(test_decoders_survive_random_bytes),
      cmocka_unit_test(test_strerror_names_every_code),
      cmocka_unit_test(test_fence_drops_a_lower_generation_per_shard),
      cmocka_unit_test(test_event_generation_round_trips),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
