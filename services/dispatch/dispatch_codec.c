/*
 * dispatch_codec.c: core <-> Kafka payload mapping for meridian-dispatch (see
 * dispatch_codec.h). Pure functions; the core's numbering of event types and trip states
 * is the proto's, so the mapping is a copy of fields.
 */
#include "dispatch_codec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void b36(uint64_t v, char *buf) {
  char tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
    v /= 36;
  } while (v);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  buf[n] = '\0';
}

void dspc_trip_suffix(int64_t ts_ms, int64_t offset, char out[DSPC_SUFFIX_MAX]) {
  char a[16], b[16];
  b36(ts_ms > 0 ? (uint64_t)ts_ms : 0, a);
  b36(offset > 0 ? (uint64_t)offset : 0, b);
  snprintf(out, DSPC_SUFFIX_MAX, "%s-%s", a, b);
}

static const char *nz(const char *s) { return s[0] ? s : NULL; }

int dspc_apply_command(dsp_shard *s, uint32_t shard, const mrd_command *c, int64_t offset,
                       int64_t now_ms) {
  if (c->shard != shard) return DSP_EINVAL;
  const char *ref = nz(c->ref);
  switch (c->kind) {
  case MRD_CMD_REQUEST: {
    char suffix[DSPC_SUFFIX_MAX];
    dspc_trip_suffix(c->ts_ms, offset, suffix);
    dsp_request r = {.request_id = c->request_id,
                     .rider_id = c->rider_id,
                     .pickup = {c->pickup.lat, c->pickup.lon},
                     .dropoff = {c->dropoff.lat, c->dropoff.lon},
                     .trip_suffix = suffix,
                     .at_ms = c->ts_ms,
                     .resend = c->resend};
    return dsp_on_request(s, &r, ref, now_ms);
  }
  case MRD_CMD_CANCEL: return dsp_on_cancel(s, c->request_id, c->rider_id, ref, now_ms);
  case MRD_CMD_ACCEPT: return dsp_on_accept(s, c->offer_id, c->driver_id, ref, now_ms);
  case MRD_CMD_DECLINE: return dsp_on_decline(s, c->offer_id, c->driver_id, ref, now_ms);
  case MRD_CMD_ARRIVED: return dsp_on_arrived(s, c->trip_id, c->driver_id, ref, now_ms);
  case MRD_CMD_START: return dsp_on_start(s, c->trip_id, c->driver_id, ref, now_ms);
  case MRD_CMD_COMPLETE: return dsp_on_complete(s, c->trip_id, c->driver_id, ref, now_ms);
  case MRD_CMD_STATUS:
    if (c->status != MRD_DRIVER_AVAILABLE && c->status != MRD_DRIVER_OFFLINE) return DSP_EINVAL;
    return dsp_on_status(s, c->driver_id, c->status == MRD_DRIVER_AVAILABLE, ref, now_ms);
  default: return DSP_EINVAL;
  }
}

int dspc_apply_location(dsp_shard *s, const mrd_driver_location *m, int64_t now_ms) {
  dsp_location l = {.driver_id = m->driver_id,
                    .pos = {m->pos.lat, m->pos.lon},
                    .ts_ms = m->ts_ms,
                    .seq = m->seq,
                    .halo = m->halo,
                    .owner_shard = m->owner_shard,
                    .has_heading = m->has_heading,
                    .heading_deg = m->heading_deg,
                    .has_speed = m->has_speed,
                    .speed_mps = m->speed_mps,
                    .received_ms = m->received_ms};
  return dsp_on_location(s, &l, now_ms);
}

static mrd_latlon ll(geo_latlng p) { return (mrd_latlon){p.lat, p.lng}; }

void dspc_event_to_proto(const dsp_event *e, mrd_dispatch_event *out) {
  memset(out, 0, sizeof *out);
  out->type = (mrd_event_type)e->type;
  out->status = (mrd_trip_status)e->status;
  snprintf(out->trip_id, sizeof out->trip_id, "%s", e->trip_id);
  out->seq = e->seq;
  out->shard = e->shard;
  out->epoch = e->epoch;
  out->ts_ms = e->ts_ms;
  snprintf(out->rider_id, sizeof out->rider_id, "%s", e->rider_id);
  snprintf(out->driver_id, sizeof out->driver_id, "%s", e->driver_id);
  snprintf(out->request_id, sizeof out->request_id, "%s", e->request_id);
  snprintf(out->offer_id, sizeof out->offer_id, "%s", e->offer_id);
  out->has_pickup = geo_latlng_is_valid(e->pickup);
  out->pickup = ll(e->pickup);
  out->has_dropoff = geo_latlng_is_valid(e->dropoff);
  out->dropoff = ll(e->dropoff);
  out->has_pickup_eta = isfinite(e->pickup_eta_s) && e->pickup_eta_s >= 0;
  out->pickup_eta_s = out->has_pickup_eta ? e->pickup_eta_s : 0;
  out->expires_at_ms = e->expires_at_ms;
  out->has_driver_pos = e->has_driver_pos;
  out->driver_pos = ll(e->driver_pos);
  snprintf(out->reason, sizeof out->reason, "%s", e->reason);
}

