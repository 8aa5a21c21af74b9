/*
 * trips.c: the trip state machine (docs/dispatch.md has the table): requests, cancels,
 * answers to offers, the driver's trip steps, offer expiry and claim renewal on the tick,
 * and forgetting ended trips after their retention.
 *
 * Every command is checked against the trip's state, its rider or its driver before
 * anything changes: a refused command queues one reply to its sender and nothing else.
 * Every transition is made here, along the transition table below, as one event
 * (dsp__emit, which asserts the table) followed by the trip's snapshot: also those that
 * follow from the matcher's decision (offered, no_driver) and from a driver going offline
 * (declined, cancelled). Finding and claiming drivers is matcher.c's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_internal.h"

/* Outputs one command can queue at most: two events with their snapshots, a reply, and
 * room to spare. */
#define CMD_OUTPUTS 8

/* The trip transition table (docs/dispatch.md): the only moves of a trip's state, by
 * event. The REQUESTED event makes the trip (seq 1) and moves nothing. */
static const struct {
  dsp_event_type type;
  dsp_trip_state from, to;
} transitions[] = {
    {DSP_EV_OFFERED, DSP_TRIP_REQUESTED, DSP_TRIP_OFFERED},
    {DSP_EV_NO_DRIVER, DSP_TRIP_REQUESTED, DSP_TRIP_NO_DRIVER},
    {DSP_EV_CANCELLED, DSP_TRIP_REQUESTED, DSP_TRIP_CANCELLED},
    /* back to requested: declined (also by going offline), expired, claim lost */
    {DSP_EV_OFFER_DECLINED, DSP_TRIP_OFFERED, DSP_TRIP_REQUESTED},
    {DSP_EV_OFFER_EXPIRED, DSP_TRIP_OFFERED, DSP_TRIP_REQUESTED},
    {DSP_EV_MATCHED, DSP_TRIP_OFFERED, DSP_TRIP_MATCHED},
    {DSP_EV_CANCELLED, DSP_TRIP_OFFERED, DSP_TRIP_CANCELLED},
    {DSP_EV_ARRIVED, DSP_TRIP_MATCHED, DSP_TRIP_ARRIVED},
    {DSP_EV_CANCELLED, DSP_TRIP_MATCHED, DSP_TRIP_CANCELLED},
    {DSP_EV_STARTED, DSP_TRIP_ARRIVED, DSP_TRIP_STARTED},
    {DSP_EV_CANCELLED, DSP_TRIP_ARRIVED, DSP_TRIP_CANCELLED},
    {DSP_EV_COMPLETED, DSP_TRIP_STARTED, DSP_TRIP_COMPLETED},
};

bool dsp__transition_ok(dsp_trip_state from, dsp_event_type type, dsp_trip_state to) {
  for (size_t i = 0; i < sizeof transitions / sizeof transitions[0]; i++)
    if (transitions[i].type == type && transitions[i].from == from && transitions[i].to == to)
      return true;
  return false;
}

bool dsp_trip_transition_allowed(dsp_trip_state from, dsp_trip_state to) {
  for (size_t i = 0; i < sizeof transitions / sizeof transitions[0]; i++)
    if (transitions[i].from == from && transitions[i].to == to) return true;
  return false;
}

void dsp__trip_free(dsp_trip *t) {
  if (!t) return;
  free(t->cands);
  free(t->tried);
  free(t);
}

/* A trip id suffix: 1..40 bytes of [A-Za-z0-9_.:-] (the shape mrd_trip_id_format takes). */
static bool suffix_ok(const char *x) {
  size_t n = strlen(x);
  if (n == 0 || n > 40) return false;
  for (size_t i = 0; i < n; i++) {
    char c = x[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == ':' || c == '-'))
      return false;
  }
  return true;
}

static dsp_trip *trip_new(dsp_shard *s, const dsp_request *req, int64_t now_ms) {
  dsp_trip *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->cands = calloc(s->cfg.k_candidates, sizeof *t->cands);
  t->tried = calloc(s->cfg.max_offers, sizeof *t->tried);
  if (!t->cands || !t->tried) {
    dsp__trip_free(t);
    return NULL;
  }
  if (req->trip_suffix) {
    snprintf(t->id, sizeof t->id, "t%u-%s", s->cfg.shard, req->trip_suffix);
  } else {
    char inc[16], n[16];
    dsp__base36(s->cfg.incarnation, inc);
    dsp__base36(s->next_trip, n);
    snprintf(t->id, sizeof t->id, "t%u-%s-%s", s->cfg.shard, inc, n);
  }
  dsp__copy_id(t->rider_id, req->rider_id);
  dsp__copy_id(t->request_id, req->request_id);
  snprintf(t->req_key, sizeof t->req_key, "%s\x1f%s", req->rider_id, req->request_id);
  t->state = DSP_TRIP_REQUESTED;
  t->pickup = req->pickup;
  t->dropoff = req->dropoff;
  t->eta_s = NAN;
  t->created_ms = now_ms;
  /* A restored trip has no request time (dsp_trip_restore): it quotes at the restore. */
  t->quote_at_ms = req->at_ms != 0 ? req->at_ms : now_ms;
  return t;
}

