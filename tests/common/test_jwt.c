/* test_jwt.c: HS256 mint and verify. Every rejected token is built by hand here (own
 * base64url, OpenSSL HMAC), so the verifier is not checked against itself. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mrd/jwt.h"

static const char SECRET[] = "test-secret-0123456789";
#define SECRET_ARGS SECRET, sizeof SECRET - 1
static const int64_t NOW = 1700000000;

/* Plain base64url without padding, written for the test. */
static void b64url(char *out, const void *in, size_t n) {
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const unsigned char *s = in;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16;
    if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
    if (i + 2 < n) v |= s[i + 2];
    out[o++] = a[v >> 18 & 63];
    out[o++] = a[v >> 12 & 63];
    if (i + 1 < n) out[o++] = a[v >> 6 & 63];
    if (i + 2 < n) out[o++] = a[v & 63];
  }
  out[o] = '\0';
}

/* header.payload[.signature]: sign = 1 signs with key, 0 leaves the signature empty. */
static void craft(char *out, const char *header, const char *payload, int sign, const char *key) {
  char h[512], p[1024];
  b64url(h, header, strlen(header));
  b64url(p, payload, strlen(payload));
  int n = sprintf(out, "%s.%s.", h, p);
  if (sign) {
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)out, (size_t)n - 1, mac, &len);
    assert_int_equal(len, 32);
    b64url(out + n, mac, len);
  }
}

static const char HS256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static void test_jwt_minted_token_verifies_with_claims(void **state) {
  (void)state;
  char *tok = NULL;
  assert_int_equal(mrd_jwt_mint(SECRET_ARGS, "driver-42", MRD_ROLE_DRIVER, 3600, NOW, &tok), 0);
  mrd_jwt_claims c;
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_DRIVER, NOW + 10, &c), 0);
  assert_string_equal(c.sub, "driver-42");
  assert_int_equal(c.role, MRD_ROLE_DRIVER);
  assert_int_equal(c.exp_s, NOW + 3600);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, &c), 0);
  free(tok);
}

static void test_jwt_hand_made_valid_token_verifies(void **state) {
  (void)state;
  char tok[2048], payload[256];
  snprintf(payload, sizeof payload, "{\"sub\":\"ops-1\",\"role\":\"ops\",\"exp\":%lld}",
           (long long)NOW + 60);
  craft(tok, HS256, payload, 1, SECRET);
  mrd_jwt_claims c;
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_OPS, NOW, &c), 0);
  assert_string_equal(c.sub, "ops-1");
}

static void test_jwt_expired_token_rejected(void **state) {
  (void)state;
  char *tok = NULL;
  assert_int_equal(mrd_jwt_mint(SECRET_ARGS, "rider-7", MRD_ROLE_RIDER, 60, NOW, &tok), 0);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_RIDER, NOW + 59, NULL), 0);
  mrd_jwt_claims c = {.sub = "untouched"};
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_RIDER, NOW + 60, &c), MRD_EEXPIRED);
  assert_string_equal(c.sub, "untouched");
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_RIDER, NOW + 100000, NULL),
                   MRD_EEXPIRED);
  free(tok);
}

static void test_jwt_not_yet_valid_token_rejected(void **state) {
  (void)state;
  char tok[2048], payload[256];
  snprintf(payload, sizeof payload, "{\"sub\":\"d\",\"role\":\"driver\",\"exp\":%lld,\"nbf\":%lld}",
           (long long)NOW + 600, (long long)NOW + 300);
  craft(tok, HS256, payload, 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_DRIVER, NOW, NULL), MRD_EEXPIRED);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_DRIVER, NOW + 300, NULL), 0);
}

static void test_jwt_bad_signature_rejected(void **state) {
  (void)state;
  char tok[2048], payload[256];
  snprintf(payload, sizeof payload, "{\"sub\":\"d1\",\"role\":\"driver\",\"exp\":%lld}",
           (long long)NOW + 60);
  /* signed with another key */
  craft(tok, HS256, payload, 1, "another-secret");
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_ESIGNATURE);
  /* one signature character flipped */
  craft(tok, HS256, payload, 1, SECRET);
  size_t n = strlen(tok);
  tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_ESIGNATURE);
  /* empty signature on an HS256 header */
  craft(tok, HS256, payload, 0, NULL);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_ESIGNATURE);
  /* a truncated signature (15 of 32 bytes) */
  craft(tok, HS256, payload, 1, SECRET);
  tok[strlen(tok) - 23] = '\0';
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_ESIGNATURE);
}

static void test_jwt_payload_swapped_under_valid_signature_rejected(void **state) {
  (void)state;
  char *tok = NULL;
  assert_int_equal(mrd_jwt_mint(SECRET_ARGS, "rider-1", MRD_ROLE_RIDER, 60, NOW, &tok), 0);
  char forged[2048], p[256], b[512];
  snprintf(p, sizeof p, "{\"sub\":\"rider-1\",\"role\":\"ops\",\"exp\":%lld}", (long long)NOW + 60);
  b64url(b, p, strlen(p));
  const char *dot1 = strchr(tok, '.');
  const char *dot2 = strchr(dot1 + 1, '.');
  snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(dot1 - tok), tok, b, dot2);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, forged, MRD_ROLE_OPS, NOW, NULL), MRD_ESIGNATURE);
  free(tok);
}

