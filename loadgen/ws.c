/*
 * ws.c: libwebsockets client connections for the simulation (ws.h). One context, one
 * thread, on an epoll loop (libev, through lws's libev plugin, as the gateway runs) or on
 * lws's own poll() loop; a timer ticks the simulation; each connection has a queue of
 * outgoing text messages written one per WRITEABLE callback, and a buffer that puts
 * fragmented messages together.
 */
#define _POSIX_C_SOURCE 200809L
#include "ws.h"

#include "mrd/clock.h"

#include <ev.h>
#include <libwebsockets.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mrd/jwt.h"

#define MAX_MESSAGE 65536 /* larger incoming messages are dropped (the gateway sends < 4 KiB) */

typedef enum cstate { C_NONE = 0, C_QUEUED, C_CONNECTING, C_OPEN, C_DONE } cstate;

/* One client connection (a driver or a rider). */
typedef struct conn {
  struct lws *wsi;
  lg_role role;
  uint32_t idx;
  cstate st;
  bool closing;  /* the simulation closed it: flush, then close */
  bool in_queue; /* in the list waiting to connect */
  char *path;    /* request path with the token */
  char **q;      /* outgoing messages (ring) */
  size_t qhead, qlen, qcap;
  char *rx;
  size_t rx_len, rx_cap;
  bool rx_drop;
  struct conn *next_queued;
  /* for MERIDIAN_LOADGEN_DEBUG: this connection's sockets and their traffic */
  uint32_t n_wsi, n_tx, n_rx, n_stale;
  int64_t last_tx_us, last_rx_us, open_us;
  struct {
    char what;
    int64_t at_us;
  } hist[12]; /* the last socket events, a ring: O queued to open, C connecting, E established,
                 X connect error, L closed, D destroyed, c closed by the simulation */
  uint32_t n_hist;
  int local_port; /* of the socket at its last establishment */
} conn;

static void note(conn *c, char what) {
  c->hist[c->n_hist % 12].what = what;
  c->hist[c->n_hist % 12].at_us = lg_now_us();
  c->n_hist++;
}

/* The run: the context, the simulation and the connections. */
typedef struct run {
  const lg_ws_opts *o;
  lws_retry_bo_t idle_policy; /* idle_policy_for(o) */
  struct lws_context *ctx;
  lg_sim *sim;
  conn *drivers, *riders;
  size_t n_drivers, n_riders;
  conn *queue_head, *queue_tail; /* waiting to connect */
  int connecting;
  size_t live_wsi;
  lws_sorted_usec_list_t sul; /* the tick on lws's poll() loop */
  struct ev_loop *loop;       /* the epoll loop, or NULL on lws's poll() loop */
  ev_timer ev_tick;           /* the tick on the epoll loop */
  int64_t last_progress_us;
  volatile int *stop;
  bool finished;
} run;

int64_t lg_now_us(void) { return mrd_mono_us(); }

int64_t lg_epoch_ms(void) { return mrd_wall_ms(); }

int lg_ws_parse_url(const char *url, char *host, size_t hostcap, int *port, char *prefix,
                    size_t prefixcap) {
  if (strncmp(url, "ws://", 5) != 0) return -1;
  const char *h = url + 5, *colon = strchr(h, ':'), *slash = strchr(h, '/');
  const char *hend = colon && (!slash || colon < slash) ? colon : (slash ? slash : h + strlen(h));
  size_t hl = (size_t)(hend - h);
  if (hl == 0 || hl >= hostcap) return -1;
  memcpy(host, h, hl);
  host[hl] = '\0';
  *port = 80;
  if (hend == colon) {
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || p < 1 || p > 65535 || (*end && *end != '/')) return -1;
    *port = (int)p;
  }
  const char *pre = slash ? slash : "";
  size_t pl = strlen(pre);
  while (pl > 0 && pre[pl - 1] == '/') pl--;
  if (pl >= prefixcap) return -1;
  memcpy(prefix, pre, pl);
  prefix[pl] = '\0';
  return 0;
}

static run *g_run; /* the callback reaches the run through the context user data too */

static conn *conn_of(run *r, lg_role role, uint32_t idx) {
  if (role == LG_DRIVER) return idx < r->n_drivers ? &r->drivers[idx] : NULL;
  return idx < r->n_riders ? &r->riders[idx] : NULL;
}

