/*
 * test_dispatch_matcher.c: matching as docs/dispatch.md says: the lowest ROAD ETA wins over the
 * nearest straight line (a river and a one-way street), one one-to-many search ranks the
 * candidates, offers expire to the next candidate, the radius widens, claims contended by
 * another owner (or another shard) are skipped, and no_driver comes after the last try.
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

static char g_offer[DSP_ID_MAX + 1], g_trip[DSP_ID_MAX + 1];

/* Remember the latest OFFERED event's ids; assert it offers driver. */
static const dsp_event *expect_offer(fixture *f, const char *driver) {
  const dsp_event *e = NULL;
  for (size_t i = 0; event_at(f->s, DSP_EV_OFFERED, i); i++) e = event_at(f->s, DSP_EV_OFFERED, i);
  if (!e) fail_msg("no offer queued, expected one to %s", driver);
  assert_string_equal(e->driver_id, driver);
  strcpy(g_offer, e->offer_id);
  strcpy(g_trip, e->trip_id);
  return e;
}

/*
 * The river town, as a table of roads (times in s):
 *
 *      N0 ---150--- NB        north bank: D1 waits at N0, 222 m north of the pickup
 *   ~~~~~~ river ~~~ | 20 (the only bridge)
 *  W <-15- P --60-- S1 --120-- SB      south bank: D2 at S1, 590 m east
 *  |(one-way)        |
 *  v 100             | 20
 *  SX ----100------ SY
 *
 * D3 waits at W, 211 m west, but W is reached from P by a one-way street: back to P he
 * must go round by SX, SY and S1 (280 s). Straight line: D3 < D1 < D2. Road: D2 (60 s)
 * < D3 (280 s) < D1 (350 s).
 */
static void build_river_town(fixture *f) {
  uint32_t P = fixture_node(f, 40.750, -73.990);
  uint32_t S1 = fixture_node(f, 40.750, -73.983);
  uint32_t SB = fixture_node(f, 40.750, -73.970);
  uint32_t N0 = fixture_node(f, 40.752, -73.990);
  uint32_t NB = fixture_node(f, 40.752, -73.970);
  uint32_t W = fixture_node(f, 40.750, -73.9925);
  uint32_t SX = fixture_node(f, 40.748, -73.9925);
  uint32_t SY = fixture_node(f, 40.748, -73.983);
  static const struct {
    int a, b;
    double s;
    bool two_way;
  } roads[] = {
      {0, 1, 60, true},   /* P - S1 */
      {1, 2, 120, true},  /* S1 - SB */
      {2, 4, 20, true},   /* SB - NB: the bridge */
      {4, 3, 150, true},  /* NB - N0 */
      {0, 5, 15, false},  /* P -> W, one-way */
      {5, 6, 100, false}, /* W -> SX, one-way */
      {6, 7, 100, true},  /* SX - SY */
      {7, 1, 20, true},   /* SY - S1 */
  };
  uint32_t id[8] = {P, S1, SB, N0, NB, W, SX, SY};
  for (size_t i = 0; i < sizeof roads / sizeof roads[0]; i++)
    fixture_road(f, id[roads[i].a], id[roads[i].b], roads[i].s, roads[i].two_way);
}

