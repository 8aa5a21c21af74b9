/*
 * test_gateway_handle.c: the plan of a client message (handle.h), with fake ports for Redis
 * and the clock: the frame's intake (size, binary, parse, the user's budget and flood), a
 * location to its owner partition (acked) and one unacked halo copy per other shard near it,
 * status to every shard of the map and every shard an earlier epoch named, offer and trip ids to
 * the shard they name or refused, the order of a ride request (window, then key, then record) with
 * resend and conflict, cancel by the recorded shard, nearby, the answers to a refused write, the
 * snapshot on connect. The map is the real two-shard Manhattan one ('dr72' starts shard 1 at
 * latitude 40.78125).
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

#include "handle.h"
#include "mrd/err.h"

#define BORDER_LAT 40.78125
#define NOW_US 1700000000123456LL
#define RX_US 1700000000100000LL

/* ---- fake ports ------------------------------------------------------------------------ */

typedef struct fake {
  char calls[128]; /* "window,claim,..." in call order */
  int window_rc;
  bool window_allowed;
  int claim_rc;
  const char *claim_stored; /* NULL: the key was new */
  char claimed_value[GW_REQ_VALUE_MAX];
  int get_rc;
  const char *get_value;
  int nearby_rc;
  size_t nearby_cap; /* what the core asked for */
  int64_t now_us;
} fake;

static void note(fake *f, const char *what) {
  size_t n = strlen(f->calls);
  snprintf(f->calls + n, sizeof f->calls - n, "%s%s", n ? "," : "", what);
}
static int f_window(void *ud, const char *rider, int64_t now_ms, bool *allowed) {
  fake *f = ud;
  note(f, "window");
  assert_string_equal(rider, "rider-1");
  assert_int_equal(now_ms, f->now_us / 1000);
  *allowed = f->window_allowed;
  return f->window_rc;
}
static int f_claim(void *ud, const char *rider, const char *request_id, const char *value,
                   bool *existed, char *stored, size_t cap) {
  fake *f = ud;
  note(f, "claim");
  assert_string_equal(rider, "rider-1");
  assert_string_equal(request_id, "req-1");
  snprintf(f->claimed_value, sizeof f->claimed_value, "%s", value);
  *existed = f->claim_stored != NULL;
  if (f->claim_stored) snprintf(stored, cap, "%s", f->claim_stored);
  return f->claim_rc;
}
static int f_get(void *ud, const char *rider, const char *request_id, char *value, size_t cap) {
  fake *f = ud;
  note(f, "get");
  assert_string_equal(rider, "rider-1");
  assert_string_equal(request_id, "req-1");
  if (f->get_rc == 0) snprintf(value, cap, "%s", f->get_value);
  return f->get_rc;
}
static int f_nearby(void *ud, mrd_latlon at, double radius_m, mrd_latlon *out, size_t cap,
                    size_t *n) {
  fake *f = ud;
  note(f, "nearby");
  (void)radius_m;
  f->nearby_cap = cap;
  *n = 0;
  for (size_t i = 0; i < cap && i < 3; i++)
    out[(*n)++] = (mrd_latlon){at.lat + 0.001 * (double)i, at.lon};
  return f->nearby_rc;
}
static int64_t f_now_us(void *ud) { return ((fake *)ud)->now_us; }
static void f_random(void *ud, uint8_t *out, size_t n) {
  (void)ud;
  for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(i + 1);
}

typedef struct ctx {
  fake f;
  gw_ports ports;
  gw_shardmap *map;
  gw_plan *plan;
  gw_handle_config cfg;
  gw_msg m;
} ctx;

static int setup(void **state) {
  ctx *c = calloc(1, sizeof *c);
  c->f.window_allowed = true;
  c->f.now_us = NOW_US;
  c->ports = (gw_ports){&c->f, f_window, f_claim, f_get, f_nearby, f_now_us, f_random};
  gw_shard_range r[] = {{"", "dr72", 0}, {"dr72", "~", 1}};
  char err[160];
  c->map = gw_shardmap_new(1, r, 2, err, sizeof err);
  c->plan = gw_plan_new();
  c->cfg = (gw_handle_config){1000, 20};
  assert_non_null(c->map);
  assert_non_null(c->plan);
  *state = c;
  return 0;
}

static int teardown(void **state) {
  ctx *c = *state;
  gw_shardmap_free(c->map);
  gw_plan_free(c->plan);
  free(c);
  return 0;
}

