/*
 * test_dispatch_drivers.c: the shard's drivers: pings create and move them in the index,
 * out-of-order pings (by seq, then ts) are ignored and counted, silent drivers leave the
 * index after the TTL, status available/offline, halo copies, a full index (DSP_ERANGE).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dsp_fixture.h"

static void test_drivers_first_ping_indexes_an_available_driver(void **state) {
  fixture *f = *state;
  assert_int_equal(ping(f, "d1", 40.75, -73.99, 1, 1000), DSP_OK);
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_OK);
  assert_int_equal(v.state, DSP_DRIVER_AVAILABLE);
  assert_true(v.in_index);
  assert_false(v.halo);
  assert_int_equal(v.owner_shard, 3);
  assert_int_equal(geo_quadtree_count(dsp_qt_index_tree(f->qi)), 1);
  assert_int_equal(dsp_driver_get(f->s, "nobody", &v), DSP_ENOTFOUND);
  /* A later ping moves him. */
  assert_int_equal(ping(f, "d1", 40.751, -73.99, 2, 2000), DSP_OK);
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_OK);
  assert_true(v.pos.lat == 40.751);
  assert_int_equal(geo_quadtree_count(dsp_qt_index_tree(f->qi)), 1);
  assert_int_equal(n_events(f->s, 0), 0); /* pings make no events */
}

static void test_drivers_older_seq_is_ignored_and_counted(void **state) {
  fixture *f = *state;
  assert_int_equal(ping(f, "d1", 40.75, -73.99, 10, 1000), DSP_OK);
  /* seq 9 arrives late, with a later ts even: seq decides first. */
  dsp_location l = {.driver_id = "d1", .pos = {40.7555, -73.99}, .ts_ms = 5000, .seq = 9};
  assert_int_equal(dsp_on_location(f->s, &l, 1100), DSP_ESTALE);
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_true(v.pos.lat == 40.75);
  assert_int_equal(v.last_seq, 10);

  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.pings_stale, 1);
  assert_int_equal(st.pings, 2);
}

static void test_drivers_same_seq_orders_by_ts(void **state) {
  fixture *f = *state;
  dsp_location l = {.driver_id = "d1", .pos = {40.75, -73.99}, .ts_ms = 5000, .seq = 4};
  assert_int_equal(dsp_on_location(f->s, &l, 1000), DSP_OK);
  l.ts_ms = 4999; /* same seq, older ts */
  l.pos.lat = 40.7501;
  assert_int_equal(dsp_on_location(f->s, &l, 1001), DSP_ESTALE);
  l.ts_ms = 5000; /* a duplicate */
  assert_int_equal(dsp_on_location(f->s, &l, 1002), DSP_ESTALE);
  l.ts_ms = 5001; /* same seq, newer ts: taken */
  l.pos.lat = 40.7502;
  assert_int_equal(dsp_on_location(f->s, &l, 1003), DSP_OK);
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_true(v.pos.lat == 40.7502);
  assert_int_equal(v.last_ts_ms, 5001);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.pings_stale, 2);
}

static void test_drivers_silent_for_30s_leave_the_index(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.75, -73.99, 1, 1000);
  ping(f, "d2", 40.751, -73.99, 1, 1000);
  ping(f, "d2", 40.751, -73.99, 2, 20000); /* d2 keeps pinging */
  dsp_tick(f->s, 30999);                   /* 29.999 s after d1's ping */
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_OK);
  assert_true(v.in_index);
  dsp_tick(f->s, 31000); /* 30 s */
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_ENOTFOUND);
  assert_int_equal(dsp_driver_get(f->s, "d2", &v), DSP_OK);
  assert_true(v.in_index);
  assert_int_equal(geo_quadtree_count(dsp_qt_index_tree(f->qi)), 1);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.drivers_dropped_ttl, 1);
  assert_int_equal(st.drivers, 1);
  assert_int_equal(st.drivers_indexed, 1);
  /* A dropped driver is no candidate: a request next to d1's last place gets d2. */
  assert_int_equal(request(f, "r1", "q1", 40.75, -73.99, 31001), DSP_OK);
  const dsp_event *e = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(e);
  assert_string_equal(e->driver_id, "d2");
}

