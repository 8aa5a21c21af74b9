/*
 * dispatch.h: the pure domain core of one dispatch shard: its drivers and
 * their states, matching by road ETA, offers and their expiry, the trip state machine,
 * and the batched (Hungarian) mode.
 *
 * The core touches no socket and reads no clock. Every entry point takes the current time
 * (`now_ms`, Unix ms) as an argument, and its effects come out as a list of outputs the
 * caller executes: events for `dispatch-events`, replies (refusals) addressed to the
 * sender of a command, and per-trip snapshot updates for Redis. Its three dependencies are
 * small interfaces the caller provides: a spatial index of drivers (the libgeo QuadTree in
 * production), a router (snapping and one-to-many road ETAs on the reverse graph) and a
 * claim store (Redis SET NX PX in production, dsp_claims_mem in memory otherwise).
 *
 * This is not the service: no Kafka, no Redis, no threads. A dsp_shard is used from one
 * thread at a time. docs/dispatch.md has the state tables, the matching algorithm and the
 * claim protocol.
 */
#ifndef DSP_DISPATCH_H
#define DSP_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "geo/geo.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest id (driver, rider, request, trip, offer), in bytes without the NUL. */
#define DSP_ID_MAX 64
/* Longest reason text of an event, in bytes without the NUL. */
#define DSP_REASON_MAX 64
/* Most widening steps of the search radius. */
#define DSP_MAX_RADII 8

/* Return codes of the core: 0 is success, every failure a negative DSP_E*. A command
 * refused with DSP_ESTATE, DSP_EUNKNOWN_OFFER, DSP_EFORBIDDEN or DSP_EINVAL has also
 * queued a reply to its sender, and changed nothing else. */
enum {
  DSP_OK = 0,
  DSP_EINVAL = -1,         /* malformed input (bad id, position, config) */
  DSP_ENOMEM = -2,         /* out of memory; the shard is unchanged */
  DSP_ESTATE = -3,         /* the step is not allowed in the current state: invalid_state */
  DSP_EUNKNOWN_OFFER = -4, /* no such live offer for this driver: unknown_offer */
  DSP_EFORBIDDEN = -5,     /* the sender may not do this (another rider's request) */
  DSP_ESTALE = -6,         /* a ping older than (or the same as) the last one seen: ignored */
  DSP_ENOTFOUND = -7,      /* a query found nothing */
  DSP_ERANGE = -8,         /* a structure's capacity would be exceeded; it is unchanged */
};

/* A human-readable name of a DSP_E* code; never NULL. */
const char *dsp_strerror(int rc);

/* ---------------------------------------------------------------- states */

/* Driver states. The numbering is the core's own. */
typedef enum dsp_driver_state {
  DSP_DRIVER_OFFLINE = 0,
  DSP_DRIVER_AVAILABLE,
  DSP_DRIVER_OFFERED,  /* claimed by this shard, holds one live offer */
  DSP_DRIVER_EN_ROUTE, /* matched: on his way to the pickup, or waiting there */
  DSP_DRIVER_ON_TRIP,  /* the rider is on board */
} dsp_driver_state;

/* Trip states; the numbering is that of DispatchEvent.Status in
 * schemas/kafka/dispatch_event.proto. */
typedef enum dsp_trip_state {
  DSP_TRIP_REQUESTED = 1,
  DSP_TRIP_OFFERED = 2,
  DSP_TRIP_MATCHED = 3,
  DSP_TRIP_ARRIVED = 4,
  DSP_TRIP_STARTED = 5,
  DSP_TRIP_COMPLETED = 6,
  DSP_TRIP_CANCELLED = 7,
  DSP_TRIP_NO_DRIVER = 8,
} dsp_trip_state;

/* Event types; the numbering is that of DispatchEvent.Type (COMMAND_REJECTED = 11 is a
 * dsp_reply here). */
