/*
 * test_snapshot.c: graph snapshots. A written and reloaded graph answers every query as
 * the original did; truncated files, flipped bits, a wrong magic or version, and crafted
 * files whose checksum was fixed up after a bad index are refused with GEO_EFORMAT; random
 * mutations never crash the loader. The R-tree of road segments travels in the file: a
 * loaded graph snaps exactly as the original, and a corrupt R-tree blob is refused (or, if
 * its checksum was fixed up and it still passes every check, snapping stays safe).
 * SEED= replays the random parts.
 */
#define _POSIX_C_SOURCE 200809L
#include "graph_fixtures.h"

#include "geo/snap.h"
#include "geo/snapshot.h"

#include <math.h>
#include <unistd.h>

static char tmp_path[256];

static void make_tmp(void) {
  snprintf(tmp_path, sizeof tmp_path, "/tmp/meridian-test-snapshot-%ld.graph", (long)getpid());
}

static uint8_t *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = aligned_alloc(8, (*len + 7) & ~(size_t)7);
  assert_int_equal(fread(buf, 1, *len, f), *len);
  fclose(f);
  return buf;
}

static void write_all(const char *path, const uint8_t *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, len, f), len);
  fclose(f);
}

static geo_graph *graph_with_ch(void) {
  geo_graph *g = fx_random_graph(150, 150, true, true);
  assert_int_equal(geo_ch_build(g, NULL), GEO_OK);
  assert_int_equal(geo_graph_build_rtree(g), GEO_OK);
  geo_graph_set_source_tag(g, 0x1234567890abcdefULL);
  return g;
}

static void test_round_trip_gives_same_answers(void **state) {
  (void)state;
  fx_seed("test_round_trip_gives_same_answers");
  make_tmp();
  geo_graph *g = graph_with_ch();
  assert_int_equal(geo_snapshot_write(g, tmp_path), GEO_OK);
  geo_graph *h = NULL;
  assert_int_equal(geo_snapshot_load(tmp_path, &h), GEO_OK);
  assert_int_equal(geo_graph_node_count(h), geo_graph_node_count(g));
  assert_int_equal(geo_graph_arc_count(h), geo_graph_arc_count(g));
  assert_true(geo_ch_present(h));
  assert_int_equal(geo_ch_check(h), GEO_OK); /* the query layout is derived on load */
  assert_int_equal(geo_ch_check(NULL), GEO_EINVAL);
  assert_true(geo_graph_source_tag(h) == 0x1234567890abcdefULL);
  assert_true(geo_graph_top_speed_m_per_ms(h) == geo_graph_top_speed_m_per_ms(g));
  geo_graph_stats a = geo_graph_get_stats(g), b = geo_graph_get_stats(h);
  assert_memory_equal(&a, &b, sizeof a);
  geo_route_state *sg = NULL, *sh = NULL;
  assert_int_equal(geo_route_state_new(g, &sg), GEO_OK);
  assert_int_equal(geo_route_state_new(h, &sh), GEO_OK);
  uint32_t n = geo_graph_node_count(g);
  for (uint32_t s = 0; s < n; s += 3) {
    for (uint32_t t = 0; t < n; t += 2) {
      for (int algo = 0; algo < GEO_ROUTE_ALGO_COUNT; algo++) {
        geo_route_result x = {0}, y = {0};
        geo_err e1 = geo_route_nodes(sg, g, (geo_route_algo)algo, s, t, &x);
        geo_err e2 = geo_route_nodes(sh, h, (geo_route_algo)algo, s, t, &y);
        assert_int_equal(e1, e2);
        assert_int_equal(x.time_ms, y.time_ms);
        assert_true(x.length_m == y.length_m);
      }
    }
  }
  /* the R-tree came along: same snaps, from the loaded tree */
  for (int i = 0; i < 500; i++) {
    geo_latlng p = {40.69 + 0.07 * fx_unit(), -74.02 + 0.07 * fx_unit()};
    double bound = fx_below(2) ? INFINITY : 200 * fx_unit();
    geo_snap x, y;
    geo_err e1 = geo_graph_snap(g, p, bound, &x), e2 = geo_graph_snap(h, p, bound, &y);
    assert_int_equal(e1, e2);
    if (e1 != GEO_OK) continue;
    assert_int_equal(x.place.arc, y.place.arc);
    assert_true(x.place.frac == y.place.frac && x.dist_m == y.dist_m);
  }
  /* a read-only graph cannot be rebuilt */
  assert_int_equal(geo_ch_build(h, NULL), GEO_EINVAL);
  assert_int_equal(geo_graph_build_rtree(h), GEO_EINVAL);
  geo_route_state_free(sg);
  geo_route_state_free(sh);
  geo_graph_free(h);
  geo_graph_free(g);
  unlink(tmp_path);
}

