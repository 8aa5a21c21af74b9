/*
 * test_trips_pg.c: recording dispatch events in the real PostGIS (trp_record_event, the
 * statements meridian-trips runs): a whole ride gives one row with every timestamp and its
 * events in order; the same events replayed (twice, and out of order) change nothing; a
 * forked replay (same seq, other content, as after a dispatch crash) does not overwrite;
 * the status follows the highest seq; the route, trip ETA and fare estimate come from the
 * graph, the ETA being the calibrated one at the request's New York hour and weekday; the
 * quote an event carries is recorded, and at completion the final fare is the route priced
 * over the real started -> completed time with the quote's surge.
 * Needs the stack (.run/env: MERIDIAN_PG_DSN, MERIDIAN_GRAPH).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "geo/ch.h"
#include "geo/snap.h"
#include "geo/snapshot.h"
#include "itest.h"
#include "mrd/tz.h"
#include "trips.h"

static char g_trip[64];
static mrd_tariff g_tariff; /* data/tariffs/nyc-yellow-2022-12-19.tariff */

static mrd_dispatch_event ev(mrd_event_type type, mrd_trip_status st, uint64_t seq,
                             const char *driver) {
  mrd_dispatch_event e;
  memset(&e, 0, sizeof e);
  e.type = type;
  e.status = st;
  strcpy(e.trip_id, g_trip);
  e.seq = seq;
  e.shard = 0;
  e.epoch = 1;
  e.ts_ms = 1700000000000 + (int64_t)seq * 1000;
  strcpy(e.rider_id, "itest-rider");
  snprintf(e.request_id, sizeof e.request_id, "req-%s", g_trip + 3);
  e.has_pickup = e.has_dropoff = true;
  e.pickup = (mrd_latlon){40.7075, -74.0113};
  e.dropoff = (mrd_latlon){40.7130, -74.0060};
  if (driver) strcpy(e.driver_id, driver);
  if (type == MRD_EV_MATCHED) {
    e.has_pickup_eta = true;
    e.pickup_eta_s = 61.4;
  }
  if (type == MRD_EV_REQUESTED || type == MRD_EV_MATCHED) { /* dispatch's quote */
    e.has_fare_quote = true;
    e.fare_quote_cents = 1234;
    e.surge = 1.3;
    strcpy(e.tariff, "nyc-yellow-2022-12-19");
  }
  return e;
}

static void record_all(mrd_pg *pg, const mrd_dispatch_event *e, size_t n, const geo_graph *g,
                       geo_route_state *st, int expect) {
  assert_int_equal(mrd_pg_begin(pg), 0);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(trp_record_event_priced(pg, &e[i], g, st, g ? &g_tariff : NULL), expect);
  assert_int_equal(mrd_pg_commit(pg), 0);
}

static char *one(mrd_pg *pg, const char *sql) {
  PGresult *res = NULL;
  const char *p[] = {g_trip};
  assert_int_equal(mrd_pg_exec(pg, &res, sql, 1, p), 0);
  assert_int_equal(PQntuples(res), 1);
  char *v = strdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  return v;
}

static void expect(mrd_pg *pg, const char *sql, const char *want) {
  char *v = one(pg, sql);
  if (strcmp(v, want) != 0) fail_msg("%s\n  got  %s\n  want %s", sql, v, want);
  free(v);
}

static const char ROW[] =
    "SELECT status || '|' || coalesce(driver_id, '-') || '|' || last_seq || '|' || pickup_eta_s || "
    "'|' || "
    "(requested_at IS NOT NULL AND offered_at IS NOT NULL AND matched_at IS NOT NULL AND "
    "arrived_at IS NOT NULL AND started_at IS NOT NULL AND completed_at IS NOT NULL) || '|' || "
    "extract(epoch from completed_at)::bigint FROM trips WHERE trip_id = $1";
static const char EVENTS[] =
    "SELECT string_agg(seq || ':' || type || ':' || coalesce(driver_id, '-'), ',' ORDER BY seq) "
    "FROM trip_events WHERE trip_id = $1";

