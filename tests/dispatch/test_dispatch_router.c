/*
 * test_dispatch_router.c: the graph router (router_graph.c) on its own and under the core:
 * segment snapping (a position lands on the nearest road at its place along the block, not
 * on the nearest node), road times from and to those places, the service-area bound, and the
 * quoted ETA: the calibrated geo_graph_eta_ms at the request's local hour and weekday in
 * America/New_York, carried by offers and matches, while candidates are ranked by route time;
 * libgeo's failures as DSP_E* codes.
 * And moving drivers: the heading of the last ping picks the direction of a two-way street,
 * and the position is moved along the road by the speed (or the road's) times the ping's age,
 * straight on through corners, before the search; offers quote that. No servers; the city is
 * dsp_fixture's 21 x 21 grid (0.001 deg, 10 s a block, two-way).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dsp_fixture.h"
#include "geo/geo.h"
#include "geo/geometry.h"
#include "geo/snap.h"

/* Wed 2024-01-10 08:30 EST (13:30 UTC), Sat 2024-01-13 08:30 EST, Wed 2024-07-10 08:30 EDT. */
#define WED_0830_WINTER_MS 1704893400000LL
#define SAT_0830_WINTER_MS 1705152600000LL
#define WED_0830_SUMMER_MS 1720614600000LL

static void new_york(void) {
  setenv("TZ", "America/New_York", 1);
  tzset();
}

static void test_router_snaps_onto_the_segment_not_the_node(void **state) {
  fixture *f = *state;
  dsp_router r = dsp_graph_router_iface(f->gr);
  dsp_snap s;
  /* Half-way up the block north of (40.75, -73.99), 4 m east of it: the nearest node is 55 m
   * away, the road 4 m. */
  assert_int_equal(r.snap(r.ud, (geo_latlng){40.7505, -73.98995}, &s), 0);
  assert_true(fabs(s.pos.lat - 40.7505) < 1e-6);
  assert_true(fabs(s.pos.lng - -73.99) < 1e-7);
  assert_true(s.off_road_m > 3.5 && s.off_road_m < 5.0);
}

static void test_router_times_run_from_and_to_places_along_blocks(void **state) {
  fixture *f = *state;
  dsp_router r = dsp_graph_router_iface(f->gr);
  dsp_snap pickup;
  assert_int_equal(r.snap(r.ud, (geo_latlng){40.7505, -73.99}, &pickup), 0); /* mid-block */
  geo_latlng drivers[] = {
      {40.752, -73.99},    /* at a node 1.5 blocks north: 15 s */
      {40.7525, -73.99},   /* mid-block 2 blocks north: 20 s */
      {40.7502, -73.99},   /* same block, 0.3 block south: 3 s */
      {40.7505, -73.9905}, /* mid-block one street west: 0.5 + 1 + 0.5 blocks = 20 s */
  };
  double want[] = {15, 20, 3, 20}, eta[4];
  assert_int_equal(r.etas_to(r.ud, &pickup, drivers, 4, 1200, eta), 0);
  for (size_t i = 0; i < 4; i++) {
    if (fabs(eta[i] - want[i]) > 0.002)
      fail_msg("driver %zu: %.3f s, want %.0f s", i, eta[i], want[i]);
  }
}

static void test_router_beyond_snap_max_is_out_of_area(void **state) {
  fixture *f = *state;
  dsp_router r = dsp_graph_router_iface(f->gr);
  dsp_snap s;
  /* 300 m south of the city's southern edge (snap radius 150 m). */
  assert_int_equal(r.snap(r.ud, (geo_latlng){40.7373, -73.99}, &s), DSP_ENOTFOUND);
  assert_int_equal(r.snap(r.ud, (geo_latlng){91, 0}, &s), DSP_ENOTFOUND);
  dsp_snap pickup;
  assert_int_equal(r.snap(r.ud, (geo_latlng){40.75, -73.99}, &pickup), 0);
  geo_latlng drivers[] = {{40.7373, -73.99}, {40.751, -73.99}};
  double eta[2];
  assert_int_equal(r.etas_to(r.ud, &pickup, drivers, 2, 1200, eta), 0);
  assert_true(isinf(eta[0]));
  assert_true(fabs(eta[1] - 10) < 0.002);
  /* The core refuses such a pickup with the reason. */
  assert_int_equal(request(f, "r1", "q1", 40.7373, -73.99, 1000), DSP_OK);
  const dsp_event *e = last_event(f->s);
  assert_non_null(e);
  assert_int_equal(e->type, DSP_EV_NO_DRIVER);
  assert_string_equal(e->reason, "pickup_out_of_area");
}

