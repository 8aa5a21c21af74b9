/*
 * gateway.c: parsing and validation of client messages, the replies, and the translation
 * of dispatch-events into client messages (see gateway.h, docs/protocol.md).
 *
 * JSON goes through jansson with JSON_REJECT_DUPLICATES; jansson already refuses invalid
 * UTF-8, NUL in strings ("\u0000"), NaN / Infinity (not JSON) and numbers that overflow a
 * double or a 64-bit integer. The nesting depth is checked before jansson sees the text, so
 * a deeply nested message costs one linear scan. No sockets, no clock, no globals.
 */
#define _POSIX_C_SOURCE 200809L
#include "gateway.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const code_names[GW_CODE_COUNT] = {
    [GW_OK] = "ok",
    [GW_BAD_REQUEST] = "bad_request",
    [GW_UNAUTHORIZED] = "unauthorized",
    [GW_FORBIDDEN] = "forbidden",
    [GW_RATE_LIMITED] = "rate_limited",
    [GW_OUT_OF_AREA] = "out_of_area",
    [GW_UNKNOWN_OFFER] = "unknown_offer",
    [GW_INVALID_STATE] = "invalid_state",
    [GW_TOO_LARGE] = "too_large",
    [GW_UNAVAILABLE] = "unavailable",
    [GW_INTERNAL] = "internal",
};

const char *gw_code_name(gw_code code) {
  return (code > GW_OK && code < GW_CODE_COUNT) ? code_names[code] : "internal";
}

static const char *const type_names[GW_MSG_TYPE_COUNT] = {
    [GW_MSG_NONE] = "none",     [GW_MSG_LOCATION] = "location", [GW_MSG_STATUS] = "status",
    [GW_MSG_ACCEPT] = "accept", [GW_MSG_DECLINE] = "decline",   [GW_MSG_ARRIVED] = "arrived",
    [GW_MSG_START] = "start",   [GW_MSG_COMPLETE] = "complete", [GW_MSG_REQUEST] = "request",
    [GW_MSG_CANCEL] = "cancel", [GW_MSG_NEARBY] = "nearby",
};

const char *gw_msg_type_name(gw_msg_type type) {
  return (type > GW_MSG_NONE && type < GW_MSG_TYPE_COUNT) ? type_names[type] : "none";
}

void gw_error_set(gw_error *err, gw_code code, const char *field, const char *fmt, ...) {
  err->code = code;
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
}

/* ---- parsing ------------------------------------------------------------------------- */

/* The deepest nesting of objects and arrays in text, outside strings; stops counting once
 * above limit. Malformed text is left for jansson to refuse. */
static int json_depth(const char *text, size_t len, int limit) {
  int depth = 0, max = 0;
  bool in_str = false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max) max = depth;
      if (max > limit) return max;
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return max;
}

/* Code points in a valid UTF-8 string of n bytes. */
static size_t utf8_chars(const char *s, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < n; i++) count += ((unsigned char)s[i] & 0xC0) != 0x80;
  return count;
}

/* The fields each message type allows besides "type" and "ref". */
static const char *const allowed_fields[GW_MSG_TYPE_COUNT][7] = {
    [GW_MSG_LOCATION] = {"lat", "lon", "heading", "speed_mps", "ts", "seq", NULL},
    [GW_MSG_STATUS] = {"status", NULL},
    [GW_MSG_ACCEPT] = {"offer_id", NULL},
    [GW_MSG_DECLINE] = {"offer_id", NULL},
    [GW_MSG_ARRIVED] = {"trip_id", NULL},
    [GW_MSG_START] = {"trip_id", NULL},
    [GW_MSG_COMPLETE] = {"trip_id", NULL},
    [GW_MSG_REQUEST] = {"request_id", "pickup", "dropoff", NULL},
    [GW_MSG_CANCEL] = {"request_id", NULL},
    [GW_MSG_NEARBY] = {"lat", "lon", "radius_m", NULL},
};

static bool field_allowed(gw_msg_type type, const char *key) {
  if (strcmp(key, "type") == 0 || strcmp(key, "ref") == 0) return true;
  for (const char *const *f = allowed_fields[type]; *f; f++) {
    if (strcmp(*f, key) == 0) return true;
  }
  return false;
}