static void dsp__release_driver(dsp_shard *s, dsp_trip *t, dsp_driver_state to, int64_t now_ms) {
  dsp_driver *d = t->driver;
  if (t->claimed) {
    s->claims.release(s->claims.ud, t->driver_id, t->owner, now_ms);
    t->claimed = false;
  }
  if (d) {
    dsp__driver_set_state(s, d, to);
    d->trip = NULL;
  }
  t->driver = NULL;
}

static void drop_live_offer(dsp_shard *s, dsp_trip *t) {
  if (t->offer_live) {
    dsp_strmap_del(&s->offers, t->offer_id);
    t->offer_live = false;
  }
}

static void dsp__trip_end(dsp_shard *s, dsp_trip *t, dsp_event_type type, dsp_trip_state to,
                          int64_t now_ms, const char *reason, dsp_driver_state driver_to) {
  drop_live_offer(s, t);
  if (t->in_batch) dsp__batch_remove(s, t);
  t->ended_ms = now_ms;
  dsp__copy_id(t->releasing, t->driver ? t->driver_id : "");
  dsp__emit(s, t, type, to, now_ms, reason); /* still names the driver, who is told */
  t->releasing[0] = '\0';
  dsp__release_driver(s, t, driver_to, now_ms);
  dsp_strmap_del(&s->riders, t->rider_id);
  dsp__list_remove(&s->live, t);
  dsp__list_append(&s->ended, t);
  if (to == DSP_TRIP_NO_DRIVER) s->st.no_driver++;
  if (to == DSP_TRIP_CANCELLED) s->st.cancelled++;
  if (to == DSP_TRIP_COMPLETED) s->st.completed++;
}

static void dsp__trip_no_driver(dsp_shard *s, dsp_trip *t, dsp_no_driver_reason why,
                                int64_t now_ms) {
  t->no_driver = why;
  dsp__trip_end(s, t, DSP_EV_NO_DRIVER, DSP_TRIP_NO_DRIVER, now_ms, dsp_no_driver_reason_name(why),
                DSP_DRIVER_AVAILABLE);
}

/* The live offer of t ends without a match (declined, expired, driver offline): one
 * event, the claim released, the driver available again, the trip back to requested. */
static void dsp__offer_end(dsp_shard *s, dsp_trip *t, dsp_event_type type, int64_t now_ms,
                           const char *reason) {
  drop_live_offer(s, t);
  if (type == DSP_EV_OFFER_EXPIRED)
    s->st.offers_expired++;
  else
    s->st.offers_declined++;
  dsp__copy_id(t->releasing, t->driver_id);
  dsp__emit(s, t, type, DSP_TRIP_REQUESTED, now_ms, reason);
  t->releasing[0] = '\0';
  dsp__release_driver(s, t, DSP_DRIVER_AVAILABLE, now_ms);
  t->driver_id[0] = '\0';
  t->eta_s = NAN;
}

static int dsp__cancel_by_driver(dsp_shard *s, dsp_trip *t, dsp_driver_state driver_to,
                                 const char *reason, int64_t now_ms) {
  dsp__trip_end(s, t, DSP_EV_CANCELLED, DSP_TRIP_CANCELLED, now_ms, reason, driver_to);
  return DSP_OK;
}

/* Make t's offer to the driver the matcher claimed for it: the OFFERED transition. */
static void make_offer(dsp_shard *s, dsp_trip *t, const dsp_match *m, int64_t now_ms) {
  dsp_driver *d = m->driver;
  char inc[16], num[16];
  dsp__base36(s->cfg.incarnation, inc);
  dsp__base36(s->next_offer++, num);
  snprintf(t->offer_id, sizeof t->offer_id, "o%u-%s-%s", s->cfg.shard, inc, num);
  memcpy(t->owner, m->owner, sizeof t->owner);
  t->claimed = true;
  t->offer_live = true;
  dsp_strmap_put(&s->offers, t->offer_id, t); /* reserved by the matcher */
  t->offer_expires_ms = now_ms + s->cfg.offer_timeout_ms;
  t->driver = d;
  dsp__copy_id(t->driver_id, d->id);
  /* Ranked by route time; quoted as the calibrated ETA at the request's local time. */
  t->eta_s = dsp__quote(s, t, m->route_s);
  t->offers_made++;
  t->tried[t->n_tried++] = d->handle;
  dsp__driver_set_state(s, d, DSP_DRIVER_OFFERED);
  d->trip = t;
  s->st.offers++;
  dsp__emit(s, t, DSP_EV_OFFERED, DSP_TRIP_OFFERED, now_ms, NULL);
}

