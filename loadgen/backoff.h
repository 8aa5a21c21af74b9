/*
 * backoff.h: when a simulated app tries to connect again after its connection dropped or
 * failed: exponential backoff with jitter, as real apps do so that a thousand clients cut
 * off by one gateway restart do not all come back in the same millisecond.
 *
 * Pure arithmetic (no clock, no randomness of its own: the caller passes a random 64-bit
 * value), so the simulation stays deterministic per seed and the rule is unit-tested.
 * Not a retry policy for messages: what is re-sent after a reconnection is sim.c's.
 */
#ifndef LG_BACKOFF_H
#define LG_BACKOFF_H

#include <stdint.h>

/* The policy: the n-th consecutive failure (n = 0 first) waits a delay drawn uniformly in
 * [ceil/2, ceil], ceil = min(cap_us, base_us x 2^n) ("equal jitter": never 0, never above
 * the cap). A connection that stayed open at least stable_us resets the count. */
typedef struct lg_backoff_policy {
  int64_t base_us;   /* 250 ms */
  int64_t cap_us;    /* 4 s */
  int64_t stable_us; /* 5 s */
} lg_backoff_policy;

/* The defaults above. */
lg_backoff_policy lg_backoff_default(void);

/* The delay (µs) before attempt number `failures` + 1, given the random value rnd.
 * Returns a value in [ceil/2, ceil] as above; base_us <= 0 gives 0. */
int64_t lg_backoff_delay_us(const lg_backoff_policy *p, uint32_t failures, uint64_t rnd);

/* The failure count after a connection that was open from opened_us to closed_us (or
 * never opened: opened_us = 0) and had `failures` before: reset when it was stable, else
 * one more (saturating). */
uint32_t lg_backoff_next_failures(const lg_backoff_policy *p, uint32_t failures, int64_t opened_us,
                                  int64_t closed_us);

#endif /* LG_BACKOFF_H */