/* f's graph replaced by a calibrated copy: weekday 08:00-08:59 x 2, day factors 1, a trip
 * base of 30 s, class factors 1 (so route times stay as built). */
static void calibrate(fixture *f) {
  geo_graph_calibration cal;
  geo_graph_calibration_identity(&cal);
  cal.hour_factor[0][8] = 2.0;
  cal.hour_factor[1][8] = 1.25;
  cal.trip_base_ms = 30000;
  geo_graph *c = NULL;
  assert_int_equal(geo_graph_calibrated(f->g, &cal, &c), GEO_OK);
  dsp_graph_router_free(f->gr);
  geo_graph_free(f->g);
  f->g = c;
  assert_int_equal(dsp_graph_router_new(f->g, 150, false, &f->gr), DSP_OK);
  fixture_restart(f);
}

static void test_router_quote_is_the_calibrated_eta_at_new_york_local_time(void **state) {
  fixture *f = *state;
  new_york();
  calibrate(f);
  dsp_router r = dsp_graph_router_iface(f->gr);
  /* 08:30 on a Wednesday in New York, winter and summer time: 100 s x 2 + 30 s. */
  assert_true(fabs(r.quote_eta_s(r.ud, 100, WED_0830_WINTER_MS) - 230) < 1e-6);
  assert_true(fabs(r.quote_eta_s(r.ud, 100, WED_0830_SUMMER_MS) - 230) < 1e-6);
  /* Saturday 08:30: the weekend profile. */
  assert_true(fabs(r.quote_eta_s(r.ud, 100, SAT_0830_WINTER_MS) - 155) < 1e-6);
  /* An hour later (09:30, factor 1): 130 s. In UTC 13:30 would have been used all along. */
  assert_true(fabs(r.quote_eta_s(r.ud, 100, WED_0830_WINTER_MS + 3600000) - 130) < 1e-6);
  int h, wd;
  assert_int_equal(dsp_local_hour_weekday(WED_0830_WINTER_MS, &h, &wd), 0);
  assert_int_equal(h, 8);
  assert_int_equal(wd, 3);
  /* Non-decreasing in the route time, as ranking by route time needs. */
  double prev = 0;
  for (double t = 0; t < 2000; t += 7.3) {
    double q = r.quote_eta_s(r.ud, t, WED_0830_WINTER_MS);
    assert_true(q >= prev);
    prev = q;
  }
}

static void test_router_offer_and_match_quote_the_calibrated_eta_of_the_request_time(void **state) {
  fixture *f = *state;
  new_york();
  calibrate(f);
  int64_t now = WED_0830_WINTER_MS + 3600000;
  ping(f, "near", 40.752, -73.99, 1, now - 1000); /* 2 blocks: 20 s by road */
  ping(f, "far", 40.754, -73.99, 1, now - 1000);  /* 4 blocks: 40 s */
  dsp_request q = {.request_id = "q1",
                   .rider_id = "r1",
                   .pickup = {40.75, -73.99},
                   .dropoff = {40.755, -73.99},
                   .at_ms = WED_0830_WINTER_MS};
  /* The core's clock is another hour (09:30): the quote follows the request's time. */
  assert_int_equal(dsp_on_request(f->s, &q, NULL, now), DSP_OK);
  const dsp_event *o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_string_equal(o->driver_id, "near"); /* ranked by route time */
  assert_true(fabs(o->pickup_eta_s - (20 * 2 + 30)) < 1e-6);
  char offer[DSP_ID_MAX + 1];
  strcpy(offer, o->offer_id);
  check_and_clear(f);
  assert_int_equal(dsp_on_accept(f->s, offer, "near", NULL, now + 1000), DSP_OK);
  const dsp_event *m = event_at(f->s, DSP_EV_MATCHED, 0);
  assert_non_null(m);
  assert_true(fabs(m->pickup_eta_s - 70) < 1e-6);
  dsp_trip_view v;
  assert_int_equal(dsp_trip_get(f->s, m->trip_id, &v), DSP_OK);
  assert_true(fabs(v.pickup_eta_s - 70) < 1e-6);
}