static void test_matcher_picks_lowest_road_eta_not_nearest_straight_line(void **state) {
  (void)state;
  fixture f;
  fixture_init(&f);
  build_river_town(&f);
  fixture_start(&f);
  ping(&f, "D1", 40.752, -73.990, 1, 0);  /* across the river */
  ping(&f, "D2", 40.750, -73.983, 1, 0);  /* same bank, farther */
  ping(&f, "D3", 40.750, -73.9925, 1, 0); /* behind the one-way street */
  dsp_request r = {.request_id = "q1",
                   .rider_id = "r1",
                   .pickup = {40.750, -73.990}, /* at P: the times below are node to node */
                   .dropoff = {40.750, -73.983}};
  assert_int_equal(dsp_on_request(f.s, &r, NULL, 100), DSP_OK);
  const dsp_event *e = expect_offer(&f, "D2");
  assert_true(fabs(e->pickup_eta_s - 60) < 1e-6);
  /* ONE one-to-many search ranked all three. */
  assert_int_equal(f.etas_calls, 1);
  assert_int_equal(dsp_graph_router_searches(f.gr), 1);
  check_and_clear(&f);
  /* Declines walk the list in road order: D3 (280 s), then D1 (350 s). */
  assert_int_equal(dsp_on_decline(f.s, g_offer, "D2", NULL, 200), DSP_OK);
  e = expect_offer(&f, "D3");
  assert_true(fabs(e->pickup_eta_s - 280) < 1e-6);
  check_and_clear(&f);
  assert_int_equal(dsp_on_decline(f.s, g_offer, "D3", NULL, 300), DSP_OK);
  e = expect_offer(&f, "D1");
  assert_true(fabs(e->pickup_eta_s - 350) < 1e-6);
  assert_int_equal(f.etas_calls, 1); /* the list was ranked once */
  fixture_close(&f);
}

static void test_matcher_offer_carries_ids_expiry_eta_and_position(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.752, -73.99, 1, 0); /* 2 blocks north of the pickup */
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 1000), DSP_OK);
  const dsp_event *e = expect_offer(f, "d1");
  assert_string_equal(e->trip_id, "t3-100-1");
  assert_string_equal(e->offer_id, "o3-100-1");
  assert_string_equal(e->rider_id, "r1");
  assert_string_equal(e->request_id, "q1");
  assert_int_equal(e->expires_at_ms, 11000);
  assert_true(fabs(e->pickup_eta_s - 20) < 1e-6);
  assert_true(e->has_driver_pos);
  assert_true(e->driver_pos.lat == 40.752);
  assert_int_equal(e->status, DSP_TRIP_OFFERED);
  assert_int_equal(e->seq, 2);
  assert_int_equal(e->epoch, 7);
  const dsp_event *rq = event_at(f->s, DSP_EV_REQUESTED, 0);
  assert_non_null(rq);
  assert_int_equal(rq->seq, 1);
  /* The claim is held by "<shard>:<trip>:<epoch>" for the offer's time and a margin. */
  assert_string_equal(dsp_claims_mem_owner(f->cm, "d1", 1000), "3:t3-100-1:7");
  assert_non_null(dsp_claims_mem_owner(f->cm, "d1", 12999));
  assert_null(dsp_claims_mem_owner(f->cm, "d1", 13000));
  dsp_trip_view v;
  assert_int_equal(dsp_trip_get(f->s, "t3-100-1", &v), DSP_OK);
  assert_int_equal(v.state, DSP_TRIP_OFFERED);
  assert_string_equal(v.offer_id, "o3-100-1");
  char tid[DSP_ID_MAX + 1];
  assert_int_equal(dsp_trip_find(f->s, "r1", "q1", tid), DSP_OK);
  assert_string_equal(tid, "t3-100-1");
}

static void test_matcher_offer_expiry_moves_to_next_candidate(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0); /* 1 block */
  ping(f, "d2", 40.753, -73.99, 1, 0); /* 3 blocks */
  request(f, "r1", "q1", 40.75, -73.99, 0);
  expect_offer(f, "d1");
  check_and_clear(f);
  dsp_tick(f->s, 9999);
  assert_int_equal(n_events(f->s, 0), 0);
  dsp_tick(f->s, 10000);
  const dsp_event *x = event_at(f->s, DSP_EV_OFFER_EXPIRED, 0);
  assert_non_null(x);
  assert_string_equal(x->driver_id, "d1");
  assert_int_equal(x->status, DSP_TRIP_REQUESTED);
  const dsp_event *e = expect_offer(f, "d2");
  assert_int_equal(e->expires_at_ms, 20000);
  /* d1 is free again, his claim released; d2 holds the claim now. */
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_AVAILABLE);
  assert_null(dsp_claims_mem_owner(f->cm, "d1", 10000));
  dsp_driver_get(f->s, "d2", &v);
  assert_int_equal(v.state, DSP_DRIVER_OFFERED);
  assert_non_null(dsp_claims_mem_owner(f->cm, "d2", 10000));
  check_and_clear(f);
  /* d2 lets it expire too: d1 was already tried, no one else within any radius. */
  ping(f, "d1", 40.751, -73.99, 2, 15000);
  ping(f, "d2", 40.753, -73.99, 2, 15000);
  dsp_tick(f->s, 20000);
  assert_int_equal(n_events(f->s, DSP_EV_OFFER_EXPIRED), 1);
  const dsp_event *nd = event_at(f->s, DSP_EV_NO_DRIVER, 0);
  assert_non_null(nd);
  assert_string_equal(nd->reason, "no_driver_nearby");
  assert_int_equal(nd->no_driver, DSP_NO_DRIVER_NEARBY);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.offers_expired, 2);
  assert_int_equal(st.no_driver, 1);
}

