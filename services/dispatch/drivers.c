/*
 * drivers.c: the shard's drivers: position pings (ordered by seq, then ts), the
 * available/offline status, and the TTL that takes silent drivers out of the index.
 *
 * A driver record lives in a slot; its handle (generation << 32 | slot) is his id in the
 * spatial index and in trips' candidate lists, so a freed and reused slot never passes
 * for the driver who held it before. What a driver does inside a trip is trips.c's (also
 * what his going offline does to his offer or trip).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_internal.h"

/* A new driver record in a free slot, registered by id; NULL when memory runs out
 * (nothing changed). */
static dsp_driver *driver_new(dsp_shard *s, const char *id, dsp_driver_state state,
                              int64_t now_ms) {
  if (s->n_free == 0 && s->n_slots == s->cap_slots) {
    size_t cap = s->cap_slots ? s->cap_slots * 2 : 64;
    if (cap > UINT32_MAX) return NULL;
    dsp_driver **slots = realloc(s->slots, cap * sizeof *slots);
    if (!slots) return NULL;
    s->slots = slots;
    uint32_t *gen = realloc(s->slot_gen, cap * sizeof *gen);
    if (!gen) return NULL;
    s->slot_gen = gen;
    uint32_t *fr = realloc(s->free_slots, cap * sizeof *fr);
    if (!fr) return NULL;
    s->free_slots = fr;
    s->cap_slots = cap;
  }
  if (dsp_strmap_reserve(&s->drivers, 1) != 0) return NULL;
  dsp_driver *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  uint32_t slot;
  if (s->n_free > 0) {
    slot = s->free_slots[--s->n_free];
  } else {
    slot = (uint32_t)s->n_slots++;
    s->slot_gen[slot] = 1;
  }
  s->slots[slot] = d;
  d->handle = ((uint64_t)s->slot_gen[slot] << 32) | slot;
  dsp__copy_id(d->id, id);
  d->state = state;
  d->last_seen_ms = now_ms;
  dsp_strmap_put(&s->drivers, d->id, d); /* reserved above: cannot fail */
  return d;
}

dsp_driver *dsp__driver_get_or_new(dsp_shard *s, const char *id, dsp_driver_state st,
                                   int64_t now_ms) {
  dsp_driver *d = dsp_strmap_get(&s->drivers, id);
  return d ? d : driver_new(s, id, st, now_ms);
}

void dsp__driver_set_state(dsp_shard *s, dsp_driver *d, dsp_driver_state st) {
  d->state = st;
  if (d->in_index && s->index.set_state) s->index.set_state(s->index.ud, d->handle, (uint8_t)st);
}

void dsp__driver_free(dsp_shard *s, dsp_driver *d) {
  uint32_t slot = (uint32_t)(d->handle & 0xffffffffu);
  if (d->in_index) s->index.remove(s->index.ud, d->handle);
  dsp_strmap_del(&s->drivers, d->id);
  s->slots[slot] = NULL;
  s->slot_gen[slot]++;
  if (s->slot_gen[slot] == 0) s->slot_gen[slot] = 1;
  s->free_slots[s->n_free++] = slot;
  free(d);
}

int dsp_on_location(dsp_shard *s, const dsp_location *loc, int64_t now_ms) {
  s->st.pings++;
  if (!loc || !dsp__id_ok(loc->driver_id) || !geo_latlng_is_valid(loc->pos)) {
    s->st.pings_invalid++;
    return DSP_EINVAL;
  }
  dsp_driver *d = dsp_strmap_get(&s->drivers, loc->driver_id);
  bool fresh = false;
  if (!d) {
    d = driver_new(s, loc->driver_id,
                   s->cfg.first_ping_available ? DSP_DRIVER_AVAILABLE : DSP_DRIVER_OFFLINE, now_ms);
    if (!d) return DSP_ENOMEM;
    fresh = true;
  } else if (d->has_ping &&
             (loc->seq < d->last_seq || (loc->seq == d->last_seq && loc->ts_ms <= d->last_ts_ms))) {
    s->st.pings_stale++;
    return DSP_ESTALE;
  }
  /* the index's own DSP_E* (a full index is DSP_ERANGE, not out of memory) */
  int rc = s->index.upsert(s->index.ud, d->handle, loc->pos, (uint8_t)d->state, now_ms);
  if (rc != 0) {
    if (fresh) dsp__driver_free(s, d);
    return rc;
  }
  d->in_index = true;
  d->has_ping = true;
  d->last_seq = loc->seq;
  d->last_ts_ms = loc->ts_ms;
  d->last_seen_ms = now_ms;
  d->ping_rx_ms = loc->received_ms > 0 && loc->received_ms <= now_ms ? loc->received_ms : now_ms;
  d->heading_deg =
      loc->has_heading && loc->heading_deg >= 0 && loc->heading_deg < 360 ? loc->heading_deg : NAN;
  d->speed_mps =
      loc->has_speed && loc->speed_mps >= 0 && isfinite(loc->speed_mps) ? loc->speed_mps : NAN;
  d->pos = loc->pos;
  d->has_pos = true;
  d->halo = loc->halo;
  d->owner_shard = loc->halo ? loc->owner_shard : s->cfg.shard;
  return DSP_OK;
}

