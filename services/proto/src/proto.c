/*
 * proto.c: validating encoders and decoders between mrd/proto.h structs and the protobuf-c
 * messages generated from the .proto files of schemas/kafka.
 *
 * Encoding builds the protobuf-c message on the stack, pointing into the caller's struct
 * (no allocation), checks the packed size against the caller's buffer and packs. Decoding
 * unpacks with protobuf-c (which refuses malformed wire data), copies every field into the
 * caller's fixed-size struct, frees the unpacked message, then applies the same validation
 * as encoding. Not a Kafka client; no I/O.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "mrd/proto.h"

#include <math.h>
#include <string.h>

#include "common.pb-c.h"
#include "dispatch_command.pb-c.h"
#include "dispatch_event.pb-c.h"
#include "driver_location.pb-c.h"

const char *mrd_proto_strerror(int err) {
  switch (err) {
  case MRD_PROTO_OK: return "success";
  case MRD_PROTO_EINVAL: return "a field is missing, malformed or out of range";
  case MRD_PROTO_EPARSE: return "not a protobuf message of the expected type";
  case MRD_PROTO_EVERSION: return "unsupported payload version";
  case MRD_PROTO_ERANGE: return "buffer too small";
  case MRD_PROTO_ENOMEM: return "out of memory";
  default: return "unknown error";
  }
}

/* ---- field helpers ------------------------------------------------------------------- */

/* Copy an optional protobuf string into dst (cap bytes incl. NUL). An absent string becomes
 * "". Returns false when it does not fit. */
static bool copy_str(char *dst, size_t cap, const char *src) {
  if (!src) {
    dst[0] = '\0';
    return true;
  }
  size_t n = strnlen(src, cap);
  if (n >= cap) return false;
  memcpy(dst, src, n + 1);
  return true;
}

/* The protobuf view of a struct string: NULL when empty (so the field is absent). */
static char *opt_str(const char *s) { return (s && s[0]) ? (char *)s : NULL; }

static bool opt_id_valid(const char *s) { return s[0] == '\0' || mrd_id_valid(s); }

static bool str_nonempty(const char *s) { return s[0] != '\0'; }

static bool geohash_valid(const char *s) {
  static const char alphabet[] = "0123456789bcdefghjkmnpqrstuvwxyz";
  size_t n = strnlen(s, MRD_GEOHASH_MAX + 1);
  if (n > MRD_GEOHASH_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    if (!strchr(alphabet, s[i]) || s[i] == '\0') return false;
  }
  return true;
}

static bool reason_valid(const char *s) { return strnlen(s, MRD_REASON_MAX + 1) <= MRD_REASON_MAX; }

static void latlon_to_pb(Meridian__V1__LatLon *pb, mrd_latlon p) {
  meridian__v1__lat_lon__init(pb);
  pb->has_lat = 1;
  pb->lat = p.lat;
  pb->has_lon = 1;
  pb->lon = p.lon;
}

/* Read a required LatLon: present with both coordinates and valid. */
static bool latlon_from_pb(const Meridian__V1__LatLon *pb, mrd_latlon *out) {
  if (!pb || !pb->has_lat || !pb->has_lon) return false;
  out->lat = pb->lat;
  out->lon = pb->lon;
  return mrd_latlon_valid(*out);
}

/* ---- trace (mrd/trace.h) -------------------------------------------------------------- */

/* The protobuf view of a trace, pointing into tp_buf (MRD_TRACEPARENT_LEN + 1 bytes).
 * Returns NULL for an absent trace; sets *bad for one that fails mrd_trace_check. */
static Meridian__V1__Trace *trace_to_pb(const mrd_trace *t, Meridian__V1__Trace *pb, char *tp_buf,
                                        bool *bad) {
  if (!t->present) {
    if (!mrd_trace_check(t)) *bad = true;
    return NULL;
  }
  if (!mrd_trace_check(t) ||
      mrd_traceparent_format(&t->tp, tp_buf, MRD_TRACEPARENT_LEN + 1) != MRD_TRACEPARENT_LEN) {
    *bad = true;
    return NULL;
  }
  meridian__v1__trace__init(pb);
  pb->has_version = 1;
  pb->version = MRD_TRACE_VERSION;
  pb->traceparent = tp_buf;
  int64_t *dst[MRD_STAMP_WIRE_COUNT] = {&pb->gateway_received_us, &pb->gateway_produced_us,
                                        &pb->dispatch_consumed_us, &pb->dispatch_matched_us,
                                        &pb->dispatch_produced_us};
  protobuf_c_boolean *has[MRD_STAMP_WIRE_COUNT] = {
      &pb->has_gateway_received_us, &pb->has_gateway_produced_us, &pb->has_dispatch_consumed_us,
      &pb->has_dispatch_matched_us, &pb->has_dispatch_produced_us};
  for (int i = 0; i < MRD_STAMP_WIRE_COUNT; i++) {
    *has[i] = t->stamp_us[i] != 0;
    *dst[i] = t->stamp_us[i];
  }
  return pb;
}

