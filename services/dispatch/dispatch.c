/*
 * dispatch.c: the dispatch shard object: config, names, the output queue (events,
 * replies, snapshots), driver handles, queries and the tick that drives the timers.
 *
 * Commands live in drivers.c (pings, status), trips.c (the trip state machine) and
 * matcher.c (search and offers). Nothing here does I/O or reads a clock.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_internal.h"

const char *dsp_strerror(int rc) {
  switch (rc) {
  case DSP_OK: return "ok";
  case DSP_EINVAL: return "invalid argument";
  case DSP_ENOMEM: return "out of memory";
  case DSP_ESTATE: return "not allowed in the current state";
  case DSP_EUNKNOWN_OFFER: return "unknown or expired offer";
  case DSP_EFORBIDDEN: return "forbidden";
  case DSP_ESTALE: return "stale ping ignored";
  case DSP_ENOTFOUND: return "not found";
  case DSP_ERANGE: return "capacity exceeded";
  default: return "unknown error";
  }
}

const char *dsp_driver_state_name(dsp_driver_state st) {
  switch (st) {
  case DSP_DRIVER_OFFLINE: return "offline";
  case DSP_DRIVER_AVAILABLE: return "available";
  case DSP_DRIVER_OFFERED: return "offered";
  case DSP_DRIVER_EN_ROUTE: return "en_route";
  case DSP_DRIVER_ON_TRIP: return "on_trip";
  }
  return "?";
}

const char *dsp_trip_state_name(dsp_trip_state st) {
  switch (st) {
  case DSP_TRIP_REQUESTED: return "requested";
  case DSP_TRIP_OFFERED: return "offered";
  case DSP_TRIP_MATCHED: return "matched";
  case DSP_TRIP_ARRIVED: return "arrived";
  case DSP_TRIP_STARTED: return "started";
  case DSP_TRIP_COMPLETED: return "completed";
  case DSP_TRIP_CANCELLED: return "cancelled";
  case DSP_TRIP_NO_DRIVER: return "no_driver";
  }
  return "?";
}

const char *dsp_event_type_name(dsp_event_type t) {
  switch (t) {
  case DSP_EV_REQUESTED: return "requested";
  case DSP_EV_OFFERED: return "offered";
  case DSP_EV_OFFER_DECLINED: return "offer_declined";
  case DSP_EV_OFFER_EXPIRED: return "offer_expired";
  case DSP_EV_MATCHED: return "matched";
  case DSP_EV_ARRIVED: return "arrived";
  case DSP_EV_STARTED: return "started";
  case DSP_EV_COMPLETED: return "completed";
  case DSP_EV_CANCELLED: return "cancelled";
  case DSP_EV_NO_DRIVER: return "no_driver";
  }
  return "?";
}

const char *dsp_error_code_name(dsp_error_code c) {
  switch (c) {
  case DSP_ERR_BAD_REQUEST: return "bad_request";
  case DSP_ERR_OUT_OF_AREA: return "out_of_area";
  case DSP_ERR_UNKNOWN_OFFER: return "unknown_offer";
  case DSP_ERR_INVALID_STATE: return "invalid_state";
  case DSP_ERR_FORBIDDEN: return "forbidden";
  case DSP_ERR_INTERNAL: return "internal";
  }
  return "?";
}

const char *dsp_no_driver_reason_name(dsp_no_driver_reason r) {
  switch (r) {
  case DSP_NO_DRIVER_PICKUP_OUT_OF_AREA: return "pickup_out_of_area";
  case DSP_NO_DRIVER_DROPOFF_OUT_OF_AREA: return "dropoff_out_of_area";
  case DSP_NO_DRIVER_NEARBY: return "no_driver_nearby";
  case DSP_NO_DRIVER_MAX_OFFERS: return "max_offers";
  case DSP_NO_DRIVER_ROUTING_ERROR: return "routing_error";
  case DSP_NO_DRIVER_REASON_COUNT: break;
  }
  return "?";
}

void dsp_config_default(dsp_config *c) {
  memset(c, 0, sizeof *c);
  c->shard = 0;
  c->epoch = 1;
  c->incarnation = 0;
  c->driver_ttl_ms = 30000;
  c->ttl_sweep_ms = 1000;
  c->offer_timeout_ms = 10000;
  c->claim_margin_ms = 2000;
  c->trip_claim_ttl_ms = 60000;
  c->lost_backoff_ms = 10000;
  c->trip_retention_ms = 600000;
  c->k_candidates = 8;
  c->radius_m[0] = 1500;
  c->radius_m[1] = 3000;
  c->radius_m[2] = 6000;
  c->n_radii = 3;
  c->max_eta_s = 1200;
  c->max_offers = 5;
  c->first_ping_available = true;
  c->predict_max_age_ms = 10000;
  c->batch.enabled = false;
  c->batch.window_ms = 1000;
  c->batch.max_batch = 64;
  c->batch.hungarian_max = 64;
}

static bool config_ok(const dsp_config *c) {
  if (c->driver_ttl_ms <= 0 || c->ttl_sweep_ms < 0 || c->offer_timeout_ms <= 0 ||
      c->claim_margin_ms < 0 || c->trip_claim_ttl_ms < 3 || c->lost_backoff_ms < 0 ||
      c->trip_retention_ms < 0)
    return false;
  if (c->k_candidates == 0 || c->k_candidates > 1024 || c->max_offers == 0 || c->max_offers > 1024)
    return false;
  if (c->n_radii == 0 || c->n_radii > DSP_MAX_RADII) return false;
  for (uint32_t i = 0; i < c->n_radii; i++) {
    if (!isfinite(c->radius_m[i]) || c->radius_m[i] <= 0) return false;
    if (i > 0 && c->radius_m[i] <= c->radius_m[i - 1]) return false; /* widening only */
  }
  if (!(c->max_eta_s > 0)) return false; /* also rejects NaN */
  if (c->predict_max_age_ms < 0) return false;
  if (c->batch.enabled && (c->batch.window_ms < 1 || c->batch.window_ms > 60000 ||
                           c->batch.max_batch == 0 || c->batch.max_batch > 4096))
    return false;
  return true;
}

