/*
 * test_gateway_ops.c: the ops stream's pure core (services/gateway/ops.c): drivers added,
 * moved as deltas and deleted; driver states and trips from dispatch events; the byte
 * budget and the round-robin sampling under it (every driver refreshed in turn); per-shard
 * rates and the request -> offer percentiles; shard ranges as geohash boxes; the ops
 * client's `config` message; the invariant checker after every step. Frames are parsed
 * back with jansson and replayed into a client-side model, as the page does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* ---- a client-side model of the stream (what the page keeps) --------------------------- */

#define SLOTS 65536
typedef struct model {
  char id[SLOTS][65];
  int32_t lat[SLOTS], lon[SLOTS];
  int state[SLOTS];
  bool known[SLOTS];
  size_t msgs, bytes, max_msg;
  json_t *trips;  /* id -> last trip object */
  json_t *stats;  /* last stats */
  json_t *shards; /* last shards */
  json_t *hot;    /* last hot */
  bool hello;
  long n; /* the n of the last move message */
} model;

static int emit(void *ud, const char *json, size_t len) {
  model *m = ud;
  m->msgs++;
  m->bytes += len;
  if (len > m->max_msg) m->max_msg = len;
  assert_true(len <= GW_OPS_MSG_MAX);
  json_error_t e;
  json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
  if (!j) fail_msg("not JSON (%s): %.*s", e.text, (int)len, json);
  const char *type = json_string_value(json_object_get(j, "type"));
  assert_non_null(type);
  if (strcmp(type, "hello") == 0) {
    m->hello = true;
  } else if (strcmp(type, "drivers") == 0) {
    json_t *a;
    size_t i;
    json_t *x;
    if ((a = json_object_get(j, "del")))
      json_array_foreach(a, i, x) m->known[json_integer_value(x)] = false;
    if ((a = json_object_get(j, "add"))) {
      json_array_foreach(a, i, x) {
        long s = (long)json_integer_value(json_array_get(x, 0));
        snprintf(m->id[s], 65, "%s", json_string_value(json_array_get(x, 1)));
        m->lat[s] = (int32_t)json_integer_value(json_array_get(x, 2));
        m->lon[s] = (int32_t)json_integer_value(json_array_get(x, 3));
        m->state[s] = (int)json_integer_value(json_array_get(x, 4));
        m->known[s] = true;
      }
    }
    if ((a = json_object_get(j, "move"))) {
      assert_int_equal(json_array_size(a) % 3, 0);
      long slot = 0;
      for (i = 0; i < json_array_size(a); i += 3) {
        slot += (long)json_integer_value(json_array_get(a, i));
        assert_true(slot >= 0 && slot < SLOTS);
        assert_true(m->known[slot]);
        m->lat[slot] += (int32_t)json_integer_value(json_array_get(a, i + 1));
        m->lon[slot] += (int32_t)json_integer_value(json_array_get(a, i + 2));
      }
      m->n = (long)json_integer_value(json_object_get(j, "n"));
    }
  } else if (strcmp(type, "trips") == 0) {
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(j, "trips"), i, x) {
      json_object_set(m->trips, json_string_value(json_object_get(x, "id")), x);
    }
  } else if (strcmp(type, "stats") == 0) {
    json_decref(m->stats);
    m->stats = json_incref(j);
  } else if (strcmp(type, "shards") == 0) {
    json_decref(m->shards);
    m->shards = json_incref(j);
  } else if (strcmp(type, "hot") == 0) {
    json_decref(m->hot);
    m->hot = json_incref(j);
  } else {
    fail_msg("unknown message type %s", type);
  }
  json_decref(j);
  return 0;
}

static model *model_new(void) {
  model *m = calloc(1, sizeof *m);
  assert_non_null(m);
  m->trips = json_object();
  return m;
}

static void model_free(model *m) {
  json_decref(m->trips);
  json_decref(m->stats);
  json_decref(m->shards);
  json_decref(m->hot);
  free(m);
}

static int find_slot(const model *m, const char *id) {
  for (int s = 0; s < SLOTS; s++)
    if (m->known[s] && strcmp(m->id[s], id) == 0) return s;
  return -1;
}

static void checked(const gw_ops *o) {
  char why[200];
  if (gw_ops_check(o, why, sizeof why) != 0) fail_msg("invariant: %s", why);
}

static mrd_driver_location loc_of(const char *id, double lat, double lon, uint32_t shard) {
  mrd_driver_location l;
  memset(&l, 0, sizeof l);
  snprintf(l.driver_id, sizeof l.driver_id, "%s", id);
  l.pos = (mrd_latlon){lat, lon};
  l.owner_shard = shard;
  l.ts_ms = 1;
  l.epoch = 1;
  return l;
}

