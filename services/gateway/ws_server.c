/*
 * ws_server.c: the gateway's WebSocket side on libwebsockets: the lws context and its event
 * loop (libev's epoll, or lws's poll), the WebSocket protocol callback of /v1/driver,
 * /v1/rider and /v1/ops, the Kafka wake-up and the timers. HTTP is http_server.c's callback;
 * what a client message means is handle.c's (pure): this file moves bytes and carries plans
 * out.
 *
 * Admission and authentication happen before the upgrade
 * (LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION): 503 at the connection cap, 429 for an address
 * opening connections too fast, 401 for a missing, bad or too long-lived token, 403 for the
 * wrong role. The token is verified there, once per connection: its role, sub and expiry
 * stay in the connection. A user has one live connection per role: the newest wins, the
 * older gets a close frame 4002. A connection is closed with 4001 when its token expires.
 * The rate limits are per user (budget.h), bytes of every frame (pings included) count.
 * Messages are accumulated over fragments (4 KiB at most), taken in and planned by handle.c
 * and the plan carried out (run_plan); each connection has a bounded send queue where nearby
 * answers are dropped first and trip events never; a client whose queue stays full is
 * closed. Connections are found by (role, user) in a hash table for event delivery. Not
 * thread-safe: the lws loop only.
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received (glibc's lacks it) */
#include <netinet/in.h>
#include <sys/socket.h>

#include "auth.h"
#include "checks.h"
#include "mrd/clock.h"
#include "mrd/hash.h"
#include "mrd/jwt.h"
#include "mrd/log.h"
#include "ops_io.h"
#include "server.h"

/* lws_write()'s close opcode: private in lws 4.1's headers ("LWS_WRITE_CLOSE is handled by
 * lws_close_reason()"), but the value is part of its ABI (the public enum skips 4 for it)
 * and lws's ws role writes it as a close frame. */
#define GW_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)
/* RFC 6455 1012 "Service Restart" (IANA registry): the server is going away, the client should
 * reconnect; lws 4.1 has no name for it. */
#define GW_CLOSE_SERVICE_RESTART 1012u

int64_t gw_now_ms(void) { return mrd_wall_ms(); }

int64_t gw_now_us(void) { return mrd_wall_us(); }

/* ---- traces (mrd/trace.h) ------------------------------------------------------------- */

void gw_random_bytes(gw_server *s, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (size_t k = 0; k < 8 && i + k < n; k++) out[i + k] = (uint8_t)(z >> (8 * k));
  }
}

void gw_trace_finish(gw_server *s, mrd_trace *t, int64_t sent_us) {
  t->stamp_us[MRD_STAMP_GATEWAY_SENT] = sent_us;
  double hops[MRD_HOP_COUNT], total = 0;
  int rc = mrd_trace_hops_ms(t, GW_TRACE_SKEW_US, hops, &total);
  if (rc == MRD_TRACE_ESKEW) {
    mrd_counter_inc(s->m.traces_skewed);
    return;
  }
  if (rc != MRD_TRACE_OK) {
    mrd_counter_inc(s->m.traces_broken);
    return;
  }
  for (int h = 0; h < MRD_HOP_COUNT; h++) mrd_histogram_observe(s->m.hop[h], hops[h] / 1000.0);
  mrd_histogram_observe(s->m.traced, total / 1000.0);
  mrd_counter_inc(s->m.traces_ok);
  if (s->cfg->slow_trace_ms > 0 && total >= s->cfg->slow_trace_ms) {
    /* the slow request log: which hop took the time, under the id a tracing tool knows */
    char tp[64];
    if (mrd_traceparent_format(&t->tp, tp, sizeof tp) < 0) snprintf(tp, sizeof tp, "-");
    mrd_log_warn("slow_request",
                 "traceparent=%s total_ms=%.2f gateway_in=%.2f commands_kafka=%.2f "
                 "dispatch_match=%.2f dispatch_out=%.2f events_kafka=%.2f gateway_out=%.2f",
                 tp, total, hops[MRD_HOP_GATEWAY_IN], hops[MRD_HOP_COMMANDS_KAFKA],
                 hops[MRD_HOP_DISPATCH_MATCH], hops[MRD_HOP_DISPATCH_OUT],
                 hops[MRD_HOP_EVENTS_KAFKA], hops[MRD_HOP_GATEWAY_OUT]);
  }
}

/* ---- registry of connections by (role, user) ---------------------------------------- */

static size_t bucket_of(gw_role role, const char *user) {
  return (size_t)(mrd_fnv1a64_str(MRD_FNV1A64_SEED ^ (uint64_t)role, user) % GW_REGISTRY_BUCKETS);
}

static void registry_add(gw_server *s, gw_conn *c) {
  size_t b = bucket_of(c->role, c->user);
  c->next_in_bucket = s->registry[b];
  s->registry[b] = c;
}

static void registry_remove(gw_server *s, gw_conn *c) {
  gw_conn **pp = &s->registry[bucket_of(c->role, c->user)];
  while (*pp && *pp != c) pp = &(*pp)->next_in_bucket;
  if (*pp) *pp = c->next_in_bucket;
}

/* ---- sending ------------------------------------------------------------------------- */

static int out_kind(const char *json) {
  static const char *const kinds[] = {"ack",       "error", "offer", "matched",
                                      "no_driver", "trip",  "nearby"};
  const char *t = strstr(json, "\"type\":\"");
  if (t) {
    t += 8;
    for (int i = 0; i < 7; i++) {
      size_t n = strlen(kinds[i]);
      if (strncmp(t, kinds[i], n) == 0 && t[n] == '"') return i;
    }
  }
  return 7;
}

static void out_free(gw_out *o) {
  free(o->buf);
  free(o->trace);
  o->buf = NULL;
  o->trace = NULL;
}