int dsp_shard_new(const dsp_config *c, const dsp_index *index, const dsp_router *router,
                  const dsp_claims *claims, dsp_shard **out) {
  if (!c || !index || !router || !claims || !out || !config_ok(c)) return DSP_EINVAL;
  if (!index->upsert || !index->remove || !index->knn || !router->snap || !router->etas_to ||
      !claims->try_claim || !claims->refresh || !claims->release)
    return DSP_EINVAL;
  dsp_shard *s = calloc(1, sizeof *s);
  if (!s) return DSP_ENOMEM;
  s->cfg = *c;
  s->index = *index;
  s->router = *router;
  s->claims = *claims;
  dsp_strmap_init(&s->drivers);
  dsp_strmap_init(&s->trips);
  dsp_strmap_init(&s->offers);
  dsp_strmap_init(&s->requests);
  dsp_strmap_init(&s->request_ids);
  dsp_strmap_init(&s->riders);
  size_t k = c->k_candidates;
  s->scr_ids = malloc(k * sizeof *s->scr_ids);
  s->scr_dist = malloc(k * sizeof *s->scr_dist);
  s->scr_eta = malloc(k * sizeof *s->scr_eta);
  s->scr_pos = malloc(k * sizeof *s->scr_pos);
  s->scr_motion = malloc(k * sizeof *s->scr_motion);
  s->next_trip = 1;
  s->next_offer = 1;
  if (!s->scr_ids || !s->scr_dist || !s->scr_eta || !s->scr_pos || !s->scr_motion) {
    dsp_shard_free(s);
    return DSP_ENOMEM;
  }
  *out = s;
  return DSP_OK;
}

void dsp_shard_free(dsp_shard *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n_slots; i++) free(s->slots[i]);
  for (dsp_trip *t = s->live.head, *n; t; t = n) {
    n = t->next;
    dsp__trip_free(t);
  }
  for (dsp_trip *t = s->ended.head, *n; t; t = n) {
    n = t->next;
    dsp__trip_free(t);
  }
  free(s->slots);
  free(s->slot_gen);
  free(s->free_slots);
  dsp_strmap_close(&s->drivers);
  dsp_strmap_close(&s->trips);
  dsp_strmap_close(&s->offers);
  dsp_strmap_close(&s->requests);
  dsp_strmap_close(&s->request_ids);
  dsp_strmap_close(&s->riders);
  free(s->batch);
  free(s->out);
  free(s->scr_ids);
  free(s->scr_dist);
  free(s->scr_eta);
  free(s->scr_pos);
  free(s->scr_motion);
  free(s);
}

void dsp_shard_set_epoch(dsp_shard *s, uint64_t epoch) { s->cfg.epoch = epoch; }

size_t dsp_outputs(const dsp_shard *s, const dsp_output **out) {
  *out = s->out;
  return s->n_out;
}

void dsp_outputs_clear(dsp_shard *s) { s->n_out = 0; }

/* ---------------------------------------------------------------- helpers */

/* An id is 1..DSP_ID_MAX bytes of printable characters (no control bytes: the request
 * map joins two ids with \x1f). */
bool dsp__id_ok(const char *id) {
  if (!id || !id[0]) return false;
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++, n++)
    if (*p < 0x20 || *p == 0x7f || n >= DSP_ID_MAX) return false;
  return true;
}

void dsp__copy_id(char *dst, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n > DSP_ID_MAX) n = DSP_ID_MAX;
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
}

