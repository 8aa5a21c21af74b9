/*
 * http_server.c: the gateway's HTTP protocol callback (lws protocol "http"): /healthz,
 * /readyz, /metrics (bodies from services/common's mrd_admin_respond), the ops stream's
 * GET /v1/ops/roads, keep-alive, and the refusals every request and upgrade may get before
 * any WebSocket exists: 431 for request headers above MERIDIAN_GW_MAX_HEADER_BYTES, the raw
 * HTTP/1.1 answers of a refused upgrade (401, 403, 404, 429, 503) and their rate-limited log
 * lines, and the count of connections lws dropped before a whole request arrived. The
 * WebSocket protocol callback is ws_server.c's; the /ops static files are lws's mount.
 * Not thread-safe: the lws loop only.
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received (glibc's lacks it) */

#include "mrd/log.h"
#include "ops_io.h"
#include "server.h"

/* ---- refusals ----------------------------------------------------------------------------- */

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
void gw_log_refusal(gw_server *s, struct lws *wsi, int status, const char *why) {
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
void gw_refuse_http(struct lws *wsi, int status) {
  const char *line, *body, *extra = "";
  switch (status) {
  case 401:
    line = "Unauthorized";
    body = "invalid or missing token\n";
    extra = "www-authenticate: Bearer\r\n";
    break;
  case 403:
    line = "Forbidden";
    body = "the token's role does not match the endpoint\n";
    break;
  case 429:
    line = "Too Many Requests";
    body = "too many new connections from this address; retry later\n";
    extra = "retry-after: 1\r\n";
    break;
  case 503:
    line = "Service Unavailable";
    body = "the gateway cannot take this connection now; retry later\n";
    extra = "retry-after: 5\r\n";
    break;
  case 400:
    line = "Bad Request";
    body = "no such WebSocket subprotocol (send none)\n";
    break;
  case 431:
    line = "Request Header Fields Too Large";
    body = "request header fields too large\n";
    break;
  default:
    line = "Not Found";
    body = "not found\n";
    break;
  }
  unsigned char buf[LWS_PRE + 512];
  int n = snprintf((char *)buf + LWS_PRE, sizeof buf - LWS_PRE,
                   "HTTP/1.1 %d %s\r\n%scontent-type: text/plain\r\ncontent-length: %zu\r\n"
                   "connection: close\r\n\r\n%s",
                   status, line, extra, strlen(body), body);
  if (n > 0 && (size_t)n < sizeof buf - LWS_PRE)
    lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
}

/* An upgrade bound to a protocol that is not a WebSocket endpoint ("http", "gw-kafka-wake"),
 * refused before its 101: accepted, it would be a WebSocket nobody serves, unauthenticated
 * and outside the connection cap, its pings answered and its messages dropped. A client
 * gets there by naming such a protocol in Sec-WebSocket-Protocol (400), or by sending none
 * while a gateway starts: lws applies the vhost's default protocol (pvo "default") on its
 * loop's first turn, and upgrades already waiting on the listening socket (every app
 * reconnecting after a restart) can be read before that and bound to protocols[0] (503:
 * the app retries and lands on "meridian"). The chaos replay's lost trips were such apps. */
void gw_refuse_not_ours(gw_server *s, struct lws *wsi) {
  bool named = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) > 0;
  gw_refuse_http(wsi, named ? 400 : 503);
  gw_log_refusal(s, wsi, named ? 400 : 503,
                 named ? "not a WebSocket subprotocol of the gateway"
                       : "upgrade before the WebSocket protocol was ready");
}

/* The bytes the kernel received on c's socket so far (frames of every kind and the
 * handshake); false when the socket cannot say. */
bool gw_socket_bytes(struct lws *wsi, uint64_t *received, uint64_t *sent) {
  int fd = lws_get_socket_fd(wsi);
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
  if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
    return false;
  *received = ti.tcpi_bytes_received;
  *sent = len >= offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof ti.tcpi_bytes_sent
              ? ti.tcpi_bytes_sent
              : 0;
  return true;
}

/* Request headers above MERIDIAN_GW_MAX_HEADER_BYTES are answered 431. lws itself closes a
 * connection whose headers overflow its buffer without a word (and has shut the socket
 * down before any callback could answer), so its buffer is GW_LWS_HEADER_BUFFER, far above
 * the limit, and the limit is checked here once lws has the whole head: the bytes the
 * socket received for this request (since the previous request of a keep-alive
 * connection, from rx_base). True when the request was refused (return -1 then). */
