/*
 * jwt.c: HS256 JWT mint and verify (see jwt.h for why OpenSSL HMAC and not libjwt).
 * The order of checks matters: structure, then alg, then signature, and only then are the
 * claims parsed, so nothing unauthenticated is interpreted beyond the header.
 */
#include "mrd/jwt.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* "driver", "rider", "ops" ("any" for MRD_ROLE_ANY, "?" otherwise). */
static const char *role_name(mrd_role role) {
  switch (role) {
  case MRD_ROLE_ANY: return "any";
  case MRD_ROLE_DRIVER: return "driver";
  case MRD_ROLE_RIDER: return "rider";
  case MRD_ROLE_OPS: return "ops";
  }
  return "?";
}

int mrd_role_parse(const char *s, mrd_role *out) {
  if (s == NULL) return MRD_EINVAL;
  if (strcmp(s, "driver") == 0)
    *out = MRD_ROLE_DRIVER;
  else if (strcmp(s, "rider") == 0)
    *out = MRD_ROLE_RIDER;
  else if (strcmp(s, "ops") == 0)
    *out = MRD_ROLE_OPS;
  else
    return MRD_EINVAL;
  return 0;
}

size_t mrd_base64url_encode(char *dst, const void *src, size_t n) {
  const unsigned char *s = src;
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    dst[o++] = B64URL[v >> 18 & 63];
    dst[o++] = B64URL[v >> 12 & 63];
    dst[o++] = B64URL[v >> 6 & 63];
    dst[o++] = B64URL[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)s[i] << 16;
    dst[o++] = B64URL[v >> 18 & 63];
    dst[o++] = B64URL[v >> 12 & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
    dst[o++] = B64URL[v >> 18 & 63];
    dst[o++] = B64URL[v >> 12 & 63];
    dst[o++] = B64URL[v >> 6 & 63];
  }
  dst[o] = '\0';
  return o;
}

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

int mrd_base64url_decode(void *dst, size_t *out_n, const char *src, size_t len) {
  unsigned char *d = dst;
  if (len % 4 == 1) return MRD_EPARSE;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64val(src[i]);
    if (v < 0) return MRD_EPARSE;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      d[o++] = (unsigned char)(acc >> bits & 0xff);
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return MRD_EPARSE; /* non-canonical */
  *out_n = o;
  return 0;
}

static int hmac_sha256(const void *key, size_t key_len, const char *data, size_t n,
                       unsigned char mac[32]) {
  unsigned int mac_len = 0;
  if (key_len > INT32_MAX) return MRD_EINVAL;
  if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, n, mac, &mac_len) ==
          NULL ||
      mac_len != 32)
    return MRD_ENOMEM;
  return 0;
}

int mrd_jwt_mint(const void *secret, size_t secret_len, const char *sub, mrd_role role,
                 int64_t ttl_s, int64_t now_s, char **out) {
  if (secret == NULL || secret_len == 0 || sub == NULL || *sub == '\0' || out == NULL ||
      strlen(sub) >= MRD_JWT_MAX_SUB || ttl_s <= 0 || now_s > INT64_MAX - ttl_s ||
      (role != MRD_ROLE_DRIVER && role != MRD_ROLE_RIDER && role != MRD_ROLE_OPS))
    return MRD_EINVAL;
  static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  json_t *claims = json_pack("{s:s, s:s, s:I, s:I}", "sub", sub, "role", role_name(role), "iat",
                             (json_int_t)now_s, "exp", (json_int_t)(now_s + ttl_s));
  if (claims == NULL) return MRD_ENOMEM; /* json_pack also fails on invalid UTF-8 in sub */
  char *payload = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(claims);
  if (payload == NULL) return MRD_ENOMEM;
  size_t hl = sizeof header - 1, pl = strlen(payload);
  size_t cap = (hl + 2) / 3 * 4 + (pl + 2) / 3 * 4 + 44 + 3;
  char *tok = malloc(cap);
  if (tok == NULL) {
    free(payload);
    return MRD_ENOMEM;
  }
  size_t n = mrd_base64url_encode(tok, header, hl);
  tok[n++] = '.';
  n += mrd_base64url_encode(tok + n, payload, pl);
  free(payload);
  unsigned char mac[32];
  int rc = hmac_sha256(secret, secret_len, tok, n, mac);
  if (rc != 0) {
    free(tok);
    return rc;
  }
  tok[n++] = '.';
  mrd_base64url_encode(tok + n, mac, sizeof mac);
  *out = tok;
  return 0;
}

