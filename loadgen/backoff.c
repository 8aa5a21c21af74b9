/*
 * backoff.c: jittered exponential backoff for reconnections (backoff.h).
 */
#include "backoff.h"

lg_backoff_policy lg_backoff_default(void) {
  return (lg_backoff_policy){250000 /* us */, 4000000 /* us */, 5000000 /* us */};
}

int64_t lg_backoff_delay_us(const lg_backoff_policy *p, uint32_t failures, uint64_t rnd) {
  if (p->base_us <= 0) return 0;
  int64_t cap = p->cap_us > p->base_us ? p->cap_us : p->base_us;
  int64_t ceil = p->base_us;
  for (uint32_t k = 0; k < failures && ceil < cap; k++) ceil *= 2; /* no overflow: stops at cap */
  if (ceil > cap) ceil = cap;
  int64_t half = ceil / 2;
  /* rnd's top 53 bits as a fraction in [0, 1] of the upper half */
  double f = (double)(rnd >> 11) * (1.0 / 9007199254740991.0);
  return half + (int64_t)(f * (double)(ceil - half));
}

uint32_t lg_backoff_next_failures(const lg_backoff_policy *p, uint32_t failures, int64_t opened_us,
                                  int64_t closed_us) {
  if (opened_us > 0 && closed_us - opened_us >= p->stable_us) return 0;
  return failures == UINT32_MAX ? failures : failures + 1;
}
