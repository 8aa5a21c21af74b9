/*
 * proto.h: Meridian's Kafka payloads (the .proto files of schemas/kafka) as plain C structs, with
 * encode and decode functions that validate every field.
 *
 * The wire format is protobuf (protobuf-c, generated at build time); this header hides it:
 * callers fill and read fixed-size structs and never touch protobuf-c types. Decoding never
 * trusts its input: garbage, truncated data, a payload of another version, an id of the
 * wrong shape or a NaN coordinate are errors, never a crash. Encoding applies the same rules,
 * so a producer cannot write what a consumer would refuse. This is not a Kafka client: it
 * only turns structs into bytes and back.
 */
#ifndef MRD_PROTO_H
#define MRD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrd/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MRD_PROTO_VERSION 1u    /* the payload version written and accepted */
#define MRD_ID_MAX 64           /* bytes of an id (user, request, offer, trip), without NUL */
#define MRD_REF_MAX 512         /* bytes of a client ref: 128 code points of <= 4 bytes */
#define MRD_REASON_MAX 64       /* bytes of an event's reason */
#define MRD_ERRCODE_MAX 32      /* bytes of a protocol error code */
#define MRD_GEOHASH_MAX 12      /* characters of a geohash */
#define MRD_SHARD_COUNT 64      /* shards are numbered 0..63 (= topic partitions) */
#define MRD_PROTO_MAX_SIZE 2048 /* bytes: no valid payload encodes larger */

/* The Kafka topics (exact names: every producer, consumer and devkafka uses these; k8s/
 * and schemas/kafka/README.md declare them). */
#define MRD_TOPIC_DRIVER_LOCATIONS "driver-locations"   /* mrd_driver_location, by shard */
#define MRD_TOPIC_DISPATCH_COMMANDS "dispatch-commands" /* mrd_dispatch_command, by shard */
#define MRD_TOPIC_DISPATCH_EVENTS "dispatch-events"     /* mrd_dispatch_event, key trip_id */
#define MRD_TOPIC_DLQ "dispatch-events-dlq"             /* the dead-letter topic (mrd/dlq.h) */

/* Errors: 0 on success, one of these (negative) otherwise. */
enum {
  MRD_PROTO_OK = 0,
  MRD_PROTO_EINVAL = -1,   /* a field is missing, malformed or out of range */
  MRD_PROTO_EPARSE = -2,   /* the bytes are not a protobuf message of the expected type */
  MRD_PROTO_EVERSION = -3, /* the payload's version is missing or not MRD_PROTO_VERSION */
  MRD_PROTO_ERANGE = -4,   /* the caller's buffer is too small */
  MRD_PROTO_ENOMEM = -5    /* an allocation failed */
};

/* A human-readable message for an MRD_PROTO_* code; never NULL, static storage. */
const char *mrd_proto_strerror(int err);

/* A WGS84 position in degrees. */
typedef struct mrd_latlon {
  double lat;
  double lon;
} mrd_latlon;

/* True when p is finite and within [-90, 90] x [-180, 180]. */
bool mrd_latlon_valid(mrd_latlon p);

/* ---- ids ---------------------------------------------------------------------------- */

/* True when s is a user or request id: 1..64 characters of [A-Za-z0-9_.:-]. */
bool mrd_id_valid(const char *s);

/* Offer and trip ids name the shard that made them: "o<shard>-<suffix>" and
 * "t<shard>-<suffix>", shard in 0..63 written without leading zeros, suffix 1 or more
 * characters of [A-Za-z0-9_.:-], 64 characters in all at most.
 * mrd_offer_id_shard / mrd_trip_id_shard return true and write the shard to *shard (which
 * may be NULL) when id has that shape; false otherwise, *shard untouched. */
bool mrd_offer_id_shard(const char *id, uint32_t *shard);
bool mrd_trip_id_shard(const char *id, uint32_t *shard);

/* Write the offer or trip id for shard and suffix into buf (cap bytes, NUL included). Test
 * API (dispatch, which links no codec, writes the same shape itself; trips.c, matcher.c):
 * tests/proto/test_proto_ids.c.
 * Returns MRD_PROTO_OK, MRD_PROTO_EINVAL for a shard >= 64 or a suffix that is empty or
 * has other characters, MRD_PROTO_ERANGE when the id would exceed 64 characters or cap. */
int mrd_offer_id_format(uint32_t shard, const char *suffix, char *buf, size_t cap);
int mrd_trip_id_format(uint32_t shard, const char *suffix, char *buf, size_t cap);

/* ---- driver-locations --------------------------------------------------------------- */