static void conn_reset(conn *c) {
  for (size_t k = 0; k < c->qlen; k++) free(c->q[(c->qhead + k) % c->qcap]);
  free(c->q);
  free(c->rx);
  free(c->path);
  c->q = NULL;
  c->qhead = c->qlen = c->qcap = 0;
  c->rx = NULL;
  c->rx_len = c->rx_cap = 0;
  c->path = NULL;
}

/* ---- lg_io ---- */

static int io_open(void *ud, lg_role role, uint32_t idx, const char *sub) {
  run *r = ud;
  conn *c = conn_of(r, role, idx);
  /* a connection is opened again (a reconnection) once the old socket is destroyed */
  if (!c || (c->st != C_NONE && c->st != C_DONE) || c->wsi || c->in_queue) return -1;
  conn_reset(c);
  c->closing = false;
  c->rx_drop = false;
  char *tok = NULL;
  const char *sec = r->o->jwt_secret;
  if (mrd_jwt_mint(sec, strlen(sec), sub, role == LG_DRIVER ? MRD_ROLE_DRIVER : MRD_ROLE_RIDER,
                   24 * 3600, (int64_t)time(NULL), &tok) != 0)
    return -1;
  size_t n = strlen(r->o->base_path) + strlen(tok) + 32;
  c->path = malloc(n);
  if (!c->path) {
    free(tok);
    return -1;
  }
  snprintf(c->path, n, "%s/v1/%s?token=%s", r->o->base_path, role == LG_DRIVER ? "driver" : "rider",
           tok);
  free(tok);
  c->role = role;
  c->idx = idx;
  c->st = C_QUEUED;
  note(c, 'O');
  c->in_queue = true;
  c->next_queued = NULL;
  if (r->queue_tail)
    r->queue_tail->next_queued = c;
  else
    r->queue_head = c;
  r->queue_tail = c;
  return 0;
}

static int io_send(void *ud, lg_role role, uint32_t idx, const char *text, size_t len) {
  run *r = ud;
  conn *c = conn_of(r, role, idx);
  if (!c || c->st != C_OPEN || c->closing) return -1;
  if (c->qlen == c->qcap) {
    size_t ncap = c->qcap ? c->qcap * 2 : 8;
    char **nq = malloc(ncap * sizeof *nq);
    if (!nq) return -1;
    for (size_t k = 0; k < c->qlen; k++) nq[k] = c->q[(c->qhead + k) % c->qcap];
    free(c->q);
    c->q = nq;
    c->qhead = 0;
    c->qcap = ncap;
  }
  char *m = malloc(LWS_PRE + len + 1);
  if (!m) return -1;
  memcpy(m + LWS_PRE, text, len);
  m[LWS_PRE + len] = '\0';
  c->q[(c->qhead + c->qlen++) % c->qcap] = m;
  lws_callback_on_writable(c->wsi);
  return 0;
}

static void io_close(void *ud, lg_role role, uint32_t idx) {
  run *r = ud;
  conn *c = conn_of(r, role, idx);
  if (!c) return;
  note(c, 'c');
  if (c->st == C_OPEN || c->st == C_CONNECTING) {
    c->closing = true;
    if (c->wsi) lws_callback_on_writable(c->wsi);
  } else if (c->st == C_QUEUED) {
    c->st = C_DONE; /* skipped when its turn comes */
  }
}

static size_t io_queued(void *ud, lg_role role, uint32_t idx) {
  conn *c = conn_of(ud, role, idx);
  return c && c->st == C_OPEN ? c->qlen : 0;
}

/* The socket's side of a link, for MERIDIAN_LOADGEN_DEBUG's account of the unfinished:
 * state, traffic, and its last events with how long ago each was (s). */