static gw_msg_type type_of(const char *name, gw_role role) {
  gw_msg_type first = role == GW_ROLE_DRIVER ? GW_MSG_LOCATION : GW_MSG_REQUEST;
  gw_msg_type last = role == GW_ROLE_DRIVER ? GW_MSG_COMPLETE : GW_MSG_NEARBY;
  for (int t = first; t <= (int)last; t++) {
    if (strcmp(type_names[t], name) == 0) return (gw_msg_type)t;
  }
  return GW_MSG_NONE;
}

/* A required number in [lo, hi] (hi_open: hi excluded). */
static int get_number(json_t *obj, const char *key, const char *field, double lo, double hi,
                      bool hi_open, bool required, bool *present, double *out, gw_error *err) {
  json_t *v = json_object_get(obj, key);
  if (!v) {
    if (present) *present = false;
    if (!required) return 0;
    gw_error_set(err, GW_BAD_REQUEST, field, "%s: required", field);
    return -1;
  }
  double x = json_number_value(v);
  if (!json_is_number(v) || !isfinite(x) || x < lo || (hi_open ? x >= hi : x > hi)) {
    gw_error_set(err, GW_BAD_REQUEST, field, "%s: must be a number in [%g, %g%c", field, lo, hi,
                 hi_open ? ')' : ']');
    return -1;
  }
  if (present) *present = true;
  *out = x;
  return 0;
}

static int get_integer(json_t *obj, const char *key, long long lo, long long hi, long long *out,
                       gw_error *err) {
  json_t *v = json_object_get(obj, key);
  if (!v) {
    gw_error_set(err, GW_BAD_REQUEST, key, "%s: required", key);
    return -1;
  }
  /* JSON Schema counts 5.0 as an integer; so do we, when it is exactly one in range */
  double d = json_is_real(v) ? json_real_value(v) : 0;
  bool whole_real = json_is_real(v) && d == floor(d) && d >= (double)lo && d <= (double)hi;
  json_int_t x = whole_real ? (json_int_t)d : json_integer_value(v);
  if ((!json_is_integer(v) && !whole_real) || x < lo || x > hi) {
    gw_error_set(err, GW_BAD_REQUEST, key, "%s: must be an integer in [%lld, %lld]", key, lo, hi);
    return -1;
  }
  *out = (long long)x;
  return 0;
}

typedef bool (*id_check)(const char *s);
static bool check_plain_id(const char *s) { return mrd_id_valid(s); }
static bool check_offer_id(const char *s) { return mrd_offer_id_shard(s, NULL); }
static bool check_trip_id(const char *s) { return mrd_trip_id_shard(s, NULL); }

static int get_id(json_t *obj, const char *key, id_check check, const char *shape, char *out,
                  gw_error *err) {
  json_t *v = json_object_get(obj, key);
  if (!v) {
    gw_error_set(err, GW_BAD_REQUEST, key, "%s: required", key);
    return -1;
  }
  const char *s = json_string_value(v);
  if (!json_is_string(v) || json_string_length(v) > MRD_ID_MAX || !check(s)) {
    gw_error_set(err, GW_BAD_REQUEST, key, "%s: must be %s", key, shape);
    return -1;
  }
  memcpy(out, s, json_string_length(v) + 1);
  return 0;
}

static const char ID_SHAPE[] = "1-64 characters of [A-Za-z0-9_.:-]";

static int get_point(json_t *obj, const char *key, mrd_latlon *out, gw_error *err) {
  json_t *v = json_object_get(obj, key);
  if (!v) {
    gw_error_set(err, GW_BAD_REQUEST, key, "%s: required", key);
    return -1;
  }
  if (!json_is_object(v)) {
    gw_error_set(err, GW_BAD_REQUEST, key, "%s: must be an object {lat, lon}", key);
    return -1;
  }
  const char *k;
  json_t *x;
  char field[32];
  json_object_foreach(v, k, x) {
    if (strcmp(k, "lat") != 0 && strcmp(k, "lon") != 0) {
      gw_error_set(err, GW_BAD_REQUEST, key, "%s: unknown field (only lat, lon)", key);
      return -1;
    }
  }
  snprintf(field, sizeof field, "%s.lat", key);
  if (get_number(v, "lat", field, -90, 90, false, true, NULL, &out->lat, err)) return -1;
  snprintf(field, sizeof field, "%s.lon", key);
  if (get_number(v, "lon", field, -180, 180, false, true, NULL, &out->lon, err)) return -1;
  return 0;
}