typedef enum dsp_event_type {
  DSP_EV_REQUESTED = 1,
  DSP_EV_OFFERED = 2,
  DSP_EV_OFFER_DECLINED = 3,
  DSP_EV_OFFER_EXPIRED = 4,
  DSP_EV_MATCHED = 5,
  DSP_EV_ARRIVED = 6,
  DSP_EV_STARTED = 7,
  DSP_EV_COMPLETED = 8,
  DSP_EV_CANCELLED = 9,
  DSP_EV_NO_DRIVER = 10,
} dsp_event_type;

/* Why a trip ended with no driver. The names (dsp_no_driver_reason_name) are the NO_DRIVER
 * event's reason and the reason label of meridian_dispatch_no_driver_total. */
typedef enum dsp_no_driver_reason {
  DSP_NO_DRIVER_PICKUP_OUT_OF_AREA = 0, /* "pickup_out_of_area": no road near the pickup */
  DSP_NO_DRIVER_DROPOFF_OUT_OF_AREA,    /* "dropoff_out_of_area" */
  DSP_NO_DRIVER_NEARBY,                 /* "no_driver_nearby": the widest radius ran dry */
  DSP_NO_DRIVER_MAX_OFFERS,             /* "max_offers": max_offers offers made */
  DSP_NO_DRIVER_ROUTING_ERROR,          /* "routing_error": the router or index failed */
  DSP_NO_DRIVER_REASON_COUNT
} dsp_no_driver_reason;

/* Error codes of replies: the protocol's `error.code` strings (dsp_error_code_name). */
typedef enum dsp_error_code {
  DSP_ERR_BAD_REQUEST = 1,
  DSP_ERR_OUT_OF_AREA,
  DSP_ERR_UNKNOWN_OFFER,
  DSP_ERR_INVALID_STATE,
  DSP_ERR_FORBIDDEN,
  DSP_ERR_INTERNAL,
} dsp_error_code;

/* dsp_driver_state_name is test API (no service calls it): tests/dispatch/test_dispatch_random.c.
 */
/* Lower-case names as the protocol and the events spell them ("en_route", "matched",
 * "offer_expired", "invalid_state"); "?" for an unknown value. Static storage. */
const char *dsp_driver_state_name(dsp_driver_state s);
const char *dsp_trip_state_name(dsp_trip_state s);
/* Test API (no service calls it): the unit tests (dsp_fixture.c). */
const char *dsp_event_type_name(dsp_event_type t);
const char *dsp_error_code_name(dsp_error_code c);
/* "pickup_out_of_area", ... as above; "?" out of range. Static storage. */
const char *dsp_no_driver_reason_name(dsp_no_driver_reason r);

/* The trip transition table (docs/dispatch.md; trips.c): true when a trip in state `from`
 * may go to state `to` by some command or timer. Pure; the core asserts every transition
 * against the table (dsp__emit), its tests check every event with this. */
bool dsp_trip_transition_allowed(dsp_trip_state from, dsp_trip_state to);

/* ---------------------------------------------------------------- interfaces */

/* The spatial index of drivers (production: the libgeo QuadTree, index_quadtree.h). Ids
 * are the core's driver handles. Every function pointer but set_state is required. */
typedef struct dsp_index {
  void *ud; /* passed to every call */
  /* Insert id at pos with his state (a dsp_driver_state) and the ping's server time, or
   * move him there. Returns 0, or a negative DSP_E* on failure (DSP_ENOMEM; DSP_EINVAL,
   * a position or time the index refuses; DSP_ERANGE, a capacity of the index), leaving
   * the index as it was. */
  int (*upsert)(void *ud, uint64_t id, geo_latlng pos, uint8_t state, int64_t seen_ms);
  /* Record a new state of id, keeping his position. May be NULL (then the index knows
   * positions only; the core keeps states itself either way). */
  void (*set_state)(void *ud, uint64_t id, uint8_t state);
  /* Remove id; removing an absent id is a no-op. */
  void (*remove)(void *ud, uint64_t id);
  /* Up to k ids within radius_m (great-circle metres) of center for which accept(actx,
   * id) is true, nearest first, into out_ids[] and their distances into out_dist_m[].
   * Returns how many were written (0..k), or a negative DSP_E* on failure. */
  int (*knn)(void *ud, geo_latlng center, double radius_m, size_t k,
             bool (*accept)(void *actx, uint64_t id), void *actx, uint64_t *out_ids,
             double *out_dist_m);
} dsp_index;

