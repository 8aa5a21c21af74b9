/*
 * jwt.h: minting and verifying the HS256 JSON Web Tokens that authenticate Meridian's
 * drivers, riders and operators (claims `sub`, `role`, `exp`, plus `iat` when minted).
 *
 * Built on OpenSSL's HMAC-SHA256 and CRYPTO_memcmp (constant-time) with jansson for the
 * JSON, not on libjwt: Debian 12's libjwt 1.10.2 has no claim validation (jwt_valid came
 * in 1.12), no injectable clock for `exp`, and decides the algorithm from the token's own
 * header, so we would re-check alg, exp and role by hand around it anyway. The whole
 * verifier is ~200 lines here, each rejection under unit test.
 * Verification is strict: the header's alg must be exactly "HS256" (`none`, HS384, RS256
 * ... are refused before the signature is looked at), the signature must match, `exp` must
 * be in the future of the caller's `now_s`, `nbf` (if present) in the past, and `role` one
 * of driver|rider|ops (and the one expected, if any). Claims are read only after the
 * signature matched. This is not a general JOSE library: no JWE, no key sets, no other alg.
 */
#ifndef MRD_JWT_H
#define MRD_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The roles a token can carry. MRD_ROLE_ANY is only an "expected" value for verify. */
typedef enum mrd_role {
  MRD_ROLE_ANY = 0,
  MRD_ROLE_DRIVER = 1,
  MRD_ROLE_RIDER = 2,
  MRD_ROLE_OPS = 3
} mrd_role;

#define MRD_JWT_MAX_SUB 128    /* bytes of sub, including the NUL */
#define MRD_JWT_MAX_TOKEN 4096 /* longer tokens are refused as malformed */

/* The verified claims. */
typedef struct mrd_jwt_claims {
  char sub[MRD_JWT_MAX_SUB]; /* subject: the driver, rider or operator id */
  mrd_role role;
  int64_t exp_s; /* expiry, Unix seconds */
  bool has_iat;  /* the token carries `iat` */
  int64_t iat_s; /* issued at, Unix seconds (0 without iat) */
} mrd_jwt_claims;

/* A token's lifetime in seconds: exp - iat, or exp - now_s when it has no iat (what is
 * left of it). A token whose iat lies in the future counts from now_s instead, so a
 * forged iat cannot shorten the lifetime it claims. What a service accepts as a maximum
 * is its own policy (the gateway's: services/gateway/auth.h). */
MRD_EXPORT int64_t mrd_jwt_lifetime_s(const mrd_jwt_claims *c, int64_t now_s);

/* Parses "driver" | "rider" | "ops" (exactly, lower case). Returns 0 and *out, or MRD_EINVAL. */
MRD_EXPORT int mrd_role_parse(const char *s, mrd_role *out);

/* Mints an HS256 token for sub with role, valid from now_s for ttl_s seconds
 * (exp = now_s + ttl_s). Returns 0 and a NUL-terminated heap string in *out that the caller
 * frees with free(), or MRD_EINVAL (empty secret or sub, sub longer than
 * MRD_JWT_MAX_SUB - 1, role not driver|rider|ops, ttl_s <= 0) or MRD_ENOMEM. */
MRD_EXPORT int mrd_jwt_mint(const void *secret, size_t secret_len, const char *sub, mrd_role role,
                            int64_t ttl_s, int64_t now_s, char **out);

/* Verifies token against secret at time now_s (Unix seconds). expected is the role the
 * endpoint requires, or MRD_ROLE_ANY. Returns 0 and fills *out (may be NULL), or:
 *   MRD_EPARSE     not three base64url parts, bad JSON, missing or mistyped claim (`iat`,
 *                  when present, must be an integer too), too long
 *   MRD_EALG       header alg is not exactly "HS256" (including "none")
 *   MRD_ESIGNATURE the HMAC does not match (compared in constant time)
 *   MRD_EEXPIRED   now_s >= exp, or now_s < nbf
 *   MRD_EFORBIDDEN role unknown, or not the expected one
 *   MRD_EINVAL     empty secret or NULL token; MRD_ENOMEM
 * out is untouched on failure. */
MRD_EXPORT int mrd_jwt_verify(const void *secret, size_t secret_len, const char *token,
                              mrd_role expected, int64_t now_s, mrd_jwt_claims *out);

/* Test API (no service calls it): tests/common/test_jwt.c and tests/fuzz/fuzz_jwt.c (hand-made
 * tokens). */
/* base64url without padding (RFC 7515 section 2): encodes n bytes into dst, which must hold
 * ceil(4n/3) + 1 bytes; returns the length written (without the NUL). */
MRD_EXPORT size_t mrd_base64url_encode(char *dst, const void *src, size_t n);

/* Test API (no service calls it): tests/common/test_jwt.c. */
/* Decodes len characters of unpadded base64url into dst (room for len * 3 / 4 bytes).
 * Returns 0 and *out_n, or MRD_EPARSE on a character outside the alphabet, padding, an
 * impossible length or non-zero trailing bits. */
MRD_EXPORT int mrd_base64url_decode(void *dst, size_t *out_n, const char *src, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* MRD_JWT_H */