/* Read a trace; anything unreadable (another version, a bad traceparent, a negative stamp,
 * a gap) leaves *out absent: a trace never makes a payload invalid. */
static void trace_from_pb(const Meridian__V1__Trace *pb, mrd_trace *out) {
  memset(out, 0, sizeof *out);
  if (!pb || !pb->has_version || pb->version != MRD_TRACE_VERSION) return;
  mrd_trace t;
  memset(&t, 0, sizeof t);
  if (!mrd_traceparent_parse(pb->traceparent, &t.tp)) return;
  t.present = true;
  const int64_t v[MRD_STAMP_WIRE_COUNT] = {
      pb->has_gateway_received_us ? pb->gateway_received_us : 0,
      pb->has_gateway_produced_us ? pb->gateway_produced_us : 0,
      pb->has_dispatch_consumed_us ? pb->dispatch_consumed_us : 0,
      pb->has_dispatch_matched_us ? pb->dispatch_matched_us : 0,
      pb->has_dispatch_produced_us ? pb->dispatch_produced_us : 0};
  memcpy(t.stamp_us, v, sizeof v);
  if (mrd_trace_check(&t)) *out = t;
}

/* Pack msg into buf after checking its size. */
static int pack(const ProtobufCMessage *msg, uint8_t *buf, size_t cap, size_t *len) {
  size_t need = protobuf_c_message_get_packed_size(msg);
  if (need > cap || need > MRD_PROTO_MAX_SIZE) return MRD_PROTO_ERANGE;
  *len = protobuf_c_message_pack(msg, buf);
  return MRD_PROTO_OK;
}

/* ---- driver-locations ---------------------------------------------------------------- */

static int location_check(const mrd_driver_location *m) {
  if (!mrd_id_valid(m->driver_id) || !mrd_latlon_valid(m->pos)) return MRD_PROTO_EINVAL;
  if (m->has_heading &&
      !(isfinite(m->heading_deg) && m->heading_deg >= 0.0 && m->heading_deg < 360.0))
    return MRD_PROTO_EINVAL;
  if (m->has_speed && !(isfinite(m->speed_mps) && m->speed_mps >= 0.0 && m->speed_mps <= 100.0))
    return MRD_PROTO_EINVAL;
  if (m->ts_ms < 1 || m->owner_shard >= MRD_SHARD_COUNT || m->epoch < 1 || m->received_ms < 0)
    return MRD_PROTO_EINVAL;
  if (!geohash_valid(m->geohash)) return MRD_PROTO_EINVAL;
  return MRD_PROTO_OK;
}

int mrd_driver_location_encode(const mrd_driver_location *m, uint8_t *buf, size_t cap,
                               size_t *len) {
  if (!m || !buf || !len) return MRD_PROTO_EINVAL;
  int rc = location_check(m);
  if (rc) return rc;
  Meridian__V1__DriverLocation pb;
  meridian__v1__driver_location__init(&pb);
  pb.has_version = 1;
  pb.version = MRD_PROTO_VERSION;
  pb.driver_id = (char *)m->driver_id;
  pb.has_lat = pb.has_lon = 1;
  pb.lat = m->pos.lat;
  pb.lon = m->pos.lon;
  pb.has_heading_deg = m->has_heading;
  pb.heading_deg = m->heading_deg;
  pb.has_speed_mps = m->has_speed;
  pb.speed_mps = m->speed_mps;
  pb.has_ts_ms = 1;
  pb.ts_ms = m->ts_ms;
  pb.has_seq = 1;
  pb.seq = m->seq;
  pb.has_halo = 1;
  pb.halo = m->halo;
  pb.has_owner_shard = 1;
  pb.owner_shard = m->owner_shard;
  pb.has_epoch = 1;
  pb.epoch = m->epoch;
  pb.geohash = opt_str(m->geohash);
  pb.has_received_ms = m->received_ms != 0;
  pb.received_ms = m->received_ms;
  return pack(&pb.base, buf, cap, len);
}

