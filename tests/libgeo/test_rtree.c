/* test_rtree.c: the segment R-tree against a linear scan (nearest with distance, projected
 * point and fraction; range), for bulk-loaded and insert-built trees and for trees opened
 * from a blob; blob validation against truncation and corruption; out-of-memory at every
 * allocation. Random tests print their seed; SEED= replays. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "geo/geometry.h"
#include "geo/rtree.h"
#include "testutil.h"

static geo_segment random_segment(uint64_t id, bool near_antimeridian) {
  geo_latlng a;
  if (near_antimeridian)
    a = (geo_latlng){tu_uniform(-10, 10),
                     tu_below(2) ? tu_uniform(179.9, 180) : tu_uniform(-180, -179.9)};
  else
    a = (geo_latlng){tu_uniform(40.70, 40.88), tu_uniform(-74.02, -73.91)};
  geo_latlng b = geo_destination(a, tu_uniform(0, 360), tu_uniform(0, 300));
  if (tu_below(50) == 0) b = a; /* degenerate: a point */
  if (fabs(a.lng - b.lng) > 180) b = a;
  return (geo_segment){a, b, id};
}

static bool odd_filter(uint64_t id, void *ud) {
  (void)ud;
  return id % 2 == 1;
}

static bool brute_nearest(const geo_segment *segs, size_t n, geo_latlng p, double max_d, bool odd,
                          geo_rtree_hit *out) {
  bool found = false;
  for (size_t i = 0; i < n; i++) {
    if (odd && segs[i].id % 2 != 1) continue;
    geo_rtree_hit h;
    h.id = segs[i].id;
    h.dist_m = geo_project_on_segment(p, segs[i].a, segs[i].b, &h.proj, &h.frac);
    if (h.dist_m > max_d) continue;
    if (!found || h.dist_m < out->dist_m || (h.dist_m == out->dist_m && h.id < out->id)) {
      *out = h;
      found = true;
    }
  }
  return found;
}

typedef struct idset {
  uint64_t *ids;
  size_t n, cap, stop_after;
} idset;

static bool collect(const geo_segment *s, void *ud) {
  idset *c = ud;
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 64;
    c->ids = realloc(c->ids, c->cap * sizeof *c->ids);
  }
  c->ids[c->n++] = s->id;
  return c->stop_after == 0 || c->n < c->stop_after;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static bool seg_meets(const geo_segment *s, geo_bbox q) {
  double la0 = fmin(s->a.lat, s->b.lat), la1 = fmax(s->a.lat, s->b.lat);
  double lo0 = fmin(s->a.lng, s->b.lng), lo1 = fmax(s->a.lng, s->b.lng);
  if (la1 < q.min_lat || la0 > q.max_lat) return false;
  if (q.min_lng <= q.max_lng) return lo1 >= q.min_lng && lo0 <= q.max_lng;
  return lo1 >= q.min_lng || lo0 <= q.max_lng;
}

