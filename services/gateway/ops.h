/*
 * ops.h: the city as the ops stream (/v1/ops, docs/protocol.md "Ops stream") shows it, and
 * the frames each ops connection is sent. Pure: no sockets, no Kafka, no Redis; time comes
 * in as arguments. ops_io.c feeds it and ws_server.c only hands frames to the connection.
 *
 * Where the city-wide state comes from (a gateway only sees its own connections):
 *   - driver positions: every partition of `driver-locations` (owner copies; halo copies are
 *     skipped), consumed only while an ops client is connected;
 *   - driver states: `dispatch-events` (offered, to pickup, on trip, back to available) and
 *     the `status` commands of `dispatch-commands` (available / offline);
 *   - trips: `dispatch-events`, seeded from the live trips dispatch keeps in Redis;
 *   - shard ranges and epoch: the gateway's shard map, plus moves in progress;
 *   - hot cells: Redis `hot:supply:{shard}` / `hot:demand:{shard}`;
 *   - per-shard rates: counted here from the events and locations above.
 *
 * Bandwidth: positions are quantised to 1e-5 degree (about 1 m) and sent as deltas from
 * what this connection was last sent, in a flat integer array; each frame has a byte budget
 * (budget_bps x period). New drivers and state changes go first, then moved drivers from a
 * round-robin cursor, so when the city moves more than the budget allows every driver is
 * still refreshed in turn (sampling), never starved. 20,000 drivers pinging once a second
 * therefore stay under the budget (150 KB/s by default) at the cost of staleness.
 *
 * Invariants (gw_ops_check): every live driver slot is in the id table exactly once; live
 * trips fit their table; a connection's view never names a slot newer than the slot's
 * generation. Not thread-safe (the lws loop only).
 */
#ifndef MRD_GATEWAY_OPS_H
#define MRD_GATEWAY_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrd/proto.h"
#include "shardmap.h"

/* Driver states on the map (the `s` of a driver in the stream). */
typedef enum gw_ops_state {
  GW_OPS_AVAILABLE = 0, /* pinging, no trip */
  GW_OPS_OFFERED = 1,   /* an offer is out to him */
  GW_OPS_PICKUP = 2,    /* matched or arrived: going to / waiting at the pickup */
  GW_OPS_ON_TRIP = 3,   /* rider on board */
  GW_OPS_OFFLINE = 4,   /* said `status offline`, still known */
  GW_OPS_STATE_COUNT
} gw_ops_state;

#define GW_OPS_E5 100000.0   /* quantisation: 1e-5 degree */
#define GW_OPS_MSG_MAX 16000 /* bytes of one stream message (the send path's batch) */
#define GW_OPS_MAX_DRIVERS 65536
#define GW_OPS_MAX_TRIPS 32768
#define GW_OPS_RATE_WINDOW_S 10 /* rates are averaged over the last 10 s */
#define GW_OPS_LAT_SAMPLES 512  /* request -> offer latencies kept per shard */

typedef struct gw_ops_config {
  int64_t period_ms;      /* frame period: 1000 */
  int64_t budget_bps;     /* bytes a second per connection for the whole stream: 150000 */
  int64_t driver_ttl_ms;  /* a driver not heard of for this long leaves the map: 30000 */
  int64_t trip_linger_ms; /* an ended trip stays on the map this long: 5000 */
  double min_lat, min_lon, max_lat, max_lon; /* the box shard ranges are drawn in */
} gw_ops_config;

/* Manhattan's box (data/roads/manhattan-boundary.geojson, rounded out). */
#define GW_OPS_CONFIG_DEFAULT                                                                      \
  { 1000, 150000, 30000, 5000, 40.68, -74.05, 40.89, -73.90 }

/* One hot cell (Redis hot:supply / hot:demand, shards added up, and hot:surge). */
typedef struct gw_ops_hot_cell {
  char geohash[13];
  uint32_t supply; /* available drivers */
  uint32_t demand; /* ride requests in the last minute */
  double surge;    /* the published surge multiplier (> 1), or 0 = none published */
} gw_ops_hot_cell;