static mrd_dispatch_event ev_of(mrd_event_type t, const char *trip, uint64_t seq, uint32_t shard,
                                const char *driver, int64_t ts) {
  mrd_dispatch_event e;
  memset(&e, 0, sizeof e);
  e.type = t;
  snprintf(e.trip_id, sizeof e.trip_id, "%s", trip);
  e.seq = seq;
  e.shard = shard;
  e.epoch = 1;
  e.ts_ms = ts;
  snprintf(e.rider_id, sizeof e.rider_id, "r1");
  if (driver) snprintf(e.driver_id, sizeof e.driver_id, "%s", driver);
  e.has_pickup = e.has_dropoff = true;
  e.pickup = (mrd_latlon){40.75, -73.98};
  e.dropoff = (mrd_latlon){40.76, -73.97};
  return e;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_drivers_add_move_delete(void **state) {
  (void)state;
  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  gw_ops *o = gw_ops_new(&cfg);
  assert_non_null(o);
  gw_ops_view *v = gw_ops_view_new(o);
  model *m = model_new();
  int64_t t = 1700000000000;
  mrd_driver_location a = loc_of("drv-a", 40.75, -73.98, 0), b = loc_of("drv-b", 40.80, -73.95, 1);
  assert_int_equal(gw_ops_location(o, &a, t), 0);
  assert_int_equal(gw_ops_location(o, &b, t), 0);
  /* a halo copy is not a driver of its own */
  mrd_driver_location h = loc_of("drv-a", 40.70, -73.99, 1);
  h.halo = true;
  assert_int_equal(gw_ops_location(o, &h, t), 0);
  assert_int_equal(gw_ops_driver_count(o), 2);
  checked(o);
  gw_ops_frame(o, v, t, emit, m);
  assert_true(m->hello);
  int sa = find_slot(m, "drv-a"), sb = find_slot(m, "drv-b");
  assert_true(sa >= 0 && sb >= 0);
  assert_int_equal(m->lat[sa], 4075000);
  assert_int_equal(m->lon[sb], -7395000);
  assert_int_equal(m->state[sa], GW_OPS_AVAILABLE);

  /* a move arrives as a delta and lands exactly */
  a = loc_of("drv-a", 40.75012, -73.97991, 0);
  gw_ops_location(o, &a, t + 1000);
  gw_ops_frame(o, v, t + 1000, emit, m);
  assert_int_equal(m->lat[sa], 4075012);
  assert_int_equal(m->lon[sa], -7397991);
  assert_int_equal(m->n, 2);

  /* silent for longer than the ttl: deleted from the client's map */
  b = loc_of("drv-b", 40.8001, -73.95, 1);
  gw_ops_location(o, &b, t + 40000);
  gw_ops_expire(o, t + 40000);
  checked(o);
  assert_int_equal(gw_ops_driver_count(o), 1);
  gw_ops_frame(o, v, t + 40000, emit, m);
  assert_int_equal(find_slot(m, "drv-a"), -1);
  assert_true(find_slot(m, "drv-b") >= 0);
  assert_int_equal(m->lat[find_slot(m, "drv-b")], 4080010);

  /* the freed slot is reused by a new driver: the client rebinds it */
  mrd_driver_location c = loc_of("drv-c", 40.71, -74.0, 0);
  gw_ops_location(o, &c, t + 41000);
  gw_ops_frame(o, v, t + 41000, emit, m);
  int sc = find_slot(m, "drv-c");
  assert_true(sc >= 0);
  assert_int_equal(m->lat[sc], 4071000);
  checked(o);
  gw_ops_view_free(v);
  model_free(m);
  gw_ops_free(o);
}

static void test_states_and_trips(void **state) {
  (void)state;
  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  gw_ops *o = gw_ops_new(&cfg);
  gw_ops_view *v = gw_ops_view_new(o);
  model *m = model_new();
  int64_t t = 1700000000000;
  mrd_driver_location d = loc_of("drv-7", 40.76, -73.98, 0);
  gw_ops_location(o, &d, t);
  mrd_dispatch_event e = ev_of(MRD_EV_REQUESTED, "t0-x", 1, 0, NULL, t);
  gw_ops_event(o, &e, t);
  e = ev_of(MRD_EV_OFFERED, "t0-x", 2, 0, "drv-7", t + 15);
  gw_ops_event(o, &e, t + 15);
  gw_ops_frame(o, v, t + 100, emit, m);
  int s = find_slot(m, "drv-7");
  assert_int_equal(m->state[s], GW_OPS_OFFERED);
  json_t *tr = json_object_get(m->trips, "t0-x");
  assert_non_null(tr);
  assert_string_equal(json_string_value(json_object_get(tr, "state")), "offered");
  assert_int_equal(json_integer_value(json_object_get(tr, "shard")), 0);
  assert_string_equal(json_string_value(json_object_get(tr, "driver")), "drv-7");
  assert_true(fabs(json_real_value(json_array_get(json_object_get(tr, "pickup"), 0)) - 40.75) <
              1e-9);

  e = ev_of(MRD_EV_MATCHED, "t0-x", 3, 0, "drv-7", t + 2000);
  gw_ops_event(o, &e, t + 2000);
  gw_ops_frame(o, v, t + 2100, emit, m);
  assert_int_equal(m->state[s], GW_OPS_PICKUP);
  e = ev_of(MRD_EV_STARTED, "t0-x", 5, 0, "drv-7", t + 3000);
  gw_ops_event(o, &e, t + 3000);
  /* an older event (seq 4) after it changes nothing */
  e = ev_of(MRD_EV_ARRIVED, "t0-x", 4, 0, "drv-7", t + 2900);
  gw_ops_event(o, &e, t + 3001);
  gw_ops_frame(o, v, t + 3100, emit, m);
  assert_int_equal(m->state[s], GW_OPS_ON_TRIP);
  tr = json_object_get(m->trips, "t0-x");
  assert_string_equal(json_string_value(json_object_get(tr, "state")), "started");

  /* offline by a status command, back by another */
  mrd_command c;
  memset(&c, 0, sizeof c);
  c.kind = MRD_CMD_STATUS;
  snprintf(c.driver_id, sizeof c.driver_id, "drv-7");
  e = ev_of(MRD_EV_COMPLETED, "t0-x", 6, 0, "drv-7", t + 4000);
  gw_ops_event(o, &e, t + 4000);
  gw_ops_frame(o, v, t + 4100, emit, m);
  assert_int_equal(m->state[s], GW_OPS_AVAILABLE);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(m->trips, "t0-x"), "state")), "completed");
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(m->stats, "totals"), "trips")), 0);
  c.status = MRD_DRIVER_OFFLINE;
  gw_ops_command(o, &c, t + 4200);
  gw_ops_frame(o, v, t + 4300, emit, m);
  assert_int_equal(m->state[s], GW_OPS_OFFLINE);
  c.status = MRD_DRIVER_AVAILABLE;
  gw_ops_command(o, &c, t + 4400);
  gw_ops_frame(o, v, t + 4500, emit, m);
  assert_int_equal(m->state[s], GW_OPS_AVAILABLE);

  /* the ended trip lingers, then goes */
  assert_int_equal(gw_ops_trip_count(o), 1);
  gw_ops_expire(o, t + 4000 + cfg.trip_linger_ms + 1);
  assert_int_equal(gw_ops_trip_count(o), 0);
  checked(o);
  /* an end event for a trip never seen adds nothing */
  e = ev_of(MRD_EV_CANCELLED, "t1-zz", 3, 1, NULL, t + 5000);
  gw_ops_event(o, &e, t + 5000);
  assert_int_equal(gw_ops_trip_count(o), 0);
  /* a view connecting later does not get trips that ended before it came */
  gw_ops_view *late = gw_ops_view_new(o);
  model *m2 = model_new();
  e = ev_of(MRD_EV_REQUESTED, "t1-y", 1, 1, NULL, t + 6000);
  gw_ops_event(o, &e, t + 6000);
  e = ev_of(MRD_EV_NO_DRIVER, "t1-y", 2, 1, NULL, t + 6100);
  gw_ops_event(o, &e, t + 6100);
  gw_ops_frame(o, late, t + 6200, emit, m2);
  assert_int_equal(json_object_size(m2->trips), 0);
  gw_ops_view_free(late);
  model_free(m2);
  gw_ops_view_free(v);
  model_free(m);
  gw_ops_free(o);
}