/* The fields of each type, once "type", "ref" and unknown fields are dealt with. */
static int parse_fields(json_t *root, gw_msg *m, gw_error *err) {
  long long ll;
  switch (m->type) {
  case GW_MSG_LOCATION:
    if (get_number(root, "lat", "lat", -90, 90, false, true, NULL, &m->pos.lat, err) ||
        get_number(root, "lon", "lon", -180, 180, false, true, NULL, &m->pos.lon, err) ||
        get_number(root, "heading", "heading", 0, 360, true, false, &m->has_heading,
                   &m->heading_deg, err) ||
        get_number(root, "speed_mps", "speed_mps", 0, 100, false, false, &m->has_speed,
                   &m->speed_mps, err))
      return -1;
    if (get_integer(root, "ts", 1, GW_MAX_SAFE_INT, &ll, err)) return -1;
    m->ts_ms = ll;
    if (get_integer(root, "seq", 0, GW_MAX_SAFE_INT, &ll, err)) return -1;
    m->seq = (uint64_t)ll;
    return 0;
  case GW_MSG_STATUS: {
    json_t *v = json_object_get(root, "status");
    const char *s = json_string_value(v);
    if (s && strcmp(s, "available") == 0 && json_string_length(v) == 9) {
      m->status = MRD_DRIVER_AVAILABLE;
    } else if (s && strcmp(s, "offline") == 0 && json_string_length(v) == 7) {
      m->status = MRD_DRIVER_OFFLINE;
    } else {
      gw_error_set(err, GW_BAD_REQUEST, "status", "status: %s",
                   v ? "must be \"available\" or \"offline\"" : "required");
      return -1;
    }
    return 0;
  }
  case GW_MSG_ACCEPT:
  case GW_MSG_DECLINE:
    if (get_id(root, "offer_id", check_offer_id,
               "an offer id o<shard>-<id> (64 characters at most)", m->id, err))
      return -1;
    mrd_offer_id_shard(m->id, &m->shard);
    return 0;
  case GW_MSG_ARRIVED:
  case GW_MSG_START:
  case GW_MSG_COMPLETE:
    if (get_id(root, "trip_id", check_trip_id, "a trip id t<shard>-<id> (64 characters at most)",
               m->id, err))
      return -1;
    mrd_trip_id_shard(m->id, &m->shard);
    return 0;
  case GW_MSG_REQUEST:
    if (get_id(root, "request_id", check_plain_id, ID_SHAPE, m->id, err) ||
        get_point(root, "pickup", &m->pickup, err) || get_point(root, "dropoff", &m->dropoff, err))
      return -1;
    return 0;
  case GW_MSG_CANCEL: return get_id(root, "request_id", check_plain_id, ID_SHAPE, m->id, err);
  case GW_MSG_NEARBY:
    return get_number(root, "lat", "lat", -90, 90, false, true, NULL, &m->pos.lat, err) ||
                   get_number(root, "lon", "lon", -180, 180, false, true, NULL, &m->pos.lon, err) ||
                   get_number(root, "radius_m", "radius_m", 1, GW_RADIUS_MAX_M, false, true, NULL,
                              &m->radius_m, err)
               ? -1
               : 0;
  default: gw_error_set(err, GW_INTERNAL, "", "unhandled type"); return -1;
  }
}