static void check_against_scan(const geo_rtree *t, const geo_segment *segs, size_t n, int nq) {
  assert_int_equal(geo_rtree_count(t), n);
  idset got = {0}, want = {0};
  for (int k = 0; k < nq; k++) {
    bool am = tu_below(5) == 0;
    geo_latlng p = am ? (geo_latlng){tu_uniform(-10, 10), tu_below(2) ? tu_uniform(179.8, 180)
                                                                      : tu_uniform(-180, -179.8)}
                      : (geo_latlng){tu_uniform(40.69, 40.89), tu_uniform(-74.03, -73.90)};
    if (tu_below(5) == 0) p = segs[tu_below(n)].a; /* exactly on an endpoint: ties */
    bool odd = tu_below(2) == 0;
    double max_d = tu_below(3) == 0 ? tu_uniform(0, 200) : INFINITY;
    geo_rtree_hit h = {0}, w = {0};
    geo_err e = geo_rtree_nearest(t, p, max_d, odd ? odd_filter : NULL, NULL, &h);
    bool found = brute_nearest(segs, n, p, max_d, odd, &w);
    assert_int_equal(e, found ? GEO_OK : GEO_ENOTFOUND);
    if (found) {
      assert_int_equal(h.id, w.id);
      assert_true(h.dist_m == w.dist_m);
      assert_true(h.frac == w.frac && h.proj.lat == w.proj.lat && h.proj.lng == w.proj.lng);
      assert_true(h.frac >= 0 && h.frac <= 1);
    }
    /* range */
    double dh = tu_uniform(0, 0.01), dw = tu_uniform(0, 0.01);
    geo_bbox q = {p.lat - dh, p.lng - dw, p.lat + dh, p.lng + dw};
    if (q.min_lng < -180) q.min_lng += 360;
    if (q.max_lng > 180) q.max_lng -= 360;
    got.n = want.n = 0;
    got.stop_after = 0;
    size_t v = geo_rtree_range(t, q, collect, &got);
    for (size_t i = 0; i < n; i++)
      if (seg_meets(&segs[i], q)) collect(&segs[i], &want);
    assert_int_equal(v, got.n);
    assert_int_equal(got.n, want.n);
    if (got.n) {
      qsort(got.ids, got.n, sizeof *got.ids, cmp_u64);
      qsort(want.ids, want.n, sizeof *want.ids, cmp_u64);
      assert_memory_equal(got.ids, want.ids, got.n * sizeof *got.ids);
    }
    if (want.n > 3) { /* early stop */
      got.n = 0;
      got.stop_after = 3;
      assert_int_equal(geo_rtree_range(t, q, collect, &got), 3);
    }
  }
  free(got.ids);
  free(want.ids);
}

static geo_segment *make_segments(size_t n) {
  geo_segment *segs = malloc(n * sizeof *segs);
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && tu_below(20) == 0) { /* a duplicate segment with another id */
      segs[i] = segs[tu_below(i)];
      segs[i].id = i;
    } else {
      segs[i] = random_segment(i, tu_below(10) == 0);
    }
  }
  return segs;
}

static void test_rtree_bulk_load_matches_linear_scan(void **state) {
  (void)state;
  tu_seed("rtree_bulk");
  size_t n = 30000;
  geo_segment *segs = make_segments(n);
  geo_rtree *t;
  assert_int_equal(geo_rtree_bulk_load(segs, n, &t), GEO_OK);
  check_against_scan(t, segs, n, 1500);
  geo_rtree_free(t);
  free(segs);
}

static void test_rtree_inserts_match_linear_scan_also_after_bulk_load(void **state) {
  (void)state;
  tu_seed("rtree_insert");
  size_t n = 20000;
  geo_segment *segs = make_segments(n);
  geo_rtree *t;
  assert_int_equal(geo_rtree_new(&t), GEO_OK);
  for (size_t i = 0; i < n; i++) assert_int_equal(geo_rtree_insert(t, &segs[i]), GEO_OK);
  check_against_scan(t, segs, n, 1000);
  geo_rtree_free(t);
  /* half bulk-loaded, half inserted */
  assert_int_equal(geo_rtree_bulk_load(segs, n / 2, &t), GEO_OK);
  for (size_t i = n / 2; i < n; i++) assert_int_equal(geo_rtree_insert(t, &segs[i]), GEO_OK);
  check_against_scan(t, segs, n, 1000);
  geo_rtree_free(t);
  free(segs);
}