/* A point snapped onto the road graph. `data` is the router's own (edge, offset...), kept
 * by the core and handed back to etas_to, so a pickup is snapped once. */
typedef struct dsp_snap {
  geo_latlng pos;    /* the point on the road */
  double off_road_m; /* distance from the asked point to pos */
  uint64_t data[4];  /* router-private */
} dsp_snap;

/* How a driver was moving at his last ping, for the prediction of where he is now (the
 * location message's optional heading and speed_mps; docs/dispatch.md, Pickup ETAs). */
typedef struct dsp_motion {
  double heading_deg; /* [0, 360) clockwise from north; NAN: unknown (no prediction) */
  double speed_mps;   /* >= 0; NAN: unknown (the road's calibrated speed is used) */
  double age_s;       /* since the ping was received, >= 0, capped by predict_max_age_ms */
} dsp_motion;

/* Routing (production: libgeo's graph, R-tree snapping and one-to-many search). */
typedef struct dsp_router {
  void *ud;
  /* Snap p onto the road graph. Returns 0 and fills *out; DSP_ENOTFOUND when p is outside
   * the service area (no road near enough, or not a position); another DSP_E* on failure. */
  int (*snap)(void *ud, geo_latlng p, dsp_snap *out);
  /* Road ETA in seconds from each of the n origins to target, by ONE search on the
   * reverse graph from target (one-to-many), stopping once all origins are settled or
   * max_eta_s is passed. out_eta_s[i] = INFINITY when origin i cannot reach target
   * within max_eta_s. Returns 0, or a negative DSP_E* on failure. */
  int (*etas_to)(void *ud, const dsp_snap *target, const geo_latlng *origins, size_t n,
                 double max_eta_s, double *out_eta_s);
  /* Optional (NULL: the route time is quoted as is). The ETA, in seconds, quoted to rider
   * and driver for a route time route_s of etas_to, for a request made at Unix time at_ms
   * (production: the calibrated geo_graph_eta_ms at the request's local hour and weekday).
   * Must be non-decreasing in route_s, so ranking by route time ranks by quoted ETA. */
  double (*quote_eta_s)(void *ud, double route_s, int64_t at_ms);
  /* Optional (NULL: etas_to from the last positions as they are). As etas_to, for origins
   * that move as motion[i] says (dsp_motion): each is put on the road in the direction of
   * its heading and moved along it by its speed (or the road's) times its age before the
   * search. An origin with no heading is taken as etas_to takes it. */
  int (*etas_to_moving)(void *ud, const dsp_snap *target, const geo_latlng *origins,
                        const struct dsp_motion *motion, size_t n, double max_eta_s,
                        double *out_eta_s);
} dsp_router;

/* Outcome of a claim attempt. */
typedef enum dsp_claim_result {
  DSP_CLAIM_WON = 0,  /* the driver is ours until the TTL runs out (or released) */
  DSP_CLAIM_LOST = 1, /* another owner holds the driver */
  DSP_CLAIM_ERROR = 2 /* the store failed: treated as lost for this candidate */
} dsp_claim_result;

/* The claim store: at most one owner per driver, with a time to live (production: Redis
 * `SET claim:<driver> <owner> NX PX ttl`; compare-and-delete / compare-and-expire by
 * owner). Owner strings are "<shard>:<trip_id>:<epoch>" (trip ids name their request). */
typedef struct dsp_claims {
  void *ud;
  /* Take driver_id for owner for ttl_ms, unless another owner holds it. Claiming a
   * driver one already owns renews it (WON). */
  dsp_claim_result (*try_claim)(void *ud, const char *driver_id, const char *owner, int64_t ttl_ms,
                                int64_t now_ms);
  /* Extend owner's claim to now + ttl_ms; LOST when owner does not hold it (any more). */
  dsp_claim_result (*refresh)(void *ud, const char *driver_id, const char *owner, int64_t ttl_ms,
                              int64_t now_ms);
  /* Drop owner's claim; a no-op when owner does not hold it. */
  void (*release)(void *ud, const char *driver_id, const char *owner, int64_t now_ms);
} dsp_claims;