/* Queue json for c; trace (may be NULL) is copied and finished when the message is written. */
static void send_traced(gw_server *s, gw_conn *c, const char *json, size_t len, bool droppable,
                        const mrd_trace *trace) {
  if (!c->ws || c->closing || c->close_sent) return; /* nothing after our close frame */
  int cap = s->cfg->sendq;
  if (c->q_len == cap) {
    /* full: drop the oldest droppable message, or this one if it is droppable */
    int victim = -1;
    for (int i = 0; i < c->q_len; i++) {
      if (c->q[(c->q_head + i) % cap].droppable) {
        victim = i;
        break;
      }
    }
    if (victim < 0 && droppable) {
      mrd_counter_inc(s->m.dropped_nearby);
      return;
    }
    if (victim < 0) { /* only events queued: this client cannot keep up */
      c->closing = true;
      c->close_why = "send queue full";
      mrd_counter_inc(s->m.closed_slow);
      lws_callback_on_writable(c->wsi);
      return;
    }
    mrd_counter_inc(s->m.dropped_nearby);
    out_free(&c->q[(c->q_head + victim) % cap]);
    for (int i = victim; i + 1 < c->q_len; i++)
      c->q[(c->q_head + i) % cap] = c->q[(c->q_head + i + 1) % cap];
    c->q_len--;
  }
  unsigned char *buf = malloc(LWS_PRE + len);
  if (!buf) return;
  memcpy(buf + LWS_PRE, json, len);
  mrd_trace *t = NULL;
  if (trace && (t = malloc(sizeof *t)) != NULL) *t = *trace; /* no memory: sent untraced */
  c->q[(c->q_head + c->q_len) % cap] = (gw_out){buf, len, droppable, t};
  c->q_len++;
  c->n_out++;
  if (c->q_len == cap && !c->blocked_since_ms) c->blocked_since_ms = gw_now_ms();
  mrd_counter_inc(s->m.out_by_type[out_kind(json)]);
  lws_callback_on_writable(c->wsi);
}

void gw_send(gw_server *s, gw_conn *c, const char *json, size_t len, bool droppable) {
  send_traced(s, c, json, len, droppable, NULL);
}

/* Write what is queued for c, as many whole messages as fit in one batch, in one call: each
 * message becomes its own unmasked WebSocket text frame (RFC 6455 5.2: FIN, opcode 1, the
 * 7- or 16-bit length), and the frames go out together as raw bytes, so that the acks that
 * one Kafka delivery report releases for a connection cost one send() and one writable
 * round instead of one each. lws buffers whatever the socket does not take and sends it
 * before the next writable callback. Messages are at most a few KiB (error, event, nearby:
 * each below 64 KiB). Returns -1 when the connection must close. */
#define GW_WRITE_BATCH 16384
static int write_queued(gw_server *s, gw_conn *c) {
  static unsigned char batch[LWS_PRE + GW_WRITE_BATCH];
  unsigned char *p = batch + LWS_PRE, *end = p + GW_WRITE_BATCH;
  int cap = s->cfg->sendq;
  mrd_trace *traces[16]; /* of the messages in this batch: finished once it is written */
  int n_traces = 0;
  while (c->q_len) {
    gw_out *o = &c->q[c->q_head];
    size_t hdr = o->len < 126 ? 2 : 4;
    if (o->len >= 65536) return -1; /* never built: formats are bounded far below */
    if ((size_t)(end - p) < hdr + o->len) {
      if (p == batch + LWS_PRE) return -1; /* cannot happen: GW_WRITE_BATCH > any message */
      break;
    }
    *p++ = 0x81;
    if (hdr == 2) {
      *p++ = (unsigned char)o->len;
    } else {
      *p++ = 126;
      *p++ = (unsigned char)(o->len >> 8);
      *p++ = (unsigned char)o->len;
    }
    memcpy(p, o->buf + LWS_PRE, o->len);
    p += o->len;
    if (o->trace && n_traces < 16) {
      traces[n_traces++] = o->trace;
      o->trace = NULL;
    }
    out_free(o);
    c->q_head = (c->q_head + 1) % cap;
    c->q_len--;
  }
  size_t n = (size_t)(p - (batch + LWS_PRE));
  if (n == 0) return 0;
  int rc = lws_write(c->wsi, batch + LWS_PRE, n, LWS_WRITE_RAW) < (int)n ? -1 : 0;
  if (n_traces) {
    int64_t sent_us = gw_now_us();
    for (int i = 0; i < n_traces; i++) {
      if (rc == 0) gw_trace_finish(s, traces[i], sent_us);
      free(traces[i]);
    }
  }
  return rc;
}

void gw_send_error(gw_server *s, gw_conn *c, const gw_error *err) {
  char buf[1024];
  int n = gw_format_error(err, buf, sizeof buf);
  mrd_counter_inc(s->m.errors[err->code < GW_CODE_COUNT ? err->code : GW_INTERNAL]);
  if (n > 0) gw_send(s, c, buf, (size_t)n, false);
}

void gw_deliver_event(gw_server *s, const mrd_dispatch_event *ev) {
  const char *ids[2];
  gw_event_targets(ev, &ids[GW_ROLE_RIDER], &ids[GW_ROLE_DRIVER]);
  int64_t now = gw_now_ms();
  for (int role = 0; role < 2; role++) {
    if (!ids[role]) continue;
    /* kept for his next connection, should he connect before Redis shows it (recent.h) */
    if (gw_recent_put(s->recent, (gw_role)role, ids[role], ev, now) != 0)
      mrd_counter_inc(s->m.recent_full);
    char buf[2048];
    int n = gw_format_event(ev, (gw_role)role, buf, sizeof buf);
    if (n <= 0) continue;
    /* the rider asked: his copy ends the trace (the driver's goes out in the same turn) */
    const mrd_trace *trace =
        role == GW_ROLE_RIDER && ev->trace.present && ev->trace.stamp_us[MRD_STAMP_GATEWAY_CONSUMED]
            ? &ev->trace
            : NULL;
    for (gw_conn *c = s->registry[bucket_of((gw_role)role, ids[role])]; c; c = c->next_in_bucket) {
      if (c->role == (gw_role)role && strcmp(c->user, ids[role]) == 0) {
        send_traced(s, c, buf, (size_t)n, false, trace);
        trace = NULL; /* once, should the rider have two connections */
      }
    }
  }
}

