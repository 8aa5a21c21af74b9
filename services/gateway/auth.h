/*
 * auth.h: the gateway's token policy: which verified JWT claims may open a connection.
 * mrd_jwt_verify (services/common) proves a token authentic and unexpired; this file
 * decides what the gateway accepts beyond that: a `sub` that is a Meridian id (the ids of
 * schemas/kafka: [A-Za-z0-9_.:-], 1..64 bytes), a role with an endpoint (driver, rider, ops),
 * and a lifetime no longer than the configured maximum (MERIDIAN_GW_TOKEN_MAX_LIFETIME,
 * 24 h by default). `meridianctl token` calls the same function before it mints, so it
 * never prints a token the gateway would refuse.
 *
 * Pure: no I/O, time comes in as an argument. Not a JWT library: it sees claims only.
 */
#ifndef MRD_GATEWAY_AUTH_H
#define MRD_GATEWAY_AUTH_H

#include <stdint.h>

#include "mrd/jwt.h"

#define GW_TOKEN_MAX_LIFETIME_DEFAULT_S 86400 /* 24 h */

/* Why a token is refused (GW_TOKEN_OK = accepted). */
typedef enum gw_token_verdict {
  GW_TOKEN_OK = 0,
  GW_TOKEN_BAD_SUB,   /* sub is not a Meridian id */
  GW_TOKEN_BAD_ROLE,  /* the role has no endpoint here (unknown) */
  GW_TOKEN_TOO_LONG,  /* lifetime above the maximum */
  GW_TOKEN_NO_LIFETIME /* lifetime <= 0 (already expired, or exp before iat) */
} gw_token_verdict;

/* The policy on a token's parts: sub, role, and its lifetime in seconds
 * (mrd_jwt_lifetime_s, or the ttl a minter is asked for) against max_lifetime_s (> 0).
 * Returns GW_TOKEN_OK or the first reason to refuse, in the order of the enum. */
gw_token_verdict gw_token_check(const char *sub, mrd_role role, int64_t lifetime_s,
                                int64_t max_lifetime_s);

/* gw_token_check on verified claims at now_s. */
gw_token_verdict gw_token_check_claims(const mrd_jwt_claims *c, int64_t now_s,
                                       int64_t max_lifetime_s);

/* A short English reason for a verdict ("token lifetime above the maximum", ...). */
const char *gw_token_verdict_text(gw_token_verdict v);

#endif /* MRD_GATEWAY_AUTH_H */
