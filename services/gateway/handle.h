/*
 * handle.h: what the gateway does with one client message, decided without sockets: the
 * intake of a received frame (size, binary, parse, the user's budget, flood) and, for a valid
 * message, its plan: the Kafka records to write (topic, partition, key, encoded payload,
 * which one the client's ack follows, what a refused write means) and the replies to send,
 * in the order the gateway carries them out. It is the gateway's counterpart of the dispatch
 * core (services/dispatch/dispatch.h): message in, list of outputs out.
 *
 * The decisions live here: the owner partition and the halo fan-out of a location (by the
 * shard map), status to every shard of the map and to every shard an earlier epoch named,
 * offer and trip ids to the shard they name (or refused when no epoch named that shard), the order
 * of a ride request (per-rider window, route by the pickup, idempotency key, resend to the first
 * shard or conflict), cancel by the shard recorded for the request, nearby. What needs Redis or a
 * clock comes through gw_ports, which the caller provides (store_io.c in the gateway, fakes in the
 * unit tests, as the dispatch core's index, router and claims): the core never touches a socket.
 *
 * Errors (services/common/README.md, "Errors"): the ports return 0 or a negative MRD_E*, as
 * the adapters behind them do; this file maps each to the protocol code the client gets,
 * once, into a reply of the plan. Not thread-safe: a plan is filled and read by one thread.
 */
#ifndef MRD_GATEWAY_HANDLE_H
#define MRD_GATEWAY_HANDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "budget.h"
#include "gateway.h"
#include "shardmap.h"

/* ---- intake: one received frame ------------------------------------------------------ */

/* What to do with a received frame. */
typedef enum gw_intake_verdict {
  GW_INTAKE_HANDLE = 0, /* a valid message within the budget: plan it (gw_handle) */
  GW_INTAKE_REFUSE,     /* answer *err (rate_limited, too_large, bad_request...) */
  GW_INTAKE_FLOOD       /* over the budget too often: close the connection 1008 "flood" */
} gw_intake_verdict;

typedef struct gw_intake {
  gw_intake_verdict verdict;
  gw_msg_type counted; /* the type to count the frame under (GW_MSG_NONE: not a valid message) */
  bool rate_limited;   /* the user's budget had no token for it */
} gw_intake;

/* A complete frame from a client of `role`: len bytes of text (need not be NUL-terminated),
 * or too_large (its fragments passed GW_MAX_MESSAGE_BYTES) or binary. Every frame costs a
 * token of the user's budget (valid or not): a driver's locations from budget->msgs, his
 * other messages from budget->control; a rider's all from budget->msgs. Out of tokens: a
 * rate_limited refusal (with the message's ref when it had one), or GW_INTAKE_FLOOD once the
 * flood policy says so. Otherwise a parse error (gw_parse, against area) is refused, and a
 * valid message is returned in *m. Fills *m (zeroed unless valid) and *err (when refused). */
gw_intake gw_intake_frame(const char *text, size_t len, bool too_large, bool binary, gw_role role,
                          const gw_area *area, gw_budget *budget, int64_t now_ms, gw_msg *m,
                          gw_error *err);

/* ---- the plan of one valid message ----------------------------------------------------- */

/* The Redis side and the clock, as the core needs them. Each store function returns 0 or a
 * negative MRD_E* (MRD_ECONN, MRD_ETIMEDOUT, MRD_EREPLY...: Redis could not answer). */
typedef struct gw_ports {
  void *ud; /* passed to every call */
  /* The per-rider sliding window of ride requests across gateways: *allowed says whether
   * this request fits (and is counted). */
  int (*request_window)(void *ud, const char *rider, int64_t now_ms, bool *allowed);
  /* Set the key gw:req:{rider}:{request_id} to value unless it exists (with the request
   * TTL); the value it held before goes to stored (cap bytes, NUL-terminated) with
   * *existed = true, or *existed = false when the key was new. */
  int (*request_claim)(void *ud, const char *rider, const char *request_id, const char *value,
                       bool *existed, char *stored, size_t cap);
  /* The value of gw:req:{rider}:{request_id} into value (cap bytes): 0, MRD_ENOTFOUND when
   * there is none, or another MRD_E*. */
  int (*request_get)(void *ud, const char *rider, const char *request_id, char *value, size_t cap);
  /* Up to cap available drivers within radius_m of at, nearest first, into out; *n of them. */
  int (*nearby)(void *ud, mrd_latlon at, double radius_m, mrd_latlon *out, size_t cap, size_t *n);
  /* Now, Unix microseconds (wall clock): the time stamped on records and traces. */
  int64_t (*now_us)(void *ud);
  /* n random bytes (trace and span ids: unique, not secret). */
  void (*random_bytes)(void *ud, uint8_t *out, size_t n);
} gw_ports;

/* What the gateway is configured with, for planning. */
typedef struct gw_handle_config {
  double halo_m;  /* MERIDIAN_HALO_M: halo copies of a location within this distance */
  int nearby_max; /* MERIDIAN_GW_NEARBY_MAX: drivers in a nearby answer (at most 100) */
} gw_handle_config;

