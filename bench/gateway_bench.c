/*
 * gateway_bench: driver location updates through meridian-gateway into Kafka (devkafka),
 * side by side with a plain libwebsockets echo server, both driven by the same client in
 * the same run on the same machine. The echo server is the anchor: the raw cost of the
 * WebSocket layer here, with no parsing, validation, routing or Kafka behind it.
 *
 * One client process, one lws event loop, GW_BENCH_CONNS (default 1000) driver
 * connections, each authenticated with its own HS256 token minted by mrd_jwt from
 * MERIDIAN_JWT_SECRET. Every message is a valid `location` with a `ref` (positions around
 * eight Manhattan neighbourhoods, so halo copies to neighbouring shards happen as they
 * would), so the gateway answers each with `ack` once Kafka has confirmed the write
 * (ack = durable), and the echo server answers with the message itself. Per target
 * (GW_BENCH_ROUNDS = 2 rounds, each measuring meridian then lws-echo, samples pooled, so
 * that whatever else loads the machine weighs on both alike):
 *  - update_cost: closed loop, GW_BENCH_SAT_CONNS (200) of the connections each keep
 *    GW_BENCH_WINDOW (16) updates in flight for GW_BENCH_SECONDS (2) after 0.5 s of
 *    warm-up; the answers per 250 ms interval give a rate, reported as us per update (1e6 / rate)
 *    so that the anchor's median over Meridian's is the usual ratio (here Meridian's rate
 *    over the echo rate: the target is >= 0.6).
 *  - latency_at_1k, latency_at_20k: open loop, every connection sends at a fixed rate
 *    (in total 1,000 and GW_BENCH_RATE = 20,000 updates/s, i.e. 20/s per connection with
 *    1000 connections), 0.5 s warm-up then GW_BENCH_SECONDS; latency is from the time a
 *    message was due (not when it left: no coordinated omission) to its answer, in us,
 *    with p50 (median), p95 and p99. For Meridian that is the ack latency: the WebSocket
 *    round trip plus parse, route, Kafka produce and the broker's acknowledgement.
 *  - latency_at_80pct: only when GW_BENCH_RATE is more than this machine sustains through
 *    the gateway: the same at 80% of Meridian's first closed-loop rate (a latency that is
 *    not queueing behind an overload); the anchor runs at the same rate.
 *
 * Rate limits: the gateway under test is started by the bench itself (the meridian-gateway
 * next to this binary, with the stack's .run/env in the environment) on a free loopback
 * port with the per-driver location limit raised to its maximum
 * (MERIDIAN_GW_DRIVER_RATE/BURST = 100000): both the closed loop (16 in flight per
 * connection) and 20k/s over 1000 connections are far above the default 5/s, burst 10,
 * and staying within it would take 4000+ connections, where lws's default poll() loop
 * (GW_BENCH_EVENT_LOOP=poll; the default is epoll through libev in all three processes)
 * costs O(connections) per wake-up and the client would measure itself. The token bucket is still
 * checked on every message. GW_BENCH_GATEWAY_URL=ws://host:port uses a running gateway instead (its
 * limits apply). The echo server is a child process (its own loop, like the gateway), on another
 * free port, configured like the gateway's listener. devkafka, the gateway, the echo server and
 * this client share the machine's cores: what Kafka costs the broker is in the figures.
 *
 * Not a test and not timed by CI; about 45 s. Progress and the human table go to stderr;
 * the last line of stdout is the JSON object (bench/README.md), with an extra "p99"
 * key in the latency rows.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libwebsockets.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "mrd/jwt.h"

#include "bench_machine.h"

#define MAX_MSGS (4u << 20) /* messages tracked per phase */
#define RX_MAX 1024         /* answers are ~60 B (ack) to ~150 B (echo) */
#define INTERVAL_NS 250e6   /* throughput is counted per 250 ms */
#define MAX_INTERVALS 64
#define WARMUP_NS 0.5e9 /* before each measured phase */
#define DRAIN_NS 5e9    /* at most, for the answers of a phase before the next */

/* ---- the event loop under lws ------------------------------------------------------------ */

/* GW_BENCH_EVENT_LOOP: "epoll" (default) runs the client, the echo server and the gateway
 * (MERIDIAN_GW_EVENT_LOOP) on libev's epoll backend through lws's libev plugin, with a loop
 * of ours ("foreign", so lws takes over no signals); "poll" on lws's own poll() loop, whose
 * every wake-up costs O(connections) in all three processes. */
static bool g_epoll = true;

/* Sets info up for the loop: a new libev loop in *loop (NULL on poll). Returns 0 or -1. */
static int loop_setup(struct lws_context_creation_info *info, void **foreign,
                      struct ev_loop **loop) {
  *loop = NULL;
  if (!g_epoll) return 0;
  *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
  if (!*loop) return -1;
  foreign[0] = *loop;
  info->foreign_loops = foreign;
  info->options |= LWS_SERVER_OPTION_LIBEV;
  return 0;
}

