/*
 * admin.h: the admin HTTP endpoints every service serves: /healthz (the process is alive),
 * /readyz (a callback checks the service's dependencies) and /metrics (Prometheus text).
 *
 * Two ways to serve them:
 *  - mrd_admin_start(): a libwebsockets context of its own, bound to one address
 *    (127.0.0.1 by default; LWS_SERVER_OPTION_DISABLE_IPV6 is set, else lws listens on
 *    every address, IPv6 included, whatever address is asked for). It runs on the caller's thread:
 * the service loop calls mrd_admin_service() every iteration (non-blocking), so the readiness
 * callback may touch the service's own connections (Redis, PostgreSQL, Kafka handles are not
 *    thread-safe). A loop that stalls also stalls /healthz, which is what a liveness
 *    probe should see.
 *  - mrd_admin_respond(): the status, type and body for a path, for a service that already
 *    has an lws vhost (the gateway) and answers these paths from its own HTTP callback.
 * Only GET-style paths are routed; anything else is 404. No TLS, no auth: bind it to an
 * address only the cluster can reach.
 */
#ifndef MRD_ADMIN_H
#define MRD_ADMIN_H

#include <stddef.h>

#include "mrd/err.h"
#include "mrd/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Readiness: returns 0 when every dependency is usable, else non-zero with a short reason
 * written to reason (reason_cap bytes, NUL-terminated), e.g. "redis: connection refused". */
typedef int (*mrd_ready_fn)(void *ud, char *reason, size_t reason_cap);

/* What the endpoints report. ready may be NULL (always ready); metrics may be NULL (empty
 * /metrics). Borrowed: must outlive the admin server or the respond calls. */
typedef struct mrd_health {
  mrd_ready_fn ready;
  void *ud;
  mrd_metrics *metrics;
} mrd_health;

/* One HTTP answer. body is heap-allocated (mrd_http_response_free). */
typedef struct mrd_http_response {
  int status;               /* 200, 404, 503 */
  const char *content_type; /* static string */
  char *body;
  size_t body_len;
} mrd_http_response;

/* Builds the answer for path (a query string after '?' is ignored): /healthz -> 200 "ok",
 * /readyz -> 200 "ready" or 503 "not ready: <reason>", /metrics -> 200 and the registry's
 * text, anything else -> 404. Returns 0 and *out, or MRD_EINVAL / MRD_ENOMEM. */
MRD_EXPORT int mrd_admin_respond(const mrd_health *h, const char *path, mrd_http_response *out);

/* Test API (no service calls it): tests/common/test_admin.c (admin.c frees its own responses). */
/* Frees out->body and zeroes *out. */
MRD_EXPORT void mrd_http_response_free(mrd_http_response *out);

typedef struct mrd_admin mrd_admin;

/* Starts an HTTP server on bind_addr:port (bind_addr NULL means 127.0.0.1; port 0 picks a
 * free one, see mrd_admin_port). Routes lws's log through mrd_log. h is borrowed.
 * Returns 0 and *out, or MRD_EINVAL, MRD_EIO (the context or listener could not be made:
 * port in use, bad address), MRD_ENOMEM. Stop with mrd_admin_stop. */
MRD_EXPORT int mrd_admin_start(const char *bind_addr, int port, const mrd_health *h,
                               mrd_admin **out);

/* Serves whatever is ready without waiting. Call it from the service loop at least every
 * few tens of milliseconds. Returns 0, or MRD_EIO when the context failed. */
MRD_EXPORT int mrd_admin_service(mrd_admin *a);

/* Test API (no service calls it): tests/common/test_admin.c (the port bound when 0 was asked). */
/* The port actually listened on. */
MRD_EXPORT int mrd_admin_port(const mrd_admin *a);

/* Closes the listener and every connection, frees a. NULL is a no-op. */
MRD_EXPORT void mrd_admin_stop(mrd_admin *a);

#ifdef __cplusplus
}
#endif
#endif /* MRD_ADMIN_H */