/* ---- auth ---------------------------------------------------------------------------- */

/* The upgrade's path and token (the bearer token, else the token= argument) from lws's
 * headers, judged by auth.c's gw_upgrade_check: 0 with c's role, user and exp_s, or the
 * HTTP status to answer with *why (a literal). */
static int authenticate(gw_server *s, struct lws *wsi, gw_conn *c, const char **why) {
  char uri[128];
  if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0) uri[0] = '\0';
  static char tok[MRD_JWT_MAX_TOKEN + 16];
  const char *token = NULL;
  int n = lws_hdr_copy(wsi, tok, sizeof tok, WSI_TOKEN_HTTP_AUTHORIZATION);
  if (n > 7 && strncmp(tok, "Bearer ", 7) == 0)
    token = tok + 7;
  else
    token = lws_get_urlarg_by_name(wsi, "token=", tok, sizeof tok);
  gw_upgrade_claims cl;
  gw_upgrade_verdict v = gw_upgrade_check(uri, token, s->cfg->jwt_secret, gw_now_ms() / 1000,
                                          s->cfg->token_max_lifetime_ms / 1000, &cl, why);
  if (v != GW_UPGRADE_OK) return (int)v;
  c->role = cl.role;
  memcpy(c->user, cl.user, sizeof c->user);
  c->exp_s = cl.exp_s;
  return 0;
}

/* ---- limits (issue 13): admission, budgets, token expiry, close and header errors ----- */

int gw_limits_start(gw_server *s) {
  const gw_config *k = s->cfg;
  gw_budget_limits lim[2];
  memset(lim, 0, sizeof lim);
  lim[GW_ROLE_DRIVER] = (gw_budget_limits){k->driver_rate,
                                           k->driver_burst,
                                           k->control_rate,
                                           k->control_burst,
                                           k->rx_bytes_rate,
                                           k->rx_bytes_burst,
                                           (uint32_t)k->flood_warnings,
                                           k->flood_window_ms};
  lim[GW_ROLE_RIDER] = (gw_budget_limits){k->rider_rate,
                                          k->rider_burst,
                                          k->rider_rate,
                                          k->rider_burst,
                                          k->rx_bytes_rate,
                                          k->rx_bytes_burst,
                                          (uint32_t)k->flood_warnings,
                                          k->flood_window_ms};
  s->budgets = gw_budgets_new(lim);
  s->iprate = gw_iprate_new(k->ip_conn_rate, k->ip_conn_burst);
  s->recent = gw_recent_new(GW_RECENT_CAP, GW_RECENT_KEEP_MS);
  mrd_log_gate_init(&s->refusal_log, k->log_rate, k->log_rate < 1 ? 1 : k->log_rate, gw_now_ms());
  if (!s->budgets || !s->iprate || !s->recent) {
    mrd_log_error("limits", "err=%s", "out of memory");
    return MRD_ENOMEM;
  }
  return 0;
}

void gw_limits_stop(gw_server *s) {
  gw_budgets_free(s->budgets);
  gw_iprate_free(s->iprate);
  gw_recent_free(s->recent);
  s->budgets = NULL;
  s->iprate = NULL;
  s->recent = NULL;
}

/* Send what is queued for c, then a close frame code/reason (a literal, < 124 bytes), then
 * wait for the client's close (5 s at most); c takes no more work meanwhile. */
static void close_with(gw_conn *c, uint16_t code, const char *reason) {
  if (c->drain_then_close || c->closing) return;
  c->drain_then_close = true;
  c->close_code = code;
  c->close_reason = reason;
  lws_callback_on_writable(c->wsi);
  /* A connection being closed takes no more work and, once replaced, gets no events: it
   * must not outlive this, whatever becomes of its writes (the close frame's own 5 s wait
   * replaces this bound once the frame is out). The slow-consumer check only sees the
   * registry, which a replaced connection has left. */
  lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, GW_CLOSE_DRAIN_S);
}

/* The newest connection of a user and role wins: every older one leaves the registry at
 * once (events go to the new one only) and is closed with 4002 after what it has queued. */
static void replace_older(gw_server *s, gw_conn *c) {
  for (gw_conn *o = s->registry[bucket_of(c->role, c->user)]; o;) {
    gw_conn *next = o->next_in_bucket;
    if (o != c && o->role == c->role && strcmp(o->user, c->user) == 0) {
      registry_remove(s, o);
      o->in_registry = false;
      mrd_counter_inc(s->m.closed_replaced);
      close_with(o, 4002, "replaced by a newer connection");
    }
    o = next;
  }
}

/* Charge what c's socket received since the last charge to the user's byte budget, and
 * pause, resume or close the user's connection accordingly. lws answers pings itself and
 * never shows them to the gateway: the kernel's count of received bytes sees them. */
static void rx_charge(gw_server *s, gw_conn *c, int64_t now) {
  if (!c->ws || !c->budget || c->drain_then_close || c->closing) return;
  uint64_t got = 0, sent = 0;
  if (!gw_socket_bytes(c->wsi, &got, &sent)) return;
  uint64_t delta = got > c->rx_bytes_seen ? got - c->rx_bytes_seen : 0;
  c->rx_bytes_seen = got;
  c->rx_checked_ms = now;
  gw_rx_verdict v = gw_budget_rx_charge(c->budget, delta, now);
  if (v == GW_RX_CLOSE) {
    mrd_counter_inc(s->m.closed_flood);
    mrd_log_info("closed_flood", "role=%s user=%s why=bytes",
                 c->role == GW_ROLE_DRIVER ? "driver" : "rider", c->user);
    close_with(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "flood");
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, 2); /* it is not read any more */
  } else if (v == GW_RX_PAUSE && !c->rx_paused) {
    c->rx_paused = true;
    mrd_counter_inc(s->m.rx_paused);
    lws_rx_flow_control(c->wsi, 0);
  } else if (v == GW_RX_OK && c->rx_paused) {
    c->rx_paused = false;
    lws_rx_flow_control(c->wsi, 1);
  }
}

