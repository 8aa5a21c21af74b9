/*
 * redis.h: the Redis adapter, a hiredis 0.14 synchronous context that reconnects by itself.
 *
 * Commands are sent as argument vectors (binary-safe) or hiredis format strings, one at a
 * time or pipelined (append N, then read N replies). Every failure is returned, never an
 * abort: an I/O error, EOF or timeout drops the connection and returns MRD_ECONN /
 * MRD_ETIMEDOUT; the next call reconnects, immediately the first time and then with an
 * exponential backoff (50 ms doubling to 2 s by default), and while waiting out the
 * backoff calls fail fast with MRD_ECONN instead of blocking the service's loop.
 * A failed command is not retried: it may or may not have run (INCR, SET NX ...), only the
 * caller knows whether repeating it is safe. Error text stays on the handle
 * (mrd_redis_errstr). Not thread-safe: one handle per thread. Not a cluster or sentinel
 * client, no pub/sub.
 */
#ifndef MRD_REDIS_H
#define MRD_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrd_redis mrd_redis;

/* Compare-and-delete, the one script every service EVALs with one key and one argument:
 * KEYS[1] is deleted only while it still holds ARGV[1] (a pointer or key that another
 * writer has replaced stays). Replies 1 when deleted, 0 otherwise. */
#define MRD_REDIS_CAD_LUA                                                                          \
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "           \
  "return 0"

/* Connection settings; a zero field takes the default shown. */
typedef struct mrd_redis_opts {
  int connect_timeout_ms; /* 1000 */
  int command_timeout_ms; /* 1000: a reply slower than this drops the connection */
  int backoff_min_ms;     /* 50: delay after the second failed connect in a row */
  int backoff_max_ms;     /* 2000 */
} mrd_redis_opts;

/* Test API (no service calls it): tests/common/test_redis_url.c (the connect functions parse
 * with it). */
/* Parses `redis://[:password@]host[:port][/db]` (port 6379 and db 0 by default).
 * host_cap bytes for host (NUL included), password may be NULL when not wanted
 * (password_cap then ignored; a URL with a password is still accepted).
 * Returns 0, or MRD_EPARSE (another scheme, bad port or db, host too long). */
MRD_EXPORT int mrd_redis_parse_url(const char *url, char *host, size_t host_cap, int *port, int *db,
                                   char *password, size_t password_cap);

/* Test API (no service calls it): tests/common/test_redis_url.c (the connect functions parse
 * with it). */
/* The same with an ACL user: `redis://[[user]:password@]host[:port][/db]`; user and
 * password are percent-decoded (RFC 3986: a password with `@`, `:` or `/` is written
 * %40, %3A, %2F); user gets "" when the URL names none (Redis's `default` user). user and
 * password may be NULL (their cap then ignored). MRD_EPARSE also for a bad %-escape or an
 * encoded NUL. mrd_redis_new authenticates with `AUTH user password` when both are given,
 * `AUTH password` with a password only. */
MRD_EXPORT int mrd_redis_parse_url_auth(const char *url, char *host, size_t host_cap, int *port,
                                        int *db, char *user, size_t user_cap, char *password,
                                        size_t password_cap);

/* Creates a handle for url and tries to connect once. A server that is down is not an
 * error here: the handle connects on a later call (see mrd_redis_connected). opts may be
 * NULL. Returns 0 and *out, or MRD_EPARSE (bad URL), MRD_ENOMEM. Free with mrd_redis_free. */
MRD_EXPORT int mrd_redis_new(const char *url, const mrd_redis_opts *opts, mrd_redis **out);

/* Closes the connection and frees the handle. NULL is a no-op. */
MRD_EXPORT void mrd_redis_free(mrd_redis *r);

/* Sends one command and waits for its reply. argvlen may be NULL (strlen of each arg).
 * On 0, *reply (if reply is not NULL) is the reply, owned by the caller
 * (freeReplyObject); a NULL reply pointer discards it. Errors: MRD_EREPLY (the server
 * answered with an error: its text in mrd_redis_errstr), MRD_ECONN, MRD_ETIMEDOUT,
 * MRD_ESTATE (pipelined replies still unread), MRD_ENOMEM, MRD_EINVAL. */
MRD_EXPORT int mrd_redis_cmd(mrd_redis *r, redisReply **reply, int argc, const char *const *argv,
                             const size_t *argvlen);

/* As mrd_redis_cmd with a hiredis format ("SET %s %b", key, val, len). */
MRD_EXPORT int mrd_redis_cmdf(mrd_redis *r, redisReply **reply, const char *fmt, ...);

/* Pipelining: queues one command locally (nothing is sent until the first get_reply).
 * Returns 0, MRD_ECONN (not connected and the reconnect failed or must wait), MRD_ENOMEM. */
MRD_EXPORT int mrd_redis_append(mrd_redis *r, int argc, const char *const *argv,
                                const size_t *argvlen);
/* Test API (no service calls it): tests/integration/test_redis_adapter.c (pipelining). */
MRD_EXPORT int mrd_redis_appendf(mrd_redis *r, const char *fmt, ...);

/* Reads the reply of the oldest queued command, with the same results as mrd_redis_cmd.
 * After a connection failure every reply still owed returns MRD_ECONN, so a loop reading
 * N replies sees N results. MRD_ESTATE when nothing is queued. */
MRD_EXPORT int mrd_redis_get_reply(mrd_redis *r, redisReply **reply);

/* Replies still owed to the caller by mrd_redis_get_reply. */
MRD_EXPORT int mrd_redis_pending(const mrd_redis *r);

/* PING: 0 when the server answers PONG (reconnecting first if needed), else an MRD_E*.
 * Meant for /readyz. */
MRD_EXPORT int mrd_redis_ping(mrd_redis *r);

/* True while a connection is established. */
MRD_EXPORT bool mrd_redis_connected(const mrd_redis *r);

/* How many times a connection was established (1 after the first, 2 after the first
 * reconnection...). A new connection may reach a server that restarted empty (no
 * persistence): a caller that keeps state in Redis compares this count to write it again. */
MRD_EXPORT uint64_t mrd_redis_connections(const mrd_redis *r);

/* The last error's text (hiredis's, the server's error reply, or ours); "" when none.
 * Borrowed, valid until the next call on r. */
MRD_EXPORT const char *mrd_redis_errstr(const mrd_redis *r);

#ifdef __cplusplus
}
#endif
#endif /* MRD_REDIS_H */