int dsp_on_status(dsp_shard *s, const char *driver_id, bool available, const char *ref,
                  int64_t now_ms) {
  if (dsp__reserve_outputs(s, 8) != 0) return DSP_ENOMEM;
  if (!dsp__id_ok(driver_id))
    return dsp__reply(s, DSP_EINVAL, DSP_ERR_BAD_REQUEST, ref, NULL, "?", NULL, NULL, NULL,
                      "bad driver id");
  dsp_driver *d = dsp_strmap_get(&s->drivers, driver_id);
  dsp_driver_state want = available ? DSP_DRIVER_AVAILABLE : DSP_DRIVER_OFFLINE;
  if (!d) {
    /* Known before his first ping (status goes to every shard): no position yet. */
    return driver_new(s, driver_id, want, now_ms) ? DSP_OK : DSP_ENOMEM;
  }
  d->last_seen_ms = now_ms;
  if (available) {
    if (d->state == DSP_DRIVER_OFFLINE) dsp__driver_set_state(s, d, DSP_DRIVER_AVAILABLE);
    return DSP_OK; /* already available, or busy: nothing to change */
  }
  switch (d->state) {
  case DSP_DRIVER_OFFLINE: return DSP_OK;
  case DSP_DRIVER_AVAILABLE: dsp__driver_set_state(s, d, DSP_DRIVER_OFFLINE); return DSP_OK;
  case DSP_DRIVER_OFFERED:  /* going offline declines the offer */
  case DSP_DRIVER_EN_ROUTE: /* going offline on the way cancels the trip */
    dsp__trip_driver_offline(s, d, now_ms);
    return DSP_OK;
  case DSP_DRIVER_ON_TRIP: break;
  }
  return dsp__reply(s, DSP_ESTATE, DSP_ERR_INVALID_STATE, ref, NULL, driver_id,
                    d->trip ? d->trip->id : NULL, NULL, NULL,
                    "cannot go offline during a trip: complete it first");
}

void dsp__drivers_sweep(dsp_shard *s, int64_t now_ms) {
  for (size_t i = 0; i < s->n_slots; i++) {
    dsp_driver *d = s->slots[i];
    if (!d || now_ms - d->last_seen_ms < s->cfg.driver_ttl_ms) continue;
    if (d->in_index) {
      s->index.remove(s->index.ud, d->handle);
      d->in_index = false;
      d->has_ping = false; /* a restarted app (seq from 0) is accepted when it returns */
      s->st.drivers_dropped_ttl++;
    }
    /* An idle silent driver is forgotten; a busy one stays with his trip. */
    if (!d->trip && (d->state == DSP_DRIVER_AVAILABLE || d->state == DSP_DRIVER_OFFLINE))
      dsp__driver_free(s, d);
  }
}

int dsp_on_warm(dsp_shard *s, const char *driver_id, geo_latlng pos, int64_t now_ms,
                bool *created) {
  if (created) *created = false;
  if (!dsp__id_ok(driver_id) || !geo_latlng_is_valid(pos)) return DSP_EINVAL;
  if (dsp_strmap_get(&s->drivers, driver_id)) return DSP_OK;
  dsp_driver *d = driver_new(s, driver_id, DSP_DRIVER_AVAILABLE, now_ms);
  if (!d) return DSP_ENOMEM;
  int rc = s->index.upsert(s->index.ud, d->handle, pos, (uint8_t)d->state, now_ms);
  if (rc != 0) {
    dsp__driver_free(s, d);
    return rc;
  }
  d->in_index = true;
  d->has_ping = false; /* no order yet: his next ping is taken whatever its seq */
  d->pos = pos;
  d->has_pos = true;
  d->halo = false;
  d->owner_shard = s->cfg.shard;
  if (created) *created = true;
  return DSP_OK;
}

size_t dsp_release_owned(dsp_shard *s, dsp_owner_fn owner_of, void *ud,
                         void (*released)(void *ud, const char *driver_id)) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_slots; i++) {
    dsp_driver *d = s->slots[i];
    uint32_t owner;
    if (!d || d->halo || !d->has_pos || !owner_of(ud, d->pos, &owner) || owner == s->cfg.shard)
      continue;
    d->halo = true;
    d->owner_shard = owner;
    if (released) released(ud, d->id);
    n++;
  }
  return n;
}