/* Every MERIDIAN_GW_RX_CHECK_MS / GW_RX_SLICES: charge the connections of the registry's next
 * slice (a ping flood raises no callback), each one a getsockopt. A slice at a time: a sweep
 * of every socket at once stopped the loop for milliseconds at thousands of connections (a
 * system call each), and a request that came meanwhile waited. One charged by its own message
 * within half the period is skipped: it is charged again soon enough either way. */
static int64_t rx_slice_us(const gw_server *s) {
  int64_t us = s->cfg->rx_check_ms * 1000 / GW_RX_SLICES;
  return us > 1000 ? us : 1000;
}

static void rx_check_slice(gw_server *s) {
  int64_t now = gw_now_ms();
  const size_t per = GW_REGISTRY_BUCKETS / GW_RX_SLICES;
  const size_t b0 = (size_t)s->rx_slice * per;
  for (size_t b = b0; b < b0 + per; b++)
    for (gw_conn *c = s->registry[b]; c; c = c->next_in_bucket)
      if (now - c->rx_checked_ms >= s->cfg->rx_check_ms / 2) rx_charge(s, c, now);
  s->rx_slice = (s->rx_slice + 1) % GW_RX_SLICES;
}

/* A connection whose token's exp has passed is closed with 4001 after what it has queued. */
static void close_if_expired(gw_server *s, gw_conn *c, int64_t now_s) {
  if (c->exp_s && now_s >= c->exp_s && !c->drain_then_close && !c->closing) {
    mrd_counter_inc(s->m.closed_expired);
    close_with(c, 4001, "token expired");
  }
}

/* Once a second: close connections whose token expired (4001): drivers' and riders' (the
 * registry) and the ops stream's (never in the registry); drop budgets and address buckets
 * that no longer matter. */
static void limits_housekeeping(gw_server *s, int64_t now_ms) {
  int64_t now_s = now_ms / 1000;
  for (size_t b = 0; b < GW_REGISTRY_BUCKETS; b++)
    for (gw_conn *c = s->registry[b]; c; c = c->next_in_bucket) close_if_expired(s, c, now_s);
  gw_conn *const *ops = NULL;
  int n_ops = gw_ops_io_conns(s, &ops);
  for (int i = 0; i < n_ops; i++) close_if_expired(s, ops[i], now_s);
  gw_budgets_sweep(s->budgets, now_ms);
  gw_iprate_sweep(s->iprate, now_ms);
  mrd_gauge_set(s->m.budgets, (double)gw_budgets_count(s->budgets));
}

/* ---- messages: the plan of handle.c, carried out ------------------------------------- */

/* Carry out plan p for c, in order: replies into c's send queue, records to Kafka (a refused
 * write answered as the record says), the plan's notes into the metrics. */
static void run_plan(gw_server *s, gw_conn *c, const gw_plan *p) {
  if (p->notes & GW_NOTE_RATE_LIMITED) mrd_counter_inc(s->m.rate_limited[c->role]);
  if (p->notes & GW_NOTE_REQUEST_RESEND) mrd_counter_inc(s->m.request_resends);
  if (p->notes & GW_NOTE_REQUEST_CONFLICT) mrd_counter_inc(s->m.request_conflicts);
  if (p->notes & GW_NOTE_UNROUTED) mrd_counter_inc(s->m.unrouted);
  const gw_request_key key = {p->request_id, p->rider, p->request_value};
  for (size_t i = 0; i < p->n; i++) {
    const gw_action *a = &p->act[i];
    switch (a->kind) {
    case GW_ACT_ERROR: gw_send_error(s, c, &a->u.error); break;
    case GW_ACT_TEXT:
      gw_send(s, c, p->text + a->u.text.off, a->u.text.len, a->u.text.droppable);
      break;
    case GW_ACT_FORGET: gw_request_forget(s, &key); break;
    case GW_ACT_PRODUCE: {
      const gw_record *r = &a->u.record;
      int rc = gw_kafka_produce(s, c, r->topic, r->partition, r->key, r->payload, r->len,
                                r->acked ? p->msg->ref : NULL, r->forget ? &key : NULL);
      if (rc == 0) break;
      if (r->forget) gw_request_forget(s, &key); /* it never reaches Kafka */
      if (r->on_fail == GW_FAIL_COUNT) {
        mrd_counter_inc(s->m.kafka_failed); /* a lost halo copy: the next ping brings another */
        break;
      }
      gw_error e;
      gw_plan_write_failed(p, r, rc, &e);
      gw_send_error(s, c, &e);
      if (r->on_fail == GW_FAIL_REPLY_STOP) return;
      break;
    }
    }
  }
}

/* A complete message arrived: intake (budget, parse), then its plan. Returns -1 to close the
 * connection. */
static int on_message(gw_server *s, gw_conn *c) {
  if (c->drain_then_close || c->closing) return 0; /* being closed: take no more work */
  int64_t rx_us = gw_now_us();
  gw_msg m;
  gw_error e;
  c->n_in++;
  c->last_in_ms = rx_us / 1000;
  gw_intake in = gw_intake_frame(c->rx, c->rx_len, c->rx_too_large, c->rx_binary, c->role, s->area,
                                 c->budget, rx_us / 1000, &m, &e);
  mrd_counter_inc(s->m.in[in.counted]);
  if (in.rate_limited) mrd_counter_inc(s->m.rate_limited[c->role]);
  if (in.verdict == GW_INTAKE_FLOOD) {
    mrd_counter_inc(s->m.closed_flood);
    mrd_log_info("closed_flood", "role=%s user=%s", c->role == GW_ROLE_DRIVER ? "driver" : "rider",
                 c->user);
    /* the warnings already queued go out first, then the close (SERVER_WRITEABLE) */
    close_with(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "flood");
    return 0;
  }
  if (in.verdict == GW_INTAKE_REFUSE) {
    gw_send_error(s, c, &e);
    return 0;
  }
  gw_handle_config hc = {s->cfg->halo_m, s->cfg->nearby_max};
  gw_ports ports = gw_store_ports(s);
  gw_handle(&m, c->role, c->user, s->map, &hc, &ports, rx_us, s->plan);
  run_plan(s, c, s->plan);
  return 0;
}