/* Parse json as a message of role and plan it for user. */
static const gw_plan *plan(ctx *c, gw_role role, const char *user, const char *json) {
  gw_error e;
  if (gw_parse(json, strlen(json), role, NULL, &c->m, &e) != 0)
    fail_msg("refused %s: %s", json, e.message);
  gw_handle(&c->m, role, user, c->map, &c->cfg, &c->ports, RX_US, c->plan);
  return c->plan;
}

static const gw_record *record_at(const gw_plan *p, size_t i) {
  assert_true(i < p->n);
  assert_int_equal(p->act[i].kind, GW_ACT_PRODUCE);
  return &p->act[i].u.record;
}

static const gw_error *error_at(const gw_plan *p, size_t i) {
  assert_true(i < p->n);
  assert_int_equal(p->act[i].kind, GW_ACT_ERROR);
  return &p->act[i].u.error;
}

static mrd_command command_of(const gw_record *r) {
  mrd_command cmd;
  assert_string_equal(r->topic, "dispatch-commands");
  assert_int_equal(mrd_command_decode(r->payload, r->len, &cmd), 0);
  assert_int_equal(cmd.shard, (uint32_t)r->partition);
  return cmd;
}

/* ---- intake ------------------------------------------------------------------------------ */

static gw_budget *budget(gw_budgets **t, gw_role role, double msg_burst, double control_burst,
                         uint32_t warnings) {
  gw_budget_limits lim[2];
  memset(lim, 0, sizeof lim);
  for (int r = 0; r < 2; r++)
    lim[r] =
        (gw_budget_limits){0.001, msg_burst, 0.001, control_burst, 1000, 1000, warnings, 10000};
  *t = gw_budgets_new(lim);
  assert_non_null(*t);
  return gw_budgets_acquire(*t, role, "u-1", 0);
}

static void test_intake_refuses_too_large_binary_and_invalid_frames(void **state) {
  (void)state;
  gw_budgets *t;
  gw_budget *b = budget(&t, GW_ROLE_RIDER, 10, 10, 5);
  gw_msg m;
  gw_error e;
  gw_intake in = gw_intake_frame("", 0, true, false, GW_ROLE_RIDER, NULL, b, 1, &m, &e);
  assert_int_equal(in.verdict, GW_INTAKE_REFUSE);
  assert_int_equal(in.counted, GW_MSG_NONE);
  assert_int_equal(e.code, GW_TOO_LARGE);
  in = gw_intake_frame("\x01", 1, false, true, GW_ROLE_RIDER, NULL, b, 1, &m, &e);
  assert_int_equal(in.verdict, GW_INTAKE_REFUSE);
  assert_int_equal(e.code, GW_BAD_REQUEST);
  const char *bad = "{\"type\":\"cancel\",\"ref\":\"k\"}"; /* no request_id */
  in = gw_intake_frame(bad, strlen(bad), false, false, GW_ROLE_RIDER, NULL, b, 1, &m, &e);
  assert_int_equal(in.verdict, GW_INTAKE_REFUSE);
  assert_int_equal(e.code, GW_BAD_REQUEST);
  assert_string_equal(e.field, "request_id");
  assert_true(e.has_ref);
  const char *ok = "{\"type\":\"cancel\",\"request_id\":\"req-1\"}";
  in = gw_intake_frame(ok, strlen(ok), false, false, GW_ROLE_RIDER, NULL, b, 1, &m, &e);
  assert_int_equal(in.verdict, GW_INTAKE_HANDLE);
  assert_int_equal(in.counted, GW_MSG_CANCEL);
  assert_false(in.rate_limited);
  assert_string_equal(m.id, "req-1");
  gw_budgets_release(t, b);
  gw_budgets_free(t);
}