/* One driver position as written to driver-locations (one copy per receiving shard). */
typedef struct mrd_driver_location {
  char driver_id[MRD_ID_MAX + 1]; /* required: the JWT sub */
  mrd_latlon pos;                 /* required, valid */
  bool has_heading;
  double heading_deg; /* [0, 360) when has_heading */
  bool has_speed;
  double speed_mps;                  /* [0, 100] when has_speed */
  int64_t ts_ms;                     /* required, >= 1: the client's clock */
  uint64_t seq;                      /* the client's sequence number */
  bool halo;                         /* true on a halo copy */
  uint32_t owner_shard;              /* < 64 */
  uint64_t epoch;                    /* shard-map epoch used to route, >= 1 */
  char geohash[MRD_GEOHASH_MAX + 1]; /* optional ("" = absent): base32 geohash of pos */
  int64_t received_ms;               /* optional (0 = absent): gateway receive time */
} mrd_driver_location;

/* Encode m into buf (cap bytes) and write the size to *len. Returns MRD_PROTO_OK,
 * MRD_PROTO_EINVAL when m breaks a rule above, MRD_PROTO_ERANGE when cap is too small
 * (MRD_PROTO_MAX_SIZE always suffices). */
int mrd_driver_location_encode(const mrd_driver_location *m, uint8_t *buf, size_t cap, size_t *len);

/* Decode len bytes into *out (zeroed first). Returns MRD_PROTO_OK, MRD_PROTO_EPARSE,
 * MRD_PROTO_EVERSION or MRD_PROTO_EINVAL; *out is unspecified on error. */
int mrd_driver_location_decode(const uint8_t *buf, size_t len, mrd_driver_location *out);

/* ---- dispatch-commands -------------------------------------------------------------- */

typedef enum mrd_cmd_kind {
  MRD_CMD_NONE = 0,
  MRD_CMD_REQUEST,  /* request_id, rider_id, pickup, dropoff */
  MRD_CMD_CANCEL,   /* request_id, rider_id */
  MRD_CMD_ACCEPT,   /* offer_id (naming `shard`), driver_id */
  MRD_CMD_DECLINE,  /* offer_id (naming `shard`), driver_id */
  MRD_CMD_ARRIVED,  /* trip_id (naming `shard`), driver_id */
  MRD_CMD_START,    /* trip_id (naming `shard`), driver_id */
  MRD_CMD_COMPLETE, /* trip_id (naming `shard`), driver_id */
  MRD_CMD_STATUS    /* driver_id, status */
} mrd_cmd_kind;

typedef enum mrd_driver_status {
  MRD_DRIVER_STATUS_NONE = 0,
  MRD_DRIVER_AVAILABLE = 1,
  MRD_DRIVER_OFFLINE = 2
} mrd_driver_status;

/* A command to one shard. A flat struct: the fields that `kind` lists (above) are required,
 * the others must be empty / zero. */
typedef struct mrd_command {
  mrd_cmd_kind kind;
  uint32_t shard;            /* the target shard, < 64 */
  uint64_t epoch;            /* shard-map epoch used to route, >= 1 */
  int64_t ts_ms;             /* gateway receive time, >= 1 */
  char ref[MRD_REF_MAX + 1]; /* optional: the client's ref */
  char request_id[MRD_ID_MAX + 1];
  char rider_id[MRD_ID_MAX + 1];
  char driver_id[MRD_ID_MAX + 1];
  char offer_id[MRD_ID_MAX + 1];
  char trip_id[MRD_ID_MAX + 1];
  mrd_latlon pickup;
  mrd_latlon dropoff;
  mrd_driver_status status;
  bool
      resend; /* request: a client's retry of a request the gateway had seen (RideRequest.resend) */
  mrd_trace trace; /* optional (present = false: none): on a request, its trace so far.
                    * Encode refuses a trace that fails mrd_trace_check and writes its
                    * first MRD_STAMP_WIRE_COUNT stamps; decode reads a trace of another
                    * version or malformed as absent (the command itself is still used). */
} mrd_command;

/* Encode / decode a command; same contract as mrd_driver_location_encode / _decode. */
int mrd_command_encode(const mrd_command *m, uint8_t *buf, size_t cap, size_t *len);
int mrd_command_decode(const uint8_t *buf, size_t len, mrd_command *out);

/* The name of a command kind ("request", "accept", ...); "none" for others. Test API (no
 * service calls it): tests/gateway/gw_kafka_tool.c, fuzz_kafka_decode. */
const char *mrd_cmd_kind_name(mrd_cmd_kind kind);

/* ---- dispatch-events ---------------------------------------------------------------- */