int mrd_driver_location_decode(const uint8_t *buf, size_t len, mrd_driver_location *out) {
  if (!out || (!buf && len)) return MRD_PROTO_EINVAL;
  memset(out, 0, sizeof *out);
  Meridian__V1__DriverLocation *pb = meridian__v1__driver_location__unpack(NULL, len, buf);
  if (!pb) return MRD_PROTO_EPARSE;
  int rc = MRD_PROTO_OK;
  if (!pb->has_version || pb->version != MRD_PROTO_VERSION) {
    rc = MRD_PROTO_EVERSION;
    goto done;
  }
  if (!pb->has_lat || !pb->has_lon || !pb->has_ts_ms || !pb->has_seq || !pb->has_owner_shard ||
      !pb->has_epoch || !copy_str(out->driver_id, sizeof out->driver_id, pb->driver_id) ||
      !copy_str(out->geohash, sizeof out->geohash, pb->geohash)) {
    rc = MRD_PROTO_EINVAL;
    goto done;
  }
  out->pos.lat = pb->lat;
  out->pos.lon = pb->lon;
  out->has_heading = pb->has_heading_deg;
  out->heading_deg = pb->heading_deg;
  out->has_speed = pb->has_speed_mps;
  out->speed_mps = pb->speed_mps;
  out->ts_ms = pb->ts_ms;
  out->seq = pb->seq;
  out->halo = pb->has_halo && pb->halo;
  out->owner_shard = pb->owner_shard;
  out->epoch = pb->epoch;
  out->received_ms = pb->has_received_ms ? pb->received_ms : 0;
  rc = location_check(out);
done:
  meridian__v1__driver_location__free_unpacked(pb, NULL);
  return rc;
}

/* ---- dispatch-commands --------------------------------------------------------------- */

const char *mrd_cmd_kind_name(mrd_cmd_kind kind) {
  switch (kind) {
  case MRD_CMD_REQUEST: return "request";
  case MRD_CMD_CANCEL: return "cancel";
  case MRD_CMD_ACCEPT: return "accept";
  case MRD_CMD_DECLINE: return "decline";
  case MRD_CMD_ARRIVED: return "arrived";
  case MRD_CMD_START: return "start";
  case MRD_CMD_COMPLETE: return "complete";
  case MRD_CMD_STATUS: return "status";
  default: return "none";
  }
}

/* The fields a kind uses, as a bit set, to check that the others are empty. */
enum {
  F_REQUEST_ID = 1 << 0,
  F_RIDER_ID = 1 << 1,
  F_DRIVER_ID = 1 << 2,
  F_OFFER_ID = 1 << 3,
  F_TRIP_ID = 1 << 4,
  F_POINTS = 1 << 5,
  F_STATUS = 1 << 6
};

static unsigned cmd_fields(mrd_cmd_kind kind) {
  switch (kind) {
  case MRD_CMD_REQUEST: return F_REQUEST_ID | F_RIDER_ID | F_POINTS;
  case MRD_CMD_CANCEL: return F_REQUEST_ID | F_RIDER_ID;
  case MRD_CMD_ACCEPT:
  case MRD_CMD_DECLINE: return F_OFFER_ID | F_DRIVER_ID;
  case MRD_CMD_ARRIVED:
  case MRD_CMD_START:
  case MRD_CMD_COMPLETE: return F_TRIP_ID | F_DRIVER_ID;
  case MRD_CMD_STATUS: return F_DRIVER_ID | F_STATUS;
  default: return 0;
  }
}