static void test_matcher_accepting_an_expired_offer_is_unknown_offer(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  ping(f, "d2", 40.753, -73.99, 1, 0);
  request(f, "r1", "q1", 40.75, -73.99, 0);
  expect_offer(f, "d1");
  check_and_clear(f);
  /* The tick has not run, but the offer's time is up. */
  assert_int_equal(dsp_on_accept(f->s, g_offer, "d1", "a1", 10000), DSP_EUNKNOWN_OFFER);
  const dsp_reply *r = last_reply(f->s);
  assert_int_equal(r->code, DSP_ERR_UNKNOWN_OFFER);
  assert_string_equal(r->driver_id, "d1");
  assert_string_equal(r->ref, "a1");
  assert_int_equal(n_events(f->s, DSP_EV_OFFER_EXPIRED), 1);
  assert_int_equal(n_events(f->s, DSP_EV_MATCHED), 0);
  expect_offer(f, "d2");
}

static void test_matcher_widens_radius_when_nobody_is_near(void **state) {
  fixture *f = *state;
  /* 2.0 km north of the pickup: outside 1500 m, inside 3000 m. */
  ping(f, "far", 40.758, -74.0, 1, 0);
  request(f, "r1", "q1", 40.74, -74.0, 0);
  const dsp_event *e = expect_offer(f, "far");
  assert_true(fabs(e->pickup_eta_s - 180) < 1e-6);
  dsp_trip_view v;
  dsp_trip_get(f->s, g_trip, &v);
  assert_int_equal(v.radius_step, 1);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.widenings, 1);
  assert_int_equal(st.searches, 2);
}

static void test_matcher_widens_after_the_near_ones_decline(void **state) {
  fixture *f = *state;
  ping(f, "near", 40.741, -74.0, 1, 0);
  ping(f, "far", 40.758, -74.0, 1, 0);
  request(f, "r1", "q1", 40.74, -74.0, 0);
  expect_offer(f, "near");
  check_and_clear(f);
  dsp_on_decline(f->s, g_offer, "near", NULL, 100);
  expect_offer(f, "far");
  dsp_trip_view v;
  dsp_trip_get(f->s, g_trip, &v);
  assert_int_equal(v.radius_step, 1);
  assert_int_equal(v.offers_made, 2);
}

static void test_matcher_no_driver_after_the_widest_radius(void **state) {
  fixture *f = *state;
  ping(f, "too_far", 40.74, -74.08, 1, 0); /* 6.8 km west: beyond 6000 m */
  request(f, "r1", "q1", 40.74, -74.0, 0);
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 0);
  const dsp_event *e = event_at(f->s, DSP_EV_NO_DRIVER, 0);
  assert_non_null(e);
  assert_string_equal(e->reason, "no_driver_nearby");
  assert_int_equal(e->no_driver, DSP_NO_DRIVER_NEARBY);
  assert_int_equal(e->status, DSP_TRIP_NO_DRIVER);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.searches, 3);
  /* The rider may ask again with a new request id: the old trip is over. */
  check_and_clear(f);
  assert_int_equal(request(f, "r1", "q2", 40.74, -74.0, 1), DSP_OK);
  assert_int_equal(n_events(f->s, DSP_EV_REQUESTED), 1);
}

