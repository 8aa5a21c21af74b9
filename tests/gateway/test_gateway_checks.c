/*
 * test_gateway_checks.c: close-frame validity (answered 1002 when bad) and the check that an
 * offer or trip id names a shard of the map (checks.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "checks.h"

static void test_close_codes(void **state) {
  (void)state;
  static const struct {
    uint16_t code;
    bool valid;
  } rows[] = {{0, false},   {999, false},  {1000, true},  {1001, true},  {1002, true},
              {1003, true}, {1004, false}, {1005, false}, {1006, false}, {1007, true},
              {1011, true}, {1014, true},  {1015, false}, {1016, false}, {2999, false},
              {3000, true}, {4000, true},  {4999, true},  {5000, false}, {65535, false}};
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
    if (gw_close_code_valid(rows[i].code) != rows[i].valid) fail_msg("code %u", rows[i].code);
}

static void test_close_payloads(void **state) {
  (void)state;
  const uint8_t normal[] = {0x03, 0xe8, 'b', 'y', 'e'}, bad[] = {0x03, 0xed}, big[] = {0x13, 0x88};
  assert_true(gw_close_payload_valid(NULL, 0));
  assert_true(gw_close_payload_valid(normal, sizeof normal));
  assert_true(gw_close_payload_valid(normal, 2));
  assert_false(gw_close_payload_valid(normal, 1));       /* a lone byte is no code */
  assert_false(gw_close_payload_valid(bad, sizeof bad)); /* 1005 */
  assert_false(gw_close_payload_valid(big, sizeof big)); /* 5000 */
  uint8_t long_reason[126] = {0x03, 0xe8};
  assert_false(gw_close_payload_valid(long_reason, sizeof long_reason)); /* > 125 */
  assert_true(gw_close_payload_valid(long_reason, 125));
}

/* The default map has shards 0 and 1: o5-x and t63-x name nothing. */
static void test_target_shard_must_be_in_the_map(void **state) {
  (void)state;
  uint64_t map = 0x3;
  assert_int_equal(gw_target_shard_code(GW_MSG_ACCEPT, 0, map), GW_OK);
  assert_int_equal(gw_target_shard_code(GW_MSG_DECLINE, 1, map), GW_OK);
  assert_int_equal(gw_target_shard_code(GW_MSG_ACCEPT, 5, map), GW_UNKNOWN_OFFER);
  assert_int_equal(gw_target_shard_code(GW_MSG_DECLINE, 5, map), GW_UNKNOWN_OFFER);
  assert_int_equal(gw_target_shard_code(GW_MSG_COMPLETE, 63, map), GW_INVALID_STATE);
  assert_int_equal(gw_target_shard_code(GW_MSG_ARRIVED, 2, map), GW_INVALID_STATE);
  assert_int_equal(gw_target_shard_code(GW_MSG_START, 64, UINT64_MAX), GW_INVALID_STATE);
  assert_int_equal(gw_target_shard_code(GW_MSG_START, 63, UINT64_MAX), GW_OK);
  assert_int_equal(gw_target_shard_code(GW_MSG_LOCATION, 9, map), GW_OK);
  assert_int_equal(gw_target_shard_code(GW_MSG_REQUEST, 9, 0), GW_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_close_codes),
      cmocka_unit_test(test_close_payloads),
      cmocka_unit_test(test_target_shard_must_be_in_the_map),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