bool gw_refuse_large_headers(gw_server *s, struct lws *wsi, uint64_t rx_base) {
  uint64_t got = 0, sent = 0;
  if (!gw_socket_bytes(wsi, &got, &sent) || got < rx_base ||
      got - rx_base <= (uint64_t)s->cfg->max_header_bytes)
    return false;
  gw_refuse_http(wsi, 431);
  gw_log_refusal(s, wsi, 431, "request headers too large");
  return true;
}

/* A connection lws closed before a whole request arrived (headers beyond even its buffer,
 * or not HTTP): nothing can be answered any more (lws shut the socket down), but it is
 * counted and logged at the bounded rate. */
void gw_note_header_error(gw_server *s, struct lws *wsi) {
  uint64_t got = 0, sent = 0;
  if (!gw_socket_bytes(wsi, &got, &sent) || got == 0 || sent != 0) return;
  gw_log_refusal(s, wsi, got >= GW_LWS_HEADER_BUFFER ? 431 : 400,
                 got >= GW_LWS_HEADER_BUFFER ? "request headers beyond the buffer: dropped"
                                             : "incomplete or malformed request: dropped");
}

/* ---- answers ------------------------------------------------------------------------------- */

static int http_reply(struct lws *wsi, gw_http_conn *c, unsigned status, const char *type,
                      char *body /* heap, taken */, size_t len) {
  unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
  c->body = body;
  c->len = len;
  if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return 1;
  lws_callback_on_writable(wsi);
  return 0;
}

/* /readyz: Kafka assigned, a shard map loaded, Redis answering, not stopping. */
int gw_ready(void *ud, char *reason, size_t cap) {
  gw_server *s = ud;
  bool redis = mrd_redis_ping(s->redis) == 0;
  if (s->kafka_ready && s->map && redis && !s->stopping) return 0;
  snprintf(reason, cap, "%s%s%s%s", s->stopping ? "stopping; " : "",
           s->kafka_ready ? "" : "kafka: down; ", s->map ? "" : "no shard map; ",
           redis ? "" : "redis: down; ");
  return 1;
}

/* /healthz, /readyz, /metrics (services/common's responder), anything else 404. */
static int on_http(gw_server *s, struct lws *wsi, gw_http_conn *c, const char *path) {
  unsigned ops_status;
  const char *ops_type;
  char *ops_body;
  size_t ops_len;
  bool ops;
  if (gw_ops_io_http(s, path, &ops, &ops_status, &ops_type, &ops_body, &ops_len) != 0) return 1;
  if (ops) return http_reply(wsi, c, ops_status, ops_type, ops_body, ops_len);
  mrd_http_response r;
  if (mrd_admin_respond(&s->health, path, &r) != 0) return 1;
  return http_reply(wsi, c, (unsigned)r.status, r.content_type, r.body, r.body_len);
}

/* ---- the HTTP protocol callback ---------------------------------------------------------- */

int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len) {
  (void)len;
  gw_server *s = lws_context_user(lws_get_context(wsi));
  gw_http_conn *c = user; /* NULL before lws binds a request to this protocol */
  switch (reason) {
  case LWS_CALLBACK_HTTP: return on_http(s, wsi, c, (const char *)in);
  case LWS_CALLBACK_HTTP_WRITEABLE: {
    if (!c || !c->body) break;
    unsigned char *buf = malloc(LWS_PRE + c->len + 1);
    if (!buf) return -1;
    memcpy(buf + LWS_PRE, c->body, c->len);
    int n = lws_write(wsi, buf + LWS_PRE, c->len, LWS_WRITE_HTTP_FINAL);
    free(buf);
    free(c->body);
    c->body = NULL;
    if (n < 0) return -1;
    uint64_t sent = 0;
    gw_socket_bytes(wsi, &c->rx_base, &sent); /* the next request's head starts here */
    if (lws_http_transaction_completed(wsi)) return -1;
    return 0;
  }
  case LWS_CALLBACK_HTTP_FILE_COMPLETION: /* a file of the /ops mount went out: keep-alive */
    if (lws_http_transaction_completed(wsi)) return -1;
    break;
  case LWS_CALLBACK_CLOSED_HTTP:
    if (c) {
      free(c->body);
      c->body = NULL;
    } else {
      gw_note_header_error(s, wsi);
    }
    break;
  case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
    return gw_refuse_large_headers(s, wsi, c ? c->rx_base : 0) ? -1 : 0;
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: gw_refuse_not_ours(s, wsi); return -1;
  case LWS_CALLBACK_ESTABLISHED: /* cannot happen (refused above); never serve it if it does */
    mrd_log_warn("ws_on_http_protocol", "fd=%d", lws_get_socket_fd(wsi));
    return -1;
  default: break;
  }
  return 0;
}