typedef enum mrd_event_type {
  MRD_EV_NONE = 0,
  MRD_EV_REQUESTED = 1,
  MRD_EV_OFFERED = 2,
  MRD_EV_OFFER_DECLINED = 3,
  MRD_EV_OFFER_EXPIRED = 4,
  MRD_EV_MATCHED = 5,
  MRD_EV_ARRIVED = 6,
  MRD_EV_STARTED = 7,
  MRD_EV_COMPLETED = 8,
  MRD_EV_CANCELLED = 9,
  MRD_EV_NO_DRIVER = 10,
  MRD_EV_COMMAND_REJECTED = 11
} mrd_event_type;

typedef enum mrd_trip_status {
  MRD_TRIP_NONE = 0,
  MRD_TRIP_REQUESTED = 1,
  MRD_TRIP_OFFERED = 2,
  MRD_TRIP_MATCHED = 3,
  MRD_TRIP_ARRIVED = 4,
  MRD_TRIP_STARTED = 5,
  MRD_TRIP_COMPLETED = 6,
  MRD_TRIP_CANCELLED = 7,
  MRD_TRIP_NO_DRIVER = 8
} mrd_trip_status;

/* One trip or offer transition (or a refused command). Required fields by type:
 *   every type: ts_ms >= 1, shard < 64, epoch >= 1; every type but COMMAND_REJECTED: trip_id naming
 *     `shard`, seq >= 1
 *   REQUESTED: rider_id, request_id          OFFERED: driver_id, offer_id, pickup, dropoff,
 *   OFFER_DECLINED, OFFER_EXPIRED: driver_id, offer_id      pickup_eta_s, expires_at_ms
 *   MATCHED: rider_id, driver_id, driver_pos, pickup_eta_s
 *   ARRIVED, STARTED, COMPLETED: rider_id, driver_id
 *   CANCELLED: rider_id                      NO_DRIVER: rider_id, request_id
 *   COMMAND_REJECTED: error_code (a protocol code) and exactly one of rider_id / driver_id
 * Optional fields are empty strings, has_* false, or 0 when absent. */
#define MRD_TARIFF_MAX 63 /* bytes of a tariff name */

typedef struct mrd_dispatch_event {
  mrd_event_type type;
  char trip_id[MRD_ID_MAX + 1];
  uint64_t seq;
  uint32_t shard;
  uint64_t epoch;
  int64_t ts_ms;
  char rider_id[MRD_ID_MAX + 1];
  char driver_id[MRD_ID_MAX + 1];
  char request_id[MRD_ID_MAX + 1];
  char offer_id[MRD_ID_MAX + 1];
  bool has_pickup;
  mrd_latlon pickup;
  bool has_dropoff;
  mrd_latlon dropoff;
  bool has_pickup_eta;
  double pickup_eta_s;   /* >= 0 */
  int64_t expires_at_ms; /* 0 = absent */
  bool has_driver_pos;
  mrd_latlon driver_pos;
  mrd_trip_status status; /* MRD_TRIP_NONE = absent */
  char reason[MRD_REASON_MAX + 1];
  char error_code[MRD_ERRCODE_MAX + 1];
  char ref[MRD_REF_MAX + 1];
  uint64_t generation; /* the producing shard's lease generation; 0 = absent */
  mrd_trace trace;     /* optional: the trace of the request that made it (as in mrd_command) */
  bool has_fare_quote; /* fare_quote_cents, surge and tariff are set */
  int64_t fare_quote_cents; /* >= 0 */
  double surge;             /* >= 1, finite */
  char tariff[MRD_TARIFF_MAX + 1];
} mrd_dispatch_event;

/* Encode / decode an event; same contract as mrd_driver_location_encode / _decode. */
int mrd_dispatch_event_encode(const mrd_dispatch_event *m, uint8_t *buf, size_t cap, size_t *len);
int mrd_dispatch_event_decode(const uint8_t *buf, size_t len, mrd_dispatch_event *out);

/* Names used in the client protocol: "offered", "matched", ... for an event type and
 * "requested", "cancelled", ... for a trip status; "none" for others. Static storage. */
const char *mrd_event_type_name(mrd_event_type type);
const char *mrd_trip_status_name(mrd_trip_status status);

/* Fencing of dispatch-events by lease generation (docs/shards.md): a consumer keeps the
 * highest generation seen per shard and drops an event of a lower one, the late output of
 * a dispatch process that lost its shard's lease. Zero-initialise (all 0: nothing seen). */
typedef struct mrd_fence {
  uint64_t highest[MRD_SHARD_COUNT];
} mrd_fence;

/* True when an event of shard with this generation is to be used (and the shard's highest
 * is raised to it); false when it is stale (generation below the highest seen). An event
 * without a generation (0: made before leases) and a shard >= 64 are always used. */
bool mrd_fence_admit(mrd_fence *f, uint32_t shard, uint64_t generation);

/* True when code is one of the client protocol's error codes. */
bool mrd_error_code_valid(const char *code);

#ifdef __cplusplus
}
#endif
#endif /* MRD_PROTO_H */
