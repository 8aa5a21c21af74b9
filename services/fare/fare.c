/*
 * fare.c: a tariff applied to a trip's legs (fare.h: mrd_fare_price). Pure and exact in
 * integer cents; the only floating point is the meter's unit count, rounded up once at
 * the end (a unit is charged as soon as it begins: NYC meters click the increment at the
 * start of each fifth of a mile or minute, which is what TLC records show: 0.79 mi in
 * 6 min 32 s is $2.50 + 7 x $0.50 = $6.00).
 */
#include <math.h>
#include <string.h>

#include "fare.h"

/* Tolerance on the unit count before rounding up, so that a distance of exactly 5 units
 * computed as 5.0000000001 is not charged 6. */
#define UNIT_EPS 1e-9

int64_t mrd_fare_time_surcharge_cents(const mrd_tariff *t, mrd_fare_when when) {
  if (!t || when.weekday < 0 || when.weekday > 6 || when.minute_of_day < 0 ||
      when.minute_of_day >= 1440)
    return 0;
  int64_t c = 0;
  for (size_t i = 0; i < t->n_windows; i++) {
    const mrd_tariff_window *w = &t->windows[i];
    int m = when.minute_of_day;
    bool in;
    if (w->from_min < w->to_min) {
      in = (w->days_mask >> when.weekday & 1) && m >= w->from_min && m < w->to_min;
    } else {
      /* wraps past midnight: the evening part on a day of the mask, the morning part on
       * the day after one */
      int prev = (when.weekday + 6) % 7;
      in = ((w->days_mask >> when.weekday & 1) && m >= w->from_min) ||
           ((w->days_mask >> prev & 1) && m < w->to_min);
    }
    if (in) c += w->cents;
  }
  return c;
}

int mrd_fare_price(const mrd_tariff *t, const mrd_fare_leg *legs, size_t n, double time_scale,
                   mrd_fare_when when, double surge, mrd_fare *out) {
  if (!t || !out || (n && !legs) || !isfinite(time_scale) || time_scale <= 0 || !isfinite(surge) ||
      t->increment_distance_m <= 0 || t->increment_time_s <= 0 || t->slow_speed_mps <= 0)
    return -1;
  mrd_fare f;
  memset(&f, 0, sizeof f);
  for (size_t i = 0; i < n; i++) {
    double d = legs[i].distance_m, s = legs[i].time_s * time_scale;
    if (!isfinite(d) || !isfinite(s) || d < 0 || s < 0) return -1;
    f.distance_m += d;
    f.time_s += s;
    /* at or above the slow-traffic speed the meter counts distance, below it time; a leg
     * taking no time at all (a zero-length piece) counts its distance */
    if (s > 0 && d < t->slow_speed_mps * s) {
      f.slow_time_s += s;
      f.units += s / t->increment_time_s;
    } else {
      f.units += d / t->increment_distance_m;
    }
  }
  double units = ceil(f.units - UNIT_EPS);
  if (units < 0) units = 0;
  if (units > 1e9) return -1; /* a trip of more than a billion units is not a fare */
  f.metered_cents = t->flag_drop_cents + (int64_t)units * t->increment_cents;
  if (f.metered_cents < t->minimum_cents) f.metered_cents = t->minimum_cents;
  f.surge = surge < 1 ? 1 : surge;
  f.surge_cents = llround((double)f.metered_cents * (f.surge - 1));
  f.time_surcharge_cents = mrd_fare_time_surcharge_cents(t, when);
  for (size_t i = 0; i < t->n_fixed; i++) f.fixed_cents += t->fixed[i].cents;
  f.total_cents = f.metered_cents + f.surge_cents + f.time_surcharge_cents + f.fixed_cents;
  *out = f;
  return 0;
}

bool mrd_fare_check(const mrd_fare *f) {
  return f && f->metered_cents >= 0 && f->surge_cents >= 0 && f->time_surcharge_cents >= 0 &&
         f->fixed_cents >= 0 && f->surge >= 1 &&
         f->total_cents ==
             f->metered_cents + f->surge_cents + f->time_surcharge_cents + f->fixed_cents &&
         f->slow_time_s <= f->time_s + 1e-6 && f->units >= 0 && f->distance_m >= 0;
}