/* One turn of the loop: blocks until an event or an lws timer. Returns -1 to stop. */
static int loop_once(struct lws_context *ctx, struct ev_loop *loop) {
  if (loop) {
    ev_run(loop, EVRUN_ONCE);
    return 0;
  }
  return lws_service(ctx, 0) < 0 ? -1 : 0;
}

/* ---- time and statistics ---------------------------------------------------------------- */

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double g_start_ns;

/* A progress line on stderr, prefixed with the seconds since the start. */
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "gateway_bench [%5.1f s] ", (now_ns() - g_start_ns) / 1e9);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* q-quantile of sorted v[0..n). */
static double quantile(const double *v, size_t n, double q) {
  if (n == 0) return 0;
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

/* The samples of one workload on one implementation, pooled over the rounds. */
typedef struct series {
  char workload[32];
  char impl[16];
  bool has_p99; /* latency rows also report p99 */
  double *v;    /* us: interval costs (update_cost) or latencies */
  size_t n, cap;
  int rounds, unsustained;
  uint64_t errors, unanswered;
  double min_rate;         /* the lowest rate answered in a round that did not sustain */
  double median, p95, p99; /* filled by finish_series */
} series;

static series g_series[16];
static size_t g_nseries;

static series *series_get(const char *w, const char *impl, bool has_p99) {
  for (size_t i = 0; i < g_nseries; i++)
    if (strcmp(g_series[i].workload, w) == 0 && strcmp(g_series[i].impl, impl) == 0)
      return &g_series[i];
  if (g_nseries == sizeof g_series / sizeof g_series[0]) abort();
  series *r = &g_series[g_nseries++];
  snprintf(r->workload, sizeof r->workload, "%s", w);
  snprintf(r->impl, sizeof r->impl, "%s", impl);
  r->has_p99 = has_p99;
  return r;
}

static void series_add(series *r, const double *v, size_t n) {
  if (r->n + n > r->cap) {
    size_t cap = (r->n + n) * 2;
    double *nv = realloc(r->v, cap * sizeof *nv);
    if (!nv) abort();
    r->v = nv;
    r->cap = cap;
  }
  memcpy(r->v + r->n, v, n * sizeof *v);
  r->n += n;
}

static void finish_series(series *r) {
  qsort(r->v, r->n, sizeof r->v[0], cmp_double);
  r->median = quantile(r->v, r->n, 0.5);
  r->p95 = quantile(r->v, r->n, 0.95);
  r->p99 = quantile(r->v, r->n, 0.99);
}

static const series *find_series(const char *w, const char *impl) {
  for (size_t i = 0; i < g_nseries; i++)
    if (strcmp(g_series[i].workload, w) == 0 && strcmp(g_series[i].impl, impl) == 0)
      return &g_series[i];
  return NULL;
}

/* ---- the echo server (anchor), run in a child process ------------------------------------ */

#define ECHO_QUEUE 256 /* messages queued per session; the client keeps at most 16 in flight */

typedef struct echo_msg {
  unsigned char *buf; /* LWS_PRE headroom + len */
  size_t len;
} echo_msg;

/* Per-session data of the echo protocol: the message being received and a ring of answers. */
typedef struct echo_sess {
  unsigned char rx[4096];
  size_t rx_len;
  echo_msg q[ECHO_QUEUE];
  int head, count;
} echo_sess;

static int echo_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len) {
  echo_sess *s = user;
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED: memset(s, 0, sizeof *s); break;
  case LWS_CALLBACK_RECEIVE:
    if (lws_is_first_fragment(wsi)) s->rx_len = 0;
    if (s->rx_len + len > sizeof s->rx) return -1;
    memcpy(s->rx + s->rx_len, in, len);
    s->rx_len += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
      if (s->count == ECHO_QUEUE) return -1;
      unsigned char *b = malloc(LWS_PRE + s->rx_len);
      if (!b) return -1;
      memcpy(b + LWS_PRE, s->rx, s->rx_len);
      s->q[(s->head + s->count) % ECHO_QUEUE] = (echo_msg){b, s->rx_len};
      s->count++;
      lws_callback_on_writable(wsi);
    }
    break;
  case LWS_CALLBACK_SERVER_WRITEABLE: {
    if (!s->count) break;
    echo_msg *m = &s->q[s->head];
    int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    free(m->buf);
    s->head = (s->head + 1) % ECHO_QUEUE;
    s->count--;
    if (n < (int)m->len) return -1;
    if (s->count) lws_callback_on_writable(wsi);
    break;
  }
  case LWS_CALLBACK_CLOSED:
    while (s->count) {
      free(s->q[s->head].buf);
      s->head = (s->head + 1) % ECHO_QUEUE;
      s->count--;
    }
    break;
  default: break;
  }
  return 0;
}