void dsp__offer_next(dsp_shard *s, dsp_trip *t, int64_t now_ms) {
  dsp_match m;
  dsp__match_next(s, t, now_ms, &m);
  if (m.offer)
    make_offer(s, t, &m, now_ms);
  else
    dsp__trip_no_driver(s, t, m.why, now_ms);
}

void dsp__trip_driver_offline(dsp_shard *s, dsp_driver *d, int64_t now_ms) {
  dsp_trip *t = d->trip;
  if (d->state == DSP_DRIVER_OFFERED) { /* going offline declines the offer */
    dsp__offer_end(s, t, DSP_EV_OFFER_DECLINED, now_ms, "driver_offline");
    dsp__driver_set_state(s, d, DSP_DRIVER_OFFLINE);
    dsp__offer_next(s, t, now_ms);
  } else { /* en route: going offline on the way cancels the trip */
    dsp__cancel_by_driver(s, t, DSP_DRIVER_OFFLINE, "driver_offline", now_ms);
  }
}

/* ---------------------------------------------------------------- batched mode */

/* Match the requests waiting in the batch, in the order the matcher's plan gives. */
static void batch_flush(dsp_shard *s, int64_t now_ms) {
  if (s->n_batch == 0) return;
  if (dsp__reserve_outputs(s, s->n_batch * 8) != 0) return; /* retried on the next tick */
  dsp_trip **order;
  size_t n = dsp__batch_plan(s, now_ms, &order);
  for (size_t i = 0; i < n; i++) dsp__offer_next(s, order[i], now_ms);
  free(order);
}

void dsp__batch_tick(dsp_shard *s, int64_t now_ms) {
  if (s->n_batch > 0 && now_ms - s->batch[0]->created_ms >= s->cfg.batch.window_ms)
    batch_flush(s, now_ms);
}

/* ---------------------------------------------------------------- rider commands */

int dsp_on_request(dsp_shard *s, const dsp_request *req, const char *ref, int64_t now_ms) {
  if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return DSP_ENOMEM;
  if (!req)
    return dsp__reply(s, DSP_EINVAL, DSP_ERR_BAD_REQUEST, ref, "?", NULL, NULL, NULL, NULL,
                      "no request");
  if (!dsp__id_ok(req->rider_id) || !dsp__id_ok(req->request_id))
    return dsp__reply(s, DSP_EINVAL, DSP_ERR_BAD_REQUEST, ref,
                      dsp__id_ok(req->rider_id) ? req->rider_id : "?", NULL, NULL,
                      dsp__id_ok(req->request_id) ? req->request_id : NULL, NULL,
                      "request_id and rider_id must be 1..64 printable bytes");
  if (!geo_latlng_is_valid(req->pickup) || !geo_latlng_is_valid(req->dropoff))
    return dsp__reply(s, DSP_EINVAL, DSP_ERR_BAD_REQUEST, ref, req->rider_id, NULL, NULL,
                      req->request_id, NULL, "pickup and dropoff must be valid positions");
  if (req->trip_suffix && !suffix_ok(req->trip_suffix))
    return dsp__reply(s, DSP_EINVAL, DSP_ERR_INTERNAL, ref, req->rider_id, NULL, NULL,
                      req->request_id, NULL, "bad trip id suffix");

  char key[2 * DSP_ID_MAX + 2];
  snprintf(key, sizeof key, "%s\x1f%s", req->rider_id, req->request_id);
  dsp_trip *t = dsp_strmap_get(&s->requests, key);
  if (t) { /* the idempotency key again: no new trip; resend the state for resync */
    s->st.requests_duplicate++;
    dsp__snapshot(s, t, now_ms);
    return DSP_OK;
  }
  if (req->resend) { /* seen by the gateway, not held here: ended and forgotten */
    s->st.requests_duplicate++;
    return dsp__reply(s, DSP_ESTATE, DSP_ERR_INVALID_STATE, ref, req->rider_id, NULL, NULL,
                      req->request_id, NULL,
                      "request_id: this request has ended; send a new request_id");
  }
  dsp_trip *cur = dsp_strmap_get(&s->riders, req->rider_id);
  if (cur) {
    char msg[128];
    snprintf(msg, sizeof msg, "rider already has a live trip %s", cur->id);
    return dsp__reply(s, DSP_ESTATE, DSP_ERR_INVALID_STATE, ref, req->rider_id, NULL, cur->id,
                      req->request_id, NULL, msg);
  }

  t = trip_new(s, req, now_ms);
  if (t && dsp_strmap_get(&s->trips, t->id)) { /* a suffix used by another request */
    dsp__trip_free(t);
    return dsp__reply(s, DSP_EINVAL, DSP_ERR_INTERNAL, ref, req->rider_id, NULL, NULL,
                      req->request_id, NULL, "trip id already in use");
  }
  if (!t || dsp_strmap_reserve(&s->trips, 1) || dsp_strmap_reserve(&s->requests, 1) ||
      dsp_strmap_reserve(&s->riders, 1) || dsp_strmap_reserve(&s->offers, 1) ||
      dsp_strmap_reserve(&s->request_ids, 1)) {
    dsp__trip_free(t);
    return DSP_ENOMEM;
  }
  s->next_trip++;
  s->st.requests++;
  dsp_strmap_put(&s->trips, t->id, t);
  dsp_strmap_put(&s->requests, t->req_key, t);
  dsp_strmap_put(&s->request_ids, t->request_id, t);
  dsp_strmap_put(&s->riders, t->rider_id, t);
  dsp__list_append(&s->live, t);

  /* Snap both ends before the first event, so it carries the road positions. */
  dsp_snap drop;
  int rp = s->router.snap(s->router.ud, req->pickup, &t->pickup_snap);
  int rd = rp == 0 ? s->router.snap(s->router.ud, req->dropoff, &drop) : 0;
  if (rp == 0) t->pickup = t->pickup_snap.pos;
  if (rp == 0 && rd == 0) t->dropoff = drop.pos;
  dsp__emit(s, t, DSP_EV_REQUESTED, DSP_TRIP_REQUESTED, now_ms, NULL);
  if (rp != 0 || rd != 0) {
    bool failed = (rp != 0 && rp != DSP_ENOTFOUND) || (rd != 0 && rd != DSP_ENOTFOUND);
    dsp_no_driver_reason why = failed    ? DSP_NO_DRIVER_ROUTING_ERROR
                               : rp != 0 ? DSP_NO_DRIVER_PICKUP_OUT_OF_AREA
                                         : DSP_NO_DRIVER_DROPOFF_OUT_OF_AREA;
    dsp__trip_no_driver(s, t, why, now_ms);
    if (!failed)
      dsp__reply(
          s, DSP_OK, DSP_ERR_OUT_OF_AREA, ref, req->rider_id, NULL, t->id, req->request_id, NULL,
          rp != 0 ? "pickup is outside the service area" : "dropoff is outside the service area");
    return DSP_OK;
  }
  if (s->cfg.batch.enabled && dsp__batch_add(s, t)) {
    if (s->n_batch >= s->cfg.batch.max_batch) batch_flush(s, now_ms);
  } else { /* immediate mode, or no room to wait: match it alone, now */
    dsp__offer_next(s, t, now_ms);
  }
  return DSP_OK;
}