static int command_check(const mrd_command *m) {
  unsigned f = cmd_fields(m->kind);
  if (!f || m->shard >= MRD_SHARD_COUNT || m->epoch < 1 || m->ts_ms < 1) return MRD_PROTO_EINVAL;
  if (strnlen(m->ref, MRD_REF_MAX + 1) > MRD_REF_MAX) return MRD_PROTO_EINVAL;
  /* every used field present and well-formed, every unused field empty */
  if ((f & F_REQUEST_ID) ? !mrd_id_valid(m->request_id) : str_nonempty(m->request_id))
    return MRD_PROTO_EINVAL;
  if ((f & F_RIDER_ID) ? !mrd_id_valid(m->rider_id) : str_nonempty(m->rider_id))
    return MRD_PROTO_EINVAL;
  if ((f & F_DRIVER_ID) ? !mrd_id_valid(m->driver_id) : str_nonempty(m->driver_id))
    return MRD_PROTO_EINVAL;
  uint32_t named = 0;
  if (f & F_OFFER_ID) {
    if (!mrd_offer_id_shard(m->offer_id, &named) || named != m->shard) return MRD_PROTO_EINVAL;
  } else if (str_nonempty(m->offer_id)) {
    return MRD_PROTO_EINVAL;
  }
  if (f & F_TRIP_ID) {
    if (!mrd_trip_id_shard(m->trip_id, &named) || named != m->shard) return MRD_PROTO_EINVAL;
  } else if (str_nonempty(m->trip_id)) {
    return MRD_PROTO_EINVAL;
  }
  if ((f & F_POINTS) && (!mrd_latlon_valid(m->pickup) || !mrd_latlon_valid(m->dropoff)))
    return MRD_PROTO_EINVAL;
  if ((f & F_STATUS) ? (m->status != MRD_DRIVER_AVAILABLE && m->status != MRD_DRIVER_OFFLINE)
                     : m->status != MRD_DRIVER_STATUS_NONE)
    return MRD_PROTO_EINVAL;
  return MRD_PROTO_OK;
}

int mrd_command_encode(const mrd_command *m, uint8_t *buf, size_t cap, size_t *len) {
  if (!m || !buf || !len) return MRD_PROTO_EINVAL;
  int rc = command_check(m);
  if (rc) return rc;
  Meridian__V1__DispatchCommand pb;
  meridian__v1__dispatch_command__init(&pb);
  pb.has_version = 1;
  pb.version = MRD_PROTO_VERSION;
  pb.has_shard = 1;
  pb.shard = m->shard;
  pb.has_epoch = 1;
  pb.epoch = m->epoch;
  pb.has_ts_ms = 1;
  pb.ts_ms = m->ts_ms;
  pb.ref = opt_str(m->ref);
  Meridian__V1__Trace trace;
  char tp_buf[MRD_TRACEPARENT_LEN + 1];
  bool bad_trace = false;
  pb.trace = trace_to_pb(&m->trace, &trace, tp_buf, &bad_trace);
  if (bad_trace) return MRD_PROTO_EINVAL;
  Meridian__V1__RideRequest req;
  Meridian__V1__Cancel cancel;
  Meridian__V1__OfferReply reply;
  Meridian__V1__TripStep step;
  Meridian__V1__DriverStatus status;
  Meridian__V1__LatLon pickup, dropoff;
  switch (m->kind) {
  case MRD_CMD_REQUEST:
    meridian__v1__ride_request__init(&req);
    req.request_id = (char *)m->request_id;
    req.rider_id = (char *)m->rider_id;
    latlon_to_pb(&pickup, m->pickup);
    latlon_to_pb(&dropoff, m->dropoff);
    req.pickup = &pickup;
    req.dropoff = &dropoff;
    req.has_resend = m->resend;
    req.resend = m->resend;
    pb.body_case = MERIDIAN__V1__DISPATCH_COMMAND__BODY_REQUEST;
    pb.request = &req;
    break;
  case MRD_CMD_CANCEL:
    meridian__v1__cancel__init(&cancel);
    cancel.request_id = (char *)m->request_id;
    cancel.rider_id = (char *)m->rider_id;
    pb.body_case = MERIDIAN__V1__DISPATCH_COMMAND__BODY_CANCEL;
    pb.cancel = &cancel;
    break;
  case MRD_CMD_ACCEPT:
  case MRD_CMD_DECLINE:
    meridian__v1__offer_reply__init(&reply);
    reply.offer_id = (char *)m->offer_id;
    reply.driver_id = (char *)m->driver_id;
    if (m->kind == MRD_CMD_ACCEPT) {
      pb.body_case = MERIDIAN__V1__DISPATCH_COMMAND__BODY_ACCEPT;
      pb.accept = &reply;
    } else {
      pb.body_case = MERIDIAN__V1__DISPATCH_COMMAND__BODY_DECLINE;
      pb.decline = &reply;
    }
    break;
  case MRD_CMD_ARRIVED:
  case MRD_CMD_START:
  case MRD_CMD_COMPLETE:
    meridian__v1__trip_step__init(&step);
    step.trip_id = (char *)m->trip_id;
    step.driver_id = (char *)m->driver_id;
    if (m->kind == MRD_CMD_ARRIVED) {
      pb.body_case = MERIDIAN__V1__DISPATCH_COMMAND__BODY_ARRIVED;
      pb.arrived = &step;
    } else if (m->kind == MRD_CMD_START) {
      pb.body_case = MERIDIAN__V1__DISPATCH_COMMAND__BODY_START;
      pb.start = &step;
    } else {
      pb.body_case = MERIDIAN__V1__DISPATCH_COMMAND__BODY_COMPLETE;
      pb.complete = &step;
    }
    break;
  case MRD_CMD_STATUS:
    meridian__v1__driver_status__init(&status);
    status.driver_id = (char *)m->driver_id;
    status.has_status = 1;
    status.status = m->status == MRD_DRIVER_AVAILABLE
                        ? MERIDIAN__V1__DRIVER_STATUS__STATUS__AVAILABLE
                        : MERIDIAN__V1__DRIVER_STATUS__STATUS__OFFLINE;
    pb.body_case = MERIDIAN__V1__DISPATCH_COMMAND__BODY_STATUS;
    pb.status = &status;
    break;
  default: return MRD_PROTO_EINVAL;
  }
  return pack(&pb.base, buf, cap, len);
}