void dsp__base36(uint64_t v, char *buf) {
  char tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
    v /= 36;
  } while (v);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  buf[n] = '\0';
}

int dsp__reserve_outputs(dsp_shard *s, size_t n) {
  if (s->n_out + n <= s->cap_out) return 0;
  size_t cap = s->cap_out ? s->cap_out : 32;
  while (cap < s->n_out + n) cap *= 2;
  dsp_output *o = realloc(s->out, cap * sizeof *o);
  if (!o) return DSP_ENOMEM;
  s->out = o;
  s->cap_out = cap;
  return 0;
}

/* The next output slot. Callers reserve first; if they did not (a bug) or the reserve
 * was too small, grow here, and drop the output only when memory is exhausted: counted
 * (outputs_lost, on /metrics), never silently. */
static dsp_output *push_output(dsp_shard *s) {
  if (s->n_out == s->cap_out && dsp__reserve_outputs(s, 1) != 0) {
    s->st.outputs_lost++;
    return NULL;
  }
  dsp_output *o = &s->out[s->n_out++];
  memset(o, 0, sizeof *o);
  return o;
}

void dsp__snapshot(dsp_shard *s, const dsp_trip *t, int64_t now_ms) {
  dsp_output *o = push_output(s);
  if (!o) return;
  o->kind = DSP_OUT_SNAPSHOT;
  dsp_snapshot *p = &o->u.snapshot;
  dsp__copy_id(p->trip_id, t->id);
  p->seq = t->seq;
  p->status = t->state;
  dsp__copy_id(p->rider_id, t->rider_id);
  dsp__copy_id(p->request_id, t->request_id);
  dsp__copy_id(p->driver_id, t->driver_id);
  if (t->offer_live) {
    dsp__copy_id(p->offer_id, t->offer_id);
    p->expires_at_ms = t->offer_expires_ms;
  }
  p->pickup = t->pickup;
  p->dropoff = t->dropoff;
  p->pickup_eta_s = t->eta_s;
  p->updated_ms = now_ms;
  bool ended = t->state == DSP_TRIP_COMPLETED || t->state == DSP_TRIP_CANCELLED ||
               t->state == DSP_TRIP_NO_DRIVER;
  p->keep_ms = ended ? (s->cfg.trip_retention_ms > 0 ? s->cfg.trip_retention_ms : 1) : 0;
  dsp__copy_id(p->released_driver_id, t->releasing);
}

/* Move trip t to state `to` with one event of `type`, then queue its snapshot. The
 * event carries the trip's driver as it is at that moment (callers clear the driver
 * after emitting when the event is about him leaving). The move is one of the transition
 * table's (trips.c); the first event of a trip is its REQUESTED. An output that cannot be
 * queued (no memory beyond what the command reserved) is counted in outputs_lost. */
void dsp__emit(dsp_shard *s, dsp_trip *t, dsp_event_type type, dsp_trip_state to, int64_t now_ms,
               const char *reason) {
  assert(t->seq == 0 ? type == DSP_EV_REQUESTED && to == DSP_TRIP_REQUESTED
                     : dsp__transition_ok(t->state, type, to));
  t->state = to;
  t->seq++;
  dsp_output *o = push_output(s);
  if (o) {
    o->kind = DSP_OUT_EVENT;
    dsp_event *e = &o->u.event;
    e->type = type;
    e->status = to;
    dsp__copy_id(e->trip_id, t->id);
    e->seq = t->seq;
    e->shard = s->cfg.shard;
    e->epoch = s->cfg.epoch;
    e->ts_ms = now_ms;
    dsp__copy_id(e->rider_id, t->rider_id);
    dsp__copy_id(e->driver_id, t->driver_id);
    dsp__copy_id(e->request_id, t->request_id);
    if (type == DSP_EV_OFFERED || type == DSP_EV_OFFER_DECLINED || type == DSP_EV_OFFER_EXPIRED ||
        type == DSP_EV_MATCHED)
      dsp__copy_id(e->offer_id, t->offer_id);
    e->pickup = t->pickup;
    e->dropoff = t->dropoff;
    e->pickup_eta_s = t->driver ? t->eta_s : NAN;
    e->expires_at_ms = type == DSP_EV_OFFERED ? t->offer_expires_ms : 0;
    if (t->driver && t->driver->has_pos) {
      e->has_driver_pos = true;
      e->driver_pos = t->driver->pos;
    }
    if (type == DSP_EV_NO_DRIVER) e->no_driver = t->no_driver;
    if (reason) {
      size_t n = strlen(reason);
      if (n > DSP_REASON_MAX) n = DSP_REASON_MAX;
      memcpy(e->reason, reason, n);
      e->reason[n] = '\0';
    }
  }
  dsp__snapshot(s, t, now_ms);
}

