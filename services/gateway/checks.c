/*
 * checks.c: the close-frame and target-shard checks of checks.h.
 */
#include "checks.h"

bool gw_close_code_valid(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

bool gw_close_payload_valid(const uint8_t *payload, size_t len) {
  if (len == 0) return true;
  if (len == 1 || len > 125) return false;
  return gw_close_code_valid((uint16_t)(payload[0] << 8 | payload[1]));
}

gw_code gw_target_shard_code(gw_msg_type type, uint32_t shard, uint64_t shards_in_map) {
  bool known = shard < 64 && (shards_in_map & (UINT64_C(1) << shard));
  switch (type) {
  case GW_MSG_ACCEPT:
  case GW_MSG_DECLINE: return known ? GW_OK : GW_UNKNOWN_OFFER;
  case GW_MSG_ARRIVED:
  case GW_MSG_START:
  case GW_MSG_COMPLETE: return known ? GW_OK : GW_INVALID_STATE;
  default: return GW_OK;
  }
}