/* ---- the WebSocket protocol callback ---------------------------------------------------- */

/* The upgrade of a WebSocket (LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION): the head's size,
 * admission (it costs no HMAC), shutting down, then the token, verified here and only here:
 * its role, sub and expiry stay in c for the connection's life. 0 admits, -1 refuses (the
 * raw HTTP answer written). */
static int filter_upgrade(gw_server *s, struct lws *wsi, gw_conn *c) {
  if (gw_refuse_large_headers(s, wsi, 0)) return -1;
  char ip[GW_IP_MAX + 1] = "";
  lws_get_peer_simple(wsi, ip, sizeof ip);
  gw_admit_verdict av = gw_admit(s->iprate, ip, s->open_ws, s->cfg->max_conns, gw_now_ms());
  if (av != GW_ADMIT_OK) {
    gw_refuse_http(wsi, (int)av);
    gw_log_refusal(s, wsi, (int)av,
                   av == GW_ADMIT_FULL ? "connection cap reached"
                                       : "address over its connection rate");
    return -1;
  }
  if (s->stopping) { /* shutting down: no new connections (the client retries elsewhere) */
    gw_refuse_http(wsi, 503);
    gw_log_refusal(s, wsi, 503, "shutting down");
    return -1;
  }
  if (!c) { /* lws gives every upgrade the protocol's session data: cannot happen */
    gw_refuse_http(wsi, 503);
    gw_log_refusal(s, wsi, 503, "no session data for the connection");
    return -1;
  }
  memset(c, 0, sizeof *c);
  c->wsi = wsi;
  c->is_ops = gw_ops_io_is_ops(wsi);
  const char *why = NULL;
  int status =
      c->is_ops ? gw_ops_io_filter(s, wsi, c->user, &c->exp_s) : authenticate(s, wsi, c, &why);
  if (status) {
    gw_refuse_http(wsi, status);
    gw_log_refusal(s, wsi, status,
                   why ? why : "ops stream: bad token, wrong role or too many ops connections");
    return -1;
  }
  c->authenticated = true;
  return 0;
}

/* The upgrade is done (c was filled by filter_upgrade): an ops connection joins the ops
 * stream; an app's gets its send queue and its user's budget, replaces the user's older
 * connection, and learns the state of its trip if one is under way. -1 closes. */
static int on_established(gw_server *s, gw_conn *c, struct lws *wsi) {
  if (!c || !c->authenticated) { /* every upgrade is filtered first */
    if (s->cfg->log_conns) mrd_log_warn("conn_unfiltered", "session=%d", c != NULL);
    return -1;
  }
  c->wsi = wsi;
  if (c->is_ops) return gw_ops_io_open(s, c) == 0 ? 0 : -1;
  int64_t now = gw_now_ms();
  c->ref = calloc(1, sizeof *c->ref);
  c->q = calloc((size_t)s->cfg->sendq, sizeof *c->q);
  c->budget = c->ref && c->q ? gw_budgets_acquire(s->budgets, c->role, c->user, now) : NULL;
  if (!c->budget) { /* out of memory: nothing of it is kept (c->ws stays false) */
    if (s->cfg->log_conns) mrd_log_warn("conn_no_memory", "user=%s", c->user);
    free(c->ref);
    free(c->q);
    c->ref = NULL;
    c->q = NULL;
    return -1;
  }
  c->ref->conn = c;
  c->ref->refs = 1;
  c->ws = true;
  uint64_t sent = 0;
  gw_socket_bytes(wsi, &c->rx_bytes_seen, &sent); /* the handshake is not charged */
  c->rx_checked_ms = now;
  c->opened_ms = now;
  s->open_ws++;
  if (s->cfg->log_conns) {
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int port = getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&peer, &pl) == 0
                   ? ntohs(peer.sin_port)
                   : -1;
    mrd_log_info("conn_open", "role=%s user=%s port=%d",
                 c->role == GW_ROLE_DRIVER ? "driver" : "rider", c->user, port);
  }
  replace_older(s, c);
  registry_add(s, c);
  c->in_registry = true;
  mrd_gauge_add(s->m.conns[c->role], 1);
  /* a client that comes back during a trip learns its state at once */
  mrd_dispatch_event ev;
  bool found = false;
  if (gw_trip_snapshot(s, c->role, c->user, &ev, &found) != 0) found = false;
  /* the event he was last sent, if Redis does not show it yet (recent.h) */
  const mrd_dispatch_event *show =
      gw_recent_pick(s->recent, c->role, c->user, found ? &ev : NULL, now);
  if (show && show != &ev) mrd_counter_inc(s->m.snapshots_recent);
  if (show) {
    char buf[2048];
    int n = gw_format_snapshot(show, c->role, c->user, buf, sizeof buf);
    if (n > 0) gw_send(s, c, buf, (size_t)n, false);
  }
  return 0;
}

/* A fragment of a frame: charge the socket's bytes at most every MERIDIAN_GW_RX_CHECK_MS,
 * accumulate (4 KiB at most; beyond, the frame is too_large), and hand a whole message to
 * the ops stream or to on_message. -1 closes. */