static bool copy_step(mrd_command *out, const Meridian__V1__TripStep *s, mrd_cmd_kind kind) {
  out->kind = kind;
  return s && copy_str(out->trip_id, sizeof out->trip_id, s->trip_id) &&
         copy_str(out->driver_id, sizeof out->driver_id, s->driver_id);
}

static bool copy_reply(mrd_command *out, const Meridian__V1__OfferReply *r, mrd_cmd_kind kind) {
  out->kind = kind;
  return r && copy_str(out->offer_id, sizeof out->offer_id, r->offer_id) &&
         copy_str(out->driver_id, sizeof out->driver_id, r->driver_id);
}

int mrd_command_decode(const uint8_t *buf, size_t len, mrd_command *out) {
  if (!out || (!buf && len)) return MRD_PROTO_EINVAL;
  memset(out, 0, sizeof *out);
  Meridian__V1__DispatchCommand *pb = meridian__v1__dispatch_command__unpack(NULL, len, buf);
  if (!pb) return MRD_PROTO_EPARSE;
  int rc = MRD_PROTO_OK;
  bool ok;
  if (!pb->has_version || pb->version != MRD_PROTO_VERSION) {
    rc = MRD_PROTO_EVERSION;
    goto done;
  }
  ok = pb->has_shard && pb->has_epoch && pb->has_ts_ms &&
       copy_str(out->ref, sizeof out->ref, pb->ref);
  out->shard = pb->shard;
  out->epoch = pb->epoch;
  out->ts_ms = pb->ts_ms;
  trace_from_pb(pb->trace, &out->trace);
  switch (pb->body_case) {
  case MERIDIAN__V1__DISPATCH_COMMAND__BODY_REQUEST:
    out->kind = MRD_CMD_REQUEST;
    ok = ok && pb->request &&
         copy_str(out->request_id, sizeof out->request_id, pb->request->request_id) &&
         copy_str(out->rider_id, sizeof out->rider_id, pb->request->rider_id) &&
         latlon_from_pb(pb->request->pickup, &out->pickup) &&
         latlon_from_pb(pb->request->dropoff, &out->dropoff);
    out->resend = ok && pb->request->has_resend && pb->request->resend;
    break;
  case MERIDIAN__V1__DISPATCH_COMMAND__BODY_CANCEL:
    out->kind = MRD_CMD_CANCEL;
    ok = ok && pb->cancel &&
         copy_str(out->request_id, sizeof out->request_id, pb->cancel->request_id) &&
         copy_str(out->rider_id, sizeof out->rider_id, pb->cancel->rider_id);
    break;
  case MERIDIAN__V1__DISPATCH_COMMAND__BODY_ACCEPT:
    ok = ok && copy_reply(out, pb->accept, MRD_CMD_ACCEPT);
    break;
  case MERIDIAN__V1__DISPATCH_COMMAND__BODY_DECLINE:
    ok = ok && copy_reply(out, pb->decline, MRD_CMD_DECLINE);
    break;
  case MERIDIAN__V1__DISPATCH_COMMAND__BODY_ARRIVED:
    ok = ok && copy_step(out, pb->arrived, MRD_CMD_ARRIVED);
    break;
  case MERIDIAN__V1__DISPATCH_COMMAND__BODY_START:
    ok = ok && copy_step(out, pb->start, MRD_CMD_START);
    break;
  case MERIDIAN__V1__DISPATCH_COMMAND__BODY_COMPLETE:
    ok = ok && copy_step(out, pb->complete, MRD_CMD_COMPLETE);
    break;
  case MERIDIAN__V1__DISPATCH_COMMAND__BODY_STATUS:
    out->kind = MRD_CMD_STATUS;
    ok = ok && pb->status && pb->status->has_status &&
         copy_str(out->driver_id, sizeof out->driver_id, pb->status->driver_id);
    if (ok) {
      if (pb->status->status == MERIDIAN__V1__DRIVER_STATUS__STATUS__AVAILABLE)
        out->status = MRD_DRIVER_AVAILABLE;
      else if (pb->status->status == MERIDIAN__V1__DRIVER_STATUS__STATUS__OFFLINE)
        out->status = MRD_DRIVER_OFFLINE;
      else
        ok = false;
    }
    break;
  default: ok = false; break;
  }
  rc = ok ? command_check(out) : MRD_PROTO_EINVAL;
done:
  meridian__v1__dispatch_command__free_unpacked(pb, NULL);
  return rc;
}