/* The child: an lws server on 127.0.0.1:port, configured like the gateway's, until killed. */
static void echo_server_run(int port) {
  static const struct lws_protocols protos[] = {
      {"echo", echo_cb, sizeof(echo_sess), 4096, 0, NULL, 0}, {NULL, NULL, 0, 0, 0, NULL, 0}};
  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = "127.0.0.1";
  info.protocols = protos;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
  info.pt_serv_buf_size = 32 * 1024;
  void *foreign[1];
  struct ev_loop *loop;
  if (loop_setup(&info, foreign, &loop)) _exit(3);
  struct lws_context *ctx = lws_create_context(&info);
  if (!ctx) _exit(3);
  for (;;)
    if (loop_once(ctx, loop) < 0) break;
  lws_context_destroy(ctx);
  _exit(0);
}

/* ---- processes and ports ------------------------------------------------------------------ */

static bool port_free(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* A free port from base up (the stack's block: MERIDIAN_STACK_PORT_BASE + 85 ...). */
static int pick_port(int from) {
  for (int p = from; p < from + 50 && p < 65536; p++)
    if (port_free(p)) return p;
  return -1;
}

/* A socket connected to 127.0.0.1:port, or -1. */
static int loopback_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* True when something accepts TCP connections on 127.0.0.1:port. */
static bool tcp_open(int port) {
  int fd = loopback_connect(port);
  if (fd >= 0) close(fd);
  return fd >= 0;
}

/* Sends a plain HTTP GET and returns the status, or -1 when nothing answered in 1 s. */
static int http_status(int port, const char *path) {
  int fd = loopback_connect(port);
  if (fd < 0) return -1;
  int status = -1;
  char req[256], resp[256];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  struct timeval tv = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (write(fd, req, (size_t)n) == n) {
    ssize_t r = read(fd, resp, sizeof resp - 1);
    if (r > 12) {
      resp[r] = '\0';
      status = atoi(resp + 9);
    }
  }
  close(fd);
  return status;
}

static void stop_child(pid_t pid, const char *what) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; i++) { /* 10 s: the gateway flushes Kafka for up to 5 s */
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) return;
    sleep_ms(100);
  }
  say("%s (pid %d) ignored SIGTERM: SIGKILL", what, (int)pid);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static char g_gw_log[PATH_MAX];

/* Starts meridian-gateway from this binary's directory on port, env inherited plus the
 * raised location limits. Returns the pid, or -1. */
static pid_t start_gateway(int port) {
  char self[PATH_MAX], bin[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return -1;
  self[n] = '\0';
  snprintf(bin, sizeof bin, "%s/meridian-gateway", dirname(self));
  if (access(bin, X_OK) != 0) {
    say("%s not found (build the release preset)", bin);
    return -1;
  }
  snprintf(g_gw_log, sizeof g_gw_log, "/tmp/gateway_bench.%d.gateway.log", (int)getpid());
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    setenv("MERIDIAN_GATEWAY_HOST", "127.0.0.1", 1);
    setenv("MERIDIAN_GATEWAY_PORT", p, 1);
    setenv("MERIDIAN_GW_DRIVER_RATE", "100000", 1);
    setenv("MERIDIAN_GW_DRIVER_BURST", "100000", 1);
    setenv("MERIDIAN_GW_EVENT_LOOP", g_epoll ? "epoll" : "poll", 1);
    int fd = open(g_gw_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int nul = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (nul >= 0) dup2(nul, 0);
    execl(bin, "meridian-gateway", (char *)NULL);
    _exit(127);
  }
  return pid;
}

static void tail_log(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[512];
  char last[10][512];
  int n = 0;
  while (fgets(line, sizeof line, f)) snprintf(last[n++ % 10], sizeof last[0], "%s", line);
  fclose(f);
  for (int i = n > 10 ? n - 10 : 0; i < n; i++) fprintf(stderr, "  | %s", last[i % 10]);
}

/* ---- the client --------------------------------------------------------------------------- */

typedef enum mode { MODE_IDLE, MODE_CLOSED_LOOP, MODE_FIXED_RATE } mode;

/* One driver connection of the client. */
typedef struct bconn {
  struct lws *wsi;
  int idx;
  bool up, failed, active; /* active: takes part in the current phase */
  char path[MRD_JWT_MAX_TOKEN + 64];
  double lat, lon; /* home position, moved a little by every update */
  uint64_t seq;
  int inflight;
  double next_due_ns; /* fixed rate: when the next update is due */
  unsigned char rx[RX_MAX];
  size_t rx_len;
  bool rx_overflow;
} bconn;

/* The state of the run (one thread: the lws loop). */
static struct {
  struct lws_context *ctx;
  struct ev_loop *loop; /* libev loop of ctx; NULL on lws's poll() loop */
  bconn *conns;
  int nconns, up, failed, closed;
  mode mode;
  int phase;        /* in every ref, so late answers of an earlier phase are ignored */
  int window;       /* closed loop: updates in flight per connection */
  double period_ns; /* fixed rate: between two updates of one connection */
  double t0, measure_from, measure_to, send_until;
  double *sent_ns; /* by message id: when it was due / sent; < 0 once answered */
  uint32_t next_id;
  double *lat_us; /* latencies of answers to messages sent in [measure_from, measure_to) */
  size_t nlat;
  uint64_t per_interval[MAX_INTERVALS];
  uint64_t sent, answered, errors, unknown;
  uint64_t answered_in_window; /* fixed rate: answers received in [measure_from, measure_to) */
  char first_error[256];
  lws_sorted_usec_list_t tick; /* the 1 ms tick on lws's poll() loop */
  ev_timer ev_tick;            /* the same on libev */
} g;

/* Midtown, Upper West Side, Harlem, Chelsea, Lower East Side, Upper East Side, Financial
 * District, Washington Heights: all inside the service area (Manhattan's boundary) with
 * the 0.002 degree jitter added below. */
static const double homes[][2] = {{40.7549, -73.9840}, {40.7870, -73.9754}, {40.8116, -73.9465},
                                  {40.7465, -74.0014}, {40.7150, -73.9843}, {40.7736, -73.9566},
                                  {40.7075, -74.0113}, {40.8417, -73.9394}};

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static double unif(double lo, double hi) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return lo + (hi - lo) * (double)(g_rng >> 11) / 9007199254740992.0;
}