static void test_intake_charges_the_budget_then_warns_then_floods(void **state) {
  (void)state;
  gw_budgets *t;
  gw_budget *b = budget(&t, GW_ROLE_DRIVER, 2, 1, 2); /* 2 locations, 1 control, 2 warnings */
  gw_msg m;
  gw_error e;
  const char *loc =
      "{\"type\":\"location\",\"lat\":40.758,\"lon\":-73.9855,\"ts\":1,\"seq\":1,\"ref\":\"L\"}";
  const char *st = "{\"type\":\"status\",\"status\":\"available\",\"ref\":\"S\"}";
  /* a driver's locations and his other messages draw on two buckets */
  assert_int_equal(
      gw_intake_frame(loc, strlen(loc), false, false, GW_ROLE_DRIVER, NULL, b, 1, &m, &e).verdict,
      GW_INTAKE_HANDLE);
  assert_int_equal(
      gw_intake_frame(st, strlen(st), false, false, GW_ROLE_DRIVER, NULL, b, 1, &m, &e).verdict,
      GW_INTAKE_HANDLE);
  assert_int_equal(
      gw_intake_frame(loc, strlen(loc), false, false, GW_ROLE_DRIVER, NULL, b, 1, &m, &e).verdict,
      GW_INTAKE_HANDLE);
  /* control empty: rate_limited, with the message's ref, counted under its type */
  gw_intake in = gw_intake_frame(st, strlen(st), false, false, GW_ROLE_DRIVER, NULL, b, 1, &m, &e);
  assert_int_equal(in.verdict, GW_INTAKE_REFUSE);
  assert_true(in.rate_limited);
  assert_int_equal(in.counted, GW_MSG_STATUS);
  assert_int_equal(e.code, GW_RATE_LIMITED);
  assert_true(e.has_ref);
  assert_string_equal(e.ref, "S");
  /* an invalid frame costs a control token too: the second warning */
  in = gw_intake_frame("{", 1, false, false, GW_ROLE_DRIVER, NULL, b, 1, &m, &e);
  assert_int_equal(in.verdict, GW_INTAKE_REFUSE);
  assert_int_equal(e.code, GW_RATE_LIMITED);
  /* then the flood policy closes */
  in = gw_intake_frame(loc, strlen(loc), false, false, GW_ROLE_DRIVER, NULL, b, 1, &m, &e);
  assert_int_equal(in.verdict, GW_INTAKE_FLOOD);
  assert_true(in.rate_limited);
  gw_budgets_release(t, b);
  gw_budgets_free(t);
}

/* ---- locations ------------------------------------------------------------------------- */

static void test_location_goes_to_its_owner_acked_and_one_halo_copy_per_near_shard(void **state) {
  ctx *c = *state;
  char json[256];
  double lat = BORDER_LAT - 150 / 111195.0; /* 150 m south of the border: shard 0, halo 1 */
  snprintf(json, sizeof json,
           "{\"type\":\"location\",\"lat\":%.7f,\"lon\":-73.97,\"heading\":90,\"ts\":5,\"seq\":9,"
           "\"ref\":\"a1\"}",
           lat);
  const gw_plan *p = plan(c, GW_ROLE_DRIVER, "drv-1", json);
  assert_int_equal(p->n, 2);
  const gw_record *own = record_at(p, 0), *halo = record_at(p, 1);
  assert_string_equal(own->topic, "driver-locations");
  assert_int_equal(own->partition, 0);
  assert_string_equal(own->key, "drv-1");
  assert_true(own->acked);
  assert_int_equal(own->on_fail, GW_FAIL_REPLY_STOP);
  assert_int_equal(halo->partition, 1);
  assert_string_equal(halo->key, "drv-1");
  assert_false(halo->acked);
  assert_int_equal(halo->on_fail, GW_FAIL_COUNT);
  mrd_driver_location a, b;
  assert_int_equal(mrd_driver_location_decode(own->payload, own->len, &a), 0);
  assert_int_equal(mrd_driver_location_decode(halo->payload, halo->len, &b), 0);
  assert_false(a.halo);
  assert_true(b.halo);
  assert_string_equal(a.driver_id, "drv-1");
  assert_int_equal(a.owner_shard, 0);
  assert_int_equal(b.owner_shard, 0);
  assert_int_equal(a.epoch, 1);
  assert_int_equal(a.seq, 9);
  assert_int_equal(a.ts_ms, 5);
  assert_true(a.has_heading && a.heading_deg == 90);
  assert_int_equal(a.received_ms, NOW_US / 1000);
  assert_int_equal(strlen(a.geohash), GW_ROUTE_PRECISION);
  assert_string_equal(a.geohash, b.geohash);
  assert_int_equal(p->notes, 0);
}

static void test_location_far_from_a_border_has_no_halo_and_no_ack_without_ref(void **state) {
  ctx *c = *state;
  const gw_plan *p =
      plan(c, GW_ROLE_DRIVER, "drv-1",
           "{\"type\":\"location\",\"lat\":40.758,\"lon\":-73.9855,\"ts\":1,\"seq\":1}");
  assert_int_equal(p->n, 1);
  assert_int_equal(record_at(p, 0)->partition, 0);
  assert_false(record_at(p, 0)->acked);
  /* north of the border: shard 1 owns it */
  p = plan(c, GW_ROLE_DRIVER, "drv-1",
           "{\"type\":\"location\",\"lat\":40.80,\"lon\":-73.95,\"ts\":1,\"seq\":2}");
  assert_int_equal(p->n, 1);
  assert_int_equal(record_at(p, 0)->partition, 1);
}