static void test_drivers_back_after_a_drop_start_a_new_sequence(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.75, -73.99, 500, 1000);
  dsp_tick(f->s, 40000);
  /* The app restarted: seq from 1 again. Accepted, since he was forgotten. */
  assert_int_equal(ping(f, "d1", 40.75, -73.99, 1, 41000), DSP_OK);
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_OK);
  assert_true(v.in_index);
  assert_int_equal(v.last_seq, 1);
}

static void test_drivers_ttl_sweep_runs_at_its_interval(void **state) {
  fixture *f = *state;
  f->cfg.ttl_sweep_ms = 1000;
  fixture_restart(f);
  ping(f, "d1", 40.75, -73.99, 1, 0);
  dsp_tick(f->s, 29500); /* sweep at 29.5 s: too early */
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_OK);
  dsp_tick(f->s, 30200); /* 0.7 s after the last sweep: no sweep yet */
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_OK);
  dsp_tick(f->s, 30500); /* the next sweep drops him */
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_ENOTFOUND);
}

static void test_drivers_on_a_trip_keep_their_record_when_silent(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.75, -73.99, 1, 0);
  request(f, "r1", "q1", 40.75, -73.99, 10);
  const dsp_event *e = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(e);
  char offer[DSP_ID_MAX + 1], trip[DSP_ID_MAX + 1];
  strcpy(offer, e->offer_id);
  strcpy(trip, e->trip_id);
  assert_int_equal(dsp_on_accept(f->s, offer, "d1", NULL, 20), DSP_OK);
  dsp_tick(f->s, 40000);
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_OK);
  assert_false(v.in_index);
  assert_int_equal(v.state, DSP_DRIVER_EN_ROUTE);
  assert_string_equal(v.trip_id, trip);
  /* He can still finish the trip. */
  assert_int_equal(dsp_on_arrived(f->s, trip, "d1", NULL, 40001), DSP_OK);
  assert_int_equal(dsp_on_start(f->s, trip, "d1", NULL, 40002), DSP_OK);
  assert_int_equal(dsp_on_complete(f->s, trip, "d1", NULL, 40003), DSP_OK);
  /* ...and then, still silent, he is forgotten. */
  dsp_tick(f->s, 40004);
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_ENOTFOUND);
}

static bool collect_state(const geo_qt_hit *h, void *ud) {
  *(int *)ud = h->point.payload.state;
  return true;
}

/* The state of the only driver in the QuadTree (its payload). */
static int tree_state(fixture *f) {
  int st = -1;
  size_t n = 0;
  geo_bbox world = {-90, -180, 90, 180};
  assert_int_equal(
      geo_quadtree_within_box(dsp_qt_index_tree(f->qi), world, NULL, NULL, collect_state, &st, &n),
      GEO_OK);
  assert_int_equal(n, 1);
  return st;
}

static void test_drivers_state_is_kept_in_the_quadtree_payload(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.75, -73.99, 1, 0);
  assert_int_equal(tree_state(f), DSP_DRIVER_AVAILABLE);
  request(f, "r1", "q1", 40.75, -73.99, 1);
  assert_int_equal(tree_state(f), DSP_DRIVER_OFFERED);
  const dsp_event *e = event_at(f->s, DSP_EV_OFFERED, 0);
  char offer[DSP_ID_MAX + 1], trip[DSP_ID_MAX + 1];
  strcpy(offer, e->offer_id);
  strcpy(trip, e->trip_id);
  dsp_on_accept(f->s, offer, "d1", NULL, 2);
  assert_int_equal(tree_state(f), DSP_DRIVER_EN_ROUTE);
  dsp_on_arrived(f->s, trip, "d1", NULL, 3);
  dsp_on_start(f->s, trip, "d1", NULL, 4);
  assert_int_equal(tree_state(f), DSP_DRIVER_ON_TRIP);
  dsp_on_complete(f->s, trip, "d1", NULL, 5);
  assert_int_equal(tree_state(f), DSP_DRIVER_AVAILABLE);
  dsp_on_status(f->s, "d1", false, NULL, 6);
  assert_int_equal(tree_state(f), DSP_DRIVER_OFFLINE);
}