static int send_update(bconn *c, double due_ns) {
  if (g.next_id >= MAX_MSGS) return 0;
  uint32_t id = g.next_id++;
  unsigned char buf[LWS_PRE + 256];
  c->seq++;
  double lat = c->lat + unif(-0.0005, 0.0005), lon = c->lon + unif(-0.0005, 0.0005);
  int n = snprintf((char *)buf + LWS_PRE, 256,
                   "{\"type\":\"location\",\"lat\":%.6f,\"lon\":%.6f,\"speed_mps\":8.5,\"ts\":%lld,"
                   "\"seq\":%llu,\"ref\":\"%d.%u\"}",
                   lat, lon, (long long)wall_ms(), (unsigned long long)c->seq, g.phase, id);
  g.sent_ns[id] = due_ns;
  c->inflight++;
  g.sent++;
  if (lws_write(c->wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n) return -1;
  return 0;
}

static void on_answer(bconn *c) {
  double now = now_ns();
  c->inflight--;
  const char *msg = (const char *)c->rx;
  const char *r = strstr(msg, "\"ref\":\"");
  int phase = -1;
  unsigned id = 0;
  if (!r || sscanf(r + 7, "%d.%u", &phase, &id) != 2 || phase != g.phase || id >= g.next_id ||
      g.sent_ns[id] < 0) {
    g.unknown++;
    return;
  }
  if (strstr(msg, "\"type\":\"error\"")) {
    g.errors++;
    if (!g.first_error[0]) snprintf(g.first_error, sizeof g.first_error, "%.200s", msg);
  }
  g.answered++;
  double sent = g.sent_ns[id];
  g.sent_ns[id] = -1;
  if (g.mode == MODE_CLOSED_LOOP) {
    if (now >= g.measure_from && now < g.measure_to) {
      size_t k = (size_t)((now - g.measure_from) / INTERVAL_NS);
      if (k < MAX_INTERVALS) g.per_interval[k]++;
    }
    if (c->active && now < g.send_until) lws_callback_on_writable(c->wsi);
  } else {
    if (sent >= g.measure_from && sent < g.measure_to) g.lat_us[g.nlat++] = (now - sent) / 1e3;
    if (now >= g.measure_from && now < g.measure_to) g.answered_in_window++;
  }
}

static int on_writeable(bconn *c) {
  if (!c->active || !c->up) return 0;
  double now = now_ns();
  if (g.mode == MODE_CLOSED_LOOP) {
    if (now >= g.send_until || c->inflight >= g.window) return 0;
    if (send_update(c, now)) return -1;
    if (c->inflight < g.window) lws_callback_on_writable(c->wsi);
  } else if (g.mode == MODE_FIXED_RATE) {
    if (c->next_due_ns > now || c->next_due_ns >= g.send_until) return 0;
    double due = c->next_due_ns;
    c->next_due_ns += g.period_ns;
    if (send_update(c, due)) return -1;
    if (c->next_due_ns <= now && c->next_due_ns < g.send_until) lws_callback_on_writable(c->wsi);
  }
  return 0;
}

static int client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len) {
  bconn *c = user;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    if (!c) break;
    if (g.failed++ < 3) say("connection %d failed: %s", c->idx, in ? (const char *)in : "?");
    c->failed = true;
    c->wsi = NULL;
    break;
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    c->up = true;
    g.up++;
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (lws_is_first_fragment(wsi)) {
      c->rx_len = 0;
      c->rx_overflow = false;
    }
    if (c->rx_len + len >= sizeof c->rx)
      c->rx_overflow = true;
    else {
      memcpy(c->rx + c->rx_len, in, len);
      c->rx_len += len;
    }
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
      c->rx[c->rx_len] = '\0';
      if (c->rx_overflow)
        g.unknown++;
      else
        on_answer(c);
    }
    break;
  case LWS_CALLBACK_CLIENT_WRITEABLE: return on_writeable(c);
  case LWS_CALLBACK_CLIENT_CLOSED:
    if (!c) break;
    if (c->up) g.up--;
    c->up = false;
    c->wsi = NULL;
    g.closed++;
    break;
  default: break;
  }
  return 0;
}

