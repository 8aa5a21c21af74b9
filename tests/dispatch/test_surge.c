/*
 * test_surge.c: per-cell surge (services/dispatch/surge.c). The function: 1.0 without
 * pressure, monotone (up with requests and no_drivers, down with supply), bounded by the
 * cap. The state: smoothing and hysteresis keep the published value from flapping on a
 * noisy input; Redis commands only for what changed, sent again after a failed batch. And
 * a replay of the real evening of data/trips/nyc-taxi-10k.csv (every day of the sample
 * folded onto one day: 12:00 to 05:00) with few drivers: surge rises in the busiest cells
 * in the evening rush and falls back to 1.0 in the small hours.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "geo/geohash.h"
#include "surge.h"
#include "trips_csv.h"

static void test_surge_target_is_monotone_bounded_and_floored(void **state) {
  (void)state;
  dsp_surge_config c = dsp_surge_config_default();
  assert_float_equal(dsp_surge_target(0, 0, 0, &c), 1.0, 0);
  assert_float_equal(dsp_surge_target(1, 0, 5, &c), 1.0, 0);
  for (int sup = 0; sup < 30; sup += 3)
    for (int req = 0; req < 200; req += 7)
      for (int nd = 0; nd < 50; nd += 5) {
        double t = dsp_surge_target(req, nd, sup, &c);
        assert_true(t >= 1.0 && t <= c.cap);
        assert_true(dsp_surge_target(req + 1, nd, sup, &c) >= t);
        assert_true(dsp_surge_target(req, nd + 1, sup, &c) >= t);
        assert_true(dsp_surge_target(req, nd, sup + 1, &c) <= t);
      }
  assert_float_equal(dsp_surge_target(1e9, 1e9, 0, &c), c.cap, 0);
  assert_float_equal(dsp_surge_target(INFINITY, 0, 0, &c), c.cap, 0);
  assert_float_equal(dsp_surge_target(NAN, 0, 0, &c), 1.0, 0);
  assert_float_equal(dsp_surge_target(-1, 0, 0, &c), 1.0, 0);
  dsp_surge_config bad = c;
  bad.cap = 0.5;
  assert_float_equal(dsp_surge_target(100, 0, 0, &bad), 1.0, 0);
  dsp_surge *s = NULL;
  assert_int_equal(dsp_surge_new(&bad, &s), DSP_EINVAL);
  bad = c;
  bad.smoothing = 0;
  assert_int_equal(dsp_surge_new(&bad, &s), DSP_EINVAL);
  dsp_surge_free(NULL);
}

static const geo_latlng MIDTOWN = {40.7549, -73.9840};

/* n_req requests at MIDTOWN at t_ms. */
static void feed(dsp_surge *s, int n_req, int64_t t_ms) {
  for (int i = 0; i < n_req; i++) assert_int_equal(dsp_surge_demand(s, MIDTOWN, false, t_ms), 0);
}

