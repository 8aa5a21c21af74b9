/*
 * trips_fare.c: a trip's fares from its route (trips.h: trp_route_fare): the estimate at
 * the request (the calibrated ETA) and the final fare at completion (the real time the
 * ride took). Pure apart from reading the process's time zone for the local time.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "fare_route.h"
#include "trips.h"

int trp_route_fare(const geo_graph *g, const geo_route_state *st, const geo_route_result *r,
                   const mrd_tariff *t, int64_t start_ms, double duration_s, double surge,
                   mrd_fare *out) {
  if (!g || !st || !r || !t || !out || !isfinite(duration_s) || !isfinite(surge))
    return TRP_INCOMPLETE;
  time_t ts = (time_t)(start_ms / 1000);
  struct tm tm;
  if (!localtime_r(&ts, &tm)) return TRP_INCOMPLETE; /* beyond the calendar */
  size_t n = 0;
  mrd_fare_route_legs(g, st, r, tm.tm_hour, tm.tm_wday, NULL, 0, &n);
  mrd_fare_leg *legs = malloc(n * sizeof *legs);
  if (!legs) return TRP_NOMEM;
  int rc = TRP_INCOMPLETE; /* mrd_fare's -1: a leg or a scale it cannot price */
  if (mrd_fare_route_legs(g, st, r, tm.tm_hour, tm.tm_wday, legs, n, &n) != 0) goto done;
  double scale = 1.0;
  if (duration_s >= 0) {
    double sum_s = 0;
    for (size_t i = 0; i < n; i++) sum_s += legs[i].time_s;
    /* a ride of no time at all: everything at speed, the distance counts */
    scale = sum_s > 0 && duration_s > 0 ? duration_s / sum_s : 1e-9;
  }
  mrd_fare_when w = {tm.tm_wday, tm.tm_hour * 60 + tm.tm_min};
  if (mrd_fare_price(t, legs, n, scale, w, surge, out) == 0) rc = 0;
done:
  free(legs);
  return rc;
}