static void test_calibration_survives_round_trip(void **state) {
  (void)state;
  fx_seed("test_calibration_survives_round_trip");
  make_tmp();
  geo_graph *g = fx_random_graph(40, 40, false, true);
  geo_graph_calibration cal;
  geo_graph_calibration_identity(&cal);
  cal.class_factor[GEO_ROAD_RESIDENTIAL] = 2.5;
  cal.hour_factor[1][3] = 0.75;
  cal.day_factor[2] = 1.25; /* Tuesday */
  geo_graph *c = NULL;
  assert_int_equal(geo_graph_calibrated(g, &cal, &c), GEO_OK);
  for (uint32_t a = 0; a < geo_graph_arc_count(g); a++) {
    double want = geo_graph_arc_time_ms(g, a) * cal.class_factor[geo_graph_arc_class(g, a)];
    assert_true(fabs(geo_graph_arc_time_ms(c, a) - want) <= 0.5);
  }
  assert_int_equal(geo_snapshot_write(c, tmp_path), GEO_OK);
  geo_graph *h = NULL;
  assert_int_equal(geo_snapshot_load(tmp_path, &h), GEO_OK);
  const geo_graph_calibration *hc = geo_graph_get_calibration(h);
  assert_true(hc->class_factor[GEO_ROAD_RESIDENTIAL] == 2.5);
  assert_true(geo_graph_eta_ms(h, 1000, 3, 0) == 750.0);  /* Sunday 03:00 */
  assert_true(geo_graph_eta_ms(h, 1000, 3, 2) == 1250.0); /* Tuesday 03:00 */
  assert_true(geo_graph_eta_ms(h, 1000, 3, 3) == 1000.0);
  assert_true(geo_graph_eta_ms(h, 1000, 24, 3) == 1000.0); /* out of range: no factor */
  geo_graph_free(h);
  geo_graph_free(c);
  geo_graph_free(g);
  unlink(tmp_path);
}

static void test_truncated_files_are_refused(void **state) {
  (void)state;
  fx_seed("test_truncated_files_are_refused");
  make_tmp();
  geo_graph *g = graph_with_ch();
  assert_int_equal(geo_snapshot_write(g, tmp_path), GEO_OK);
  size_t len = 0;
  uint8_t *buf = read_all(tmp_path, &len);
  size_t cuts[] = {0, 1, 63, 64, 100, len / 2, len - 8, len - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    write_all(tmp_path, buf, cuts[i]);
    geo_graph *h = NULL;
    geo_err e = geo_snapshot_load(tmp_path, &h);
    if (e != GEO_EFORMAT) fail_msg("cut at %zu of %zu: %s", cuts[i], len, geo_strerror(e));
    assert_null(h);
  }
  free(buf);
  geo_graph_free(g);
  unlink(tmp_path);
  geo_graph *h = NULL;
  assert_int_equal(geo_snapshot_load("/nonexistent/dir/x.graph", &h), GEO_EIO);
}

static void fix_crc(uint8_t *buf, size_t len);

static void test_flipped_bits_are_refused(void **state) {
  (void)state;
  fx_seed("test_flipped_bits_are_refused");
  geo_graph *g = graph_with_ch();
  make_tmp();
  assert_int_equal(geo_snapshot_write(g, tmp_path), GEO_OK);
  size_t len = 0;
  uint8_t *buf = read_all(tmp_path, &len);
  for (int i = 0; i < 300; i++) {
    size_t at = fx_below((uint32_t)len);
    uint8_t bit = (uint8_t)(1u << fx_below(8));
    buf[at] ^= bit;
    geo_graph *h = NULL;
    geo_err e = geo_snapshot_open_buffer(buf, len, &h);
    if (e != GEO_EFORMAT) fail_msg("bit %u of byte %zu flipped: %s", bit, at, geo_strerror(e));
    buf[at] ^= bit;
  }
  /* wrong magic and wrong version */
  geo_graph *h = NULL;
  buf[0] ^= 1;
  assert_int_equal(geo_snapshot_open_buffer(buf, len, &h), GEO_EFORMAT);
  buf[0] ^= 1;
  uint32_t version = GEO_SNAPSHOT_VERSION + 1;
  uint32_t saved;
  memcpy(&saved, buf + 8, 4);
  memcpy(buf + 8, &version, 4);
  fix_crc(buf, len); /* a well-formed file of another version */
  assert_int_equal(geo_snapshot_open_buffer(buf, len, &h), GEO_EFORMAT);
  memcpy(buf + 8, &saved, 4);
  fix_crc(buf, len);
  assert_int_equal(geo_snapshot_open_buffer(buf, len, &h), GEO_OK);
  geo_graph_free(h);
  free(buf);
  geo_graph_free(g);
  unlink(tmp_path);
}

