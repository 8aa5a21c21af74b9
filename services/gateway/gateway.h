/*
 * gateway.h: the gateway's domain logic, with no sockets: parsing and strict validation of
 * client messages (docs/protocol.md, schemas/ws/), the replies the gateway writes (ack,
 * error, nearby) and the translation of dispatch-events into client messages.
 *
 * Everything here takes its inputs (text, time, the service area) as arguments and is
 * unit-tested without servers. It does not know libwebsockets, Kafka or Redis: the *_io.c
 * adapters do. Rate limits are in ratelimit.h, the service area in area.h, shard routing
 * in shardmap.h.
 */
#ifndef MRD_GATEWAY_H
#define MRD_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "area.h"
#include "mrd/proto.h"

#define GW_MAX_MESSAGE_BYTES 4096 /* a message (all its fragments) above this is too_large */
#define GW_MAX_DEPTH 4            /* JSON nesting (objects and arrays) allowed in a message */
#define GW_REF_MAX_CHARS 128      /* code points of a client ref */
#define GW_RADIUS_MAX_M 5000.0    /* largest nearby radius */
#define GW_MAX_SAFE_INT 9007199254740991LL /* 2^53 - 1: ts and seq bound */

/* Who is on the other end: fixed by the endpoint and the token's role. */
typedef enum gw_role { GW_ROLE_DRIVER = 0, GW_ROLE_RIDER = 1 } gw_role;

/* The protocol's error codes. GW_OK is not sent. */
typedef enum gw_code {
  GW_OK = 0,
  GW_BAD_REQUEST,
  GW_UNAUTHORIZED,
  GW_FORBIDDEN,
  GW_RATE_LIMITED,
  GW_OUT_OF_AREA,
  GW_UNKNOWN_OFFER,
  GW_INVALID_STATE,
  GW_TOO_LARGE,
  GW_UNAVAILABLE,
  GW_INTERNAL,
  GW_CODE_COUNT
} gw_code;

/* The wire name of a code ("bad_request", ...); "internal" for values out of range. */
const char *gw_code_name(gw_code code);

/* Client message types. Driver types are LOCATION..COMPLETE, rider types REQUEST..NEARBY. */
typedef enum gw_msg_type {
  GW_MSG_NONE = 0,
  GW_MSG_LOCATION,
  GW_MSG_STATUS,
  GW_MSG_ACCEPT,
  GW_MSG_DECLINE,
  GW_MSG_ARRIVED,
  GW_MSG_START,
  GW_MSG_COMPLETE,
  GW_MSG_REQUEST,
  GW_MSG_CANCEL,
  GW_MSG_NEARBY,
  GW_MSG_TYPE_COUNT
} gw_msg_type;

/* The wire name of a type ("location", ...); "none" for GW_MSG_NONE or out of range. */
const char *gw_msg_type_name(gw_msg_type type);

/* A parsed, validated client message. Only the fields of its type are set; the rest are 0. */
typedef struct gw_msg {
  gw_msg_type type;
  bool has_ref;
  char ref[MRD_REF_MAX + 1];
  /* location, nearby */
  mrd_latlon pos;
  /* location */
  bool has_heading;
  double heading_deg;
  bool has_speed;
  double speed_mps;
  int64_t ts_ms;
  uint64_t seq;
  /* status */
  mrd_driver_status status;
  /* accept, decline: the offer id; arrived, start, complete: the trip id; request, cancel:
   * the request id */
  char id[MRD_ID_MAX + 1];
  uint32_t shard; /* the shard named in an offer or trip id */
  /* request */
  mrd_latlon pickup;
  mrd_latlon dropoff;
  /* nearby */
  double radius_m;
} gw_msg;

/* Why a message was refused: the code, the field at fault (for bad_request; "" when the
 * message as a whole is wrong), a sentence, and the message's ref when it had a valid one. */
typedef struct gw_error {
  gw_code code;
  char field[32];
  char message[128];
  bool has_ref;
  char ref[MRD_REF_MAX + 1];
} gw_error;

/* Fill *err with code, field ("" or NULL for none) and a printf-style message. The ref is
 * left as it is. */
void gw_error_set(gw_error *err, gw_code code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parse and validate one complete text message of len bytes from a client of `role`.
 * `area` (may be NULL: no area check) is the service area: a location or a request pickup
 * outside it is refused with GW_OUT_OF_AREA. Returns 0 with *out filled, or -1 with *err
 * filled (code, field, message, and the ref when the message had a valid one). Never reads
 * beyond len; text need not be NUL-terminated. Checks, in order: size (GW_TOO_LARGE), JSON
 * nesting, JSON syntax and UTF-8, duplicate keys, an object at the top, ref, type (known
 * and of this role), unknown fields, then each field's type and range (GW_BAD_REQUEST
 * naming the field), then the area. */