static const struct lws_protocols client_protocols[] = {{"bench", client_cb, 0, RX_MAX, 0, NULL, 0},
                                                        {NULL, NULL, 0, 0, 0, NULL, 0}};

/* Every 1 ms: wake the connections whose next fixed-rate update is due. */
static void tick(void) {
  if (g.mode != MODE_FIXED_RATE) return;
  double now = now_ns();
  for (int i = 0; i < g.nconns; i++) {
    bconn *c = &g.conns[i];
    if (c->active && c->up && c->next_due_ns <= now && c->next_due_ns < g.send_until)
      lws_callback_on_writable(c->wsi);
  }
}

/* On lws's poll() loop the tick is an lws timer (sul). */
static void on_tick(lws_sorted_usec_list_t *sul) {
  (void)sul;
  tick();
  lws_sul_schedule(g.ctx, 0, &g.tick, on_tick, 1000 /* us */);
}

/* On libev it is a libev timer: lws 4.1.6's libev glue re-arms its own timer only after
 * I/O, and an lws 1 ms timer stalled for seconds at 1,000 updates/s. */
static void on_ev_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)w;
  (void)revents;
  tick();
}

/* Services the loop until now_ns() >= until_ns or done() says so. */
static void run_until(double until_ns, bool (*done)(void)) {
  while (now_ns() < until_ns) {
    if (done && done()) return;
    if (loop_once(g.ctx, g.loop) < 0) return;
  }
}

static bool all_settled(void) { return g.up + g.failed + g.closed >= g.nconns; }

static bool nothing_in_flight(void) {
  for (int i = 0; i < g.nconns; i++)
    if (g.conns[i].up && g.conns[i].inflight > 0) return false;
  return true;
}

/* Opens nconns connections to port, at most 200 handshakes pending at once. Returns the
 * number up. */
static int connect_all(int port, const char *secret) {
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = client_protocols;
  info.pt_serv_buf_size = 32 * 1024;
  void *foreign[1];
  if (loop_setup(&info, foreign, &g.loop)) return 0;
  g.ctx = lws_create_context(&info);
  if (!g.ctx) return 0;
  g.up = g.failed = g.closed = 0;
  int64_t now_s = wall_ms() / 1000;
  double deadline = now_ns() + 30e9;
  for (int i = 0; i < g.nconns; i++) {
    bconn *c = &g.conns[i];
    int h = i % (int)(sizeof homes / sizeof homes[0]);
    memset(c, 0, sizeof *c);
    c->idx = i;
    c->lat = homes[h][0] + unif(-0.002, 0.002);
    c->lon = homes[h][1] + unif(-0.002, 0.002);
    char sub[64], *tok = NULL;
    snprintf(sub, sizeof sub, "bench-driver-%d", i);
    if (mrd_jwt_mint(secret, strlen(secret), sub, MRD_ROLE_DRIVER, 3600, now_s, &tok)) return 0;
    snprintf(c->path, sizeof c->path, "/v1/driver?token=%s", tok);
    free(tok);
    while (i - (g.up + g.failed + g.closed) >= 200 && now_ns() < deadline)
      if (loop_once(g.ctx, g.loop) < 0) break;
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = g.ctx;
    ci.address = "127.0.0.1";
    ci.port = port;
    ci.path = c->path;
    ci.host = "127.0.0.1";
    ci.origin = "127.0.0.1";
    ci.userdata = c;
    ci.local_protocol_name = "bench";
    ci.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&ci)) {
      c->failed = true;
      g.failed++;
    }
  }
  run_until(deadline, all_settled);
  if (g.loop) {
    ev_timer_init(&g.ev_tick, on_ev_tick, 1e-3, 1e-3);
    ev_timer_start(g.loop, &g.ev_tick);
  } else {
    lws_sul_schedule(g.ctx, 0, &g.tick, on_tick, 1000);
  }
  return g.up;
}

static void disconnect_all(void) {
  if (g.loop)
    ev_timer_stop(g.loop, &g.ev_tick);
  else
    lws_sul_cancel(&g.tick);
  lws_context_destroy(g.ctx);
  g.ctx = NULL;
  if (g.loop) ev_loop_destroy(g.loop);
  g.loop = NULL;
}

static void phase_reset(mode m, int active) {
  g.phase++;
  g.mode = m;
  g.next_id = 0;
  g.nlat = 0;
  g.sent = g.answered = g.errors = g.unknown = g.answered_in_window = 0;
  g.first_error[0] = '\0';
  memset(g.per_interval, 0, sizeof g.per_interval);
  for (int i = 0; i < g.nconns; i++) {
    g.conns[i].active = i < active && g.conns[i].up;
    g.conns[i].inflight = 0;
  }
}

