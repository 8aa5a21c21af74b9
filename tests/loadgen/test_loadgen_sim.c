/*
 * test_loadgen_sim.c: the simulation without sockets: drivers connect, say available and
 * ping with growing seq positions on the road graph; a rider asks at his trip's time; and the
 * same seed gives the same messages (the replay is deterministic), another seed other ones;
 * the ping period against the wall-clock cap, the drivers' pace, and the motion (heading,
 * speed_mps) their locations carry; the chained-trip estimate and the per-match pickup ETAs
 * (--eta-samples); drivers connected together ping on phases of their own.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "geo/geometry.h"
#include "sim.h"

/* What the fake socket layer saw: every message, "ts" blanked (it is the wall clock). */
typedef struct fake {
  char log[1 << 20];
  size_t len;
  int opened[2];
  uint32_t open_idx[2][64];
} fake;

static int f_open(void *ud, lg_role role, uint32_t idx, const char *sub) {
  fake *f = ud;
  assert_non_null(sub);
  f->open_idx[role][f->opened[role]++] = idx;
  return 0;
}

static int f_send(void *ud, lg_role role, uint32_t idx, const char *text, size_t len) {
  fake *f = ud;
  char line[512];
  snprintf(line, sizeof line, "%c%u %.*s\n", role == LG_DRIVER ? 'd' : 'r', idx, (int)len, text);
  char *ts = strstr(line, "\"ts\":");
  if (ts) memset(ts + 5, 'x', strcspn(ts + 5, ",}"));
  size_t n = strlen(line);
  if (f->len + n < sizeof f->log) memcpy(f->log + f->len, line, n), f->len += n;
  return 0;
}

static void f_close(void *ud, lg_role role, uint32_t idx) {}

static geo_graph *grid(void) {
  geo_graph_builder *b;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  uint32_t id[16];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      assert_int_equal(
          geo_graph_builder_add_node(
              b, i * 4 + j, (geo_latlng){40.75 + i * 0.002, -73.99 + j * 0.003}, &id[i * 4 + j]),
          GEO_OK);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      if (i + 1 < 4) {
        geo_graph_road r = {id[i * 4 + j],        id[(i + 1) * 4 + j], 20000, 20000, 222,
                            GEO_ROAD_RESIDENTIAL, i * 8 + j,           NULL,  0};
        assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_OK);
      }
      if (j + 1 < 4) {
        geo_graph_road r = {id[i * 4 + j],        id[i * 4 + j + 1], 25000, 25000, 253,
                            GEO_ROAD_RESIDENTIAL, 100 + i * 8 + j,   NULL,  0};
        assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_OK);
      }
    }
  geo_graph_build_opts o = {true, false};
  geo_graph *g;
  assert_int_equal(geo_graph_builder_build(b, &o, &g, NULL), GEO_OK);
  geo_graph_builder_free(b);
  return g;
}

/* Run 5 drivers and 2 riders for 3 s of fake wall time at 60x; the log in *f. */
static void run(const geo_graph *g, uint64_t seed, fake *f) {
  memset(f, 0, sizeof *f);
  lg_trip trips[2] = {
      {2, 1, 18, 0, 30, 1, 40.752, -73.987, 40.756, -73.981, 300, 18 * 3600 + 30, 0, 0, -1, -1},
      {3, 1, 18, 1, 10, 1, 40.754, -73.984, 40.750, -73.990, -1, 18 * 3600 + 70, 0, 0, -1, -1},
  };
  lg_trip_set set = {trips, 2, LG_CSV_SAMPLE, 2, {0}, 0, {0}, 0, 0};
  lg_config cfg;
  lg_config_defaults(&cfg);
  cfg.drivers = 5;
  cfg.seed = seed;
  cfg.duration_s = 3;
  cfg.drain_s = 1;
  snprintf(cfg.run_id, sizeof cfg.run_id, "t");
  lg_io io = {f, f_open, f_send, f_close, NULL, NULL};
  char err[200];
  int64_t now = 1000000;
  lg_sim *s = lg_sim_new(&cfg, g, &set, NULL, NULL, &io, now, 1700000000000, err, sizeof err);
  assert_non_null(s);
  assert_int_equal(lg_sim_riders(s), 2);
  int riders_opened = 0;
  for (int k = 0; k < 500 && !lg_sim_done(s); k++) {
    lg_sim_tick(s, now);
    if (k == 0) {
      assert_int_equal(f->opened[LG_DRIVER], 5);
      for (int i = 0; i < 5; i++) lg_sim_on_open(s, LG_DRIVER, f->open_idx[LG_DRIVER][i], now);
    }
    while (riders_opened < f->opened[LG_RIDER])
      lg_sim_on_open(s, LG_RIDER, f->open_idx[LG_RIDER][riders_opened++], now);
    now += 10000; /* 10 ms */
  }
  assert_true(lg_sim_done(s));
  lg_stats *st = lg_sim_stats(s);
  assert_int_equal(st->requested, 2); /* both trips fall in 18:00 + 3 s x 60 */
  assert_true(st->updates >= 5 * 3);  /* every driver pinged, at most 2/s each */
  assert_true(st->updates <= 5 * (2 * 5 + 1));
  lg_sim_free(s);
}

static void test_drivers_ping_and_riders_request_at_their_time(void **state) {
  (void)state;
  geo_graph *g = grid();
  static fake f;
  run(g, 1, &f);
  assert_non_null(strstr(f.log, "d0 {\"type\":\"status\",\"status\":\"available\""));
  assert_non_null(strstr(f.log, "\"seq\":1}"));
  assert_non_null(strstr(f.log, "\"seq\":3}"));
  assert_non_null(strstr(f.log, "r0 "
                                "{\"type\":\"request\",\"request_id\":\"qt-0\",\"pickup\":{\"lat\":"
                                "40.752000,\"lon\":-73.987000}"));
  assert_non_null(strstr(f.log, "r1 {\"type\":\"request\",\"request_id\":\"qt-1\""));
  /* the rider of 18:00:30 asks before the one of 18:01:10 */
  assert_true(strstr(f.log, "qt-0") < strstr(f.log, "qt-1"));
  /* at the end every driver signs off */
  assert_non_null(strstr(f.log, "d4 {\"type\":\"status\",\"status\":\"offline\"}"));
  geo_graph_free(g);
}

