/*
 * test_dispatch_handoff.c: the dispatch side of a range handoff (docs/shards.md): which ranges
 * a new epoch gives and takes (handoff.c), which hot cells to read for the warm-up, the epoch
 * gate (a message routed by a newer map waits for that map), a stale ping judged by the
 * shard's own map; in the core, a warmed driver is matched before any ping of his reaches the
 * receiver and his next ping is taken whatever its seq, released drivers stay candidates as
 * halo copies while an offer in flight ends on its shard; in the hot cells, a disowned driver
 * leaves the supply without his GEO entries being removed, and location updates are counted
 * per cell over the last minute.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dsp_fixture.h"
#include "handoff.h"
#include "hotcells.h"

static void map_of(mrd_shardmap *m, const char *const rows[][2], const uint32_t *shards, size_t n) {
  mrd_shardmap_init(m);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(mrd_shardmap_add(m, rows[i][0], rows[i][1], shards[i]), 0);
  assert_int_equal(mrd_shardmap_check(m, NULL, 0), 0);
}

static void test_diff_gives_the_receiver_its_gains_and_the_giver_its_losses(void **st) {
  (void)st;
  static const char *const r1[][2] = {{"", "dr72"}, {"dr72", "~"}};
  static const char *const r2[][2] = {
      {"", "dr5r"}, {"dr5r", "dr5s"}, {"dr5s", "dr72"}, {"dr72", "~"}};
  mrd_shardmap a, b;
  map_of(&a, r1, (uint32_t[]){0, 1}, 2);
  map_of(&b, r2, (uint32_t[]){0, 2, 0, 1}, 4);
  dsp_handoff h;
  assert_int_equal(dsp_handoff_diff(&a, &b, 2, &h), 0); /* the receiver */
  assert_int_equal(h.n_gained, 1);
  assert_int_equal(h.n_lost, 0);
  assert_string_equal(h.gained[0].start, "dr5r");
  assert_int_equal(h.gained[0].from, 0);
  assert_true(dsp_handoff_in(h.gained, h.n_gained, "dr5ru7abc"));
  assert_false(dsp_handoff_in(h.gained, h.n_gained, "dr5s0"));
  assert_true(dsp_handoff_cell_wanted(&h, "dr5ru"));  /* a geohash-5 cell inside */
  assert_true(dsp_handoff_cell_wanted(&h, "dr5"));    /* a cell around it */
  assert_false(dsp_handoff_cell_wanted(&h, "dr5q8")); /* a cell beside it */
  dsp_handoff_close(&h);
  assert_int_equal(dsp_handoff_diff(&a, &b, 0, &h), 0); /* the giver */
  assert_int_equal(h.n_gained, 0);
  assert_int_equal(h.n_lost, 1);
  assert_int_equal(h.lost[0].to, 2);
  dsp_handoff_close(&h);
  assert_int_equal(dsp_handoff_diff(&a, &b, 1, &h), 0); /* a bystander */
  assert_int_equal(h.n_gained + h.n_lost, 0);
  dsp_handoff_close(&h);
  assert_int_equal(dsp_handoff_diff(NULL, &b, 2, &h), 0); /* a first map hands nothing over */
  assert_int_equal(h.n_gained + h.n_lost, 0);
  dsp_handoff_close(&h);
  mrd_shardmap_close(&a);
  mrd_shardmap_close(&b);
}

static void test_gate_and_stale_pings(void **st) {
  (void)st;
  assert_int_equal(dsp_handoff_gate(5, 6), DSP_GATE_LOAD_FIRST);
  assert_int_equal(dsp_handoff_gate(5, 5), DSP_GATE_PASS);
  assert_int_equal(dsp_handoff_gate(5, 4), DSP_GATE_PASS);
  assert_int_equal(dsp_handoff_gate(5, 0), DSP_GATE_PASS); /* unstamped */
  static const char *const r[][2] = {{"", "dr5r"}, {"dr5r", "dr5s"}, {"dr5s", "~"}};
  mrd_shardmap m;
  map_of(&m, r, (uint32_t[]){0, 2, 0}, 3);
  /* routed under the old map as shard 0's own: shard 0 now knows it is shard 2's */
  bool halo = false;
  uint32_t owner = 0;
  dsp_handoff_judge_ping(&m, 0, "dr5ru7", &halo, &owner);
  assert_true(halo);
  assert_int_equal(owner, 2);
  /* routed as a halo copy to shard 2, whose range it is now: its own */
  halo = true;
  dsp_handoff_judge_ping(&m, 2, "dr5ru7", &halo, &owner);
  assert_false(halo);
  assert_int_equal(owner, 2);
  mrd_shardmap empty;
  mrd_shardmap_init(&empty);
  halo = true;
  owner = 9;
  dsp_handoff_judge_ping(&empty, 2, "dr5ru7", &halo, &owner); /* no map yet: unchanged */
  assert_true(halo);
  assert_int_equal(owner, 9);
  mrd_shardmap_close(&m);
}