static int on_receive(gw_server *s, gw_conn *c, struct lws *wsi, const void *in, size_t len) {
  if (!c->ws) return -1;
  if (lws_is_first_fragment(wsi)) {
    int64_t now = gw_now_ms();
    if (now - c->rx_checked_ms >= s->cfg->rx_check_ms) rx_charge(s, c, now);
    c->rx_len = 0;
    c->rx_too_large = false;
    c->rx_binary = lws_frame_is_binary(wsi);
  }
  if (c->rx_len + len > sizeof c->rx)
    c->rx_too_large = true;
  else if (!c->rx_too_large) {
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
  }
  if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
    return c->ops_view ? gw_ops_io_receive(s, c) : on_message(s, c);
  return 0;
}

/* The socket can take more: a slow consumer is closed 1008; what is queued goes out in one
 * write; a connection being closed sends its close frame once its queue is empty. -1 closes. */
static int on_writeable(gw_server *s, gw_conn *c, struct lws *wsi) {
  if (c->closing) {
    lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"slow consumer", 13);
    return -1;
  }
  if (c->q_len == 0) {
    if (c->drain_then_close && !c->close_sent) {
      /* Send the close frame and wait for the client's, which lws answers and then
       * closes. lws_close_reason() + return -1 closes the socket at once: a flooding
       * client is still sending then, the unread bytes make the kernel reset the
       * connection and the client loses the warnings and the close frame (seen in 3 of
       * 8 tries here). A client that never answers is cut after 5 s. */
      unsigned char frame[LWS_PRE + 125];
      size_t rn = strnlen(c->close_reason ? c->close_reason : "", 123);
      frame[LWS_PRE] = (unsigned char)(c->close_code >> 8);
      frame[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xff);
      memcpy(frame + LWS_PRE + 2, c->close_reason ? c->close_reason : "", rn);
      if (lws_write(wsi, frame + LWS_PRE, 2 + rn, GW_LWS_WRITE_CLOSE) < (int)(2 + rn)) return -1;
      c->close_sent = true;
      lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 5);
    }
    return 0;
  }
  if (write_queued(s, c) != 0) return -1;
  c->blocked_since_ms = 0;
  if (c->q_len || (c->drain_then_close && !c->close_sent)) lws_callback_on_writable(wsi);
  return 0;
}

/* The connection is gone: out of the registry (or the ops stream), its budget given back,
 * its queue freed; Kafka delivery reports still pending find c->ref->conn == NULL. */
static void on_closed(gw_server *s, gw_conn *c) {
  if (c && c->ops_view)
    gw_ops_io_close(s, c); /* ops: never in the registry */
  else if (!c || !c->ws)
    return;
  else {
    if (s->cfg->log_conns) {
      int64_t now = gw_now_ms();
      mrd_log_info("conn_closed",
                   "role=%s user=%s open_s=%.1f in=%u out=%u last_in_s=%.1f queued=%d paused=%d "
                   "replaced=%d closing=%d close_code=%u",
                   c->role == GW_ROLE_DRIVER ? "driver" : "rider", c->user,
                   (double)(now - c->opened_ms) / 1000.0, c->n_in, c->n_out,
                   c->last_in_ms ? (double)(now - c->last_in_ms) / 1000.0 : -1.0, c->q_len,
                   (int)c->rx_paused, (int)!c->in_registry, (int)c->closing,
                   (unsigned)c->close_code);
    }
    if (c->in_registry) registry_remove(s, c);
    c->in_registry = false;
    gw_budgets_release(s->budgets, c->budget);
    c->budget = NULL;
    s->open_ws--;
    mrd_gauge_add(s->m.conns[c->role], -1);
  }
  if (!c->ws) return;
  for (int i = 0; i < c->q_len; i++) out_free(&c->q[(c->q_head + i) % s->cfg->sendq]);
  free(c->q);
  c->q = NULL;
  c->ref->conn = NULL;
  if (--c->ref->refs == 0) free(c->ref);
  c->ref = NULL;
  c->ws = false;
}

/* The WebSocket protocol ("meridian", the vhost's default, so that upgrades without a
 * subprotocol land here): the upgrade, the established connection, frames in, queued
 * messages out, close. Until lws routes a connection's first request it gives it to the
 * default protocol too: the HTTP-phase reasons that can arrive then are answered as the HTTP
 * callback answers them (http_server.c), with no HTTP session yet. */
static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len) {
  gw_server *s = lws_context_user(lws_get_context(wsi));
  gw_conn *c = user;
  switch (reason) {
  case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
  case LWS_CALLBACK_HTTP_FILE_COMPLETION: return gw_http_callback(wsi, reason, NULL, in, len);
  case LWS_CALLBACK_HTTP:
    /* a first request of the /ops mount that lws has no file for: not found, and close
     * (the HTTP callback's own 404 needs its session data, which lws did not make) */
    gw_refuse_http(wsi, 404);
    return -1;
  case LWS_CALLBACK_CLOSED_HTTP:
    /* no session data: closed before a whole request (else a refused upgrade, answered) */
    if (!c) gw_note_header_error(s, wsi);
    break;
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: return filter_upgrade(s, wsi, c);
  case LWS_CALLBACK_ESTABLISHED: return on_established(s, c, wsi);
  case LWS_CALLBACK_RECEIVE: return on_receive(s, c, wsi, in, len);
  case LWS_CALLBACK_SERVER_WRITEABLE: return on_writeable(s, c, wsi);
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    /* RFC 6455 7.4: a close frame with a code a peer may not send is a protocol error */
    if (!gw_close_payload_valid(in, len)) {
      mrd_counter_inc(s->m.closed_bad_close);
      lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"invalid close code",
                       18);
      return -1;
    }
    break;
  case LWS_CALLBACK_CLOSED: on_closed(s, c); break;
  default: break;
  }
  return 0;
}

/* ---- Kafka wake-ups and timers ---------------------------------------------------------- */

/* A fallback: librdkafka wakes the loop through the pipe (wake_cb); this timer also runs
 * at once while a poll left events behind (its bound reached). Returns the delay to the
 * next run in us. */