void dspc_reply_to_proto(const dsp_reply *r, const char *ref, uint32_t shard, uint64_t epoch,
                         int64_t now_ms, mrd_dispatch_event *out) {
  memset(out, 0, sizeof *out);
  out->type = MRD_EV_COMMAND_REJECTED;
  out->shard = shard;
  out->epoch = epoch;
  out->ts_ms = now_ms;
  /* exactly one sender: the driver when the command came from one */
  if (r->driver_id[0] && mrd_id_valid(r->driver_id))
    snprintf(out->driver_id, sizeof out->driver_id, "%s", r->driver_id);
  else if (mrd_id_valid(r->rider_id))
    snprintf(out->rider_id, sizeof out->rider_id, "%s", r->rider_id);
  if (mrd_trip_id_shard(r->trip_id, NULL))
    snprintf(out->trip_id, sizeof out->trip_id, "%s", r->trip_id);
  if (mrd_id_valid(r->request_id))
    snprintf(out->request_id, sizeof out->request_id, "%s", r->request_id);
  if (mrd_offer_id_shard(r->offer_id, NULL))
    snprintf(out->offer_id, sizeof out->offer_id, "%s", r->offer_id);
  snprintf(out->error_code, sizeof out->error_code, "%s", dsp_error_code_name(r->code));
  snprintf(out->ref, sizeof out->ref, "%s", ref ? ref : r->ref);
  snprintf(out->reason, sizeof out->reason, "%.*s", MRD_REASON_MAX, r->message);
  /* a reason is printable ASCII: keep the message only if it is */
  for (const char *c = out->reason; *c; c++)
    if (*c < 0x20 || *c > 0x7e) {
      out->reason[0] = '\0';
      break;
    }
}

void dspc_snapshot_merge(const dsp_snapshot *p, mrd_dispatch_event *ev) {
  ev->status = (mrd_trip_status)p->status;
  ev->seq = p->seq;
  snprintf(ev->rider_id, sizeof ev->rider_id, "%s", p->rider_id);
  snprintf(ev->request_id, sizeof ev->request_id, "%s", p->request_id);
  if (geo_latlng_is_valid(p->pickup)) {
    ev->has_pickup = true;
    ev->pickup = ll(p->pickup);
  }
  if (geo_latlng_is_valid(p->dropoff)) {
    ev->has_dropoff = true;
    ev->dropoff = ll(p->dropoff);
  }
  if (p->driver_id[0]) snprintf(ev->driver_id, sizeof ev->driver_id, "%s", p->driver_id);
  if (p->offer_id[0]) {
    snprintf(ev->offer_id, sizeof ev->offer_id, "%s", p->offer_id);
    ev->expires_at_ms = p->expires_at_ms;
  }
  if (isfinite(p->pickup_eta_s) && p->pickup_eta_s >= 0) {
    ev->has_pickup_eta = true;
    ev->pickup_eta_s = p->pickup_eta_s;
  }
}

bool dspc_status_live(mrd_trip_status st) {
  return st == MRD_TRIP_REQUESTED || st == MRD_TRIP_OFFERED || st == MRD_TRIP_MATCHED ||
         st == MRD_TRIP_ARRIVED || st == MRD_TRIP_STARTED;
}

int dspc_restore_from_proto(const mrd_dispatch_event *ev, dsp_trip_restore *out) {
  if (ev->type == MRD_EV_COMMAND_REJECTED || !dspc_status_live(ev->status) || !ev->has_pickup ||
      !ev->has_dropoff)
    return DSP_EINVAL;
  memset(out, 0, sizeof *out);
  out->trip_id = ev->trip_id;
  out->seq = ev->seq;
  out->status = (dsp_trip_state)ev->status;
  out->epoch = ev->epoch;
  out->rider_id = ev->rider_id;
  out->request_id = ev->request_id;
  out->pickup = (geo_latlng){ev->pickup.lat, ev->pickup.lon};
  out->dropoff = (geo_latlng){ev->dropoff.lat, ev->dropoff.lon};
  out->driver_id = ev->driver_id;
  out->offer_id = ev->offer_id;
  out->expires_at_ms = ev->expires_at_ms;
  out->pickup_eta_s = ev->has_pickup_eta ? ev->pickup_eta_s : NAN;
  out->has_driver_pos = ev->has_driver_pos;
  out->driver_pos = (geo_latlng){ev->driver_pos.lat, ev->driver_pos.lon};
  return DSP_OK;
}
