/*
 * ratelimit.c: the token bucket and the flood policy of ratelimit.h. Tokens are doubles:
 * a rate of 5/s refills 0.005 token per ms, exact enough for limits of a few per second.
 */
#include "ratelimit.h"

void gw_bucket_init(gw_bucket *b, double rate_per_s, double burst, int64_t now_ms) {
  b->rate_per_s = rate_per_s > 0 ? rate_per_s : 1e-9;
  b->burst = burst >= 1 ? burst : 1;
  b->tokens = b->burst;
  b->last_ms = now_ms;
}

bool gw_bucket_take(gw_bucket *b, int64_t now_ms) {
  if (now_ms > b->last_ms) {
    b->tokens += (double)(now_ms - b->last_ms) * b->rate_per_s / 1000.0;
    if (b->tokens > b->burst) b->tokens = b->burst;
    b->last_ms = now_ms;
  }
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return true;
  }
  return false;
}

double gw_bucket_charge(gw_bucket *b, double n, int64_t now_ms) {
  b->tokens = gw_bucket_level(b, now_ms);
  if (now_ms > b->last_ms) b->last_ms = now_ms;
  b->tokens -= n;
  return b->tokens;
}

double gw_bucket_level(const gw_bucket *b, int64_t now_ms) {
  double t = b->tokens;
  if (now_ms > b->last_ms) {
    t += (double)(now_ms - b->last_ms) * b->rate_per_s / 1000.0;
    if (t > b->burst) t = b->burst;
  }
  return t;
}

void gw_flood_init(gw_flood *f, uint32_t max_warnings, int64_t window_ms) {
  f->max_warnings = max_warnings;
  f->window_ms = window_ms > 0 ? window_ms : 1;
  f->hits = 0;
  f->window_start_ms = 0;
}

gw_flood_verdict gw_flood_hit(gw_flood *f, int64_t now_ms) {
  if (f->hits == 0 || now_ms - f->window_start_ms >= f->window_ms || now_ms < f->window_start_ms) {
    f->hits = 0;
    f->window_start_ms = now_ms;
  }
  f->hits++;
  return f->hits > f->max_warnings ? GW_FLOOD_CLOSE : GW_FLOOD_WARN;
}