/* ---------------------------------------------------------------- config */

/* Batched mode: requests wait up to window_ms and are assigned together to
 * minimise the total pickup ETA (Hungarian); above hungarian_max requests (load) the
 * batch is assigned greedily (cheapest pair first). */
typedef struct dsp_batch_config {
  bool enabled;           /* false: each request is matched at once */
  int64_t window_ms;      /* latency cap: the longest a request waits, 1..60000 */
  uint32_t max_batch;     /* a batch this large is assigned at once, >= 1 */
  uint32_t hungarian_max; /* more requests than this: greedy fallback */
} dsp_batch_config;

typedef struct dsp_config {
  uint32_t shard;                 /* this shard's number */
  uint64_t epoch;                 /* the shard-map epoch (dsp_shard_set_epoch changes it) */
  uint64_t incarnation;           /* makes ids unique across restarts: e.g. the start time */
  int64_t driver_ttl_ms;          /* a driver with no ping this long leaves the index: 30000 */
  int64_t ttl_sweep_ms;           /* how often dsp_tick looks for silent drivers: 1000 */
  int64_t offer_timeout_ms;       /* an offer expires after this: 10000 */
  int64_t claim_margin_ms;        /* an offer's claim lives offer_timeout + this: 2000 */
  int64_t trip_claim_ttl_ms;      /* a matched driver's claim TTL, renewed at 1/3: 60000 */
  int64_t lost_backoff_ms;        /* a driver whose claim we lost is skipped this long: 10000 */
  int64_t trip_retention_ms;      /* ended trips stay to answer late commands: 600000 */
  uint32_t k_candidates;          /* k nearest available drivers ranked per search: 8 */
  double radius_m[DSP_MAX_RADII]; /* search radius, widened step by step: 1500 3000 6000 */
  uint32_t n_radii;               /* steps used in radius_m, 1..DSP_MAX_RADII */
  double max_eta_s;               /* candidates slower than this are dropped: 1200 */
  uint32_t max_offers;            /* offers per trip before no_driver: 5 */
  bool first_ping_available;      /* a driver first seen by a ping is available: true */
  int64_t predict_max_age_ms;     /* a moving driver's position is predicted along his road
                                     from pings up to this old (older: this age); 0: never.
                                     10000 */
  dsp_batch_config batch;         /* off; window 1000 ms, max_batch 64, hungarian_max 64 */
} dsp_config;

/* Fill *c with the defaults above (shard 0, epoch 1, incarnation 0). */
void dsp_config_default(dsp_config *c);

/* ---------------------------------------------------------------- outputs */

typedef enum dsp_output_kind {
  DSP_OUT_EVENT = 1, /* publish on dispatch-events (key: trip_id) */
  DSP_OUT_REPLY,     /* a refusal for the sender: COMMAND_REJECTED */
  DSP_OUT_SNAPSHOT,  /* write the trip's snapshot for client resync */
} dsp_output_kind;

/* One trip or offer transition. Empty strings and NAN / 0 mark absent fields. */
typedef struct dsp_event {
  dsp_event_type type;
  dsp_trip_state status; /* the trip's state after this event */
  char trip_id[DSP_ID_MAX + 1];
  uint64_t seq; /* 1, 2, ... per trip */
  uint32_t shard;
  uint64_t epoch;
  int64_t ts_ms; /* when the transition happened */
  char rider_id[DSP_ID_MAX + 1];
  char driver_id[DSP_ID_MAX + 1]; /* the driver concerned, "" when none */
  char request_id[DSP_ID_MAX + 1];
  char offer_id[DSP_ID_MAX + 1]; /* offer events, and the offer accepted on MATCHED */
  geo_latlng pickup, dropoff;    /* as snapped to the road graph */
  double pickup_eta_s;           /* offer / match: road ETA to the pickup; NAN if none */
  int64_t expires_at_ms;         /* OFFERED: when it expires; 0 otherwise */
  bool has_driver_pos;
  geo_latlng driver_pos;           /* the driver's last known position */
  char reason[DSP_REASON_MAX + 1]; /* CANCELLED / NO_DRIVER: why ("rider", ...) */
  dsp_no_driver_reason no_driver;  /* NO_DRIVER: why (reason is its name) */
} dsp_event;

