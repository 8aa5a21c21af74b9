/* test_shardmap.c: the shard map as a value (mrd/shardmap.h): prefix boundaries, the tiling
 * check and its reasons, lookups, giving a range to a shard (splits and merges), and the
 * difference between two maps as moves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mrd/shardmap.h"

static void two_shards(mrd_shardmap *m) {
  mrd_shardmap_init(m);
  assert_int_equal(mrd_shardmap_add(m, "dr72", "~", 1), 0);
  assert_int_equal(mrd_shardmap_add(m, "", "dr72", 0), 0);
  assert_int_equal(mrd_shardmap_check(m, NULL, 0), 0);
}

static void test_prefix_end_carries_in_the_geohash_alphabet(void **st) {
  (void)st;
  char out[MRD_RANGE_KEY_MAX + 1];
  assert_int_equal(mrd_geohash_prefix_end("dr5r", out), 0);
  assert_string_equal(out, "dr5s");
  assert_int_equal(mrd_geohash_prefix_end("dr5z", out), 0);
  assert_string_equal(out, "dr6");
  assert_int_equal(mrd_geohash_prefix_end("9", out), 0);
  assert_string_equal(out, "b"); /* no 'a' in the alphabet */
  assert_int_equal(mrd_geohash_prefix_end("zz", out), 0);
  assert_string_equal(out, "~");
  assert_int_equal(mrd_geohash_prefix_end("", out), 0);
  assert_string_equal(out, "~");
  assert_int_equal(mrd_geohash_prefix_end("dra", out), MRD_EINVAL); /* 'a' is no geohash */
  assert_int_equal(mrd_geohash_prefix_end("~", out), MRD_EINVAL);
  assert_int_equal(mrd_geohash_prefix_end("0123456789bcdefg", out), MRD_EINVAL); /* 16 chars */
  assert_true(mrd_range_key_valid(""));
  assert_true(mrd_range_key_valid("~"));
  assert_false(mrd_range_key_valid("DR5R"));
  assert_false(mrd_range_key_valid("dr5r~"));
}

static void test_check_explains_gaps_overlaps_and_open_ends(void **st) {
  (void)st;
  char err[256];
  struct {
    const char *rows[3][2];
    int n;
    const char *reason;
  } bad[] = {
      {{{"", "dr5"}, {"dr6", "~"}}, 2, "a gap"},
      {{{"", "dr7"}, {"dr6", "~"}}, 2, "an overlap"},
      {{{"0", "dr7"}, {"dr7", "~"}}, 2, "not ''"},
      {{{"", "dr7"}, {"dr7", "zz"}}, 2, "not '~'"},
      {{{"", "dr7"}, {"dr7", "dr7"}, {"dr7", "~"}}, 3, "empty"},
      {{{"", "DR7"}, {"DR7", "~"}}, 2, "not a geohash prefix"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mrd_shardmap m;
    mrd_shardmap_init(&m);
    for (int j = 0; j < bad[i].n; j++)
      assert_int_equal(mrd_shardmap_add(&m, bad[i].rows[j][0], bad[i].rows[j][1], (uint32_t)j), 0);
    err[0] = '\0';
    assert_int_equal(mrd_shardmap_check(&m, err, sizeof err), MRD_EINVAL);
    if (!strstr(err, bad[i].reason))
      fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].reason);
    mrd_shardmap_close(&m);
  }
  mrd_shardmap m;
  mrd_shardmap_init(&m);
  assert_int_equal(mrd_shardmap_check(&m, err, sizeof err), MRD_EINVAL);
  assert_int_equal(mrd_shardmap_add(&m, "", "~", 64), 0);
  assert_int_equal(mrd_shardmap_check(&m, err, sizeof err), MRD_EINVAL);
  assert_non_null(strstr(err, "shard 64"));
  mrd_shardmap_close(&m);
}

static void test_lookup_finds_the_range_holding_a_string(void **st) {
  (void)st;
  mrd_shardmap m;
  two_shards(&m);
  assert_int_equal(mrd_shardmap_lookup(&m, "dr5ru7"), 0);
  assert_int_equal(mrd_shardmap_lookup(&m, "dr72"), 1);
  assert_int_equal(mrd_shardmap_lookup(&m, "dr71zzzz"), 0);
  assert_int_equal(mrd_shardmap_lookup(&m, ""), 0);
  assert_int_equal(mrd_shardmap_shards(&m), 3);
  mrd_shardmap_close(&m);
}

