/*
 * redis.c: the reconnecting hiredis adapter of redis.h. A hiredis context that reported an
 * error is unusable, so any context error frees it; `ensure` makes a new one when the
 * backoff allows.
 */
#include "mrd/redis.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mrd/log.h"
#include "mrd_internal.h"

struct mrd_redis {
  redisContext *ctx; /* NULL while disconnected */
  char host[256];
  int port;
  int db;
  char user[256]; /* ACL user ("" = default) */
  char password[256];
  mrd_redis_opts opts;
  mrd__backoff backoff;
  int pending; /* replies owed for appended commands */
  char errstr[512];
  bool was_connected;   /* to log the loss once */
  uint64_t connections; /* established so far */
};

/* Percent-decodes n bytes of src into dst (cap bytes, NUL included). -1 on a bad escape,
 * an encoded NUL, or no room. */
static int pct_decode(const char *src, size_t n, char *dst, size_t cap) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c == '%') {
      int v = 0;
      for (int k = 1; k <= 2; k++) {
        char h = i + (size_t)k < n ? src[i + (size_t)k] : '\0';
        int d = (h >= '0' && h <= '9')   ? h - '0'
                : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                         : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
      }
      if (v == 0) return -1;
      c = (unsigned char)v;
      i += 2;
    }
    if (w + 1 >= cap) return -1;
    dst[w++] = (char)c;
  }
  dst[w] = '\0';
  return 0;
}

int mrd_redis_parse_url(const char *url, char *host, size_t host_cap, int *port, int *db,
                        char *password, size_t password_cap) {
  return mrd_redis_parse_url_auth(url, host, host_cap, port, db, NULL, 0, password, password_cap);
}

int mrd_redis_parse_url_auth(const char *url, char *host, size_t host_cap, int *port, int *db,
                             char *user, size_t user_cap, char *password, size_t password_cap) {
  static const char scheme[] = "redis://";
  if (url == NULL || strncmp(url, scheme, sizeof scheme - 1) != 0) return MRD_EPARSE;
  const char *p = url + sizeof scheme - 1;
  const char *at = strchr(p, '@');
  const char *slash = strchr(p, '/');
  char pw[256] = "", us[256] = "";
  if (at && (slash == NULL || at < slash)) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *pws = colon ? colon + 1 : p;
    if (pct_decode(pws, (size_t)(at - pws), pw, sizeof pw) != 0) return MRD_EPARSE;
    if (colon && pct_decode(p, (size_t)(colon - p), us, sizeof us) != 0) return MRD_EPARSE;
    p = at + 1;
  }
  const char *end = p + strcspn(p, ":/");
  size_t hlen = (size_t)(end - p);
  if (hlen == 0 || hlen >= host_cap) return MRD_EPARSE;
  int prt = 6379, d = 0;
  if (*end == ':') {
    char *e;
    errno = 0;
    long v = strtol(end + 1, &e, 10);
    if (e == end + 1 || errno || v < 1 || v > 65535 || (*e != '\0' && *e != '/')) return MRD_EPARSE;
    prt = (int)v;
    end = e;
  }
  if (*end == '/' && end[1] != '\0') {
    char *e;
    errno = 0;
    long v = strtol(end + 1, &e, 10);
    if (e == end + 1 || errno || v < 0 || v > 1000000 || *e != '\0') return MRD_EPARSE;
    d = (int)v;
  } else if (*end == '/' || *end == '\0') {
    /* no db */
  } else {
    return MRD_EPARSE;
  }
  if (password && password_cap && strlen(pw) >= password_cap) return MRD_EPARSE;
  if (user && user_cap && strlen(us) >= user_cap) return MRD_EPARSE;
  memcpy(host, p, hlen);
  host[hlen] = '\0';
  *port = prt;
  *db = d;
  if (password && password_cap) strcpy(password, pw);
  if (user && user_cap) strcpy(user, us);
  return 0;
}

static void set_err(mrd_redis *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(mrd_redis *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->errstr, sizeof r->errstr, fmt, ap);
  va_end(ap);
}

