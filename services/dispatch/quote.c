/*
 * quote.c: a ride's fare quote on the calibrated graph (quote.h). Pure.
 */
#include "quote.h"

#include "fare_route.h"
#include "geo/ch.h"
#include "geo/snap.h"

int dsp_quote_ride(const geo_graph *g, geo_route_state *st, const mrd_tariff *t,
                   geo_latlng pickup, geo_latlng dropoff, double snap_max_m, dsp_quote_when when,
                   double surge, mrd_fare_leg *legs, size_t cap, mrd_fare *out) {
  if (!g || !st || !t || !out || !legs) return -1;
  geo_snap a, b;
  if (geo_graph_snap(g, pickup, snap_max_m, &a) != GEO_OK ||
      geo_graph_snap(g, dropoff, snap_max_m, &b) != GEO_OK)
    return -1;
  geo_route_result r;
  geo_route_algo algo = geo_ch_present(g) ? GEO_ROUTE_CH : GEO_ROUTE_DIJKSTRA;
  if (geo_route(st, g, algo, &a.place, &b.place, &r) != GEO_OK) return -1;
  size_t n = 0;
  if (mrd_fare_route_legs(g, st, &r, when.hour, when.weekday, legs, cap, &n) != 0) return -1;
  mrd_fare f;
  mrd_fare_when w = {when.weekday, when.hour * 60 + when.minute};
  if (mrd_fare_price(t, legs, n, 1.0, w, surge, &f) != 0) return -1;
  *out = f;
  return 0;
}
