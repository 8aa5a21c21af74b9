/*
 * handle.c: the plan of one client message (handle.h): intake of a frame, then per message
 * type the records for Kafka and the replies, with Redis and the clock behind gw_ports. Every
 * text a client can read here is the one the gateway sent before this file existed
 * (docs/protocol.md); the integration tests (tests/gateway) hold the wire, test_gateway_handle
 * the decisions.
 */
#include "handle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "mrd/err.h"

#define NEARBY_CAP 100 /* drivers in one nearby answer, whatever the configuration */

/* ---- intake ------------------------------------------------------------------------------ */

gw_intake gw_intake_frame(const char *text, size_t len, bool too_large, bool binary, gw_role role,
                          const gw_area *area, gw_budget *budget, int64_t now_ms, gw_msg *m,
                          gw_error *err) {
  gw_intake in = {GW_INTAKE_HANDLE, GW_MSG_NONE, false};
  int ok = -1;
  memset(m, 0, sizeof *m);
  memset(err, 0, sizeof *err);
  if (too_large) {
    gw_error_set(err, GW_TOO_LARGE, NULL, "messages are limited to %d bytes", GW_MAX_MESSAGE_BYTES);
  } else if (binary) {
    gw_error_set(err, GW_BAD_REQUEST, NULL, "binary messages are not accepted; send JSON text");
  } else {
    ok = gw_parse(text, len, role, area, m, err);
  }
  if (ok == 0) in.counted = m->type;
  /* every message costs a token of the user's budget, valid or not */
  gw_bucket *b = (role == GW_ROLE_DRIVER && !(ok == 0 && m->type == GW_MSG_LOCATION))
                     ? &budget->control
                     : &budget->msgs;
  if (!gw_bucket_take(b, now_ms)) {
    in.rate_limited = true;
    if (gw_flood_hit(&budget->flood, now_ms) == GW_FLOOD_CLOSE) {
      in.verdict = GW_INTAKE_FLOOD;
      return in;
    }
    bool has_ref = ok == 0 ? m->has_ref : err->has_ref;
    char ref[MRD_REF_MAX + 1];
    memcpy(ref, ok == 0 ? m->ref : err->ref, sizeof ref);
    memset(err, 0, sizeof *err);
    gw_error_set(err, GW_RATE_LIMITED, NULL, "over the rate limit; slow down");
    err->has_ref = has_ref;
    memcpy(err->ref, ref, sizeof err->ref);
    in.verdict = GW_INTAKE_REFUSE;
    return in;
  }
  if (ok != 0) in.verdict = GW_INTAKE_REFUSE;
  return in;
}

/* ---- building a plan ------------------------------------------------------------------- */

gw_plan *gw_plan_new(void) { return calloc(1, sizeof(gw_plan)); }

void gw_plan_free(gw_plan *p) { free(p); }

static gw_action *next_action(gw_plan *p) {
  if (p->n == GW_PLAN_MAX_ACTIONS) return NULL; /* cannot happen: the bound counts the worst case */
  gw_action *a = &p->act[p->n++];
  memset(a, 0, sizeof *a);
  return a;
}

