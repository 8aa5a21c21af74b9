/*
 * auth.h: the gateway's token policy: which verified JWT claims may open a connection.
 * mrd_jwt_verify (services/common) proves a token authentic and unexpired; this file
 * decides what the gateway accepts beyond that: a `sub` that is a Meridian id (the ids of
 * schemas/kafka: [A-Za-z0-9_.:-], 1..64 bytes), a role with an endpoint (driver, rider, ops),
 * and a lifetime no longer than the configured maximum (MERIDIAN_GW_TOKEN_MAX_LIFETIME,
 * 24 h by default). `meridianctl token` calls the same function before it mints, so it
 * never prints a token the gateway would refuse. gw_upgrade_check puts it together for an
 * app's upgrade: the endpoint, mrd_jwt_verify, the role, the policy.
 *
 * Pure: no I/O, the secret and the time come in as arguments. Not a JWT library: it verifies
 * through services/common's mrd_jwt and otherwise sees claims only.
 */
#ifndef MRD_GATEWAY_AUTH_H
#define MRD_GATEWAY_AUTH_H

#include <stdint.h>

#include "gateway.h"
#include "mrd/jwt.h"

#define GW_TOKEN_MAX_LIFETIME_DEFAULT_S 86400 /* 24 h */

/* Why a token is refused (GW_TOKEN_OK = accepted). */
typedef enum gw_token_verdict {
  GW_TOKEN_OK = 0,
  GW_TOKEN_BAD_SUB,    /* sub is not a Meridian id */
  GW_TOKEN_BAD_ROLE,   /* the role has no endpoint here (unknown) */
  GW_TOKEN_TOO_LONG,   /* lifetime above the maximum */
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

/* The answer to an app's WebSocket upgrade (the values are the HTTP statuses). */
typedef enum gw_upgrade_verdict {
  GW_UPGRADE_OK = 0,
  GW_UPGRADE_UNAUTHORIZED = 401, /* no token, a token mrd_jwt_verify refuses, or the policy */
  GW_UPGRADE_FORBIDDEN = 403,    /* a valid token of another role than the endpoint's */
  GW_UPGRADE_NOT_FOUND = 404     /* not /v1/driver or /v1/rider */
} gw_upgrade_verdict;

/* The claims an accepted app upgrade carries for the connection's life. */
typedef struct gw_upgrade_claims {
  gw_role role;              /* the endpoint's */
  char user[MRD_ID_MAX + 1]; /* the token's sub (a Meridian id) */
  int64_t exp_s;             /* the token's exp: the connection is closed 4001 then */
} gw_upgrade_claims;

/* Decide an upgrade to path ("/v1/driver" or "/v1/rider") with token (the bearer token or
 * the token= argument; NULL or "" when none) at now_s: the signature and expiry
 * (mrd_jwt_verify with secret), the role against the endpoint, then gw_token_check_claims
 * with max_lifetime_s. Returns GW_UPGRADE_OK with *out, or the refusal with *why (a static
 * sentence for the log). Pure: the secret and the time are arguments. */
gw_upgrade_verdict gw_upgrade_check(const char *path, const char *token, const char *secret,
                                    int64_t now_s, int64_t max_lifetime_s, gw_upgrade_claims *out,
                                    const char **why);

#endif /* MRD_GATEWAY_AUTH_H */