static void test_drivers_bad_pings_are_refused_and_counted(void **state) {
  fixture *f = *state;
  assert_int_equal(ping(f, "", 40.75, -73.99, 1, 0), DSP_EINVAL);
  assert_int_equal(ping(f, "d1", 91, -73.99, 1, 0), DSP_EINVAL);
  assert_int_equal(ping(f, "d1", 40.75, 181, 1, 0), DSP_EINVAL);
  char long_id[DSP_ID_MAX + 2];
  memset(long_id, 'x', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  assert_int_equal(ping(f, long_id, 40.75, -73.99, 1, 0), DSP_EINVAL);
  assert_int_equal(ping(f, "bad\nid", 40.75, -73.99, 1, 0), DSP_EINVAL);
  assert_int_equal(dsp_on_location(f->s, NULL, 0), DSP_EINVAL);
  dsp_stats st;
  dsp_stats_get(f->s, &st);
  assert_int_equal(st.pings_invalid, 6);
  assert_int_equal(st.drivers, 0);
  assert_int_equal(geo_quadtree_count(dsp_qt_index_tree(f->qi)), 0);
}

static void test_drivers_status_offline_takes_him_out_of_matching(void **state) {
  fixture *f = *state;
  ping(f, "d1", 40.75, -73.99, 1, 0);
  assert_int_equal(dsp_on_status(f->s, "d1", false, NULL, 1), DSP_OK);
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_OFFLINE);
  assert_true(v.in_index); /* still seen (nearby views), never offered */
  request(f, "r1", "q1", 40.75, -73.99, 2);
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 0);
  assert_int_equal(n_events(f->s, DSP_EV_NO_DRIVER), 1);
  check_and_clear(f);
  /* Pings do not bring him back; status available does. */
  ping(f, "d1", 40.75, -73.99, 2, 3);
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_OFFLINE);
  assert_int_equal(dsp_on_status(f->s, "d1", true, NULL, 4), DSP_OK);
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_AVAILABLE);
  request(f, "r2", "q2", 40.75, -73.99, 5);
  assert_int_equal(n_events(f->s, DSP_EV_OFFERED), 1);
}

static void test_drivers_status_before_first_ping_is_remembered(void **state) {
  fixture *f = *state;
  assert_int_equal(dsp_on_status(f->s, "d1", false, NULL, 0), DSP_OK);
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(f->s, "d1", &v), DSP_OK);
  assert_false(v.in_index);
  ping(f, "d1", 40.75, -73.99, 1, 100);
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_OFFLINE);
  assert_true(v.in_index);
  assert_int_equal(dsp_on_status(f->s, "", true, "r9", 0), DSP_EINVAL);
  assert_int_equal(last_reply(f->s)->code, DSP_ERR_BAD_REQUEST);
  assert_string_equal(last_reply(f->s)->ref, "r9");
}

static void test_drivers_first_ping_offline_when_configured(void **state) {
  fixture *f = *state;
  f->cfg.first_ping_available = false;
  fixture_restart(f);
  ping(f, "d1", 40.75, -73.99, 1, 0);
  dsp_driver_view v;
  dsp_driver_get(f->s, "d1", &v);
  assert_int_equal(v.state, DSP_DRIVER_OFFLINE);
}