static void test_rtree_blob_round_trip_answers_the_same(void **state) {
  (void)state;
  tu_seed("rtree_blob");
  size_t n = 5000;
  geo_segment *segs = make_segments(n);
  geo_rtree *t, *r;
  assert_int_equal(geo_rtree_new(&t), GEO_OK);
  for (size_t i = 0; i < n; i++) assert_int_equal(geo_rtree_insert(t, &segs[i]), GEO_OK);
  size_t len = geo_rtree_blob_size(t);
  uint64_t *buf = malloc(len + 8);
  assert_int_equal(geo_rtree_write_blob(t, buf, len - 1), GEO_ERANGE);
  assert_int_equal(geo_rtree_write_blob(t, (char *)buf + 1, len), GEO_EINVAL);
  assert_int_equal(geo_rtree_write_blob(t, buf, len), GEO_OK);
  assert_int_equal(geo_rtree_open_blob(buf, len, &r), GEO_OK);
  check_against_scan(r, segs, n, 500);
  geo_segment s = segs[0];
  assert_int_equal(geo_rtree_insert(r, &s), GEO_EINVAL); /* read-only */
  geo_rtree_free(r);
  geo_rtree_free(t);
  /* an empty tree round-trips too */
  assert_int_equal(geo_rtree_new(&t), GEO_OK);
  len = geo_rtree_blob_size(t);
  assert_int_equal(geo_rtree_write_blob(t, buf, len), GEO_OK);
  assert_int_equal(geo_rtree_open_blob(buf, len, &r), GEO_OK);
  geo_rtree_hit h;
  assert_int_equal(geo_rtree_nearest(r, (geo_latlng){0, 0}, INFINITY, NULL, NULL, &h),
                   GEO_ENOTFOUND);
  geo_rtree_free(r);
  geo_rtree_free(t);
  free(buf);
  free(segs);
}

static bool count_all(const geo_segment *s, void *ud) {
  (void)s;
  ++*(size_t *)ud;
  return true;
}

static void test_rtree_open_blob_rejects_truncated_and_corrupt_blobs(void **state) {
  (void)state;
  tu_seed("rtree_blob_corrupt");
  size_t n = 300;
  geo_segment *segs = make_segments(n);
  geo_rtree *t, *r;
  assert_int_equal(geo_rtree_bulk_load(segs, n, &t), GEO_OK);
  size_t len = geo_rtree_blob_size(t);
  uint64_t *good = malloc(len), *bad = malloc(len);
  assert_int_equal(geo_rtree_write_blob(t, good, len), GEO_OK);
  for (size_t cut = 0; cut < len; cut++)
    assert_int_equal(geo_rtree_open_blob(good, cut, &r), GEO_EFORMAT);
  assert_int_equal(geo_rtree_open_blob(NULL, len, &r), GEO_EINVAL);
  size_t accepted = 0;
  for (int k = 0; k < 20000; k++) {
    memcpy(bad, good, len);
    int flips = 1 + (int)tu_below(4);
    for (int f = 0; f < flips; f++)
      ((unsigned char *)bad)[tu_below(len)] ^= (unsigned char)(1u << tu_below(8));
    geo_err e = geo_rtree_open_blob(bad, len, &r);
    assert_true(e == GEO_OK || e == GEO_EFORMAT);
    if (e == GEO_OK) { /* a flip in a box or coordinate may be valid: it must still be safe */
      accepted++;
      geo_rtree_hit h;
      geo_rtree_nearest(r, (geo_latlng){40.8, -73.95}, INFINITY, NULL, NULL, &h);
      size_t c = 0;
      geo_rtree_range(r, (geo_bbox){-90, -180, 90, 180}, count_all, &c);
      geo_rtree_free(r);
    }
  }
  fprintf(stderr, "corrupt blobs: %zu of 20000 still valid (flips in coordinates)\n", accepted);
  free(good);
  free(bad);
  geo_rtree_free(t);
  free(segs);
}