static void io_describe(void *ud, lg_role role, uint32_t idx, char *buf, size_t cap) {
  conn *c = conn_of(ud, role, idx);
  if (!c) {
    snprintf(buf, cap, "none");
    return;
  }
  int64_t now = lg_now_us();
#define AGO(t) ((t) ? (double)(now - (t)) / 1e6 : -1.0)
  snprintf(buf, cap,
           "st=%d wsi=%s port=%d closing=%d queued=%zu sockets=%u stale=%u open %.1f s ago tx=%u "
           "last %.1f s ago rx=%u last %.1f s ago",
           (int)c->st, c->wsi ? "yes" : "no", c->local_port, (int)c->closing, c->qlen, c->n_wsi,
           c->n_stale, AGO(c->open_us), c->n_tx, AGO(c->last_tx_us), c->n_rx, AGO(c->last_rx_us));
  size_t len = strlen(buf);
  uint32_t from = c->n_hist > 12 ? c->n_hist - 12 : 0;
  for (uint32_t k = from; k < c->n_hist && len + 24 < cap; k++)
    len += (size_t)snprintf(buf + len, cap - len, " %c%.1f", c->hist[k % 12].what,
                            AGO(c->hist[k % 12].at_us));
#undef AGO
}

/* ---- connecting ---- */

/* A connection that went silent without a close seen (its server killed -9 with the FIN
 * lost on a busy machine, a half-open socket) would swallow every message sent on it, and the
 * app would wait forever: WebSocket pings after keepalive_s (5 s) without traffic from the
 * server, hang up after twice that, and the app reconnects and resynchronises as for any
 * dropped connection. A driver's connection carries nothing from the server between offers,
 * so each is pinged every keepalive_s: at 5 s, 1,000 drivers are 200 ping/pong exchanges a
 * second on the gateway (the capacity ramp uses 30 s, as mobile apps do). */
static lws_retry_bo_t idle_policy_for(const lg_ws_opts *o) {
  double s = o->keepalive_s > 0 ? o->keepalive_s : 5;
  return (lws_retry_bo_t){.secs_since_valid_ping = (uint16_t)lround(s),
                          .secs_since_valid_hangup = (uint16_t)lround(2 * s)};
}

static void start_connects(run *r) {
  while (r->queue_head && r->connecting < r->o->max_connecting) {
    conn *c = r->queue_head;
    r->queue_head = c->next_queued;
    if (!r->queue_head) r->queue_tail = NULL;
    c->in_queue = false;
    if (c->st != C_QUEUED) continue;
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = r->ctx;
    i.address = r->o->host;
    i.port = r->o->port;
    i.path = c->path;
    i.host = r->o->host;
    i.origin = r->o->host;
    i.protocol = NULL;
    i.opaque_user_data = c;
    i.pwsi = &c->wsi;
    i.retry_and_idle_policy = &r->idle_policy;
    c->st = C_CONNECTING;
    c->n_wsi++;
    note(c, 'C');
    r->connecting++;
    r->live_wsi++;
    if (!lws_client_connect_via_info(&i)) {
      /* the failure was (or will not be) reported through the callback: count it here */
      if (c->st == C_CONNECTING) {
        r->connecting--;
        r->live_wsi--;
        c->st = C_DONE;
        c->wsi = NULL;
        lg_sim_on_closed(r->sim, c->role, c->idx, false, "connect failed", lg_now_us());
        conn_reset(c);
      }
    }
  }
}