static void test_drivers_halo_copies_are_kept_and_matched(void **state) {
  fixture *f = *state;
  dsp_location l = {.driver_id = "h1",
                    .pos = {40.75, -73.99},
                    .ts_ms = 1,
                    .seq = 1,
                    .halo = true,
                    .owner_shard = 4};
  assert_int_equal(dsp_on_location(f->s, &l, 0), DSP_OK);
  dsp_driver_view v;
  dsp_driver_get(f->s, "h1", &v);
  assert_true(v.halo);
  assert_int_equal(v.owner_shard, 4);
  request(f, "r1", "q1", 40.75, -73.99, 1);
  const dsp_event *e = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(e);
  assert_string_equal(e->driver_id, "h1");
  /* He crosses into our region: the next copy is not a halo one. */
  l.halo = false;
  l.seq = 2;
  dsp_on_location(f->s, &l, 2);
  dsp_driver_get(f->s, "h1", &v);
  assert_false(v.halo);
  assert_int_equal(v.owner_shard, 3);
}

/* An index that is full: every upsert answers DSP_ERANGE (index_quadtree.c's mapping of
 * libgeo's GEO_ERANGE, more points than the tree holds). */
static int full_upsert(void *ud, uint64_t id, geo_latlng pos, uint8_t st, int64_t seen_ms) {
  (void)ud, (void)id, (void)pos, (void)st, (void)seen_ms;
  return DSP_ERANGE;
}
static void full_remove(void *ud, uint64_t id) { (void)ud, (void)id; }
static int full_knn(void *ud, geo_latlng c, double r_m, size_t k, bool (*accept)(void *, uint64_t),
                    void *actx, uint64_t *ids, double *dist_m) {
  (void)ud, (void)c, (void)r_m, (void)k, (void)accept, (void)actx, (void)ids, (void)dist_m;
  return 0;
}

static void test_drivers_full_index_is_a_range_error_not_out_of_memory(void **state) {
  fixture *f = *state;
  dsp_index ix = {.ud = NULL, .upsert = full_upsert, .remove = full_remove, .knn = full_knn};
  dsp_router rt = dsp_graph_router_iface(f->gr);
  dsp_claims cl = dsp_claims_mem_iface(f->cm);
  dsp_shard *s = NULL;
  assert_int_equal(dsp_shard_new(&f->cfg, &ix, &rt, &cl, &s), DSP_OK);
  dsp_location l;
  memset(&l, 0, sizeof l);
  l.driver_id = "d1";
  l.pos = (geo_latlng){40.75, -73.99};
  l.seq = 1;
  l.ts_ms = 1000;
  /* the index's code comes back as it is (it was DSP_ENOMEM whatever the index said) */
  assert_int_equal(dsp_on_location(s, &l, 1000), DSP_ERANGE);
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(s, "d1", &v), DSP_ENOTFOUND); /* not kept half-made */
  assert_int_equal(dsp_on_warm(s, "d2", l.pos, 1000, NULL), DSP_ERANGE);
  assert_int_equal(dsp_driver_get(s, "d2", &v), DSP_ENOTFOUND);
  assert_true(strcmp(dsp_strerror(DSP_ERANGE), dsp_strerror(DSP_ENOMEM)) != 0);
  dsp_shard_free(s);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup_city, fixture_teardown)
  const struct CMUnitTest tests[] = {
      T(test_drivers_first_ping_indexes_an_available_driver),
      T(test_drivers_older_seq_is_ignored_and_counted),
      T(test_drivers_same_seq_orders_by_ts),
      T(test_drivers_silent_for_30s_leave_the_index),
      T(test_drivers_back_after_a_drop_start_a_new_sequence),
      T(test_drivers_ttl_sweep_runs_at_its_interval),
      T(test_drivers_on_a_trip_keep_their_record_when_silent),
      T(test_drivers_state_is_kept_in_the_quadtree_payload),
      T(test_drivers_bad_pings_are_refused_and_counted),
      T(test_drivers_status_offline_takes_him_out_of_matching),
      T(test_drivers_status_before_first_ping_is_remembered),
      T(test_drivers_first_ping_offline_when_configured),
      T(test_drivers_halo_copies_are_kept_and_matched),
      T(test_drivers_full_index_is_a_range_error_not_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