/* ---- commands --------------------------------------------------------------------------- */

static void test_status_goes_to_every_shard_of_the_map_acked_once(void **state) {
  ctx *c = *state;
  gw_shardmap_free(c->map);
  gw_shard_range r[] = {{"", "dr5", 0}, {"dr5", "dr72", 5}, {"dr72", "~", 1}};
  char err[160];
  c->map = gw_shardmap_new(3, r, 3, err, sizeof err);
  assert_non_null(c->map);
  const gw_plan *p = plan(c, GW_ROLE_DRIVER, "drv-1",
                          "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"s\"}");
  assert_int_equal(p->n, 3);
  int32_t want[] = {0, 1, 5};
  for (size_t i = 0; i < 3; i++) {
    const gw_record *rec = record_at(p, i);
    assert_int_equal(rec->partition, want[i]);
    assert_string_equal(rec->key, "drv-1");
    assert_int_equal(rec->acked, i == 0); /* one ack, for the first shard */
    assert_int_equal(rec->on_fail, GW_FAIL_REPLY);
    mrd_command cmd = command_of(rec);
    assert_int_equal(cmd.kind, MRD_CMD_STATUS);
    assert_int_equal(cmd.status, MRD_DRIVER_OFFLINE);
    assert_string_equal(cmd.driver_id, "drv-1");
    assert_int_equal(cmd.epoch, 3);
    assert_int_equal(cmd.ts_ms, NOW_US / 1000);
    assert_string_equal(cmd.ref, "s");
  }
}

/* A shard whose ranges all moved away (an earlier epoch named it) still holds its live offers
 * and trips: a driver's status reaches it too (going offline there declines his offer or
 * cancels his trip), once, with one ack for the whole message; a shard never named gets none. */
static void test_status_also_goes_to_shards_an_earlier_epoch_named(void **state) {
  ctx *c = *state;
  gw_shardmap_set_history(c->map, (UINT64_C(1) << 5) | (UINT64_C(1) << 1) | (UINT64_C(1) << 63));
  const gw_plan *p = plan(c, GW_ROLE_DRIVER, "drv-1",
                          "{\"type\":\"status\",\"status\":\"offline\",\"ref\":\"s\"}");
  assert_int_equal(p->n, 4);
  int32_t want[] = {0, 1, 5, 63}; /* 1 is in the map and named before: one copy */
  for (size_t i = 0; i < 4; i++) {
    const gw_record *rec = record_at(p, i);
    assert_int_equal(rec->partition, want[i]);
    assert_string_equal(rec->topic, MRD_TOPIC_DISPATCH_COMMANDS);
    assert_string_equal(rec->key, "drv-1");
    assert_int_equal(rec->acked, i == 0);
    mrd_command cmd = command_of(rec);
    assert_int_equal(cmd.kind, MRD_CMD_STATUS);
    assert_int_equal(cmd.shard, (uint32_t)want[i]);
    assert_int_equal(cmd.status, MRD_DRIVER_OFFLINE);
    assert_int_equal(cmd.epoch, 1);
  }
  /* without history: the map's two shards only */
  gw_shardmap_set_history(c->map, 0);
  p = plan(c, GW_ROLE_DRIVER, "drv-1", "{\"type\":\"status\",\"status\":\"available\"}");
  assert_int_equal(p->n, 2);
  assert_int_equal(record_at(p, 0)->partition, 0);
  assert_int_equal(record_at(p, 1)->partition, 1);
  assert_false(record_at(p, 0)->acked); /* no ref */
  assert_int_equal(command_of(record_at(p, 1)).status, MRD_DRIVER_AVAILABLE);
}