static void test_ride_recorded_once_and_replays_change_nothing(void **state) {
  (void)state;
  mrd_pg *pg = NULL;
  assert_int_equal(mrd_pg_new(itest_env("MERIDIAN_PG_DSN"), NULL, &pg), 0);
  geo_graph *g = NULL;
  geo_route_state *st = NULL;
  assert_int_equal(geo_snapshot_load(itest_env("MERIDIAN_GRAPH"), &g), GEO_OK);
  assert_int_equal(geo_route_state_new(g, &st), GEO_OK);
  snprintf(g_trip, sizeof g_trip, "t0-itest%lld", (long long)time(NULL) * 1000 + rand() % 1000);

  mrd_dispatch_event ride[] = {
      ev(MRD_EV_REQUESTED, MRD_TRIP_REQUESTED, 1, NULL),
      ev(MRD_EV_OFFERED, MRD_TRIP_OFFERED, 2, "dA"),
      ev(MRD_EV_OFFER_DECLINED, MRD_TRIP_REQUESTED, 3, "dA"),
      ev(MRD_EV_OFFERED, MRD_TRIP_OFFERED, 4, "dB"),
      ev(MRD_EV_MATCHED, MRD_TRIP_MATCHED, 5, "dB"),
      ev(MRD_EV_ARRIVED, MRD_TRIP_ARRIVED, 6, "dB"),
      ev(MRD_EV_STARTED, MRD_TRIP_STARTED, 7, "dB"),
      ev(MRD_EV_COMPLETED, MRD_TRIP_COMPLETED, 8, "dB"),
  };
  size_t n = sizeof ride / sizeof ride[0];
  record_all(pg, ride, n, g, st, TRP_RECORDED);
  const char *row = "completed|dB|8|61|true|1700000008";
  const char *evs = "1:requested:-,2:offered:dA,3:offer_declined:dA,4:offered:dB,5:matched:dB,"
                    "6:arrived:dB,7:started:dB,8:completed:dB";
  expect(pg, ROW, row);
  expect(pg, EVENTS, evs);
  expect(pg,
         "SELECT (route IS NOT NULL AND trip_eta_s > 0 AND fare_estimate_cents > 300)::text "
         "FROM trips WHERE trip_id = $1",
         "true");
  /* The trip ETA is geo_graph_eta_ms of the route time at the REQUESTED event's local time:
   * ts 1700000001000 is Tuesday 2023-11-14 17:13 in New York (22:13 UTC). */
  geo_snap a, b;
  assert_int_equal(geo_graph_snap(g, (geo_latlng){40.7075, -74.0113}, 500, &a), GEO_OK);
  assert_int_equal(geo_graph_snap(g, (geo_latlng){40.7130, -74.0060}, 500, &b), GEO_OK);
  geo_route_result rr;
  assert_int_equal(geo_route(st, g, geo_ch_present(g) ? GEO_ROUTE_CH : GEO_ROUTE_DIJKSTRA, &a.place,
                             &b.place, &rr),
                   GEO_OK);
  double want_s = geo_graph_eta_ms(g, rr.time_ms, 17, 2) / 1000.0;
  /* fares: the quote as the event carried it; the estimate at least the flag drop and the
   * fixed surcharges; the final fare over the real 1 s from STARTED to COMPLETED: a ride at
   * speed, every unit a fifth of a mile of the route, with the quote's surge, the weekday
   * peak surcharge (Tuesday 17:13) and the fixed surcharges */
  expect(pg,
         "SELECT fare_quote_cents || '|' || surge_multiplier || '|' || fare_tariff FROM trips "
         "WHERE trip_id = $1",
         "1234|1.3|nyc-yellow-2022-12-19");
  expect(pg, "SELECT (fare_estimate_cents >= 300 + 400)::text FROM trips WHERE trip_id = $1",
         "true");
  char *len = one(pg, "SELECT route_length_m::text FROM trips WHERE trip_id = $1");
  assert_true(fabs(strtod(len, NULL) - rr.length_m) < 0.1);
  free(len);
  long units = (long)ceil(rr.length_m / (0.2 * 1609.344) - 1e-9);
  long metered = 300 + 70 * units;
  long total = metered + lround(metered * 0.3) + 250 + 50 + 100 + 250;
  char want_fare[64];
  snprintf(want_fare, sizeof want_fare, "%ld|%ld", total, metered);
  expect(pg,
         "SELECT fare_final_cents || '|' || fare_final_metered_cents FROM trips WHERE trip_id = $1",
         want_fare);
  char *eta = one(pg, "SELECT trip_eta_s::text FROM trips WHERE trip_id = $1");
  if (fabs(strtod(eta, NULL) - want_s) > 0.501) /* the column holds whole seconds */
    fail_msg("trip_eta_s %s, want %.3f (route time %.3f s)", eta, want_s, rr.time_ms / 1000.0);
  free(eta);
  char *updated = one(pg, "SELECT updated_at::text FROM trips WHERE trip_id = $1");

  /* the same events again (at-least-once delivery): nothing changes, not even updated_at */
  record_all(pg, ride, n, g, st, TRP_DUPLICATE);
  /* and replayed backwards */
  assert_int_equal(mrd_pg_begin(pg), 0);
  for (size_t i = n; i-- > 0;)
    assert_int_equal(trp_record_event_priced(pg, &ride[i], g, st, &g_tariff), TRP_DUPLICATE);
  assert_int_equal(mrd_pg_commit(pg), 0);
  expect(pg, ROW, row);
  expect(pg, EVENTS, evs);
  char *updated2 = one(pg, "SELECT updated_at::text FROM trips WHERE trip_id = $1");
  assert_string_equal(updated, updated2);
  free(updated);
  free(updated2);

  /* a forked replay (same seq, other driver) does not overwrite what was recorded */
  mrd_dispatch_event fork = ev(MRD_EV_MATCHED, MRD_TRIP_MATCHED, 5, "dZ");
  record_all(pg, &fork, 1, g, st, TRP_DUPLICATE);
  expect(pg, ROW, row);
  expect(pg,
         "SELECT count(*)::text FROM trips WHERE request_id = (SELECT request_id FROM trips WHERE "
         "trip_id = $1)",
         "1");

  /* a rejection is not part of the record */
  mrd_dispatch_event rej = ev(MRD_EV_COMMAND_REJECTED, MRD_TRIP_NONE, 0, "dB");
  assert_int_equal(trp_record_event(pg, &rej, g, st), TRP_SKIPPED);

  geo_route_state_free(st);
  geo_graph_free(g);
  mrd_pg_free(pg);
}

