/*
 * ws_server.c: the libwebsockets side of the gateway: one protocol callback that serves
 * HTTP (/healthz, /readyz, /metrics) and the WebSocket endpoints /v1/driver and /v1/rider.
 *
 * Admission and authentication happen before the upgrade
 * (LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION): 503 at the connection cap, 429 for an address
 * opening connections too fast, 401 for a missing, bad or too long-lived token, 403 for the
 * wrong role. A user has one live connection per role: the newest wins, the older gets a
 * close frame 4002. A connection is closed with 4001 when its token expires. The rate
 * limits are per user (budget.h), bytes of every frame (pings included) count. Messages are accumulated over
 * fragments (4 KiB at most), rate-limited, parsed by gateway.c and routed to Kafka; each
 * connection has a bounded send queue where nearby answers are dropped first and trip
 * events never; a client whose queue stays full is closed. Connections are found by
 * (role, user) in a hash table for event delivery. Not thread-safe: the lws loop only.
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
  static const char *const kinds[] = {"ack", "error", "offer", "matched", "no_driver", "trip", "nearby"};
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

static void send_code(gw_server *s, gw_conn *c, const gw_msg *m, gw_code code, const char *field,
                      const char *msg) {
  gw_error e;
  memset(&e, 0, sizeof e);
  gw_error_set(&e, code, field, "%s", msg);
  if (m && m->has_ref) {
    e.has_ref = true;
    memcpy(e.ref, m->ref, sizeof e.ref);
  }
  gw_send_error(s, c, &e);
}

void gw_deliver_event(gw_server *s, const mrd_dispatch_event *ev) {
  const char *ids[2];
  gw_event_targets(ev, &ids[GW_ROLE_RIDER], &ids[GW_ROLE_DRIVER]);
  for (int role = 0; role < 2; role++) {
    if (!ids[role]) continue;
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

/* 0 and the claims, or the HTTP status to answer (401, 403, 404) with *why (a literal). */
static int authenticate(gw_server *s, struct lws *wsi, gw_role *role, char *user,
                        int64_t *exp_s, const char **why) {
  *why = "not found";
  char uri[128];
  if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0) return 404;
  mrd_role want;
  if (strcmp(uri, "/v1/driver") == 0) {
    want = MRD_ROLE_DRIVER;
    *role = GW_ROLE_DRIVER;
  } else if (strcmp(uri, "/v1/rider") == 0) {
    want = MRD_ROLE_RIDER;
    *role = GW_ROLE_RIDER;
  } else {
    return 404;
  }
  static char tok[MRD_JWT_MAX_TOKEN + 16];
  const char *token = NULL;
  int n = lws_hdr_copy(wsi, tok, sizeof tok, WSI_TOKEN_HTTP_AUTHORIZATION);
  if (n > 7 && strncmp(tok, "Bearer ", 7) == 0) {
    token = tok + 7;
  } else {
    token = lws_get_urlarg_by_name(wsi, "token=", tok, sizeof tok);
  }
  *why = "no token";
  if (!token || !*token) return 401;
  mrd_jwt_claims cl;
  int64_t now_s = gw_now_ms() / 1000;
  int rc = mrd_jwt_verify(s->cfg->jwt_secret, strlen(s->cfg->jwt_secret), token, MRD_ROLE_ANY,
                          now_s, &cl);
  if (rc) {
    *why = mrd_strerror(rc);
    return 401;
  }
  if (cl.role != want) { /* an ops token, or the other app's */
    *why = "role does not match the endpoint";
    return 403;
  }
  gw_token_verdict v = gw_token_check_claims(&cl, now_s, s->cfg->token_max_lifetime_ms / 1000);
  if (v == GW_TOKEN_BAD_ROLE) {
    *why = gw_token_verdict_text(v);
    return 403;
  }
  if (v != GW_TOKEN_OK) {
    *why = gw_token_verdict_text(v);
    return 401;
  }
  memcpy(user, cl.sub, strlen(cl.sub) + 1); /* mrd_id_valid: at most 64 bytes */
  *exp_s = cl.exp_s;
  return 0;
}

/* ---- limits (issue 13): admission, budgets, token expiry, close and header errors ----- */

int gw_limits_start(gw_server *s) {
  const gw_config *k = s->cfg;
  gw_budget_limits lim[2];
  memset(lim, 0, sizeof lim);
  lim[GW_ROLE_DRIVER] = (gw_budget_limits){k->driver_rate, k->driver_burst, k->control_rate,
                                           k->control_burst, k->rx_bytes_rate, k->rx_bytes_burst,
                                           (uint32_t)k->flood_warnings, k->flood_window_ms};
  lim[GW_ROLE_RIDER] = (gw_budget_limits){k->rider_rate, k->rider_burst, k->rider_rate,
                                          k->rider_burst, k->rx_bytes_rate, k->rx_bytes_burst,
                                          (uint32_t)k->flood_warnings, k->flood_window_ms};
  s->budgets = gw_budgets_new(lim);
  s->iprate = gw_iprate_new(k->ip_conn_rate, k->ip_conn_burst);
  mrd_log_gate_init(&s->refusal_log, k->log_rate, k->log_rate < 1 ? 1 : k->log_rate, gw_now_ms());
  if (!s->budgets || !s->iprate) {
    mrd_log_error("limits", "err=%s", "out of memory");
    return -1;
  }
  return 0;
}

