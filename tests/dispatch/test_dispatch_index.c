/*
 * test_dispatch_index.c: the QuadTree adapter of the dispatch core (index_quadtree.c) on its
 * own: the k nearest acceptable drivers come back even when unacceptable ones are nearer,
 * and every libgeo error reaches the core as its own DSP_E* code (mapped once in the
 * adapter), not as one catch-all value: a position the tree refuses is DSP_EINVAL, a failed
 * allocation inside libgeo DSP_ENOMEM, with the index unchanged. No servers.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "geo/geo.h"
#include "index_quadtree.h"

static const geo_latlng TIMES_SQUARE = {40.7580, -73.9855};

static int setup(void **state) {
  dsp_qt_index *ix = NULL;
  assert_int_equal(dsp_qt_index_new(&ix), DSP_OK);
  *state = ix;
  return 0;
}

static int teardown(void **state) {
  dsp_qt_index_free(*state);
  return 0;
}

static bool odd_only(void *actx, uint64_t id) {
  (void)actx;
  return id % 2 == 1;
}

static void test_index_knn_returns_nearest_acceptable_first(void **state) {
  dsp_index in = dsp_qt_index_iface(*state);
  /* id i sits i * 0.001 deg north of the pickup: 2 is nearer than 3, but 2 is refused */
  for (uint64_t id = 1; id <= 6; id++) {
    geo_latlng p = {TIMES_SQUARE.lat + 0.001 * (double)id, TIMES_SQUARE.lng};
    assert_int_equal(in.upsert(in.ud, id, p, 1, 1000), DSP_OK);
  }
  uint64_t ids[3];
  double dist_m[3];
  int n = in.knn(in.ud, TIMES_SQUARE, 5000, 3, odd_only, NULL, ids, dist_m);
  assert_int_equal(n, 3);
  assert_int_equal(ids[0], 1);
  assert_int_equal(ids[1], 3);
  assert_int_equal(ids[2], 5);
  assert_true(dist_m[0] > 100 && dist_m[0] < 120); /* 0.001 deg of latitude: about 111 m */
  assert_true(dist_m[0] < dist_m[1] && dist_m[1] < dist_m[2]);
  /* removed drivers are gone; removing one twice is a no-op */
  in.remove(in.ud, 1);
  in.remove(in.ud, 1);
  n = in.knn(in.ud, TIMES_SQUARE, 5000, 1, odd_only, NULL, ids, dist_m);
  assert_int_equal(n, 1);
  assert_int_equal(ids[0], 3);
}

static void test_index_maps_invalid_input_to_dsp_einval(void **state) {
  dsp_index in = dsp_qt_index_iface(*state);
  assert_int_equal(in.upsert(in.ud, 7, (geo_latlng){91.0, 0.0}, 1, 1000), DSP_EINVAL);
  assert_int_equal(in.upsert(in.ud, 7, (geo_latlng){NAN, 0.0}, 1, 1000), DSP_EINVAL);
  uint64_t ids[1];
  double dist_m[1];
  assert_int_equal(in.knn(in.ud, TIMES_SQUARE, -1.0, 1, NULL, NULL, ids, dist_m), DSP_EINVAL);
  assert_int_equal(in.knn(in.ud, (geo_latlng){0.0, 200.0}, 100, 1, NULL, NULL, ids, dist_m),
                   DSP_EINVAL);
  /* nothing was inserted */
  assert_int_equal(geo_quadtree_count(dsp_qt_index_tree(*state)), 0);
}

/* An allocator that fails every call once armed. */
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

static void test_index_maps_libgeo_out_of_memory_to_dsp_enomem(void **state) {
  (void)state;
  geo_allocator a = {failing_malloc, failing_realloc, plain_free, NULL};
  geo_set_allocator(&a);
  dsp_qt_index *ix = NULL;
  g_fail = true;
  assert_int_equal(dsp_qt_index_new(&ix), DSP_ENOMEM);
  assert_null(ix);
  g_fail = false;
  assert_int_equal(dsp_qt_index_new(&ix), DSP_OK);
  dsp_index in = dsp_qt_index_iface(ix);
  /* the first insert makes the tree's first leaf storage: with every allocation failing it
   * cannot, and the index stays empty */
  g_fail = true;
  int rc = in.upsert(in.ud, 1, TIMES_SQUARE, 1, 1000);
  g_fail = false;
  assert_int_equal(rc, DSP_ENOMEM);
  assert_int_equal(geo_quadtree_count(dsp_qt_index_tree(ix)), 0);
  assert_int_equal(in.upsert(in.ud, 1, TIMES_SQUARE, 1, 1000), DSP_OK);
  assert_int_equal(geo_quadtree_count(dsp_qt_index_tree(ix)), 1);
  dsp_qt_index_free(ix);
  geo_set_allocator(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_index_knn_returns_nearest_acceptable_first, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_index_maps_invalid_input_to_dsp_einval, setup, teardown),
      cmocka_unit_test(test_index_maps_libgeo_out_of_memory_to_dsp_enomem),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