static int64_t kafka_poll_turn(gw_server *s) { return gw_kafka_poll(s) ? 1 : s->cfg->poll_us; }

/* Every epoch_check_ms: the shard-map epoch, and clients blocked too long. */
static void housekeeping(gw_server *s) {
  gw_epoch_check(s);
  int64_t now = gw_now_ms();
  limits_housekeeping(s, now);
  for (size_t b = 0; b < GW_REGISTRY_BUCKETS; b++) {
    for (gw_conn *c = s->registry[b]; c; c = c->next_in_bucket) {
      if (c->blocked_since_ms && now - c->blocked_since_ms > s->cfg->blocked_ms && !c->closing) {
        c->closing = true;
        mrd_counter_inc(s->m.closed_slow);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 1); /* cannot even write a close */
      }
    }
  }
}

/* On lws's poll() loop the timers are lws's (sul). */
static void on_poll(lws_sorted_usec_list_t *sul) {
  gw_server *s = lws_container_of(sul, gw_server, sul_poll);
  lws_sul_schedule(s->ctx, 0, &s->sul_poll, on_poll, kafka_poll_turn(s));
}

static void on_housekeeping(lws_sorted_usec_list_t *sul) {
  gw_server *s = lws_container_of(sul, gw_server, sul_housekeeping);
  housekeeping(s);
  lws_sul_schedule(s->ctx, 0, &s->sul_housekeeping, on_housekeeping,
                   s->cfg->epoch_check_ms * LWS_US_PER_MS);
}

/* On the libev loop the timers are libev's: lws 4.1.6's libev glue arms its one timer only
 * after I/O and sets it while it may still be running (ev_timer_set on an active watcher),
 * so an lws timer can fire late when the loop is quiet (measured here: the bench client's
 * 1 ms tick stalled for seconds at 1,000 updates/s). The Kafka fallback timer also pokes
 * lws (lws_cancel_service), which makes lws run its own due timers (close and handshake
 * timeouts) at least every MERIDIAN_GW_POLL_US. */
static void on_ev_poll(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  gw_server *s = w->data;
  int64_t us = kafka_poll_turn(s);
  if (us > 1) lws_cancel_service(s->ctx);
  ev_timer_set(w, us > 1 ? (double)us / 1e6 : 0., 0.);
  ev_timer_start(loop, w);
}

static void on_rx(lws_sorted_usec_list_t *sul) {
  gw_server *s = lws_container_of(sul, gw_server, sul_rx);
  rx_check_slice(s);
  lws_sul_schedule(s->ctx, 0, &s->sul_rx, on_rx, rx_slice_us(s));
}

static void on_ev_rx(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  rx_check_slice(w->data);
}

static void on_ev_housekeeping(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  housekeeping(w->data);
}

/* The read end of the Kafka wake pipe, adopted as a raw file: a queue got work. */
static int wake_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len) {
  (void)user;
  (void)in;
  (void)len;
  if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION) { /* a client naming this protocol */
    gw_refuse_not_ours(lws_context_user(lws_get_context(wsi)), wsi);
    return -1;
  }
  if (reason == LWS_CALLBACK_ESTABLISHED) return -1; /* never: refused above */
  if (reason != LWS_CALLBACK_RAW_RX_FILE) return 0;
  gw_server *s = lws_context_user(lws_get_context(wsi));
  char buf[256];
  while (read(lws_get_socket_fd(wsi), buf, sizeof buf) > 0) {
  }
  if (gw_kafka_poll(s)) {
    if (s->loop) {
      ev_timer_stop(s->loop, &s->ev_poll);
      ev_timer_set(&s->ev_poll, 0., 0.);
      ev_timer_start(s->loop, &s->ev_poll);
    } else {
      lws_sul_schedule(s->ctx, 0, &s->sul_poll, on_poll, 1);
    }
  }
  return 0;
}

/* "http" is protocols[0], which lws binds a request no mount serves to; "meridian" is the
 * vhost's default (pvo "default"), which an upgrade without Sec-WebSocket-Protocol binds to:
 * the apps send none. */
