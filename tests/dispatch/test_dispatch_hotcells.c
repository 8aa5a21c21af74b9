/*
 * test_dispatch_hotcells.c: the hot-cell bookkeeping (hotcells.h): a batch holds only
 * what changed since the last written one; a driver shown, moved (within his cell, to
 * another cell, by less than move_m), hidden, or silent past the TTL gives exactly the
 * GEO commands for it; supply and demand per cell follow; a failed batch is sent again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hotcells.h"

typedef struct sink {
  char cmds[64][160];
  int n;
  int fail_at; /* emit returns EMIT_FAILED at this command (-1: never) */
} sink;

/* A write's own failure code, which dsp_hot_collect passes on as it is. */
#define EMIT_FAILED (-42)

static int emit(void *ud, int argc, const char *const *argv) {
  sink *k = ud;
  if (k->n == k->fail_at) return EMIT_FAILED;
  char *c = k->cmds[k->n++];
  c[0] = '\0';
  for (int i = 0; i < argc; i++) {
    strcat(c, i ? " " : "");
    strncat(c, argv[i], 40);
  }
  return 0;
}

static int has(const sink *k, const char *prefix) {
  int c = 0;
  for (int i = 0; i < k->n; i++) c += strncmp(k->cmds[i], prefix, strlen(prefix)) == 0;
  return c;
}

static dsp_hot *mk(void) {
  dsp_hot_config c = {.geo_key = "drivers:available",
                      .cell_prefix = "hot:drivers:",
                      .supply_key = "hot:supply:0",
                      .demand_key = "hot:demand:0",
                      .cell_precision = 5,
                      .count_precision = 6,
                      .demand_window_ms = 60000,
                      .ttl_ms = 30000,
                      .move_m = 5};
  dsp_hot *h = NULL;
  assert_int_equal(dsp_hot_new(&c, &h), 0);
  return h;
}

static int batch(dsp_hot *h, sink *k, int64_t now) {
  k->n = 0;
  k->fail_at = -1;
  int n = dsp_hot_collect(h, now, emit, k);
  dsp_hot_done(h, n >= 0);
  return n;
}

static const geo_latlng A = {40.7580, -73.9855}; /* geohash5 dr5ru, geohash6 dr5ru7 */

static void test_shown_driver_written_once_then_nothing(void **state) {
  (void)state;
  dsp_hot *h = mk();
  sink k;
  assert_int_equal(dsp_hot_driver(h, "d1", true, A, 0), 0);
  assert_int_equal(batch(h, &k, 100), 3);
  assert_int_equal(has(&k, "GEOADD drivers:available -73.9855000 40.7580000 d1"), 1);
  assert_int_equal(has(&k, "GEOADD hot:drivers:dr5ru -73.9855000 40.7580000 d1"), 1);
  assert_int_equal(has(&k, "HSET hot:supply:0 dr5ru7 1"), 1);
  assert_int_equal(dsp_hot_shown(h), 1);
  /* the same state again (a ping without movement): nothing to write */
  assert_int_equal(dsp_hot_driver(h, "d1", true, A, 1000), 0);
  assert_int_equal(batch(h, &k, 1100), 0);
  /* moved 2 m: below move_m, nothing; moved 50 m: written again, supply unchanged */
  assert_int_equal(dsp_hot_driver(h, "d1", true, (geo_latlng){A.lat + 0.00002, A.lng}, 2000), 0);
  assert_int_equal(batch(h, &k, 2100), 0);
  assert_int_equal(dsp_hot_driver(h, "d1", true, (geo_latlng){A.lat + 0.00045, A.lng}, 3000), 0);
  assert_int_equal(batch(h, &k, 3100), 2);
  assert_int_equal(has(&k, "GEOADD"), 2);
  dsp_hot_free(h);
}

static void test_hidden_driver_removed_and_supply_dropped(void **state) {
  (void)state;
  dsp_hot *h = mk();
  sink k;
  dsp_hot_driver(h, "d1", true, A, 0);
  dsp_hot_driver(h, "d2", true, A, 0);
  batch(h, &k, 10);
  assert_int_equal(has(&k, "HSET hot:supply:0 dr5ru7 2"), 1);
  assert_int_equal(dsp_hot_driver(h, "d1", false, A, 20), 0); /* offered: not available */
  assert_int_equal(batch(h, &k, 30), 3);
  assert_int_equal(has(&k, "ZREM drivers:available d1"), 1);
  assert_int_equal(has(&k, "ZREM hot:drivers:dr5ru d1"), 1);
  assert_int_equal(has(&k, "HSET hot:supply:0 dr5ru7 1"), 1);
  assert_int_equal(dsp_hot_shown(h), 1);
  assert_int_equal(dsp_hot_tracked(h), 1); /* d1 forgotten once removed */
  /* a driver never shown and hidden: nothing at all */
  assert_int_equal(dsp_hot_driver(h, "d9", false, A, 40), 0);
  assert_int_equal(batch(h, &k, 50), 0);
  dsp_hot_free(h);
}

static void test_move_to_another_cell_removes_the_old_cell(void **state) {
  (void)state;
  dsp_hot *h = mk();
  sink k;
  dsp_hot_driver(h, "d1", true, A, 0);
  batch(h, &k, 10);
  geo_latlng far = {40.8100, -73.9500}; /* dr72j */
  dsp_hot_driver(h, "d1", true, far, 20);
  batch(h, &k, 30);
  assert_int_equal(has(&k, "GEOADD drivers:available"), 1);
  assert_int_equal(has(&k, "GEOADD hot:drivers:dr72j"), 1);
  assert_int_equal(has(&k, "ZREM hot:drivers:dr5ru d1"), 1);
  assert_int_equal(has(&k, "HDEL hot:supply:0 dr5ru7"), 1);
  assert_int_equal(has(&k, "HSET hot:supply:0 dr72j"), 1);
  dsp_hot_free(h);
}