static void test_status_follows_highest_seq_when_events_arrive_late(void **state) {
  (void)state;
  mrd_pg *pg = NULL;
  assert_int_equal(mrd_pg_new(itest_env("MERIDIAN_PG_DSN"), NULL, &pg), 0);
  snprintf(g_trip, sizeof g_trip, "t1-itestlate%lld", (long long)time(NULL) * 1000 + rand() % 1000);
  mrd_dispatch_event a = ev(MRD_EV_REQUESTED, MRD_TRIP_REQUESTED, 1, NULL);
  mrd_dispatch_event c = ev(MRD_EV_CANCELLED, MRD_TRIP_CANCELLED, 2, NULL);
  a.shard = c.shard = 1;
  strcpy(c.reason, "rider");
  /* the later event first: the row starts from it, the earlier one fills requested_at */
  record_all(pg, &c, 1, NULL, NULL, TRP_RECORDED);
  record_all(pg, &a, 1, NULL, NULL, TRP_RECORDED);
  expect(pg,
         "SELECT status || '|' || reason || '|' || last_seq || '|' || "
         "extract(epoch from requested_at)::bigint FROM trips WHERE trip_id = $1",
         "cancelled|rider|2|1700000001");
  mrd_pg_free(pg);
}

int main(void) {
  srand((unsigned)time(NULL));
  if (mrd_timezone_set(MRD_TIMEZONE_DEFAULT) != 0) return 1; /* as meridian-trips does */
  const char *src = getenv("MERIDIAN_SOURCE_DIR");
  char path[1024], err[300];
  snprintf(path, sizeof path, "%s/data/tariffs/nyc-yellow-2022-12-19.tariff", src ? src : ".");
  if (mrd_tariff_load(path, &g_tariff, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ride_recorded_once_and_replays_change_nothing),
      cmocka_unit_test(test_status_follows_highest_seq_when_events_arrive_late),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
