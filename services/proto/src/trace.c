/*
 * trace.c: W3C traceparent parsing and formatting, root and child spans from caller-given
 * random bytes, and the hop durations of a trace (mrd/trace.h). Pure: no clock, no
 * randomness, no allocation.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "mrd/trace.h"

#include <string.h>

static int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; /* upper case is invalid in a traceparent */
}

/* Read n bytes of lower-case hex from s (2n characters). */
static bool hex_bytes(const char *s, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int hi = hex_val(s[2 * i]), lo = hi < 0 ? -1 : hex_val(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

static bool all_zero(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i]) return false;
  return true;
}

bool mrd_traceparent_parse(const char *s, mrd_traceparent *out) {
  if (!s || !out) return false;
  size_t n = strnlen(s, MRD_TRACEPARENT_LEN + 1);
  if (n < MRD_TRACEPARENT_LEN) return false;
  uint8_t version;
  if (!hex_bytes(s, &version, 1) || version == 0xff) return false;
  if (version == 0 && n != MRD_TRACEPARENT_LEN) return false;
  if (version != 0 && n > MRD_TRACEPARENT_LEN && s[MRD_TRACEPARENT_LEN] != '-') return false;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-') return false;
  mrd_traceparent tp;
  if (!hex_bytes(s + 3, tp.trace_id, 16) || !hex_bytes(s + 36, tp.parent_id, 8) ||
      !hex_bytes(s + 53, &tp.flags, 1))
    return false;
  if (all_zero(tp.trace_id, 16) || all_zero(tp.parent_id, 8)) return false;
  *out = tp;
  return true;
}

static char *put_hex(char *p, const uint8_t *b, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    *p++ = digits[b[i] >> 4];
    *p++ = digits[b[i] & 15];
  }
  return p;
}

int mrd_traceparent_format(const mrd_traceparent *tp, char *buf, size_t cap) {
  if (!tp || !buf || cap < MRD_TRACEPARENT_LEN + 1) return -1;
  if (all_zero(tp->trace_id, 16) || all_zero(tp->parent_id, 8)) return -1;
  char *p = buf;
  *p++ = '0';
  *p++ = '0';
  *p++ = '-';
  p = put_hex(p, tp->trace_id, 16);
  *p++ = '-';
  p = put_hex(p, tp->parent_id, 8);
  *p++ = '-';
  p = put_hex(p, &tp->flags, 1);
  *p = '\0';
  return MRD_TRACEPARENT_LEN;
}

void mrd_traceparent_root(const uint8_t random[24], mrd_traceparent *out) {
  memcpy(out->trace_id, random, 16);
  memcpy(out->parent_id, random + 16, 8);
  if (all_zero(out->trace_id, 16)) out->trace_id[15] = 1;
  if (all_zero(out->parent_id, 8)) out->parent_id[7] = 1;
  out->flags = 0x01; /* sampled: every request is traced */
}

void mrd_traceparent_child(const mrd_traceparent *parent, const uint8_t random[8],
                           mrd_traceparent *out) {
  mrd_traceparent tp = *parent; /* parent may be out */
  memcpy(tp.parent_id, random, 8);
  if (all_zero(tp.parent_id, 8)) tp.parent_id[7] = 1;
  *out = tp;
}

const char *mrd_trace_hop_name(mrd_trace_hop hop) {
  switch (hop) {
  case MRD_HOP_GATEWAY_IN: return "gateway_in";
  case MRD_HOP_COMMANDS_KAFKA: return "commands_kafka";
  case MRD_HOP_DISPATCH_MATCH: return "dispatch_match";
  case MRD_HOP_DISPATCH_OUT: return "dispatch_out";
  case MRD_HOP_EVENTS_KAFKA: return "events_kafka";
  case MRD_HOP_GATEWAY_OUT: return "gateway_out";
  default: return "none";
  }
}

bool mrd_trace_check(const mrd_trace *t) {
  if (!t) return false;
  if (!t->present) {
    if (!all_zero(t->tp.trace_id, 16) || !all_zero(t->tp.parent_id, 8) || t->tp.flags) return false;
    for (int i = 0; i < MRD_STAMP_COUNT; i++)
      if (t->stamp_us[i]) return false;
    return true;
  }
  if (all_zero(t->tp.trace_id, 16) || all_zero(t->tp.parent_id, 8)) return false;
  bool missing = false;
  for (int i = 0; i < MRD_STAMP_COUNT; i++) {
    if (t->stamp_us[i] < 0) return false;
    if (t->stamp_us[i] == 0)
      missing = true;
    else if (missing)
      return false; /* a stamp after a gap */
  }
  return true;
}

int mrd_trace_hops_ms(const mrd_trace *t, int64_t skew_us, double hops_ms[MRD_HOP_COUNT],
                      double *total_ms) {
  if (!t || !t->present || !mrd_trace_check(t)) return MRD_TRACE_EABSENT;
  if (t->stamp_us[MRD_STAMP_COUNT - 1] == 0) return MRD_TRACE_EINCOMPLETE;
  if (skew_us < 0) skew_us = 0;
  double out[MRD_HOP_COUNT];
  for (int h = 0; h < MRD_HOP_COUNT; h++) {
    int64_t d = t->stamp_us[h + 1] - t->stamp_us[h];
    if (d < -skew_us) return MRD_TRACE_ESKEW;
    out[h] = d < 0 ? 0.0 : (double)d / 1000.0;
  }
  memcpy(hops_ms, out, sizeof out);
  if (total_ms) *total_ms = (double)(t->stamp_us[MRD_STAMP_COUNT - 1] - t->stamp_us[0]) / 1000.0;
  return MRD_TRACE_OK;
}