void gw_limits_stop(gw_server *s) {
  gw_budgets_free(s->budgets);
  gw_iprate_free(s->iprate);
  s->budgets = NULL;
  s->iprate = NULL;
}

static int refused_index(int status) {
  switch (status) {
  case 401: return 0;
  case 403: return 1;
  case 404: return 2;
  case 429: return 3;
  case 503: return 4;
  default: return 5; /* 431, 400 */
  }
}

/* One line per refusal, at most MERIDIAN_GW_LOG_RATE a second; the next line written says
 * how many were held back. Every refusal is counted in /metrics either way. */
static void log_refusal(gw_server *s, struct lws *wsi, int status, const char *why) {
  mrd_counter_inc(s->m.refused[refused_index(status)]);
  uint64_t held = 0;
  if (!mrd_log_gate_pass(&s->refusal_log, gw_now_ms(), &held)) return;
  char ip[64] = "?";
  if (wsi) lws_get_peer_simple(wsi, ip, sizeof ip);
  mrd_log_warn("upgrade_refused", "status=%d ip=%s why=\"%s\" suppressed=%llu", status, ip, why,
               (unsigned long long)held);
}

/* Write a whole HTTP/1.1 answer on wsi (before the upgrade) and let the caller close. Written
 * raw: lws_return_http_status() answers HTTP/1.0 at this stage, which strict clients
 * (Python websockets) refuse. */
static void refuse_http(struct lws *wsi, int status) {
  const char *line, *body, *extra = "";
  switch (status) {
  case 401: line = "Unauthorized"; body = "invalid or missing token\n"; extra = "www-authenticate: Bearer\r\n"; break;
  case 403: line = "Forbidden"; body = "the token's role does not match the endpoint\n"; break;
  case 429: line = "Too Many Requests"; body = "too many new connections from this address; retry later\n"; extra = "retry-after: 1\r\n"; break;
  case 503: line = "Service Unavailable"; body = "the gateway holds all the connections it may; retry later\n"; extra = "retry-after: 5\r\n"; break;
  case 431: line = "Request Header Fields Too Large"; body = "request header fields too large\n"; break;
  default: line = "Not Found"; body = "not found\n"; break;
  }
  unsigned char buf[LWS_PRE + 512];
  int n = snprintf((char *)buf + LWS_PRE, sizeof buf - LWS_PRE,
                   "HTTP/1.1 %d %s\r\n%scontent-type: text/plain\r\ncontent-length: %zu\r\n"
                   "connection: close\r\n\r\n%s",
                   status, line, extra, strlen(body), body);
  if (n > 0 && (size_t)n < sizeof buf - LWS_PRE)
    lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
}

/* Send what is queued for c, then a close frame code/reason (a literal, < 124 bytes), then
 * wait for the client's close (5 s at most); c takes no more work meanwhile. */
