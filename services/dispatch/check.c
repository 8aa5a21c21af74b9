/*
 * check.c: dsp_check, the shard's invariant checker (test API): every trip against the
 * invariants stated at struct dsp_trip (dispatch_internal.h), every driver against his
 * trip, and the maps, lists and batch against the trips. Reads only; the random tests
 * call it after every step.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dispatch_internal.h"

/* Fill why and return DSP_ESTATE. */
static int broken(char *why, size_t cap, const char *fmt, ...) {
  if (why && cap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
  }
  return DSP_ESTATE;
}

static bool trip_live_state(dsp_trip_state st) {
  return st == DSP_TRIP_REQUESTED || st == DSP_TRIP_OFFERED || st == DSP_TRIP_MATCHED ||
         st == DSP_TRIP_ARRIVED || st == DSP_TRIP_STARTED;
}

/* The driver state that goes with a trip state that has a driver. */
static dsp_driver_state driver_state_for(dsp_trip_state st) {
  return st == DSP_TRIP_OFFERED   ? DSP_DRIVER_OFFERED
         : st == DSP_TRIP_STARTED ? DSP_DRIVER_ON_TRIP
                                  : DSP_DRIVER_EN_ROUTE;
}

static size_t batch_count(const dsp_shard *s, const dsp_trip *t) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_batch; i++) n += s->batch[i] == t;
  return n;
}

/* The invariants of one trip, live or ended. */
static int check_trip(const dsp_shard *s, const dsp_trip *t, bool live, char *why, size_t cap) {
  const char *id = t->id;
  const char *st = dsp_trip_state_name(t->state);
  if (t->seq < 1) return broken(why, cap, "trip %s: seq 0", id);
  if (t->releasing[0])
    return broken(why, cap, "trip %s: releasing %s between events", id, t->releasing);
  if (dsp_strmap_get(&s->trips, id) != t)
    return broken(why, cap, "trip %s: not in the trips map", id);
  if (dsp_strmap_get(&s->requests, t->req_key) != t)
    return broken(why, cap, "trip %s: not in the requests map", id);
  if (live != trip_live_state(t->state))
    return broken(why, cap, "trip %s: %s on the %s list", id, st, live ? "live" : "ended");
  bool in_riders = dsp_strmap_get(&s->riders, t->rider_id) == t;
  if (live != in_riders)
    return broken(why, cap, "trip %s (%s): %s the riders map", id, st,
                  live ? "not in" : "still in");
  bool with_driver = t->state == DSP_TRIP_OFFERED || t->state == DSP_TRIP_MATCHED ||
                     t->state == DSP_TRIP_ARRIVED || t->state == DSP_TRIP_STARTED;
  if ((t->driver != NULL) != with_driver)
    return broken(why, cap, "trip %s (%s): %s driver", id, st, t->driver ? "has a" : "has no");
  if (t->claimed != (t->driver != NULL))
    return broken(why, cap, "trip %s (%s): claimed %d with driver %s", id, st, t->claimed,
                  t->driver ? t->driver->id : "none");
  if (t->driver) {
    const dsp_driver *d = t->driver;
    if (d->trip != t) return broken(why, cap, "trip %s: its driver %s is not on it", id, d->id);
    if (strcmp(t->driver_id, d->id) != 0)
      return broken(why, cap, "trip %s: driver_id %s, driver %s", id, t->driver_id, d->id);
    if (d->state != driver_state_for(t->state))
      return broken(why, cap, "trip %s (%s): driver %s is %s", id, st, d->id,
                    dsp_driver_state_name(d->state));
    if (dsp_strmap_get(&s->drivers, d->id) != d)
      return broken(why, cap, "trip %s: driver %s not in the drivers map", id, d->id);
  }
  if (t->offer_live != (t->state == DSP_TRIP_OFFERED))
    return broken(why, cap, "trip %s (%s): offer_live %d", id, st, t->offer_live);
  if (t->offer_live && dsp_strmap_get(&s->offers, t->offer_id) != t)
    return broken(why, cap, "trip %s: live offer %s not in the offers map", id, t->offer_id);
  size_t in_batch = batch_count(s, t);
  if (in_batch != (t->in_batch ? 1u : 0u))
    return broken(why, cap, "trip %s: in_batch %d, %zu times in the batch", id, t->in_batch,
                  in_batch);
  if (t->in_batch && t->state != DSP_TRIP_REQUESTED)
    return broken(why, cap, "trip %s: in the batch while %s", id, st);
  if (live && t->resume && (t->state != DSP_TRIP_REQUESTED || t->in_batch))
    return broken(why, cap, "trip %s: resume while %s%s", id, st,
                  t->in_batch ? " in the batch" : "");
  if (!t->searched && (t->n_cands || t->cand_next))
    return broken(why, cap, "trip %s: candidates without a search", id);
  if (t->cand_next > t->n_cands || t->n_cands > s->cfg.k_candidates)
    return broken(why, cap, "trip %s: candidate %zu of %zu (k %u)", id, t->cand_next, t->n_cands,
                  s->cfg.k_candidates);
  if (t->radius_step >= s->cfg.n_radii)
    return broken(why, cap, "trip %s: radius step %u of %u", id, t->radius_step, s->cfg.n_radii);
  if (t->n_tried != t->offers_made || t->offers_made > s->cfg.max_offers)
    return broken(why, cap, "trip %s: %zu tried, %u offers made (max %u)", id, t->n_tried,
                  t->offers_made, s->cfg.max_offers);
  return DSP_OK;
}

