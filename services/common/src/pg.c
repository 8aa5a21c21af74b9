/*
 * pg.c: the libpq adapter of pg.h. The PGconn is created once and PQreset on loss, so the
 * notice processor and settings stay with it; `ensure` gates reconnects by the backoff.
 * Statements with parameters are prepared once per connection (`stmt`): a service runs the
 * same few statements thousands of times, and the server then parses, analyses and plans
 * each once instead of at every call.
 */
#include "mrd/pg.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrd/hash.h"
#include "mrd/log.h"
#include "mrd_internal.h"

/* A statement prepared on the server as "mrd_<slot>_<gen>", on the connection numbered
 * `on` (mrd_pg.connects: a reconnect drops every prepared statement). gen changes when the
 * slot must be prepared afresh while the old name may still exist on the server. */
typedef struct stmt {
  char *sql;
  uint64_t hash;
  int n_params;
  unsigned on; /* 0: not prepared on any connection */
  unsigned gen;
} stmt;

#define PG_STMTS 64 /* statements kept prepared; more run unprepared */

struct mrd_pg {
  PGconn *conn; /* NULL until the first connect attempt made one */
  char *dsn;
  mrd_pg_opts opts;
  mrd__backoff backoff;
  bool up;      /* connected as far as we know */
  bool in_tx;   /* between begin and commit/rollback */
  bool tx_lost; /* the connection died inside the transaction */
  char errstr[512];
  char sqlstate[6];
  char channels[MRD_PG_MAX_CHANNELS][64]; /* LISTENed again after each connect */
  int n_channels;
  unsigned connects;
  stmt stmts[PG_STMTS];
  int n_stmts;
};

static bool channel_ok(const char *c) {
  size_t n = c ? strlen(c) : 0;
  if (n == 0 || n > 63 || !((c[0] >= 'a' && c[0] <= 'z') || c[0] == '_')) return false;
  for (size_t i = 0; i < n; i++)
    if (!((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= '0' && c[i] <= '9') || c[i] == '_'))
      return false;
  return true;
}

/* LISTEN on every remembered channel (names checked by channel_ok: safe to splice). */
static int listen_all(mrd_pg *pg) {
  for (int i = 0; i < pg->n_channels; i++) {
    char sql[96];
    snprintf(sql, sizeof sql, "LISTEN %s", pg->channels[i]);
    PGresult *r = PQexec(pg->conn, sql);
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) return -1;
  }
  return 0;
}

static void set_err(mrd_pg *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(mrd_pg *pg, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pg->errstr, sizeof pg->errstr, fmt, ap);
  va_end(ap);
  /* libpq messages span lines ("...\n\tThis probably means..."); keep one line */
  char *w = pg->errstr;
  for (const char *r = pg->errstr; *r; r++) {
    char c = (*r == '\n' || *r == '\t') ? ' ' : *r;
    if (c == ' ' && (w == pg->errstr || w[-1] == ' ')) continue;
    *w++ = c;
  }
  while (w > pg->errstr && w[-1] == ' ') w--;
  *w = '\0';
}

static void lost(mrd_pg *pg) {
  set_err(pg, "postgres: %s", PQerrorMessage(pg->conn));
  if (pg->up) mrd_log(MRD_LOG_WARN, "pg_disconnected", "err=%s", pg->errstr);
  pg->up = false;
  if (pg->in_tx) pg->tx_lost = true;
}

static int ensure(mrd_pg *pg) {
  if (pg->conn && pg->up && PQstatus(pg->conn) == CONNECTION_OK) return 0;
  if (!mrd__backoff_ready(&pg->backoff)) {
    if (pg->errstr[0] == '\0') set_err(pg, "postgres: reconnecting");
    return MRD_ECONN;
  }
  if (pg->conn == NULL) {
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", pg->opts.connect_timeout_s);
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *const vals[] = {timeout, "meridian", pg->dsn, NULL};
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (pg->conn == NULL) {
      set_err(pg, "postgres: out of memory");
      return MRD_ENOMEM;
    }
    mrd_log_hook_pq(pg->conn);
  } else {
    PQreset(pg->conn);
  }
  if (PQstatus(pg->conn) != CONNECTION_OK) {
    set_err(pg, "postgres: connect: %s", PQerrorMessage(pg->conn));
    mrd__backoff_failed(&pg->backoff);
    return MRD_ECONN;
  }
  if (listen_all(pg) != 0) {
    set_err(pg, "postgres: listen: %s", PQerrorMessage(pg->conn));
    mrd__backoff_failed(&pg->backoff);
    return MRD_ECONN;
  }
  mrd__backoff_reset(&pg->backoff);
  pg->up = true;
  pg->connects++;
  pg->errstr[0] = '\0';
  mrd_log(MRD_LOG_INFO, "pg_connected", "host=%s port=%s db=%s", PQhost(pg->conn), PQport(pg->conn),
          PQdb(pg->conn));
  return 0;
}