static void test_same_seed_same_messages_other_seed_other_places(void **state) {
  (void)state;
  geo_graph *g = grid();
  static fake a, b, c;
  run(g, 42, &a);
  run(g, 42, &b);
  run(g, 43, &c);
  assert_int_equal(a.len, b.len);
  assert_memory_equal(a.log, b.log, a.len);
  assert_true(a.len != c.len || memcmp(a.log, c.log, a.len) != 0);
  geo_graph_free(g);
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
  return n;
}

static void msg(lg_sim *s, lg_role role, uint32_t idx, const char *text, int64_t now) {
  lg_sim_on_message(s, role, idx, text, strlen(text), now);
}

/* Tick every 10 ms until `until` (fake wall µs); opens are answered only when `answer`. */
static int64_t advance(lg_sim *s, fake *f, int64_t now, int64_t until, bool answer, int seen[2]) {
  for (; now < until; now += 10000) {
    lg_sim_tick(s, now);
    for (int role = 0; role < 2; role++)
      while (answer && seen[role] < f->opened[role])
        lg_sim_on_open(s, (lg_role)role, f->open_idx[role][seen[role]++], now);
  }
  return now;
}

/* A dropped connection: the driver and the rider connect again after a jittered backoff
 * (not at once, not later than the policy's ceiling), say available and where they are
 * again, re-send what was not acked (the accept, the same request_id) and nothing that
 * was; a driver shown a trip he did not know (the gateway's snapshot) takes it up and
 * finishes it; `unavailable` makes the rider send again a second later. */
static void test_dropped_connections_reconnect_with_backoff_and_resync(void **state) {
  (void)state;
  geo_graph *g = grid();
  static fake f;
  memset(&f, 0, sizeof f);
  lg_trip trips[1] = {
      {2, 1, 18, 0, 30, 1, 40.752, -73.987, 40.756, -73.981, 300, 18 * 3600 + 30, 0, 0, -1, -1}};
  lg_trip_set set = {trips, 1, LG_CSV_SAMPLE, 1, {0}, 0, {0}, 0, 0};
  lg_config cfg;
  lg_config_defaults(&cfg);
  cfg.drivers = 1;
  cfg.accept_prob = 1.0;
  cfg.cancel_prob = 0;
  cfg.duration_s = 30;
  cfg.drain_s = 1;
  snprintf(cfg.run_id, sizeof cfg.run_id, "t");
  lg_io io = {&f, f_open, f_send, f_close, NULL, NULL};
  char err[200];
  int64_t now = 1000000;
  const int64_t epoch0 = 1700000000000;
  lg_sim *s = lg_sim_new(&cfg, g, &set, NULL, NULL, &io, now, epoch0, err, sizeof err);
  assert_non_null(s);
  int seen[2] = {0, 0};
  now = advance(s, &f, now, now + 20000, true, seen);
  assert_int_equal(f.opened[LG_DRIVER], 1);
  assert_int_equal(count(f.log, "d0 {\"type\":\"status\",\"status\":\"available\""), 1);

  /* an offer; he accepts after his human delay (2-8 s of sim time at 60x: < 150 ms) */
  char offer[600];
  snprintf(
      offer, sizeof offer,
      "{\"type\":\"offer\",\"offer_id\":\"o0-x-1\",\"trip_id\":\"t0-x\",\"pickup\":{\"lat\":40.752,"
      "\"lon\":-73.987},\"dropoff\":{\"lat\":40.756,\"lon\":-73.981},\"pickup_eta_s\":30,\"expires_"
      "at\":%lld}",
      (long long)(epoch0 + 10000));
  msg(s, LG_DRIVER, 0, offer, now);
  now = advance(s, &f, now, now + 300000, true, seen);
  assert_int_equal(count(f.log, "\"type\":\"accept\",\"offer_id\":\"o0-x-1\""), 1);
  msg(s, LG_DRIVER, 0, offer, now); /* the same offer again (a snapshot): no decline */
  assert_int_equal(count(f.log, "decline"), 0);

  /* the connection drops before the accept's ack: backoff in [250, 500] ms (second failure
   * level: the connection was open < 5 s) */
  lg_sim_on_closed(s, LG_DRIVER, 0, true, "closed", now);
  int64_t cut = now;
  now = advance(s, &f, now, cut + 240000, false, seen);
  assert_int_equal(f.opened[LG_DRIVER], 1);
  now = advance(s, &f, now, cut + 510000, false, seen);
  assert_int_equal(f.opened[LG_DRIVER], 2);
  size_t before = f.len;
  now = advance(s, &f, now, now + 20000, true, seen);
  const char *after = f.log + before;
  assert_non_null(strstr(after, "d0 {\"type\":\"status\",\"status\":\"available\""));
  assert_non_null(strstr(after, "d0 {\"type\":\"location\""));
  assert_non_null(
      strstr(after, "\"type\":\"accept\",\"offer_id\":\"o0-x-1\"")); /* not acked: again */
  assert_true(lg_sim_stats(s)->reconnects == 1 && lg_sim_stats(s)->resent == 1);

  /* acked this time: a second drop re-sends nothing but the status */
  const char *ref = strstr(after, "\"ref\":\"a");
  assert_non_null(ref);
  char ack[80];
  snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"ref\":\"%.*s\"}", (int)strcspn(ref + 7, "\""),
           ref + 7);
  msg(s, LG_DRIVER, 0, ack, now);
  lg_sim_on_closed(s, LG_DRIVER, 0, true, "closed", now);
  before = f.len;
  now = advance(s, &f, now, now + 1100000, true, seen); /* third level: [500, 1000] ms */
  assert_int_equal(f.opened[LG_DRIVER], 3);
  assert_null(strstr(f.log + before, "accept"));
  assert_non_null(strstr(f.log + before, "\"status\":\"available\""));

  /* the snapshot says he is on another trip, started (his `matched` was lost): he drives
   * it to the drop-off and completes it */
  msg(s, LG_DRIVER, 0,
      "{\"type\":\"trip\",\"trip_id\":\"t1-y\",\"status\":\"started\",\"seq\":5,\"ts\":1,"
      "\"pickup\":{\"lat\":40.750,\"lon\":-73.990},\"dropoff\":{\"lat\":40.754,\"lon\":-73.984}}",
      now);
  assert_int_equal(lg_sim_stats(s)->resync_adopted, 1);
  now = advance(s, &f, now, now + 2000000, true, seen);
  assert_non_null(strstr(f.log, "{\"type\":\"complete\",\"trip_id\":\"t1-y\""));
  /* a late event of the trip he just completed is not a snapshot to take up, nor is an
   * unknown trip long after the reconnection */
  msg(s, LG_DRIVER, 0,
      "{\"type\":\"trip\",\"trip_id\":\"t1-y\",\"status\":\"started\",\"seq\":5,\"ts\":1}", now);
  now = advance(s, &f, now, now + 3500000, true, seen);
  msg(s, LG_DRIVER, 0,
      "{\"type\":\"trip\",\"trip_id\":\"t1-w\",\"status\":\"matched\",\"seq\":3,\"ts\":1}", now);
  assert_int_equal(lg_sim_stats(s)->resync_adopted, 1);
  assert_int_equal(count(f.log, "\"type\":\"complete\",\"trip_id\":\"t1-y\""), 1);

  /* the rider (asks at 18:00:30 = 0.5 s of wall time after the clock started) */
  now = advance(s, &f, now, now + 500000, true, seen);
  assert_int_equal(count(f.log, "\"request_id\":\"qt-0\""), 1);
  lg_sim_on_closed(s, LG_RIDER, 0, true, "closed", now); /* before the ack */
  now = advance(s, &f, now, now + 600000, true, seen);
  assert_int_equal(f.opened[LG_RIDER], 2);
  assert_int_equal(count(f.log, "\"type\":\"request\",\"request_id\":\"qt-0\""),
                   2); /* the same id */
  msg(s, LG_RIDER, 0,
      "{\"type\":\"error\",\"code\":\"unavailable\",\"message\":\"redis\",\"ref\":\"r0\"}", now);
  now = advance(s, &f, now, now + 900000, true, seen);
  assert_int_equal(count(f.log, "\"type\":\"request\",\"request_id\":\"qt-0\""),
                   2); /* not before 1 s */
  now = advance(s, &f, now, now + 200000, true, seen);
  assert_int_equal(count(f.log, "\"type\":\"request\",\"request_id\":\"qt-0\""), 3);
  msg(s, LG_RIDER, 0, "{\"type\":\"ack\",\"ref\":\"r0\"}", now);
  lg_sim_on_closed(s, LG_RIDER, 0, true, "closed", now);
  now = advance(s, &f, now, now + 1100000, true, seen);
  assert_int_equal(f.opened[LG_RIDER], 3);
  assert_int_equal(count(f.log, "\"type\":\"request\",\"request_id\":\"qt-0\""),
                   3); /* acked: not again */
  /* the snapshot of his ended trip ends him, counted once */
  msg(s, LG_RIDER, 0, "{\"type\":\"no_driver\",\"request_id\":\"qt-0\"}", now);
  msg(s, LG_RIDER, 0, "{\"type\":\"no_driver\",\"request_id\":\"qt-0\"}", now);
  assert_int_equal(lg_sim_stats(s)->no_driver, 1);
  lg_sim_free(s);
  geo_graph_free(g);
}