static void test_surge_does_not_flap_on_noisy_input(void **state) {
  (void)state;
  unsigned seed = getenv("SEED") ? (unsigned)strtoul(getenv("SEED"), NULL, 10) : 7u;
  printf("SEED=%u\n", seed);
  srand(seed);
  dsp_surge_config c = dsp_surge_config_default();
  dsp_surge *s;
  assert_int_equal(dsp_surge_new(&c, &s), 0);
  char cell[13];
  assert_int_equal(geo_latlng_to_geohash(MIDTOWN, 6, cell), GEO_OK);
  int changes = 0, raw_changes = 0, quick_reversals = 0;
  double last = 1.0, last_raw = 1.0;
  int last_dir = 0, last_change_k = -1000;
  /* 5 s updates for 2 h, a stationary but noisy input: a request per update with
   * probability 1/2 (30 in the 5 min window, give or take 5) against 4 to 6 drivers drawn
   * anew every update: the target wanders between about 1.7 and 2.3 */
  for (int k = 0; k < 1440; k++) {
    int64_t t = (int64_t)k * 5000;
    feed(s, rand() % 2, t);
    int sup = 4 + rand() % 3;
    assert_int_equal(dsp_surge_supply(s, cell, sup), 0);
    dsp_surge_update(s, t);
    assert_true(dsp_surge_check(s));
    double p = dsp_surge_of_cell(s, cell);
    if (p != last) {
      int dir = p > last ? 1 : -1;
      if (k > 120) { /* after the first 10 min of ramp-up */
        changes++;
        if (dir != last_dir && k - last_change_k <= 12) quick_reversals++;
      }
      last_dir = dir, last_change_k = k;
    }
    last = p;
    /* what an unsmoothed multiplier without hysteresis would publish */
    double raw = round(dsp_surge_target(30, 0, sup, &c) / c.step) * c.step;
    if (raw != last_raw) raw_changes++;
    last_raw = raw;
  }
  printf("published changes %d (reversed within 1 min: %d), unsmoothed changes %d, over 1440 "
         "updates; final %.2f\n",
         changes, quick_reversals, raw_changes, last);
  assert_true(last > 1.0);              /* the pressure is real: surge holds */
  assert_true(raw_changes > 500);       /* the input is noisy */
  assert_true(changes <= 24);           /* at most one change per 5 min on average */
  assert_int_equal(quick_reversals, 0); /* and never back within a minute */
  assert_true(dsp_surge_active(s) == 1);
  assert_float_equal(dsp_surge_max(s), last, 0);
  dsp_surge_free(s);
}

typedef struct cmds {
  int n, fail;
  char last[4][32];
} cmds;

static int emit(void *ud, int argc, const char *const *argv) {
  cmds *c = ud;
  if (c->fail) return -42; /* a write's own code: passed on as it is */
  c->n++;
  for (int i = 0; i < argc && i < 4; i++) snprintf(c->last[i], sizeof c->last[i], "%s", argv[i]);
  return 0;
}

static void test_surge_writes_only_changes_and_retries_a_failed_batch(void **state) {
  (void)state;
  dsp_surge_config c = dsp_surge_config_default();
  c.smoothing = 1.0; /* follow the target at once */
  dsp_surge *s;
  assert_int_equal(dsp_surge_new(&c, &s), 0);
  char cell[13];
  assert_int_equal(geo_latlng_to_geohash(MIDTOWN, 6, cell), GEO_OK);
  feed(s, 20, 1000);
  assert_int_equal(dsp_surge_supply(s, cell, 3), 0); /* pressure 5: 1 + 0.25 x 4 = 2.0 */
  dsp_surge_update(s, 2000);
  assert_float_equal(dsp_surge_at(s, MIDTOWN), 2.0, 1e-9);
  cmds k = {0};
  k.fail = 1;
  assert_int_equal(dsp_surge_collect(s, "hot:surge:0", emit, &k), -42);
  dsp_surge_done(s, false);
  k.fail = 0;
  assert_int_equal(dsp_surge_collect(s, "hot:surge:0", emit, &k), 1);
  assert_string_equal(k.last[0], "HSET");
  assert_string_equal(k.last[2], cell);
  assert_string_equal(k.last[3], "2.00");
  dsp_surge_done(s, true);
  k.n = 0;
  assert_int_equal(dsp_surge_collect(s, "hot:surge:0", emit, &k), 0); /* nothing changed */
  dsp_surge_done(s, true);
  /* Redis came back empty: everything above 1.0 again */
  dsp_surge_forget_written(s);
  assert_int_equal(dsp_surge_collect(s, "hot:surge:0", emit, &k), 1);
  dsp_surge_done(s, true);
  /* the window passes: back to 1.0, the field deleted */
  dsp_surge_update(s, 1000 + c.window_ms + 1);
  assert_float_equal(dsp_surge_at(s, MIDTOWN), 1.0, 0);
  assert_int_equal(dsp_surge_collect(s, "hot:surge:0", emit, &k), 1);
  assert_string_equal(k.last[0], "HDEL");
  dsp_surge_done(s, true);
  assert_true(dsp_surge_check(s));
  assert_int_equal(dsp_surge_supply(s, "abc", 1), DSP_EINVAL); /* not a geohash-6 */
  assert_int_equal(dsp_surge_supply(s, cell, -1), DSP_EINVAL);
  dsp_surge_free(s);
}

