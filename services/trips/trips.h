/*
 * trips.h: the pure part of meridian-trips: how one DispatchEvent becomes the parameters
 * of the two statements that record it (an append to trip_events, and an upsert of the
 * trip's row in trips), and a simple fare estimate. No database, no Kafka: trips_io.c runs
 * the statements (TRP_SQL_*) with these parameters inside one transaction per batch.
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
/* $1 trip_id, $2 route (WKT LINESTRING), $3 trip_eta_s, $4 fare_estimate_cents: set once. */
extern const char TRP_SQL_ROUTE[];

/* The text parameters of one event (NULL entries are SQL NULL). Strings point into the
 * struct itself. */
typedef struct trp_row {
  const char *ev[TRP_EVENT_PARAMS];
  const char *trip[TRP_TRIP_PARAMS];
  char seq[24], type[24], shard[12], epoch[24], at[24], status[16], eta[32], generation[24];
  char pickup[80], dropoff[80];
  char payload[1024];
} trp_row;

/* Fill *out for ev. Returns 0; 1 when the event is not part of a trip's record
 * (COMMAND_REJECTED: nothing to write); -1 when it lacks what the record needs (trip id,
 * seq, rider, request, pickup, drop-off). */
int trp_map_event(const mrd_dispatch_event *ev, trp_row *out);

/* A fare estimate in cents for a trip of length_m metres and time_s seconds: base 300 +
 * 120 per km + 40 per minute (a documented placeholder tariff, not a pricing engine). */
int trp_fare_cents(double length_m, double time_s);

/* Outcomes of trp_record_event. */
enum {
  TRP_RECORDED = 0,   /* a new event: appended, and the trip row upserted */
  TRP_DUPLICATE = 1,  /* (trip_id, seq) was recorded already: nothing changed */
  TRP_SKIPPED = 2,    /* not part of a trip's record (COMMAND_REJECTED) */
  TRP_INCOMPLETE = 3, /* lacks what the record needs: nothing written */
  TRP_DB_ERROR = -1   /* a statement failed: the caller rolls the transaction back */
};

/* Record ev with pg, inside the caller's transaction (trips_db.c). g and st (may be NULL)
 * give a new trip its route line, trip ETA and fare estimate: the ETA (trip_eta_s, and the
 * fare's minutes) is the calibrated geo_graph_eta_ms of the route time at the local hour and
 * weekday of the REQUESTED event's ts_ms, in the process's time zone (meridian-trips sets
 * it from MERIDIAN_TIMEZONE). Returns a TRP_* outcome. */
int trp_record_event(mrd_pg *pg, const mrd_dispatch_event *ev, const geo_graph *g,
                     geo_route_state *st);

#ifdef __cplusplus
}
#endif
#endif /* TRP_TRIPS_H */