/* Section table entry i: id at 64 + 24 i, offset at +8, size at +16. */
static uint8_t *section_of(uint8_t *buf, uint32_t id, uint64_t *size) {
  uint32_t ns;
  memcpy(&ns, buf + 24, 4);
  for (uint32_t i = 0; i < ns; i++) {
    uint32_t sid;
    uint64_t off;
    memcpy(&sid, buf + 64 + 24 * i, 4);
    memcpy(&off, buf + 64 + 24 * i + 8, 8);
    memcpy(size, buf + 64 + 24 * i + 16, 8);
    if (sid == id) return buf + off;
  }
  fail_msg("no section %u", id);
  return NULL;
}

static void fix_crc(uint8_t *buf, size_t len) {
  memset(buf + 28, 0, 4);
  uint32_t crc = geo_crc32(0, buf, len);
  memcpy(buf + 28, &crc, 4);
}

static void test_bad_indices_with_valid_checksum_are_refused(void **state) {
  (void)state;
  fx_seed("test_bad_indices_with_valid_checksum_are_refused");
  geo_graph *g = graph_with_ch();
  make_tmp();
  assert_int_equal(geo_snapshot_write(g, tmp_path), GEO_OK);
  size_t len = 0;
  uint8_t *orig = read_all(tmp_path, &len);
  uint8_t *buf = aligned_alloc(8, (len + 7) & ~(size_t)7);
  uint32_t n = geo_graph_node_count(g);
  struct {
    uint32_t section, index_u32, value;
    const char *what;
  } bad[] = {
      {6, 3, n + 7, "head out of range"},
      {4, 5, 0xffffff, "forward offset out of range"},
      {15, 0, 0xfffffff, "reverse arc out of range"},
      {10, 2, 0x7ffffffe, "twin out of range"},
      {17, 1, n, "rank out of range"},
      {19, 1, 0x7fffffff, "CH edge weight that does not add up"},
      {19, 2, 0x7ffffff0, "CH edge child out of range"},
      {12, 1, 0xfffffff, "shape offset out of range"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memcpy(buf, orig, len);
    uint64_t size;
    uint8_t *s = section_of(buf, bad[i].section, &size);
    assert_true((bad[i].index_u32 + 1) * 4 <= size);
    memcpy(s + 4 * bad[i].index_u32, &bad[i].value, 4);
    fix_crc(buf, len);
    geo_graph *h = NULL;
    geo_err e = geo_snapshot_open_buffer(buf, len, &h);
    if (e != GEO_EFORMAT) fail_msg("%s: accepted (%s)", bad[i].what, geo_strerror(e));
  }
  /* random words with the checksum fixed: refused or, if accepted, safe to query */
  geo_route_place all[8];
  for (int i = 0; i < 400; i++) {
    memcpy(buf, orig, len);
    size_t at = 64 + 4 * fx_below((uint32_t)((len - 64) / 4));
    uint32_t v = fx_below(4) == 0 ? (uint32_t)fx_rand() : fx_below(n + 3);
    memcpy(buf + at, &v, 4);
    fix_crc(buf, len);
    geo_graph *h = NULL;
    geo_err e = geo_snapshot_open_buffer(buf, len, &h);
    if (e != GEO_OK) {
      assert_int_equal(e, GEO_EFORMAT);
      continue;
    }
    geo_route_state *st = NULL;
    assert_int_equal(geo_route_state_new(h, &st), GEO_OK);
    uint32_t hn = geo_graph_node_count(h);
    for (int k = 0; k < 8; k++) all[k] = geo_route_place_node(fx_below(hn));
    for (int algo = 0; algo < GEO_ROUTE_ALGO_COUNT; algo++) {
      geo_route_result r;
      if (algo == GEO_ROUTE_CH && !geo_ch_present(h)) continue;
      geo_route(st, h, (geo_route_algo)algo, &all[0], &all[1], &r);
    }
    geo_snap sn;
    for (int k = 0; k < 4; k++)
      geo_graph_snap(h, (geo_latlng){40.69 + 0.07 * fx_unit(), -74.02 + 0.07 * fx_unit()}, INFINITY,
                     &sn);
    uint32_t times[8];
    geo_route_one_to_many(st, h, geo_ch_present(h), GEO_ROUTE_TO_SOURCE, &all[0], all, 8,
                          GEO_TIME_NONE, times, NULL);
    geo_route_state_free(st);
    geo_graph_free(h);
  }
  free(buf);
  free(orig);
  geo_graph_free(g);
  unlink(tmp_path);
}

static void test_corrupt_rtree_blob_is_refused_or_safe(void **state) {
  (void)state;
  fx_seed("test_corrupt_rtree_blob_is_refused_or_safe");
  geo_graph *g = graph_with_ch();
  make_tmp();
  assert_int_equal(geo_snapshot_write(g, tmp_path), GEO_OK);
  size_t len = 0;
  uint8_t *orig = read_all(tmp_path, &len);
  uint8_t *buf = aligned_alloc(8, (len + 7) & ~(size_t)7);
  uint64_t size = 0;
  size_t at0 = (size_t)(section_of(orig, 22, &size) - orig);
  assert_true(size >= 64);
  /* the blob's magic, version and endian mark set to garbage */
  for (uint32_t w = 0; w < 4; w++) {
    memcpy(buf, orig, len);
    uint32_t v = 0xfffffff0u;
    memcpy(buf + at0 + 4 * w, &v, 4);
    fix_crc(buf, len);
    geo_graph *h = NULL;
    assert_int_equal(geo_snapshot_open_buffer(buf, len, &h), GEO_EFORMAT);
    assert_null(h);
  }
  /* a graph that says it has an R-tree must carry one: flag kept, section cut to 0 bytes */
  memcpy(buf, orig, len);
  uint32_t ns;
  memcpy(&ns, buf + 24, 4);
  for (uint32_t i = 0; i < ns; i++) {
    uint32_t sid;
    memcpy(&sid, buf + 64 + 24 * i, 4);
    if (sid == 22) memset(buf + 64 + 24 * i + 16, 0, 8);
  }
  fix_crc(buf, len);
  geo_graph *h = NULL;
  assert_int_equal(geo_snapshot_open_buffer(buf, len, &h), GEO_EFORMAT);
  /* random words of the blob: refused, or accepted and every snap safe and on a real arc */
  int refused = 0;
  for (int i = 0; i < 600; i++) {
    memcpy(buf, orig, len);
    size_t at = at0 + 4 * fx_below((uint32_t)(size / 4));
    uint32_t v = fx_below(2) ? (uint32_t)fx_rand() : fx_below(1000);
    memcpy(buf + at, &v, 4);
    fix_crc(buf, len);
    h = NULL;
    geo_err e = geo_snapshot_open_buffer(buf, len, &h);
    if (e != GEO_OK) {
      assert_int_equal(e, GEO_EFORMAT);
      refused++;
      continue;
    }
    for (int k = 0; k < 8; k++) {
      geo_snap sn;
      geo_latlng p = {40.69 + 0.07 * fx_unit(), -74.02 + 0.07 * fx_unit()};
      if (geo_graph_snap(h, p, INFINITY, &sn) == GEO_OK) {
        assert_true(sn.place.arc < geo_graph_arc_count(h));
        assert_true(sn.place.frac >= 0 && sn.place.frac <= 1);
      }
    }
    geo_graph_free(h);
  }
  fprintf(stderr, "corrupt R-tree words: %d of 600 refused\n", refused);
  free(buf);
  free(orig);
  geo_graph_free(g);
  unlink(tmp_path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_gives_same_answers),
      cmocka_unit_test(test_calibration_survives_round_trip),
      cmocka_unit_test(test_truncated_files_are_refused),
      cmocka_unit_test(test_flipped_bits_are_refused),
      cmocka_unit_test(test_bad_indices_with_valid_checksum_are_refused),
      cmocka_unit_test(test_corrupt_rtree_blob_is_refused_or_safe),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