/* ---- dispatch-events ----------------------------------------------------------------- */

const char *mrd_event_type_name(mrd_event_type type) {
  switch (type) {
  case MRD_EV_REQUESTED: return "requested";
  case MRD_EV_OFFERED: return "offered";
  case MRD_EV_OFFER_DECLINED: return "offer_declined";
  case MRD_EV_OFFER_EXPIRED: return "offer_expired";
  case MRD_EV_MATCHED: return "matched";
  case MRD_EV_ARRIVED: return "arrived";
  case MRD_EV_STARTED: return "started";
  case MRD_EV_COMPLETED: return "completed";
  case MRD_EV_CANCELLED: return "cancelled";
  case MRD_EV_NO_DRIVER: return "no_driver";
  case MRD_EV_COMMAND_REJECTED: return "command_rejected";
  default: return "none";
  }
}

const char *mrd_trip_status_name(mrd_trip_status status) {
  switch (status) {
  case MRD_TRIP_REQUESTED: return "requested";
  case MRD_TRIP_OFFERED: return "offered";
  case MRD_TRIP_MATCHED: return "matched";
  case MRD_TRIP_ARRIVED: return "arrived";
  case MRD_TRIP_STARTED: return "started";
  case MRD_TRIP_COMPLETED: return "completed";
  case MRD_TRIP_CANCELLED: return "cancelled";
  case MRD_TRIP_NO_DRIVER: return "no_driver";
  default: return "none";
  }
}