int gw_parse(const char *text, size_t len, gw_role role, const gw_area *area, gw_msg *out,
             gw_error *err) {
  memset(out, 0, sizeof *out);
  memset(err, 0, sizeof *err);
  if (len > GW_MAX_MESSAGE_BYTES) {
    gw_error_set(err, GW_TOO_LARGE, "", "message of %zu bytes; the limit is %d", len,
                 GW_MAX_MESSAGE_BYTES);
    return -1;
  }
  if (json_depth(text, len, GW_MAX_DEPTH) > GW_MAX_DEPTH) {
    gw_error_set(err, GW_BAD_REQUEST, "", "JSON nested deeper than %d levels", GW_MAX_DEPTH);
    return -1;
  }
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    /* jansson quotes the offending token ("near '...'"), i.e. the client's raw bytes,
     * which may be invalid UTF-8 and would make the error unsendable as JSON: keep
     * printable ASCII only (found by tests/fuzz/fuzz_ws_message.c) */
    for (char *p = jerr.text; *p; p++)
      if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
    gw_error_set(err, GW_BAD_REQUEST, "", "invalid JSON at byte %d: %s", jerr.position, jerr.text);
    return -1;
  }
  int rc = -1;
  if (!json_is_object(root)) {
    gw_error_set(err, GW_BAD_REQUEST, "", "a message must be a JSON object");
    goto done;
  }
  json_t *ref = json_object_get(root, "ref");
  if (ref) {
    if (!json_is_string(ref) ||
        utf8_chars(json_string_value(ref), json_string_length(ref)) > GW_REF_MAX_CHARS ||
        json_string_length(ref) > MRD_REF_MAX) {
      gw_error_set(err, GW_BAD_REQUEST, "ref", "ref: must be a string of at most %d characters",
                   GW_REF_MAX_CHARS);
      goto done;
    }
    /* a ref holding "\u0000" cannot get here: jansson refuses NUL without JSON_ALLOW_NUL */
    memcpy(out->ref, json_string_value(ref), json_string_length(ref) + 1);
    memcpy(err->ref, out->ref, json_string_length(ref) + 1);
    out->has_ref = err->has_ref = true;
  }
  json_t *type = json_object_get(root, "type");
  if (!type) {
    gw_error_set(err, GW_BAD_REQUEST, "type", "type: required");
    goto done;
  }
  if (!json_is_string(type)) {
    gw_error_set(err, GW_BAD_REQUEST, "type", "type: must be a string");
    goto done;
  }
  out->type = type_of(json_string_value(type), role);
  if (out->type == GW_MSG_NONE || strlen(json_string_value(type)) != json_string_length(type)) {
    out->type = GW_MSG_NONE;
    gw_error_set(err, GW_BAD_REQUEST, "type", "type: not a %s message type",
                 role == GW_ROLE_DRIVER ? "driver" : "rider");
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (!field_allowed(out->type, key)) {
      /* name the field only when it is short, printable ASCII: it is the client's text */
      bool plain = strlen(key) < sizeof err->field;
      for (const char *c = key; plain && *c; c++) plain = *c > 0x20 && *c < 0x7f;
      gw_error_set(err, GW_BAD_REQUEST, plain ? key : "", "%s%sunknown field for %s",
                   plain ? key : "", plain ? ": " : "", type_names[out->type]);
      goto done;
    }
  }
  if (parse_fields(root, out, err)) goto done;
  if (area) {
    if (out->type == GW_MSG_LOCATION && !gw_area_contains(area, out->pos.lat, out->pos.lon)) {
      gw_error_set(err, GW_OUT_OF_AREA, "lat", "the position is outside the service area");
      goto done;
    }
    if (out->type == GW_MSG_REQUEST && !gw_area_contains(area, out->pickup.lat, out->pickup.lon)) {
      gw_error_set(err, GW_OUT_OF_AREA, "pickup", "the pickup is outside the service area");
      goto done;
    }
  }
  rc = 0;
done:
  json_decref(root);
  if (rc) {
    gw_msg_type t = out->type;
    memset(out, 0, sizeof *out);
    out->type = t; /* lets the caller count errors by type */
  }
  return rc;
}

/* ---- replies ------------------------------------------------------------------------- */

/* Serialise obj (reference stolen) into buf; -1 when obj is NULL or does not fit. */
static int dump(json_t *obj, char *buf, size_t cap) {
  if (!obj) return -1;
  size_t n = json_dumpb(obj, buf, cap, JSON_COMPACT | JSON_REAL_PRECISION(12));
  json_decref(obj);
  if (n == 0 || n >= cap) return -1;
  buf[n] = '\0';
  return (int)n;
}

int gw_format_ack(const char *ref, char *buf, size_t cap) {
  if (!ref) return -1;
  return dump(json_pack("{s:s, s:s}", "type", "ack", "ref", ref), buf, cap);
}

int gw_format_error(const gw_error *err, char *buf, size_t cap) {
  json_t *o = json_pack("{s:s, s:s, s:s}", "type", "error", "code", gw_code_name(err->code),
                        "message", err->message);
  if (!o) return -1;
  if (err->field[0]) json_object_set_new(o, "field", json_string(err->field));
  if (err->has_ref) json_object_set_new(o, "ref", json_string(err->ref));
  return dump(o, buf, cap);
}

static json_t *point(mrd_latlon p) { return json_pack("{s:f, s:f}", "lat", p.lat, "lon", p.lon); }