static void test_assign_splits_the_ranges_it_cuts_and_merges_neighbours(void **st) {
  (void)st;
  mrd_shardmap m;
  two_shards(&m);
  /* a piece inside shard 0's range: three ranges for shard 0's side */
  assert_int_equal(mrd_shardmap_assign(&m, "dr5r", "dr5s", -1, 2), 0);
  assert_int_equal(mrd_shardmap_check(&m, NULL, 0), 0);
  assert_int_equal(m.n, 4);
  assert_string_equal(m.r[1].start, "dr5r");
  assert_string_equal(m.r[1].end, "dr5s");
  assert_int_equal(m.r[1].shard, 2);
  /* across the border, only shard 1's part: [dr5s, dr72) stays 0, [dr72, dr73) -> 3 */
  assert_int_equal(mrd_shardmap_assign(&m, "dr5s", "dr73", 1, 3), 0);
  assert_int_equal(mrd_shardmap_check(&m, NULL, 0), 0);
  assert_int_equal(mrd_shardmap_lookup(&m, "dr5t"), 0);
  assert_int_equal(mrd_shardmap_lookup(&m, "dr72x"), 3);
  assert_int_equal(mrd_shardmap_lookup(&m, "dr73"), 1);
  /* giving the piece back merges it: 0 owns ['', dr72) again */
  assert_int_equal(mrd_shardmap_assign(&m, "dr5r", "dr5s", 2, 0), 0);
  assert_string_equal(m.r[0].start, "");
  assert_string_equal(m.r[0].end, "dr72");
  assert_int_equal(m.r[0].shard, 0);
  /* bad input leaves the map alone */
  size_t n = m.n;
  assert_int_equal(mrd_shardmap_assign(&m, "dr6", "dr5", -1, 1), MRD_EINVAL);
  assert_int_equal(mrd_shardmap_assign(&m, "dr5", "dr6", -1, 64), MRD_EINVAL);
  assert_int_equal(mrd_shardmap_assign(&m, "dr5!", "dr6", -1, 1), MRD_EINVAL);
  assert_int_equal(m.n, n);
  mrd_shardmap_close(&m);
}

static void test_diff_lists_each_change_of_owner_once(void **st) {
  (void)st;
  mrd_shardmap a, b;
  two_shards(&a);
  mrd_shardmap_init(&b);
  assert_int_equal(mrd_shardmap_copy(&b, &a), 0);
  mrd_shard_move *mv = NULL;
  size_t n = 99;
  assert_int_equal(mrd_shardmap_diff(&a, &b, &mv, &n), 0);
  assert_int_equal(n, 0);
  assert_null(mv);
  assert_int_equal(mrd_shardmap_assign(&b, "dr5r", "dr5s", -1, 2), 0);
  assert_int_equal(mrd_shardmap_assign(&b, "dr5s", "dr5t", -1, 2),
                   0); /* merges with the one before */
  assert_int_equal(mrd_shardmap_assign(&b, "dr75", "dr76", -1, 0), 0);
  assert_int_equal(mrd_shardmap_diff(&a, &b, &mv, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(mv[0].start, "dr5r");
  assert_string_equal(mv[0].end, "dr5t");
  assert_int_equal(mv[0].from, 0);
  assert_int_equal(mv[0].to, 2);
  assert_string_equal(mv[1].start, "dr75");
  assert_string_equal(mv[1].end, "dr76");
  assert_int_equal(mv[1].from, 1);
  assert_int_equal(mv[1].to, 0);
  assert_true(mrd_range_meets_prefix(mv[0].start, mv[0].end, "dr5s"));
  assert_true(mrd_range_meets_prefix(mv[0].start, mv[0].end, "dr5"));
  assert_false(mrd_range_meets_prefix(mv[0].start, mv[0].end, "dr5t"));
  free(mv);
  mrd_shardmap_close(&a);
  mrd_shardmap_close(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prefix_end_carries_in_the_geohash_alphabet),
      cmocka_unit_test(test_check_explains_gaps_overlaps_and_open_ends),
      cmocka_unit_test(test_lookup_finds_the_range_holding_a_string),
      cmocka_unit_test(test_assign_splits_the_ranges_it_cuts_and_merges_neighbours),
      cmocka_unit_test(test_diff_lists_each_change_of_owner_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