/* Dispatch refuses an accept after the gateway acked it (the offer ran out): the driver is
 * free again and takes the next offer instead of declining it as busy. */
static void test_accept_refused_after_its_ack_frees_the_driver(void **state) {
  (void)state;
  geo_graph *g = grid();
  static fake f;
  memset(&f, 0, sizeof f);
  lg_trip trips[1] = {
      {2, 1, 18, 0, 30, 1, 40.752, -73.987, 40.756, -73.981, 300, 18 * 3600 + 30, 0, 0, -1, -1}};
  lg_trip_set set = {trips, 1, LG_CSV_SAMPLE, 1, {0}, 0, {0}, 0, 0};
  lg_config cfg;
  lg_config_defaults(&cfg);
  cfg.drivers = 1;
  cfg.accept_prob = 1.0;
  cfg.duration_s = 30;
  snprintf(cfg.run_id, sizeof cfg.run_id, "t");
  lg_io io = {&f, f_open, f_send, f_close, NULL, NULL};
  char err[200];
  int64_t now = 1000000;
  lg_sim *s = lg_sim_new(&cfg, g, &set, NULL, NULL, &io, now, 1700000000000, err, sizeof err);
  assert_non_null(s);
  int seen[2] = {0, 0};
  now = advance(s, &f, now, now + 20000, true, seen);
  const char *offer1 =
      "{\"type\":\"offer\",\"offer_id\":\"o0-x-1\",\"trip_id\":\"t0-x\",\"pickup\":{\"lat\":40.752,"
      "\"lon\":-73.987},\"dropoff\":{\"lat\":40.756,\"lon\":-73.981},\"pickup_eta_s\":30}";
  msg(s, LG_DRIVER, 0, offer1, now);
  now = advance(s, &f, now, now + 300000, true, seen);
  const char *ref = strstr(f.log, "\"ref\":\"a");
  assert_non_null(ref);
  char ack[80], refused[200];
  int n = (int)strcspn(ref + 7, "\"");
  snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"ref\":\"%.*s\"}", n, ref + 7);
  snprintf(refused, sizeof refused,
           "{\"type\":\"error\",\"code\":\"unknown_offer\",\"message\":\"gone\",\"ref\":\"%.*s\"}",
           n, ref + 7);
  msg(s, LG_DRIVER, 0, ack, now);
  msg(s, LG_DRIVER, 0, refused, now);
  msg(s, LG_DRIVER, 0,
      "{\"type\":\"offer\",\"offer_id\":\"o0-x-2\",\"trip_id\":\"t0-z\",\"pickup\":{\"lat\":40.752,"
      "\"lon\":-73.987},\"dropoff\":{\"lat\":40.756,\"lon\":-73.981},\"pickup_eta_s\":30}",
      now);
  now = advance(s, &f, now, now + 300000, true, seen);
  assert_null(strstr(f.log, "decline"));
  assert_non_null(strstr(f.log, "\"type\":\"accept\",\"offer_id\":\"o0-x-2\""));
  lg_sim_free(s);
  geo_graph_free(g);
}

