/*
 * trips_db.c: one DispatchEvent recorded in PostGIS (trips.h: trp_record_event), inside
 * the caller's transaction: the append to trip_events, the upsert of the trip's row when
 * the event is new, for a new trip its route, trip ETA and fare estimate from the road
 * graph, the fare quote an event carries, and at completion the final fare.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/ch.h"
#include "geo/snap.h"
#include "mrd/tz.h"
#include "trips.h"

/* The route of a new trip: its line (WKT), its ETA (the calibrated geo_graph_eta_ms of its
 * route time at the local hour and weekday of the event's ts_ms) and length; false when
 * there is none. */
static bool route_of(const geo_graph *g, geo_route_state *st, const mrd_dispatch_event *ev,
                     char **wkt, double *eta_s, geo_route_result *rout) {
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
  int hour = -1, weekday = -1; /* unconvertible time: route time + trip base */
  mrd_local_hour_weekday(ev->ts_ms, &hour, &weekday);
  *eta_s = geo_graph_eta_ms(g, r.time_ms, hour, weekday) / 1000.0;
  *rout = r;
  return true;
}

/* The route of a trip without its line (for the final fare): false when there is none. */
static bool route_only(const geo_graph *g, geo_route_state *st, const mrd_dispatch_event *ev,
                       geo_route_result *r) {
  geo_snap a, b;
  if (geo_graph_snap(g, (geo_latlng){ev->pickup.lat, ev->pickup.lon}, 500, &a) != GEO_OK ||
      geo_graph_snap(g, (geo_latlng){ev->dropoff.lat, ev->dropoff.lon}, 500, &b) != GEO_OK)
    return false;
  geo_route_algo algo = geo_ch_present(g) ? GEO_ROUTE_CH : GEO_ROUTE_DIJKSTRA;
  return geo_route(st, g, algo, &a.place, &b.place, r) == GEO_OK;
}

/* At COMPLETED: the route priced over the real started -> completed time with the quote's
 * surge. Returns 0 (recorded, or nothing to record: not started, no route), -1 on a
 * database error. */
static int record_final_fare(mrd_pg *pg, const mrd_dispatch_event *ev, const geo_graph *g,
                             geo_route_state *st, const mrd_tariff *t) {
  PGresult *res = NULL;
  const char *p1[] = {ev->trip_id};
  if (mrd_pg_exec(pg, &res, TRP_SQL_FINAL_READ, 1, p1) != 0) return -1;
  bool started = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
  int64_t started_ms = started ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
  double surge =
      PQntuples(res) == 1 && !PQgetisnull(res, 0, 1) ? strtod(PQgetvalue(res, 0, 1), NULL) : 1.0;
  PQclear(res);
  geo_route_result r;
  mrd_fare f;
  if (!started || ev->ts_ms < started_ms || !route_only(g, st, ev, &r) ||
      trp_route_fare(g, st, &r, t, started_ms, (double)(ev->ts_ms - started_ms) / 1000.0, surge,
                     &f) != 0)
    return 0;
  char total[24], metered[24];
  snprintf(total, sizeof total, "%lld", (long long)f.total_cents);
  snprintf(metered, sizeof metered, "%lld", (long long)f.metered_cents);
  const char *p3[] = {ev->trip_id, total, metered};
  return mrd_pg_exec(pg, NULL, TRP_SQL_FINAL, 3, p3) != 0 ? -1 : 0;
}

int trp_record_event(mrd_pg *pg, const mrd_dispatch_event *ev, const geo_graph *g,
                     geo_route_state *st) {
  return trp_record_event_priced(pg, ev, g, st, NULL);
}

int trp_record_event_priced(mrd_pg *pg, const mrd_dispatch_event *ev, const geo_graph *g,
                            geo_route_state *st, const mrd_tariff *t) {
  trp_row row;
  int mr = trp_map_event(ev, &row);
  if (mr != 0) return mr; /* TRP_SKIPPED, TRP_INCOMPLETE or TRP_NOMEM */
  PGresult *res = NULL;
  if (mrd_pg_exec(pg, &res, TRP_SQL_EVENT, TRP_EVENT_PARAMS, row.ev) != 0) return TRP_DB_ERROR;
  bool is_new = strcmp(PQcmdTuples(res), "1") == 0;
  PQclear(res);
  if (!is_new) return TRP_DUPLICATE; /* a replay: recorded already, changes nothing */
  if (mrd_pg_exec(pg, NULL, TRP_SQL_TRIP, TRP_TRIP_PARAMS, row.trip) != 0) return TRP_DB_ERROR;
  char *wkt = NULL;
  double ts = 0;
  geo_route_result r;
  if (ev->type == MRD_EV_REQUESTED && g && st && route_of(g, st, ev, &wkt, &ts, &r)) {
    char eta[32], fare[32], len[32];
    snprintf(eta, sizeof eta, "%.3f", ts);
    snprintf(len, sizeof len, "%.1f", r.length_m);
    mrd_fare f;
    bool priced = t && trp_route_fare(g, st, &r, t, ev->ts_ms, -1, 1.0, &f) == 0;
    if (priced) snprintf(fare, sizeof fare, "%lld", (long long)f.total_cents);
    const char *p[] = {ev->trip_id, wkt, eta, priced ? fare : NULL, len};
    int rc = mrd_pg_exec(pg, NULL, TRP_SQL_ROUTE, TRP_ROUTE_PARAMS, p);
    free(wkt);
    if (rc != 0) return TRP_DB_ERROR;
  }
  if (ev->has_fare_quote) {
    char cents[24], surge[32];
    snprintf(cents, sizeof cents, "%lld", (long long)ev->fare_quote_cents);
    snprintf(surge, sizeof surge, "%.4f", ev->surge);
    const char *p[] = {ev->trip_id, cents, surge, ev->tariff[0] ? ev->tariff : NULL};
    if (mrd_pg_exec(pg, NULL, TRP_SQL_QUOTE, 4, p) != 0) return TRP_DB_ERROR;
  }
  if (ev->type == MRD_EV_COMPLETED && g && st && t && record_final_fare(pg, ev, g, st, t) != 0)
    return TRP_DB_ERROR;
  return TRP_RECORDED;
}
