/*
 * dispatch_internal.h: the records of a dispatch shard and the helpers its files share
 * (dispatch.c: the shard, outputs and queries; drivers.c: pings, status and TTL;
 * trips.c: the trip state machine; matcher.c: search, ranking, claims, offers and the
 * batched mode). Not a public header.
 */
#ifndef DSP_DISPATCH_INTERNAL_H
#define DSP_DISPATCH_INTERNAL_H

#include "dispatch.h"
#include "strmap.h"

/* Longest claim owner string: "<shard>:<trip_id>:<epoch>". */
#define DSP_OWNER_MAX (DSP_ID_MAX + 48)

typedef struct dsp_trip dsp_trip;

typedef struct dsp_driver {
  char id[DSP_ID_MAX + 1];
  uint64_t handle; /* (generation << 32) | slot: the id in the spatial index */
  dsp_driver_state state;
  bool in_index; /* has a position younger than driver_ttl_ms */
  bool has_ping; /* last_seq / last_ts_ms are meaningful */
  bool halo;
  uint32_t owner_shard;
  geo_latlng pos;
  bool has_pos;
  uint64_t last_seq;
  int64_t last_ts_ms;
  int64_t last_seen_ms;  /* server time of the latest ping or status */
  int64_t ping_rx_ms;    /* server time the latest ping was received (gateway's clock) */
  double heading_deg;    /* of the latest ping, NAN when it had none */
  double speed_mps;      /* of the latest ping, NAN when it had none */
  int64_t skip_until_ms; /* we lost his claim to someone else: skip him until then */
  dsp_trip *trip;        /* the trip he is offered or serving */
} dsp_driver;

/* One ranked candidate of a trip. */
typedef struct dsp_cand {
  uint64_t handle;
  double eta_s;
  double dist_m;
} dsp_cand;

/* A trip. Its state changes only in trips.c, by the transition table there (every change
 * one event through dsp__emit). Invariants over its state and its six flags (offer_live,
 * claimed, searched, in_batch, resume, and driver != NULL), checked by dsp_check:
 *  - seq >= 1 (the REQUESTED event is emitted when it is made); releasing is "" between
 *    events;
 *  - live (on s->live, in s->riders under rider_id): state is requested, offered,
 *    matched, arrived or started; ended (on s->ended, ended_ms set): completed,
 *    cancelled or no_driver, with no driver, no claim, no live offer, not in the batch;
 *  - driver != NULL <=> the state is offered, matched, arrived or started; then
 *    driver->trip == t, driver_id is his id, and his state is offered (offered), en_route
 *    (matched, arrived) or on_trip (started);
 *  - claimed <=> driver != NULL (owner is the claim's owner string);
 *  - offer_live <=> state == offered, and then s->offers maps offer_id to t;
 *  - in_batch => state == requested, and t is in s->batch exactly once (and every trip in
 *    s->batch has in_batch);
 *  - resume => live and state == requested, not in_batch (restored: matched at the tick);
 *  - searched false => no candidates (n_cands == cand_next == 0); always
 *    cand_next <= n_cands <= k_candidates, radius_step < n_radii, and
 *    n_tried == offers_made <= max_offers. */
struct dsp_trip {
  char id[DSP_ID_MAX + 1];
  char rider_id[DSP_ID_MAX + 1];
  char request_id[DSP_ID_MAX + 1];
  char req_key[2 * DSP_ID_MAX + 2]; /* rider_id \x1f request_id */
  dsp_trip_state state;
  uint64_t seq;               /* of the latest event */
  geo_latlng pickup, dropoff; /* snapped (raw when out of area) */
  dsp_snap pickup_snap;
  dsp_driver *driver; /* offered or matched driver */
  char driver_id[DSP_ID_MAX + 1];
  char offer_id[DSP_ID_MAX + 1];  /* the latest offer */
  char releasing[DSP_ID_MAX + 1]; /* set around the event that takes the driver off */
  bool offer_live;                /* offer_id is in the offers map */
  int64_t offer_expires_ms;
  double eta_s;                  /* quoted to the offered / matched driver; NAN if none */
  int64_t quote_at_ms;           /* the request's time: the hour and weekday of the quote */
  char owner[DSP_OWNER_MAX + 1]; /* claim owner string while claimed */
  bool claimed;
  int64_t claim_renew_ms;
  uint32_t offers_made;
  uint32_t radius_step;
  bool searched;   /* cands holds a search at radius_step */
  dsp_cand *cands; /* k_candidates slots */
  size_t n_cands, cand_next;
  uint64_t *tried; /* max_offers slots: drivers offered this trip */
  size_t n_tried;
  int64_t created_ms, ended_ms;
  bool in_batch;
  bool resume;                    /* restored while requested: match again at the next tick */
  dsp_no_driver_reason no_driver; /* set with the NO_DRIVER event */
  dsp_trip *prev, *next;          /* the live list, or the ended list */
};

typedef struct dsp_trip_list {
  dsp_trip *head, *tail;
} dsp_trip_list;

struct dsp_shard {
  dsp_config cfg;
  dsp_index index;
  dsp_router router;
  dsp_claims claims;

  dsp_driver **slots; /* by slot; NULL = free */
  uint32_t *slot_gen; /* generation of each slot */
  size_t n_slots, cap_slots;
  uint32_t *free_slots;
  size_t n_free;

  dsp_strmap drivers;     /* driver id -> dsp_driver */
  dsp_strmap trips;       /* trip id -> dsp_trip (live and retained) */
  dsp_strmap offers;      /* live offer id -> dsp_trip */
  dsp_strmap requests;    /* req_key -> dsp_trip */
  dsp_strmap request_ids; /* request_id alone -> the latest dsp_trip with it (to tell
                             "not your request" from "no such request") */
  dsp_strmap riders;      /* rider id -> his live dsp_trip */
  dsp_trip_list live, ended;

