/*
 * fare.h: Meridian's metered fares. A tariff (a taxi rate card: flag drop, one increment
 * per unit of distance or of slow-traffic time, surcharges by time of day, fixed per-trip
 * surcharges) is data, read from a small text file (data/tariffs/README.md has the format);
 * a fare is the tariff applied to a trip's legs, each leg a stretch of road with its
 * distance and the time spent on it. Tolls are left out: no toll road is part of the model.
 *
 * The meter: on a leg driven at or above the tariff's slow-traffic speed the meter counts
 * distance units, below it time units (a taxi meter switches between the two at that
 * speed); the units of all legs add up and the fare charges the increment for every unit
 * begun (ceil). Surge multiplies the metered part only (flag drop and increments).
 *
 * Pure: no I/O but mrd_tariff_load / mrd_tariff_set_load_dir (which read files), no global
 * state, libm only; fare_route.c adds the legs of a route on the road graph. Not a
 * pricing engine for promotions, flat airport fares or negotiated fares.
 */
#ifndef MRD_FARE_H
#define MRD_FARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MRD_TARIFF_NAME_MAX 64    /* bytes, NUL included */
#define MRD_TARIFF_WINDOWS_MAX 8  /* time-of-day surcharges per tariff */
#define MRD_TARIFF_FIXED_MAX 8    /* fixed per-trip surcharges per tariff */
#define MRD_TARIFF_FILE_MAX 65536 /* bytes: a longer tariff file is refused */

/* A surcharge for trips that begin in a window of the week: on the days of days_mask
 * (bit d = weekday d, 0 = Sunday), from from_min to to_min minutes after local midnight;
 * to_min < from_min wraps past midnight (the night window 20:00-06:00 starts on a day of
 * the mask and runs into the next morning). */
typedef struct mrd_tariff_window {
  char name[24];
  uint8_t days_mask;
  int from_min, to_min; /* [0, 1440) each, from_min != to_min */
  int32_t cents;
} mrd_tariff_window;

/* A fixed surcharge on every trip (a state tax or fund collected with the fare). */
typedef struct mrd_tariff_fixed {
  char name[24];
  int32_t cents;
} mrd_tariff_fixed;

/* One rate card. */
typedef struct mrd_tariff {
  char name[MRD_TARIFF_NAME_MAX];
  int64_t first_day;           /* days since 1970-01-01 of the first day in force */
  int32_t flag_drop_cents;     /* charged once, at the start */
  int32_t increment_cents;     /* charged per unit begun */
  double increment_distance_m; /* one distance unit, > 0 */
  double increment_time_s;     /* one time unit (slow traffic or stopped), > 0 */
  double slow_speed_mps;       /* below this speed the meter counts time, > 0 */
  int32_t minimum_cents;       /* metered fare floor (0: none) */
  mrd_tariff_window windows[MRD_TARIFF_WINDOWS_MAX];
  size_t n_windows;
  mrd_tariff_fixed fixed[MRD_TARIFF_FIXED_MAX];
  size_t n_fixed;
} mrd_tariff;

/* Parse a tariff from len bytes of text (the format of data/tariffs/README.md). Strict:
 * every required key once, known keys only, numbers in range, nothing after a value but a
 * comment. Returns 0 with *out filled, or -1 with one line in err (errcap bytes) naming the
 * line and what is wrong ("line 4: increment_cents: not an integer in [0, 100000]"); *out is
 * then unspecified. */
int mrd_tariff_parse(const char *text, size_t len, mrd_tariff *out, char *err, size_t errcap);

/* mrd_tariff_parse on the file at path (at most MRD_TARIFF_FILE_MAX bytes); err starts
 * with the path. */
int mrd_tariff_load(const char *path, mrd_tariff *out, char *err, size_t errcap);

/* Rate cards that follow one another: sorted by first_day, no two on one day. */
typedef struct mrd_tariff_set {
  mrd_tariff *cards; /* owned; freed by mrd_tariff_set_free */
  size_t n;
} mrd_tariff_set;

/* Every `*.tariff` file of dir, parsed and sorted by first_day. Returns 0, or -1 with err
 * (a file that does not parse, two cards on one first day, no card at all, a directory that
 * cannot be read); *out is then empty. */
int mrd_tariff_set_load_dir(const char *dir, mrd_tariff_set *out, char *err, size_t errcap);

/* The card of set that is in force on day (days since 1970-01-01): the last whose
 * first_day <= day; NULL when day is before every card. A borrowed pointer into set. */
const mrd_tariff *mrd_tariff_set_at(const mrd_tariff_set *set, int64_t day);

/* Free a set's cards and zero it; a zeroed set is a no-op. */
void mrd_tariff_set_free(mrd_tariff_set *set);

/* Days since 1970-01-01 of a civil date; false for a date that does not exist. */
bool mrd_fare_civil_day(int year, int month, int day, int64_t *days);

/* A stretch of road: its length and the time spent on it. */
typedef struct mrd_fare_leg {
  double distance_m, time_s; /* >= 0, finite */
} mrd_fare_leg;

/* When the trip starts, in local time, for the time-of-day surcharges. */
typedef struct mrd_fare_when {
  int weekday;       /* 0 = Sunday .. 6 = Saturday; -1 unknown: no time-of-day surcharge */
  int minute_of_day; /* 0..1439 */
} mrd_fare_when;

/* A priced trip. total_cents = metered_cents + surge_cents + time_surcharge_cents +
 * fixed_cents (mrd_fare_check). */
typedef struct mrd_fare {
  int64_t metered_cents;        /* flag drop + increments (>= the minimum): the meter's fare,
                                   TLC's fare_amount */
  int64_t surge_cents;          /* metered_cents x (surge - 1), rounded */
  int64_t time_surcharge_cents; /* the time-of-day windows the start falls in (TLC's extra) */
  int64_t fixed_cents;          /* the fixed per-trip surcharges */
  int64_t total_cents;          /* what the rider pays, tolls and tips left out */
  double surge;                 /* the multiplier applied, >= 1 */
  double distance_m, time_s;    /* sums over the legs (after time_scale) */
  double slow_time_s;           /* time on legs below the slow-traffic speed */
  double units;                 /* distance units + time units, before rounding up */
} mrd_fare;

/* Price legs (n of them; n = 0 is a trip that does not move: flag drop and surcharges)
 * under tariff t. Each leg's time is multiplied by time_scale (> 0; 1 to take the legs'
 * times as they are), so legs with raw or calibrated road times can be brought to a
 * whole trip's ETA or its real duration while keeping each leg's share and speed class.
 * surge >= 1 (values below 1 are taken as 1). Returns 0, or -1 for a NULL argument, a
 * negative or non-finite leg, time_scale <= 0 or a non-finite surge (out untouched). */
int mrd_fare_price(const mrd_tariff *t, const mrd_fare_leg *legs, size_t n, double time_scale,
                   mrd_fare_when when, double surge, mrd_fare *out);

/* The cents of t's time-of-day windows for a trip starting at when. */
int64_t mrd_fare_time_surcharge_cents(const mrd_tariff *t, mrd_fare_when when);

/* The invariants of a priced fare (sums add up, nothing negative, surge >= 1). Test API (no
 * service calls it): tests/fare/test_fare.c, tests/dispatch/test_quote.c, fuzz_tariff. */
bool mrd_fare_check(const mrd_fare *f);

#ifdef __cplusplus
}
#endif
#endif /* MRD_FARE_H */
