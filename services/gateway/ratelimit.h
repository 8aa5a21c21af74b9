/*
 * ratelimit.h: per-connection rate limiting: a token bucket and the flood policy that turns
 * repeated rate-limit hits into a close with WebSocket code 1008.
 *
 * Pure: time comes in as an argument (milliseconds on any monotonic clock), so tests drive
 * it by hand. Not thread-safe (one connection = one event-loop thread). The per-rider limit
 * on ride requests across gateway replicas lives in Redis (gateway_io.c), not here.
 */
#ifndef MRD_GATEWAY_RATELIMIT_H
#define MRD_GATEWAY_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* A token bucket: holds up to `burst` tokens, refilled at `rate_per_s`; a message costs one. */
typedef struct gw_bucket {
  double tokens;
  double rate_per_s;
  double burst;
  int64_t last_ms; /* when tokens was last brought up to date */
} gw_bucket;

/* Start a full bucket at now_ms. rate_per_s > 0 and burst >= 1 (values below are raised to
 * those minimums). */
void gw_bucket_init(gw_bucket *b, double rate_per_s, double burst, int64_t now_ms);

/* Take one token at now_ms: true when there was one. A clock that goes backwards refills
 * nothing (and never removes tokens). */
bool gw_bucket_take(gw_bucket *b, int64_t now_ms);

/* Charge n tokens at now_ms (after refilling), even when fewer are left: the bucket may go
 * into debt (negative tokens) and refills from there. Returns the tokens left, negative
 * while in debt. For byte budgets, where the cost is known only after the fact. */
double gw_bucket_charge(gw_bucket *b, double n, int64_t now_ms);

/* The tokens the bucket holds at now_ms (refilled, not taken). */
double gw_bucket_level(const gw_bucket *b, int64_t now_ms);

/* What to do with a connection after a rate-limit hit. */
typedef enum gw_flood_verdict {
  GW_FLOOD_WARN = 0, /* answer rate_limited and keep the connection */
  GW_FLOOD_CLOSE = 1 /* close it with WebSocket code 1008 (policy violation) */
} gw_flood_verdict;

/* Flood policy: more than max_warnings rate-limit hits within window_ms close the
 * connection. A hit starts a window when none is open; the count restarts when the window
 * ends. */
typedef struct gw_flood {
  uint32_t max_warnings;
  int64_t window_ms;
  uint32_t hits;
  int64_t window_start_ms;
} gw_flood;

/* Set up a policy with no hits. */
void gw_flood_init(gw_flood *f, uint32_t max_warnings, int64_t window_ms);

/* Count one rate-limit hit at now_ms and say what to do. */
gw_flood_verdict gw_flood_hit(gw_flood *f, int64_t now_ms);

#endif /* MRD_GATEWAY_RATELIMIT_H */