/* ---- the evening rush, replayed ------------------------------------------------------ */

#define N_DRIVERS 150

static void test_surge_rises_in_the_evening_rush_and_falls_after(void **state) {
  (void)state;
  const char *src = getenv("MERIDIAN_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/data/trips/nyc-taxi-10k.csv", src ? src : ".");
  lg_trip_set set = {0};
  char err[256];
  if (lg_trips_load(path, NULL, NULL, 1, &set, err, sizeof err) != 0) fail_msg("%s", err);
  /* replay clock: seconds from 12:00, to 05:00 the next morning (17 h) */
  const double T0 = 12 * 3600.0, SPAN = 17 * 3600.0;
  size_t *order = malloc(set.n * sizeof *order);
  double *at = malloc(set.n * sizeof *at);
  assert_non_null(order);
  assert_non_null(at);
  size_t n = 0;
  for (size_t i = 0; i < set.n; i++) {
    double t = set.trips[i].tod_s - T0;
    if (t < 0) t += 86400;
    if (t >= SPAN) continue;
    at[i] = t;
    order[n++] = i;
  }
  /* sort by replay time (insertion sort on an index is fine for ~7k) */
  for (size_t i = 1; i < n; i++) {
    size_t v = order[i], j = i;
    while (j > 0 && at[order[j - 1]] > at[v]) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = v;
  }
  /* the busiest cell of the evening (17:00-20:00) */
  char best[13] = "";
  int best_n = 0;
  {
    char(*cells)[13] = calloc(n, sizeof *cells);
    int *cnt = calloc(n, sizeof *cnt);
    size_t nc = 0;
    assert_non_null(cells);
    assert_non_null(cnt);
    for (size_t k = 0; k < n; k++) {
      const lg_trip *t = &set.trips[order[k]];
      if (at[order[k]] < 5 * 3600.0 || at[order[k]] >= 8 * 3600.0) continue;
      char gh[13];
      assert_int_equal(geo_latlng_to_geohash((geo_latlng){t->pickup_lat, t->pickup_lon}, 6, gh),
                       GEO_OK);
      size_t j = 0;
      while (j < nc && strcmp(cells[j], gh) != 0) j++;
      if (j == nc) strcpy(cells[nc++], gh);
      if (++cnt[j] > best_n) best_n = cnt[j], strcpy(best, gh);
    }
    free(cells);
    free(cnt);
  }
  /* few drivers: N_DRIVERS, starting where noon trips ended. A request takes the nearest
   * free driver, who is busy for a 5 min pickup and the trip (its real duration, 12 min
   * when the sample has none) and is then free where it ended; without a free driver the
   * request is a no_driver. Supply is the free drivers of each cell. */
  struct {
    geo_latlng pos;
    double free_at;
  } drv[N_DRIVERS];
  for (int d = 0; d < N_DRIVERS; d++) {
    const lg_trip *t = &set.trips[order[(size_t)d * 7 % (n / 20)]];
    drv[d].pos = (geo_latlng){t->dropoff_lat, t->dropoff_lon};
    drv[d].free_at = 0;
  }
  dsp_surge_config c = dsp_surge_config_default();
  dsp_surge *s;
  assert_int_equal(dsp_surge_new(&c, &s), 0);
  size_t k = 0, no_driver = 0;
  double peak_rush = 1.0, at_noon = 0, at_small_hours = 0, rush_max = 1.0;
  double active_rush = 0, active_late = 0; /* sums of dsp_surge_active per update */
  int n_rush = 0, n_late = 0;
  printf("surge in the busiest evening cell %s (%d requests 17:00-20:00), %d drivers:\n", best,
         best_n, N_DRIVERS);
  for (double t = 0; t < SPAN; t += 5) {
    for (; k < n && at[order[k]] <= t; k++) {
      const lg_trip *tr = &set.trips[order[k]];
      geo_latlng p = {tr->pickup_lat, tr->pickup_lon};
      int pick = -1;
      double best_d = 1e18;
      for (int d = 0; d < N_DRIVERS; d++) {
        if (drv[d].free_at > t) continue;
        double dy = drv[d].pos.lat - p.lat, dx = (drv[d].pos.lng - p.lng) * 0.76;
        if (dx * dx + dy * dy < best_d) best_d = dx * dx + dy * dy, pick = d;
      }
      int64_t t_ms = (int64_t)(t * 1000);
      assert_int_equal(dsp_surge_demand(s, p, false, t_ms), 0);
      if (pick < 0) {
        assert_int_equal(dsp_surge_demand(s, p, true, t_ms), 0);
        no_driver++;
        continue;
      }
      drv[pick].free_at = t + 300 + (tr->duration_s > 0 ? tr->duration_s : 720);
      drv[pick].pos = (geo_latlng){tr->dropoff_lat, tr->dropoff_lon};
    }
    /* supply: the free drivers of each cell */
    char cell[N_DRIVERS][13];
    int cnt[N_DRIVERS], nc = 0;
    for (int d = 0; d < N_DRIVERS; d++) {
      if (drv[d].free_at > t) continue;
      char gh[13];
      assert_int_equal(geo_latlng_to_geohash(drv[d].pos, 6, gh), GEO_OK);
      int j = 0;
      while (j < nc && strcmp(cell[j], gh) != 0) j++;
      if (j == nc) strcpy(cell[nc], gh), cnt[nc++] = 0;
      cnt[j]++;
    }
    for (int j = 0; j < nc; j++) assert_int_equal(dsp_surge_supply(s, cell[j], cnt[j]), 0);
    dsp_surge_update(s, (int64_t)(t * 1000));
    double v = dsp_surge_of_cell(s, best);
    double clock = fmod(T0 + t, 86400) / 3600;
    if (fmod(t, 1800) == 0)
      printf("  %05.2f h  %.2f  (cells above 1: %zu, max %.2f; no_driver so far %zu)\n", clock, v,
             dsp_surge_active(s), dsp_surge_max(s), no_driver);
    if (clock >= 17 && clock < 20 && v > peak_rush) peak_rush = v;
    if (clock >= 17 && clock < 20 && dsp_surge_max(s) > rush_max) rush_max = dsp_surge_max(s);
    if (fabs(clock - 12.5) < 1e-9) at_noon = v;
    if (fabs(clock - 4.5) < 1e-9) at_small_hours = v;
    if (clock >= 17 && clock < 20) active_rush += (double)dsp_surge_active(s), n_rush++;
    if (clock >= 3.5 && clock < 5) active_late += (double)dsp_surge_active(s), n_late++;
    assert_true(dsp_surge_check(s));
  }
  active_rush /= n_rush, active_late /= n_late;
  printf("busiest cell: peak in the rush %.2f, at 12:30 %.2f, at 04:30 %.2f; highest anywhere "
         "in the rush %.2f; cells above 1.0: %.1f on average 17:00-20:00, %.1f 03:30-05:00; "
         "no_driver %zu of %zu requests\n",
         peak_rush, at_noon, at_small_hours, rush_max, active_rush, active_late, no_driver, n);
  assert_true(peak_rush >= 1.5);              /* rises in the busy cell */
  assert_true(peak_rush > at_noon);           /* more than at noon */
  assert_float_equal(at_small_hours, 1.0, 0); /* and falls after */
  assert_true(active_rush > 3 * active_late); /* everywhere */
  dsp_surge_free(s);
  free(order);
  free(at);
  lg_trip_set_free(&set);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_surge_target_is_monotone_bounded_and_floored),
      cmocka_unit_test(test_surge_does_not_flap_on_noisy_input),
      cmocka_unit_test(test_surge_writes_only_changes_and_retries_a_failed_batch),
      cmocka_unit_test(test_surge_rises_in_the_evening_rush_and_falls_after),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