static const struct lws_protocols protocols[] = {
    {"http", gw_http_callback, sizeof(gw_http_conn), 0, 0, NULL, 0},
    {"meridian", ws_callback, sizeof(gw_conn), GW_MAX_MESSAGE_BYTES, 0, NULL, 0},
    {"gw-kafka-wake", wake_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* No lws "validity" timer on the apps' connections: lws re-arms it on every frame received,
 * and its timers are one sorted list that each re-arm walks, O(connections): 8-10% of the
 * gateway's CPU at 6,000 drivers (perf, docs/capacity.md). A peer that vanished is found by
 * TCP keepalive instead, kept by the kernel at no cost per frame: probes after
 * GW_TCP_KEEPALIVE_IDLE_S without traffic, closed after GW_TCP_KEEPALIVE_PROBES unanswered
 * probes GW_TCP_KEEPALIVE_INTERVAL_S apart (lws's own default was a ping after 300 s without
 * traffic and a hang-up at 310 s). */
static const lws_retry_bo_t no_validity_timer = {.secs_since_valid_ping = 0,
                                                 .secs_since_valid_hangup = 0};
#define GW_TCP_KEEPALIVE_IDLE_S 300
#define GW_TCP_KEEPALIVE_INTERVAL_S 10
#define GW_TCP_KEEPALIVE_PROBES 3

static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo_meridian = {NULL, &pvo_default, "meridian", ""};

int gw_ws_start(gw_server *s) {
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.pvo = &pvo_meridian;
  info.port = s->cfg->port;
  info.iface = s->cfg->host;
  info.protocols = protocols;
  info.user = s;
  info.options =
      LWS_SERVER_OPTION_DISABLE_IPV6; /* UTF-8 is checked by the parser: an error, not a close */
  info.pt_serv_buf_size = 32 * 1024;
  info.max_http_header_data = 0; /* use data2: the 431 check is ours (refuse_large_headers) */
  info.max_http_header_data2 = GW_LWS_HEADER_BUFFER;
  info.fd_limit_per_thread = 0;
  info.retry_and_idle_policy = &no_validity_timer;
  info.ka_time = GW_TCP_KEEPALIVE_IDLE_S;
  info.ka_interval = GW_TCP_KEEPALIVE_INTERVAL_S;
  info.ka_probes = GW_TCP_KEEPALIVE_PROBES;
  /* lws's own loop poll()s every descriptor on each wake-up: O(connections), the largest
   * cost with 1000 busy connections (bench/README.md, gateway_bench). On epoll, through
   * lws's libev plugin with a loop of ours ("foreign"), a wake-up costs O(ready). Being
   * foreign, lws installs no signal watchers: SIGTERM stays mrd_signals' (an lws
   * event-loop plugin that installs its own SIGINT/SIGTERM watchers would take them). */
  void *foreign[1] = {NULL};
  if (strcmp(s->cfg->event_loop, "epoll") == 0) {
    s->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!s->loop) {
      mrd_log_error("event_loop", "err=%s", "libev could not create an epoll loop");
      return MRD_EIO;
    }
    /* lws 4.1.6's libev glue logs every watcher change at NOTICE (elops_io_ev), i.e. a
     * line per message: keep lws's errors and warnings only (NULL keeps mrd_log's emitter) */
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    foreign[0] = s->loop;
    info.foreign_loops = foreign;
    info.options |= LWS_SERVER_OPTION_LIBEV;
  }
  s->health = (mrd_health){gw_ready, s, s->m.reg};
  s->plan = gw_plan_new();
  if (!s->plan) {
    mrd_log_error("ws_start", "err=%s", "no memory for the message plan");
    return MRD_ENOMEM;
  }
  int ops = gw_ops_io_start(s);
  if (ops != 0) {
    mrd_log_error("ops_start", "err=%s", mrd_strerror(ops));
    return ops;
  }
  info.mounts = gw_ops_io_mount(s);
  s->ctx = lws_create_context(&info);
  if (!s->ctx) {
    mrd_log_error("listen_failed", "host=%s port=%d", s->cfg->host, s->cfg->port);
    return MRD_EIO;
  }
  if (s->wake_fd[0] >= 0) {
    lws_sock_file_fd_type fd;
    fd.filefd = s->wake_fd[0];
    struct lws_vhost *vh = lws_get_vhost_by_name(s->ctx, "default");
    if (!vh ||
        !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "gw-kafka-wake", NULL)) {
      mrd_log_error("kafka_wake_adopt", "err=%s", "lws could not adopt the pipe");
      return MRD_EIO;
    }
    s->wake_adopted = true; /* lws closes it with the context */
  }
  if (s->loop) {
    ev_timer_init(&s->ev_poll, on_ev_poll, (double)s->cfg->poll_us / 1e6, 0.);
    s->ev_poll.data = s;
    ev_timer_start(s->loop, &s->ev_poll);
    double hk_s = (double)s->cfg->epoch_check_ms / 1e3;
    ev_timer_init(&s->ev_housekeeping, on_ev_housekeeping, hk_s, hk_s);
    s->ev_housekeeping.data = s;
    ev_timer_start(s->loop, &s->ev_housekeeping);
    double rx_s = (double)rx_slice_us(s) / 1e6;
    ev_timer_init(&s->ev_rx, on_ev_rx, rx_s, rx_s);
    s->ev_rx.data = s;
    ev_timer_start(s->loop, &s->ev_rx);
  } else {
    lws_sul_schedule(s->ctx, 0, &s->sul_rx, on_rx, rx_slice_us(s));
    lws_sul_schedule(s->ctx, 0, &s->sul_poll, on_poll, s->cfg->poll_us);
    lws_sul_schedule(s->ctx, 0, &s->sul_housekeeping, on_housekeeping,
                     s->cfg->epoch_check_ms * LWS_US_PER_MS);
  }
  int timers = gw_ops_io_timers(s);
  if (timers != 0) {
    mrd_log_error("ops_timers", "err=%s", mrd_strerror(timers));
    return timers;
  }
  mrd_log_info("listening", "host=%s port=%d event_loop=%s", s->cfg->host, s->cfg->port,
               s->loop ? "epoll" : "poll");
  return 0;
}

int gw_ws_run_once(gw_server *s) {
  if (s->loop) {
    ev_run(s->loop, EVRUN_ONCE); /* returns on a signal too (EINTR) */
    return 0;
  }
  return lws_service(s->ctx, 0) < 0 ? MRD_EIO : 0;
}

size_t gw_ws_drain(gw_server *s) {
  size_t n = 0;
  for (size_t b = 0; b < GW_REGISTRY_BUCKETS; b++) {
    for (gw_conn *c = s->registry[b]; c; c = c->next_in_bucket) {
      if (c->closing || c->close_sent || c->drain_then_close) continue; /* on its way out */
      close_with(c, GW_CLOSE_SERVICE_RESTART, "service restart");
      c->going_away = true;
      n++;
    }
  }
  return n;
}

size_t gw_ws_open(const gw_server *s) {
  size_t n = 0;
  for (size_t b = 0; b < GW_REGISTRY_BUCKETS; b++)
    for (const gw_conn *c = s->registry[b]; c; c = c->next_in_bucket) n++;
  return n;
}

void gw_ws_stop(gw_server *s) {
  if (s->loop) {
    ev_timer_stop(s->loop, &s->ev_poll);
    ev_timer_stop(s->loop, &s->ev_housekeeping);
    ev_timer_stop(s->loop, &s->ev_rx);
  }
  if (s->ctx) lws_context_destroy(s->ctx); /* closes connections: no more work taken */
  s->ctx = NULL;
  gw_ops_io_stop(s);
  gw_plan_free(s->plan);
  s->plan = NULL;
  if (s->loop) ev_loop_destroy(s->loop);
  s->loop = NULL;
}