int mrd_pg_new(const char *dsn, const mrd_pg_opts *opts, mrd_pg **out) {
  if (dsn == NULL || *dsn == '\0' || out == NULL) return MRD_EINVAL;
  mrd_pg *pg = calloc(1, sizeof *pg);
  if (pg == NULL) return MRD_ENOMEM;
  pg->dsn = strdup(dsn);
  if (pg->dsn == NULL) {
    free(pg);
    return MRD_ENOMEM;
  }
  if (opts) pg->opts = *opts;
  if (pg->opts.connect_timeout_s <= 0) pg->opts.connect_timeout_s = 5;
  if (pg->opts.backoff_min_ms <= 0) pg->opts.backoff_min_ms = 100;
  if (pg->opts.backoff_max_ms <= 0) pg->opts.backoff_max_ms = 5000;
  mrd__backoff_init(&pg->backoff, pg->opts.backoff_min_ms, pg->opts.backoff_max_ms);
  int rc = ensure(pg);
  if (rc == MRD_ENOMEM) {
    mrd_pg_free(pg);
    return rc;
  }
  if (rc != 0) mrd_log(MRD_LOG_WARN, "pg_unavailable", "err=%s", pg->errstr);
  *out = pg;
  return 0;
}

void mrd_pg_free(mrd_pg *pg) {
  if (pg == NULL) return;
  for (int i = 0; i < pg->n_stmts; i++) free(pg->stmts[i].sql);
  if (pg->conn) PQfinish(pg->conn);
  free(pg->dsn);
  free(pg);
}

/* The cache slot of sql (added when new and there is room), or NULL: run it unprepared. */
static stmt *stmt_slot(mrd_pg *pg, const char *sql, int n_params) {
  uint64_t h = mrd_fnv1a64_str(MRD_FNV1A64_SEED, sql);
  for (int i = 0; i < pg->n_stmts; i++) {
    stmt *s = &pg->stmts[i];
    if (s->hash == h && s->n_params == n_params && strcmp(s->sql, sql) == 0) return s;
  }
  if (pg->n_stmts == PG_STMTS) return NULL;
  char *copy = strdup(sql);
  if (copy == NULL) return NULL;
  pg->stmts[pg->n_stmts] = (stmt){.sql = copy, .hash = h, .n_params = n_params};
  return &pg->stmts[pg->n_stmts++];
}

static void stmt_name(const mrd_pg *pg, const stmt *s, char *out, size_t cap) {
  snprintf(out, cap, "mrd_%d_%u", (int)(s - pg->stmts), s->gen);
}

/* 0 when r succeeded (r kept), else the error (r cleared): MRD_ECONN (connection lost),
 * MRD_ENOMEM, MRD_EREPLY with the server's message and SQLSTATE. */
static int result_rc(mrd_pg *pg, PGresult *r) {
  if (PQstatus(pg->conn) != CONNECTION_OK) {
    PQclear(r);
    lost(pg);
    return MRD_ECONN;
  }
  if (r == NULL) {
    set_err(pg, "postgres: %s", PQerrorMessage(pg->conn));
    return MRD_ENOMEM;
  }
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", state ? state : "");
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    set_err(pg, "postgres: %s", msg ? msg : PQresultErrorMessage(r));
    PQclear(r);
    return MRD_EREPLY;
  }
  return 0;
}

int mrd_pg_exec(mrd_pg *pg, PGresult **res, const char *sql, int n_params,
                const char *const *params) {
  if (res) *res = NULL;
  if (pg == NULL || sql == NULL || n_params < 0 || (n_params > 0 && params == NULL))
    return MRD_EINVAL;
  pg->sqlstate[0] = '\0';
  if (pg->tx_lost) {
    set_err(pg, "postgres: connection lost inside a transaction: roll back and retry it");
    return MRD_ECONN;
  }
  int rc = ensure(pg);
  if (rc != 0) return rc;
  stmt *sp = n_params > 0 ? stmt_slot(pg, sql, n_params) : NULL;
  char name[32] = "";
  if (sp) stmt_name(pg, sp, name, sizeof name);
  PGresult *r = NULL;
  if (sp && sp->on != pg->connects) {
    r = PQprepare(pg->conn, name, sql, n_params, NULL);
    if ((rc = result_rc(pg, r)) != 0) return rc;
    PQclear(r);
    sp->on = pg->connects;
  }
  r = sp ? PQexecPrepared(pg->conn, name, n_params, params, NULL, NULL, 0)
         : PQexecParams(pg->conn, sql, n_params, NULL, params, NULL, NULL, 0);
  if ((rc = result_rc(pg, r)) != 0) {
    /* "cached plan must not change result type" (a table changed under it): this call
     * fails, the next prepares the statement again under a new name */
    if (sp && rc == MRD_EREPLY && strcmp(pg->sqlstate, "0A000") == 0) {
      sp->on = 0;
      sp->gen++;
    }
    return rc;
  }
  pg->errstr[0] = '\0';
  if (res)
    *res = r;
  else
    PQclear(r);
  return 0;
}