static int event_check(const mrd_dispatch_event *m) {
  if (m->type < MRD_EV_REQUESTED || m->type > MRD_EV_COMMAND_REJECTED) return MRD_PROTO_EINVAL;
  if (m->ts_ms < 1 || m->shard >= MRD_SHARD_COUNT || m->epoch < 1) return MRD_PROTO_EINVAL;
  if (m->status < MRD_TRIP_NONE || m->status > MRD_TRIP_NO_DRIVER) return MRD_PROTO_EINVAL;
  if (!opt_id_valid(m->rider_id) || !opt_id_valid(m->driver_id) || !opt_id_valid(m->request_id))
    return MRD_PROTO_EINVAL;
  if (str_nonempty(m->offer_id) && !mrd_offer_id_shard(m->offer_id, NULL)) return MRD_PROTO_EINVAL;
  if (m->has_pickup && !mrd_latlon_valid(m->pickup)) return MRD_PROTO_EINVAL;
  if (m->has_dropoff && !mrd_latlon_valid(m->dropoff)) return MRD_PROTO_EINVAL;
  if (m->has_driver_pos && !mrd_latlon_valid(m->driver_pos)) return MRD_PROTO_EINVAL;
  if (m->has_pickup_eta && !(isfinite(m->pickup_eta_s) && m->pickup_eta_s >= 0.0))
    return MRD_PROTO_EINVAL;
  if (m->expires_at_ms < 0 || !reason_valid(m->reason)) return MRD_PROTO_EINVAL;
  if (strnlen(m->ref, MRD_REF_MAX + 1) > MRD_REF_MAX) return MRD_PROTO_EINVAL;
  if (m->has_fare_quote && (m->fare_quote_cents < 0 || !isfinite(m->surge) || m->surge < 1 ||
                            strnlen(m->tariff, MRD_TARIFF_MAX + 1) > MRD_TARIFF_MAX))
    return MRD_PROTO_EINVAL;
  if (m->type == MRD_EV_COMMAND_REJECTED) {
    if (!mrd_error_code_valid(m->error_code)) return MRD_PROTO_EINVAL;
    if (str_nonempty(m->rider_id) == str_nonempty(m->driver_id)) return MRD_PROTO_EINVAL;
    if (str_nonempty(m->trip_id) && !mrd_trip_id_shard(m->trip_id, NULL)) return MRD_PROTO_EINVAL;
    return MRD_PROTO_OK;
  }
  if (str_nonempty(m->error_code)) return MRD_PROTO_EINVAL;
  uint32_t named = 0;
  if (!mrd_trip_id_shard(m->trip_id, &named) || named != m->shard || m->seq < 1)
    return MRD_PROTO_EINVAL;
  bool rider = str_nonempty(m->rider_id), driver = str_nonempty(m->driver_id);
  bool request = str_nonempty(m->request_id), offer = str_nonempty(m->offer_id);
  switch (m->type) {
  case MRD_EV_REQUESTED:
  case MRD_EV_NO_DRIVER: return rider && request ? MRD_PROTO_OK : MRD_PROTO_EINVAL;
  case MRD_EV_OFFERED:
    return driver && offer && m->has_pickup && m->has_dropoff && m->has_pickup_eta &&
                   m->expires_at_ms > 0
               ? MRD_PROTO_OK
               : MRD_PROTO_EINVAL;
  case MRD_EV_OFFER_DECLINED:
  case MRD_EV_OFFER_EXPIRED: return driver && offer ? MRD_PROTO_OK : MRD_PROTO_EINVAL;
  case MRD_EV_MATCHED:
    return rider && driver && m->has_driver_pos && m->has_pickup_eta ? MRD_PROTO_OK
                                                                     : MRD_PROTO_EINVAL;
  case MRD_EV_ARRIVED:
  case MRD_EV_STARTED:
  case MRD_EV_COMPLETED: return rider && driver ? MRD_PROTO_OK : MRD_PROTO_EINVAL;
  case MRD_EV_CANCELLED: return rider ? MRD_PROTO_OK : MRD_PROTO_EINVAL;
  default: return MRD_PROTO_EINVAL;
  }
}

int mrd_dispatch_event_encode(const mrd_dispatch_event *m, uint8_t *buf, size_t cap, size_t *len) {
  if (!m || !buf || !len) return MRD_PROTO_EINVAL;
  int rc = event_check(m);
  if (rc) return rc;
  Meridian__V1__DispatchEvent pb;
  Meridian__V1__LatLon pickup, dropoff, driver_pos;
  meridian__v1__dispatch_event__init(&pb);
  pb.has_version = 1;
  pb.version = MRD_PROTO_VERSION;
  pb.has_type = 1;
  pb.type = (Meridian__V1__DispatchEvent__Type)m->type;
  pb.trip_id = opt_str(m->trip_id);
  pb.has_seq = m->seq != 0;
  pb.seq = m->seq;
  pb.has_shard = 1;
  pb.shard = m->shard;
  pb.has_epoch = 1;
  pb.epoch = m->epoch;
  pb.has_ts_ms = 1;
  pb.ts_ms = m->ts_ms;
  pb.rider_id = opt_str(m->rider_id);
  pb.driver_id = opt_str(m->driver_id);
  pb.request_id = opt_str(m->request_id);
  pb.offer_id = opt_str(m->offer_id);
  if (m->has_pickup) {
    latlon_to_pb(&pickup, m->pickup);
    pb.pickup = &pickup;
  }
  if (m->has_dropoff) {
    latlon_to_pb(&dropoff, m->dropoff);
    pb.dropoff = &dropoff;
  }
  pb.has_pickup_eta_s = m->has_pickup_eta;
  pb.pickup_eta_s = m->pickup_eta_s;
  pb.has_expires_at_ms = m->expires_at_ms != 0;
  pb.expires_at_ms = m->expires_at_ms;
  if (m->has_driver_pos) {
    latlon_to_pb(&driver_pos, m->driver_pos);
    pb.driver_pos = &driver_pos;
  }
  pb.has_status = m->status != MRD_TRIP_NONE;
  pb.status = (Meridian__V1__DispatchEvent__Status)m->status;
  pb.reason = opt_str(m->reason);
  pb.error_code = opt_str(m->error_code);
  pb.ref = opt_str(m->ref);
  pb.has_generation = m->generation != 0;
  pb.generation = m->generation;
  pb.has_fare_quote_cents = pb.has_surge = m->has_fare_quote;
  pb.fare_quote_cents = m->fare_quote_cents;
  pb.surge = m->surge;
  if (m->has_fare_quote) pb.tariff = opt_str(m->tariff);
  Meridian__V1__Trace trace;
  char tp_buf[MRD_TRACEPARENT_LEN + 1];
  bool bad_trace = false;
  pb.trace = trace_to_pb(&m->trace, &trace, tp_buf, &bad_trace);
  if (bad_trace) return MRD_PROTO_EINVAL;
  return pack(&pb.base, buf, cap, len);
}