int dsp_on_cancel(dsp_shard *s, const char *request_id, const char *rider_id, const char *ref,
                  int64_t now_ms) {
  if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return DSP_ENOMEM;
  if (!dsp__id_ok(rider_id) || !dsp__id_ok(request_id))
    return dsp__reply(s, DSP_EINVAL, DSP_ERR_BAD_REQUEST, ref,
                      dsp__id_ok(rider_id) ? rider_id : "?", NULL, NULL, NULL, NULL,
                      "request_id and rider_id must be 1..64 printable bytes");
  char key[2 * DSP_ID_MAX + 2];
  snprintf(key, sizeof key, "%s\x1f%s", rider_id, request_id);
  dsp_trip *t = dsp_strmap_get(&s->requests, key);
  if (!t) {
    if (dsp_strmap_get(&s->request_ids, request_id))
      return dsp__reply(s, DSP_EFORBIDDEN, DSP_ERR_FORBIDDEN, ref, rider_id, NULL, NULL, request_id,
                        NULL, "not your request");
    return dsp__reply(s, DSP_ESTATE, DSP_ERR_INVALID_STATE, ref, rider_id, NULL, NULL, request_id,
                      NULL, "no such request");
  }
  switch (t->state) {
  case DSP_TRIP_REQUESTED:
  case DSP_TRIP_OFFERED:
  case DSP_TRIP_MATCHED:
  case DSP_TRIP_ARRIVED:
    dsp__trip_end(s, t, DSP_EV_CANCELLED, DSP_TRIP_CANCELLED, now_ms, "rider",
                  DSP_DRIVER_AVAILABLE);
    return DSP_OK;
  default: {
    char msg[128];
    snprintf(msg, sizeof msg, "cannot cancel a trip that is %s", dsp_trip_state_name(t->state));
    return dsp__reply(s, DSP_ESTATE, DSP_ERR_INVALID_STATE, ref, rider_id, NULL, t->id, request_id,
                      NULL, msg);
  }
  }
}

/* ---------------------------------------------------------------- offers */