static struct timeval tv_ms(int ms) {
  return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* Drops the connection after a context error and says what kind of failure it was. */
static int drop(mrd_redis *r) {
  int rc = MRD_ECONN;
  if (r->ctx) {
    if (r->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
      rc = MRD_ETIMEDOUT;
    else if (r->ctx->err == REDIS_ERR_OOM)
      rc = MRD_ENOMEM;
    set_err(r, "redis %s:%d: %s", r->host, r->port,
            rc == MRD_ETIMEDOUT ? "timed out" : r->ctx->errstr);
    redisFree(r->ctx);
    r->ctx = NULL;
  }
  if (r->was_connected) {
    mrd_log(MRD_LOG_WARN, "redis_disconnected", "addr=%s:%d err=%s", r->host, r->port, r->errstr);
    r->was_connected = false;
  }
  return rc;
}

/* Runs one command synchronously on a fresh connection (SELECT, AUTH). */
static int setup_cmd(mrd_redis *r, const char *what, int argc, const char **argv) {
  redisReply *rep = redisCommandArgv(r->ctx, argc, argv, NULL);
  if (rep == NULL) return drop(r);
  int rc = 0;
  if (rep->type == REDIS_REPLY_ERROR) {
    set_err(r, "redis %s: %s", what, rep->str);
    rc = MRD_EREPLY;
  }
  freeReplyObject(rep);
  return rc;
}

static int ensure(mrd_redis *r) {
  if (r->ctx) return 0;
  if (!mrd__backoff_ready(&r->backoff)) {
    if (r->errstr[0] == '\0') set_err(r, "redis %s:%d: reconnecting", r->host, r->port);
    return MRD_ECONN;
  }
  redisContext *c = redisConnectWithTimeout(r->host, r->port, tv_ms(r->opts.connect_timeout_ms));
  if (c == NULL) {
    mrd__backoff_failed(&r->backoff);
    set_err(r, "redis %s:%d: out of memory", r->host, r->port);
    return MRD_ENOMEM;
  }
  if (c->err) {
    set_err(r, "redis %s:%d: connect: %s", r->host, r->port, c->errstr);
    redisFree(c);
    mrd__backoff_failed(&r->backoff);
    return MRD_ECONN;
  }
  redisSetTimeout(c, tv_ms(r->opts.command_timeout_ms));
  redisEnableKeepAlive(c);
  r->ctx = c;
  int rc = 0;
  if (r->password[0] && r->user[0]) /* Redis 6 ACL: AUTH username password */
    rc = setup_cmd(r, "AUTH", 3, (const char *[]){"AUTH", r->user, r->password});
  else if (r->password[0])
    rc = setup_cmd(r, "AUTH", 2, (const char *[]){"AUTH", r->password});
  if (rc == 0 && r->db != 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", r->db);
    rc = setup_cmd(r, "SELECT", 2, (const char *[]){"SELECT", db});
  }
  if (rc != 0) {
    if (r->ctx) {
      redisFree(r->ctx);
      r->ctx = NULL;
    }
    mrd__backoff_failed(&r->backoff);
    return rc == MRD_EREPLY ? MRD_ECONN : rc;
  }
  mrd__backoff_reset(&r->backoff);
  r->was_connected = true;
  r->connections++;
  r->errstr[0] = '\0';
  mrd_log(MRD_LOG_INFO, "redis_connected", "addr=%s:%d db=%d", r->host, r->port, r->db);
  return 0;
}

int mrd_redis_new(const char *url, const mrd_redis_opts *opts, mrd_redis **out) {
  if (out == NULL) return MRD_EINVAL;
  mrd_redis *r = calloc(1, sizeof *r);
  if (r == NULL) return MRD_ENOMEM;
  if (mrd_redis_parse_url_auth(url, r->host, sizeof r->host, &r->port, &r->db, r->user,
                               sizeof r->user, r->password, sizeof r->password) != 0) {
    free(r);
    return MRD_EPARSE;
  }
  if (opts) r->opts = *opts;
  if (r->opts.connect_timeout_ms <= 0) r->opts.connect_timeout_ms = 1000;
  if (r->opts.command_timeout_ms <= 0) r->opts.command_timeout_ms = 1000;
  if (r->opts.backoff_min_ms <= 0) r->opts.backoff_min_ms = 50;
  if (r->opts.backoff_max_ms <= 0) r->opts.backoff_max_ms = 2000;
  mrd__backoff_init(&r->backoff, r->opts.backoff_min_ms, r->opts.backoff_max_ms);
  int rc = ensure(r);
  if (rc == MRD_ENOMEM) {
    free(r);
    return rc;
  }
  if (rc != 0)
    mrd_log(MRD_LOG_WARN, "redis_unavailable", "addr=%s:%d err=%s", r->host, r->port, r->errstr);
  *out = r;
  return 0;
}

void mrd_redis_free(mrd_redis *r) {
  if (r == NULL) return;
  if (r->ctx) redisFree(r->ctx);
  free(r);
}

/* Classifies a reply just read: error replies become MRD_EREPLY and are freed. */
static int take_reply(mrd_redis *r, redisReply *rep, redisReply **out) {
  if (rep->type == REDIS_REPLY_ERROR) {
    set_err(r, "%s", rep->str);
    freeReplyObject(rep);
    return MRD_EREPLY;
  }
  r->errstr[0] = '\0';
  if (out)
    *out = rep;
  else
    freeReplyObject(rep);
  return 0;
}

static int read_one(mrd_redis *r, redisReply **out) {
  void *rep = NULL;
  if (redisGetReply(r->ctx, &rep) != REDIS_OK || rep == NULL) {
    int rc = drop(r);
    r->pending = r->pending > 0 ? r->pending - 1 : 0;
    return rc;
  }
  r->pending--;
  return take_reply(r, rep, out);
}

int mrd_redis_append(mrd_redis *r, int argc, const char *const *argv, const size_t *argvlen) {
  if (r == NULL || argc <= 0 || argv == NULL) return MRD_EINVAL;
  if (r->ctx == NULL && r->pending > 0) return MRD_ECONN; /* a broken pipeline is being drained */
  int rc = ensure(r);
  if (rc != 0) return rc;
  if (redisAppendCommandArgv(r->ctx, argc, (const char **)argv, argvlen) != REDIS_OK)
    return drop(r);
  r->pending++;
  return 0;
}

int mrd_redis_appendf(mrd_redis *r, const char *fmt, ...) {
  if (r == NULL || fmt == NULL) return MRD_EINVAL;
  if (r->ctx == NULL && r->pending > 0) return MRD_ECONN;
  int rc = ensure(r);
  if (rc != 0) return rc;
  va_list ap;
  va_start(ap, fmt);
  int ok = redisvAppendCommand(r->ctx, fmt, ap);
  va_end(ap);
  if (ok != REDIS_OK) return drop(r);
  r->pending++;
  return 0;
}

int mrd_redis_get_reply(mrd_redis *r, redisReply **reply) {
  if (reply) *reply = NULL;
  if (r == NULL) return MRD_EINVAL;
  if (r->pending <= 0) return MRD_ESTATE;
  if (r->ctx == NULL) {
    r->pending--;
    return MRD_ECONN;
  }
  return read_one(r, reply);
}

int mrd_redis_pending(const mrd_redis *r) { return r ? r->pending : 0; }

int mrd_redis_cmd(mrd_redis *r, redisReply **reply, int argc, const char *const *argv,
                  const size_t *argvlen) {
  if (reply) *reply = NULL;
  if (r == NULL || argc <= 0 || argv == NULL) return MRD_EINVAL;
  if (r->pending > 0) return MRD_ESTATE;
  int rc = mrd_redis_append(r, argc, argv, argvlen);
  if (rc != 0) return rc;
  return read_one(r, reply);
}

int mrd_redis_cmdf(mrd_redis *r, redisReply **reply, const char *fmt, ...) {
  if (reply) *reply = NULL;
  if (r == NULL || fmt == NULL) return MRD_EINVAL;
  if (r->pending > 0) return MRD_ESTATE;
  int rc = ensure(r);
  if (rc != 0) return rc;
  va_list ap;
  va_start(ap, fmt);
  int ok = redisvAppendCommand(r->ctx, fmt, ap);
  va_end(ap);
  if (ok != REDIS_OK) return drop(r);
  r->pending++;
  return read_one(r, reply);
}

int mrd_redis_ping(mrd_redis *r) {
  redisReply *rep = NULL;
  int rc = mrd_redis_cmd(r, &rep, 1, (const char *[]){"PING"}, NULL);
  if (rc != 0) return rc;
  bool pong = rep->type == REDIS_REPLY_STATUS && strcasecmp(rep->str, "PONG") == 0;
  freeReplyObject(rep);
  if (!pong) {
    set_err(r, "redis PING: unexpected reply");
    return MRD_EREPLY;
  }
  return 0;
}

bool mrd_redis_connected(const mrd_redis *r) { return r && r->ctx != NULL; }

uint64_t mrd_redis_connections(const mrd_redis *r) { return r ? r->connections : 0; }

const char *mrd_redis_errstr(const mrd_redis *r) { return r ? r->errstr : ""; }