/* Ack the latest message of the driver's log that carries `what` ("\"type\":\"complete\"").
 */
static void ack_latest(lg_sim *s, const fake *f, const char *what, int64_t now) {
  const char *at = NULL;
  for (const char *p = strstr(f->log, what); p; p = strstr(p + 1, what)) at = p;
  assert_non_null(at);
  const char *ref = strstr(at, "\"ref\":\"");
  assert_non_null(ref);
  char ack[80];
  snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"ref\":\"%.*s\"}", (int)strcspn(ref + 7, "\""),
           ref + 7);
  msg(s, LG_DRIVER, 0, ack, now);
}

/* A driver's trip steps lost with the connection are sent again: the `complete` he sent
 * just before the drop (he is free at once after it) while it is not acked, and, when the
 * gateway's snapshot on reconnection shows his trip behind what he did (the step was lost
 * after all), the steps it does not show. Only the snapshot (the first message after the
 * reconnection) does that, not a late event. */
static void test_trip_steps_lost_with_the_connection_are_sent_again(void **state) {
  (void)state;
  geo_graph *g = grid();
  static fake f;
  memset(&f, 0, sizeof f);
  lg_trip trips[1] = {
      {2, 1, 18, 0, 30, 1, 40.752, -73.987, 40.756, -73.981, 300, 18 * 3600 + 30, 0, 0, -1, -1}};
  lg_trip_set set = {trips, 1, LG_CSV_SAMPLE, 1, {0}, 0, {0}, 0, 0};
  lg_config cfg;
  lg_config_defaults(&cfg);
  cfg.drivers = 1;
  cfg.accept_prob = 1.0;
  cfg.cancel_prob = 0;
  cfg.duration_s = 60;
  cfg.drain_s = 1;
  snprintf(cfg.run_id, sizeof cfg.run_id, "t");
  lg_io io = {&f, f_open, f_send, f_close, NULL, NULL};
  char err[200];
  int64_t now = 1000000;
  const int64_t epoch0 = 1700000000000;
  lg_sim *s = lg_sim_new(&cfg, g, &set, NULL, NULL, &io, now, epoch0, err, sizeof err);
  assert_non_null(s);
  int seen[2] = {0, 0};
  now = advance(s, &f, now, now + 20000, true, seen);
  char offer[600];
  snprintf(
      offer, sizeof offer,
      "{\"type\":\"offer\",\"offer_id\":\"o0-x-1\",\"trip_id\":\"t0-x\",\"pickup\":{\"lat\":40.752,"
      "\"lon\":-73.987},\"dropoff\":{\"lat\":40.756,\"lon\":-73.981},\"pickup_eta_s\":30,\"expires_"
      "at\":%lld}",
      (long long)(epoch0 + 10000));
  msg(s, LG_DRIVER, 0, offer, now);
  now = advance(s, &f, now, now + 300000, true, seen);
  ack_latest(s, &f, "\"type\":\"accept\"", now);
  msg(s, LG_DRIVER, 0,
      "{\"type\":\"trip\",\"trip_id\":\"t0-x\",\"status\":\"matched\",\"seq\":3,\"ts\":1}", now);
  /* he drives to the pickup, boards, drives to the drop-off; each step acked but the last */
  const char *steps[] = {"\"type\":\"arrived\",\"trip_id\":\"t0-x\"",
                         "\"type\":\"start\",\"trip_id\":\"t0-x\""};
  for (int k = 0; k < 2; k++) {
    for (int n = 0; n < 2000 && !strstr(f.log, steps[k]); n++)
      now = advance(s, &f, now, now + 10000, true, seen);
    assert_non_null(strstr(f.log, steps[k]));
    ack_latest(s, &f, steps[k], now);
  }
  const char *complete = "\"type\":\"complete\",\"trip_id\":\"t0-x\"";
  for (int n = 0; n < 3000 && !strstr(f.log, complete); n++)
    now = advance(s, &f, now, now + 10000, true, seen);
  assert_int_equal(count(f.log, complete), 1);
  uint64_t resent0 = lg_sim_stats(s)->resent;

  /* the connection drops before the complete's ack: sent again on reconnection */
  lg_sim_on_closed(s, LG_DRIVER, 0, true, "closed", now);
  now = advance(s, &f, now, now + 1100000, true, seen);
  assert_int_equal(f.opened[LG_DRIVER], 2);
  assert_int_equal(count(f.log, complete), 2);
  assert_int_equal(lg_sim_stats(s)->resent, resent0 + 1);
  /* refused as unavailable (Redis restarting): sent again */
  const char *at = NULL;
  for (const char *p = strstr(f.log, complete); p; p = strstr(p + 1, complete)) at = p;
  const char *ref = strstr(at, "\"ref\":\"");
  char unavail[200];
  snprintf(unavail, sizeof unavail,
           "{\"type\":\"error\",\"code\":\"unavailable\",\"message\":\"x\",\"ref\":\"%.*s\"}",
           (int)strcspn(ref + 7, "\""), ref + 7);
  msg(s, LG_DRIVER, 0, unavail, now);
  now = advance(s, &f, now, now + 100000, true, seen);
  assert_int_equal(count(f.log, complete), 3);
  ack_latest(s, &f, complete, now);

  /* acked, yet the snapshot on the next reconnection shows the trip started (the step was
   * lost after all): the complete goes again; a late `started` event later does not */
  lg_sim_on_closed(s, LG_DRIVER, 0, true, "closed", now);
  now = advance(s, &f, now, now + 1100000, true, seen);
  assert_int_equal(f.opened[LG_DRIVER], 3);
  assert_int_equal(count(f.log, complete), 3);
  msg(s, LG_DRIVER, 0,
      "{\"type\":\"trip\",\"trip_id\":\"t0-x\",\"status\":\"started\",\"seq\":5,\"ts\":1}", now);
  now = advance(s, &f, now, now + 100000, true, seen);
  assert_int_equal(count(f.log, complete), 4);
  msg(s, LG_DRIVER, 0,
      "{\"type\":\"trip\",\"trip_id\":\"t0-x\",\"status\":\"started\",\"seq\":5,\"ts\":1}", now);
  now = advance(s, &f, now, now + 100000, true, seen);
  assert_int_equal(count(f.log, complete), 4);
  assert_int_equal(count(f.log, "\"type\":\"arrived\""), 1);
  assert_int_equal(count(f.log, "\"type\":\"start\""), 1);
  assert_int_equal(lg_sim_stats(s)->resent, resent0 + 2);
  lg_sim_free(s);
  geo_graph_free(g);
}

