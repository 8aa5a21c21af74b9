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
  bool resume;     /* restored while requested: match again at the next tick */
  dsp_no_driver_reason no_driver; /* set with the NO_DRIVER event */
  dsp_trip *prev, *next; /* the live list, or the ended list */
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
void dsp__trip_end(dsp_shard *s, dsp_trip *t, dsp_event_type type, dsp_trip_state to,
                   int64_t now_ms, const char *reason, dsp_driver_state driver_to);
void dsp__release_driver(dsp_shard *s, dsp_trip *t, dsp_driver_state to, int64_t now_ms);
void dsp__trips_tick(dsp_shard *s, int64_t now_ms);
void dsp__trip_free(dsp_trip *t);
int dsp__cancel_by_driver(dsp_shard *s, dsp_trip *t, dsp_driver_state driver_to, const char *reason,
                          int64_t now_ms);
/* End t with NO_DRIVER for reason why (its name is the event's reason). */
void dsp__trip_no_driver(dsp_shard *s, dsp_trip *t, dsp_no_driver_reason why, int64_t now_ms);
void dsp__offer_end(dsp_shard *s, dsp_trip *t, dsp_event_type type, int64_t now_ms,
                    const char *reason);

/* matcher.c */
void dsp__offer_next(dsp_shard *s, dsp_trip *t, int64_t now_ms);
int dsp__search(dsp_shard *s, dsp_trip *t, double radius_m, int64_t now_ms);
/* Quote t's pickup ETA again from where its driver is now (his latest ping, predicted):
 * at the match the rider is told the time from there, not from where the offer found him
 * seconds before. The offer's quote stays when the driver cannot be routed. */
void dsp__requote(dsp_shard *s, dsp_trip *t, int64_t now_ms);
/* How d was moving at his last ping, aged to now_ms (NAN heading: no prediction). */
dsp_motion dsp__motion_of(const dsp_shard *s, const dsp_driver *d, int64_t now_ms);
void dsp__batch_add(dsp_shard *s, dsp_trip *t, int64_t now_ms);
void dsp__batch_remove(dsp_shard *s, dsp_trip *t);
void dsp__batch_tick(dsp_shard *s, int64_t now_ms);
void dsp__batch_flush(dsp_shard *s, int64_t now_ms);

#endif /* DSP_DISPATCH_INTERNAL_H */