/* A gateway restarted mid-trip seeds the live trips (trip:snap) before any driver has
 * pinged: a driver who then appears takes the state of the live trip naming him, not
 * "available" until his trip's next event. One with no live trip, or whose trip ended, is
 * available. */
static void test_driver_first_seen_mid_trip(void **state) {
  (void)state;
  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  gw_ops *o = gw_ops_new(&cfg);
  gw_ops_view *v = gw_ops_view_new(o);
  model *m = model_new();
  int64_t t = 1700000000000;
  const struct {
    mrd_event_type type;
    const char *trip, *driver;
    gw_ops_state want;
  } cases[] = {
      {MRD_EV_STARTED, "t0-a", "drv-a", GW_OPS_ON_TRIP},
      {MRD_EV_ARRIVED, "t0-b", "drv-b", GW_OPS_PICKUP},
      {MRD_EV_MATCHED, "t0-c", "drv-c", GW_OPS_PICKUP},
      {MRD_EV_OFFERED, "t0-d", "drv-d", GW_OPS_OFFERED},
      {MRD_EV_COMPLETED, "t0-e", "drv-e", GW_OPS_AVAILABLE},
  };
  const size_t n = sizeof cases / sizeof cases[0];
  for (size_t i = 0; i < n; i++) { /* the seed: one event per trip, no driver on the map */
    mrd_dispatch_event e = ev_of(cases[i].type, cases[i].trip, 9, 0, cases[i].driver, t);
    gw_ops_event(o, &e, t);
  }
  /* t0-e's driver: an earlier live trip, then its completion */
  mrd_dispatch_event e = ev_of(MRD_EV_STARTED, "t0-f", 3, 0, "drv-e", t);
  gw_ops_event(o, &e, t);
  e = ev_of(MRD_EV_COMPLETED, "t0-f", 4, 0, "drv-e", t + 1);
  gw_ops_event(o, &e, t + 1);
  assert_int_equal(gw_ops_driver_count(o), 0);
  for (size_t i = 0; i < n; i++) {
    mrd_driver_location l = loc_of(cases[i].driver, 40.75 + 0.001 * (double)i, -73.98, 0);
    gw_ops_location(o, &l, t + 500);
  }
  mrd_driver_location l = loc_of("drv-z", 40.74, -73.99, 0); /* no trip at all */
  gw_ops_location(o, &l, t + 500);
  gw_ops_frame(o, v, t + 600, emit, m);
  for (size_t i = 0; i < n; i++) {
    int s = find_slot(m, cases[i].driver);
    assert_true(s >= 0);
    if (m->state[s] != (int)cases[i].want)
      fail_msg("%s after %s: state %d, want %d", cases[i].driver, cases[i].trip, m->state[s],
               (int)cases[i].want);
  }
  assert_int_equal(m->state[find_slot(m, "drv-z")], GW_OPS_AVAILABLE);
  /* and the next trip event still moves him on */
  e = ev_of(MRD_EV_COMPLETED, "t0-a", 10, 0, "drv-a", t + 700);
  gw_ops_event(o, &e, t + 700);
  gw_ops_frame(o, v, t + 1600, emit, m);
  assert_int_equal(m->state[find_slot(m, "drv-a")], GW_OPS_AVAILABLE);
  checked(o);
  gw_ops_view_free(v);
  model_free(m);
  gw_ops_free(o);
}