static void test_offer_and_trip_ids_go_to_the_shard_they_name(void **state) {
  ctx *c = *state;
  const gw_plan *p = plan(c, GW_ROLE_DRIVER, "drv-1",
                          "{\"type\":\"accept\",\"offer_id\":\"o1-abc\",\"ref\":\"x\"}");
  assert_int_equal(p->n, 1);
  const gw_record *rec = record_at(p, 0);
  assert_int_equal(rec->partition, 1);
  assert_string_equal(rec->key, "o1-abc");
  assert_true(rec->acked);
  mrd_command cmd = command_of(rec);
  assert_int_equal(cmd.kind, MRD_CMD_ACCEPT);
  assert_string_equal(cmd.offer_id, "o1-abc");
  assert_string_equal(cmd.driver_id, "drv-1");
  static const struct {
    const char *json;
    mrd_cmd_kind kind;
  } steps[] = {
      {"{\"type\":\"decline\",\"offer_id\":\"o0-q\"}", MRD_CMD_DECLINE},
      {"{\"type\":\"arrived\",\"trip_id\":\"t0-q.1\"}", MRD_CMD_ARRIVED},
      {"{\"type\":\"start\",\"trip_id\":\"t0-q.1\"}", MRD_CMD_START},
      {"{\"type\":\"complete\",\"trip_id\":\"t0-q.1\"}", MRD_CMD_COMPLETE},
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    p = plan(c, GW_ROLE_DRIVER, "drv-1", steps[i].json);
    assert_int_equal(p->n, 1);
    cmd = command_of(record_at(p, 0));
    assert_int_equal(cmd.kind, steps[i].kind);
    assert_int_equal(cmd.shard, 0);
    assert_false(record_at(p, 0)->acked); /* no ref */
    assert_string_equal(record_at(p, 0)->key, c->m.id);
    if (steps[i].kind != MRD_CMD_DECLINE) assert_string_equal(cmd.trip_id, "t0-q.1");
  }
}

static void test_ids_of_shards_not_in_the_map_are_answered_not_produced(void **state) {
  ctx *c = *state;
  const gw_plan *p = plan(c, GW_ROLE_DRIVER, "drv-1",
                          "{\"type\":\"accept\",\"offer_id\":\"o5-x\",\"ref\":\"r5\"}");
  assert_int_equal(p->n, 1);
  const gw_error *e = error_at(p, 0);
  assert_int_equal(e->code, GW_UNKNOWN_OFFER);
  assert_string_equal(e->field, "id");
  assert_string_equal(e->message, "no such offer (shard 5 was never in the map)");
  assert_true(e->has_ref);
  assert_string_equal(e->ref, "r5");
  assert_int_equal(p->notes, GW_NOTE_UNROUTED);
  p = plan(c, GW_ROLE_DRIVER, "drv-1", "{\"type\":\"complete\",\"trip_id\":\"t7-x\"}");
  assert_int_equal(error_at(p, 0)->code, GW_INVALID_STATE);
  assert_string_equal(error_at(p, 0)->message, "no such trip (shard 7 was never in the map)");
}

/* A shard whose ranges all moved away (an earlier epoch named it) still finishes its offers
 * and trips: their ids go to it, not refused. */
static void test_ids_of_shards_an_earlier_epoch_named_are_produced(void **state) {
  ctx *c = *state;
  gw_shardmap_set_history(c->map, UINT64_C(1) << 5);
  const gw_plan *p = plan(c, GW_ROLE_DRIVER, "drv-1",
                          "{\"type\":\"accept\",\"offer_id\":\"o5-x\",\"ref\":\"r5\"}");
  assert_int_equal(p->n, 1);
  mrd_command cmd = command_of(record_at(p, 0));
  assert_int_equal(cmd.kind, MRD_CMD_ACCEPT);
  assert_int_equal(cmd.shard, 5);
  assert_int_equal(p->notes & GW_NOTE_UNROUTED, 0);
  p = plan(c, GW_ROLE_DRIVER, "drv-1", "{\"type\":\"complete\",\"trip_id\":\"t7-x\"}");
  assert_int_equal(error_at(p, 0)->code, GW_INVALID_STATE); /* 7: never named */
}

/* ---- ride requests ----------------------------------------------------------------------- */

#define REQUEST_JSON                                                                               \
  "{\"type\":\"request\",\"request_id\":\"req-1\",\"pickup\":{\"lat\":40.75,\"lon\":-73.99},"      \
  "\"dropoff\":{\"lat\":40.80,\"lon\":-73.95},\"ref\":\"q\"}"