/* Drivers alone (no trip in the window is needed past the first) for 3 s of fake wall time
 * with cfg's speedup, pace and motion: the log in *f. */
static void run_drivers(const geo_graph *g, const lg_config *over, fake *f) {
  memset(f, 0, sizeof *f);
  lg_trip trips[1] = {
      {2, 1, 18, 0, 1, 1, 40.752, -73.987, 40.756, -73.981, 300, 18 * 3600 + 1, 0, 0, -1, -1}};
  lg_trip_set set = {trips, 1, LG_CSV_SAMPLE, 1, {0}, 0, {0}, 0, 0};
  lg_config cfg = *over;
  cfg.drivers = 3;
  cfg.duration_s = 3;
  cfg.drain_s = 1;
  cfg.cancel_prob = 0;
  snprintf(cfg.run_id, sizeof cfg.run_id, "m");
  lg_io io = {f, f_open, f_send, f_close, NULL, NULL};
  char err[200];
  int64_t now = 1000000;
  lg_sim *s = lg_sim_new(&cfg, g, &set, NULL, NULL, &io, now, 1700000000000, err, sizeof err);
  assert_non_null(s);
  for (int k = 0; k < 500 && !lg_sim_done(s); k++) {
    lg_sim_tick(s, now);
    if (k == 0)
      for (int i = 0; i < f->opened[LG_DRIVER]; i++)
        lg_sim_on_open(s, LG_DRIVER, f->open_idx[LG_DRIVER][i], now);
    for (int i = 0; i < f->opened[LG_RIDER]; i++)
      lg_sim_on_open(s, LG_RIDER, f->open_idx[LG_RIDER][i], now);
    f->opened[LG_RIDER] = 0;
    now += 10000;
  }
  lg_sim_free(s);
}

/* The speed_mps values of the log's locations: their number, median and max. (Each is the
 * straight line to the position a second later: a ping just before a corner reports less
 * than the road's speed, so the band is checked on the median.) */
static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static size_t speeds(const fake *f, double *med, double *hi) {
  static double v[4096];
  size_t n = 0;
  *med = -1, *hi = -1;
  for (const char *p = f->log; (p = strstr(p, "\"speed_mps\":")) != NULL && n < 4096; p++)
    v[n++] = atof(p + 12);
  if (!n) return 0;
  qsort(v, n, sizeof v[0], cmp_double);
  *med = v[n / 2];
  *hi = v[n - 1];
  return n;
}

/* What the phase tests' socket layer saw: when each driver sent each location. in_open: the
 * status queued on connecting is not yet written while lg_sim_on_open runs (queued > 0), as
 * with the real socket layer. */
typedef struct phase_fake {
  int64_t now_us;
  bool in_open;
  uint32_t opened[64];
  int n_opened, n_loc[64];
  int64_t loc_us[64][64];
} phase_fake;

static int p_open(void *ud, lg_role role, uint32_t idx, const char *sub) {
  phase_fake *f = ud;
  (void)sub;
  if (role == LG_DRIVER && f->n_opened < 64) f->opened[f->n_opened++] = idx;
  return 0;
}

static int p_send(void *ud, lg_role role, uint32_t idx, const char *text, size_t len) {
  phase_fake *f = ud;
  char line[512];
  snprintf(line, sizeof line, "%.*s", (int)len, text);
  if (role == LG_DRIVER && idx < 64 && strstr(line, "\"type\":\"location\"") && f->n_loc[idx] < 64)
    f->loc_us[idx][f->n_loc[idx]++] = f->now_us;
  return 0;
}

static size_t p_queued(void *ud, lg_role role, uint32_t idx) {
  phase_fake *f = ud;
  (void)role;
  (void)idx;
  return f->in_open ? 1 : 0; /* what on_open queued goes out at the loop's next turn */
}

/* 40 drivers at 4x pinging once a wall second (the real 4 s period), all connecting in the
 * first tick at t0; the replay clock starts settle_s later; `ticks` ticks of 10 ms. */