int gw_parse(const char *text, size_t len, gw_role role, const gw_area *area, gw_msg *out,
             gw_error *err);

/* ---- replies (server -> client). Each writes compact JSON plus a NUL into buf (cap bytes)
 * and returns its length without the NUL, or -1 when cap is too small or an argument is
 * invalid. */

/* {"type":"ack","ref":...} */
int gw_format_ack(const char *ref, char *buf, size_t cap);

/* {"type":"error","code":...,"message":...,"field"?:...,"ref"?:...} */
int gw_format_error(const gw_error *err, char *buf, size_t cap);

/* {"type":"nearby","drivers":[{"lat":..,"lon":..}...],"ref"?:...}; ref may be NULL. */
int gw_format_nearby(const mrd_latlon *drivers, size_t n, const char *ref, char *buf, size_t cap);

/* ---- dispatch-events -> clients ------------------------------------------------------ */

/* The users a dispatch event is for: *rider_id / *driver_id are set to the event's ids
 * (borrowed from ev) when the rider / the driver gets a message for it, NULL otherwise. */
void gw_event_targets(const mrd_dispatch_event *ev, const char **rider_id, const char **driver_id);

/* The client message that a user of `role` gets for ev (offer, matched, no_driver, trip or
 * error; docs/protocol.md "Events"). Returns the length written, 0 when this role gets
 * nothing for ev, -1 when cap is too small. */
int gw_format_event(const mrd_dispatch_event *ev, gw_role role, char *buf, size_t cap);

/* ---- idempotency of ride requests (the Redis key gw:req:{rider}:{request_id}) ---------- */

/* What the gateway knows of a (rider, request_id) when a request arrives. */
typedef enum gw_req_seen {
  GW_REQ_NEW = 0,        /* never seen (or its key expired): route by the pickup */
  GW_REQ_RESEND = 1,     /* seen with the same pickup and drop-off: a retry, sent to the shard
                            that holds it, flagged resend (it never makes a second trip) */
  GW_REQ_CONFLICT = 2,   /* seen with another pickup or drop-off (or an unreadable value):
                           refused with invalid_state, nothing produced */
  GW_REQ_UNCONFIRMED = 3 /* seen with the same places, but its first copy was never
                            confirmed delivered (a gateway died between setting the key and
                            Kafka's delivery report): sent to the stored shard as a new
                            request, not flagged resend. The shard answers from the trip it
                            holds if the first copy came, and makes the trip if it never did */
} gw_req_seen;

/* Longest value of the key, NUL included. */
#define GW_REQ_VALUE_MAX 96

/* The key's value for a request routed to shard: "<shard>|<pickup lat>,<pickup lon>;
 * <drop-off lat>,<drop-off lon>" with 6 decimals (0.11 m: a client re-sending the same
 * JSON numbers gets the same text). Returns its length, or -1 when cap is too small. */
int gw_request_value(uint32_t shard, mrd_latlon pickup, mrd_latlon dropoff, char *out, size_t cap);

/* The value a request's key is set to before its command is produced: gw_request_value's
 * followed by GW_REQ_UNCONFIRMED_MARK. Kafka's delivery report turns it into the confirmed
 * value (the mark dropped); a gateway that dies in between leaves the mark, and the client's
 * retry is then GW_REQ_UNCONFIRMED, not a resend (schemas/redis.md). Returns its length, or
 * -1 when cap is too small. */
#define GW_REQ_UNCONFIRMED_MARK '*'
int gw_request_value_unconfirmed(uint32_t shard, mrd_latlon pickup, mrd_latlon dropoff, char *out,
                                 size_t cap);

/* Compares the stored value (NULL: no key) with the value this request would store (either
 * may carry the unconfirmed mark). On GW_REQ_RESEND and GW_REQ_UNCONFIRMED, *shard is the
 * stored shard (where the request went the first time). Pure. */
gw_req_seen gw_request_compare(const char *stored, const char *value, uint32_t *shard);

/* The shard a stored value names (its digits before '|', below MRD_SHARD_COUNT): true with
 * *shard, false (and *shard untouched) when the value does not name one. Pure. */
bool gw_request_shard(const char *value, uint32_t *shard);

#endif /* MRD_GATEWAY_H */