static void test_rates_and_latency(void **state) {
  (void)state;
  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  gw_ops *o = gw_ops_new(&cfg);
  int64_t t = 1700000000000;
  /* 100 requests over 10 s on shard 1 (received by the gateway at `now`), offered 10..109 ms
   * later; 90 matched, 10 no driver */
  for (int i = 0; i < 100; i++) {
    char id[32], req[32];
    snprintf(id, sizeof id, "t1-%d", i);
    snprintf(req, sizeof req, "q1-%d", i);
    int64_t now = t + i * 100;
    mrd_command c = {.kind = MRD_CMD_REQUEST, .shard = 1, .epoch = 1, .ts_ms = now};
    snprintf(c.request_id, sizeof c.request_id, "%s", req);
    gw_ops_command(o, &c, now);
    mrd_dispatch_event e = ev_of(MRD_EV_REQUESTED, id, 1, 1, NULL, now + 10 + i);
    snprintf(e.request_id, sizeof e.request_id, "%s", req);
    gw_ops_event(o, &e, now);
    e = ev_of(MRD_EV_OFFERED, id, 2, 1, "d", now + 10 + i);
    snprintf(e.request_id, sizeof e.request_id, "%s", req);
    gw_ops_event(o, &e, now);
    e = ev_of(i < 90 ? MRD_EV_MATCHED : MRD_EV_NO_DRIVER, id, 3, 1, "d", now + 200);
    gw_ops_event(o, &e, now);
  }
  gw_ops_shard_stats s;
  gw_ops_shard_stats_get(o, 1, t + 10000, &s);
  assert_true(fabs(s.requests_per_s - 10.0) < 1e-9);
  assert_true(fabs(s.matched_per_s - 9.0) < 1e-9);
  assert_true(fabs(s.match_rate - 0.9) < 1e-9);
  assert_true(fabs(s.offer_p50_ms - 59.0) < 1e-9); /* samples 10..109: the 50th is 59 */
  assert_true(fabs(s.offer_p99_ms - 108.0) < 1e-9);
  assert_int_equal(s.trips, 90); /* matched and not ended */
  /* request -> offer counts from the gateway's receipt of the request (its command):
   * dispatch makes REQUESTED and the offer in one go (same ts), the time in Kafka and in
   * dispatch's queue is before that. A command read after its offer still counts; a
   * command never seen gives no sample (not a false 0). */
  gw_ops *o2 = gw_ops_new(&cfg);
  for (int i = 0; i < 10; i++) {
    char id[32], req[32];
    snprintf(id, sizeof id, "t2-%d", i);
    snprintf(req, sizeof req, "q2-%d", i);
    int64_t now = t + i * 100;
    mrd_command c = {.kind = MRD_CMD_REQUEST, .shard = 0, .epoch = 1, .ts_ms = now - 300 - i};
    snprintf(c.request_id, sizeof c.request_id, "%s", req);
    if (i < 8) gw_ops_command(o2, &c, now); /* i = 8: never seen; i = 9: seen after the offer */
    mrd_dispatch_event e = ev_of(MRD_EV_REQUESTED, id, 1, 0, NULL, now);
    snprintf(e.request_id, sizeof e.request_id, "%s", req);
    gw_ops_event(o2, &e, now);
    e = ev_of(MRD_EV_OFFERED, id, 2, 0, "d", now);
    snprintf(e.request_id, sizeof e.request_id, "%s", req);
    gw_ops_event(o2, &e, now);
    if (i == 9) gw_ops_command(o2, &c, now + 20);
  }
  gw_ops_shard_stats_get(o2, 0, t + 1000, &s);
  assert_true(fabs(s.offer_p50_ms - 304.0) < 1e-9); /* 300..307 and 309: the 5th is 304 */
  assert_true(fabs(s.offer_p99_ms - 309.0) < 1e-9);
  checked(o2);
  gw_ops_free(o2);
  gw_ops_shard_stats_get(o, 0, t + 10000, &s);
  assert_true(s.requests_per_s == 0 && s.match_rate < 0 && s.offer_p99_ms < 0);
  /* a minute later the window is empty */
  gw_ops_shard_stats_get(o, 1, t + 75000, &s);
  assert_true(s.requests_per_s == 0 && s.offer_p99_ms < 0);
  checked(o);
  gw_ops_free(o);
}

