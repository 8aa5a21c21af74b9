/*
 * trips_db.c: one DispatchEvent recorded in PostGIS (trips.h: trp_record_event), inside
 * the caller's transaction: the append to trip_events, the upsert of the trip's row when
 * the event is new, and for a new trip its route, trip ETA and fare from the road graph.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/ch.h"
#include "geo/snap.h"
#include "trips.h"

/* The route of a new trip: its line (WKT), time and length; false when there is none. */
static bool route_of(const geo_graph *g, geo_route_state *st, const mrd_dispatch_event *ev,
                     char **wkt, double *time_s, double *len_m) {
  geo_snap a, b;
  if (geo_graph_snap(g, (geo_latlng){ev->pickup.lat, ev->pickup.lon}, 500, &a) != GEO_OK ||
      geo_graph_snap(g, (geo_latlng){ev->dropoff.lat, ev->dropoff.lon}, 500, &b) != GEO_OK)
    return false;
  geo_route_result r;
  geo_route_algo algo = geo_ch_present(g) ? GEO_ROUTE_CH : GEO_ROUTE_DIJKSTRA;
  if (geo_route(st, g, algo, &a.place, &b.place, &r) != GEO_OK) return false;
  size_t n = 0;
  geo_route_polyline(st, g, NULL, 0, &n);
  if (n < 2) return false;
  geo_latlng *pts = malloc(n * sizeof *pts);
  char *out = malloc(64 + n * 32);
  if (!pts || !out || geo_route_polyline(st, g, pts, n, &n) != GEO_OK) {
    free(pts);
    free(out);
    return false;
  }
  size_t w = (size_t)sprintf(out, "SRID=4326;LINESTRING(");
  for (size_t i = 0; i < n; i++)
    w += (size_t)sprintf(out + w, "%s%.7f %.7f", i ? "," : "", pts[i].lng, pts[i].lat);
  sprintf(out + w, ")");
  free(pts);
  *wkt = out;
  *time_s = r.time_ms / 1000.0;
  *len_m = r.length_m;
  return true;
}

int trp_record_event(mrd_pg *pg, const mrd_dispatch_event *ev, const geo_graph *g,
                     geo_route_state *st) {
  trp_row row;
  int mr = trp_map_event(ev, &row);
  if (mr == 1) return TRP_SKIPPED;
  if (mr != 0) return TRP_INCOMPLETE;
  PGresult *res = NULL;
  if (mrd_pg_exec(pg, &res, TRP_SQL_EVENT, TRP_EVENT_PARAMS, row.ev) != 0) return TRP_DB_ERROR;
  bool is_new = strcmp(PQcmdTuples(res), "1") == 0;
  PQclear(res);
  if (!is_new) return TRP_DUPLICATE; /* a replay: recorded already, changes nothing */
  if (mrd_pg_exec(pg, NULL, TRP_SQL_TRIP, TRP_TRIP_PARAMS, row.trip) != 0) return TRP_DB_ERROR;
  char *wkt = NULL;
  double ts = 0, lm = 0;
  if (ev->type == MRD_EV_REQUESTED && g && st && route_of(g, st, ev, &wkt, &ts, &lm)) {
    char eta[32], fare[32];
    snprintf(eta, sizeof eta, "%.3f", ts);
    snprintf(fare, sizeof fare, "%d", trp_fare_cents(lm, ts));
    const char *p[] = {ev->trip_id, wkt, eta, fare};
    int rc = mrd_pg_exec(pg, NULL, TRP_SQL_ROUTE, 4, p);
    free(wkt);
    if (rc != 0) return TRP_DB_ERROR;
  }
  return TRP_RECORDED;
}