/* Decodes one base64url part as a JSON object. */
static int decode_json(const char *s, size_t len, json_t **out) {
  unsigned char *buf = malloc(len * 3 / 4 + 1);
  if (buf == NULL) return MRD_ENOMEM;
  size_t n;
  int rc = mrd_base64url_decode(buf, &n, s, len);
  if (rc == 0) {
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL || !json_is_object(j)) {
      json_decref(j);
      rc = MRD_EPARSE;
    } else {
      *out = j;
    }
  }
  free(buf);
  return rc;
}

int mrd_jwt_verify(const void *secret, size_t secret_len, const char *token, mrd_role expected,
                   int64_t now_s, mrd_jwt_claims *out) {
  if (secret == NULL || secret_len == 0 || token == NULL) return MRD_EINVAL;
  size_t len = strnlen(token, MRD_JWT_MAX_TOKEN + 1);
  if (len > MRD_JWT_MAX_TOKEN) return MRD_EPARSE;
  const char *dot1 = memchr(token, '.', len);
  if (dot1 == NULL) return MRD_EPARSE;
  const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
  if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
    return MRD_EPARSE;
  size_t hlen = (size_t)(dot1 - token), plen = (size_t)(dot2 - dot1 - 1);
  size_t slen = len - (size_t)(dot2 + 1 - token);
  if (hlen == 0 || plen == 0) return MRD_EPARSE;

  /* 1. The header: alg must be exactly HS256. */
  json_t *hdr = NULL;
  int rc = decode_json(token, hlen, &hdr);
  if (rc != 0) return rc;
  json_t *alg = json_object_get(hdr, "alg");
  if (!json_is_string(alg))
    rc = MRD_EPARSE;
  else if (strcmp(json_string_value(alg), "HS256") != 0)
    rc = MRD_EALG;
  else if (json_object_get(hdr, "crit") != NULL)
    rc = MRD_EPARSE; /* no extension understood */
  json_decref(hdr);
  if (rc != 0) return rc;

  /* 2. The signature over "header.payload", compared in constant time. */
  unsigned char want[32], got[48];
  size_t got_n = 0;
  if (slen == 0 || slen > 64 || mrd_base64url_decode(got, &got_n, dot2 + 1, slen) != 0)
    return slen == 0 ? MRD_ESIGNATURE : MRD_EPARSE;
  rc = hmac_sha256(secret, secret_len, token, (size_t)(dot2 - token), want);
  if (rc != 0) return rc;
  if (got_n != sizeof want || CRYPTO_memcmp(want, got, sizeof want) != 0) return MRD_ESIGNATURE;

  /* 3. The claims. */
  json_t *claims = NULL;
  rc = decode_json(dot1 + 1, plen, &claims);
  if (rc != 0) return rc;
  mrd_jwt_claims c = {0};
  json_t *sub = json_object_get(claims, "sub");
  json_t *role = json_object_get(claims, "role");
  json_t *exp = json_object_get(claims, "exp");
  json_t *nbf = json_object_get(claims, "nbf");
  json_t *iat = json_object_get(claims, "iat");
  if ((iat && !json_is_integer(iat)) || !json_is_string(sub) || json_string_length(sub) == 0 ||
      json_string_length(sub) >= MRD_JWT_MAX_SUB ||
      strlen(json_string_value(sub)) != json_string_length(sub) || !json_is_string(role) ||
      !json_is_integer(exp) || (nbf && !json_is_integer(nbf))) {
    rc = MRD_EPARSE;
  } else if (now_s >= (int64_t)json_integer_value(exp) ||
             (nbf && now_s < (int64_t)json_integer_value(nbf))) {
    rc = MRD_EEXPIRED;
  } else if (mrd_role_parse(json_string_value(role), &c.role) != 0 ||
             (expected != MRD_ROLE_ANY && c.role != expected)) {
    rc = MRD_EFORBIDDEN;
  } else {
    memcpy(c.sub, json_string_value(sub), json_string_length(sub) + 1);
    c.exp_s = (int64_t)json_integer_value(exp);
    c.has_iat = iat != NULL;
    c.iat_s = iat ? (int64_t)json_integer_value(iat) : 0;
  }
  json_decref(claims);
  if (rc == 0 && out) *out = c;
  return rc;
}

int64_t mrd_jwt_lifetime_s(const mrd_jwt_claims *c, int64_t now_s) {
  int64_t from = (c->has_iat && c->iat_s <= now_s) ? c->iat_s : now_s;
  /* both are JSON integers (int64): exp - from cannot overflow unless they are extreme */
  if (c->exp_s < 0 && from > INT64_MAX + c->exp_s) return INT64_MIN;
  if (c->exp_s > 0 && from < c->exp_s - INT64_MAX) return INT64_MAX;
  return c->exp_s - from;
}