static void
test_request_checks_the_window_then_the_key_then_is_traced_to_the_pickup_shard(void **state) {
  ctx *c = *state;
  const gw_plan *p = plan(c, GW_ROLE_RIDER, "rider-1", REQUEST_JSON);
  assert_string_equal(c->f.calls, "window,claim");
  char want[GW_REQ_VALUE_MAX]; /* set unconfirmed: confirmed by the delivery report */
  gw_request_value_unconfirmed(0, (mrd_latlon){40.75, -73.99}, (mrd_latlon){40.80, -73.95}, want,
                               sizeof want);
  assert_string_equal(c->f.claimed_value, want);
  assert_int_equal(p->n, 1);
  const gw_record *rec = record_at(p, 0);
  assert_int_equal(rec->partition, 0); /* the pickup's shard (the drop-off is on 1) */
  assert_string_equal(rec->key, "req-1");
  assert_true(rec->acked);
  assert_true(rec->forget); /* a new request that never reaches Kafka is forgotten */
  assert_string_equal(p->request_id, "req-1");
  assert_string_equal(p->rider, "rider-1");
  assert_string_equal(p->request_value, want);
  mrd_command cmd = command_of(rec);
  assert_int_equal(cmd.kind, MRD_CMD_REQUEST);
  assert_false(cmd.resend);
  assert_string_equal(cmd.rider_id, "rider-1");
  assert_string_equal(cmd.request_id, "req-1");
  assert_true(cmd.trace.present);
  assert_int_equal(cmd.trace.stamp_us[MRD_STAMP_GATEWAY_RECEIVED], RX_US);
  assert_int_equal(cmd.trace.stamp_us[MRD_STAMP_GATEWAY_PRODUCED], NOW_US);
  mrd_traceparent tp;
  uint8_t rnd[24];
  f_random(NULL, rnd, sizeof rnd);
  mrd_traceparent_root(rnd, &tp);
  assert_memory_equal(cmd.trace.tp.trace_id, tp.trace_id, sizeof tp.trace_id);
  assert_int_equal(p->notes, 0);
}

static void
test_request_over_the_window_or_with_redis_down_is_refused_before_the_key(void **state) {
  ctx *c = *state;
  c->f.window_allowed = false;
  const gw_plan *p = plan(c, GW_ROLE_RIDER, "rider-1", REQUEST_JSON);
  assert_string_equal(c->f.calls, "window");
  assert_int_equal(p->n, 1);
  assert_int_equal(error_at(p, 0)->code, GW_RATE_LIMITED);
  assert_string_equal(error_at(p, 0)->ref, "q");
  assert_int_equal(p->notes, GW_NOTE_RATE_LIMITED);
  c->f.calls[0] = '\0';
  c->f.window_rc = MRD_ECONN;
  p = plan(c, GW_ROLE_RIDER, "rider-1", REQUEST_JSON);
  assert_string_equal(c->f.calls, "window");
  assert_int_equal(error_at(p, 0)->code, GW_UNAVAILABLE);
  assert_int_equal(p->notes, 0);
  c->f.calls[0] = '\0';
  c->f.window_rc = 0;
  c->f.window_allowed = true;
  c->f.claim_rc = MRD_ETIMEDOUT;
  p = plan(c, GW_ROLE_RIDER, "rider-1", REQUEST_JSON);
  assert_string_equal(c->f.calls, "window,claim");
  assert_int_equal(p->n, 1);
  assert_int_equal(error_at(p, 0)->code, GW_UNAVAILABLE);
}

static void test_request_resend_goes_to_the_first_shard_and_other_places_conflict(void **state) {
  ctx *c = *state;
  char first[GW_REQ_VALUE_MAX];
  gw_request_value(1, (mrd_latlon){40.75, -73.99}, (mrd_latlon){40.80, -73.95}, first,
                   sizeof first);
  c->f.claim_stored = first; /* sent before, to shard 1 (under another map) */
  const gw_plan *p = plan(c, GW_ROLE_RIDER, "rider-1", REQUEST_JSON);
  const gw_record *rec = record_at(p, 0);
  assert_int_equal(rec->partition, 1);
  assert_false(rec->forget); /* the key is the first request's: kept */
  assert_true(command_of(rec).resend);
  assert_int_equal(p->notes, GW_NOTE_REQUEST_RESEND);
  char other[GW_REQ_VALUE_MAX];
  gw_request_value(0, (mrd_latlon){40.70, -74.0}, (mrd_latlon){40.80, -73.95}, other, sizeof other);
  c->f.claim_stored = other;
  p = plan(c, GW_ROLE_RIDER, "rider-1", REQUEST_JSON);
  assert_int_equal(p->n, 1);
  assert_int_equal(error_at(p, 0)->code, GW_INVALID_STATE);
  assert_string_equal(error_at(p, 0)->field, "request_id");
  assert_int_equal(p->notes, GW_NOTE_REQUEST_CONFLICT);
  /* left unconfirmed by a gateway that died before the delivery report: a new request to
   * the stored shard, its key (as stored) confirmed on delivery or forgotten on failure */
  char pending[GW_REQ_VALUE_MAX];
  gw_request_value_unconfirmed(1, (mrd_latlon){40.75, -73.99}, (mrd_latlon){40.80, -73.95}, pending,
                               sizeof pending);
  c->f.claim_stored = pending;
  p = plan(c, GW_ROLE_RIDER, "rider-1", REQUEST_JSON);
  rec = record_at(p, 0);
  assert_int_equal(rec->partition, 1);
  assert_true(rec->forget);
  assert_false(command_of(rec).resend);
  assert_string_equal(p->request_value, pending);
  assert_int_equal(p->notes, 0);
}