  dsp_trip **batch; /* requests waiting for the batch window, oldest first */
  size_t n_batch, cap_batch;

  dsp_output *out;
  size_t n_out, cap_out;

  uint64_t next_trip, next_offer;
  int64_t last_sweep_ms;
  dsp_stats st;

  /* scratch of k_candidates entries for one search */
  uint64_t *scr_ids;
  double *scr_dist, *scr_eta;
  geo_latlng *scr_pos;
  dsp_motion *scr_motion;
};

/* dispatch.c */
bool dsp__id_ok(const char *id);
void dsp__copy_id(char *dst, const char *src);
/* Base-36 digits of v into buf (at least 14 bytes), for ids. */
void dsp__base36(uint64_t v, char *buf);
int dsp__reserve_outputs(dsp_shard *s, size_t n);
void dsp__emit(dsp_shard *s, dsp_trip *t, dsp_event_type type, dsp_trip_state to, int64_t now_ms,
               const char *reason);
int dsp__reply(dsp_shard *s, int rc, dsp_error_code code, const char *ref, const char *rider_id,
               const char *driver_id, const char *trip_id, const char *request_id,
               const char *offer_id, const char *message);
void dsp__snapshot(dsp_shard *s, const dsp_trip *t, int64_t now_ms);
dsp_driver *dsp__driver_by_handle(const dsp_shard *s, uint64_t handle);
void dsp__list_remove(dsp_trip_list *l, dsp_trip *t);
void dsp__list_append(dsp_trip_list *l, dsp_trip *t);

/* drivers.c */
/* d->state = st, mirrored into the index (payload) while he is in it. */
void dsp__driver_set_state(dsp_shard *s, dsp_driver *d, dsp_driver_state st);
void dsp__drivers_sweep(dsp_shard *s, int64_t now_ms);
void dsp__driver_free(dsp_shard *s, dsp_driver *d);
/* The driver with this id, created (no position, in state st) when unknown; NULL when
 * memory runs out. */
dsp_driver *dsp__driver_get_or_new(dsp_shard *s, const char *id, dsp_driver_state st,
                                   int64_t now_ms);

/* trips.c */
/* The trip needs a driver (just requested, or its offer ended): ask the matcher, and
 * apply its decision (an OFFERED or a NO_DRIVER transition). */
void dsp__offer_next(dsp_shard *s, dsp_trip *t, int64_t now_ms);
/* d, offered or serving a trip, goes offline: his offer is declined (then the next
 * candidate is offered), or his trip (en route) cancelled ("driver_offline"). */
void dsp__trip_driver_offline(dsp_shard *s, dsp_driver *d, int64_t now_ms);
void dsp__trips_tick(dsp_shard *s, int64_t now_ms);
/* The batch window: match the waiting requests when the oldest has waited window_ms. */
void dsp__batch_tick(dsp_shard *s, int64_t now_ms);
void dsp__trip_free(dsp_trip *t);
/* True when the transition table (trips.c) has the move from -> to by an event of type. */
bool dsp__transition_ok(dsp_trip_state from, dsp_event_type type, dsp_trip_state to);

/* matcher.c */
/* What the matcher decided for a trip that needs a driver. */
typedef struct dsp_match {
  bool offer;                    /* true: offer driver; false: no driver, for why */
  dsp_driver *driver;            /* claimed for the trip under owner */
  double route_s;                /* his road time to the pickup (the ranking's) */
  char owner[DSP_OWNER_MAX + 1]; /* the claim's owner string */
  dsp_no_driver_reason why;
} dsp_match;
/* Walk t's ranked candidates (searching, then widening, when the list runs dry) and claim
 * the first one that can be offered the trip; or decide there is no driver (max_offers
 * reached, the widest radius ran dry, the router or index failed). Changes t's search
 * state and the claim store, never its state: trips.c applies the decision. */
void dsp__match_next(dsp_shard *s, dsp_trip *t, int64_t now_ms, dsp_match *out);
int dsp__search(dsp_shard *s, dsp_trip *t, double radius_m, int64_t now_ms);
/* Quote t's pickup ETA again from where its driver is now (his latest ping, predicted):
 * at the match the rider is told the time from there, not from where the offer found him
 * seconds before. The offer's quote stays when the driver cannot be routed. */
void dsp__requote(dsp_shard *s, dsp_trip *t, int64_t now_ms);
/* The ETA quoted for a route time of route_s (dsp_router.quote_eta_s at t's request time). */
double dsp__quote(const dsp_shard *s, const dsp_trip *t, double route_s);
/* How d was moving at his last ping, aged to now_ms (NAN heading: no prediction). */
dsp_motion dsp__motion_of(const dsp_shard *s, const dsp_driver *d, int64_t now_ms);
/* Queue t for the batch window; false when there is no room (match it alone). */
bool dsp__batch_add(dsp_shard *s, dsp_trip *t);
void dsp__batch_remove(dsp_shard *s, dsp_trip *t);
/* Take the waiting requests out of the batch and plan their assignment: each one's
 * candidates searched and its assigned driver first in its list. *order (malloc'd, the
 * caller frees it) is the order to offer them in: assigned requests first, so those left
 * over cannot take their drivers. Returns how many; 0 (the batch kept, retried at the next
 * tick) when memory runs out. */
size_t dsp__batch_plan(dsp_shard *s, int64_t now_ms, dsp_trip ***order);

#endif /* DSP_DISPATCH_INTERNAL_H */
