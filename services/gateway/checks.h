/*
 * checks.h: small pure checks the gateway applies at its edges before acting (issue 13
 * item 5): whether a client's close frame is well formed (RFC 6455 7.4: a bad code is
 * answered with 1002), and whether the shard an offer or trip id names is in the shard
 * map (an id of a shard that is not there would be produced to a partition nobody
 * consumes: it is answered unknown_offer / invalid_state instead).
 *
 * Pure: no sockets, no state. Not a WebSocket implementation (lws is).
 */
#ifndef MRD_GATEWAY_CHECKS_H
#define MRD_GATEWAY_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway.h"

/* A close code a peer may send (RFC 6455 7.4.1 and the IANA registry): 1000-1003,
 * 1007-1014, 3000-4999. 1004-1006 and 1015 are reserved (never on the wire), everything
 * else below 3000 is unassigned, 5000 and up is invalid. */
bool gw_close_code_valid(uint16_t code);

/* Whether the payload of a close frame is acceptable: empty, or a valid code (2 bytes,
 * network order) followed by at most 123 bytes of reason. A 1-byte payload is not. */
bool gw_close_payload_valid(const uint8_t *payload, size_t len);

/* For a message that names a shard by its id (accept, decline: offer ids; arrived,
 * start, complete: trip ids): GW_OK when the shard is one of shards_in_map (bit k = shard
 * k), else the code to answer: GW_UNKNOWN_OFFER for offers, GW_INVALID_STATE for trips.
 * Other message types: GW_OK. */
gw_code gw_target_shard_code(gw_msg_type type, uint32_t shard, uint64_t shards_in_map);

#endif /* MRD_GATEWAY_CHECKS_H */
