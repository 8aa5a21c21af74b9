/*
 * ids.c: the shapes of Meridian's ids (user, request, offer and trip ids) and the shard
 * number that offer and trip ids carry. Pure string checks, no allocation. This file does
 * not mint unique suffixes: dispatch chooses them.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "mrd/proto.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

/* Characters of [A-Za-z0-9_.:-] in s[0..n), n >= 1. */
static bool id_chars(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++) {
    if (!id_char(s[i])) return false;
  }
  return true;
}

bool mrd_latlon_valid(mrd_latlon p) {
  return isfinite(p.lat) && isfinite(p.lon) && p.lat >= -90.0 && p.lat <= 90.0 && p.lon >= -180.0 &&
         p.lon <= 180.0;
}

bool mrd_id_valid(const char *s) {
  if (!s) return false;
  size_t n = strnlen(s, MRD_ID_MAX + 1);
  return n <= MRD_ID_MAX && id_chars(s, n);
}

/* "<prefix><shard>-<suffix>" with shard 0..63 and no leading zero. */
static bool sharded_id(const char *id, char prefix, uint32_t *shard) {
  if (!id || id[0] != prefix) return false;
  size_t n = strnlen(id, MRD_ID_MAX + 1);
  if (n > MRD_ID_MAX) return false;
  const char *p = id + 1;
  uint32_t v = 0;
  size_t digits = 0;
  while (*p >= '0' && *p <= '9' && digits < 3) {
    v = v * 10 + (uint32_t)(*p - '0');
    p++;
    digits++;
  }
  if (digits == 0 || digits > 2 || (digits == 2 && id[1] == '0')) return false;
  if (v >= MRD_SHARD_COUNT || *p != '-') return false;
  p++;
  if (!id_chars(p, n - (size_t)(p - id))) return false;
  if (shard) *shard = v;
  return true;
}

bool mrd_offer_id_shard(const char *id, uint32_t *shard) { return sharded_id(id, 'o', shard); }
bool mrd_trip_id_shard(const char *id, uint32_t *shard) { return sharded_id(id, 't', shard); }

static int format_id(char prefix, uint32_t shard, const char *suffix, char *buf, size_t cap) {
  if (!suffix || !buf || shard >= MRD_SHARD_COUNT) return MRD_PROTO_EINVAL;
  size_t sn = strnlen(suffix, MRD_ID_MAX + 1);
  if (!id_chars(suffix, sn)) return MRD_PROTO_EINVAL;
  char tmp[MRD_ID_MAX + 8];
  int n = snprintf(tmp, sizeof tmp, "%c%u-%.*s", prefix, (unsigned)shard, (int)sn, suffix);
  if (n < 0 || (size_t)n > MRD_ID_MAX || (size_t)n + 1 > cap) return MRD_PROTO_ERANGE;
  memcpy(buf, tmp, (size_t)n + 1);
  return MRD_PROTO_OK;
}

int mrd_offer_id_format(uint32_t shard, const char *suffix, char *buf, size_t cap) {
  return format_id('o', shard, suffix, buf, cap);
}

int mrd_trip_id_format(uint32_t shard, const char *suffix, char *buf, size_t cap) {
  return format_id('t', shard, suffix, buf, cap);
}

bool mrd_error_code_valid(const char *code) {
  static const char *const codes[] = {
      "bad_request",   "unauthorized",  "forbidden", "rate_limited", "out_of_area",
      "unknown_offer", "invalid_state", "too_large", "unavailable",  "internal"};
  if (!code) return false;
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    if (strcmp(code, codes[i]) == 0) return true;
  }
  return false;
}