static void test_rtree_rejects_bad_arguments(void **state) {
  (void)state;
  geo_rtree *t;
  assert_int_equal(geo_rtree_new(NULL), GEO_EINVAL);
  assert_int_equal(geo_rtree_bulk_load(NULL, 3, &t), GEO_EINVAL);
  geo_segment bad = {{0, 179}, {0, -179}, 1}; /* across the antimeridian */
  assert_int_equal(geo_rtree_bulk_load(&bad, 1, &t), GEO_EINVAL);
  assert_int_equal(geo_rtree_new(&t), GEO_OK);
  assert_int_equal(geo_rtree_insert(t, &bad), GEO_EINVAL);
  bad = (geo_segment){{NAN, 0}, {0, 0}, 1};
  assert_int_equal(geo_rtree_insert(t, &bad), GEO_EINVAL);
  geo_rtree_hit h;
  assert_int_equal(geo_rtree_nearest(t, (geo_latlng){0, 0}, INFINITY, NULL, NULL, &h),
                   GEO_ENOTFOUND);
  assert_int_equal(geo_rtree_nearest(t, (geo_latlng){95, 0}, INFINITY, NULL, NULL, &h), GEO_EINVAL);
  geo_segment s = {{40.7, -74.0}, {40.7, -73.99}, 7};
  assert_int_equal(geo_rtree_insert(t, &s), GEO_OK);
  assert_int_equal(geo_rtree_nearest(t, (geo_latlng){40.701, -73.995}, INFINITY, NULL, NULL, &h),
                   GEO_OK);
  assert_int_equal(h.id, 7);
  assert_true(fabs(h.frac - 0.5) < 1e-9);
  assert_true(fabs(h.dist_m - 111.2) < 0.5); /* 0.001 degree of latitude */
  assert_int_equal(geo_rtree_nearest(t, (geo_latlng){40.701, -73.995}, 100.0, NULL, NULL, &h),
                   GEO_ENOTFOUND);
  assert_int_equal(geo_rtree_range(t, (geo_bbox){1, 0, 0, 1}, count_all, NULL), 0);
  geo_rtree_free(t);
  geo_rtree_free(NULL);
}

static void test_rtree_out_of_memory_at_every_allocation_leaves_it_valid(void **state) {
  (void)state;
  uint64_t seed = tu_seed("rtree_oom");
  size_t n = 400;
  geo_segment *segs = make_segments(n);
  for (long fail = 1;; fail++) {
    tu_alloc_install(fail, 0);
    geo_rtree *t = NULL;
    geo_err e = geo_rtree_bulk_load(segs, n, &t);
    long calls = tu_a.calls;
    if (e == GEO_OK)
      geo_rtree_free(t);
    else
      assert_int_equal(e, GEO_ENOMEM);
    assert_int_equal(tu_a.live, 0);
    tu_alloc_restore();
    if (calls < fail) break;
  }
  long total = 0;
  for (long fail = 1;; fail++) {
    tu_rng_state = seed;
    tu_alloc_install(fail, 0);
    geo_rtree *t = NULL;
    geo_err e = geo_rtree_new(&t);
    if (e != GEO_OK) {
      assert_int_equal(e, GEO_ENOMEM);
      assert_int_equal(tu_a.live, 0);
      tu_alloc_restore();
      continue;
    }
    size_t inserted = 0;
    geo_segment *in = malloc(n * sizeof *in);
    for (size_t i = 0; i < n; i++) {
      e = geo_rtree_insert(t, &segs[i]);
      if (e == GEO_OK)
        in[inserted++] = segs[i];
      else
        assert_int_equal(e, GEO_ENOMEM);
    }
    total = tu_a.calls;
    tu_alloc_disarm();
    check_against_scan(t, in, inserted, 30);
    geo_rtree_free(t);
    free(in);
    assert_int_equal(tu_a.live, 0);
    tu_alloc_restore();
    if (total < fail) break;
  }
  assert_true(total > 3);
  free(segs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rtree_rejects_bad_arguments),
      cmocka_unit_test(test_rtree_bulk_load_matches_linear_scan),
      cmocka_unit_test(test_rtree_inserts_match_linear_scan_also_after_bulk_load),
      cmocka_unit_test(test_rtree_blob_round_trip_answers_the_same),
      cmocka_unit_test(test_rtree_open_blob_rejects_truncated_and_corrupt_blobs),
      cmocka_unit_test(test_rtree_out_of_memory_at_every_allocation_leaves_it_valid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