static void test_cancel_goes_to_the_recorded_shard_only_for_its_rider(void **state) {
  ctx *c = *state;
  c->f.get_value = "1|40.750000,-73.990000;40.800000,-73.950000";
  const gw_plan *p = plan(c, GW_ROLE_RIDER, "rider-1",
                          "{\"type\":\"cancel\",\"request_id\":\"req-1\",\"ref\":\"c\"}");
  assert_string_equal(c->f.calls, "get");
  const gw_record *rec = record_at(p, 0);
  assert_int_equal(rec->partition, 1);
  assert_string_equal(rec->key, "req-1");
  mrd_command cmd = command_of(rec);
  assert_int_equal(cmd.kind, MRD_CMD_CANCEL);
  assert_string_equal(cmd.rider_id, "rider-1");
  /* no key (another rider's request id lives under his own name) or not ours: forbidden */
  const char *json = "{\"type\":\"cancel\",\"request_id\":\"req-1\"}";
  c->f.get_rc = MRD_ENOTFOUND;
  p = plan(c, GW_ROLE_RIDER, "rider-1", json);
  assert_int_equal(error_at(p, 0)->code, GW_FORBIDDEN);
  assert_string_equal(error_at(p, 0)->field, "request_id");
  c->f.get_rc = 0;
  c->f.get_value = "x|garbage";
  p = plan(c, GW_ROLE_RIDER, "rider-1", json);
  assert_int_equal(error_at(p, 0)->code, GW_FORBIDDEN);
  c->f.get_rc = MRD_ECONN;
  p = plan(c, GW_ROLE_RIDER, "rider-1", json);
  assert_int_equal(error_at(p, 0)->code, GW_UNAVAILABLE);
}

static void test_nearby_is_a_droppable_answer_capped_by_the_configuration(void **state) {
  ctx *c = *state;
  c->cfg.nearby_max = 2;
  const gw_plan *p =
      plan(c, GW_ROLE_RIDER, "rider-1",
           "{\"type\":\"nearby\",\"lat\":40.75,\"lon\":-73.99,\"radius_m\":500,\"ref\":\"n\"}");
  assert_int_equal(c->f.nearby_cap, 2);
  assert_int_equal(p->n, 1);
  assert_int_equal(p->act[0].kind, GW_ACT_TEXT);
  assert_true(p->act[0].u.text.droppable);
  char want[512];
  mrd_latlon pts[] = {{40.75, -73.99}, {40.751, -73.99}};
  int n = gw_format_nearby(pts, 2, "n", want, sizeof want);
  assert_int_equal(p->act[0].u.text.len, n);
  assert_memory_equal(p->text + p->act[0].u.text.off, want, (size_t)n);
  c->cfg.nearby_max = 1000; /* never more than 100 */
  plan(c, GW_ROLE_RIDER, "rider-1",
       "{\"type\":\"nearby\",\"lat\":40.75,\"lon\":-73.99,\"radius_m\":500}");
  assert_int_equal(c->f.nearby_cap, 100);
  c->f.nearby_rc = MRD_ETIMEDOUT;
  p = plan(c, GW_ROLE_RIDER, "rider-1",
           "{\"type\":\"nearby\",\"lat\":40.75,\"lon\":-73.99,\"radius_m\":500}");
  assert_int_equal(error_at(p, 0)->code, GW_UNAVAILABLE);
}

/* ---- everything else ----------------------------------------------------------------------- */

static void test_without_a_shard_map_every_message_is_unavailable(void **state) {
  ctx *c = *state;
  gw_shardmap_free(c->map);
  c->map = NULL;
  const gw_plan *p = plan(c, GW_ROLE_RIDER, "rider-1", REQUEST_JSON);
  assert_int_equal(p->n, 1);
  assert_int_equal(error_at(p, 0)->code, GW_UNAVAILABLE);
  assert_string_equal(error_at(p, 0)->message, "no shard map yet; try again");
  assert_string_equal(c->f.calls, ""); /* nothing asked of Redis */
}