/* 20,000 drivers all moving every second stay within the budget; the round-robin cursor
 * refreshes every driver within ceil(cost / budget) frames. */
static void test_budget_sampling(void **state) {
  (void)state;
  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  gw_ops *o = gw_ops_new(&cfg);
  gw_ops_view *v = gw_ops_view_new(o);
  model *m = model_new();
  int64_t t = 1700000000000;
  enum { N = 20000 };
  for (int i = 0; i < N; i++) {
    char id[32];
    snprintf(id, sizeof id, "drv-%05d", i);
    mrd_driver_location l =
        loc_of(id, 40.70 + (i % 200) * 0.001, -74.0 + (i / 200) * 0.001, (uint32_t)(i & 1));
    gw_ops_location(o, &l, t);
  }
  /* the first frames bring the city in, within the budget each */
  size_t total = 0;
  int frames = 0;
  for (; frames < 20; frames++) {
    size_t before = m->bytes;
    gw_ops_frame(o, v, t + frames * 1000, emit, m);
    size_t bytes = m->bytes - before;
    total += bytes;
    assert_true(bytes <= (size_t)cfg.budget_bps + 2048 + GW_OPS_MSG_MAX);
    int known = 0;
    for (int s = 0; s < SLOTS; s++) known += m->known[s];
    if (known == N) break;
  }
  assert_true(frames < 20);
  /* then 30 s of everyone moving ~10 m each second */
  size_t before = m->bytes;
  int64_t t1 = t + (frames + 1) * 1000;
  for (int sec = 0; sec < 30; sec++) {
    int64_t now = t1 + sec * 1000;
    for (int i = 0; i < N; i++) {
      char id[32];
      snprintf(id, sizeof id, "drv-%05d", i);
      mrd_driver_location l = loc_of(id, 40.70 + (i % 200) * 0.001 + (sec + 1) * 0.0001,
                                     -74.0 + (i / 200) * 0.001, (uint32_t)(i & 1));
      gw_ops_location(o, &l, now);
    }
    gw_ops_frame(o, v, now, emit, m);
  }
  double bps = (double)(m->bytes - before) / 30.0;
  print_message("20,000 drivers moving every second: %.0f bytes/s (budget %lld), max message %zu\n",
                bps, (long long)cfg.budget_bps, m->max_msg);
  assert_true(bps <= (double)cfg.budget_bps * 1.05);
  assert_true(bps >= (double)cfg.budget_bps * 0.5); /* the budget is used, not wasted */
  /* then they stop: within a few frames every driver is exactly where he is */
  for (int k = 0; k < 5; k++) gw_ops_frame(o, v, t1 + (30 + k) * 1000, emit, m);
  for (int i = 0; i < N; i += 997) {
    char id[32];
    snprintf(id, sizeof id, "drv-%05d", i);
    int s = find_slot(m, id);
    assert_true(s >= 0);
    assert_int_equal(m->lat[s], (int32_t)lround((40.70 + (i % 200) * 0.001 + 30 * 0.0001) * 1e5));
  }
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(m->stats, "stream"), "lag_drivers")), 0);
  checked(o);
  gw_ops_view_free(v);
  model_free(m);
  gw_ops_free(o);
}

static void test_range_cells(void **state) {
  (void)state;
  char cells[4096][13];
  /* Manhattan's box, split at dr72 (migration 0002): every cell of shard 0 is < dr72 */
  size_t n0 = gw_ops_range_cells("", "dr72", 40.68, -74.05, 40.89, -73.90, 4, cells, 4096);
  assert_true(n0 > 0 && n0 < 4096);
  for (size_t i = 0; i < n0; i++) assert_true(strcmp(cells[i], "dr72") < 0);
  size_t n1 = gw_ops_range_cells("dr72", "~", 40.68, -74.05, 40.89, -73.90, 4, cells, 4096);
  assert_true(n1 > 0);
  bool has = false;
  for (size_t i = 0; i < n1; i++) {
    assert_true(strcmp(cells[i], "dr72") >= 0);
    if (strcmp(cells[i], "dr72") == 0) has = true;
  }
  assert_true(has);
  /* a range cutting a cell at the finest precision: the cell goes to where it starts */
  size_t n = gw_ops_range_cells("dr5ru", "dr5rv", 40.0, -75.0, 41.0, -73.0, 5, cells, 4096);
  assert_int_equal(n, 1);
  assert_string_equal(cells[0], "dr5ru");
  n = gw_ops_range_cells("dr5ru5", "dr5rv", 40.0, -75.0, 41.0, -73.0, 5, cells, 4096);
  assert_int_equal(n, 0);
  /* cap: the count is returned, only cap cells written */
  n = gw_ops_range_cells("dr5ru5", "dr72", 40.68, -74.05, 40.89, -73.90, 6, cells, 1);
  assert_true(n > 1);
}