static void test_silent_driver_hidden_after_ttl(void **state) {
  (void)state;
  dsp_hot *h = mk();
  sink k;
  dsp_hot_driver(h, "d1", true, A, 0);
  batch(h, &k, 10);
  assert_int_equal(batch(h, &k, 29999), 0);
  assert_int_equal(batch(h, &k, 30000), 3);
  assert_int_equal(has(&k, "ZREM drivers:available d1"), 1);
  assert_int_equal(dsp_hot_shown(h), 0);
  dsp_hot_free(h);
}

static void test_demand_counts_requests_of_the_last_minute(void **state) {
  (void)state;
  dsp_hot *h = mk();
  sink k;
  dsp_hot_request(h, A, 0);
  dsp_hot_request(h, A, 1000);
  batch(h, &k, 2000);
  assert_int_equal(has(&k, "HSET hot:demand:0 dr5ru7 2"), 1);
  assert_int_equal(batch(h, &k, 3000), 0);
  assert_int_equal(batch(h, &k, 60000), 1);
  assert_int_equal(has(&k, "HSET hot:demand:0 dr5ru7 1"), 1);
  assert_int_equal(batch(h, &k, 61000), 1);
  assert_int_equal(has(&k, "HDEL hot:demand:0 dr5ru7"), 1);
  for (int i = 0; i < 1000; i++) dsp_hot_request(h, A, 70000 + i); /* the ring grows */
  batch(h, &k, 71000);
  assert_int_equal(has(&k, "HSET hot:demand:0 dr5ru7 1000"), 1);
  dsp_hot_free(h);
}

static void test_failed_batch_is_sent_again(void **state) {
  (void)state;
  dsp_hot *h = mk();
  sink k = {.fail_at = 1};
  dsp_hot_driver(h, "d1", true, A, 0);
  k.n = 0;
  assert_int_equal(dsp_hot_collect(h, 10, emit, &k), EMIT_FAILED);
  dsp_hot_done(h, false);
  assert_int_equal(dsp_hot_shown(h), 0);
  /* Redis answered with an error on a command: the caller says not ok */
  k.n = 0;
  k.fail_at = -1;
  assert_int_equal(dsp_hot_collect(h, 20, emit, &k), 3);
  dsp_hot_done(h, false);
  /* back: everything again */
  assert_int_equal(batch(h, &k, 30), 3);
  assert_int_equal(dsp_hot_shown(h), 1);
  assert_int_equal(batch(h, &k, 40), 0);
  dsp_hot_free(h);
}

static void test_forget_written_rewrites_everything_shown(void **state) {
  (void)state;
  dsp_hot *h = mk();
  sink k;
  dsp_hot_driver(h, "d1", true, A, 0);
  dsp_hot_driver(h, "d2", true, A, 0);
  dsp_hot_request(h, A, 0);
  batch(h, &k, 10);
  assert_int_equal(batch(h, &k, 20), 0);
  /* d2 hidden while Redis is down: the removal fails */
  dsp_hot_driver(h, "d2", false, A, 30);
  k.n = 0;
  k.fail_at = 0;
  assert_int_equal(dsp_hot_collect(h, 40, emit, &k), EMIT_FAILED);
  dsp_hot_done(h, false);
  /* Redis is back, maybe empty: everything shown is written again, and d2's removal */
  dsp_hot_forget_written(h);
  batch(h, &k, 50);
  assert_int_equal(has(&k, "GEOADD drivers:available -73.9855000 40.7580000 d1"), 1);
  assert_int_equal(has(&k, "GEOADD hot:drivers:dr5ru -73.9855000 40.7580000 d1"), 1);
  assert_int_equal(has(&k, "ZREM drivers:available d2"), 1);
  assert_int_equal(has(&k, "HSET hot:supply:0 dr5ru7 1"), 1);
  assert_int_equal(has(&k, "HSET hot:demand:0 dr5ru7 1"), 1);
  assert_int_equal(dsp_hot_shown(h), 1);
  assert_int_equal(batch(h, &k, 60), 0);
  dsp_hot_free(h);
}

static void test_bad_config_and_ids_refused(void **state) {
  (void)state;
  dsp_hot_config c = {0};
  dsp_hot *h = NULL;
  assert_int_equal(dsp_hot_new(&c, &h), DSP_EINVAL);
  h = mk();
  assert_int_equal(dsp_hot_driver(h, "", true, A, 0), DSP_EINVAL);
  assert_int_equal(dsp_hot_driver(h, "d1", true, (geo_latlng){91, 0}, 0), DSP_EINVAL);
  assert_int_equal(dsp_hot_request(h, (geo_latlng){91, 0}, 0), DSP_EINVAL);
  dsp_hot_free(h);
  dsp_hot_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shown_driver_written_once_then_nothing),
      cmocka_unit_test(test_hidden_driver_removed_and_supply_dropped),
      cmocka_unit_test(test_move_to_another_cell_removes_the_old_cell),
      cmocka_unit_test(test_silent_driver_hidden_after_ttl),
      cmocka_unit_test(test_demand_counts_requests_of_the_last_minute),
      cmocka_unit_test(test_failed_batch_is_sent_again),
      cmocka_unit_test(test_forget_written_rewrites_everything_shown),
      cmocka_unit_test(test_bad_config_and_ids_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
