/*
 * pg.h: the PostgreSQL adapter on libpq: parameterised queries only, and reconnection.
 *
 * Every statement goes through PQexecParams with text parameters ($1, $2 ...), so values
 * are never spliced into SQL and a string holding several statements is refused by the
 * server. A statement with parameters is prepared once per connection (PQprepare, then
 * PQexecPrepared; the first 64 distinct texts of a handle, named mrd_<n>_<gen>): the server
 * parses and plans it once. Should a table change under a prepared statement so that its
 * result type changes, that call fails (SQLSTATE 0A000) and the next prepares it again.
 * Behind a pooler in transaction mode, the pooler must track protocol-level prepared
 * statements (PgBouncer >= 1.21, max_prepared_statements). A connection found broken
 * (CONNECTION_BAD: server restarted, pg_terminate_backend, network) fails the call with MRD_ECONN;
 * the next call reconnects (PQreset), immediately the first time, then with an exponential backoff
 * (100 ms doubling to 5 s by default) during which calls fail fast. A failed statement is not
 * retried. A connection lost inside a transaction leaves the handle refusing statements with
 * MRD_ECONN until mrd_pg_rollback(), so the rest of a transaction can never run outside
 * one. Server notices are logged through mrd_log. LISTEN/NOTIFY: channels given to
 * mrd_pg_listen are listened to again after every reconnect, and mrd_pg_notifications
 * reads what arrived without blocking. Not thread-safe: one handle per thread.
 * Not a pool, no async queries, no COPY.
 */
#ifndef MRD_PG_H
#define MRD_PG_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrd_pg mrd_pg;

/* Connection settings; a zero field takes the default shown. */
typedef struct mrd_pg_opts {
  int connect_timeout_s; /* 5 (libpq connect_timeout; the DSN's own value wins) */
  int backoff_min_ms;    /* 100 */
  int backoff_max_ms;    /* 5000 */
} mrd_pg_opts;

/* Creates a handle for dsn (a postgresql:// URI or key=value string, as MERIDIAN_PG_DSN)
 * and connects once. A server that is down is not an error here: the handle connects on
 * a later call (mrd_pg_connected says). opts may be NULL. Returns 0 and *out, or
 * MRD_EINVAL (NULL/empty dsn), MRD_ENOMEM. Free with mrd_pg_free. */
MRD_EXPORT int mrd_pg_new(const char *dsn, const mrd_pg_opts *opts, mrd_pg **out);

/* Closes the connection and frees the handle. NULL is a no-op. */
MRD_EXPORT void mrd_pg_free(mrd_pg *pg);

/* Runs one statement with n_params text parameters (params[i] NULL is SQL NULL).
 * On 0, *res (if res is not NULL) is the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK),
 * owned by the caller (PQclear); a NULL res discards it. Errors: MRD_EREPLY (the server
 * refused the statement: message in mrd_pg_errstr, SQLSTATE in mrd_pg_sqlstate),
 * MRD_ECONN (no connection, or lost: reconnects on a later call), MRD_EINVAL, MRD_ENOMEM. */
MRD_EXPORT int mrd_pg_exec(mrd_pg *pg, PGresult **res, const char *sql, int n_params,
                           const char *const *params);

/* Transactions: BEGIN / COMMIT / ROLLBACK. begin in a transaction is MRD_ESTATE. commit of
 * a transaction where a statement failed rolls back and returns MRD_EREPLY; commit after
 * the connection was lost returns MRD_ECONN. rollback always ends the transaction state
 * and returns 0 unless the ROLLBACK itself failed on a live connection. */
MRD_EXPORT int mrd_pg_begin(mrd_pg *pg);
MRD_EXPORT int mrd_pg_commit(mrd_pg *pg);
MRD_EXPORT int mrd_pg_rollback(mrd_pg *pg);

/* True between a successful mrd_pg_begin and the commit or rollback that ends it. */
MRD_EXPORT bool mrd_pg_in_transaction(const mrd_pg *pg);

/* SELECT 1, reconnecting first if needed: 0 when the server answers. For /readyz. */
MRD_EXPORT int mrd_pg_ping(mrd_pg *pg);

/* LISTEN on channel (a plain identifier: [a-z_][a-z0-9_]*, at most 63 bytes) now and
 * after every reconnect (at most MRD_PG_MAX_CHANNELS channels per handle). A server that
 * is down is not an error: the LISTEN runs when the handle connects. Returns 0, or
 * MRD_EINVAL (bad name, too many channels), MRD_EREPLY. Notifications sent while the
 * handle was disconnected are lost: a listener re-reads what it follows after a
 * reconnect (mrd_pg_reconnects tells it one happened). */
#define MRD_PG_MAX_CHANNELS 4
MRD_EXPORT int mrd_pg_listen(mrd_pg *pg, const char *channel);

/* Called once per notification, in arrival order; channel and payload are borrowed. */
typedef void (*mrd_pg_notify_fn)(void *ud, const char *channel, const char *payload);

/* Reads the notifications that arrived (without blocking: the socket is read only if it
 * has data) and hands each to fn. Reconnects first when the connection was lost (subject
 * to the backoff). Returns how many were handed over, or MRD_ECONN / MRD_EINVAL. Not
 * inside a transaction (MRD_ESTATE). */
MRD_EXPORT int mrd_pg_notifications(mrd_pg *pg, mrd_pg_notify_fn fn, void *ud);

/* How many times the handle has (re)connected since it was made: a change means
 * notifications may have been missed meanwhile. */
MRD_EXPORT unsigned mrd_pg_reconnects(const mrd_pg *pg);

/* True while the connection is established (as far as the last call saw). */
MRD_EXPORT bool mrd_pg_connected(const mrd_pg *pg);

/* The last error's text and SQLSTATE ("" when none / not from the server). Borrowed,
 * valid until the next call on pg. */
MRD_EXPORT const char *mrd_pg_errstr(const mrd_pg *pg);
MRD_EXPORT const char *mrd_pg_sqlstate(const mrd_pg *pg);

#ifdef __cplusplus
}
#endif
#endif /* MRD_PG_H */