static void test_jwt_alg_none_rejected(void **state) {
  (void)state;
  char tok[2048], payload[256];
  snprintf(payload, sizeof payload, "{\"sub\":\"ops-9\",\"role\":\"ops\",\"exp\":%lld}",
           (long long)NOW + 60);
  craft(tok, "{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, 0, NULL);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_OPS, NOW, NULL), MRD_EALG);
  /* none, even with a valid HMAC attached */
  craft(tok, "{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_OPS, NOW, NULL), MRD_EALG);
  craft(tok, "{\"alg\":\"None\"}", payload, 0, NULL);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_OPS, NOW, NULL), MRD_EALG);
}

static void test_jwt_other_algs_rejected(void **state) {
  (void)state;
  char tok[2048], payload[256];
  snprintf(payload, sizeof payload, "{\"sub\":\"x\",\"role\":\"ops\",\"exp\":%lld}",
           (long long)NOW + 60);
  static const char *const headers[] = {"{\"alg\":\"HS384\"}", "{\"alg\":\"RS256\"}",
                                        "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}"};
  for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
    craft(tok, headers[i], payload, 1, SECRET);
    assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_EALG);
  }
  /* alg missing or not a string is malformed */
  craft(tok, "{\"typ\":\"JWT\"}", payload, 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_EPARSE);
  craft(tok, "{\"alg\":256}", payload, 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_EPARSE);
}

static void test_jwt_wrong_role_rejected(void **state) {
  (void)state;
  char *tok = NULL;
  assert_int_equal(mrd_jwt_mint(SECRET_ARGS, "driver-1", MRD_ROLE_DRIVER, 60, NOW, &tok), 0);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_RIDER, NOW, NULL), MRD_EFORBIDDEN);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_OPS, NOW, NULL), MRD_EFORBIDDEN);
  free(tok);
  /* a validly signed token with a role that does not exist */
  char t2[2048], payload[256];
  snprintf(payload, sizeof payload, "{\"sub\":\"x\",\"role\":\"admin\",\"exp\":%lld}",
           (long long)NOW + 60);
  craft(t2, HS256, payload, 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, t2, MRD_ROLE_ANY, NOW, NULL), MRD_EFORBIDDEN);
}

static void test_jwt_garbage_rejected_as_malformed(void **state) {
  (void)state;
  static const char *const garbage[] = {
      "",
      "abc",
      "a.b",
      "a.b.c.d",
      "..",
      "!!!.???.###",
      "eyJhbGciOiJIUzI1NiJ9..sig",
      "bm90IGpzb24.e30.AAAA", /* header "not json" */
  };
  for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
    assert_int_equal(mrd_jwt_verify(SECRET_ARGS, garbage[i], MRD_ROLE_ANY, NOW, NULL), MRD_EPARSE);
  char tok[2048];
  /* claims that are missing or of the wrong type, validly signed */
  craft(tok, HS256, "[1,2,3]", 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_EPARSE);
  craft(tok, HS256, "{\"sub\":\"x\",\"role\":\"ops\"}", 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_EPARSE);
  craft(tok, HS256, "{\"sub\":\"x\",\"role\":\"ops\",\"exp\":\"never\"}", 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_EPARSE);
  craft(tok, HS256, "{\"sub\":\"\",\"role\":\"ops\",\"exp\":9999999999}", 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_EPARSE);
  craft(tok, HS256, "{\"sub\":\"a\\u0000b\",\"role\":\"ops\",\"exp\":9999999999}", 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, NULL), MRD_EPARSE);
  /* a token longer than the limit */
  char *big = malloc(MRD_JWT_MAX_TOKEN + 10);
  memset(big, 'A', MRD_JWT_MAX_TOKEN + 9);
  big[10] = '.';
  big[20] = '.';
  big[MRD_JWT_MAX_TOKEN + 9] = '\0';
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, big, MRD_ROLE_ANY, NOW, NULL), MRD_EPARSE);
  free(big);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, NULL, MRD_ROLE_ANY, NOW, NULL), MRD_EINVAL);
  assert_int_equal(mrd_jwt_verify(SECRET, 0, "a.b.c", MRD_ROLE_ANY, NOW, NULL), MRD_EINVAL);
}

static void test_jwt_mint_refuses_bad_arguments(void **state) {
  (void)state;
  char *tok = NULL;
  assert_int_equal(mrd_jwt_mint(SECRET, 0, "x", MRD_ROLE_OPS, 60, NOW, &tok), MRD_EINVAL);
  assert_int_equal(mrd_jwt_mint(SECRET_ARGS, "", MRD_ROLE_OPS, 60, NOW, &tok), MRD_EINVAL);
  assert_int_equal(mrd_jwt_mint(SECRET_ARGS, "x", MRD_ROLE_ANY, 60, NOW, &tok), MRD_EINVAL);
  assert_int_equal(mrd_jwt_mint(SECRET_ARGS, "x", MRD_ROLE_OPS, 0, NOW, &tok), MRD_EINVAL);
  assert_null(tok);
}