/* The hot hashes of two shards merged: counts added, surge the highest, bad fields refused
 * without touching the cell; the merged list goes out with surge in slot 3. */
static void test_hot_add(void **state) {
  (void)state;
  gw_ops_hot_cell *c = NULL;
  size_t n = 0, cap = 0;
  assert_int_equal(gw_ops_hot_add(&c, &n, &cap, "dr5ru7", GW_OPS_HOT_SUPPLY, "4"), 0);
  assert_int_equal(gw_ops_hot_add(&c, &n, &cap, "dr5ru7", GW_OPS_HOT_SUPPLY, "3"), 0);
  assert_int_equal(gw_ops_hot_add(&c, &n, &cap, "dr5ru7", GW_OPS_HOT_DEMAND, "9"), 0);
  assert_int_equal(gw_ops_hot_add(&c, &n, &cap, "dr5ru7", GW_OPS_HOT_SURGE, "1.40"), 0);
  assert_int_equal(gw_ops_hot_add(&c, &n, &cap, "dr5ru7", GW_OPS_HOT_SURGE, "1.20"), 0);
  /* a cell only in hot:surge is shown too (its drivers and requests are 0) */
  assert_int_equal(gw_ops_hot_add(&c, &n, &cap, "dr72h1", GW_OPS_HOT_SURGE, "2.5"), 0);
  assert_int_equal(n, 2);
  assert_string_equal(c[0].geohash, "dr5ru7");
  assert_int_equal(c[0].supply, 7);
  assert_int_equal(c[0].demand, 9);
  assert_true(fabs(c[0].surge - 1.4) < 1e-9);
  assert_int_equal(c[1].supply, 0);
  assert_true(fabs(c[1].surge - 2.5) < 1e-9);
  /* refused: not a multiplier above 1 and at most the cap, not a count, not a geohash */
  const char *bad_surge[] = {"1.0", "0.9", "", "x", "1.5x", "nan", "inf", "101", "-2"};
  for (size_t i = 0; i < sizeof bad_surge / sizeof *bad_surge; i++)
    assert_int_equal(gw_ops_hot_add(&c, &n, &cap, "dr5ru7", GW_OPS_HOT_SURGE, bad_surge[i]), 1);
  const char *bad_count[] = {"", "-1", "+1", "1.5", "4294967296", "7 "};
  for (size_t i = 0; i < sizeof bad_count / sizeof *bad_count; i++)
    assert_int_equal(gw_ops_hot_add(&c, &n, &cap, "dr5ru7", GW_OPS_HOT_DEMAND, bad_count[i]), 1);
  const char *bad_gh[] = {"", "dr5rua", "DR5RU7", "dr5ru7dr5ru7d"};
  for (size_t i = 0; i < sizeof bad_gh / sizeof *bad_gh; i++)
    assert_int_equal(gw_ops_hot_add(&c, &n, &cap, bad_gh[i], GW_OPS_HOT_SUPPLY, "1"), 1);
  assert_int_equal(gw_ops_hot_add(&c, &n, &cap, NULL, GW_OPS_HOT_SUPPLY, "1"), 1);
  assert_int_equal(n, 2);
  assert_int_equal(c[0].supply, 7);
  assert_int_equal(c[0].demand, 9);
  assert_true(fabs(c[0].surge - 1.4) < 1e-9);
  /* counts saturate instead of wrapping */
  assert_int_equal(gw_ops_hot_add(&c, &n, &cap, "dr5ru7", GW_OPS_HOT_DEMAND, "4294967295"), 0);
  assert_int_equal(c[0].demand, UINT32_MAX);
  /* many cells: the list grows */
  char gh[16];
  for (int i = 0; i < 600; i++) {
    snprintf(gh, sizeof gh, "dr%04d", i);
    assert_int_equal(gw_ops_hot_add(&c, &n, &cap, gh, GW_OPS_HOT_SUPPLY, "1"), 0);
  }
  assert_int_equal(n, 602);
  assert_true(cap >= n);

  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  gw_ops *o = gw_ops_new(&cfg);
  gw_ops_view *v = gw_ops_view_new(o);
  model *m = model_new();
  assert_int_equal(gw_ops_set_hot(o, c, 2), 0);
  gw_ops_frame(o, v, 1700000000000, emit, m);
  json_t *cells = json_object_get(m->hot, "cells");
  assert_int_equal(json_array_size(cells), 2);
  assert_true(fabs(json_real_value(json_array_get(json_array_get(cells, 0), 3)) - 1.4) < 1e-9);
  assert_int_equal(json_integer_value(json_array_get(json_array_get(cells, 1), 2)), 0);
  assert_true(fabs(json_real_value(json_array_get(json_array_get(cells, 1), 3)) - 2.5) < 1e-9);
  gw_ops_view_free(v);
  model_free(m);
  gw_ops_free(o);
  free(c);
}