static void test_matcher_no_driver_after_max_offers(void **state) {
  fixture *f = *state;
  f->cfg.max_offers = 2;
  fixture_restart(f);
  ping(f, "a", 40.751, -73.99, 1, 0);
  ping(f, "b", 40.752, -73.99, 1, 0);
  ping(f, "c", 40.753, -73.99, 1, 0);
  request(f, "r1", "q1", 40.75, -73.99, 0);
  expect_offer(f, "a");
  dsp_on_decline(f->s, g_offer, "a", NULL, 1);
  expect_offer(f, "b");
  check_and_clear(f);
  dsp_on_decline(f->s, g_offer, "b", NULL, 2);
  const dsp_event *e = event_at(f->s, DSP_EV_NO_DRIVER, 0);
  assert_non_null(e);
  assert_string_equal(e->reason, "max_offers");
  assert_int_equal(e->no_driver, DSP_NO_DRIVER_MAX_OFFERS);
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 0);
}

static void test_matcher_drops_candidates_slower_than_max_eta(void **state) {
  fixture *f = *state;
  f->cfg.max_eta_s = 50;
  fixture_restart(f);
  ping(f, "slow", 40.75, -73.98, 1, 0); /* 10 blocks: 100 s */
  request(f, "r1", "q1", 40.75, -73.99, 0);
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 0);
  assert_int_equal(n_events(f->s, DSP_EV_NO_DRIVER), 1);
}

static void test_matcher_skips_a_driver_claimed_by_another_owner(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  ping(f, "d2", 40.753, -73.99, 1, 0);
  /* Another shard holds d1 (say he is a halo driver there). */
  assert_int_equal(dsp_claims_mem_try(f->cm, "d1", "4:t4-9-1:7", 60000, 0), DSP_CLAIM_WON);
  request(f, "r1", "q1", 40.75, -73.99, 10);
  expect_offer(f, "d2");
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.claims_lost, 1);
  assert_string_equal(dsp_claims_mem_owner(f->cm, "d1", 10), "4:t4-9-1:7");
  /* d1 is skipped for a while without asking the store again. */
  check_and_clear(f);
  request(f, "r2", "q2", 40.75, -73.99, 20);
  assert_int_equal(n_events(f->s, DSP_EV_NO_DRIVER), 1);
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.claims_lost, 1);
  check_and_clear(f);
  /* After the backoff and the other claim's release he is offered again. */
  dsp_claims_mem_release(f->cm, "d1", "4:t4-9-1:7", 30);
  ping(f, "d1", 40.751, -73.99, 2, 10000);
  request(f, "r3", "q3", 40.75, -73.99, 10010);
  expect_offer(f, "d1");
}

static void test_matcher_all_contended_gives_no_driver(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  ping(f, "d2", 40.753, -73.99, 1, 0);
  dsp_claims_mem_try(f->cm, "d1", "other", 60000, 0);
  dsp_claims_mem_try(f->cm, "d2", "other", 60000, 0);
  request(f, "r1", "q1", 40.75, -73.99, 1);
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 0);
  assert_int_equal(n_events(f->s, DSP_EV_NO_DRIVER), 1);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.claims_lost, 2);
}