int gw_format_nearby(const mrd_latlon *drivers, size_t n, const char *ref, char *buf, size_t cap) {
  json_t *arr = json_array();
  if (!arr) return -1;
  for (size_t i = 0; i < n; i++) {
    if (!mrd_latlon_valid(drivers[i])) continue; /* never write a bad point */
    json_array_append_new(arr, point(drivers[i]));
  }
  json_t *o = json_pack("{s:s, s:o}", "type", "nearby", "drivers", arr);
  if (o && ref) json_object_set_new(o, "ref", json_string(ref));
  return dump(o, buf, cap);
}

/* ---- events -------------------------------------------------------------------------- */

void gw_event_targets(const mrd_dispatch_event *ev, const char **rider_id, const char **driver_id) {
  bool rider = false, driver = false;
  switch (ev->type) {
  case MRD_EV_REQUESTED:
  case MRD_EV_NO_DRIVER: rider = true; break;
  case MRD_EV_OFFERED: rider = driver = true; break;
  case MRD_EV_OFFER_EXPIRED: driver = true; break;
  case MRD_EV_OFFER_DECLINED: break; /* the driver had his ack; the rider waits for the next */
  case MRD_EV_MATCHED:
  case MRD_EV_ARRIVED:
  case MRD_EV_STARTED:
  case MRD_EV_COMPLETED:
  case MRD_EV_CANCELLED:
  case MRD_EV_COMMAND_REJECTED: rider = driver = true; break;
  default: break;
  }
  *rider_id = rider && ev->rider_id[0] ? ev->rider_id : NULL;
  *driver_id = driver && ev->driver_id[0] ? ev->driver_id : NULL;
}

/* The `trip` status a client sees for an event. */
static const char *trip_status(const mrd_dispatch_event *ev) {
  switch (ev->type) {
  case MRD_EV_REQUESTED: return "requested";
  case MRD_EV_OFFERED: return "offered";
  case MRD_EV_OFFER_EXPIRED: return "offer_expired";
  case MRD_EV_MATCHED: return "matched";
  case MRD_EV_ARRIVED: return "arrived";
  case MRD_EV_STARTED: return "started";
  case MRD_EV_COMPLETED: return "completed";
  case MRD_EV_CANCELLED: return "cancelled";
  case MRD_EV_NO_DRIVER: return "no_driver";
  default: return NULL;
  }
}

static void set_str(json_t *o, const char *key, const char *s) {
  if (s[0]) json_object_set_new(o, key, json_string(s));
}

/* The fare quoted at the request (issue 15): its total in cents and the surge in it. */
static void add_fare(json_t *o, const mrd_dispatch_event *ev) {
  if (!o || !ev->has_fare_quote) return;
  json_object_set_new(o, "fare_quote_cents", json_integer((json_int_t)ev->fare_quote_cents));
  json_object_set_new(o, "surge", json_real(ev->surge));
}

/* {"type":"trip", ...} with what the event carries; the rider does not learn the driver's
 * id or position before MATCHED, nor the offer id. */
static json_t *trip_message(const mrd_dispatch_event *ev, gw_role role) {
  const char *status = trip_status(ev);
  if (!status) return NULL;
  json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "type", "trip", "trip_id", ev->trip_id,
                        "status", status, "seq", (json_int_t)ev->seq, "ts", (json_int_t)ev->ts_ms);
  if (!o) return NULL;
  bool rider_sees_driver = ev->type != MRD_EV_REQUESTED && ev->type != MRD_EV_OFFERED;
  set_str(o, "request_id", ev->request_id);
  set_str(o, "rider_id", ev->rider_id);
  if (role == GW_ROLE_DRIVER || rider_sees_driver) {
    set_str(o, "driver_id", ev->driver_id);
    if (ev->has_driver_pos) json_object_set_new(o, "driver", point(ev->driver_pos));
    if (ev->has_pickup_eta) json_object_set_new(o, "pickup_eta_s", json_real(ev->pickup_eta_s));
  }
  if (role == GW_ROLE_DRIVER) set_str(o, "offer_id", ev->offer_id);
  if (ev->has_pickup) json_object_set_new(o, "pickup", point(ev->pickup));
  if (ev->has_dropoff) json_object_set_new(o, "dropoff", point(ev->dropoff));
  set_str(o, "reason", ev->reason);
  add_fare(o, ev);
  return o;
}