/* The trip whose live offer is offer_id for driver_id, or NULL after queueing the
 * unknown_offer reply (an expired offer is expired now, first). */
static dsp_trip *live_offer(dsp_shard *s, const char *offer_id, const char *driver_id,
                            const char *ref, int64_t now_ms, int *rc) {
  if (!dsp__id_ok(offer_id) || !dsp__id_ok(driver_id)) {
    *rc = dsp__reply(s, DSP_EINVAL, DSP_ERR_BAD_REQUEST, ref, NULL,
                     dsp__id_ok(driver_id) ? driver_id : "?", NULL, NULL, NULL,
                     "offer_id and driver_id must be 1..64 printable bytes");
    return NULL;
  }
  dsp_trip *t = dsp_strmap_get(&s->offers, offer_id);
  if (!t || strcmp(t->driver_id, driver_id) != 0) {
    *rc = dsp__reply(s, DSP_EUNKNOWN_OFFER, DSP_ERR_UNKNOWN_OFFER, ref, NULL, driver_id, NULL, NULL,
                     offer_id, "no such offer for this driver");
    return NULL;
  }
  if (now_ms >= t->offer_expires_ms) { /* the tick has not seen it yet: expire it now */
    dsp__offer_end(s, t, DSP_EV_OFFER_EXPIRED, now_ms, NULL);
    dsp__offer_next(s, t, now_ms);
    *rc = dsp__reply(s, DSP_EUNKNOWN_OFFER, DSP_ERR_UNKNOWN_OFFER, ref, NULL, driver_id, NULL, NULL,
                     offer_id, "the offer has expired");
    return NULL;
  }
  return t;
}

/* A command that repeats one already applied: an app re-sends what it did not see acked
 * after a reconnection, and a restarted shard reads again the commands after its committed
 * offset although their events are out (and restored). It is answered as the first one
 * was (no refusal, nothing emitted again: the events are out) and counted. */
static int repeated(dsp_shard *s) {
  s->st.commands_repeated++;
  return DSP_OK;
}

/* Has driver_id's accept of offer_id been applied already: his trip (of this shard) is
 * the offer's and matched or past it? */
static bool accept_applied(dsp_shard *s, const char *offer_id, const char *driver_id) {
  if (!dsp__id_ok(offer_id) || !dsp__id_ok(driver_id)) return false;
  if (dsp_strmap_get(&s->offers, offer_id)) return false; /* still live: not accepted yet */
  const dsp_driver *d = dsp_strmap_get(&s->drivers, driver_id);
  const dsp_trip *t = d ? d->trip : NULL;
  return t && t->driver == d && strcmp(t->offer_id, offer_id) == 0 &&
         (t->state == DSP_TRIP_MATCHED || t->state == DSP_TRIP_ARRIVED ||
          t->state == DSP_TRIP_STARTED);
}

int dsp_on_accept(dsp_shard *s, const char *offer_id, const char *driver_id, const char *ref,
                  int64_t now_ms) {
  if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return DSP_ENOMEM;
  if (accept_applied(s, offer_id, driver_id)) return repeated(s);
  int rc = DSP_OK;
  dsp_trip *t = live_offer(s, offer_id, driver_id, ref, now_ms, &rc);
  if (!t) return rc;
  /* Turn the offer's short claim into the trip's: renew it, or take it again if it ran
   * out. Lost means another shard holds the driver now: the offer cannot stand. */
  dsp_claim_result cr =
      s->claims.refresh(s->claims.ud, t->driver_id, t->owner, s->cfg.trip_claim_ttl_ms, now_ms);
  if (cr == DSP_CLAIM_LOST)
    cr =
        s->claims.try_claim(s->claims.ud, t->driver_id, t->owner, s->cfg.trip_claim_ttl_ms, now_ms);
  if (cr == DSP_CLAIM_LOST) {
    s->st.claims_lost++;
    t->claimed = false; /* not ours: do not release another owner's claim */
    dsp__offer_end(s, t, DSP_EV_OFFER_EXPIRED, now_ms, "claim_lost");
    dsp__offer_next(s, t, now_ms);
    return dsp__reply(s, DSP_EUNKNOWN_OFFER, DSP_ERR_UNKNOWN_OFFER, ref, NULL, driver_id, NULL,
                      NULL, offer_id, "the offer was withdrawn");
  }
  if (cr == DSP_CLAIM_ERROR) s->st.claim_errors++; /* the store is down: carry on */
  drop_live_offer(s, t);
  dsp__driver_set_state(s, t->driver, DSP_DRIVER_EN_ROUTE);
  t->claim_renew_ms = now_ms + s->cfg.trip_claim_ttl_ms / 3;
  s->st.matched++;
  dsp__requote(s, t, now_ms); /* he drove on while deciding: the rider's ETA is from now */
  dsp__emit(s, t, DSP_EV_MATCHED, DSP_TRIP_MATCHED, now_ms, NULL);
  return DSP_OK;
}