static void report_phase(const char *impl, const char *what) {
  say("%-8s %-15s sent %llu answered %llu errors %llu unmatched %llu", impl, what,
      (unsigned long long)g.sent, (unsigned long long)g.answered, (unsigned long long)g.errors,
      (unsigned long long)g.unknown);
  if (g.first_error[0]) say("  first error: %s", g.first_error);
}

static void count_round(series *r) {
  r->rounds++;
  r->errors += g.errors;
  r->unanswered += g.sent - g.answered;
}

/* Closed loop: nsat connections, window in flight each; warm-up, then measure_s seconds. */
static double closed_loop(const char *impl, int nsat, int window, double measure_s) {
  phase_reset(MODE_CLOSED_LOOP, nsat);
  g.window = window;
  g.t0 = now_ns();
  g.measure_from = g.t0 + WARMUP_NS;
  g.measure_to = g.measure_from + measure_s * 1e9;
  g.send_until = g.measure_to;
  for (int i = 0; i < nsat; i++)
    if (g.conns[i].active) lws_callback_on_writable(g.conns[i].wsi);
  run_until(g.send_until, NULL);
  run_until(now_ns() + DRAIN_NS, nothing_in_flight); /* before the next phase */
  size_t k = (size_t)(measure_s * 1e9 / INTERVAL_NS);
  double cost[MAX_INTERVALS];
  uint64_t total = 0;
  for (size_t i = 0; i < k; i++) {
    total += g.per_interval[i];
    double rate = (double)g.per_interval[i] / (INTERVAL_NS / 1e9);
    cost[i] = rate > 0 ? 1e6 / rate : 1e9;
  }
  series *r = series_get("update_cost", impl, false);
  series_add(r, cost, k);
  count_round(r);
  say("%-8s closed loop     %.0f updates/s (%d connections x %d in flight)", impl,
      (double)total / measure_s, nsat, window);
  report_phase(impl, "closed loop");
  return (double)total / measure_s;
}

/* Open loop: every connection sends at rate/nconns per second; warm-up, then measure_s s. */
static void fixed_rate(const char *impl, const char *workload, double rate, double measure_s) {
  phase_reset(MODE_FIXED_RATE, g.nconns);
  int active = 0;
  for (int i = 0; i < g.nconns; i++) active += g.conns[i].active;
  if (!active) return;
  g.period_ns = 1e9 * active / rate;
  g.t0 = now_ns();
  g.measure_from = g.t0 + WARMUP_NS;
  g.measure_to = g.measure_from + measure_s * 1e9;
  g.send_until = g.measure_to;
  int k = 0;
  for (int i = 0; i < g.nconns; i++)
    if (g.conns[i].active) g.conns[i].next_due_ns = g.t0 + g.period_ns * (double)k++ / active;
  run_until(g.send_until, NULL);
  run_until(now_ns() + DRAIN_NS, nothing_in_flight);
  double achieved = (double)g.answered_in_window / measure_s;
  series *r = series_get(workload, impl, true);
  series_add(r, g.lat_us, g.nlat);
  count_round(r);
  if (achieved < 0.95 * rate) {
    if (!r->unsustained || achieved < r->min_rate) r->min_rate = achieved;
    r->unsustained++;
  }
  qsort(g.lat_us, g.nlat, sizeof g.lat_us[0], cmp_double);
  say("%-8s %-15s %.0f/s offered, %.0f/s answered, p50 %.0f us p99 %.0f us", impl, workload, rate,
      achieved, quantile(g.lat_us, g.nlat, 0.5), quantile(g.lat_us, g.nlat, 0.99));
  report_phase(impl, workload);
}

typedef struct params {
  int nsat, window;
  double rate, measure_s;
} params;

/* Runs every workload on one target. *rate80: the rate of latency_at_80pct; 0 = set it
 * from this target's closed-loop rate (Meridian runs first, the anchor then uses the same). */
static int run_target(const char *impl, int port, const char *secret, const params *p,
                      double *rate80) {
  double t = now_ns();
  int up = connect_all(port, secret);
  say("%-8s %d of %d connections up in %.1f s", impl, up, g.nconns, (now_ns() - t) / 1e9);
  if (up < g.nconns) {
    disconnect_all();
    return -1;
  }
  double sustained = closed_loop(impl, p->nsat, p->window, p->measure_s);
  if (*rate80 == 0) *rate80 = 500 * (double)(long)(0.8 * sustained / 500); /* 500/s steps */
  fixed_rate(impl, "latency_at_1k", 1000, p->measure_s);
  fixed_rate(impl, "latency_at_20k", p->rate, p->measure_s);
  /* when the target rate is beyond what this machine sustains through the gateway, also
   * at 80% of that: a latency that is not queueing behind an overload */
  if (*rate80 >= 1000 && *rate80 < 0.95 * p->rate)
    fixed_rate(impl, "latency_at_80pct", *rate80, p->measure_s);
  disconnect_all();
  say("%-8s done", impl);
  return 0;
}

/* ---- other Meridian services on the measured cores ----------------------------------------- */