/* A refusal of a command, for its sender (exactly one of rider_id / driver_id is set). */
typedef struct dsp_reply {
  dsp_error_code code;
  char message[128];
  char ref[DSP_ID_MAX + 1]; /* the command's ref, "" when it had none */
  char rider_id[DSP_ID_MAX + 1];
  char driver_id[DSP_ID_MAX + 1];
  char trip_id[DSP_ID_MAX + 1]; /* what the command named, when it named one */
  char request_id[DSP_ID_MAX + 1];
  char offer_id[DSP_ID_MAX + 1];
} dsp_reply;

/* The state of a trip after its latest event: what a reconnecting client needs. Written
 * under the trip id (and findable by rider_id / driver_id); keep_ms > 0 on an ended trip
 * says how long the snapshot stays useful. */
typedef struct dsp_snapshot {
  char trip_id[DSP_ID_MAX + 1];
  uint64_t seq; /* the event it reflects */
  dsp_trip_state status;
  char rider_id[DSP_ID_MAX + 1];
  char request_id[DSP_ID_MAX + 1];
  char driver_id[DSP_ID_MAX + 1]; /* offered or matched driver, "" when none */
  char offer_id[DSP_ID_MAX + 1];  /* the live offer, "" when none */
  geo_latlng pickup, dropoff;
  double pickup_eta_s;   /* NAN when no driver */
  int64_t expires_at_ms; /* the live offer's expiry, 0 when none */
  int64_t updated_ms;
  int64_t keep_ms;                         /* 0 while the trip is live */
  char released_driver_id[DSP_ID_MAX + 1]; /* the driver this event took off the trip
                                    (declined, expired, ended): his pointer to it goes */
} dsp_snapshot;

typedef struct dsp_output {
  dsp_output_kind kind;
  union {
    dsp_event event;
    dsp_reply reply;
    dsp_snapshot snapshot;
  } u;
} dsp_output;

/* ---------------------------------------------------------------- the shard */

typedef struct dsp_shard dsp_shard;

/* A new shard with config c (copied) and the three interfaces (copied; their ud must
 * outlive the shard). Errors: DSP_EINVAL (a bad config value or missing function
 * pointer), DSP_ENOMEM. Free with dsp_shard_free. */
int dsp_shard_new(const dsp_config *c, const dsp_index *index, const dsp_router *router,
                  const dsp_claims *claims, dsp_shard **out);

/* Free the shard and everything it holds; NULL is a no-op. Claims it holds are not
 * released (they time out in the store). */
void dsp_shard_free(dsp_shard *s);

/* The shard-map epoch stamped on later events and claims. */
void dsp_shard_set_epoch(dsp_shard *s, uint64_t epoch);

/* The outputs queued since the last dsp_outputs_clear, oldest first, in *out (a borrowed
 * pointer valid until the next call on the shard); returns their number. */
size_t dsp_outputs(const dsp_shard *s, const dsp_output **out);
/* Forget the queued outputs (after the caller has executed them). */
void dsp_outputs_clear(dsp_shard *s);

/* A driver position ping (a copy from driver-locations). */
typedef struct dsp_location {
  const char *driver_id; /* 1..DSP_ID_MAX bytes */
  geo_latlng pos;
  int64_t ts_ms; /* the client's time */
  uint64_t seq;  /* the client's sequence number */
  bool halo;     /* a halo copy: the driver is owned by owner_shard */
  uint32_t owner_shard;
  bool has_heading, has_speed; /* what the app sent of its motion (optional fields) */
  double heading_deg;          /* [0, 360) when has_heading */
  double speed_mps;            /* >= 0 when has_speed */
  int64_t received_ms;         /* when the gateway received it (server clock); 0: now_ms */
} dsp_location;