static void test_router_without_request_time_quotes_at_the_core_clock(void **state) {
  fixture *f = *state;
  new_york();
  calibrate(f);
  ping(f, "near", 40.752, -73.99, 1, SAT_0830_WINTER_MS - 1000);
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, SAT_0830_WINTER_MS), DSP_OK);
  const dsp_event *o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_true(fabs(o->pickup_eta_s - (20 * 1.25 + 30)) < 1e-6);
}

static geo_latlng place_pos(fixture *f, geo_route_place pl) {
  geo_latlng a = geo_graph_node_pos(f->g, geo_graph_arc_tail(f->g, pl.arc));
  geo_latlng b = geo_graph_node_pos(f->g, geo_graph_arc_head(f->g, pl.arc));
  return (geo_latlng){a.lat + (b.lat - a.lat) * pl.frac, a.lng + (b.lng - a.lng) * pl.frac};
}

static void test_predict_moves_along_the_road_by_speed_and_age(void **state) {
  fixture *f = *state;
  geo_snap sn;
  assert_int_equal(geo_graph_snap(f->g, (geo_latlng){40.7505, -73.99}, 150, &sn), GEO_OK);
  /* heading north at 5 m/s for 10 s: half a block north (the fixture's blocks are 100 m long by
   * length_m), at the corner 40.751 */
  geo_route_place p = dsp_graph_predict_place(f->g, sn.place, 2.0, 5.0, 10);
  geo_latlng at = place_pos(f, p);
  assert_true(fabs(at.lat - 40.751) < 2e-5);
  assert_true(geo_bearing_deg(geo_graph_node_pos(f->g, geo_graph_arc_tail(f->g, p.arc)),
                              geo_graph_node_pos(f->g, geo_graph_arc_head(f->g, p.arc))) < 1);
  /* no speed: the road's (a block in 10 s), 10 s: through the corner, straight on */
  p = dsp_graph_predict_place(f->g, sn.place, 358.0, NAN, 10);
  at = place_pos(f, p);
  assert_true(fabs(at.lat - 40.7515) < 2e-5 && fabs(at.lng - -73.99) < 1e-6);
  /* heading south: the other direction of the street, moved south */
  p = dsp_graph_predict_place(f->g, sn.place, 180.0, NAN, 2.5);
  at = place_pos(f, p);
  assert_true(fabs(at.lat - 40.75025) < 2e-5);
  /* heading east on a north-south street (turning): the place is not moved */
  p = dsp_graph_predict_place(f->g, sn.place, 90.0, 10, 10);
  at = place_pos(f, p);
  assert_true(fabs(at.lat - 40.7505) < 2e-5);
  /* no heading: the snapped place as it is, whatever the age */
  p = dsp_graph_predict_place(f->g, sn.place, NAN, 10, 10);
  assert_int_equal(p.arc, sn.place.arc);
  assert_true(p.frac == sn.place.frac);
  /* the city's north edge: no road straight on, he turns along the edge (a 90 degree turn) */
  assert_int_equal(geo_graph_snap(f->g, (geo_latlng){40.7595, -73.99}, 150, &sn), GEO_OK);
  p = dsp_graph_predict_place(f->g, sn.place, 0.0, 10, 10);
  at = place_pos(f, p);
  assert_true(fabs(at.lat - 40.760) < 2e-5);
  assert_true(fabs(fabs(at.lng - -73.99) - 0.0005) < 2e-5);
}