int dsp_on_decline(dsp_shard *s, const char *offer_id, const char *driver_id, const char *ref,
                   int64_t now_ms) {
  if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return DSP_ENOMEM;
  int rc = DSP_OK;
  dsp_trip *t = live_offer(s, offer_id, driver_id, ref, now_ms, &rc);
  if (!t) return rc;
  dsp__offer_end(s, t, DSP_EV_OFFER_DECLINED, now_ms, "driver");
  dsp__offer_next(s, t, now_ms);
  return DSP_OK;
}

/* ---------------------------------------------------------------- driver trip steps */

static const char *step_name(dsp_trip_state to) {
  switch (to) {
  case DSP_TRIP_ARRIVED: return "arrived";
  case DSP_TRIP_STARTED: return "start";
  case DSP_TRIP_COMPLETED: return "complete";
  case DSP_TRIP_CANCELLED: return "cancel";
  default: return "step";
  }
}

/* Where a trip stands on the way offered -> matched -> arrived -> started -> completed
 * (0: requested, offered, or ended otherwise), to tell a step already taken. */
static int progress(dsp_trip_state st) {
  switch (st) {
  case DSP_TRIP_MATCHED: return 1;
  case DSP_TRIP_ARRIVED: return 2;
  case DSP_TRIP_STARTED: return 3;
  case DSP_TRIP_COMPLETED: return 4;
  default: return 0;
  }
}

/* The trip trip_id if driver_id is its driver and it is in one of the states from[0..n);
 * otherwise NULL with *rc set: DSP_OK when the step was applied already (the driver's
 * trip is in state `to` or past it: a repeat, counted, nothing queued), else after
 * queueing the invalid_state reply. Another driver's trip and an unknown trip get the same
 * answer, so trip ids cannot be probed. */