/* Record a ping at now_ms. A driver first seen is created (available when
 * first_ping_available, else offline); a ping older than the last one seen (seq, then
 * ts) or equal to it is ignored and counted. Returns 0; DSP_ESTALE (ignored);
 * DSP_EINVAL (bad id or position, counted); DSP_ENOMEM; or the index's failure as it
 * returned it (DSP_ERANGE: the index is full), a new driver then not kept. Pings get no
 * reply. */
int dsp_on_location(dsp_shard *s, const dsp_location *loc, int64_t now_ms);

/* ---- rebalancing (docs/shards.md, "The handoff") */

/* A driver known from elsewhere (the Redis hot cells of a range this shard just received)
 * before his first ping here: created available at pos, owned by this shard, in the index,
 * seen at now_ms (so the TTL drops him if no ping follows), with no ping order yet (his next
 * ping is accepted whatever its seq). A driver this shard already knows is left as he is.
 * Returns 0, with *created (may be NULL) saying whether he was created (false: he was
 * already known), or DSP_EINVAL (bad id or position), DSP_ENOMEM, or the index's failure
 * as it returned it (DSP_ERANGE: full). */
int dsp_on_warm(dsp_shard *s, const char *driver_id, geo_latlng pos, int64_t now_ms, bool *created);

/* Says whether a position belongs to another shard under the new map, and which. */
typedef bool (*dsp_owner_fn)(void *ud, geo_latlng pos, uint32_t *owner);

/* After a new epoch: every driver this shard owns (not a halo copy) whose last position
 * owner_of gives to another shard becomes a halo copy of that shard's (still a candidate
 * here while his pings last, as any halo copy; claims keep him from two offers), and
 * released(ud, id) is called for him. Offers and trips in progress are untouched (they end
 * on this shard). Returns how many drivers were released. */
size_t dsp_release_owned(dsp_shard *s, dsp_owner_fn owner_of, void *ud,
                         void (*released)(void *ud, const char *driver_id));

/* The driver says he is available (true) or going offline (false). Offline while offered
 * declines the offer; offline while en route cancels the trip (reason
 * "driver_offline"); offline on a trip is refused (DSP_ESTATE). Available while busy
 * changes nothing. A driver not known yet is recorded without a position. ref may be
 * NULL. Returns 0 or a DSP_E* (with a reply). */
int dsp_on_status(dsp_shard *s, const char *driver_id, bool available, const char *ref,
                  int64_t now_ms);

/* A ride request. */
typedef struct dsp_request {
  const char *request_id; /* client-made idempotency key, 1..DSP_ID_MAX bytes */
  const char *rider_id;
  geo_latlng pickup, dropoff;
  /* NULL: the trip id is t<shard>-<incarnation>-<n>. Otherwise the trip id is
   * t<shard>-<trip_suffix> (1..40 bytes of [A-Za-z0-9_.:-]): the service derives it from
   * the request's place in its Kafka partition, so a request consumed again after a crash
   * makes the same trip id, and the record of the trip converges instead of forking. */
  const char *trip_suffix;
  /* When the request was made, Unix ms (the gateway's receive time): its quoted ETAs use
   * this time's local hour and weekday (dsp_router.quote_eta_s). 0: now_ms. */
  int64_t at_ms;
  /* A client's retry: the gateway had seen this (rider, request_id) with the same pickup
   * and drop-off (its key gw:req:{rider}:{request_id}, schemas/redis.md). It never makes a
   * trip: the shard answers it from the trip it holds, and when it holds none (the trip
   * ended and was forgotten after trip_retention_ms, or the shard restarted) it refuses it
   * (DSP_ESTATE, invalid_state) instead of making a second trip for one request. */
  bool resend;
} dsp_request;

/* A rider asks for a ride. The same (rider, request_id) again changes nothing (0): the
 * trip's state is sent again. A resend the shard holds no trip for is refused
 * (DSP_ESTATE). A rider with a live trip is refused (DSP_ESTATE). Otherwise a trip is made
 * (REQUESTED), pickup and drop-off are snapped (outside the area: NO_DRIVER with a reason) and
 * matching starts now (or at the end of the batch window). Returns 0 or a DSP_E*. */
int dsp_on_request(dsp_shard *s, const dsp_request *req, const char *ref, int64_t now_ms);