int mrd_dispatch_event_decode(const uint8_t *buf, size_t len, mrd_dispatch_event *out) {
  if (!out || (!buf && len)) return MRD_PROTO_EINVAL;
  memset(out, 0, sizeof *out);
  Meridian__V1__DispatchEvent *pb = meridian__v1__dispatch_event__unpack(NULL, len, buf);
  if (!pb) return MRD_PROTO_EPARSE;
  int rc = MRD_PROTO_OK;
  if (!pb->has_version || pb->version != MRD_PROTO_VERSION) {
    rc = MRD_PROTO_EVERSION;
    goto done;
  }
  bool ok = pb->has_type && pb->has_shard && pb->has_ts_ms &&
            copy_str(out->trip_id, sizeof out->trip_id, pb->trip_id) &&
            copy_str(out->rider_id, sizeof out->rider_id, pb->rider_id) &&
            copy_str(out->driver_id, sizeof out->driver_id, pb->driver_id) &&
            copy_str(out->request_id, sizeof out->request_id, pb->request_id) &&
            copy_str(out->offer_id, sizeof out->offer_id, pb->offer_id) &&
            copy_str(out->reason, sizeof out->reason, pb->reason) &&
            copy_str(out->error_code, sizeof out->error_code, pb->error_code) &&
            copy_str(out->ref, sizeof out->ref, pb->ref);
  if (!ok) {
    rc = MRD_PROTO_EINVAL;
    goto done;
  }
  /* Enum values are range-checked as ints before they become C enums. */
  int type = (int)pb->type, status = pb->has_status ? (int)pb->status : 0;
  if (type < MRD_EV_REQUESTED || type > MRD_EV_COMMAND_REJECTED || status < MRD_TRIP_NONE ||
      status > MRD_TRIP_NO_DRIVER) {
    rc = MRD_PROTO_EINVAL;
    goto done;
  }
  out->type = (mrd_event_type)type;
  out->status = (mrd_trip_status)status;
  out->seq = pb->has_seq ? pb->seq : 0;
  out->shard = pb->shard;
  out->epoch = pb->has_epoch ? pb->epoch : 0;
  out->ts_ms = pb->ts_ms;
  if (pb->pickup) {
    out->has_pickup = true;
    if (!latlon_from_pb(pb->pickup, &out->pickup)) rc = MRD_PROTO_EINVAL;
  }
  if (pb->dropoff) {
    out->has_dropoff = true;
    if (!latlon_from_pb(pb->dropoff, &out->dropoff)) rc = MRD_PROTO_EINVAL;
  }
  if (pb->driver_pos) {
    out->has_driver_pos = true;
    if (!latlon_from_pb(pb->driver_pos, &out->driver_pos)) rc = MRD_PROTO_EINVAL;
  }
  out->has_pickup_eta = pb->has_pickup_eta_s;
  out->pickup_eta_s = pb->pickup_eta_s;
  out->expires_at_ms = pb->has_expires_at_ms ? pb->expires_at_ms : 0;
  out->generation = pb->has_generation ? pb->generation : 0;
  if (pb->has_fare_quote_cents) {
    out->has_fare_quote = true;
    out->fare_quote_cents = pb->fare_quote_cents;
    out->surge = pb->has_surge ? pb->surge : 1.0;
    if (pb->tariff && !copy_str(out->tariff, sizeof out->tariff, pb->tariff)) rc = MRD_PROTO_EINVAL;
  }
  trace_from_pb(pb->trace, &out->trace);
  if (rc == MRD_PROTO_OK) rc = event_check(out);
done:
  meridian__v1__dispatch_event__free_unpacked(pb, NULL);
  return rc;
}

bool mrd_fence_admit(mrd_fence *f, uint32_t shard, uint64_t generation) {
  if (!f || generation == 0 || shard >= MRD_SHARD_COUNT) return true;
  if (generation < f->highest[shard]) return false;
  f->highest[shard] = generation;
  return true;
}