static void test_a_refused_write_is_unavailable_when_the_queue_is_full_else_internal(void **state) {
  ctx *c = *state;
  const gw_plan *p = plan(
      c, GW_ROLE_DRIVER, "drv-1",
      "{\"type\":\"location\",\"lat\":40.758,\"lon\":-73.9855,\"ts\":1,\"seq\":1,\"ref\":\"w\"}");
  gw_error e;
  gw_plan_write_failed(p, record_at(p, 0), MRD_EFULL, &e);
  assert_int_equal(e.code, GW_UNAVAILABLE);
  assert_string_equal(e.message, "the gateway is overloaded; try again");
  assert_string_equal(e.ref, "w");
  gw_plan_write_failed(p, record_at(p, 0), MRD_EKAFKA, &e);
  assert_int_equal(e.code, GW_INTERNAL);
  assert_string_equal(e.message, "could not queue the location");
  p = plan(c, GW_ROLE_DRIVER, "drv-1", "{\"type\":\"accept\",\"offer_id\":\"o1-abc\"}");
  gw_plan_write_failed(p, record_at(p, 0), MRD_ENOMEM, &e);
  assert_int_equal(e.code, GW_INTERNAL);
  assert_string_equal(e.message, "could not queue the command");
  assert_false(e.has_ref);
}

static void test_snapshot_on_connect_is_only_for_its_own_user(void **state) {
  (void)state;
  mrd_dispatch_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = MRD_EV_MATCHED;
  ev.status = MRD_TRIP_MATCHED;
  ev.seq = 3;
  ev.ts_ms = 1;
  ev.epoch = 1;
  snprintf(ev.trip_id, sizeof ev.trip_id, "t0-a.1");
  snprintf(ev.rider_id, sizeof ev.rider_id, "rider-1");
  snprintf(ev.driver_id, sizeof ev.driver_id, "drv-1");
  snprintf(ev.request_id, sizeof ev.request_id, "req-1");
  snprintf(ev.offer_id, sizeof ev.offer_id, "o0-a");
  ev.pickup = (mrd_latlon){40.75, -73.99};
  ev.dropoff = (mrd_latlon){40.80, -73.95};
  ev.pickup_eta_s = 60;
  char buf[2048], want[2048];
  int n = gw_format_snapshot(&ev, GW_ROLE_RIDER, "rider-1", buf, sizeof buf);
  assert_true(n > 0);
  assert_int_equal(gw_format_event(&ev, GW_ROLE_RIDER, want, sizeof want), n);
  assert_memory_equal(buf, want, (size_t)n);
  assert_true(gw_format_snapshot(&ev, GW_ROLE_DRIVER, "drv-1", buf, sizeof buf) > 0);
  assert_int_equal(gw_format_snapshot(&ev, GW_ROLE_RIDER, "rider-2", buf, sizeof buf), 0);
  assert_int_equal(gw_format_snapshot(&ev, GW_ROLE_DRIVER, "drv-2", buf, sizeof buf), 0);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_intake_refuses_too_large_binary_and_invalid_frames),
      cmocka_unit_test(test_intake_charges_the_budget_then_warns_then_floods),
      T(test_location_goes_to_its_owner_acked_and_one_halo_copy_per_near_shard),
      T(test_location_far_from_a_border_has_no_halo_and_no_ack_without_ref),
      T(test_status_goes_to_every_shard_of_the_map_acked_once),
      T(test_status_also_goes_to_shards_an_earlier_epoch_named),
      T(test_offer_and_trip_ids_go_to_the_shard_they_name),
      T(test_ids_of_shards_not_in_the_map_are_answered_not_produced),
      T(test_ids_of_shards_an_earlier_epoch_named_are_produced),
      T(test_request_checks_the_window_then_the_key_then_is_traced_to_the_pickup_shard),
      T(test_request_over_the_window_or_with_redis_down_is_refused_before_the_key),
      T(test_request_resend_goes_to_the_first_shard_and_other_places_conflict),
      T(test_cancel_goes_to_the_recorded_shard_only_for_its_rider),
      T(test_nearby_is_a_droppable_answer_capped_by_the_configuration),
      T(test_without_a_shard_map_every_message_is_unavailable),
      T(test_a_refused_write_is_unavailable_when_the_queue_is_full_else_internal),
      cmocka_unit_test(test_snapshot_on_connect_is_only_for_its_own_user),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