/* Two shards see the same halo driver and share one claim store: only one offers him. */
static void test_matcher_two_shards_contend_for_one_halo_driver(void **state) {
  fixture *f = *state;
  dsp_config cb = f->cfg;
  cb.shard = 4;
  dsp_qt_index *qb;
  assert_int_equal(dsp_qt_index_new(&qb), DSP_OK);
  dsp_index ixb = dsp_qt_index_iface(qb);
  dsp_router rb = dsp_graph_router_iface(f->gr);
  dsp_claims cl = dsp_claims_mem_iface(f->cm);
  dsp_shard *b;
  assert_int_equal(dsp_shard_new(&cb, &ixb, &rb, &cl, &b), DSP_OK);
  ping(f, "h1", 40.751, -73.99, 1, 0);
  dsp_location l = {.driver_id = "h1",
                    .pos = {40.751, -73.99},
                    .ts_ms = 0,
                    .seq = 1,
                    .halo = true,
                    .owner_shard = 3};
  assert_int_equal(dsp_on_location(b, &l, 0), DSP_OK);

  request(f, "r1", "q1", 40.75, -73.99, 10);
  expect_offer(f, "h1");
  dsp_request rq = {
      .request_id = "q2", .rider_id = "r2", .pickup = {40.75, -73.99}, .dropoff = {40.752, -73.99}};
  assert_int_equal(dsp_on_request(b, &rq, NULL, 20), DSP_OK);
  const dsp_output *o;
  size_t n = dsp_outputs(b, &o);
  bool offered = false, no_driver = false;
  for (size_t i = 0; i < n; i++) {
    if (o[i].kind != DSP_OUT_EVENT) continue;
    offered |= o[i].u.event.type == DSP_EV_OFFERED;
    no_driver |= o[i].u.event.type == DSP_EV_NO_DRIVER;
  }
  assert_false(offered);
  assert_true(no_driver);
  dsp_stats st;
  dsp_stats_get(b, &st);
  assert_int_equal(st.claims_lost, 1);
  /* Shard 3's rider cancels: the claim is released and shard 4 can have him. */
  assert_int_equal(dsp_on_cancel(f->s, "q1", "r1", NULL, 30), DSP_OK);
  assert_null(dsp_claims_mem_owner(f->cm, "h1", 30));
  dsp_outputs_clear(b);
  l.seq = 2;
  dsp_on_location(b, &l, 10100); /* after the backoff */
  rq.request_id = "q3";
  assert_int_equal(dsp_on_request(b, &rq, NULL, 10100), DSP_OK);
  n = dsp_outputs(b, &o);
  offered = false;
  for (size_t i = 0; i < n; i++)
    offered |= o[i].kind == DSP_OUT_EVENT && o[i].u.event.type == DSP_EV_OFFERED;
  assert_true(offered);
  assert_non_null(strstr(dsp_claims_mem_owner(f->cm, "h1", 10100), "4:t4-"));
  dsp_shard_free(b);
  dsp_qt_index_free(qb);
}

/* A claim store that fails (Redis down and no fallback). */
static dsp_claim_result failing_try(void *ud, const char *d, const char *o, int64_t t, int64_t n) {
  (void)ud, (void)d, (void)o, (void)t, (void)n;
  return DSP_CLAIM_ERROR;
}
static dsp_claim_result failing_refresh(void *ud, const char *d, const char *o, int64_t t,
                                        int64_t n) {
  (void)ud, (void)d, (void)o, (void)t, (void)n;
  return DSP_CLAIM_ERROR;
}
static void failing_release(void *ud, const char *d, const char *o, int64_t n) {
  (void)ud, (void)d, (void)o, (void)n;
}

static void test_matcher_claim_store_errors_skip_the_candidate(void **state) {
  fixture *f = *state;
  dsp_index ix = dsp_qt_index_iface(f->qi);
  dsp_router rt = dsp_graph_router_iface(f->gr);
  dsp_claims bad = {NULL, failing_try, failing_refresh, failing_release};
  dsp_shard *s;
  assert_int_equal(dsp_shard_new(&f->cfg, &ix, &rt, &bad, &s), DSP_OK);
  dsp_location l = {.driver_id = "d1", .pos = {40.751, -73.99}, .ts_ms = 0, .seq = 1};
  dsp_on_location(s, &l, 0);
  dsp_request rq = {
      .request_id = "q1", .rider_id = "r1", .pickup = {40.75, -73.99}, .dropoff = {40.752, -73.99}};
  assert_int_equal(dsp_on_request(s, &rq, NULL, 1), DSP_OK);
  dsp_stats st;
  dsp_stats_get(s, &st);
  assert_true(st.claim_errors >= 1);
  assert_int_equal(st.offers, 0);
  assert_int_equal(st.no_driver, 1);
  dsp_shard_free(s);
}

static void test_matcher_busy_driver_is_not_offered_twice(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  request(f, "r1", "q1", 40.75, -73.99, 0);
  expect_offer(f, "d1");
  check_and_clear(f);
  request(f, "r2", "q2", 40.75, -73.99, 1);
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 0);
  assert_int_equal(n_events(f->s, DSP_EV_NO_DRIVER), 1);
}

