/*
 * test_loadgen_sim.c: the simulation without sockets: drivers connect, say available and
 * ping with growing seq positions on the road graph; a rider asks at his trip's time; and the
 * same seed gives the same messages (the replay is deterministic), another seed other ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
      assert_int_equal(geo_graph_builder_add_node(b, i * 4 + j, (geo_latlng){40.75 + i * 0.002, -73.99 + j * 0.003}, &id[i * 4 + j]), GEO_OK);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      if (i + 1 < 4) {
        geo_graph_road r = {id[i * 4 + j], id[(i + 1) * 4 + j], 20000, 20000, 222, GEO_ROAD_RESIDENTIAL, i * 8 + j, NULL, 0};
        assert_int_equal(geo_graph_builder_add_road(b, &r), GEO_OK);
      }
      if (j + 1 < 4) {
        geo_graph_road r = {id[i * 4 + j], id[i * 4 + j + 1], 25000, 25000, 253, GEO_ROAD_RESIDENTIAL, 100 + i * 8 + j, NULL, 0};
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
  lg_io io = {f, f_open, f_send, f_close};
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
  assert_non_null(strstr(f.log, "r0 {\"type\":\"request\",\"request_id\":\"qt-0\",\"pickup\":{\"lat\":40.752000,\"lon\":-73.987000}"));
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_drivers_ping_and_riders_request_at_their_time),
      cmocka_unit_test(test_same_seed_same_messages_other_seed_other_places),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