int mrd_pg_begin(mrd_pg *pg) {
  if (pg == NULL) return MRD_EINVAL;
  if (pg->in_tx) {
    set_err(pg, "postgres: already in a transaction");
    return MRD_ESTATE;
  }
  int rc = mrd_pg_exec(pg, NULL, "BEGIN", 0, NULL);
  if (rc == 0) pg->in_tx = true;
  return rc;
}

int mrd_pg_commit(mrd_pg *pg) {
  if (pg == NULL) return MRD_EINVAL;
  if (!pg->in_tx) {
    set_err(pg, "postgres: commit outside a transaction");
    return MRD_ESTATE;
  }
  if (pg->tx_lost) {
    pg->in_tx = pg->tx_lost = false;
    set_err(pg, "postgres: connection lost inside the transaction: nothing committed");
    return MRD_ECONN;
  }
  bool failed = PQtransactionStatus(pg->conn) == PQTRANS_INERROR;
  int rc = mrd_pg_exec(pg, NULL, failed ? "ROLLBACK" : "COMMIT", 0, NULL);
  pg->in_tx = false;
  pg->tx_lost = false;
  if (rc == 0 && failed) {
    set_err(pg, "postgres: a statement of the transaction failed: rolled back");
    return MRD_EREPLY;
  }
  return rc;
}

int mrd_pg_rollback(mrd_pg *pg) {
  if (pg == NULL) return MRD_EINVAL;
  bool live = pg->in_tx && !pg->tx_lost && pg->up;
  pg->in_tx = pg->tx_lost = false;
  if (!live) return 0;
  int rc = mrd_pg_exec(pg, NULL, "ROLLBACK", 0, NULL);
  return rc == MRD_ECONN ? 0 : rc; /* a lost connection rolled it back anyway */
}

bool mrd_pg_in_transaction(const mrd_pg *pg) { return pg && pg->in_tx; }

int mrd_pg_ping(mrd_pg *pg) {
  if (pg == NULL) return MRD_EINVAL;
  if (pg->in_tx) return pg->tx_lost ? MRD_ECONN : 0; /* a ping must not touch a transaction */
  return mrd_pg_exec(pg, NULL, "SELECT 1", 0, NULL);
}

bool mrd_pg_connected(const mrd_pg *pg) {
  return pg && pg->up && pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
}

const char *mrd_pg_errstr(const mrd_pg *pg) { return pg ? pg->errstr : ""; }
const char *mrd_pg_sqlstate(const mrd_pg *pg) { return pg ? pg->sqlstate : ""; }

int mrd_pg_listen(mrd_pg *pg, const char *channel) {
  if (pg == NULL || !channel_ok(channel) || pg->n_channels >= MRD_PG_MAX_CHANNELS)
    return MRD_EINVAL;
  for (int i = 0; i < pg->n_channels; i++)
    if (strcmp(pg->channels[i], channel) == 0) return 0;
  snprintf(pg->channels[pg->n_channels++], sizeof pg->channels[0], "%s", channel);
  if (!mrd_pg_connected(pg) || pg->in_tx) return 0; /* listened to at the next connect */
  char sql[96];
  snprintf(sql, sizeof sql, "LISTEN %s", channel);
  return mrd_pg_exec(pg, NULL, sql, 0, NULL) == MRD_EREPLY ? MRD_EREPLY : 0;
}

int mrd_pg_notifications(mrd_pg *pg, mrd_pg_notify_fn fn, void *ud) {
  if (pg == NULL || fn == NULL) return MRD_EINVAL;
  if (pg->in_tx) return MRD_ESTATE;
  int rc = ensure(pg);
  if (rc != 0) return rc;
  if (PQconsumeInput(pg->conn) == 0 || PQstatus(pg->conn) != CONNECTION_OK) {
    lost(pg);
    return MRD_ECONN;
  }
  int n = 0;
  PGnotify *nf;
  while ((nf = PQnotifies(pg->conn)) != NULL) {
    fn(ud, nf->relname, nf->extra ? nf->extra : "");
    PQfreemem(nf);
    n++;
  }
  return n;
}

unsigned mrd_pg_reconnects(const mrd_pg *pg) { return pg ? pg->connects : 0; }