static void test_jwt_base64url_round_trip_and_strictness(void **state) {
  (void)state;
  unsigned char in[64], out[64];
  for (size_t i = 0; i < sizeof in; i++) in[i] = (unsigned char)(i * 37 + 11);
  for (size_t n = 0; n <= sizeof in; n++) {
    char enc[100], mine[100];
    size_t len = mrd_base64url_encode(enc, in, n);
    b64url(mine, in, n);
    assert_string_equal(enc, mine);
    size_t got = 0;
    assert_int_equal(mrd_base64url_decode(out, &got, enc, len), 0);
    assert_int_equal(got, n);
    assert_memory_equal(out, in, n);
  }
  size_t got;
  assert_int_equal(mrd_base64url_decode(out, &got, "QQ==", 4), MRD_EPARSE); /* padding */
  assert_int_equal(mrd_base64url_decode(out, &got, "Q+", 2), MRD_EPARSE);   /* '+' is not url */
  assert_int_equal(mrd_base64url_decode(out, &got, "QR", 2), MRD_EPARSE);   /* trailing bits */
  assert_int_equal(mrd_base64url_decode(out, &got, "QUJDR", 5), MRD_EPARSE);
}

/* iat is read (and must be an integer); the lifetime is exp - iat, or what is left of the
 * token without iat, and a future iat cannot shorten it. */
static void test_jwt_iat_and_lifetime(void **state) {
  (void)state;
  char tok[2048], payload[256];
  mrd_jwt_claims c;
  snprintf(payload, sizeof payload, "{\"sub\":\"d\",\"role\":\"driver\",\"iat\":%lld,\"exp\":%lld}",
           (long long)NOW - 100, (long long)NOW + 7200);
  craft(tok, HS256, payload, 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, &c), 0);
  assert_true(c.has_iat);
  assert_int_equal(c.iat_s, NOW - 100);
  assert_int_equal(mrd_jwt_lifetime_s(&c, NOW), 7300);
  assert_int_equal(mrd_jwt_lifetime_s(&c, NOW + 3000), 7300); /* fixed by iat, not by now */
  snprintf(payload, sizeof payload, "{\"sub\":\"d\",\"role\":\"driver\",\"exp\":%lld}",
           (long long)NOW + 90000);
  craft(tok, HS256, payload, 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, &c), 0);
  assert_false(c.has_iat);
  assert_int_equal(mrd_jwt_lifetime_s(&c, NOW), 90000);
  assert_int_equal(mrd_jwt_lifetime_s(&c, NOW + 10000), 80000);
  /* an iat in the future counts from now */
  snprintf(payload, sizeof payload, "{\"sub\":\"d\",\"role\":\"driver\",\"iat\":%lld,\"exp\":%lld}",
           (long long)NOW + 89000, (long long)NOW + 90000);
  craft(tok, HS256, payload, 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, &c), 0);
  assert_int_equal(mrd_jwt_lifetime_s(&c, NOW), 90000);
  /* iat of the wrong type: malformed */
  snprintf(payload, sizeof payload,
           "{\"sub\":\"d\",\"role\":\"driver\",\"iat\":\"now\",\"exp\":%lld}", (long long)NOW + 60);
  craft(tok, HS256, payload, 1, SECRET);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, tok, MRD_ROLE_ANY, NOW, &c), MRD_EPARSE);
  /* extremes do not overflow */
  mrd_jwt_claims x = {.exp_s = INT64_MAX, .has_iat = true, .iat_s = INT64_MIN};
  assert_int_equal(mrd_jwt_lifetime_s(&x, 0), INT64_MAX);
  /* minted tokens carry iat = now and exp = now + ttl */
  char *m = NULL;
  assert_int_equal(mrd_jwt_mint(SECRET_ARGS, "r", MRD_ROLE_RIDER, 600, NOW, &m), 0);
  assert_int_equal(mrd_jwt_verify(SECRET_ARGS, m, MRD_ROLE_ANY, NOW + 5, &c), 0);
  assert_int_equal(mrd_jwt_lifetime_s(&c, NOW + 5), 600);
  free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jwt_minted_token_verifies_with_claims),
      cmocka_unit_test(test_jwt_hand_made_valid_token_verifies),
      cmocka_unit_test(test_jwt_expired_token_rejected),
      cmocka_unit_test(test_jwt_not_yet_valid_token_rejected),
      cmocka_unit_test(test_jwt_bad_signature_rejected),
      cmocka_unit_test(test_jwt_payload_swapped_under_valid_signature_rejected),
      cmocka_unit_test(test_jwt_alg_none_rejected),
      cmocka_unit_test(test_jwt_other_algs_rejected),
      cmocka_unit_test(test_jwt_wrong_role_rejected),
      cmocka_unit_test(test_jwt_garbage_rejected_as_malformed),
      cmocka_unit_test(test_jwt_mint_refuses_bad_arguments),
      cmocka_unit_test(test_jwt_base64url_round_trip_and_strictness),
      cmocka_unit_test(test_jwt_iat_and_lifetime),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