/* the fixture's city: (40.74, -74.0) + 0.001 deg steps */
static void test_warmed_driver_is_matched_before_his_first_ping(void **state) {
  fixture *f = *state;
  /* the receiver knows nobody; the warm-up puts in the range's driver from Redis */
  bool created = false;
  assert_int_equal(dsp_on_warm(f->s, "dw", (geo_latlng){40.745, -73.995}, 1000, &created), DSP_OK);
  assert_true(created);
  assert_int_equal(dsp_on_warm(f->s, "dw", (geo_latlng){40.745, -73.995}, 1000, &created), DSP_OK);
  assert_false(created); /* known */
  assert_int_equal(dsp_on_warm(f->s, "", (geo_latlng){40.745, -73.995}, 1000, &created),
                   DSP_EINVAL);
  assert_false(created);
  assert_int_equal(dsp_on_warm(f->s, "dx", (geo_latlng){91, 0}, 1000, NULL), DSP_EINVAL);
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(f->s, "dw", &v), DSP_OK);
  assert_int_equal(v.state, DSP_DRIVER_AVAILABLE);
  assert_true(v.in_index);
  assert_false(v.halo);
  /* the first request in the range finds him */
  assert_int_equal(request(f, "r1", "q1", 40.746, -73.996, 1100), DSP_OK);
  const dsp_event *e = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(e);
  assert_string_equal(e->driver_id, "dw");
  check_and_clear(f);
  /* his next ping is taken whatever its seq (no order known yet) */
  assert_int_equal(ping(f, "dw", 40.7451, -73.9951, 0, 1200), DSP_OK);
  assert_int_equal(ping(f, "dw", 40.7452, -73.9952, 0, 1100), DSP_ESTALE); /* now ordered */
}

static bool east_is_shard_5(void *ud, geo_latlng pos, uint32_t *owner) {
  (void)ud;
  *owner = pos.lng > -73.99 ? 5 : 3;
  return true;
}

static int n_released;
static void on_released(void *ud, const char *id) {
  (void)ud;
  (void)id;
  n_released++;
}

static void test_released_drivers_become_halo_copies_and_offers_end_here(void **state) {
  fixture *f = *state; /* shard 3 */
  assert_int_equal(ping(f, "west", 40.745, -73.995, 1, 1000), DSP_OK);
  assert_int_equal(ping(f, "east", 40.745, -73.985, 1, 1000), DSP_OK);
  assert_int_equal(ping(f, "east2", 40.746, -73.984, 1, 1000), DSP_OK);
  /* an offer to east2 is in flight when his range moves to shard 5 */
  assert_int_equal(request(f, "r1", "q1", 40.7461, -73.9839, 1100), DSP_OK);
  const dsp_event *e = event_at(f->s, DSP_EV_OFFERED, 0);
  assert_non_null(e);
  assert_string_equal(e->driver_id, "east2");
  char trip[DSP_ID_MAX + 1];
  snprintf(trip, sizeof trip, "%s", e->trip_id);
  check_and_clear(f);
  n_released = 0;
  assert_int_equal(dsp_release_owned(f->s, east_is_shard_5, NULL, on_released), 2);
  assert_int_equal(n_released, 2);
  dsp_driver_view v;
  assert_int_equal(dsp_driver_get(f->s, "east", &v), DSP_OK);
  assert_true(v.halo);
  assert_int_equal(v.owner_shard, 5);
  assert_int_equal(dsp_driver_get(f->s, "west", &v), DSP_OK);
  assert_false(v.halo);
  /* the offer made before the move is still this shard's and ends here */
  dsp_trip_view tv;
  assert_int_equal(dsp_trip_get(f->s, trip, &tv), DSP_OK);
  assert_int_equal(tv.state, DSP_TRIP_OFFERED);
  /* a second release does nothing more */
  assert_int_equal(dsp_release_owned(f->s, east_is_shard_5, NULL, on_released), 0);
}

