/*
 * auth.c: the token policy of auth.h: sub shape, role with an endpoint, bounded lifetime,
 * and the verdict on an app's upgrade.
 */
#include "auth.h"

#include <string.h>

#include "mrd/err.h"
#include "mrd/proto.h"

gw_token_verdict gw_token_check(const char *sub, mrd_role role, int64_t lifetime_s,
                                int64_t max_lifetime_s) {
  if (!mrd_id_valid(sub)) return GW_TOKEN_BAD_SUB;
  if (role != MRD_ROLE_DRIVER && role != MRD_ROLE_RIDER && role != MRD_ROLE_OPS)
    return GW_TOKEN_BAD_ROLE;
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

gw_upgrade_verdict gw_upgrade_check(const char *path, const char *token, const char *secret,
                                    int64_t now_s, int64_t max_lifetime_s, gw_upgrade_claims *out,
                                    const char **why) {
  mrd_role want;
  gw_role role;
  *why = "not found";
  if (path && strcmp(path, "/v1/driver") == 0) {
    want = MRD_ROLE_DRIVER;
    role = GW_ROLE_DRIVER;
  } else if (path && strcmp(path, "/v1/rider") == 0) {
    want = MRD_ROLE_RIDER;
    role = GW_ROLE_RIDER;
  } else {
    return GW_UPGRADE_NOT_FOUND;
  }
  *why = "no token";
  if (!token || !*token) return GW_UPGRADE_UNAUTHORIZED;
  mrd_jwt_claims cl;
  int rc = mrd_jwt_verify(secret, strlen(secret), token, MRD_ROLE_ANY, now_s, &cl);
  if (rc) {
    *why = mrd_strerror(rc);
    return GW_UPGRADE_UNAUTHORIZED;
  }
  if (cl.role != want) { /* an ops token, or the other app's */
    *why = "role does not match the endpoint";
    return GW_UPGRADE_FORBIDDEN;
  }
  gw_token_verdict v = gw_token_check_claims(&cl, now_s, max_lifetime_s);
  if (v != GW_TOKEN_OK) {
    *why = gw_token_verdict_text(v);
    return v == GW_TOKEN_BAD_ROLE ? GW_UPGRADE_FORBIDDEN : GW_UPGRADE_UNAUTHORIZED;
  }
  out->role = role;
  memcpy(out->user, cl.sub, strlen(cl.sub) + 1); /* mrd_id_valid: at most 64 bytes */
  out->exp_s = cl.exp_s;
  return GW_UPGRADE_OK;
}