static void close_with(gw_conn *c, uint16_t code, const char *reason) {
  if (c->drain_then_close || c->closing) return;
  c->drain_then_close = true;
  c->close_code = code;
  c->close_reason = reason;
  lws_callback_on_writable(c->wsi);
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

/* The bytes the kernel received on c's socket so far (frames of every kind and the
 * handshake); false when the socket cannot say. */
static bool socket_bytes(struct lws *wsi, uint64_t *received, uint64_t *sent) {
  int fd = lws_get_socket_fd(wsi);
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
  if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
    return false;
  *received = ti.tcpi_bytes_received;
  *sent = len >= offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof ti.tcpi_bytes_sent ? ti.tcpi_bytes_sent : 0;
  return true;
}

/* Charge what c's socket received since the last charge to the user's byte budget, and
 * pause, resume or close the user's connection accordingly. lws answers pings itself and
 * never shows them to the gateway: the kernel's count of received bytes sees them. */
static void rx_charge(gw_server *s, gw_conn *c, int64_t now) {
  if (!c->ws || !c->budget || c->drain_then_close || c->closing) return;
  uint64_t got = 0, sent = 0;
  if (!socket_bytes(c->wsi, &got, &sent)) return;
  uint64_t delta = got > c->rx_bytes_seen ? got - c->rx_bytes_seen : 0;
  c->rx_bytes_seen = got;
  c->rx_checked_ms = now;
  gw_rx_verdict v = gw_budget_rx_charge(c->budget, delta, now);
  if (v == GW_RX_CLOSE) {
    mrd_counter_inc(s->m.closed_flood);
    mrd_log_info("closed_flood", "role=%s user=%s why=bytes", c->role == GW_ROLE_DRIVER ? "driver" : "rider", c->user);
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

/* Every MERIDIAN_GW_RX_CHECK_MS: charge every connection (a ping flood raises no callback). */
static void rx_check_all(gw_server *s) {
  int64_t now = gw_now_ms();
  for (size_t b = 0; b < GW_REGISTRY_BUCKETS; b++)
    for (gw_conn *c = s->registry[b]; c; c = c->next_in_bucket) rx_charge(s, c, now);
}

/* Once a second: close connections whose token expired (4001), drop budgets and address
 * buckets that no longer matter. */
static void limits_housekeeping(gw_server *s, int64_t now_ms) {
  int64_t now_s = now_ms / 1000;
  for (size_t b = 0; b < GW_REGISTRY_BUCKETS; b++) {
    for (gw_conn *c = s->registry[b]; c; c = c->next_in_bucket) {
      if (c->exp_s && now_s >= c->exp_s && !c->drain_then_close && !c->closing) {
        mrd_counter_inc(s->m.closed_expired);
        close_with(c, 4001, "token expired");
      }
    }
  }
  gw_budgets_sweep(s->budgets, now_ms);
  gw_iprate_sweep(s->iprate, now_ms);
  mrd_gauge_set(s->m.budgets, (double)gw_budgets_count(s->budgets));
}

/* Request headers above MERIDIAN_GW_MAX_HEADER_BYTES are answered 431. lws itself closes a
 * connection whose headers overflow its buffer without a word (and has shut the socket
 * down before any callback could answer), so its buffer is GW_LWS_HEADER_BUFFER, far above
 * the limit, and the limit is checked here once lws has the whole head: the bytes the
 * socket received for this request (since the previous request of a keep-alive
 * connection, from rx_base). True when the request was refused (return -1 then). */
#define GW_LWS_HEADER_BUFFER (256 * 1024)
static bool refuse_large_headers(gw_server *s, struct lws *wsi, uint64_t rx_base) {
  uint64_t got = 0, sent = 0;
  if (!socket_bytes(wsi, &got, &sent) || got < rx_base ||
      got - rx_base <= (uint64_t)s->cfg->max_header_bytes)
    return false;
  refuse_http(wsi, 431);
  log_refusal(s, wsi, 431, "request headers too large");
  return true;
}

/* A connection lws closed before a whole request arrived (headers beyond even its buffer,
 * or not HTTP): nothing can be answered any more (lws shut the socket down), but it is
 * counted and logged at the bounded rate. */
static void note_header_error(gw_server *s, struct lws *wsi) {
  uint64_t got = 0, sent = 0;
  if (!socket_bytes(wsi, &got, &sent) || got == 0 || sent != 0) return;
  log_refusal(s, wsi, got >= GW_LWS_HEADER_BUFFER ? 431 : 400,
              got >= GW_LWS_HEADER_BUFFER ? "request headers beyond the buffer: dropped"
                                          : "incomplete or malformed request: dropped");
}

/* An accept/decline/arrived/start/complete naming a shard the map does not have would be
 * produced to a partition no dispatch shard consumes: answer it instead. True when
 * answered. */
static bool refuse_unrouted(gw_server *s, gw_conn *c, const gw_msg *m) {
  gw_code code = gw_target_shard_code(m->type, m->shard, gw_shardmap_prefix_shards(s->map, ""));
  if (code == GW_OK) return false;
  mrd_counter_inc(s->m.unrouted);
  gw_error e;
  memset(&e, 0, sizeof e);
  gw_error_set(&e, code, "id", code == GW_UNKNOWN_OFFER ? "no such offer (shard %u is not in the map)"
                                                        : "no such trip (shard %u is not in the map)",
               (unsigned)m->shard);
  if (m->has_ref) {
    e.has_ref = true;
    memcpy(e.ref, m->ref, sizeof e.ref);
  }
  gw_send_error(s, c, &e);
  return true;
}

/* ---- messages ------------------------------------------------------------------------ */

/* Returns 0 when queued (the client hears of the delivery), else the code it was sent. */
static int produce_command(gw_server *s, gw_conn *c, const gw_msg *m, mrd_command *cmd,
                           const char *key, bool ack) {
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len;
  cmd->epoch = gw_shardmap_epoch(s->map);
  cmd->ts_ms = gw_now_ms();
  if (cmd->trace.present) cmd->trace.stamp_us[MRD_STAMP_GATEWAY_PRODUCED] = gw_now_us();
  if (m->has_ref) memcpy(cmd->ref, m->ref, sizeof cmd->ref);
  if (mrd_command_encode(cmd, buf, sizeof buf, &len) != 0) {
    send_code(s, c, m, GW_INTERNAL, NULL, "could not encode the command");
    return GW_INTERNAL;
  }
  int rc = gw_kafka_produce(s, c, "dispatch-commands", (int32_t)cmd->shard, key, buf, len,
                            ack && m->has_ref ? m->ref : NULL);
  if (rc == GW_UNAVAILABLE) send_code(s, c, m, GW_UNAVAILABLE, NULL, "the gateway is overloaded; try again");
  else if (rc) send_code(s, c, m, GW_INTERNAL, NULL, "could not queue the command");
  return rc;
}

static void handle_location(gw_server *s, gw_conn *c, const gw_msg *m) {
  gw_route r;
  if (gw_shardmap_route(s->map, m->pos, s->cfg->halo_m, &r) != 0) {
    send_code(s, c, m, GW_INTERNAL, NULL, "routing failed");
    return;
  }
  mrd_driver_location loc;
  memset(&loc, 0, sizeof loc);
  memcpy(loc.driver_id, c->user, sizeof loc.driver_id);
  loc.pos = m->pos;
  loc.has_heading = m->has_heading;
  loc.heading_deg = m->heading_deg;
  loc.has_speed = m->has_speed;
  loc.speed_mps = m->speed_mps;
  loc.ts_ms = m->ts_ms;
  loc.seq = m->seq;
  loc.owner_shard = r.owner;
  loc.epoch = gw_shardmap_epoch(s->map);
  memcpy(loc.geohash, r.geohash, sizeof loc.geohash);
  loc.received_ms = gw_now_ms();
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len;
  for (int shard = -1; shard < MRD_SHARD_COUNT; shard++) {
    bool owner = shard < 0;
    if (!owner && !(r.halo_mask & (UINT64_C(1) << shard))) continue;
    loc.halo = !owner;
    int32_t part = owner ? (int32_t)r.owner : shard;
    if (mrd_driver_location_encode(&loc, buf, sizeof buf, &len) != 0) {
      send_code(s, c, m, GW_INTERNAL, NULL, "could not encode the location");
      return;
    }
    int rc = gw_kafka_produce(s, c, "driver-locations", part, c->user, buf, len,
                              owner && m->has_ref ? m->ref : NULL);
    if (rc) {
      if (owner) {
        send_code(s, c, m, rc == GW_UNAVAILABLE ? GW_UNAVAILABLE : GW_INTERNAL, NULL,
                  rc == GW_UNAVAILABLE ? "the gateway is overloaded; try again" : "could not queue the location");
        return;
      }
      mrd_counter_inc(s->m.kafka_failed); /* a lost halo copy: the next ping brings another */
    }
  }
}

static void handle_message(gw_server *s, gw_conn *c, const gw_msg *m) {
  mrd_command cmd;
  memset(&cmd, 0, sizeof cmd);
  switch (m->type) {
  case GW_MSG_LOCATION: handle_location(s, c, m); return;
  case GW_MSG_STATUS: {
    /* every shard of the map: whichever holds the driver (owner or halo) learns it */
    uint64_t all = gw_shardmap_prefix_shards(s->map, "");
    cmd.kind = MRD_CMD_STATUS;
    memcpy(cmd.driver_id, c->user, sizeof cmd.driver_id);
    cmd.status = m->status;
    bool first = true;
    for (uint32_t k = 0; k < MRD_SHARD_COUNT; k++) {
      if (!(all & (UINT64_C(1) << k))) continue;
      cmd.shard = k;
      produce_command(s, c, m, &cmd, c->user, first); /* one ack, for the first shard */
      first = false;
    }
    return;
  }
  case GW_MSG_ACCEPT:
  case GW_MSG_DECLINE:
    if (refuse_unrouted(s, c, m)) return;
    cmd.kind = m->type == GW_MSG_ACCEPT ? MRD_CMD_ACCEPT : MRD_CMD_DECLINE;
    cmd.shard = m->shard;
    memcpy(cmd.offer_id, m->id, sizeof cmd.offer_id);
    memcpy(cmd.driver_id, c->user, sizeof cmd.driver_id);
    produce_command(s, c, m, &cmd, m->id, true);
    return;
  case GW_MSG_ARRIVED:
  case GW_MSG_START:
  case GW_MSG_COMPLETE:
    if (refuse_unrouted(s, c, m)) return;
    cmd.kind = m->type == GW_MSG_ARRIVED ? MRD_CMD_ARRIVED
               : m->type == GW_MSG_START ? MRD_CMD_START
                                         : MRD_CMD_COMPLETE;
    cmd.shard = m->shard;
    memcpy(cmd.trip_id, m->id, sizeof cmd.trip_id);
    memcpy(cmd.driver_id, c->user, sizeof cmd.driver_id);
    produce_command(s, c, m, &cmd, m->id, true);
    return;
  case GW_MSG_REQUEST: {
    int rc = gw_request_window(s, c->user, gw_now_ms());
    if (rc == GW_RATE_LIMITED) {
      mrd_counter_inc(s->m.rate_limited[c->role]);
      send_code(s, c, m, GW_RATE_LIMITED, NULL, "too many ride requests; wait a minute");
      return;
    }
    if (rc) {
      send_code(s, c, m, GW_UNAVAILABLE, NULL, "ride requests are unavailable; try again");
      return;
    }
    gw_route r;
    if (gw_shardmap_route(s->map, m->pickup, 0, &r) != 0) {
      send_code(s, c, m, GW_INTERNAL, NULL, "routing failed");
      return;
    }
    /* one (rider, request_id) is one trip, whichever shard the pickup of a resend is on
     * and however long ago dispatch forgot the trip (docs/protocol.md, "request_id") */
    gw_req_seen seen = GW_REQ_NEW;
    uint32_t shard = r.owner;
    char value[GW_REQ_VALUE_MAX];
    rc = gw_request_record(s, m->id, c->user, r.owner, m->pickup, m->dropoff, &seen, &shard,
                           value, sizeof value);
    if (rc) {
      send_code(s, c, m, GW_UNAVAILABLE, NULL, "ride requests are unavailable; try again");
      return;
    }
    if (seen == GW_REQ_CONFLICT) {
      mrd_counter_inc(s->m.request_conflicts);
      send_code(s, c, m, GW_INVALID_STATE, "request_id",
                "request_id: already used for a ride with another pickup or dropoff; send a "
                "new request_id");
      return;
    }
    cmd.kind = MRD_CMD_REQUEST;
    cmd.shard = shard;
    cmd.resend = seen == GW_REQ_RESEND;
    if (cmd.resend) mrd_counter_inc(s->m.request_resends);
    memcpy(cmd.request_id, m->id, sizeof cmd.request_id);
    memcpy(cmd.rider_id, c->user, sizeof cmd.rider_id);
    cmd.pickup = m->pickup;
    cmd.dropoff = m->dropoff;
    uint8_t rnd[24];
    gw_random_bytes(s, rnd, sizeof rnd);
    mrd_traceparent_root(rnd, &cmd.trace.tp); /* every request is traced (docs/architecture.md) */
    cmd.trace.present = true;
    cmd.trace.stamp_us[MRD_STAMP_GATEWAY_RECEIVED] = s->rx_us;
    if (!cmd.resend) { /* a new request that never reaches Kafka must not stay recorded */
      s->undo_request_id = m->id;
      s->undo_rider = c->user;
      s->undo_value = value;
    }
    rc = produce_command(s, c, m, &cmd, m->id, true);
    s->undo_request_id = s->undo_rider = s->undo_value = NULL;
    if (rc && !cmd.resend) gw_request_forget(s, m->id, c->user, value);
    return;
  }
  case GW_MSG_CANCEL: {
    uint32_t shard = 0;
    int rc = gw_request_lookup(s, m->id, c->user, &shard);
    if (rc == GW_FORBIDDEN) {
      send_code(s, c, m, GW_FORBIDDEN, "request_id", "request_id: not a request of yours");
      return;
    }
    if (rc) {
      send_code(s, c, m, GW_UNAVAILABLE, NULL, "cancel is unavailable; try again");
      return;
    }
    cmd.kind = MRD_CMD_CANCEL;
    cmd.shard = shard;
    memcpy(cmd.request_id, m->id, sizeof cmd.request_id);
    memcpy(cmd.rider_id, c->user, sizeof cmd.rider_id);
    produce_command(s, c, m, &cmd, m->id, true);
    return;
  }
  case GW_MSG_NEARBY: {
    mrd_latlon pts[100];
    size_t n = 0;
    size_t cap = (size_t)s->cfg->nearby_max;
    if (gw_nearby(s, m->pos, m->radius_m, pts, cap < 100 ? cap : 100, &n) != 0) {
      send_code(s, c, m, GW_UNAVAILABLE, NULL, "nearby is unavailable; try again");
      return;
    }
    char buf[4096];
    int len = gw_format_nearby(pts, n, m->has_ref ? m->ref : NULL, buf, sizeof buf);
    if (len > 0) gw_send(s, c, buf, (size_t)len, true);
    return;
  }
  default: send_code(s, c, m, GW_INTERNAL, NULL, "unhandled message"); return;
  }
}

/* A complete message arrived: rate limit, parse, act. Returns -1 to close the connection. */
static int on_message(gw_server *s, gw_conn *c) {
  if (c->drain_then_close || c->closing) return 0; /* being closed: take no more work */
  s->rx_us = gw_now_us();
  int64_t now = s->rx_us / 1000;
  gw_msg m;
  gw_error e;
  int ok = -1;
  if (c->rx_too_large) {
    memset(&e, 0, sizeof e);
    gw_error_set(&e, GW_TOO_LARGE, NULL, "messages are limited to %d bytes", GW_MAX_MESSAGE_BYTES);
    memset(&m, 0, sizeof m);
  } else if (c->rx_binary) {
    memset(&e, 0, sizeof e);
    gw_error_set(&e, GW_BAD_REQUEST, NULL, "binary messages are not accepted; send JSON text");
    memset(&m, 0, sizeof m);
  } else {
    ok = gw_parse(c->rx, c->rx_len, c->role, s->area, &m, &e);
  }
  mrd_counter_inc(s->m.in[ok == 0 ? m.type : GW_MSG_NONE]);
  /* every message costs a token, valid or not */
  /* the user's budget: shared by all his connections (budget.h) */
  gw_bucket *b = (c->role == GW_ROLE_DRIVER && !(ok == 0 && m.type == GW_MSG_LOCATION))
                     ? &c->budget->control
                     : &c->budget->msgs;
  if (!gw_bucket_take(b, now)) {
    mrd_counter_inc(s->m.rate_limited[c->role]);
    if (gw_flood_hit(&c->budget->flood, now) == GW_FLOOD_CLOSE) {
      mrd_counter_inc(s->m.closed_flood);
      mrd_log_info("closed_flood", "role=%s user=%s", c->role == GW_ROLE_DRIVER ? "driver" : "rider", c->user);
      /* the warnings already queued go out first, then the close (SERVER_WRITEABLE) */
      close_with(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "flood");
      return 0;
    }
    gw_error r;
    memset(&r, 0, sizeof r);
    gw_error_set(&r, GW_RATE_LIMITED, NULL, "over the rate limit; slow down");
    r.has_ref = (ok == 0) ? m.has_ref : e.has_ref;
    memcpy(r.ref, ok == 0 ? m.ref : e.ref, sizeof r.ref);
    gw_send_error(s, c, &r);
    return 0;
  }
  if (ok != 0) {
    gw_send_error(s, c, &e);
    return 0;
  }
  if (!s->map) {
    send_code(s, c, &m, GW_UNAVAILABLE, NULL, "no shard map yet; try again");
    return 0;
  }
  handle_message(s, c, &m);
  return 0;
}

/* ---- HTTP ---------------------------------------------------------------------------- */

static int http_reply(struct lws *wsi, gw_conn *c, unsigned status, const char *type,
                      char *body /* heap, taken */, size_t len) {
  unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
  c->http_body = body;
  c->http_len = len;
  if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return 1;
  lws_callback_on_writable(wsi);
  return 0;
}

/* /readyz: Kafka assigned, a shard map loaded, Redis answering, not stopping. */
static int ready(void *ud, char *reason, size_t cap) {
  gw_server *s = ud;
  bool redis = mrd_redis_ping(s->redis) == 0;
  if (s->kafka_ready && s->map && redis && !s->stopping) return 0;
  snprintf(reason, cap, "%s%s%s%s", s->stopping ? "stopping; " : "", s->kafka_ready ? "" : "kafka: down; ",
           s->map ? "" : "no shard map; ", redis ? "" : "redis: down; ");
  return 1;
}

/* /healthz, /readyz, /metrics (services/common's responder), anything else 404. */
static int on_http(gw_server *s, struct lws *wsi, gw_conn *c, const char *path) {
  unsigned ops_status;
  const char *ops_type;
  char *ops_body;
  size_t ops_len;
  int ops = gw_ops_io_http(s, path, &ops_status, &ops_type, &ops_body, &ops_len);
  if (ops < 0) return 1;
  if (ops > 0) return http_reply(wsi, c, ops_status, ops_type, ops_body, ops_len);
  mrd_http_response r;
  if (mrd_admin_respond(&s->health, path, &r) != 0) return 1;
  return http_reply(wsi, c, (unsigned)r.status, r.content_type, r.body, r.body_len);
}

/* ---- the protocol callback ------------------------------------------------------------ */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
  gw_server *s = lws_context_user(lws_get_context(wsi));
  gw_conn *c = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP:
    return on_http(s, wsi, c, (const char *)in);
  case LWS_CALLBACK_HTTP_WRITEABLE: {
    if (!c || !c->http_body) break;
    unsigned char *buf = malloc(LWS_PRE + c->http_len + 1);
    if (!buf) return -1;
    memcpy(buf + LWS_PRE, c->http_body, c->http_len);
    int n = lws_write(wsi, buf + LWS_PRE, c->http_len, LWS_WRITE_HTTP_FINAL);
    free(buf);
    free(c->http_body);
    c->http_body = NULL;
    if (n < 0) return -1;
    uint64_t sent = 0;
    socket_bytes(wsi, &c->http_rx_base, &sent); /* the next request's head starts here */
    if (lws_http_transaction_completed(wsi)) return -1;
    return 0;
  }
  case LWS_CALLBACK_HTTP_FILE_COMPLETION: /* a file of the /ops mount went out: keep-alive */
    if (lws_http_transaction_completed(wsi)) return -1;
    break;
  case LWS_CALLBACK_CLOSED_HTTP:
    if (c) {
      free(c->http_body);
      c->http_body = NULL;
    } else {
      note_header_error(s, wsi);
    }
    break;
  case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
    return refuse_large_headers(s, wsi, c ? c->http_rx_base : 0) ? -1 : 0;
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
    if (refuse_large_headers(s, wsi, 0)) return -1;
    /* admission first: it costs no HMAC */
    char ip[GW_IP_MAX + 1] = "";
    lws_get_peer_simple(wsi, ip, sizeof ip);
    gw_admit_verdict av = gw_admit(s->iprate, ip, s->open_ws, s->cfg->max_conns, gw_now_ms());
    if (av != GW_ADMIT_OK) {
      refuse_http(wsi, (int)av);
      log_refusal(s, wsi, (int)av, av == GW_ADMIT_FULL ? "connection cap reached" : "address over its connection rate");
      return -1;
    }
    gw_role role;
    char sub[MRD_ID_MAX + 1];
    if (s->stopping) { /* shutting down: no new connections (the client retries elsewhere) */
      refuse_http(wsi, 503);
      log_refusal(s, wsi, 503, "shutting down");
      return -1;
    }
    int64_t exp_s = 0;
    const char *why = NULL;
    int status = gw_ops_io_is_ops(wsi) ? gw_ops_io_filter(s, wsi, NULL)
                                       : authenticate(s, wsi, &role, sub, &exp_s, &why);
    if (status) {
      refuse_http(wsi, status);
      log_refusal(s, wsi, status, why ? why : "ops stream: bad token, wrong role or too many ops connections");
      return -1;
    }
    return 0;
  }
  case LWS_CALLBACK_ESTABLISHED: {
    memset(c, 0, sizeof *c);
    c->wsi = wsi;
    if (gw_ops_io_is_ops(wsi))
      return gw_ops_io_filter(s, wsi, c->user) == 0 && gw_ops_io_open(s, c) == 0 ? 0 : -1;
    const char *why = NULL;
    if (authenticate(s, wsi, &c->role, c->user, &c->exp_s, &why) != 0) return -1;
    c->ref = calloc(1, sizeof *c->ref);
    c->q = calloc((size_t)s->cfg->sendq, sizeof *c->q);
    if (!c->ref || !c->q) return -1;
    c->ref->conn = c;
    c->ref->refs = 1;
    c->ws = true;
    int64_t now = gw_now_ms();
    c->budget = gw_budgets_acquire(s->budgets, c->role, c->user, now);
    if (!c->budget) return -1;
    uint64_t sent = 0;
    socket_bytes(wsi, &c->rx_bytes_seen, &sent); /* the handshake is not charged */
    c->rx_checked_ms = now;
    s->open_ws++;
    replace_older(s, c);
    registry_add(s, c);
    c->in_registry = true;
    mrd_gauge_add(s->m.conns[c->role], 1);
    /* a client that comes back during a trip learns its state at once */
    mrd_dispatch_event ev;
    if (gw_trip_snapshot(s, c->role, c->user, &ev) == 1) {
      char buf[2048];
      int n = gw_format_event(&ev, c->role, buf, sizeof buf);
      const char *rid, *did;
      gw_event_targets(&ev, &rid, &did);
      const char *mine = c->role == GW_ROLE_DRIVER ? did : rid;
      if (n > 0 && mine && strcmp(mine, c->user) == 0) gw_send(s, c, buf, (size_t)n, false);
    }
    break;
  }
  case LWS_CALLBACK_RECEIVE: {
    if (!c->ws) return -1;
    if (lws_is_first_fragment(wsi)) {
      int64_t now = gw_now_ms();
      if (now - c->rx_checked_ms >= s->cfg->rx_check_ms) rx_charge(s, c, now);
    }
    if (lws_is_first_fragment(wsi)) {
      c->rx_len = 0;
      c->rx_too_large = false;
      c->rx_binary = lws_frame_is_binary(wsi);
    }
    if (c->rx_len + len > sizeof c->rx) c->rx_too_large = true;
    else if (!c->rx_too_large) {
      memcpy(c->rx + c->rx_len, in, len);
      c->rx_len += len;
    }
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
      return c->ops_view ? gw_ops_io_receive(s, c) : on_message(s, c);
    break;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE: {
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
      break;
    }
    if (write_queued(s, c) != 0) return -1;
    c->blocked_since_ms = 0;
    if (c->q_len || (c->drain_then_close && !c->close_sent)) lws_callback_on_writable(wsi);
    break;
  }
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    /* RFC 6455 7.4: a close frame with a code a peer may not send is a protocol error */
    if (!gw_close_payload_valid(in, len)) {
      mrd_counter_inc(s->m.closed_bad_close);
      lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"invalid close code", 18);
      return -1;
    }
    break;
  case LWS_CALLBACK_CLOSED: {
    if (c && c->ops_view) gw_ops_io_close(s, c); /* ops: never in the registry */
    else if (!c || !c->ws) break;
    else {
      if (c->in_registry) registry_remove(s, c);
      c->in_registry = false;
      gw_budgets_release(s->budgets, c->budget);
      c->budget = NULL;
      s->open_ws--;
      mrd_gauge_add(s->m.conns[c->role], -1);
    }
    if (!c->ws) break;
    for (int i = 0; i < c->q_len; i++) out_free(&c->q[(c->q_head + i) % s->cfg->sendq]);
    free(c->q);
    c->q = NULL;
    c->ref->conn = NULL;
    if (--c->ref->refs == 0) free(c->ref);
    c->ref = NULL;
    c->ws = false;
    break;
  }
  default: break;
  }
  return 0;
}