static void test_shards_and_hot_messages(void **state) {
  (void)state;
  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  gw_ops *o = gw_ops_new(&cfg);
  gw_ops_view *v = gw_ops_view_new(o);
  model *m = model_new();
  gw_shard_range r[2] = {{"", "dr72", 0}, {"dr72", "~", 1}};
  char err[100];
  gw_shardmap *map = gw_shardmap_new(3, r, 2, err, sizeof err);
  assert_non_null(map);
  gw_ops_move mv = {"dr72", "dr73", 1, 0, 4, "warming"};
  gw_ops_set_shards(o, map, &mv, 1);
  gw_ops_hot_cell hc[2] = {{"dr5ru7", 4, 2, 0}, {"dr72h1", 1, 7, 1.5}};
  assert_int_equal(gw_ops_set_hot(o, hc, 2), 0);
  gw_ops_frame(o, v, 1700000000000, emit, m);
  assert_non_null(m->shards);
  assert_int_equal(json_integer_value(json_object_get(m->shards, "epoch")), 3);
  json_t *ranges = json_object_get(m->shards, "ranges");
  assert_int_equal(json_array_size(ranges), 2);
  assert_true(json_array_size(json_object_get(json_array_get(ranges, 1), "cells")) > 0);
  json_t *moves = json_object_get(m->shards, "moves");
  assert_int_equal(json_array_size(moves), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(moves, 0), "state")),
                      "warming");
  json_t *cells = json_object_get(m->hot, "cells");
  assert_int_equal(json_array_size(cells), 2);
  assert_true(json_is_null(json_array_get(json_array_get(cells, 0), 3)));
  assert_true(fabs(json_real_value(json_array_get(json_array_get(cells, 1), 3)) - 1.5) < 1e-9);
  /* unchanged: not sent again */
  size_t msgs = m->msgs;
  json_decref(m->shards);
  m->shards = NULL;
  gw_ops_set_hot(o, hc, 2);
  gw_ops_set_shards(o, map, &mv, 1);
  gw_ops_frame(o, v, 1700000001000, emit, m);
  assert_null(m->shards);
  assert_true(m->msgs - msgs == 2); /* the drivers frame marker and stats */
  /* the stats name both shards of the map */
  assert_int_equal(json_array_size(json_object_get(m->stats, "shards")), 2);
  gw_ops_set_shards(o, NULL, NULL, 0);
  gw_shardmap_free(map);
  gw_ops_view_free(v);
  model_free(m);
  gw_ops_free(o);
}

/* A step of the shard tool, epoch 7, moving a range from shard 0 to shard 1: each state in
 * turn as the gateway and the two shards take the epoch; a CLI gone wins over those, and a
 * run that ended over everything. */
static void test_move_state(void **state) {
  (void)state;
  const char *R = "running";
  assert_string_equal(gw_ops_move_state(R, 7, 6, 6, 6, true), "switching");
  assert_string_equal(gw_ops_move_state(R, 7, 7, 6, 6, true), "warming");
  assert_string_equal(gw_ops_move_state(R, 7, 7, 6, 0, true), "warming"); /* receiver unknown */
  assert_string_equal(gw_ops_move_state(R, 7, 7, 6, 7, true), "releasing");
  assert_string_equal(gw_ops_move_state(R, 7, 7, 7, 7, true), "confirmed");
  assert_string_equal(gw_ops_move_state(R, 7, 8, 8, 9, true), "confirmed"); /* later epochs too */
  assert_string_equal(gw_ops_move_state(R, 7, 6, 6, 6, false), "interrupted");
  assert_string_equal(gw_ops_move_state(R, 7, 7, 7, 7, false), "interrupted");
  assert_string_equal(gw_ops_move_state("done", 7, 6, 6, 6, false), "done");
  assert_string_equal(gw_ops_move_state("failed", 7, 7, 7, 7, true), "failed");
  assert_string_equal(gw_ops_move_state("", 7, 7, 7, 7, true),
                      "failed"); /* unknown: not shown as fine */
  /* every word fits the move's state field and the schema */
  const char *words[] = {
      gw_ops_move_state(R, 2, 1, 1, 1, true),       gw_ops_move_state(R, 2, 2, 1, 1, true),
      gw_ops_move_state(R, 2, 2, 1, 2, true),       gw_ops_move_state(R, 2, 2, 2, 2, true),
      gw_ops_move_state(R, 2, 2, 2, 2, false),      gw_ops_move_state("done", 2, 2, 2, 2, true),
      gw_ops_move_state("failed", 2, 2, 2, 2, true)};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    assert_true(strlen(words[i]) < sizeof((gw_ops_move *)0)->state);
}

