/*
 * fare_route.c: a route's arcs as fare legs (fare_route.h). Pure: reads the graph and the
 * route state, writes the caller's buffer.
 */
#include "fare_route.h"

int mrd_fare_route_legs(const geo_graph *g, const geo_route_state *st, const geo_route_result *r,
                        int hour, int weekday, mrd_fare_leg *legs, size_t cap, size_t *n) {
  if (!g || !st || !r || !n) return -1;
  size_t na = 0;
  const uint32_t *arcs = geo_route_path_arcs(st, &na);
  size_t need = na ? na + 1 : 2; /* a route inside one arc: one moving leg + the base */
  *n = need;
  if (!legs || cap < need) return -1;
  double sum_len_m = 0, sum_time_s = 0;
  for (size_t i = 0; i < na; i++) {
    sum_len_m += geo_graph_arc_length_m(g, arcs[i]);
    sum_time_s += geo_graph_arc_time_ms(g, arcs[i]) / 1000.0;
  }
  const geo_graph_calibration *cal = geo_graph_get_calibration(g);
  double base_s = cal ? cal->trip_base_ms / 1000.0 : 0;
  if (base_s < 0) base_s = 0;
  double eta_s = geo_graph_eta_ms(g, r->time_ms, hour, weekday) / 1000.0;
  double moving_s = eta_s - base_s;
  if (moving_s < 0) moving_s = 0;
  double kl = sum_len_m > 0 ? r->length_m / sum_len_m : 0;
  double kt = sum_time_s > 0 ? moving_s / sum_time_s : 0;
  for (size_t i = 0; i < na; i++) {
    legs[i].distance_m = geo_graph_arc_length_m(g, arcs[i]) * kl;
    legs[i].time_s = geo_graph_arc_time_ms(g, arcs[i]) / 1000.0 * kt;
  }
  if (na == 0) legs[na++] = (mrd_fare_leg){r->length_m, moving_s};
  legs[na] = (mrd_fare_leg){0, base_s};
  return 0;
}
