/*
 * clock.h: the two clocks every Meridian binary reads, once each: the monotonic clock
 * (durations, timeouts, rates) and the wall clock (Unix time, as stamped on messages).
 *
 * Header only (static inline), so that pure cores and tools that link no Meridian library
 * can use it too. Not a timer or a scheduler: the domain cores take the time as an argument
 * and read no clock; the adapters read it here.
 */
#ifndef MRD_CLOCK_H
#define MRD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Microseconds on CLOCK_MONOTONIC (an arbitrary origin: differences only). */
static inline int64_t mrd_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Microseconds since the Unix epoch on CLOCK_REALTIME (may jump: not for durations). */
static inline int64_t mrd_wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The same in milliseconds and seconds (truncated ms, as every caller used them). */
static inline int64_t mrd_mono_ms(void) { return mrd_mono_us() / 1000; }
static inline int64_t mrd_wall_ms(void) { return mrd_wall_us() / 1000; }
static inline double mrd_mono_s(void) { return (double)mrd_mono_us() / 1e6; }

#endif /* MRD_CLOCK_H */