static void phase_run(phase_fake *f, int64_t t0, double settle_s, bool queued_on_open, int ticks) {
  geo_graph *g = grid();
  memset(f, 0, sizeof *f);
  lg_trip trips[1] = {
      {2, 1, 18, 0, 1, 1, 40.752, -73.987, 40.756, -73.981, 300, 18 * 3600 + 1, 0, 0, -1, -1}};
  lg_trip_set set = {trips, 1, LG_CSV_SAMPLE, 1, {0}, 0, {0}, 0, 0};
  lg_config cfg;
  lg_config_defaults(&cfg);
  cfg.speedup = 4; /* the real 4 s period at 1 location a wall second */
  cfg.ping_max_hz = 1;
  cfg.drivers = 40;
  cfg.duration_s = 3;
  cfg.drain_s = 1;
  cfg.settle_s = settle_s;
  cfg.cancel_prob = 0;
  snprintf(cfg.run_id, sizeof cfg.run_id, "p");
  lg_io io = {f, p_open, p_send, f_close, queued_on_open ? p_queued : NULL, NULL};
  char err[200];
  f->now_us = t0;
  lg_sim *s = lg_sim_new(&cfg, g, &set, NULL, NULL, &io, t0, 1700000000000, err, sizeof err);
  assert_non_null(s);
  for (int k = 0; k < ticks; k++, f->now_us += 10000) {
    lg_sim_tick(s, f->now_us);
    if (k == 0) {
      f->in_open = queued_on_open;
      for (int i = 0; i < f->n_opened; i++) lg_sim_on_open(s, LG_DRIVER, f->opened[i], f->now_us);
      f->in_open = false;
    }
  }
  lg_sim_free(s);
  geo_graph_free(g);
}

/* Drivers who connect in the same instant (a replay's start, a gateway restart) ping at
 * once, then each on a phase of his own: their second locations spread over the period
 * (1 wall second here) instead of arriving together, as real apps' do. */
static void test_pings_spread_over_the_period(void **state) {
  (void)state;
  static phase_fake f;
  const int64_t t0 = 1000000;
  phase_run(&f, t0, 0, false, 250);
  assert_int_equal(f.n_opened, 40);
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  int early = 0;
  for (int i = 0; i < f.n_opened; i++) {
    uint32_t d = f.opened[i];
    assert_true(f.n_loc[d] >= 2);
    int64_t gap = f.loc_us[d][1] - t0;
    assert_true(gap > 0 && gap <= 1000000 + 10000); /* never later than the period */
    if (gap < lo) lo = gap;
    if (gap > hi) hi = gap;
    early += gap < 500000;
  }
  if (hi - lo < 700000) fail_msg("second locations within %.3f s of each other", (hi - lo) / 1e6);
  /* uniform phases: about half in the first half of the period */
  if (early < 8 || early > 32) fail_msg("%d of 40 in the period's first half", early);
}

/* The same drivers, as the real socket layer has them: the status queued on connecting is
 * not yet written when the first location goes (queued > 0 during the open), and the replay
 * clock starts 12 s later (a long settle, past the 10 s keepalive), so that every driver
 * sends a keepalive location while that clock stands still. Neither may put them in step:
 * once the replay runs, their locations still spread over the period. (Both did: 2,000
 * drivers then pinged within one 10 ms tick of every second, and the whole stack's latency
 * had a burst a second.) */
static void test_pings_stay_spread_behind_status_and_late_start(void **state) {
  (void)state;
  static phase_fake f;
  const int64_t t0 = 1000000;
  phase_run(&f, t0, 12, true, 1700);
  assert_int_equal(f.n_opened, 40);
  /* the replay's clock starts 12 s after the open (+ a tick); its second period: */
  const int64_t from = t0 + 13020000, to = from + 1000000;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  int early = 0;
  for (int i = 0; i < f.n_opened; i++) {
    uint32_t d = f.opened[i];
    assert_true(f.n_loc[d] >= 3);
    assert_true(f.loc_us[d][0] == t0); /* the first location went on connecting */
    int in_period = 0;
    for (int k = 0; k < f.n_loc[d]; k++) {
      int64_t at = f.loc_us[d][k];
      if (at < from || at >= to) continue;
      in_period++;
      if (at < lo) lo = at;
      if (at > hi) hi = at;
      early += at - from < 500000;
    }
    if (in_period != 1) fail_msg("driver %u: %d locations in one period", d, in_period);
  }
  if (hi - lo < 700000) fail_msg("locations within %.3f s of each other", (hi - lo) / 1e6);
  if (early < 8 || early > 32) fail_msg("%d of 40 in the period's first half", early);
}

