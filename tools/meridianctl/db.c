/*
 * db.c: `meridianctl db migrate|status`, the database migrations.
 *
 * Each migration of schemas/sql (embedded in the binary) is applied once, in its own
 * transaction, in version order, under an advisory lock so that two migrators never race.
 * The ledger is schema_migrations (version, name, checksum): a second run does nothing, and a
 * migration whose text changed after it was applied is an error, never silently re-run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "mctl.h"
#include "migrations.h"
#include "mrd/hash.h"

#define MIGRATE_LOCK_KEY "7311822001" /* pg_advisory_lock key: "meridian migrate" */

static void checksum_hex(const char *s, char out[17]) {
  snprintf(out, 17, "%016llx", (unsigned long long)mrd_fnv1a64_str(MRD_FNV1A64_SEED, s));
}

static int exec_ok(PGconn *c, const char *sql, const char *what) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) fprintf(stderr, "meridianctl: %s: %s", what, PQerrorMessage(c));
  PQclear(r);
  return ok ? 0 : -1;
}

/* The checksum recorded for version v: 1 found (copied to out), 0 not applied, -1 error. */
static int applied_checksum(PGconn *c, int v, char out[65]) {
  char vbuf[16];
  snprintf(vbuf, sizeof vbuf, "%d", v);
  const char *params[1] = {vbuf};
  PGresult *r = PQexecParams(c, "SELECT checksum FROM schema_migrations WHERE version = $1", 1,
                             NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    fprintf(stderr, "meridianctl: reading schema_migrations: %s", PQerrorMessage(c));
    PQclear(r);
    return -1;
  }
  int found = PQntuples(r) == 1;
  if (found) snprintf(out, 65, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  return found;
}

static int migrate(PGconn *c, int dry_run) {
  if (exec_ok(c, "SET client_min_messages = warning", "set") != 0) return 1;
  if (exec_ok(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "taking the migration lock") != 0)
    return 1;
  /* The ledger must exist before we can ask what is applied; 0001 creates it the same way. */
  if (exec_ok(c,
              "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
              "name text NOT NULL, checksum text NOT NULL, "
              "applied_at timestamptz NOT NULL DEFAULT now())",
              "creating schema_migrations") != 0)
    return 1;
  int applied = 0, rc = 0;
  for (size_t i = 0; i < mctl_migration_count; i++) {
    const mctl_migration *m = &mctl_migrations[i];
    char sum[17], have[65];
    checksum_hex(m->sql, sum);
    int found = applied_checksum(c, m->version, have);
    if (found < 0) {
      rc = 1;
      break;
    }
    if (found) {
      if (strcmp(have, sum) != 0) {
        fprintf(stderr,
                "meridianctl: migration %s was changed after it was applied "
                "(checksum %s in the database, %s now): write a new migration instead\n",
                m->name, have, sum);
        rc = 1;
        break;
      }
      continue;
    }
    if (dry_run) {
      printf("pending %s\n", m->name);
      applied++;
      continue;
    }
    fprintf(stderr, "meridianctl: applying %s\n", m->name);
    if (exec_ok(c, "BEGIN", "begin") != 0) {
      rc = 1;
      break;
    }
    PGresult *r = PQexec(c, m->sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
      fprintf(stderr, "meridianctl: migration %s failed, rolled back: %s", m->name,
              PQerrorMessage(c));
      PQclear(r);
      exec_ok(c, "ROLLBACK", "rollback");
      rc = 1;
      break;
    }
    PQclear(r);
    char vbuf[16];
    snprintf(vbuf, sizeof vbuf, "%d", m->version);
    const char *params[3] = {vbuf, m->name, sum};
    r = PQexecParams(c,
                     "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                     3, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "meridianctl: recording %s: %s", m->name, PQerrorMessage(c));
    PQclear(r);
    if (!ok || exec_ok(c, "COMMIT", "commit") != 0) {
      exec_ok(c, "ROLLBACK", "rollback");
      rc = 1;
      break;
    }
    applied++;
  }
  exec_ok(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", "releasing the migration lock");
  if (rc == 0) {
    if (dry_run)
      printf("%d pending of %zu migrations\n", applied, mctl_migration_count);
    else if (applied == 0)
      printf("database is up to date (%zu migrations)\n", mctl_migration_count);
    else
      printf("applied %d of %zu migrations\n", applied, mctl_migration_count);
  }
  return rc;
}

static void db_usage(FILE *f) {
  fprintf(f, "usage: meridianctl db <verb> [--dsn DSN]\n"
             "  migrate   apply every pending migration, each once and in a transaction\n"
             "  status    list the migrations not yet applied (changes nothing)\n"
             "The database is MERIDIAN_PG_ADMIN_DSN (or MERIDIAN_PG_DSN) unless --dsn is given.\n");
}

int mctl_db_main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    db_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *verb = argv[1];
  const char *dsn = mctl_default_dsn();
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) {
      dsn = argv[++i];
    } else {
      fprintf(stderr, "meridianctl db: unknown argument \"%s\"\n", argv[i]);
      return 2;
    }
  }
  int dry = 0;
  if (strcmp(verb, "status") == 0) {
    dry = 1;
  } else if (strcmp(verb, "migrate") != 0) {
    fprintf(stderr, "meridianctl db: unknown verb \"%s\" (try meridianctl db --help)\n", verb);
    return 2;
  }
  if (dsn == NULL || *dsn == '\0') {
    fprintf(
        stderr,
        "meridianctl db: MERIDIAN_PG_ADMIN_DSN / MERIDIAN_PG_DSN is not set and no --dsn given\n");
    return 2;
  }
  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "meridianctl db: cannot connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return 1;
  }
  int rc = migrate(c, dry);
  PQfinish(c);
  return rc;
}