/* ---- the protocol callback ---- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
  run *r = g_run;
  conn *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
  (void)user;
  if (c && c->wsi && wsi != c->wsi &&
      (reason == LWS_CALLBACK_CLIENT_ESTABLISHED || reason == LWS_CALLBACK_CLIENT_RECEIVE ||
       reason == LWS_CALLBACK_CLIENT_WRITEABLE || reason == LWS_CALLBACK_CLIENT_CLOSED ||
       reason == LWS_CALLBACK_WSI_DESTROY || reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR)) {
    c->n_stale++; /* a callback of a socket that is not the connection's current one */
    if (getenv("MERIDIAN_LOADGEN_DEBUG"))
      fprintf(stderr, "debug: %s %u: callback %d of an older socket\n",
              c->role == LG_DRIVER ? "driver" : "rider", c->idx, (int)reason);
  }
  switch (reason) {
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (!c) break;
    note(c, 'E');
    {
      struct sockaddr_in me;
      socklen_t ml = sizeof me;
      c->local_port = getsockname(lws_get_socket_fd(wsi), (struct sockaddr *)&me, &ml) == 0
                          ? ntohs(me.sin_port)
                          : -1;
    }
    r->connecting--;
    c->st = C_OPEN;
    c->open_us = lg_now_us();
    if (c->closing) {
      lws_callback_on_writable(wsi);
      break;
    }
    lg_sim_on_open(r->sim, c->role, c->idx, lg_now_us());
    break;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    if (c) note(c, 'X');
    if (!c || c->st != C_CONNECTING) break;
    r->connecting--;
    c->st = C_DONE;
    lg_sim_on_closed(r->sim, c->role, c->idx, false, in ? (const char *)in : "connect error",
                     lg_now_us());
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (!c || c->st != C_OPEN) break;
    if (lws_is_first_fragment(wsi)) c->rx_len = 0, c->rx_drop = false;
    c->n_rx++;
    c->last_rx_us = lg_now_us();
    if (!c->rx_drop) {
      if (c->rx_len + len + 1 > MAX_MESSAGE) {
        c->rx_drop = true;
      } else {
        if (c->rx_len + len + 1 > c->rx_cap) {
          size_t ncap = c->rx_cap ? c->rx_cap : 1024;
          while (ncap < c->rx_len + len + 1) ncap *= 2;
          char *nb = realloc(c->rx, ncap);
          if (!nb) {
            c->rx_drop = true;
            break;
          }
          c->rx = nb;
          c->rx_cap = ncap;
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
      }
    }
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
      if (!c->rx_drop && !c->closing)
        lg_sim_on_message(r->sim, c->role, c->idx, c->rx, c->rx_len, lg_now_us());
      c->rx_len = 0;
    }
    break;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    if (!c) break;
    if (c->qlen) {
      char *m = c->q[c->qhead];
      size_t n = strlen(m + LWS_PRE);
      c->qhead = (c->qhead + 1) % c->qcap;
      c->qlen--;
      int w = lws_write(wsi, (unsigned char *)m + LWS_PRE, n, LWS_WRITE_TEXT);
      free(m);
      c->n_tx++;
      c->last_tx_us = lg_now_us();
      if (w < (int)n) return -1;
      if (c->qlen || c->closing) lws_callback_on_writable(wsi);
      break;
    }
    if (c->closing) {
      lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
      return -1;
    }
    break;
  case LWS_CALLBACK_CLIENT_CLOSED:
    if (!c) break;
    note(c, 'L');
    if (c->st == C_OPEN) {
      c->st = C_DONE;
      if (!c->closing)
        lg_sim_on_closed(r->sim, c->role, c->idx, true, "closed", lg_now_us());
      else
        lg_sim_on_closed(r->sim, c->role, c->idx, true, "closed by us", lg_now_us());
    }
    break;
  case LWS_CALLBACK_WSI_DESTROY:
    if (!c) break;
    note(c, 'D');
    if (c->st == C_CONNECTING) { /* destroyed without an error callback */
      r->connecting--;
      c->st = C_DONE;
      lg_sim_on_closed(r->sim, c->role, c->idx, false, "destroyed", lg_now_us());
    }
    c->st = C_DONE;
    c->wsi = NULL;
    lws_set_opaque_user_data(wsi, NULL);
    conn_reset(c);
    if (r->live_wsi) r->live_wsi--;
    break;
  default: break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {
    {"meridian", callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void tick_run(run *r) {
  int64_t now = lg_now_us();
  if (r->finished) return; /* only keeps the loop waking up while the closes go out */
  if (*r->stop) lg_sim_stop(r->sim);
  lg_sim_tick(r->sim, now);
  start_connects(r);
  if (r->o->progress && now - r->last_progress_us >= 1000000) {
    char line[300];
    lg_sim_progress(r->sim, now, line, sizeof line);
    fprintf(stderr, "%s\n", line);
    r->last_progress_us = now;
  }
  if (lg_sim_done(r->sim)) r->finished = true;
}

static void tick(lws_sorted_usec_list_t *sul) {
  run *r = lws_container_of(sul, run, sul);
  lws_sul_schedule(r->ctx, 0, &r->sul, tick, (lws_usec_t)r->o->tick_ms * LWS_US_PER_MS);
  tick_run(r);
}

/* On the epoll loop the tick is a libev timer: lws 4.1.6's libev glue arms its own timer only
 * after I/O, so lws's timeouts (connect, idle pings) run when lws_cancel_service wakes it. */
static void on_ev_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  run *r = w->data;
  tick_run(r);
  lws_cancel_service(r->ctx);
}

/* The loop: "epoll" (default, or NULL) or "poll". 0, or -1 for another name. */
static int loop_setup(run *r, struct lws_context_creation_info *info, void **foreign) {
  const char *name = r->o->event_loop ? r->o->event_loop : "epoll";
  if (strcmp(name, "poll") == 0) return 0;
  if (strcmp(name, "epoll") != 0) return -1;
  r->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
  if (!r->loop) return -1;
  foreign[0] = r->loop;
  info->foreign_loops = foreign;
  info->options |= LWS_SERVER_OPTION_LIBEV;
  return 0;
}

static void loop_once(run *r) {
  if (r->loop)
    ev_run(r->loop, EVRUN_ONCE);
  else
    lws_service(r->ctx, 0);
}

int lg_ws_run(const lg_ws_opts *o, size_t drivers, size_t max_riders,
              lg_sim *(*make_sim)(void *ud, const lg_io *io, char *err, size_t errcap), void *ud,
              volatile int *stop_flag, lg_sim **out_sim, char *err, size_t errcap) {
  run r;
  memset(&r, 0, sizeof r);
  r.o = o;
  r.idle_policy = idle_policy_for(o);
  r.stop = stop_flag;
  *out_sim = NULL;
  r.drivers = calloc(drivers ? drivers : 1, sizeof *r.drivers);
  r.riders = calloc(max_riders ? max_riders : 1, sizeof *r.riders);
  if (!r.drivers || !r.riders) {
    snprintf(err, errcap, "out of memory");
    goto fail;
  }
  r.n_drivers = drivers;
  r.n_riders = max_riders;
  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
  info.fd_limit_per_thread = (unsigned int)(drivers + max_riders + 64);
  void *foreign[1] = {NULL};
  if (loop_setup(&r, &info, foreign) != 0) {
    snprintf(err, errcap, "event loop \"%s\": neither epoll nor poll, or no epoll loop",
             o->event_loop ? o->event_loop : "epoll");
    goto fail;
  }
  g_run = &r;
  r.ctx = lws_create_context(&info);
  if (!r.ctx) {
    snprintf(err, errcap, "cannot create the libwebsockets context");
    goto fail;
  }
  lg_io io = {&r, io_open, io_send, io_close, io_queued, io_describe};
  r.sim = make_sim(ud, &io, err, errcap);
  if (!r.sim) goto fail;
  if (r.loop) {
    double tick_s = (double)o->tick_ms / 1e3;
    ev_timer_init(&r.ev_tick, on_ev_tick, 1e-6, tick_s);
    r.ev_tick.data = &r;
    ev_timer_start(r.loop, &r.ev_tick);
    while (!r.finished) ev_run(r.loop, EVRUN_ONCE);
  } else {
    lws_sul_schedule(r.ctx, 0, &r.sul, tick, 1);
    while (!r.finished)
      if (lws_service(r.ctx, 0) < 0) break;
  }
  /* let the closes go out, then stop (at most 3 s) */
  int64_t until = lg_now_us() + 3000000;
  while (r.live_wsi > 0 && lg_now_us() < until) loop_once(&r);
  if (r.loop) ev_timer_stop(r.loop, &r.ev_tick);
  lws_context_destroy(r.ctx);
  r.ctx = NULL;
  if (r.loop) ev_loop_destroy(r.loop);
  r.loop = NULL;
  for (size_t i = 0; i < r.n_drivers; i++) conn_reset(&r.drivers[i]);
  for (size_t i = 0; i < r.n_riders; i++) conn_reset(&r.riders[i]);
  free(r.drivers);
  free(r.riders);
  g_run = NULL;
  *out_sim = r.sim;
  return 0;
fail:
  if (r.ctx) lws_context_destroy(r.ctx);
  if (r.loop) ev_loop_destroy(r.loop);
  lg_sim_free(r.sim);
  if (r.drivers)
    for (size_t i = 0; i < r.n_drivers; i++) conn_reset(&r.drivers[i]);
  if (r.riders)
    for (size_t i = 0; i < r.n_riders; i++) conn_reset(&r.riders[i]);
  free(r.drivers);
  free(r.riders);
  g_run = NULL;
  return -1;
}