static void test_ping_period_pace_and_motion(void **state) {
  (void)state;
  lg_config c;
  lg_config_defaults(&c);
  /* the real period (4 s) at 60x needs 15 locations a wall second: the cap (2/s) stretches it
   * to 30 s of sim time; 8x is the highest speedup that keeps it */
  assert_true(lg_ping_gap_s(&c) == 30);
  assert_true(lg_speedup_for_ping(&c) == 8);
  c.speedup = 8;
  assert_true(lg_ping_gap_s(&c) == 4);
  c.speedup = 2;
  assert_true(lg_ping_gap_s(&c) == 4);
  /* the calibrated pace of an hour: the graph's hour x day factor, trip base left out */
  geo_graph *g = grid();
  assert_true(fabs(lg_drive_pace_at(g, 8, 3) - 1) < 1e-9);
  geo_graph_calibration cal;
  geo_graph_calibration_identity(&cal);
  cal.hour_factor[0][8] = 1.5;
  cal.day_factor[3] = 1.2;
  cal.trip_base_ms = 30000;
  geo_graph *gc = NULL;
  assert_int_equal(geo_graph_calibrated(g, &cal, &gc), GEO_OK);
  assert_true(fabs(lg_drive_pace_at(gc, 8, 3) - 1.8) < 1e-6);
  assert_true(fabs(lg_drive_pace_at(gc, 9, 3) - 1.2) < 1e-6);
  assert_true(lg_drive_pace_at(gc, 24, 3) == 1 && lg_drive_pace_at(gc, 8, -1) == 1);
  geo_graph_free(gc);

  /* locations carry heading and speed: the grid's roads take 222 m in 20 s and 253 m in
   * 25 s (10.1-11.1 m/s); at 2x the position moves twice that a wall second */
  static fake f;
  lg_config_defaults(&c);
  c.speedup = 2;
  run_drivers(g, &c, &f);
  double med, hi;
  size_t n = speeds(&f, &med, &hi);
  assert_true(n >= 3);
  if (!(med > 19.5 && hi < 23)) fail_msg("speeds at 2x: median %.2f, max %.2f m/s", med, hi);
  assert_non_null(strstr(f.log, "\"heading\":"));
  /* at pace 2 (the snapshot's times x 2) they drive half as fast */
  c.drive_pace = 2;
  run_drivers(g, &c, &f);
  n = speeds(&f, &med, &hi);
  assert_true(n >= 3);
  if (!(med > 9.7 && hi < 11.5)) fail_msg("speeds at pace 2: median %.2f, max %.2f m/s", med, hi);
  /* over the protocol's 100 m/s (at 60x): the heading alone */
  c.drive_pace = 1;
  c.speedup = 60;
  run_drivers(g, &c, &f);
  assert_int_equal(speeds(&f, &med, &hi), 0);
  assert_non_null(strstr(f.log, "\"heading\":"));
  /* --no-motion: neither */
  c.send_motion = false;
  c.speedup = 2;
  run_drivers(g, &c, &f);
  assert_null(strstr(f.log, "\"heading\":"));
  assert_null(strstr(f.log, "\"speed_mps\":"));
  /* a pace out of range is a bad setting */
  c.drive_pace = 0;
  lg_trip trips[1] = {
      {2, 1, 18, 0, 1, 1, 40.752, -73.987, 40.756, -73.981, 300, 18 * 3600 + 1, 0, 0, -1, -1}};
  lg_trip_set set = {trips, 1, LG_CSV_SAMPLE, 1, {0}, 0, {0}, 0, 0};
  lg_io io = {&f, f_open, f_send, f_close, NULL, NULL};
  char err[200];
  assert_null(lg_sim_new(&c, g, &set, NULL, NULL, &io, 1, 1, err, sizeof err));
  assert_non_null(strstr(err, "pace"));
  geo_graph_free(g);
}

/* Chained trips, estimated: driver 0 is matched to a trip from the grid's south-west corner
 * to its north-east one (P -> Q), drives it and completes it at fake time *complete_us (found
 * by a first run); driver 1 is matched to a pickup at Q `before_us` of wall time before that
 * (the replay is deterministic: the same seed and messages give the same run up to then).
 * Returns the sim's stats in *out (copied counts and the saving samples' sum). */
typedef struct chain_result {
  size_t matches, sooner;
  double saving_sum_s, saving_max_s;
  int64_t complete_us;
} chain_result;

static void chain_run(const geo_graph *g, double horizon_s, int64_t match_at_us, chain_result *out,
                      const char *eta_path) {
  static fake f;
  memset(&f, 0, sizeof f);
  memset(out, 0, sizeof *out);
  lg_trip trips[1] = {
      {2, 1, 18, 0, 30, 1, 40.750, -73.990, 40.756, -73.981, 300, 18 * 3600 + 30, 0, 0, -1, -1}};
  lg_trip_set set = {trips, 1, LG_CSV_SAMPLE, 1, {0}, 0, {0}, 0, 0};
  lg_config cfg;
  lg_config_defaults(&cfg);
  cfg.drivers = 2;
  cfg.accept_prob = 1.0;
  cfg.cancel_prob = 0;
  cfg.duration_s = 30;
  cfg.chain_horizon_s = horizon_s;
  snprintf(cfg.run_id, sizeof cfg.run_id, "c");
  lg_io io = {&f, f_open, f_send, f_close, NULL, NULL};
  char err[200];
  int64_t now = 1000000;
  lg_sim *s = lg_sim_new(&cfg, g, &set, NULL, NULL, &io, now, 1700000000000, err, sizeof err);
  assert_non_null(s);
  int seen[2] = {0, 0};
  now = advance(s, &f, now, now + 20000, true, seen);
  const char *pq =
      "\"pickup\":{\"lat\":40.750,\"lon\":-73.990},\"dropoff\":{\"lat\":40.756,\"lon\":-73.981}";
  const char *qx =
      "\"pickup\":{\"lat\":40.756,\"lon\":-73.981},\"dropoff\":{\"lat\":40.750,\"lon\":-73.981}";
  char m[400];
  snprintf(m, sizeof m,
           "{\"type\":\"offer\",\"offer_id\":\"o0-a-1\",\"trip_id\":\"t0-a\",\"request_id\":\"qc-"
           "0\",%s,\"pickup_eta_s\":30}",
           pq);
  msg(s, LG_DRIVER, 0, m, now);
  now = advance(s, &f, now, now + 300000, true, seen); /* the accept: 2-8 s of sim time at 60x */
  assert_int_equal(count(f.log, "\"type\":\"accept\",\"offer_id\":\"o0-a-1\""), 1);
  snprintf(m, sizeof m,
           "{\"type\":\"trip\",\"trip_id\":\"t0-a\",\"status\":\"matched\",\"seq\":2,\"ts\":1,%s,"
           "\"pickup_eta_s\":30}",
           pq);
  msg(s, LG_DRIVER, 0, m, now);
  bool offered = false, matched = false;
  for (int k = 0; k < 2000 && !out->complete_us; k++) {
    if (match_at_us && !offered &&
        now >= match_at_us - 250000) { /* driver 1: offer, accept, match */
      snprintf(m, sizeof m,
               "{\"type\":\"offer\",\"offer_id\":\"o0-b-1\",\"trip_id\":\"t0-b\",%s,\"pickup_eta_"
               "s\":30}",
               qx);
      msg(s, LG_DRIVER, 1, m, now);
      offered = true;
    }
    if (match_at_us && !matched && now >= match_at_us) {
      assert_int_equal(count(f.log, "\"type\":\"accept\",\"offer_id\":\"o0-b-1\""), 1);
      snprintf(m, sizeof m,
               "{\"type\":\"trip\",\"trip_id\":\"t0-b\",\"status\":\"matched\",\"seq\":2,\"ts\":1,%"
               "s,\"pickup_eta_s\":30}",
               qx);
      msg(s, LG_DRIVER, 1, m, now);
      matched = true;
    }
    now = advance(s, &f, now, now + 10000, true, seen);
    if (strstr(f.log, "\"type\":\"complete\",\"trip_id\":\"t0-a\"")) out->complete_us = now;
  }
  assert_true(out->complete_us > 0);
  assert_true(!match_at_us || matched);
  const lg_stats *st = lg_sim_stats(s);
  out->matches = st->chain_saving_s.n;
  out->sooner = st->chain_sooner;
  for (size_t i = 0; i < st->chain_saving_s.n; i++) {
    double v = st->chain_saving_s.v[i];
    assert_true(v >= 0);
    out->saving_sum_s += v;
    if (v > out->saving_max_s) out->saving_max_s = v;
  }
  if (eta_path) assert_int_equal(lg_sim_write_eta_samples(s, eta_path), 0);
  lg_sim_free(s);
}

