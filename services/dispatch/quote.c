/*
 * quote.c: a ride's fare quote on the calibrated graph (quote.h). Pure.
 */
#include "quote.h"

#include "dsp_geo_err.h"
#include "fare_route.h"
#include "geo/ch.h"
#include "geo/snap.h"

int dsp_quote_ride(const geo_graph *g, geo_route_state *st, const mrd_tariff *t, geo_latlng pickup,
                   geo_latlng dropoff, double snap_max_m, dsp_quote_when when, double surge,
                   mrd_fare_leg *legs, size_t cap, mrd_fare *out) {
  if (!g || !st || !t || !out || !legs) return DSP_EINVAL;
  geo_snap a, b;
  geo_err e = geo_graph_snap(g, pickup, snap_max_m, &a);
  if (e == GEO_OK) e = geo_graph_snap(g, dropoff, snap_max_m, &b);
  if (e != GEO_OK) return e == GEO_EINVAL ? DSP_ENOTFOUND : dsp_err_of_geo(e); /* off the map */
  geo_route_result r;
  geo_route_algo algo = geo_ch_present(g) ? GEO_ROUTE_CH : GEO_ROUTE_DIJKSTRA;
  e = geo_route(st, g, algo, &a.place, &b.place, &r);
  if (e != GEO_OK) return dsp_err_of_geo(e);
  size_t n = 0;
  /* mrd_fare's -1: the arguments are checked above, so legs too small */
  if (mrd_fare_route_legs(g, st, &r, when.hour, when.weekday, legs, cap, &n) != 0)
    return DSP_ERANGE;
  mrd_fare f;
  mrd_fare_when w = {when.weekday, when.hour * 60 + when.minute};
  if (mrd_fare_price(t, legs, n, 1.0, w, surge, &f) != 0) return DSP_EINVAL;
  *out = f;
  return 0;
}