int gw_format_event(const mrd_dispatch_event *ev, gw_role role, char *buf, size_t cap) {
  const char *rider = NULL, *driver = NULL;
  gw_event_targets(ev, &rider, &driver);
  if ((role == GW_ROLE_RIDER && !rider) || (role == GW_ROLE_DRIVER && !driver)) return 0;
  json_t *o = NULL;
  if (ev->type == MRD_EV_COMMAND_REJECTED) {
    o = json_pack("{s:s, s:s, s:s}", "type", "error", "code", ev->error_code, "message",
                  ev->reason[0] ? ev->reason : "refused by dispatch");
    if (o) set_str(o, "ref", ev->ref);
  } else if (role == GW_ROLE_DRIVER && ev->type == MRD_EV_OFFERED) {
    o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:f, s:I}", "type", "offer", "offer_id", ev->offer_id,
                  "trip_id", ev->trip_id, "pickup", point(ev->pickup), "dropoff",
                  point(ev->dropoff), "pickup_eta_s", ev->pickup_eta_s, "expires_at",
                  (json_int_t)ev->expires_at_ms);
    if (o) set_str(o, "request_id", ev->request_id);
  } else if (role == GW_ROLE_RIDER && ev->type == MRD_EV_MATCHED) {
    o = json_pack("{s:s, s:s, s:s, s:o, s:f}", "type", "matched", "trip_id", ev->trip_id,
                  "driver_id", ev->driver_id, "driver", point(ev->driver_pos), "pickup_eta_s",
                  ev->pickup_eta_s);
    if (o) set_str(o, "request_id", ev->request_id);
    add_fare(o, ev);
  } else if (role == GW_ROLE_RIDER && ev->type == MRD_EV_NO_DRIVER) {
    o = json_pack("{s:s, s:s, s:s}", "type", "no_driver", "request_id", ev->request_id, "trip_id",
                  ev->trip_id);
  } else {
    o = trip_message(ev, role);
  }
  if (!o) return -1;
  return dump(o, buf, cap);
}

/* ---- idempotency of ride requests -------------------------------------------------------- */

int gw_request_value(uint32_t shard, mrd_latlon pickup, mrd_latlon dropoff, char *out, size_t cap) {
  int n = snprintf(out, cap, "%u|%.6f,%.6f;%.6f,%.6f", shard, pickup.lat, pickup.lon, dropoff.lat,
                   dropoff.lon);
  return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

int gw_request_value_unconfirmed(uint32_t shard, mrd_latlon pickup, mrd_latlon dropoff, char *out,
                                 size_t cap) {
  int n = gw_request_value(shard, pickup, dropoff, out, cap);
  if (n < 0 || (size_t)n + 2 > cap) return -1;
  out[n] = GW_REQ_UNCONFIRMED_MARK;
  out[n + 1] = '\0';
  return n + 1;
}

/* The length of a value's places (from its '|' on), without the unconfirmed mark. */
static size_t places_len(const char *bar) {
  size_t n = strlen(bar);
  return n > 0 && bar[n - 1] == GW_REQ_UNCONFIRMED_MARK ? n - 1 : n;
}

bool gw_request_shard(const char *value, uint32_t *shard) {
  const char *bar = strchr(value, '|');
  if (!bar || bar == value) return false;
  unsigned long k = 0;
  for (const char *p = value; p < bar; p++) {
    if (*p < '0' || *p > '9' || k >= MRD_SHARD_COUNT) return false;
    k = k * 10 + (unsigned long)(*p - '0');
  }
  if (k >= MRD_SHARD_COUNT) return false;
  *shard = (uint32_t)k;
  return true;
}

gw_req_seen gw_request_compare(const char *stored, const char *value, uint32_t *shard) {
  if (stored == NULL) return GW_REQ_NEW;
  const char *bar = strchr(stored, '|');
  const char *vbar = strchr(value, '|');
  uint32_t k = 0;
  if (!bar || !vbar || places_len(bar) != places_len(vbar) ||
      memcmp(bar, vbar, places_len(bar)) != 0 || !gw_request_shard(stored, &k))
    return GW_REQ_CONFLICT;
  *shard = k;
  return places_len(bar) == strlen(bar) ? GW_REQ_RESEND : GW_REQ_UNCONFIRMED;
}