/* The chained-trip estimate: driver 1 matched to the drop-off of driver 0's trip 9 s of sim
 * time (150 ms of wall time at 60x) before driver 0 completes it: driver 0 would have been
 * there in about 9 s, sooner than driver 1's drive, and the saving is that difference;
 * outside the horizon, or with the estimate off, nothing is counted. */
static void test_chain_estimate(void **state) {
  (void)state;
  geo_graph *g = grid();
  chain_result first, r;
  char eta_path[] = "/tmp/test_loadgen_sim_eta_XXXXXX";
  int fd = mkstemp(eta_path);
  assert_true(fd >= 0);
  close(fd);
  chain_run(g, 120, 0, &first, eta_path);
  /* --eta-samples: driver 0's match of rider 0, quoted 30 s, his drive to the pickup as
   * simulated when matched, and as it ended (the same: nothing slowed him) */
  FILE *fp = fopen(eta_path, "r");
  assert_non_null(fp);
  char line[256];
  double quoted, drive, actual, line_m;
  assert_non_null(fgets(line, sizeof line, fp));
  assert_string_equal(line, "request_id,trip_id,driver,quoted_s,drive_s,actual_s,line_m\n");
  assert_non_null(fgets(line, sizeof line, fp));
  /* the rider's trip_id is empty: no rider message came (the fake gateway only answers the
   * driver) */
  const char *head = "qc-0,,dc-0,";
  assert_memory_equal(line, head, strlen(head));
  assert_int_equal(
      sscanf(line + strlen(head), "%lf,%lf,%lf,%lf", &quoted, &drive, &actual, &line_m), 4);
  assert_true(quoted == 30 && drive >= 0 && fabs(actual - drive) < 0.5 && line_m >= 0);
  assert_null(fgets(line, sizeof line, fp)); /* driver 1 has no rider of this run */
  fclose(fp);
  unlink(eta_path);
  assert_int_equal(first.matches, 1); /* driver 0's own match: nobody on a trip then */
  assert_int_equal(first.sooner, 0);
  assert_true(first.saving_sum_s == 0);
  int64_t at = first.complete_us - 150000;
  chain_run(g, 120, at, &r, NULL);
  assert_int_equal(r.complete_us, first.complete_us); /* the same run up to there */
  assert_int_equal(r.matches, 2);
  assert_int_equal(r.sooner, 1);
  /* driver 1's drive to Q minus driver 0's ~9 s left (his route from Q to Q is 0): driver 1
   * starts somewhere on the grid, 0-7 arcs of 20-25 s from Q */
  if (!(r.saving_sum_s > 5 && r.saving_sum_s < 7 * 25)) fail_msg("saving %.1f s", r.saving_sum_s);
  /* a horizon shorter than what driver 0 has left: not counted */
  chain_run(g, 5, at, &r, NULL);
  assert_int_equal(r.matches, 2);
  assert_int_equal(r.sooner, 0);
  assert_true(r.saving_sum_s == 0);
  /* off */
  chain_run(g, 0, at, &r, NULL);
  assert_int_equal(r.matches, 0);
  /* a horizon out of range is a bad setting */
  lg_config c;
  lg_config_defaults(&c);
  c.chain_horizon_s = -1;
  static fake f;
  lg_trip trips[1] = {
      {2, 1, 18, 0, 1, 1, 40.752, -73.987, 40.756, -73.981, 300, 18 * 3600 + 1, 0, 0, -1, -1}};
  lg_trip_set set = {trips, 1, LG_CSV_SAMPLE, 1, {0}, 0, {0}, 0, 0};
  lg_io io = {&f, f_open, f_send, f_close, NULL, NULL};
  char err[200];
  assert_null(lg_sim_new(&c, g, &set, NULL, NULL, &io, 1, 1, err, sizeof err));
  assert_non_null(strstr(err, "chain horizon"));
  geo_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_drivers_ping_and_riders_request_at_their_time),
      cmocka_unit_test(test_same_seed_same_messages_other_seed_other_places),
      cmocka_unit_test(test_dropped_connections_reconnect_with_backoff_and_resync),
      cmocka_unit_test(test_accept_refused_after_its_ack_frees_the_driver),
      cmocka_unit_test(test_trip_steps_lost_with_the_connection_are_sent_again),
      cmocka_unit_test(test_ping_period_pace_and_motion),
      cmocka_unit_test(test_pings_spread_over_the_period),
      cmocka_unit_test(test_pings_stay_spread_behind_status_and_late_start),
      cmocka_unit_test(test_chain_estimate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