static void test_router_moving_etas_take_the_heading_and_the_age(void **state) {
  fixture *f = *state;
  dsp_router r = dsp_graph_router_iface(f->gr);
  dsp_snap pickup;
  assert_int_equal(r.snap(r.ud, (geo_latlng){40.7525, -73.99}, &pickup), 0);
  geo_latlng at[] = {{40.7505, -73.99}, {40.7505, -73.99}, {40.7505, -73.99}, {40.7505, -73.99}};
  dsp_motion m[] = {
      {0.0, NAN, 0},    /* heading north, towards the pickup: 2 blocks, 20 s */
      {180.0, 10.0, 5}, /* heading south, away, 5 s ago: now at the corner, 2.5 blocks: 25 s */
      {0.0, 10.0, 5},   /* north, 5 s after the ping: half a block nearer, 15 s */
      {NAN, 30, 5},     /* no heading: as etas_to (20 s or 30 s by the snapped arc) */
  };
  double eta[4], plain[1];
  assert_int_equal(r.etas_to_moving(r.ud, &pickup, at, m, 4, 1200, eta), 0);
  assert_true(fabs(eta[0] - 20) < 0.05);
  assert_true(fabs(eta[1] - 25) < 0.05);
  assert_true(fabs(eta[2] - 15) < 0.05);
  assert_int_equal(r.etas_to(r.ud, &pickup, at, 1, 1200, plain), 0);
  assert_true(fabs(eta[3] - plain[0]) < 1e-9);
  /* an origin off every road stays unreachable */
  geo_latlng off[] = {{40.7373, -73.99}};
  dsp_motion mo[] = {{0.0, 10, 1}};
  assert_int_equal(r.etas_to_moving(r.ud, &pickup, off, mo, 1, 1200, eta), 0);
  assert_true(isinf(eta[0]));
}

/* A ping with motion through the core (dsp_location's optional fields). */
static void ping_moving(fixture *f, const char *id, double lat, double lng, double heading,
                        double speed, int64_t rx_ms, int64_t now_ms) {
  dsp_location l = {.driver_id = id,
                    .pos = {lat, lng},
                    .ts_ms = rx_ms,
                    .seq = 1,
                    .has_heading = true,
                    .heading_deg = heading,
                    .has_speed = isfinite(speed),
                    .speed_mps = speed,
                    .received_ms = rx_ms};
  assert_int_equal(dsp_on_location(f->s, &l, now_ms), DSP_OK);
}

static void test_offer_quotes_the_predicted_position(void **state) {
  fixture *f = *state;
  /* Two drivers 2 blocks south of the pickup, pinged 5 s before the request at a block per
   * 10 s: one drives towards it (now 1.5 blocks away: 15 s), one away from it (now at the
   * corner half a block south: 25 s). From the pings alone they would tie; he who comes
   * is offered, with the ETA from where he is now. */
  ping_moving(f, "away", 40.7505, -73.99, 180.0, 10.0, 1000, 1000);
  ping_moving(f, "towards", 40.7505, -73.99003, 0.0, 10.0, 1000, 1000);
  assert_int_equal(request(f, "r1", "q1", 40.7525, -73.99, 6000), DSP_OK);
  const dsp_event *o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_string_equal(o->driver_id, "towards");
  assert_true(fabs(o->pickup_eta_s - 15) < 0.1);
  check_and_clear(f);
}

static void test_prediction_off_and_capped_age(void **state) {
  fixture *f = *state;
  /* off: the last position as it is, in his heading's direction: 20 s */
  f->cfg.predict_max_age_ms = 0;
  fixture_restart(f);
  ping_moving(f, "d1", 40.7505, -73.99, 0.0, 10.0, 1000, 1000);
  assert_int_equal(request(f, "r1", "q1", 40.7525, -73.99, 6000), DSP_OK);
  const dsp_event *o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_true(fabs(o->pickup_eta_s - 20) < 0.1);
  /* capped at 1 s: a ping 5 s old moves him 1 s worth (0.1 block): 19 s */
  f->cfg.predict_max_age_ms = 1000;
  fixture_restart(f);
  ping_moving(f, "d2", 40.7505, -73.99, 0.0, 10.0, 1000, 1000);
  assert_int_equal(request(f, "r2", "q2", 40.7525, -73.99, 6000), DSP_OK);
  o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_true(fabs(o->pickup_eta_s - 19) < 0.1);
}