/* Which Redis hash a hot-cell field comes from. */
typedef enum gw_ops_hot_kind {
  GW_OPS_HOT_SUPPLY,
  GW_OPS_HOT_DEMAND,
  GW_OPS_HOT_SURGE
} gw_ops_hot_kind;

/* Most surge a cell is shown with: dispatch's cap is at most 100 (MERIDIAN_SURGE_CAP). */
#define GW_OPS_SURGE_MAX 100.0

/* Add one field of a hot hash (hot:supply:{k} / hot:demand:{k}: a count, added up over the
 * shards; hot:surge:{k}: a multiplier text such as "1.40", the highest kept) to the cell list
 * *cells (*n used of *cap, grown with realloc; the caller frees it). A geohash of 1-12
 * base-32 characters; a count is a decimal in 0..2^32-1, a surge a finite decimal in
 * (1, GW_OPS_SURGE_MAX]. Returns 0 when added, 1 when the field is refused (bad geohash or
 * value: the cell is not touched), -1 without memory. */
int gw_ops_hot_add(gw_ops_hot_cell **cells, size_t *n, size_t *cap, const char *geohash,
                   gw_ops_hot_kind kind, const char *value);

/* A move of a geohash range from one shard to another, in progress. */
typedef struct gw_ops_move {
  char start[GW_RANGE_KEY_MAX + 1];
  char end[GW_RANGE_KEY_MAX + 1];
  uint32_t from_shard, to_shard;
  uint64_t epoch; /* the epoch the move makes (written with the map by the shard tool) */
  char state[24]; /* gw_ops_move_state's word */
} gw_ops_move;

/* What a step of `meridianctl shards apply|move` (PostgreSQL shard_runs: the run's state and
 * its step under way) is doing, from the run's state and the epochs involved; the first
 * that holds:
 *   "done", "failed"  the run ended (shown for a few seconds after, so that a step quicker
 *                     than a frame is seen at all; its last step for "done");
 *   "interrupted"     the run is 'running' but the CLI is gone (its lock is free);
 *   "switching"       this gateway does not route by the step's epoch yet;
 *   "warming"         the receiving shard does not serve it yet (it loads the drivers);
 *   "releasing"       the giving shard does not serve it yet (it lets go of the range);
 *   "confirmed"       both shards serve it: the run goes on to its next step.
 * run_state is shard_runs.state ("running", "done", "failed"); serving epochs are the
 * shards' own reports (dispatch:stats:{k} epoch; 0 = unknown). */
const char *gw_ops_move_state(const char *run_state, uint64_t step_epoch, uint64_t gateway_epoch,
                              uint64_t from_serving, uint64_t to_serving, bool cli_alive);

typedef struct gw_ops gw_ops;           /* the city */
typedef struct gw_ops_view gw_ops_view; /* what one connection has been sent */

/* A new, empty city. NULL on a bad config (period or budget <= 0) or no memory. */
gw_ops *gw_ops_new(const gw_ops_config *cfg);
void gw_ops_free(gw_ops *o);

/* ---- inputs ------------------------------------------------------------------------ */

/* A position from driver-locations (halo copies are ignored). Returns 0, or -1 when the
 * table is full (the driver is not shown). */
int gw_ops_location(gw_ops *o, const mrd_driver_location *loc, int64_t now_ms);
/* A command (dispatch-commands): a status (available / offline) changes the driver's state;
 * a ride request's receive time (ts_ms) is remembered by request_id for the request ->
 * offer latency. Other kinds are ignored. */
void gw_ops_command(gw_ops *o, const mrd_command *cmd, int64_t now_ms);
/* A dispatch event: trips, driver states, per-shard rates. */
void gw_ops_event(gw_ops *o, const mrd_dispatch_event *ev, int64_t now_ms);
/* Replace the hot cells (copied; geohash of at most 12 characters each). */
int gw_ops_set_hot(gw_ops *o, const gw_ops_hot_cell *cells, size_t n);
/* Replace the shard map shown (borrowed: the caller keeps it alive until the next call) and
 * the moves in progress (copied, at most 64). The map may be NULL (none yet). */
