/*
 * auth.c: the token policy of auth.h: sub shape, role with an endpoint, bounded lifetime.
 */
#include "auth.h"

#include "mrd/proto.h"

gw_token_verdict gw_token_check(const char *sub, mrd_role role, int64_t lifetime_s,
                                int64_t max_lifetime_s) {
  if (!mrd_id_valid(sub)) return GW_TOKEN_BAD_SUB;
  if (role != MRD_ROLE_DRIVER && role != MRD_ROLE_RIDER && role != MRD_ROLE_OPS) return GW_TOKEN_BAD_ROLE;
  if (lifetime_s > max_lifetime_s) return GW_TOKEN_TOO_LONG;
  if (lifetime_s <= 0) return GW_TOKEN_NO_LIFETIME;
  return GW_TOKEN_OK;
}

gw_token_verdict gw_token_check_claims(const mrd_jwt_claims *c, int64_t now_s,
                                       int64_t max_lifetime_s) {
  return gw_token_check(c->sub, c->role, mrd_jwt_lifetime_s(c, now_s), max_lifetime_s);
}

const char *gw_token_verdict_text(gw_token_verdict v) {
  switch (v) {
  case GW_TOKEN_OK: return "accepted";
  case GW_TOKEN_BAD_SUB: return "sub is not an id of [A-Za-z0-9_.:-], 1..64 bytes";
  case GW_TOKEN_BAD_ROLE: return "role must be driver, rider or ops";
  case GW_TOKEN_TOO_LONG: return "token lifetime above the maximum";
  case GW_TOKEN_NO_LIFETIME: return "token lifetime is not positive";
  }
  return "refused";
}