/* An error reply carrying the message's ref. */
static void reply(gw_plan *p, gw_code code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply(gw_plan *p, gw_code code, const char *field, const char *fmt, ...) {
  gw_action *a = next_action(p);
  if (!a) return;
  a->kind = GW_ACT_ERROR;
  char msg[sizeof a->u.error.message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  gw_error_set(&a->u.error, code, field, "%s", msg);
  if (p->msg->has_ref) {
    a->u.error.has_ref = true;
    memcpy(a->u.error.ref, p->msg->ref, sizeof a->u.error.ref);
  }
}

/* Room for one more payload in the plan's bytes (MRD_PROTO_MAX_SIZE each at most). */
static uint8_t *payload_room(gw_plan *p) {
  if (sizeof p->bytes - p->used < MRD_PROTO_MAX_SIZE) return NULL;
  return p->bytes + p->used;
}

static void add_record(gw_plan *p, const char *topic, int32_t partition, const char *key,
                       const uint8_t *payload, size_t len, bool acked, gw_on_fail on_fail,
                       bool location, bool forget) {
  gw_action *a = next_action(p);
  if (!a) return;
  a->kind = GW_ACT_PRODUCE;
  a->u.record = (gw_record){topic, partition, key, payload, len, acked, forget, on_fail, location};
}

static int64_t now_us(const gw_ports *ports) { return ports->now_us(ports->ud); }

/* ---- locations ----------------------------------------------------------------------------- */

/* The owner copy (acked), then one halo copy per other shard owning a cell within halo_m. */
static void plan_location(gw_plan *p, const char *user, const gw_shardmap *map,
                          const gw_handle_config *cfg, const gw_ports *ports) {
  const gw_msg *m = p->msg;
  gw_route r;
  if (gw_shardmap_route(map, m->pos, cfg->halo_m, &r) != 0) {
    reply(p, GW_INTERNAL, NULL, "routing failed");
    return;
  }
  mrd_driver_location loc;
  memset(&loc, 0, sizeof loc);
  memcpy(loc.driver_id, user, strlen(user) + 1);
  loc.pos = m->pos;
  loc.has_heading = m->has_heading;
  loc.heading_deg = m->heading_deg;
  loc.has_speed = m->has_speed;
  loc.speed_mps = m->speed_mps;
  loc.ts_ms = m->ts_ms;
  loc.seq = m->seq;
  loc.owner_shard = r.owner;
  loc.epoch = gw_shardmap_epoch(map);
  memcpy(loc.geohash, r.geohash, sizeof loc.geohash);
  loc.received_ms = now_us(ports) / 1000;
  /* the owner copy and every halo copy differ only in the halo flag: two encodings */
  uint8_t *own = payload_room(p);
  size_t own_len = 0;
  if (!own || mrd_driver_location_encode(&loc, own, MRD_PROTO_MAX_SIZE, &own_len) != 0) {
    reply(p, GW_INTERNAL, NULL, "could not encode the location");
    return;
  }
  p->used += own_len;
  add_record(p, MRD_TOPIC_DRIVER_LOCATIONS, (int32_t)r.owner, user, own, own_len, m->has_ref,
             GW_FAIL_REPLY_STOP, true, false);
  if (!r.halo_mask) return;
  loc.halo = true;
  uint8_t *halo = payload_room(p);
  size_t halo_len = 0;
  if (!halo || mrd_driver_location_encode(&loc, halo, MRD_PROTO_MAX_SIZE, &halo_len) != 0) {
    reply(p, GW_INTERNAL, NULL, "could not encode the location");
    return;
  }
  p->used += halo_len;
  for (int shard = 0; shard < MRD_SHARD_COUNT; shard++) {
    if (r.halo_mask & (UINT64_C(1) << shard))
      add_record(p, MRD_TOPIC_DRIVER_LOCATIONS, shard, user, halo, halo_len, false, GW_FAIL_COUNT,
                 true, false);
  }
}

/* ---- commands ---------------------------------------------------------------------------- */

/* Stamp, encode and add cmd as a record for its shard (key: key). acked: the client's ack
 * follows this record (when the message has a ref). */
static void add_command(gw_plan *p, mrd_command *cmd, const gw_shardmap *map, const gw_ports *ports,
                        const char *key, bool acked, bool forget) {
  cmd->epoch = gw_shardmap_epoch(map);
  int64_t t_us = now_us(ports);
  cmd->ts_ms = t_us / 1000;
  if (cmd->trace.present) cmd->trace.stamp_us[MRD_STAMP_GATEWAY_PRODUCED] = t_us;
  if (p->msg->has_ref) memcpy(cmd->ref, p->msg->ref, sizeof cmd->ref);
  uint8_t *buf = payload_room(p);
  size_t len = 0;
  if (!buf || mrd_command_encode(cmd, buf, MRD_PROTO_MAX_SIZE, &len) != 0) {
    reply(p, GW_INTERNAL, NULL, "could not encode the command");
    gw_action *a = forget ? next_action(p) : NULL;
    if (a) a->kind = GW_ACT_FORGET; /* it never reaches Kafka */
    return;
  }
  p->used += len;
  add_record(p, MRD_TOPIC_DISPATCH_COMMANDS, (int32_t)cmd->shard, key, buf, len,
             acked && p->msg->has_ref, GW_FAIL_REPLY, false, forget);
}

/* status: every shard of the map (whichever holds the driver, owner or halo, learns it) and
 * every shard an earlier epoch named (gw_shardmap_trip_shards): a shard whose ranges all
 * moved away still holds its live offers and trips, and a driver going offline must decline
 * his offer or cancel his trip there too. The ack follows the first shard's copy. */
static void plan_status(gw_plan *p, const char *user, const gw_shardmap *map,
                        const gw_ports *ports) {
  uint64_t all = gw_shardmap_trip_shards(map);
  mrd_command cmd;
  memset(&cmd, 0, sizeof cmd);
  cmd.kind = MRD_CMD_STATUS;
  memcpy(cmd.driver_id, user, strlen(user) + 1);
  cmd.status = p->msg->status;
  bool first = true;
  for (uint32_t k = 0; k < MRD_SHARD_COUNT; k++) {
    if (!(all & (UINT64_C(1) << k))) continue;
    cmd.shard = k;
    add_command(p, &cmd, map, ports, user, first, false);
    first = false;
  }
}

/* accept, decline (offer ids) and arrived, start, complete (trip ids): to the shard the id
 * names, unless no epoch of the map ever named that shard (its partition has no consumer).
 * A shard whose ranges all moved away is still named (gw_shardmap_trip_shards): it
 * finishes its live offers and trips. */
static void plan_named(gw_plan *p, const char *user, const gw_shardmap *map,
                       const gw_ports *ports) {
  const gw_msg *m = p->msg;
  gw_code code = gw_target_shard_code(m->type, m->shard, gw_shardmap_trip_shards(map));
  if (code != GW_OK) {
    p->notes |= GW_NOTE_UNROUTED;
    reply(p, code, "id",
          code == GW_UNKNOWN_OFFER ? "no such offer (shard %u was never in the map)"
                                   : "no such trip (shard %u was never in the map)",
          (unsigned)m->shard);
    return;
  }
  mrd_command cmd;
  memset(&cmd, 0, sizeof cmd);
  bool offer = m->type == GW_MSG_ACCEPT || m->type == GW_MSG_DECLINE;
  cmd.kind = m->type == GW_MSG_ACCEPT    ? MRD_CMD_ACCEPT
             : m->type == GW_MSG_DECLINE ? MRD_CMD_DECLINE
             : m->type == GW_MSG_ARRIVED ? MRD_CMD_ARRIVED
             : m->type == GW_MSG_START   ? MRD_CMD_START
                                         : MRD_CMD_COMPLETE;
  cmd.shard = m->shard;
  memcpy(offer ? cmd.offer_id : cmd.trip_id, m->id, sizeof m->id);
  memcpy(cmd.driver_id, user, strlen(user) + 1);
  add_command(p, &cmd, map, ports, m->id, true, false);
}

/* request: the rider's window, the route of the pickup, the idempotency key (one
 * (rider, request_id) is one trip, whichever shard the pickup of a resend is on and however
 * long ago dispatch forgot it: docs/protocol.md "request_id"), then the command, traced. */
static void plan_request(gw_plan *p, const char *user, const gw_shardmap *map,
                         const gw_ports *ports, int64_t rx_us) {
  const gw_msg *m = p->msg;
  bool allowed = false;
  int rc = ports->request_window(ports->ud, user, now_us(ports) / 1000, &allowed);
  if (rc == 0 && !allowed) {
    p->notes |= GW_NOTE_RATE_LIMITED;
    reply(p, GW_RATE_LIMITED, NULL, "too many ride requests; wait a minute");
    return;
  }
  if (rc != 0) {
    reply(p, GW_UNAVAILABLE, NULL, "ride requests are unavailable; try again");
    return;
  }
  gw_route r;
  if (gw_shardmap_route(map, m->pickup, 0, &r) != 0) {
    reply(p, GW_INTERNAL, NULL, "routing failed");
    return;
  }
  char stored[GW_REQ_VALUE_MAX];
  bool existed = false;
  if (gw_request_value_unconfirmed(r.owner, m->pickup, m->dropoff, p->request_value,
                                   sizeof p->request_value) < 0 ||
      ports->request_claim(ports->ud, user, m->id, p->request_value, &existed, stored,
                           sizeof stored) != 0) {
    reply(p, GW_UNAVAILABLE, NULL, "ride requests are unavailable; try again");
    return;
  }
  uint32_t shard = r.owner;
  gw_req_seen seen = gw_request_compare(existed ? stored : NULL, p->request_value, &shard);
  if (seen == GW_REQ_CONFLICT) {
    p->notes |= GW_NOTE_REQUEST_CONFLICT;
    reply(p, GW_INVALID_STATE, "request_id",
          "request_id: already used for a ride with another pickup or dropoff; send a new "
          "request_id");
    return;
  }
  mrd_command cmd;
  memset(&cmd, 0, sizeof cmd);
  cmd.kind = MRD_CMD_REQUEST;
  cmd.shard = shard;
  if (seen == GW_REQ_UNCONFIRMED) /* the key as it is: confirmed or forgotten as written */
    snprintf(p->request_value, sizeof p->request_value, "%s", stored);
  cmd.resend = seen == GW_REQ_RESEND;
  if (cmd.resend) p->notes |= GW_NOTE_REQUEST_RESEND;
  /* a new request, or one whose first copy may never have reached Kafka (its key still
   * unconfirmed): its key is confirmed on delivery, or forgotten if the delivery fails */
  memcpy(cmd.request_id, m->id, sizeof cmd.request_id);
  memcpy(cmd.rider_id, user, strlen(user) + 1);
  cmd.pickup = m->pickup;
  cmd.dropoff = m->dropoff;
  uint8_t rnd[24];
  ports->random_bytes(ports->ud, rnd, sizeof rnd);
  mrd_traceparent_root(rnd, &cmd.trace.tp); /* every request is traced (docs/architecture.md) */
  cmd.trace.present = true;
  cmd.trace.stamp_us[MRD_STAMP_GATEWAY_RECEIVED] = rx_us;
  /* a request that never reaches Kafka must not stay recorded: its retry is new */
  p->request_id = m->id;
  p->rider = user;
  add_command(p, &cmd, map, ports, m->id, true, !cmd.resend);
}

/* cancel: to the shard recorded for the rider's request, which also proves it is his. */
static void plan_cancel(gw_plan *p, const char *user, const gw_shardmap *map,
                        const gw_ports *ports) {
  const gw_msg *m = p->msg;
  char value[GW_REQ_VALUE_MAX];
  int rc = ports->request_get(ports->ud, user, m->id, value, sizeof value);
  uint32_t shard = 0;
  if (rc == 0 && !gw_request_shard(value, &shard)) rc = MRD_ENOTFOUND; /* not one we wrote */
  if (rc == MRD_ENOTFOUND) {
    reply(p, GW_FORBIDDEN, "request_id", "request_id: not a request of yours");
    return;
  }
  if (rc != 0) {
    reply(p, GW_UNAVAILABLE, NULL, "cancel is unavailable; try again");
    return;
  }
  mrd_command cmd;
  memset(&cmd, 0, sizeof cmd);
  cmd.kind = MRD_CMD_CANCEL;
  cmd.shard = shard;
  memcpy(cmd.request_id, m->id, sizeof cmd.request_id);
  memcpy(cmd.rider_id, user, strlen(user) + 1);
  add_command(p, &cmd, map, ports, m->id, true, false);
}

static void plan_nearby(gw_plan *p, const gw_handle_config *cfg, const gw_ports *ports) {
  const gw_msg *m = p->msg;
  mrd_latlon pts[NEARBY_CAP];
  size_t n = 0;
  size_t cap = cfg->nearby_max > 0 ? (size_t)cfg->nearby_max : 0;
  if (ports->nearby(ports->ud, m->pos, m->radius_m, pts, cap < NEARBY_CAP ? cap : NEARBY_CAP, &n) !=
      0) {
    reply(p, GW_UNAVAILABLE, NULL, "nearby is unavailable; try again");
    return;
  }
  int len = gw_format_nearby(pts, n, m->has_ref ? m->ref : NULL, p->text, sizeof p->text);
  if (len <= 0) return;
  gw_action *a = next_action(p);
  if (!a) return;
  a->kind = GW_ACT_TEXT;
  a->u.text.off = 0;
  a->u.text.len = (size_t)len;
  a->u.text.droppable = true;
}

void gw_handle(const gw_msg *m, gw_role role, const char *user, const gw_shardmap *map,
               const gw_handle_config *cfg, const gw_ports *ports, int64_t rx_us, gw_plan *p) {
  (void)role; /* gw_parse has refused every type the role may not send */
  p->n = 0;
  p->notes = 0;
  p->msg = m;
  p->request_id = p->rider = NULL;
  p->request_value[0] = '\0';
  p->used = 0;
  if (!map) {
    reply(p, GW_UNAVAILABLE, NULL, "no shard map yet; try again");
    return;
  }
  switch (m->type) {
  case GW_MSG_LOCATION: plan_location(p, user, map, cfg, ports); return;
  case GW_MSG_STATUS: plan_status(p, user, map, ports); return;
  case GW_MSG_ACCEPT:
  case GW_MSG_DECLINE:
  case GW_MSG_ARRIVED:
  case GW_MSG_START:
  case GW_MSG_COMPLETE: plan_named(p, user, map, ports); return;
  case GW_MSG_REQUEST: plan_request(p, user, map, ports, rx_us); return;
  case GW_MSG_CANCEL: plan_cancel(p, user, map, ports); return;
  case GW_MSG_NEARBY: plan_nearby(p, cfg, ports); return;
  default: reply(p, GW_INTERNAL, NULL, "unhandled message"); return;
  }
}

void gw_plan_write_failed(const gw_plan *p, const gw_record *r, int rc, gw_error *out) {
  memset(out, 0, sizeof *out);
  if (rc == MRD_EFULL)
    gw_error_set(out, GW_UNAVAILABLE, NULL, "the gateway is overloaded; try again");
  else
    gw_error_set(out, GW_INTERNAL, NULL,
                 r->location ? "could not queue the location" : "could not queue the command");
  if (p->msg && p->msg->has_ref) {
    out->has_ref = true;
    memcpy(out->ref, p->msg->ref, sizeof out->ref);
  }
}

int gw_format_snapshot(const mrd_dispatch_event *ev, gw_role role, const char *user, char *buf,
                       size_t cap) {
  const char *rider, *driver;
  gw_event_targets(ev, &rider, &driver);
  const char *mine = role == GW_ROLE_DRIVER ? driver : rider;
  if (!mine || strcmp(mine, user) != 0) return 0;
  return gw_format_event(ev, role, buf, cap);
}
