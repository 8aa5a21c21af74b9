/*
 * trips.h: the pure part of meridian-trips: how one DispatchEvent becomes the parameters
 * of the two statements that record it (an append to trip_events, and an upsert of the
 * trip's row in trips), and the fares of a trip's route (services/fare). No database, no Kafka:
 * trips_io.c runs the statements (TRP_SQL_*) with these parameters inside one transaction per
 * batch.
 *
 * Idempotence is in the SQL: trip_events has the primary key (trip_id, seq), the event is
 * inserted with ON CONFLICT DO NOTHING, and the trip row is only upserted when that insert
 * added a row, so a replayed event changes nothing; the row's status follows the highest
 * seq seen, and each step's timestamp is the first one recorded.
 */
#ifndef TRP_TRIPS_H
#define TRP_TRIPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fare.h"
#include "geo/graph.h"
#include "geo/route.h"
#include "mrd/pg.h"
#include "mrd/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parameters of TRP_SQL_EVENT: trip_id, seq, type, driver_id, shard, epoch, at (Unix ms),
 * payload (JSON), generation (the producer's lease generation; 0 when absent). */
#define TRP_EVENT_PARAMS 9
/* Parameters of TRP_SQL_TRIP: trip_id, request_id, rider_id, driver_id (NULL unless
 * matched), status, shard, epoch, pickup (WKT), dropoff (WKT), pickup_eta_s (NULL unless
 * matched), reason, seq, at (ms), then the ms of the step this event is, in the columns
 * offered_at, matched_at, arrived_at, started_at, completed_at, cancelled_at (NULL for the
 * others). */
#define TRP_TRIP_PARAMS 19

extern const char TRP_SQL_EVENT[];
extern const char TRP_SQL_TRIP[];
/* $1 trip_id, $2 route (WKT LINESTRING), $3 trip_eta_s, $4 fare_estimate_cents (NULL
 * without a tariff), $5 route_length_m: set once. */
extern const char TRP_SQL_ROUTE[];
#define TRP_ROUTE_PARAMS 5
/* $1 trip_id, $2 fare_quote_cents, $3 surge_multiplier, $4 fare_tariff: the quote an
 * event carries (dispatch's, made at the request), set once. */
extern const char TRP_SQL_QUOTE[];
/* $1 trip_id -> started_at (Unix ms, NULL when not started), surge_multiplier (NULL when
 * no quote). */
extern const char TRP_SQL_FINAL_READ[];
/* $1 trip_id, $2 fare_final_cents, $3 fare_final_metered_cents: set once. */
extern const char TRP_SQL_FINAL[];

/* The text parameters of one event (NULL entries are SQL NULL). Strings point into the
 * struct itself. */
typedef struct trp_row {
  const char *ev[TRP_EVENT_PARAMS];
  const char *trip[TRP_TRIP_PARAMS];
  char seq[24], type[24], shard[12], epoch[24], at[24], status[16], eta[32], generation[24];
  char pickup[80], dropoff[80];
  char payload[1024];
} trp_row;

/* Fill *out for ev. Returns 0, or the TRP_* outcome (below) that stops it: TRP_SKIPPED (not
 * part of a trip's record: COMMAND_REJECTED, nothing to write), TRP_INCOMPLETE (it lacks
 * what the record needs: trip id, seq, rider, request, pickup, drop-off, status; or its
 * fields do not fit the row), TRP_NOMEM. */
int trp_map_event(const mrd_dispatch_event *ev, trp_row *out);

/* The fare of the last route on st (result r, graph g) under tariff t, for a ride that
 * starts at start_ms (its local weekday and time give the time-of-day surcharges): with
 * duration_s < 0 the legs take the calibrated ETA at that local hour (the estimate), else
 * they are scaled to take duration_s in all (the final fare: the real time between STARTED
 * and COMPLETED), each arc keeping its share of the time and so its speed class. surge >=
 * 1 multiplies the metered part. Returns 0, TRP_INCOMPLETE (what the fare needs is not
 * there: bad arguments, a start beyond the calendar, legs the meter cannot price) or
 * TRP_NOMEM; out untouched on failure. Pure apart from the process's time zone. */
int trp_route_fare(const geo_graph *g, const geo_route_state *st, const geo_route_result *r,
                   const mrd_tariff *t, int64_t start_ms, double duration_s, double surge,
                   mrd_fare *out);

/* Outcomes of trp_map_event and trp_record_event: what happened to an event (>= 0, the
 * event's own), or a failure (< 0) after which the caller rolls the transaction back and
 * may try again. */
enum {
  TRP_RECORDED = 0,   /* a new event: appended, and the trip row upserted */
  TRP_DUPLICATE = 1,  /* (trip_id, seq) was recorded already: nothing changed */
  TRP_SKIPPED = 2,    /* not part of a trip's record (COMMAND_REJECTED) */
  TRP_INCOMPLETE = 3, /* lacks what the record needs: nothing written */
  TRP_DB_ERROR = -1,  /* a statement failed */
  TRP_NOMEM = -2      /* out of memory: nothing written */
};

/* Record ev with pg, inside the caller's transaction (trips_db.c). Test API (meridian-trips
 * calls trp_record_event_priced): tests/trips/test_trips_pg.c. g and st (may be NULL)
 * give a new trip its route line, trip ETA and fare estimate: the ETA (trip_eta_s, and the
 * fare's minutes) is the calibrated geo_graph_eta_ms of the route time at the local hour and
 * weekday of the REQUESTED event's ts_ms, in the process's time zone (meridian-trips sets
 * it from MERIDIAN_TIMEZONE). Returns a TRP_* outcome. */
int trp_record_event(mrd_pg *pg, const mrd_dispatch_event *ev, const geo_graph *g,
                     geo_route_state *st);

/* trp_record_event with a rate card (may be NULL: no fares): a new trip's
 * fare_estimate_cents is t's fare of its route at the calibrated ETA; the quote an event
 * carries (fare_quote_cents, surge, tariff) is recorded once; at COMPLETED the final fare
 * is the route priced over the real started -> completed time (trp_route_fare) with the
 * quote's surge (fare_final_cents, fare_final_metered_cents). */
int trp_record_event_priced(mrd_pg *pg, const mrd_dispatch_event *ev, const geo_graph *g,
                            geo_route_state *st, const mrd_tariff *t);

#ifdef __cplusplus
}
#endif
#endif /* TRP_TRIPS_H */