/* ---- Kafka wake-ups and timers ---------------------------------------------------------- */

/* A fallback: librdkafka wakes the loop through the pipe (wake_cb); this timer also runs
 * at once while a poll left events behind (its bound reached). Returns the delay to the
 * next run in us. */
static int64_t kafka_poll_turn(gw_server *s) {
  return gw_kafka_poll(s) ? 1 : s->cfg->poll_us;
}

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
  rx_check_all(s);
  lws_sul_schedule(s->ctx, 0, &s->sul_rx, on_rx, s->cfg->rx_check_ms * LWS_US_PER_MS);
}

static void on_ev_rx(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  rx_check_all(w->data);
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

static const struct lws_protocols protocols[] = {
    {"meridian", callback, sizeof(gw_conn), GW_MAX_MESSAGE_BYTES, 0, NULL, 0},
    {"gw-kafka-wake", wake_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

int gw_ws_start(gw_server *s) {
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = s->cfg->port;
  info.iface = s->cfg->host;
  info.protocols = protocols;
  info.user = s;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6; /* UTF-8 is checked by the parser: an error, not a close */
  info.pt_serv_buf_size = 32 * 1024;
  info.max_http_header_data = 0; /* use data2: the 431 check is ours (refuse_large_headers) */
  info.max_http_header_data2 = GW_LWS_HEADER_BUFFER;
  info.fd_limit_per_thread = 0;
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
      return -1;
    }
    /* lws 4.1.6's libev glue logs every watcher change at NOTICE (elops_io_ev), i.e. a
     * line per message: keep lws's errors and warnings only (NULL keeps mrd_log's emitter) */
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    foreign[0] = s->loop;
    info.foreign_loops = foreign;
    info.options |= LWS_SERVER_OPTION_LIBEV;
  }
  s->health = (mrd_health){ready, s, s->m.reg};
  if (gw_ops_io_start(s) != 0) {
    mrd_log_error("ops_start", "err=%s", "no memory for the ops stream");
    return -1;
  }
  info.mounts = gw_ops_io_mount(s);
  s->ctx = lws_create_context(&info);
  if (!s->ctx) {
    mrd_log_error("listen_failed", "host=%s port=%d", s->cfg->host, s->cfg->port);
    return -1;
  }
  if (s->wake_fd[0] >= 0) {
    lws_sock_file_fd_type fd;
    fd.filefd = s->wake_fd[0];
    struct lws_vhost *vh = lws_get_vhost_by_name(s->ctx, "default");
    if (!vh || !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "gw-kafka-wake", NULL)) {
      mrd_log_error("kafka_wake_adopt", "err=%s", "lws could not adopt the pipe");
      return -1;
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
    double rx_s = (double)s->cfg->rx_check_ms / 1e3;
    ev_timer_init(&s->ev_rx, on_ev_rx, rx_s, rx_s);
    s->ev_rx.data = s;
    ev_timer_start(s->loop, &s->ev_rx);
  } else {
    lws_sul_schedule(s->ctx, 0, &s->sul_rx, on_rx, s->cfg->rx_check_ms * LWS_US_PER_MS);
    lws_sul_schedule(s->ctx, 0, &s->sul_poll, on_poll, s->cfg->poll_us);
    lws_sul_schedule(s->ctx, 0, &s->sul_housekeeping, on_housekeeping,
                     s->cfg->epoch_check_ms * LWS_US_PER_MS);
  }
  if (gw_ops_io_timers(s) != 0) return -1;
  mrd_log_info("listening", "host=%s port=%d event_loop=%s", s->cfg->host, s->cfg->port,
               s->loop ? "epoll" : "poll");
  return 0;
}

int gw_ws_run_once(gw_server *s) {
  if (s->loop) {
    ev_run(s->loop, EVRUN_ONCE); /* returns on a signal too (EINTR) */
    return 0;
  }
  return lws_service(s->ctx, 0) < 0 ? -1 : 0;
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
  if (s->loop) ev_loop_destroy(s->loop);
  s->loop = NULL;
}