static dsp_trip *own_trip(dsp_shard *s, const char *trip_id, const char *driver_id,
                          const dsp_trip_state *from, size_t n, dsp_trip_state to, const char *ref,
                          int *rc) {
  if (!dsp__id_ok(trip_id) || !dsp__id_ok(driver_id)) {
    *rc = dsp__reply(s, DSP_EINVAL, DSP_ERR_BAD_REQUEST, ref, NULL,
                     dsp__id_ok(driver_id) ? driver_id : "?", NULL, NULL, NULL,
                     "trip_id and driver_id must be 1..64 printable bytes");
    return NULL;
  }
  dsp_trip *t = dsp_strmap_get(&s->trips, trip_id);
  char msg[128];
  /* his trip, in that state or past it (an ended one no longer holds him: t->driver is
   * NULL, its driver_id stays) */
  if (t && strcmp(t->driver_id, driver_id) == 0 && progress(to) > 0 &&
      progress(t->state) >= progress(to)) {
    *rc = repeated(s);
    return NULL;
  }
  if (!t || !t->driver || strcmp(t->driver_id, driver_id) != 0 || t->state == DSP_TRIP_OFFERED) {
    snprintf(msg, sizeof msg, "%s: no such trip for this driver", step_name(to));
    *rc = dsp__reply(s, DSP_ESTATE, DSP_ERR_INVALID_STATE, ref, NULL, driver_id, trip_id, NULL,
                     NULL, msg);
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    if (t->state == from[i]) return t;
  snprintf(msg, sizeof msg, "%s is not allowed when the trip is %s", step_name(to),
           dsp_trip_state_name(t->state));
  *rc = dsp__reply(s, DSP_ESTATE, DSP_ERR_INVALID_STATE, ref, NULL, driver_id, trip_id, NULL, NULL,
                   msg);
  return NULL;
}

int dsp_on_arrived(dsp_shard *s, const char *trip_id, const char *driver_id, const char *ref,
                   int64_t now_ms) {
  if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return DSP_ENOMEM;
  static const dsp_trip_state from[] = {DSP_TRIP_MATCHED};
  int rc = DSP_OK;
  dsp_trip *t = own_trip(s, trip_id, driver_id, from, 1, DSP_TRIP_ARRIVED, ref, &rc);
  if (!t) return rc;
  dsp__emit(s, t, DSP_EV_ARRIVED, DSP_TRIP_ARRIVED, now_ms, NULL);
  return DSP_OK;
}

int dsp_on_start(dsp_shard *s, const char *trip_id, const char *driver_id, const char *ref,
                 int64_t now_ms) {
  if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return DSP_ENOMEM;
  static const dsp_trip_state from[] = {DSP_TRIP_ARRIVED};
  int rc = DSP_OK;
  dsp_trip *t = own_trip(s, trip_id, driver_id, from, 1, DSP_TRIP_STARTED, ref, &rc);
  if (!t) return rc;
  dsp__driver_set_state(s, t->driver, DSP_DRIVER_ON_TRIP);
  dsp__emit(s, t, DSP_EV_STARTED, DSP_TRIP_STARTED, now_ms, NULL);
  return DSP_OK;
}

int dsp_on_complete(dsp_shard *s, const char *trip_id, const char *driver_id, const char *ref,
                    int64_t now_ms) {
  if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return DSP_ENOMEM;
  static const dsp_trip_state from[] = {DSP_TRIP_STARTED};
  int rc = DSP_OK;
  dsp_trip *t = own_trip(s, trip_id, driver_id, from, 1, DSP_TRIP_COMPLETED, ref, &rc);
  if (!t) return rc;
  dsp__trip_end(s, t, DSP_EV_COMPLETED, DSP_TRIP_COMPLETED, now_ms, NULL, DSP_DRIVER_AVAILABLE);
  return DSP_OK;
}

int dsp_on_driver_cancel(dsp_shard *s, const char *trip_id, const char *driver_id,
                         const char *reason, const char *ref, int64_t now_ms) {
  if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return DSP_ENOMEM;
  static const dsp_trip_state from[] = {DSP_TRIP_MATCHED, DSP_TRIP_ARRIVED};
  int rc = DSP_OK;
  dsp_trip *t = own_trip(s, trip_id, driver_id, from, 2, DSP_TRIP_CANCELLED, ref, &rc);
  if (!t) return rc;
  return dsp__cancel_by_driver(s, t, DSP_DRIVER_AVAILABLE, reason && reason[0] ? reason : "driver",
                               now_ms);
}

/* ---------------------------------------------------------------- timers */

size_t dsp_claims_reassert(dsp_shard *s, int64_t now_ms) {
  size_t n = 0;
  for (dsp_trip *t = s->live.head; t; t = t->next) {
    if (!t->claimed || !t->driver_id[0]) continue;
    int64_t ttl;
    if (t->state == DSP_TRIP_OFFERED)
      ttl = t->offer_expires_ms - now_ms + s->cfg.claim_margin_ms;
    else if (t->state == DSP_TRIP_MATCHED || t->state == DSP_TRIP_ARRIVED ||
             t->state == DSP_TRIP_STARTED)
      ttl = s->cfg.trip_claim_ttl_ms;
    else
      continue;
    if (ttl <= 0) continue; /* an offer past its time: the tick expires it */
    dsp_claim_result cr = s->claims.try_claim(s->claims.ud, t->driver_id, t->owner, ttl, now_ms);
    if (cr == DSP_CLAIM_WON) {
      n++;
      if (t->state != DSP_TRIP_OFFERED) t->claim_renew_ms = now_ms + s->cfg.trip_claim_ttl_ms / 3;
    } else if (cr == DSP_CLAIM_LOST) {
      s->st.claims_lost++;
    } else {
      s->st.claim_errors++;
    }
  }
  return n;
}

void dsp__trips_tick(dsp_shard *s, int64_t now_ms) {
  for (dsp_trip *t = s->live.head, *next; t; t = next) {
    next = t->next; /* t may move to the ended list; no other trip moves */
    if (t->state == DSP_TRIP_REQUESTED && t->resume) {
      if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return; /* retried next tick */
      t->resume = false;
      dsp__offer_next(s, t, now_ms);
    } else if (t->state == DSP_TRIP_OFFERED && now_ms >= t->offer_expires_ms) {
      if (dsp__reserve_outputs(s, CMD_OUTPUTS) != 0) return; /* retried next tick */
      dsp__offer_end(s, t, DSP_EV_OFFER_EXPIRED, now_ms, NULL);
      dsp__offer_next(s, t, now_ms);
    } else if ((t->state == DSP_TRIP_MATCHED || t->state == DSP_TRIP_ARRIVED ||
                t->state == DSP_TRIP_STARTED) &&
               t->claimed && now_ms >= t->claim_renew_ms) {
      dsp_claim_result cr =
          s->claims.refresh(s->claims.ud, t->driver_id, t->owner, s->cfg.trip_claim_ttl_ms, now_ms);
      if (cr == DSP_CLAIM_LOST) { /* expired (store restarted?): take it again */
        s->st.claim_refresh_lost++;
        cr = s->claims.try_claim(s->claims.ud, t->driver_id, t->owner, s->cfg.trip_claim_ttl_ms,
                                 now_ms);
      }
      if (cr == DSP_CLAIM_ERROR) s->st.claim_errors++;
      t->claim_renew_ms = now_ms + s->cfg.trip_claim_ttl_ms / 3;
    }
  }
  /* Ended trips are forgotten in the order they ended. */
  while (s->ended.head && now_ms - s->ended.head->ended_ms >= s->cfg.trip_retention_ms) {
    dsp_trip *t = s->ended.head;
    dsp__list_remove(&s->ended, t);
    dsp_strmap_del(&s->trips, t->id);
    dsp_strmap_del(&s->requests, t->req_key);
    if (dsp_strmap_get(&s->request_ids, t->request_id) == t)
      dsp_strmap_del(&s->request_ids, t->request_id);
    dsp__trip_free(t);
  }
}

/* ---------------------------------------------------------------- restart */

int dsp_restore_trip(dsp_shard *s, const dsp_trip_restore *r, int64_t now_ms) {
  if (!r || !dsp__id_ok(r->trip_id) || !dsp__id_ok(r->rider_id) || !dsp__id_ok(r->request_id) ||
      !geo_latlng_is_valid(r->pickup) || !geo_latlng_is_valid(r->dropoff) || r->seq < 1)
    return DSP_EINVAL;
  bool with_driver = r->status != DSP_TRIP_REQUESTED;
  switch (r->status) {
  case DSP_TRIP_REQUESTED:
  case DSP_TRIP_MATCHED:
  case DSP_TRIP_ARRIVED:
  case DSP_TRIP_STARTED: break;
  case DSP_TRIP_OFFERED:
    if (!dsp__id_ok(r->offer_id)) return DSP_EINVAL;
    break;
  default: return DSP_EINVAL;
  }
  if (with_driver && !dsp__id_ok(r->driver_id)) return DSP_EINVAL;
  if (dsp_strmap_get(&s->trips, r->trip_id)) return DSP_OK;
  if (dsp_strmap_get(&s->riders, r->rider_id)) return DSP_ESTATE;
  dsp_driver *d = NULL;
  if (with_driver) {
    dsp_driver_state ds = r->status == DSP_TRIP_OFFERED   ? DSP_DRIVER_OFFERED
                          : r->status == DSP_TRIP_STARTED ? DSP_DRIVER_ON_TRIP
                                                          : DSP_DRIVER_EN_ROUTE;
    d = dsp__driver_get_or_new(s, r->driver_id, ds, now_ms);
    if (!d) return DSP_ENOMEM;
    if (d->trip) return DSP_ESTATE;
    dsp__driver_set_state(s, d, ds);
    if (!d->has_pos && r->has_driver_pos && geo_latlng_is_valid(r->driver_pos)) {
      d->pos = r->driver_pos; /* not in the index: only his next ping puts him there */
      d->has_pos = true;
    }
  }
  dsp_request req = {.request_id = r->request_id,
                     .rider_id = r->rider_id,
                     .pickup = r->pickup,
                     .dropoff = r->dropoff};
  dsp_trip *t = trip_new(s, &req, now_ms);
  if (!t || dsp_strmap_reserve(&s->trips, 1) || dsp_strmap_reserve(&s->requests, 1) ||
      dsp_strmap_reserve(&s->riders, 1) || dsp_strmap_reserve(&s->offers, 1) ||
      dsp_strmap_reserve(&s->request_ids, 1)) {
    dsp__trip_free(t);
    return DSP_ENOMEM;
  }
  dsp__copy_id(t->id, r->trip_id);
  t->state = r->status;
  t->seq = r->seq;
  /* The pickup was snapped before the restart: snapping the snapped point again finds
   * the same road place, which the matcher needs for its search. */
  if (s->router.snap(s->router.ud, r->pickup, &t->pickup_snap) != 0) t->pickup_snap.pos = r->pickup;
  dsp_strmap_put(&s->trips, t->id, t);
  dsp_strmap_put(&s->requests, t->req_key, t);
  dsp_strmap_put(&s->request_ids, t->request_id, t);
  dsp_strmap_put(&s->riders, t->rider_id, t);
  dsp__list_append(&s->live, t);
  if (d) {
    t->driver = d;
    d->trip = t;
    dsp__copy_id(t->driver_id, d->id);
    /* the accepted offer (a matched trip's event names it): a repeated accept is told */
    if (r->offer_id && dsp__id_ok(r->offer_id)) dsp__copy_id(t->offer_id, r->offer_id);
    t->eta_s = isfinite(r->pickup_eta_s) ? r->pickup_eta_s : NAN;
    snprintf(t->owner, sizeof t->owner, "%u:%s:%llu", s->cfg.shard, t->id,
             (unsigned long long)r->epoch);
    t->claimed = true;
    t->claim_renew_ms = now_ms;
    t->offers_made = 1;
    t->tried[t->n_tried++] = d->handle;
  } else {
    t->resume = true;
  }
  if (r->status == DSP_TRIP_OFFERED) {
    dsp__copy_id(t->offer_id, r->offer_id);
    t->offer_live = true;
    t->offer_expires_ms = r->expires_at_ms;
    dsp_strmap_put(&s->offers, t->offer_id, t);
  }
  return DSP_OK;
}