typedef struct sink {
  char cmds[64][160];
  int n;
} sink;

static int emit(void *ud, int argc, const char *const *argv) {
  sink *k = ud;
  char *c = k->cmds[k->n++];
  c[0] = '\0';
  for (int i = 0; i < argc; i++) {
    strcat(c, i ? " " : "");
    strncat(c, argv[i], 40);
  }
  return 0;
}

static int count(const sink *k, const char *prefix) {
  int c = 0;
  for (int i = 0; i < k->n; i++) c += strncmp(k->cmds[i], prefix, strlen(prefix)) == 0;
  return c;
}

static int batch(dsp_hot *h, sink *k, int64_t now) {
  k->n = 0;
  int n = dsp_hot_collect(h, now, emit, k);
  dsp_hot_done(h, n >= 0);
  return n;
}

static void test_hot_cells_disown_without_removing_and_count_updates(void **st) {
  (void)st;
  dsp_hot_config c = {.geo_key = "drivers:available",
                      .cell_prefix = "hot:drivers:",
                      .supply_key = "hot:supply:0",
                      .demand_key = "hot:demand:0",
                      .updates_key = "hot:updates:0",
                      .cell_precision = 5,
                      .count_precision = 6,
                      .demand_window_ms = 60000,
                      .ttl_ms = 30000,
                      .move_m = 5};
  dsp_hot *h = NULL;
  assert_int_equal(dsp_hot_new(&c, &h), 0);
  geo_latlng a = {40.7580, -73.9855}; /* dr5ru7 */
  sink k;
  assert_int_equal(dsp_hot_driver(h, "d1", true, a, 0), 0);
  batch(h, &k, 0);
  assert_int_equal(count(&k, "GEOADD drivers:available"), 1);
  assert_int_equal(dsp_hot_shown(h), 1);
  /* disowned: out of this shard's supply, and no ZREM of the new owner's entries */
  assert_int_equal(dsp_hot_disown(h, "d1"), 0);
  assert_int_equal(dsp_hot_disown(h, "nobody"), 0);
  batch(h, &k, 100);
  assert_int_equal(count(&k, "ZREM"), 0);
  assert_int_equal(count(&k, "HDEL hot:supply:0 dr5ru7"), 1);
  assert_int_equal(dsp_hot_shown(h), 0);
  assert_int_equal(dsp_hot_tracked(h), 0);
  /* ... nor later, when the TTL would have hidden him */
  batch(h, &k, 40000);
  assert_int_equal(count(&k, "ZREM"), 0);
  /* location updates: counted per cell in 10 s buckets, recounted when a bucket begins,
   * kept a minute */
  for (int i = 0; i < 30; i++) assert_int_equal(dsp_hot_update(h, a, 100000 + i * 100), 0);
  batch(h, &k, 103000);
  assert_int_equal(count(&k, "HSET hot:updates:0 dr5ru7 30"), 1);
  batch(h, &k, 104000);
  assert_int_equal(count(&k, "hot:updates:0"), 0); /* same bucket: nothing rewritten */
  for (int i = 0; i < 10; i++) assert_int_equal(dsp_hot_update(h, a, 121000 + i), 0);
  batch(h, &k, 125000);
  assert_int_equal(count(&k, "HSET hot:updates:0 dr5ru7 40"), 1);
  batch(h, &k, 155000);
  assert_int_equal(count(&k, "hot:updates:0"), 0); /* both buckets within the minute */
  batch(h, &k, 160000);
  assert_int_equal(count(&k, "HSET hot:updates:0 dr5ru7 10"), 1); /* the first one left */
  batch(h, &k, 180000);
  assert_int_equal(count(&k, "HDEL hot:updates:0 dr5ru7"), 1); /* and the second */
  assert_int_equal(dsp_hot_update(h, (geo_latlng){91, 0}, 1), DSP_EINVAL);
  dsp_hot_free(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_diff_gives_the_receiver_its_gains_and_the_giver_its_losses),
      cmocka_unit_test(test_gate_and_stale_pings),
      cmocka_unit_test_setup_teardown(test_warmed_driver_is_matched_before_his_first_ping,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_released_drivers_become_halo_copies_and_offers_end_here,
                                      fixture_setup_city, fixture_teardown),
      cmocka_unit_test(test_hot_cells_disown_without_removing_and_count_updates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