int dsp__reply(dsp_shard *s, int rc, dsp_error_code code, const char *ref, const char *rider_id,
               const char *driver_id, const char *trip_id, const char *request_id,
               const char *offer_id, const char *message) {
  s->st.rejected++;
  dsp_output *o = push_output(s);
  if (!o) return rc;
  o->kind = DSP_OUT_REPLY;
  dsp_reply *r = &o->u.reply;
  r->code = code;
  snprintf(r->message, sizeof r->message, "%s", message ? message : "");
  dsp__copy_id(r->ref, ref);
  dsp__copy_id(r->rider_id, rider_id);
  dsp__copy_id(r->driver_id, driver_id);
  dsp__copy_id(r->trip_id, trip_id);
  dsp__copy_id(r->request_id, request_id);
  dsp__copy_id(r->offer_id, offer_id);
  return rc;
}

dsp_driver *dsp__driver_by_handle(const dsp_shard *s, uint64_t handle) {
  uint32_t slot = (uint32_t)(handle & 0xffffffffu);
  uint32_t gen = (uint32_t)(handle >> 32);
  if (slot >= s->n_slots || s->slot_gen[slot] != gen) return NULL;
  return s->slots[slot];
}

void dsp__list_remove(dsp_trip_list *l, dsp_trip *t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    l->head = t->next;
  if (t->next)
    t->next->prev = t->prev;
  else
    l->tail = t->prev;
  t->prev = t->next = NULL;
}

void dsp__list_append(dsp_trip_list *l, dsp_trip *t) {
  t->next = NULL;
  t->prev = l->tail;
  if (l->tail)
    l->tail->next = t;
  else
    l->head = t;
  l->tail = t;
}

/* ---------------------------------------------------------------- tick and queries */

void dsp_tick(dsp_shard *s, int64_t now_ms) {
  dsp__trips_tick(s, now_ms); /* offer expiry, claim renewal, forgetting ended trips */
  dsp__batch_tick(s, now_ms);
  if (now_ms - s->last_sweep_ms >= s->cfg.ttl_sweep_ms) {
    dsp__drivers_sweep(s, now_ms);
    s->last_sweep_ms = now_ms;
  }
}

int dsp_driver_get(const dsp_shard *s, const char *driver_id, dsp_driver_view *out) {
  const dsp_driver *d = driver_id ? dsp_strmap_get(&s->drivers, driver_id) : NULL;
  if (!d) return DSP_ENOTFOUND;
  memset(out, 0, sizeof *out);
  out->state = d->state;
  out->in_index = d->in_index;
  out->halo = d->halo;
  out->owner_shard = d->owner_shard;
  out->pos = d->pos;
  out->last_seq = d->last_seq;
  out->last_ts_ms = d->last_ts_ms;
  if (d->trip) dsp__copy_id(out->trip_id, d->trip->id);
  return DSP_OK;
}

int dsp_trip_get(const dsp_shard *s, const char *trip_id, dsp_trip_view *out) {
  const dsp_trip *t = trip_id ? dsp_strmap_get(&s->trips, trip_id) : NULL;
  if (!t) return DSP_ENOTFOUND;
  memset(out, 0, sizeof *out);
  out->state = t->state;
  out->seq = t->seq;
  dsp__copy_id(out->rider_id, t->rider_id);
  dsp__copy_id(out->request_id, t->request_id);
  dsp__copy_id(out->driver_id, t->driver_id);
  if (t->offer_live) {
    dsp__copy_id(out->offer_id, t->offer_id);
    out->expires_at_ms = t->offer_expires_ms;
  }
  out->pickup_eta_s = t->eta_s;
  out->offers_made = t->offers_made;
  out->radius_step = t->radius_step;
  return DSP_OK;
}

int dsp_trip_find(const dsp_shard *s, const char *rider_id, const char *request_id, char *trip_id) {
  if (!dsp__id_ok(rider_id) || !dsp__id_ok(request_id)) return DSP_ENOTFOUND;
  char key[2 * DSP_ID_MAX + 2];
  snprintf(key, sizeof key, "%s\x1f%s", rider_id, request_id);
  const dsp_trip *t = dsp_strmap_get(&s->requests, key);
  if (!t) return DSP_ENOTFOUND;
  dsp__copy_id(trip_id, t->id);
  return DSP_OK;
}

void dsp_stats_get(const dsp_shard *s, dsp_stats *out) {
  *out = s->st;
  out->drivers = s->drivers.len;
  out->drivers_indexed = 0;
  for (size_t i = 0; i < s->n_slots; i++)
    if (s->slots[i] && s->slots[i]->in_index) out->drivers_indexed++;
  out->trips_live = 0;
  for (const dsp_trip *t = s->live.head; t; t = t->next) out->trips_live++;
}