/* How many meridian-* processes other than the gateway under test run here (read from
 * /proc/<pid>/comm). With the whole stack up, the dispatch shards consume every location
 * the bench produces and share the two cores with the client, the gateway and the broker:
 * the figures then measure the machine running all of Meridian, not the gateway. */
static int other_services(pid_t gw_pid) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0 || pid == (long)gw_pid) continue;
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fgets(comm, sizeof comm, f) && strncmp(comm, "meridian-", 9) == 0 &&
        strncmp(comm, "meridianctl", 11) != 0)
      n++;
    fclose(f);
  }
  closedir(d);
  return n;
}

static int g_others = -1; /* other_services() before the rounds */

/* ---- report ------------------------------------------------------------------------------ */

static void print_report(const params *p, int rounds) {
  char mach[200];
  bench_machine(mach, sizeof mach);
  for (size_t i = 0; i < g_nseries; i++) finish_series(&g_series[i]);
  fprintf(
      stderr,
      "\ngateway_bench: %d driver connections (closed loop: %d x %d in flight; open loop: all), "
      "%d interleaved rounds, lws on %s, machine: %s\n",
      g.nconns, p->nsat, p->window, rounds, g_epoll ? "epoll (libev)" : "poll()", mach);
  fprintf(stderr, "%-16s %-9s %4s %10s %10s %10s %7s %9s  %s\n", "workload", "impl", "unit",
          "median", "p95", "p99", "n", "vs anchor", "note");
  for (size_t i = 0; i < g_nseries; i++) {
    const series *r = &g_series[i];
    char ratio[16] = "", p99[16] = "-", note[96] = "";
    const series *m = find_series(r->workload, "meridian");
    if (m && r != m && m->median > 0) snprintf(ratio, sizeof ratio, "%.2f", r->median / m->median);
    if (r->has_p99) snprintf(p99, sizeof p99, "%.1f", r->p99);
    int len = 0;
    if (r->unsustained)
      len =
          snprintf(note, sizeof note, "not sustained in %d of %d rounds (down to %.0f/s)%s",
                   r->unsustained, r->rounds, r->min_rate, r->errors || r->unanswered ? "; " : "");
    if (r->errors || r->unanswered)
      snprintf(note + len, sizeof note - (size_t)len, "%llu errors, %llu unanswered",
               (unsigned long long)r->errors, (unsigned long long)r->unanswered);
    fprintf(stderr, "%-16s %-9s %4s %10.1f %10.1f %10s %7zu %9s  %s\n", r->workload, r->impl, "us",
            r->median, r->p95, p99, r->n, ratio, note);
  }
  fprintf(stderr,
          "(vs anchor: lws-echo's median over Meridian's; for update_cost that is Meridian's "
          "rate over the echo rate)\n");
  const series *me = find_series("update_cost", "meridian"),
               *ae = find_series("update_cost", "lws-echo");
  if (me && ae && me->median > 0 && ae->median > 0)
    fprintf(stderr,
            "sustained: meridian %.0f updates/s acked, lws-echo %.0f/s: %.2f of the echo rate "
            "(target >= 0.60)\n",
            1e6 / me->median, 1e6 / ae->median, ae->median / me->median);
  if (g_others > 0)
    fprintf(stderr,
            "note: %d other Meridian services (the stack's dispatch shards, trips, gateway) ran on "
            "these cores and consumed what the bench produced; for the gateway alone, run the "
            "stack with MERIDIAN_STACK_SERVICES=0\n",
            g_others);
  const char *lat[] = {"latency_at_1k", "latency_at_20k", "latency_at_80pct"};
  for (int i = 0; i < 3; i++) {
    const series *ml = find_series(lat[i], "meridian"), *al = find_series(lat[i], "lws-echo");
    if (ml && al)
      fprintf(stderr,
              "%s: ack p50 %.0f us, p99 %.0f us; echo p50 %.0f us, p99 %.0f us; added p50 %.0f us, "
              "p99 %.0f us%s\n",
              lat[i], ml->median, ml->p99, al->median, al->p99, ml->median - al->median,
              ml->p99 - al->p99, i == 1 ? " (target p99 added < 5000 us)" : "");
  }
  printf("{\"bench\": \"gateway_bench\", \"machine\": \"%s\", \"rows\": [", mach);
  for (size_t i = 0; i < g_nseries; i++) {
    const series *r = &g_series[i];
    printf("%s{\"workload\": \"%s\", \"impl\": \"%s\", \"unit\": \"us\", \"median\": %.2f, "
           "\"p95\": %.2f, ",
           i ? ", " : "", r->workload, r->impl, r->median, r->p95);
    if (r->has_p99) printf("\"p99\": %.2f, ", r->p99);
    printf("\"n\": %zu}", r->n);
  }
  printf("]}\n");
  for (size_t i = 0; i < g_nseries; i++) free(g_series[i].v);
}

/* ---- main ---------------------------------------------------------------------------------- */

