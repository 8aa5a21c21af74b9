/* testutil.h: helpers shared by the libgeo tests: a seeded PRNG that prints its seed and
 * takes SEED= to replay, and a counting allocator that can fail a chosen call. Header-only
 * (static functions) so each test stays one executable per source file. */
#ifndef GEO_TESTUTIL_H
#define GEO_TESTUTIL_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "geo/geo.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* xoshiro-style PRNG state (splitmix64), seeded once per test binary. */
static uint64_t tu_rng_state;

static inline uint64_t tu_next(void) {
  uint64_t z = (tu_rng_state += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline double tu_uniform(double lo, double hi) {
  return lo + (hi - lo) * ((double)(tu_next() >> 11) * (1.0 / 9007199254740992.0));
}

static inline uint64_t tu_below(uint64_t n) { return n ? tu_next() % n : 0; }

/* Seed from SEED= or the clock, and print it so a failure can be replayed. */
static inline uint64_t tu_seed(const char *test_name) {
  const char *s = getenv("SEED");
  uint64_t seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
  fprintf(stderr, "%s: SEED=%" PRIu64 " (set SEED= to replay)\n", test_name, seed);
  tu_rng_state = seed;
  return seed;
}

/* Counting allocator: fails call number fail_at (1-based; 0 = never) or, with fail_after,
 * every call from fail_at on. live counts blocks not yet freed. */
typedef struct tu_alloc {
  long calls, live, fail_at;
  int fail_after;
} tu_alloc;

static tu_alloc tu_a;

static inline void *tu_malloc(size_t n, void *ud) {
  (void)ud;
  tu_a.calls++;
  if (tu_a.fail_at &&
      (tu_a.calls == tu_a.fail_at || (tu_a.fail_after && tu_a.calls > tu_a.fail_at)))
    return NULL;
  void *p = malloc(n);
  if (p) tu_a.live++;
  return p;
}

static inline void tu_free(void *p, void *ud) {
  (void)ud;
  if (p) {
    tu_a.live--;
    free(p);
  }
}

/* Install the counting allocator (no realloc: libgeo then uses malloc + copy + free, so
 * every growth is a countable, failable call). */
static inline void tu_alloc_install(long fail_at, int fail_after) {
  tu_a = (tu_alloc){0, 0, fail_at, fail_after};
  geo_allocator a = {tu_malloc, NULL, tu_free, NULL};
  geo_set_allocator(&a);
}

static inline void tu_alloc_disarm(void) { tu_a.fail_at = 0; }
static inline void tu_alloc_restore(void) { geo_set_allocator(NULL); }

#endif