/* 64 shards: the stats message still fits and is JSON; totals count every shard */
static void test_stats_many_shards(void **state) {
  (void)state;
  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  gw_ops *o = gw_ops_new(&cfg);
  gw_ops_view *v = gw_ops_view_new(o);
  model *m = model_new();
  static const char B32[] = "0123456789bcdefghjkmnpqrstuvwxyz";
  gw_shard_range r[64];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 64; i++) r[i].shard = (uint32_t)i;
  /* ranges "", "0g", "10", "1g", ... "vg": starts of 2-character prefixes, each to the next */
  snprintf(r[0].start, sizeof r[0].start, "%s", "");
  for (int i = 1; i < 64; i++)
    snprintf(r[i].start, sizeof r[i].start, "%c%c", B32[i / 2], B32[(i % 2) * 16]);
  for (int i = 0; i < 63; i++) memcpy(r[i].end, r[i + 1].start, sizeof r[i].end);
  snprintf(r[63].end, sizeof r[63].end, "~");
  char err[128];
  gw_shardmap *map = gw_shardmap_new(1, r, 64, err, sizeof err);
  if (!map) fail_msg("map: %s", err);
  gw_ops_set_shards(o, map, NULL, 0);
  int64_t t = 1700000000000;
  for (uint32_t k = 0; k < 64; k++) {
    char id[16];
    snprintf(id, sizeof id, "t%u-a", (unsigned)k);
    mrd_dispatch_event e = ev_of(MRD_EV_REQUESTED, id, 1, k, NULL, t);
    gw_ops_event(o, &e, t);
  }
  gw_ops_frame(o, v, t + 2000, emit, m);
  assert_non_null(m->stats);
  size_t listed = json_array_size(json_object_get(m->stats, "shards"));
  assert_true(listed > 0 && listed <= 64);
  assert_true(
      fabs(json_real_value(json_object_get(json_object_get(m->stats, "totals"), "requests_per_s")) -
           6.4) < 0.01);
  gw_ops_set_shards(o, NULL, NULL, 0);
  gw_shardmap_free(map);
  gw_ops_view_free(v);
  model_free(m);
  gw_ops_free(o);
}

static void test_config_message(void **state) {
  (void)state;
  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  gw_ops *o = gw_ops_new(&cfg);
  gw_ops_view *v = gw_ops_view_new(o);
  char reply[512];
  const char *ok = "{\"type\":\"config\",\"period_ms\":500,\"budget_bps\":50000,\"ref\":\"c1\"}";
  assert_int_equal(gw_ops_handle(o, v, ok, strlen(ok), reply, sizeof reply), 0);
  assert_string_equal(reply, "{\"type\":\"ack\",\"ref\":\"c1\"}");
  assert_int_equal(gw_ops_view_period_ms(v), 500);
  struct {
    const char *in, *code, *field;
  } bad[] = {
      {"{\"type\":\"config\",\"period_ms\":100,\"ref\":\"c2\"}", "bad_request", "period_ms"},
      {"{\"type\":\"config\",\"budget_bps\":99999999}", "bad_request", "budget_bps"},
      {"{\"type\":\"config\",\"zoom\":3}", "bad_request", "zoom"},
      {"{\"type\":\"location\",\"lat\":1}", "bad_request", "type"},
      {"[1,2]", "bad_request", NULL},
      {"{\"type\":\"config\",\"type\":\"config\"}", "bad_request", NULL},
      {"{\"type\":\"config\",\"ref\":7}", "bad_request", "ref"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(gw_ops_handle(o, v, bad[i].in, strlen(bad[i].in), reply, sizeof reply), -1);
    json_t *j = json_loads(reply, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "code")), bad[i].code);
    if (bad[i].field)
      assert_string_equal(json_string_value(json_object_get(j, "field")), bad[i].field);
    json_decref(j);
  }
  char big[2000];
  memset(big, ' ', sizeof big);
  big[0] = '{';
  big[sizeof big - 1] = '}';
  assert_int_equal(gw_ops_handle(o, v, big, sizeof big, reply, sizeof reply), -1);
  assert_non_null(strstr(reply, "too_large"));
  assert_int_equal(gw_ops_view_period_ms(v), 500); /* refused messages change nothing */
  gw_ops_view_free(v);
  gw_ops_free(o);
}

static void test_bad_config(void **state) {
  (void)state;
  gw_ops_config cfg = GW_OPS_CONFIG_DEFAULT;
  cfg.budget_bps = 0;
  assert_null(gw_ops_new(&cfg));
  cfg = (gw_ops_config)GW_OPS_CONFIG_DEFAULT;
  cfg.min_lat = 50;
  assert_null(gw_ops_new(&cfg));
  assert_null(gw_ops_new(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_drivers_add_move_delete),
      cmocka_unit_test(test_states_and_trips),
      cmocka_unit_test(test_driver_first_seen_mid_trip),
      cmocka_unit_test(test_rates_and_latency),
      cmocka_unit_test(test_budget_sampling),
      cmocka_unit_test(test_range_cells),
      cmocka_unit_test(test_shards_and_hot_messages),
      cmocka_unit_test(test_config_message),
      cmocka_unit_test(test_bad_config),
      cmocka_unit_test(test_stats_many_shards),
      cmocka_unit_test(test_move_state),
      cmocka_unit_test(test_hot_add),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
