/*
 * trips_map.c: DispatchEvent -> statement parameters for meridian-trips (trips.h). Pure.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "trips.h"

const char TRP_SQL_EVENT[] =
    "INSERT INTO trip_events (trip_id, seq, type, driver_id, shard, epoch, at, payload, "
    "generation) "
    "VALUES ($1, $2::integer, $3, $4, $5::integer, $6::bigint, "
    "to_timestamp($7::double precision / 1000), $8::jsonb, $9::bigint) "
    "ON CONFLICT (trip_id, seq) DO NOTHING";

#define TS(n) "to_timestamp($" #n "::double precision / 1000)"
const char TRP_SQL_TRIP[] =
    "INSERT INTO trips (trip_id, request_id, rider_id, driver_id, status, shard, "
    "epoch, pickup, "
    "dropoff, pickup_eta_s, reason, last_seq, requested_at, offered_at, "
    "matched_at, arrived_at, "
    "started_at, completed_at, cancelled_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6::integer, $7::bigint, ST_GeogFromText($8), "
    "ST_GeogFromText($9), round($10::double precision)::integer, $11, "
    "$12::integer, " TS(13) ", " TS(14) ", " TS(15) ", " TS(16) ", " TS(17) ", " TS(18) ", " TS(
        19) ", now()) "
            "ON CONFLICT (trip_id) DO UPDATE SET "
            "status = CASE WHEN EXCLUDED.last_seq > "
            "trips.last_seq THEN EXCLUDED.status ELSE "
            "trips.status END, "
            "reason = CASE WHEN EXCLUDED.last_seq > "
            "trips.last_seq THEN "
            "COALESCE(EXCLUDED.reason, trips.reason) "
            "ELSE COALESCE(trips.reason, EXCLUDED.reason) "
            "END, "
            "last_seq = GREATEST(trips.last_seq, "
            "EXCLUDED.last_seq), "
            "driver_id = COALESCE(EXCLUDED.driver_id, "
            "trips.driver_id), "
            "pickup_eta_s = "
            "COALESCE(EXCLUDED.pickup_eta_s, "
            "trips.pickup_eta_s), "
            "requested_at = LEAST(trips.requested_at, "
            "EXCLUDED.requested_at), "
            "offered_at = COALESCE(trips.offered_at, "
            "EXCLUDED.offered_at), "
            "matched_at = COALESCE(trips.matched_at, "
            "EXCLUDED.matched_at), "
            "arrived_at = COALESCE(trips.arrived_at, "
            "EXCLUDED.arrived_at), "
            "started_at = COALESCE(trips.started_at, "
            "EXCLUDED.started_at), "
            "completed_at = COALESCE(trips.completed_at, "
            "EXCLUDED.completed_at), "
            "cancelled_at = COALESCE(trips.cancelled_at, "
            "EXCLUDED.cancelled_at), "
            "updated_at = now()";

const char TRP_SQL_ROUTE[] =
    "UPDATE trips SET route = ST_GeogFromText($2), trip_eta_s = round($3::double "
    "precision)::integer, "
    "fare_estimate_cents = $4::integer, route_length_m = $5::double precision "
    "WHERE trip_id = $1 AND route IS NULL";

const char TRP_SQL_QUOTE[] =
    "UPDATE trips SET fare_quote_cents = $2::integer, surge_multiplier = $3::double precision, "
    "fare_tariff = $4 WHERE trip_id = $1 AND fare_quote_cents IS NULL";

const char TRP_SQL_FINAL_READ[] =
    "SELECT (extract(epoch from started_at) * 1000)::bigint, surge_multiplier FROM trips "
    "WHERE trip_id = $1";

const char TRP_SQL_FINAL[] =
    "UPDATE trips SET fare_final_cents = $2::integer, fare_final_metered_cents = $3::integer "
    "WHERE trip_id = $1 AND fare_final_cents IS NULL";

static const char *nz(const char *s) { return s && s[0] ? s : NULL; }

int trp_map_event(const mrd_dispatch_event *ev, trp_row *o) {
  memset(o, 0, sizeof *o);
  if (ev->type == MRD_EV_COMMAND_REJECTED) return TRP_SKIPPED;
  if (!ev->trip_id[0] || ev->seq < 1 || ev->seq > INT32_MAX || !ev->rider_id[0] ||
      !ev->request_id[0] || !ev->has_pickup || !ev->has_dropoff || ev->status == MRD_TRIP_NONE)
    return TRP_INCOMPLETE;
  snprintf(o->seq, sizeof o->seq, "%llu", (unsigned long long)ev->seq);
  snprintf(o->type, sizeof o->type, "%s", mrd_event_type_name(ev->type));
  snprintf(o->shard, sizeof o->shard, "%u", ev->shard);
  snprintf(o->epoch, sizeof o->epoch, "%llu", (unsigned long long)ev->epoch);
  snprintf(o->at, sizeof o->at, "%lld", (long long)ev->ts_ms);
  snprintf(o->status, sizeof o->status, "%s", mrd_trip_status_name(ev->status));
  snprintf(o->pickup, sizeof o->pickup, "SRID=4326;POINT(%.7f %.7f)", ev->pickup.lon,
           ev->pickup.lat);
  snprintf(o->dropoff, sizeof o->dropoff, "SRID=4326;POINT(%.7f %.7f)", ev->dropoff.lon,
           ev->dropoff.lat);
  if (ev->has_pickup_eta) snprintf(o->eta, sizeof o->eta, "%.3f", ev->pickup_eta_s);

  json_t *j = json_object();
  if (!j) return TRP_NOMEM;
  json_object_set_new(j, "status", json_string(o->status));
  json_object_set_new(j, "rider_id", json_string(ev->rider_id));
  json_object_set_new(j, "request_id", json_string(ev->request_id));
  if (ev->driver_id[0]) json_object_set_new(j, "driver_id", json_string(ev->driver_id));
  if (ev->offer_id[0]) json_object_set_new(j, "offer_id", json_string(ev->offer_id));
  if (ev->reason[0]) json_object_set_new(j, "reason", json_string(ev->reason));
  if (ev->has_pickup_eta) json_object_set_new(j, "pickup_eta_s", json_real(ev->pickup_eta_s));
  if (ev->expires_at_ms) json_object_set_new(j, "expires_at_ms", json_integer(ev->expires_at_ms));
  if (ev->has_driver_pos)
    json_object_set_new(
        j, "driver_pos",
        json_pack("{s:f,s:f}", "lat", ev->driver_pos.lat, "lon", ev->driver_pos.lon));
  int w = json_dumpb(j, o->payload, sizeof o->payload - 1, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(j);
  if (w <= 0 || (size_t)w >= sizeof o->payload) return TRP_INCOMPLETE; /* does not fit */
  o->payload[w] = '\0';

  bool matched = ev->type == MRD_EV_MATCHED;
  const char **e = o->ev;
  e[0] = ev->trip_id;
  e[1] = o->seq;
  e[2] = o->type;
  e[3] = nz(ev->driver_id);
  e[4] = o->shard;
  e[5] = o->epoch;
  e[6] = o->at;
  e[7] = o->payload;
  snprintf(o->generation, sizeof o->generation, "%llu", (unsigned long long)ev->generation);
  e[8] = o->generation;

  const char **t = o->trip;
  t[0] = ev->trip_id;
  t[1] = ev->request_id;
  t[2] = ev->rider_id;
  t[3] = matched ? ev->driver_id : NULL;
  t[4] = o->status;
  t[5] = o->shard;
  t[6] = o->epoch;
  t[7] = o->pickup;
  t[8] = o->dropoff;
  t[9] = matched ? nz(o->eta) : NULL;
  t[10] = (ev->type == MRD_EV_CANCELLED || ev->type == MRD_EV_NO_DRIVER) ? nz(ev->reason) : NULL;
  t[11] = o->seq;
  t[12] = o->at;
  int col = -1; /* offered_at .. cancelled_at = 13 .. 18 */
  switch (ev->type) {
  case MRD_EV_OFFERED: col = 13; break;
  case MRD_EV_MATCHED: col = 14; break;
  case MRD_EV_ARRIVED: col = 15; break;
  case MRD_EV_STARTED: col = 16; break;
  case MRD_EV_COMPLETED: col = 17; break;
  case MRD_EV_CANCELLED: col = 18; break;
  default: break;
  }
  if (col >= 0) t[col] = o->at;
  return 0;
}
