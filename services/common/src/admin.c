/*
 * admin.c: /healthz /readyz /metrics (admin.h): the path router, and a minimal lws HTTP
 * server around it. Headers are written in LWS_CALLBACK_HTTP and the body, which may be
 * larger than one write, in LWS_CALLBACK_HTTP_WRITEABLE chunks.
 */
#include "mrd/admin.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrd/log.h"
#include "mrd_internal.h"

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define WRITE_CHUNK 4096 /* bytes of body per writeable callback */

static int text(mrd_http_response *out, int status, const char *body) {
  mrd__buf b = {0};
  mrd__buf_puts(&b, body);
  out->body = mrd__buf_take(&b, &out->body_len);
  if (out->body == NULL) return MRD_ENOMEM;
  out->status = status;
  out->content_type = TEXT_PLAIN;
  return 0;
}

int mrd_admin_respond(const mrd_health *h, const char *path, mrd_http_response *out) {
  if (h == NULL || path == NULL || out == NULL) return MRD_EINVAL;
  memset(out, 0, sizeof *out);
  size_t n = strcspn(path, "?");
  if (n == 8 && strncmp(path, "/healthz", n) == 0) return text(out, 200, "ok\n");
  if (n == 7 && strncmp(path, "/readyz", n) == 0) {
    char reason[256] = "";
    if (h->ready == NULL || h->ready(h->ud, reason, sizeof reason) == 0)
      return text(out, 200, "ready\n");
    reason[sizeof reason - 1] = '\0';
    mrd__buf b = {0};
    mrd__buf_printf(&b, "not ready: %s\n", reason[0] ? reason : "unknown");
    out->body = mrd__buf_take(&b, &out->body_len);
    if (out->body == NULL) return MRD_ENOMEM;
    out->status = 503;
    out->content_type = TEXT_PLAIN;
    return 0;
  }
  if (n == 8 && strncmp(path, "/metrics", n) == 0) {
    if (h->metrics == NULL) return text(out, 200, "");
    int rc = mrd_metrics_render(h->metrics, &out->body, &out->body_len);
    if (rc != 0) return rc;
    out->status = 200;
    out->content_type = MRD_METRICS_CONTENT_TYPE;
    return 0;
  }
  return text(out, 404, "not found\n");
}

void mrd_http_response_free(mrd_http_response *out) {
  if (out == NULL) return;
  free(out->body);
  memset(out, 0, sizeof *out);
}

struct mrd_admin {
  struct lws_context *ctx;
  struct lws_vhost *vhost;
  const mrd_health *health;
  struct lws_protocols protocols[2];
};

/* Per-connection state: the answer being written. */
typedef struct admin_session {
  mrd_http_response resp;
  size_t sent;
} admin_session;

static int admin_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len) {
  admin_session *s = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP: {
    mrd_admin *a = lws_vhost_user(lws_get_vhost(wsi));
    mrd_http_response_free(&s->resp);
    s->sent = 0;
    if (mrd_admin_respond(a->health, (const char *)in, &s->resp) != 0) return -1;
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *p = hdr + LWS_PRE, *start = p, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, (unsigned int)s->resp.status, s->resp.content_type,
                                    s->resp.body_len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
      return 1;
    lws_callback_on_writable(wsi);
    return 0;
  }
  case LWS_CALLBACK_HTTP_WRITEABLE: {
    if (s->resp.body == NULL) return -1;
    size_t left = s->resp.body_len - s->sent;
    size_t n = left < WRITE_CHUNK ? left : WRITE_CHUNK;
    unsigned char buf[LWS_PRE + WRITE_CHUNK];
    memcpy(buf + LWS_PRE, s->resp.body + s->sent, n);
    bool final = n == left;
    if (lws_write(wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
      return 1;
    s->sent += n;
    if (!final) {
      lws_callback_on_writable(wsi);
      return 0;
    }
    mrd_http_response_free(&s->resp);
    if (lws_http_transaction_completed(wsi)) return -1;
    return 0;
  }
  case LWS_CALLBACK_CLOSED_HTTP:
    if (s) mrd_http_response_free(&s->resp);
    return 0;
  default: return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

int mrd_admin_start(const char *bind_addr, int port, const mrd_health *h, mrd_admin **out) {
  if (h == NULL || out == NULL || port < 0 || port > 65535) return MRD_EINVAL;
  mrd_admin *a = calloc(1, sizeof *a);
  if (a == NULL) return MRD_ENOMEM;
  a->health = h;
  a->protocols[0] =
      (struct lws_protocols){"mrd-admin", admin_callback, sizeof(admin_session), 0, 0, NULL, 0};
  mrd_log_hook_lws();
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = bind_addr ? bind_addr : "127.0.0.1";
  info.protocols = a->protocols;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.gid = (gid_t)-1;
  info.uid = (uid_t)-1;
  a->ctx = lws_create_context(&info);
  if (a->ctx == NULL) {
    free(a);
    return MRD_EIO;
  }
  info.user = a; /* lws_vhost_user() in the callback */
  info.vhost_name = "admin";
  a->vhost = lws_create_vhost(a->ctx, &info);
  if (a->vhost == NULL) {
    mrd_log(MRD_LOG_ERROR, "admin_listen_failed", "addr=%s port=%d", info.iface, port);
    lws_context_destroy(a->ctx);
    free(a);
    return MRD_EIO;
  }
  mrd_log(MRD_LOG_INFO, "admin_listening", "addr=%s port=%d", info.iface,
          lws_get_vhost_listen_port(a->vhost));
  *out = a;
  return 0;
}

int mrd_admin_service(mrd_admin *a) {
  if (a == NULL) return MRD_EINVAL;
  /* lws 4.1 ignores the timeout except that a negative one means "do not wait" */
  return lws_service(a->ctx, -1) < 0 ? MRD_EIO : 0;
}

int mrd_admin_port(const mrd_admin *a) { return a ? lws_get_vhost_listen_port(a->vhost) : -1; }

void mrd_admin_stop(mrd_admin *a) {
  if (a == NULL) return;
  lws_context_destroy(a->ctx);
  free(a);
}