/* What a refused write of a record means. */
typedef enum gw_on_fail {
  GW_FAIL_REPLY = 0,  /* answer the client (gw_plan_write_failed) and go on with the plan */
  GW_FAIL_REPLY_STOP, /* answer the client and drop the rest of the plan (a location's owner copy)
                       */
  GW_FAIL_COUNT       /* only count it (a halo copy: the driver's next ping brings another) */
} gw_on_fail;

/* One record for Kafka. Pointers are borrowed from the plan, the message or the sender, and
 * valid until the plan is filled again. */
typedef struct gw_record {
  const char *topic; /* "driver-locations" or "dispatch-commands" (a string literal) */
  int32_t partition; /* the shard */
  const char *key;   /* the driver's id (locations, status) or the message's id */
  const uint8_t *payload;
  size_t len;
  bool acked;  /* its delivery report answers the message's ref (ack, or unavailable) */
  bool forget; /* a new ride request: if it never reaches Kafka, its idempotency key
                  (gw_plan.request_*) is deleted, so that the client's retry is new */
  gw_on_fail on_fail;
  bool location; /* a driver location (else a command): the text of a failed write */
} gw_record;

typedef enum gw_action_kind {
  GW_ACT_PRODUCE = 1, /* write u.record to Kafka */
  GW_ACT_ERROR,       /* send the error reply u.error */
  GW_ACT_TEXT,        /* send u.text (a nearby answer: may be dropped when the queue is full) */
  GW_ACT_FORGET       /* delete the ride request's idempotency key (gw_plan.request_*): the
                         request will not reach Kafka */
} gw_action_kind;

typedef struct gw_action {
  gw_action_kind kind;
  union {
    gw_record record;
    gw_error error;
    struct {
      size_t off, len; /* in gw_plan.text */
      bool droppable;
    } text;
  } u;
} gw_action;

/* Things to count in the gateway's metrics, as bits of gw_plan.notes. */
enum {
  GW_NOTE_RATE_LIMITED = 1u << 0,     /* the rider's window refused a request */
  GW_NOTE_REQUEST_RESEND = 1u << 1,   /* a request_id seen before with the same places */
  GW_NOTE_REQUEST_CONFLICT = 1u << 2, /* a request_id seen before with other places */
  GW_NOTE_UNROUTED = 1u << 3          /* an offer or trip id naming a shard not in the map */
};

/* Most actions one message makes: a location's owner copy, a halo copy per other shard and a
 * reply; status: a command per shard and a reply each. */
#define GW_PLAN_MAX_ACTIONS (2 * MRD_SHARD_COUNT + 3)

/* The plan of one message: its actions in order, the bytes they point to, and notes. Made by
 * gw_plan_new (it is large: keep one and refill it). */
typedef struct gw_plan {
  gw_action act[GW_PLAN_MAX_ACTIONS];
  size_t n;
  unsigned notes;    /* GW_NOTE_* */
  const gw_msg *msg; /* the message planned (borrowed) */
  /* a ride request: the idempotency key's parts and the value it was set to, for forget */
  const char *request_id, *rider;
  char request_value[GW_REQ_VALUE_MAX];
  /* encoded payloads and texts */
  uint8_t bytes[(MRD_SHARD_COUNT + 1) * MRD_PROTO_MAX_SIZE];
  size_t used;
  char text[4096];
} gw_plan;

/* A new, empty plan; NULL when out of memory. Free with gw_plan_free (NULL is a no-op). */
gw_plan *gw_plan_new(void);
void gw_plan_free(gw_plan *p);

/* Plan what to do with valid message m from user (his token's sub) of role, with map (NULL:
 * none loaded yet, answered unavailable), received at rx_us (Unix us: a request's trace
 * starts there). Fills *p (the previous plan is forgotten) and calls the ports in the order
 * the protocol wants (for a request: window, then the idempotency key, then the record).
 * Never fails: what cannot be done becomes an error reply in the plan. */
void gw_handle(const gw_msg *m, gw_role role, const char *user, const gw_shardmap *map,
               const gw_handle_config *cfg, const gw_ports *ports, int64_t rx_us, gw_plan *p);

/* The reply to send when Kafka refused record r of plan p (rc: the producer's MRD_E*):
 * MRD_EFULL (the local queue is full) is unavailable ("overloaded; try again"), anything else
 * internal. The message's ref is carried. */
void gw_plan_write_failed(const gw_plan *p, const gw_record *r, int rc, gw_error *out);

/* ---- on connect ------------------------------------------------------------------------ */

/* The message a user of role gets on connecting when ev is the latest event of his trip (a
 * client that comes back during a trip learns its state at once): gw_format_event's, if ev
 * is for this very user. Returns the length written, 0 when there is nothing for him, -1
 * when cap is too small. */
int gw_format_snapshot(const mrd_dispatch_event *ev, gw_role role, const char *user, char *buf,
                       size_t cap);

#endif /* MRD_GATEWAY_HANDLE_H */