static int env_int(const char *name, int def, int lo, int hi) {
  const char *v = getenv(name);
  if (!v || !*v) return def;
  char *end;
  long x = strtol(v, &end, 10);
  if (*end || x < lo || x > hi) {
    say("%s=%s: want an integer in [%d, %d]", name, v, lo, hi);
    exit(2);
  }
  return (int)x;
}

static int url_port(const char *url) {
  const char *p = strrchr(url, ':');
  return p ? atoi(p + 1) : -1;
}

int main(void) {
  g_start_ns = now_ns();
  signal(SIGPIPE, SIG_IGN);
  const char *secret = getenv("MERIDIAN_JWT_SECRET");
  if (!secret || !*secret) {
    fprintf(stderr,
            "gateway_bench: MERIDIAN_JWT_SECRET is not set: run `set -a; . .run/env; set +a` "
            "after scripts/stack up\n");
    return 2;
  }
  g.nconns = env_int("GW_BENCH_CONNS", 1000, 10, 15000);
  params p = {env_int("GW_BENCH_SAT_CONNS", 200, 1, 15000), env_int("GW_BENCH_WINDOW", 16, 1, 200),
              env_int("GW_BENCH_RATE", 20000, 100, 1000000), env_int("GW_BENCH_SECONDS", 2, 1, 30)};
  int rounds = env_int("GW_BENCH_ROUNDS", 2, 1, 10);
  const char *el = getenv("GW_BENCH_EVENT_LOOP");
  if (el && strcmp(el, "epoll") != 0 && strcmp(el, "poll") != 0) {
    say("GW_BENCH_EVENT_LOOP=%s: want epoll or poll", el);
    return 2;
  }
  g_epoll = !el || strcmp(el, "epoll") == 0;
  if (p.nsat > g.nconns) p.nsat = g.nconns;
  g.conns = calloc((size_t)g.nconns, sizeof *g.conns);
  g.sent_ns = malloc(MAX_MSGS * sizeof *g.sent_ns);
  g.lat_us = malloc(MAX_MSGS * sizeof *g.lat_us);
  if (!g.conns || !g.sent_ns || !g.lat_us) return 1;
  lws_set_log_level(LLL_ERR, NULL);
  int base = env_int("MERIDIAN_STACK_PORT_BASE", 15400, 1024, 65000) + 85;
  int rc = 1;
  pid_t echo_pid = -1, gw_pid = -1;

  double rate80 = 0;

  /* Both servers first, then the rounds, each measuring Meridian then the anchor, so that
   * what else runs on the machine weighs on both alike; samples are pooled. */
  int gw_port;
  const char *ext = getenv("GW_BENCH_GATEWAY_URL");
  if (ext && *ext) {
    gw_port = url_port(ext);
    say("using the running gateway %s (its rate limits apply)", ext);
  } else {
    gw_port = pick_port(base);
    if (gw_port < 0) goto out;
    fflush(NULL);
    gw_pid = start_gateway(gw_port);
    if (gw_pid < 0) goto out;
    double t = now_ns();
    int st = -1;
    while (now_ns() - t < 20e9 && (st = http_status(gw_port, "/readyz")) != 200) {
      if (waitpid(gw_pid, NULL, WNOHANG) == gw_pid) {
        gw_pid = -1;
        break;
      }
      sleep_ms(100);
    }
    if (st != 200) {
      say("the gateway did not get ready (log %s):", g_gw_log);
      tail_log(g_gw_log);
      goto out;
    }
    say("meridian-gateway on 127.0.0.1:%d (pid %d) ready in %.1f s, "
        "MERIDIAN_GW_DRIVER_RATE/BURST=100000",
        gw_port, (int)gw_pid, (now_ns() - t) / 1e9);
  }
  int echo_port = pick_port(gw_port + 1);
  if (echo_port < 0) goto out;
  fflush(NULL);
  echo_pid = fork();
  if (echo_pid == 0) echo_server_run(echo_port);
  if (echo_pid < 0) goto out;
  for (int i = 0; i < 250 && !tcp_open(echo_port); i++) sleep_ms(20);
  say("lws-echo on 127.0.0.1:%d (pid %d)", echo_port, (int)echo_pid);

  g_others = other_services(gw_pid);
  if (g_others > 0)
    say("warning: %d other Meridian services run on this machine (MERIDIAN_STACK_SERVICES=0 starts "
        "the stack without them)",
        g_others);
  for (int r = 0; r < rounds; r++) {
    say("round %d of %d", r + 1, rounds);
    if (run_target("meridian", gw_port, secret, &p, &rate80)) {
      if (gw_pid > 0) tail_log(g_gw_log);
      goto out;
    }
    if (run_target("lws-echo", echo_port, secret, &p, &rate80)) goto out;
  }
  print_report(&p, rounds);
  rc = 0;
out:
  stop_child(echo_pid, "echo server");
  stop_child(gw_pid, "gateway");
  if (rc == 0 && g_gw_log[0]) unlink(g_gw_log);
  free(g.conns);
  free(g.sent_ns);
  free(g.lat_us);
  return rc;
}
