/* fuzz_jwt.c: libFuzzer target for mrd_jwt_verify, the first code an unauthenticated
 * client reaches (the token of the WebSocket upgrade), and for the gateway's token policy
 * on what verifies. The first byte picks the mode:
 *   even: the rest is the token itself, verified as it is (header parse, alg check,
 *         base64url, signature: everything before authentication);
 *   odd:  the rest is "header-json \n claims-json"; the target encodes both and signs
 *         them with the test secret, so the fuzzer also reaches the claims parser that only
 *         a correctly signed token gets to (a leaked secret, or a confused minter).
 * Any bytes must verify or be refused with a documented error, never a crash, leak or UB.
 * A verified token has a non-empty NUL-terminated sub, a known role, exp after now, and a
 * policy verdict (gw_token_check_claims) that is one of the enum's. Not a unit test:
 * scripts/fuzz runs it; seeds in corpus/jwt/. */
/* fuzz-options: -max_len=2048 */
#define _POSIX_C_SOURCE 200809L
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "mrd/err.h"
#include "mrd/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char SECRET[] = "fuzz-secret";
#define NOW_S 1700000000

static void check(int rc, const mrd_jwt_claims *c) {
  if (rc != 0) {
    if (rc != MRD_EPARSE && rc != MRD_EALG && rc != MRD_ESIGNATURE && rc != MRD_EEXPIRED &&
        rc != MRD_EFORBIDDEN && rc != MRD_ENOMEM)
      abort();
    return;
  }
  size_t n = strnlen(c->sub, sizeof c->sub);
  if (n == 0 || n == sizeof c->sub) abort();
  if (c->role != MRD_ROLE_DRIVER && c->role != MRD_ROLE_RIDER && c->role != MRD_ROLE_OPS) abort();
  if (c->exp_s <= NOW_S) abort();
  gw_token_verdict v = gw_token_check_claims(c, NOW_S, GW_TOKEN_MAX_LIFETIME_DEFAULT_S);
  if (v > GW_TOKEN_NO_LIFETIME) abort();
  if (v == GW_TOKEN_OK && mrd_jwt_lifetime_s(c, NOW_S) > GW_TOKEN_MAX_LIFETIME_DEFAULT_S) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *p = data + 1;
  size_t len = size - 1;
  mrd_jwt_claims c;
  memset(&c, 0, sizeof c);
  if ((data[0] & 1) == 0) {
    char *tok = malloc(len + 1);
    if (!tok) return 0;
    memcpy(tok, p, len);
    tok[len] = '\0';
    check(mrd_jwt_verify(SECRET, sizeof SECRET - 1, tok, MRD_ROLE_ANY, NOW_S, &c), &c);
    free(tok);
    return 0;
  }
  const uint8_t *nl = memchr(p, '\n', len);
  size_t hl = nl ? (size_t)(nl - p) : len;
  size_t pl = nl ? len - hl - 1 : 0;
  const uint8_t *payload = nl ? nl + 1 : p + len;
  char *tok = malloc((hl + 2) / 3 * 4 + (pl + 2) / 3 * 4 + 48 + 3);
  if (!tok) return 0;
  size_t n = mrd_base64url_encode(tok, p, hl);
  tok[n++] = '.';
  n += mrd_base64url_encode(tok + n, payload, pl);
  unsigned char mac[32];
  unsigned int mac_len = 0;
  if (!HMAC(EVP_sha256(), SECRET, (int)(sizeof SECRET - 1), (const unsigned char *)tok, n, mac,
            &mac_len)) {
    free(tok);
    return 0;
  }
  tok[n++] = '.';
  mrd_base64url_encode(tok + n, mac, mac_len);
  check(mrd_jwt_verify(SECRET, sizeof SECRET - 1, tok, MRD_ROLE_ANY, NOW_S, &c), &c);
  free(tok);
  return 0;
}