static void test_match_quotes_from_where_the_driver_is_at_accept(void **state) {
  fixture *f = *state;
  ping_moving(f, "d", 40.7505, -73.99, 0.0, 10.0, 1000, 1000);
  assert_int_equal(request(f, "r1", "q1", 40.7525, -73.99, 1000), DSP_OK);
  const dsp_event *o = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(o);
  assert_true(fabs(o->pickup_eta_s - 20) < 0.1);
  char offer[DSP_ID_MAX + 1];
  strcpy(offer, o->offer_id);
  check_and_clear(f);
  /* he drove on while deciding: a block nearer at his ping of 4 s, 1 s more at accept */
  dsp_location l = {.driver_id = "d",
                    .pos = {40.7515, -73.99},
                    .ts_ms = 4000,
                    .seq = 2,
                    .has_heading = true,
                    .heading_deg = 0,
                    .has_speed = true,
                    .speed_mps = 10,
                    .received_ms = 4000};
  assert_int_equal(dsp_on_location(f->s, &l, 4000), DSP_OK);
  assert_int_equal(dsp_on_accept(f->s, offer, "d", NULL, 5000), DSP_OK);
  const dsp_event *m = event_at(f->s, DSP_EV_MATCHED, 0);
  assert_non_null(m);
  assert_true(fabs(m->pickup_eta_s - 9) < 0.1);
  dsp_trip_view v;
  assert_int_equal(dsp_trip_get(f->s, m->trip_id, &v), DSP_OK);
  assert_true(fabs(v.pickup_eta_s - 9) < 0.1);
}

/* An allocator for libgeo that fails every call once armed. */
static bool g_fail;
static void *failing_malloc(size_t size, void *ud) {
  (void)ud;
  return g_fail ? NULL : malloc(size);
}
static void *failing_realloc(void *p, size_t size, void *ud) {
  (void)ud;
  return g_fail ? NULL : realloc(p, size);
}
static void plain_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

/* libgeo's failures reach the core as DSP_E* (dsp_err_of_geo): the search's first use of its
 * queues allocates, and out of memory is DSP_ENOMEM (it was -1, which reads as DSP_EINVAL);
 * a place the graph does not have is DSP_EINVAL. */
static void test_router_failures_are_dsp_codes(void **state) {
  fixture *f = *state;
  dsp_router r = dsp_graph_router_iface(f->gr);
  dsp_snap pickup;
  assert_int_equal(r.snap(r.ud, (geo_latlng){40.7505, -73.99}, &pickup), 0);
  geo_latlng drivers[] = {{40.752, -73.99}};
  double eta[1];
  geo_allocator a = {failing_malloc, failing_realloc, plain_free, NULL};
  geo_set_allocator(&a);
  g_fail = true;
  int rc = r.etas_to(r.ud, &pickup, drivers, 1, 1200, eta);
  g_fail = false;
  geo_set_allocator(NULL);
  assert_int_equal(rc, DSP_ENOMEM);
  assert_int_equal(r.etas_to(r.ud, &pickup, drivers, 1, 1200, eta), 0);
  assert_true(fabs(eta[0] - 15) < 0.002);
  dsp_snap bogus = pickup;
  bogus.data[0] = UINT32_MAX / 2; /* an arc the graph does not have */
  assert_int_equal(r.etas_to(r.ud, &bogus, drivers, 1, 1200, eta), DSP_EINVAL);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup_city, fixture_teardown)
  const struct CMUnitTest tests[] = {
      T(test_router_snaps_onto_the_segment_not_the_node),
      T(test_router_failures_are_dsp_codes),
      T(test_router_times_run_from_and_to_places_along_blocks),
      T(test_router_beyond_snap_max_is_out_of_area),
      T(test_router_quote_is_the_calibrated_eta_at_new_york_local_time),
      T(test_router_offer_and_match_quote_the_calibrated_eta_of_the_request_time),
      T(test_router_without_request_time_quotes_at_the_core_clock),
      T(test_predict_moves_along_the_road_by_speed_and_age),
      T(test_router_moving_etas_take_the_heading_and_the_age),
      T(test_offer_quotes_the_predicted_position),
      T(test_prediction_off_and_capped_age),
      T(test_match_quotes_from_where_the_driver_is_at_accept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
