/*
 * test_proto_ids.c: the shapes of user, request, offer and trip ids (mrd/proto.h), as a
 * table of inputs and expected answers, and the formatting of offer and trip ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mrd/proto.h"

static void test_id_valid_accepts_only_the_documented_alphabet(void **state) {
  (void)state;
  static const struct {
    const char *id;
    bool ok;
  } table[] = {
      {"a", true},
      {"drv-42", true},
      {"A.b:c_d-9", true},
      {"", false},
      {"has space", false},
      {"slash/no", false},
      {"caf\xc3\xa9", false},
      {"0123456789012345678901234567890123456789012345678901234567890123", true},   /* 64 */
      {"01234567890123456789012345678901234567890123456789012345678901234", false}, /* 65 */
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (mrd_id_valid(table[i].id) != table[i].ok) fail_msg("id '%s'", table[i].id);
  }
  assert_false(mrd_id_valid(NULL));
}

static void test_sharded_ids_name_their_shard(void **state) {
  (void)state;
  static const struct {
    const char *id;
    bool ok;
    uint32_t shard;
  } table[] = {
      {"t0-a", true, 0},         {"t1-abc", true, 1},  {"t63-x", true, 63}, {"t64-x", false, 0},
      {"t01-x", false, 0},       {"t-x", false, 0},    {"t1x", false, 0},   {"t1-", false, 0},
      {"t1-a b", false, 0},      {"t123-x", false, 0}, {"o1-a", false, 0},  {"T1-a", false, 0},
      {"t9-a.b:c_d-e", true, 9}, {"", false, 0},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    uint32_t shard = 999;
    bool ok = mrd_trip_id_shard(table[i].id, &shard);
    if (ok != table[i].ok) fail_msg("trip id '%s'", table[i].id);
    assert_int_equal(shard, ok ? table[i].shard : 999);
  }
  uint32_t s = 0;
  assert_true(mrd_offer_id_shard("o12-q", &s));
  assert_int_equal(s, 12);
  assert_false(mrd_offer_id_shard("t12-q", &s));
  assert_false(mrd_trip_id_shard(NULL, &s));
  assert_true(mrd_trip_id_shard("t2-z", NULL));
  char longid[80];
  memset(longid, 'a', sizeof longid);
  memcpy(longid, "t1-", 3);
  longid[64] = '\0'; /* 64 characters: fine */
  assert_true(mrd_trip_id_shard(longid, NULL));
  longid[64] = 'a';
  longid[65] = '\0';
  assert_false(mrd_trip_id_shard(longid, NULL));
}

static void test_format_makes_ids_that_parse_back(void **state) {
  (void)state;
  char buf[MRD_ID_MAX + 1];
  uint32_t shard;
  assert_int_equal(mrd_trip_id_format(17, "abc-1", buf, sizeof buf), MRD_PROTO_OK);
  assert_string_equal(buf, "t17-abc-1");
  assert_true(mrd_trip_id_shard(buf, &shard) && shard == 17);
  assert_int_equal(mrd_offer_id_format(0, "x", buf, sizeof buf), MRD_PROTO_OK);
  assert_string_equal(buf, "o0-x");
  assert_int_equal(mrd_offer_id_format(64, "x", buf, sizeof buf), MRD_PROTO_EINVAL);
  assert_int_equal(mrd_offer_id_format(1, "", buf, sizeof buf), MRD_PROTO_EINVAL);
  assert_int_equal(mrd_offer_id_format(1, "a b", buf, sizeof buf), MRD_PROTO_EINVAL);
  char small[4];
  assert_int_equal(mrd_offer_id_format(1, "abc", small, sizeof small), MRD_PROTO_ERANGE);
  char suffix[62];
  memset(suffix, 'z', 61);
  suffix[61] = '\0'; /* "t1-" + 61 = 64 */
  assert_int_equal(mrd_trip_id_format(1, suffix, buf, sizeof buf), MRD_PROTO_OK);
  assert_int_equal(mrd_trip_id_format(10, suffix, buf, sizeof buf), MRD_PROTO_ERANGE);
}

static void test_error_codes_are_the_protocol_ones(void **state) {
  (void)state;
  assert_true(mrd_error_code_valid("unknown_offer"));
  assert_true(mrd_error_code_valid("invalid_state"));
  assert_false(mrd_error_code_valid("Unknown_offer"));
  assert_false(mrd_error_code_valid(""));
  assert_false(mrd_error_code_valid(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_id_valid_accepts_only_the_documented_alphabet),
      cmocka_unit_test(test_sharded_ids_name_their_shard),
      cmocka_unit_test(test_format_makes_ids_that_parse_back),
      cmocka_unit_test(test_error_codes_are_the_protocol_ones),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