/* The rider cancels his request: allowed while requested, offered, matched or arrived
 * (the driver is released); refused once started or ended (DSP_ESTATE), for an unknown
 * request (DSP_ESTATE), for another rider's request (DSP_EFORBIDDEN). */
int dsp_on_cancel(dsp_shard *s, const char *request_id, const char *rider_id, const char *ref,
                  int64_t now_ms);

/* The driver answers an offer. Only the offered driver, only the live offer, only before
 * it expires: otherwise DSP_EUNKNOWN_OFFER. Accept: MATCHED, the driver goes en route.
 * Decline: the claim is released and the next candidate is offered. An accept repeated
 * (the offer's trip is his and matched, arrived or started already: re-sent after a
 * reconnection, or read again after a restart) is DSP_OK with no output, counted in
 * dsp_stats.commands_repeated. */
int dsp_on_accept(dsp_shard *s, const char *offer_id, const char *driver_id, const char *ref,
                  int64_t now_ms);
int dsp_on_decline(dsp_shard *s, const char *offer_id, const char *driver_id, const char *ref,
                   int64_t now_ms);

/* Trip steps by the trip's driver: arrived (matched -> arrived), start (arrived ->
 * started), complete (started -> completed, the driver is available again). A step
 * repeated (his trip is in that state or past it, also ended completed while this shard
 * still holds it) is DSP_OK with no output, counted in dsp_stats.commands_repeated.
 * Anything else (wrong state, unknown trip, another driver's trip): DSP_ESTATE. */
int dsp_on_arrived(dsp_shard *s, const char *trip_id, const char *driver_id, const char *ref,
                   int64_t now_ms);
int dsp_on_start(dsp_shard *s, const char *trip_id, const char *driver_id, const char *ref,
                 int64_t now_ms);
int dsp_on_complete(dsp_shard *s, const char *trip_id, const char *driver_id, const char *ref,
                    int64_t now_ms);

/* Test API (no service calls it): the unit tests. */
/* The trip's driver cancels while matched or arrived: CANCELLED (reason "driver" unless
 * given), the driver is available again. Otherwise DSP_ESTATE. reason may be NULL. */
int dsp_on_driver_cancel(dsp_shard *s, const char *trip_id, const char *driver_id,
                         const char *reason, const char *ref, int64_t now_ms);

/* A live trip as a snapshot saved it (the service keeps one per trip in Redis), to
 * restore a shard's open trips after a restart. */
typedef struct dsp_trip_restore {
  const char *trip_id;   /* as the crashed process made it */
  uint64_t seq;          /* of its latest event: the next one is seq + 1 */
  dsp_trip_state status; /* requested, offered, matched, arrived or started */
  uint64_t epoch;        /* the epoch its claim was made under (the claim's owner) */
  const char *rider_id, *request_id;
  geo_latlng pickup, dropoff; /* as snapped */
  const char *driver_id;      /* offered or matched driver; ignored when requested */
  const char *offer_id;       /* offered: the live offer */
  int64_t expires_at_ms;      /* offered: when it expires (may be past: the tick expires it) */
  double pickup_eta_s;        /* NAN when unknown */
  bool has_driver_pos;        /* the driver's last known position, until his next ping */
  geo_latlng driver_pos;
} dsp_trip_restore;

/* Put a live trip back into the shard, with its driver (created without a position when
 * not known yet: his next ping puts him in the index) in the matching state, its live
 * offer and its claim (owner "<shard>:<trip_id>:<epoch>", as before the restart). Queues
 * no output. A requested trip is matched again at the next dsp_tick; an offered one
 * expires or is answered as usual; a matched one renews its claim at the next tick.
 * Returns 0 (also when the trip is already there: nothing changes); DSP_EINVAL (bad id,
 * position, or a status that is not live); DSP_ESTATE (the rider or the driver is on
 * another live trip of this shard); DSP_ENOMEM. */
int dsp_restore_trip(dsp_shard *s, const dsp_trip_restore *r, int64_t now_ms);