static int check_list(const dsp_shard *s, const dsp_trip_list *l, bool live, size_t *n, char *why,
                      size_t cap) {
  *n = 0;
  const dsp_trip *prev = NULL;
  for (const dsp_trip *t = l->head; t; prev = t, t = t->next) {
    if (t->prev != prev) return broken(why, cap, "trip %s: broken list link", t->id);
    int rc = check_trip(s, t, live, why, cap);
    if (rc != DSP_OK) return rc;
    (*n)++;
  }
  if (l->tail != prev)
    return broken(why, cap, "%s list: tail is not the last trip", live ? "live" : "ended");
  return DSP_OK;
}

static int check_drivers(const dsp_shard *s, char *why, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_slots; i++) {
    const dsp_driver *d = s->slots[i];
    if (!d) continue;
    n++;
    if ((uint32_t)(d->handle & 0xffffffffu) != i || dsp__driver_by_handle(s, d->handle) != d)
      return broken(why, cap, "driver %s: handle does not name his slot", d->id);
    bool busy = d->state == DSP_DRIVER_OFFERED || d->state == DSP_DRIVER_EN_ROUTE ||
                d->state == DSP_DRIVER_ON_TRIP;
    if (busy != (d->trip != NULL))
      return broken(why, cap, "driver %s: %s %s a trip", d->id, dsp_driver_state_name(d->state),
                    d->trip ? "with" : "without");
    if (d->trip && d->trip->driver != d)
      return broken(why, cap, "driver %s: his trip %s names another driver", d->id, d->trip->id);
    if (d->in_index && !d->has_pos)
      return broken(why, cap, "driver %s: indexed without a position", d->id);
  }
  if (n != s->drivers.len)
    return broken(why, cap, "%zu driver records, %zu in the drivers map", n, s->drivers.len);
  return DSP_OK;
}

int dsp_check(const dsp_shard *s, char *why, size_t why_cap) {
  if (why && why_cap) why[0] = '\0';
  size_t n_live, n_ended;
  int rc = check_list(s, &s->live, true, &n_live, why, why_cap);
  if (rc == DSP_OK) rc = check_list(s, &s->ended, false, &n_ended, why, why_cap);
  if (rc == DSP_OK) rc = check_drivers(s, why, why_cap);
  if (rc != DSP_OK) return rc;
  if (s->trips.len != n_live + n_ended)
    return broken(why, why_cap, "%zu trips in the map, %zu live + %zu ended", s->trips.len, n_live,
                  n_ended);
  if (s->riders.len != n_live)
    return broken(why, why_cap, "%zu riders in the map, %zu live trips", s->riders.len, n_live);
  size_t offers = 0;
  for (const dsp_trip *t = s->live.head; t; t = t->next) offers += t->offer_live;
  if (s->offers.len != offers)
    return broken(why, why_cap, "%zu offers in the map, %zu live", s->offers.len, offers);
  for (size_t i = 0; i < s->n_batch; i++)
    if (!s->batch[i]->in_batch)
      return broken(why, why_cap, "trip %s: in the batch, in_batch 0", s->batch[i]->id);
  return DSP_OK;
}