static void test_matcher_pickup_out_of_area_is_no_driver_with_reason(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  dsp_request r = {
      .request_id = "q1", .rider_id = "r1", .pickup = {40.5, -74.3}, .dropoff = {40.75, -73.99}};
  assert_int_equal(dsp_on_request(f->s, &r, "x1", 1), DSP_OK);
  const dsp_event *e = event_at(f->s, DSP_EV_NO_DRIVER, 0);
  assert_non_null(e);
  assert_string_equal(e->reason, "pickup_out_of_area");
  assert_int_equal(e->no_driver, DSP_NO_DRIVER_PICKUP_OUT_OF_AREA);
  const dsp_reply *rep = last_reply(f->s);
  assert_non_null(rep);
  assert_int_equal(rep->code, DSP_ERR_OUT_OF_AREA);
  assert_string_equal(rep->rider_id, "r1");
  assert_string_equal(rep->ref, "x1");
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 0);
  check_and_clear(f);
  r.request_id = "q2";
  r.pickup = (geo_latlng){40.75, -73.99};
  r.dropoff = (geo_latlng){41.5, -73.99};
  dsp_on_request(f->s, &r, NULL, 2);
  e = event_at(f->s, DSP_EV_NO_DRIVER, 0);
  assert_non_null(e);
  assert_string_equal(e->reason, "dropoff_out_of_area");
  assert_int_equal(e->no_driver, DSP_NO_DRIVER_DROPOFF_OUT_OF_AREA);
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_AVAILABLE);
}

static void test_matcher_router_failure_is_no_driver(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.751, -73.99, 1, 0);
  f->fail_etas = true;
  request(f, "r1", "q1", 40.75, -73.99, 1);
  const dsp_event *e = event_at(f->s, DSP_EV_NO_DRIVER, 0);
  assert_non_null(e);
  assert_string_equal(e->reason, "routing_error");
  assert_int_equal(e->no_driver, DSP_NO_DRIVER_ROUTING_ERROR);
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_AVAILABLE);
}

static void test_matcher_k_limits_the_candidates_ranked(void **state) {
  fixture *f = *state;
  f->cfg.k_candidates = 2;
  fixture_restart(f);
  char id[16];
  for (int i = 0; i < 6; i++) {
    snprintf(id, sizeof id, "d%d", i);
    ping(f, id, 40.751 + 0.001 * i, -73.99, 1, 0);
  }
  request(f, "r1", "q1", 40.75, -73.99, 0);
  expect_offer(f, "d0");
  check_and_clear(f);
  dsp_on_decline(f->s, g_offer, "d0", NULL, 1);
  expect_offer(f, "d1");
  check_and_clear(f);
  /* The list of 2 is used up: the next search (wider) finds d2. */
  dsp_on_decline(f->s, g_offer, "d1", NULL, 2);
  expect_offer(f, "d2");
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.searches, 2);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup_city, fixture_teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matcher_picks_lowest_road_eta_not_nearest_straight_line),
      T(test_matcher_offer_carries_ids_expiry_eta_and_position),
      T(test_matcher_offer_expiry_moves_to_next_candidate),
      T(test_matcher_accepting_an_expired_offer_is_unknown_offer),
      T(test_matcher_widens_radius_when_nobody_is_near),
      T(test_matcher_widens_after_the_near_ones_decline),
      T(test_matcher_no_driver_after_the_widest_radius),
      T(test_matcher_no_driver_after_max_offers),
      T(test_matcher_drops_candidates_slower_than_max_eta),
      T(test_matcher_skips_a_driver_claimed_by_another_owner),
      T(test_matcher_all_contended_gives_no_driver),
      T(test_matcher_two_shards_contend_for_one_halo_driver),
      T(test_matcher_claim_store_errors_skip_the_candidate),
      T(test_matcher_busy_driver_is_not_offered_twice),
      T(test_matcher_pickup_out_of_area_is_no_driver_with_reason),
      T(test_matcher_router_failure_is_no_driver),
      T(test_matcher_k_limits_the_candidates_ranked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