void gw_ops_set_shards(gw_ops *o, const gw_shardmap *map, const gw_ops_move *moves, size_t n_moves);
/* Forget drivers not heard of for driver_ttl_ms and trips ended trip_linger_ms ago. */
void gw_ops_expire(gw_ops *o, int64_t now_ms);

/* Counts, for tests and metrics. */
size_t gw_ops_driver_count(const gw_ops *o);
size_t gw_ops_trip_count(const gw_ops *o);

/* ---- per-shard rates ----------------------------------------------------------------- */

typedef struct gw_ops_shard_stats {
  uint32_t shard;
  double requests_per_s, matched_per_s, no_driver_per_s, locations_per_s;
  double match_rate; /* matched / (matched + no_driver) over the window; -1 when none */
  double offer_p50_ms, offer_p99_ms; /* request -> first offer (dispatch's clock); -1 none */
  uint32_t drivers;                  /* drivers on the map whose last position the shard owns */
  uint32_t trips;                    /* live trips of the shard */
} gw_ops_shard_stats;

/* The stats of shard k at now_ms. */
void gw_ops_shard_stats_get(const gw_ops *o, uint32_t k, int64_t now_ms, gw_ops_shard_stats *out);

/* ---- per-connection stream ----------------------------------------------------------- */

/* A connection's view: created when an ops client connects, freed when it leaves. */
gw_ops_view *gw_ops_view_new(const gw_ops *o);
void gw_ops_view_free(gw_ops_view *v);

/* Receives one stream message (JSON text, len bytes, at most GW_OPS_MSG_MAX). Returns 0, or
 * non-zero to stop the frame (the rest is sent at the next one). */
typedef int (*gw_ops_emit_fn)(void *ud, const char *json, size_t len);

/* One frame for the view at now_ms: the `hello` on the first frame, `shards` when the map or
 * the moves changed (and on the first frame), `hot` when the cells changed, `trips` with
 * the trips changed since the last frame, `drivers` within the budget, and `stats`. Every
 * message is handed to emit. Returns the bytes emitted. */
size_t gw_ops_frame(gw_ops *o, gw_ops_view *v, int64_t now_ms, gw_ops_emit_fn emit, void *ud);

/* ---- the ops client's messages (/v1/ops) ------------------------------------------------- */

/* `{"type":"config","period_ms"?,"budget_bps"?,"ref"?}`: changes this view's period (250 to
 * 10000 ms) and budget (10000 to the gateway's budget). Returns 0 and writes the ack into
 * reply, or -1 and writes an error message (docs/protocol.md error object) into reply. */
int gw_ops_handle(gw_ops *o, gw_ops_view *v, const char *text, size_t len, char *reply, size_t cap);

/* The frame period the view asked for. */
int64_t gw_ops_view_period_ms(const gw_ops_view *v);

/* ---- drawing helpers ------------------------------------------------------------------ */

/* The geohash cells of exactly `precision` characters that draw [start, end) within the box
 * [min_lat, max_lat] x [min_lon, max_lon]: a cell the range cuts goes to the range holding
 * its first point, so the cells of a map's ranges tile the box once. Writes up to cap
 * NUL-terminated cells of 13 bytes and returns how many there are (may exceed cap: then
 * only cap were written). */
size_t gw_ops_range_cells(const char *start, const char *end, double min_lat, double min_lon,
                          double max_lat, double max_lon, int precision, char (*cells)[13],
                          size_t cap);

/* The road graph as GeoJSON for the map (GET /v1/ops/roads): a FeatureCollection with one
 * MultiLineString per road class ("class": libgeo's geo_road_class, 0 motorway .. 14 other),
 * each road once (an arc and its twin are one line), coordinates [lon, lat] rounded to
 * 1e-5 degree, shape points included. Returns 0 with a malloc'd body in *out (free it) and
 * its length, or -1 (no memory). */
struct geo_graph;
int gw_ops_roads_geojson(const struct geo_graph *g, char **out, size_t *len);

/* Check the invariants; 0 when they hold, else -1 with a reason in why. Test API (no
 * service calls it): tests/gateway/test_gateway_ops.c. */
int gw_ops_check(const gw_ops *o, char *why, size_t cap);

#endif /* MRD_GATEWAY_OPS_H */