/* The claim store lost its claims (Redis restarted empty): take every claim this shard
 * holds again at once, a live offer's for the rest of the offer (plus the margin), a
 * matched, arrived or started trip's for trip_claim_ttl_ms, so that no other shard can
 * claim these drivers meanwhile. A claim that another shard took in between (LOST) is
 * counted (claims_lost) and left to the usual paths: the offer is withdrawn at accept, the
 * trip re-claims at its next renewal. Queues no output. Returns the claims taken again. */
size_t dsp_claims_reassert(dsp_shard *s, int64_t now_ms);

/* Timers: expired offers (next candidate), the batch window, silent drivers (out of the
 * index), claim renewal of matched drivers, forgetting ended trips. Call often (every
 * 100 ms or so); time never goes backwards. */
void dsp_tick(dsp_shard *s, int64_t now_ms);

/* ---------------------------------------------------------------- queries */

typedef struct dsp_driver_view {
  dsp_driver_state state;
  bool in_index; /* has a position younger than driver_ttl_ms */
  bool halo;
  uint32_t owner_shard;
  geo_latlng pos;
  uint64_t last_seq;
  int64_t last_ts_ms;
  char trip_id[DSP_ID_MAX + 1]; /* the trip he is offered or serving, "" when none */
} dsp_driver_view;

/* The driver's view, or DSP_ENOTFOUND. */
int dsp_driver_get(const dsp_shard *s, const char *driver_id, dsp_driver_view *out);

typedef struct dsp_trip_view {
  dsp_trip_state state;
  uint64_t seq; /* of its latest event */
  char rider_id[DSP_ID_MAX + 1];
  char request_id[DSP_ID_MAX + 1];
  char driver_id[DSP_ID_MAX + 1]; /* offered or matched driver */
  char offer_id[DSP_ID_MAX + 1];  /* the live offer */
  int64_t expires_at_ms;
  double pickup_eta_s;
  uint32_t offers_made;
  uint32_t radius_step; /* index into radius_m of the latest search */
} dsp_trip_view;

/* Test API (no service calls it): the unit tests. */
/* The trip's view, or DSP_ENOTFOUND. */
int dsp_trip_get(const dsp_shard *s, const char *trip_id, dsp_trip_view *out);
/* Test API (no service calls it): the unit tests. */
/* The trip made for (rider_id, request_id) into trip_id (DSP_ID_MAX + 1 bytes), or
 * DSP_ENOTFOUND. */
int dsp_trip_find(const dsp_shard *s, const char *rider_id, const char *request_id, char *trip_id);

/* Counters since the shard was made (for /metrics). */
typedef struct dsp_stats {
  uint64_t pings, pings_stale, pings_invalid;
  uint64_t drivers_dropped_ttl;      /* left the index after driver_ttl_ms of silence */
  uint64_t drivers, drivers_indexed; /* current gauges */
  uint64_t requests, requests_duplicate;
  uint64_t offers, offers_declined, offers_expired;
  uint64_t claims_lost, claim_errors, claim_refresh_lost;
  uint64_t matched, no_driver, cancelled, completed;
  uint64_t rejected;          /* replies sent */
  uint64_t commands_repeated; /* accepts and trip steps already applied: answered as done */
  uint64_t searches, widenings;
  uint64_t batches_hungarian, batches_greedy;
  uint64_t trips_live;   /* gauge */
  uint64_t outputs_lost; /* outputs (events, replies, snapshots) not queued for want of
                            memory: counted, never dropped silently */
} dsp_stats;

void dsp_stats_get(const dsp_shard *s, dsp_stats *out);

/* Test API (the unit tests call it after every step, as libgeo's tests call
 * geo_quadtree_check): check the shard's invariants, those of every trip over its state
 * and flags (stated at struct dsp_trip in dispatch_internal.h), of every driver (a busy
 * one has the trip that names him, an idle one none) and of the maps, lists and batch
 * (they agree with the trips). Returns DSP_OK, or DSP_ESTATE with the first invariant
 * found broken in why (why_cap bytes; why may be NULL). Linear in the shard's size. */
int dsp_check(const dsp_shard *s, char *why, size_t why_cap);

#ifdef __cplusplus
}
#endif
#endif /* DSP_DISPATCH_H */
