/*
 * graph.c: `meridianctl graph`: the verb's dispatch and help, `import` (osmium then
 * osm2pgrouting into a staging schema, swapped into public in one transaction, so a failed
 * import leaves the database as it was), `status`, and the graph_meta helpers the other
 * subverbs share. Export is in graph_export.c, calibration and the ETA report in graph_eta.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "graph.h"
#include "mctl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "geo/snapshot.h"
#include "mrd/clock.h"

#define MAPCONFIG "/usr/share/osm2pgrouting/mapconfig_for_cars.xml"

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: meridianctl graph <subverb> [options]\n\n"
      "subverbs:\n"
      "  import FILE [--if-changed]    load OSM roads (.osm, .osm.gz, .osm.bz2, .osm.pbf) into\n"
      "                                PostGIS with osmium + osm2pgrouting (car profile):\n"
      "                                ways, ways_vertices_pgr, configuration. --if-changed\n"
      "                                skips when the same file (checksum) is already imported\n"
      "  export --out FILE [--if-stale] [--factors FILE|--no-calibration]\n"
      "                                write the binary snapshot (largest SCC, CSR, CH, R-tree,\n"
      "                                calibration from FILE, else graph_meta). --if-stale skips\n"
      "                                when FILE matches the import and calibration\n"
      "  calibrate [--trips CSV] [--out FILE]\n"
      "                                fit the ETA model on the taxi trips' `train` rows "
      "(settings\n"
      "                                chosen on a tuning fold of them); write it to FILE (as\n"
      "                                data/eta-calibration.txt) or else store it in graph_meta\n"
      "  eta-report [--trips CSV] [--factors FILE]\n"
      "                                median absolute %% ETA error on the held-out `valid` rows:\n"
      "                                raw speeds, the fitted model (and every setting tried),\n"
      "                                constant-speed baselines; with --factors, FILE's model\n"
      "                                measured without fitting\n"
      "  status                        whether a graph is imported, from which file\n\n"
      "options: --dsn DSN (default: MERIDIAN_PG_ADMIN_DSN, else MERIDIAN_PG_DSN)\n"
      "exit codes: 0 ok, 1 failure, 2 bad usage\n");
}

PGconn *mctl_graph_connect(const char *dsn) {
  if (dsn == NULL) dsn = mctl_default_dsn();
  if (dsn == NULL || *dsn == 0) {
    fprintf(stderr, "meridianctl graph: no database: set MERIDIAN_PG_ADMIN_DSN or MERIDIAN_PG_DSN, "
                    "or pass --dsn\n");
    return NULL;
  }
  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "meridianctl graph: cannot connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  return c;
}

static bool exec_ok(PGconn *c, const char *sql, const char *what) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) fprintf(stderr, "meridianctl graph: %s: %s", what, PQerrorMessage(c));
  PQclear(r);
  return ok;
}

bool mctl_graph_meta_present(PGconn *c) {
  PGresult *r = PQexec(c, "SELECT to_regclass('graph_meta') IS NOT NULL");
  bool ok =
      PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fprintf(stderr, "meridianctl graph: checking for graph_meta: %s", PQerrorMessage(c));
  else if (!ok)
    fprintf(stderr, "meridianctl graph: the database has no graph_meta table "
                    "(migration 0005): run `meridianctl db migrate` first\n");
  PQclear(r);
  return ok;
}

char *mctl_graph_meta_get(PGconn *c, const char *key) {
  const char *params[1] = {key};
  PGresult *r = PQexecParams(c,
                             "SELECT value FROM graph_meta WHERE key = $1 AND "
                             "to_regclass('graph_meta') IS NOT NULL",
                             1, NULL, params, NULL, NULL, 0);
  char *v = NULL;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) v = strdup(PQgetvalue(r, 0, 0));
  PQclear(r);
  return v;
}

bool mctl_graph_meta_set(PGconn *c, const char *key, const char *value) {
  const char *params[2] = {key, value};
  PGresult *r =
      PQexecParams(c,
                   "INSERT INTO graph_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) "
                   "DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                   2, NULL, params, NULL, NULL, 0);
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) fprintf(stderr, "meridianctl graph: writing graph_meta %s: %s", key, PQerrorMessage(c));
  PQclear(r);
  return ok;
}

/* ---- import ----------------------------------------------------------------------- */

/* Run argv with its stdout sent to our stderr (progress) or to log; returns the exit code,
 * or -1 when it could not start. */
/* One line of a libpq password file (host:port:db:user:password, ':' and '\\' escaped) in
 * dir/pgpass, mode 0600; its path in out. Returns 0, or -1 (the import then goes on without). */
static int write_pgpass(const char *dir, const char *host, const char *port, const char *db,
                        const char *user, const char *pw, char *out, size_t out_len) {
  if ((size_t)snprintf(out, out_len, "%s/pgpass", dir) >= out_len) return -1;
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return -1;
  FILE *f = fdopen(fd, "w");
  if (!f) {
    close(fd);
    return -1;
  }
  const char *field[5] = {host, port, db, user, pw};
  for (int i = 0; i < 5; i++) {
    for (const char *p = field[i] ? field[i] : "*"; *p; p++) {
      if (*p == ':' || *p == '\\') fputc('\\', f);
      fputc(*p, f);
    }
    fputc(i < 4 ? ':' : '\n', f);
  }
  return fclose(f) == 0 ? 0 : -1;
}

static int run(char *const argv[], const char *log) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = log ? open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    } else {
      dup2(2, 1);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "meridianctl graph: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void print_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return;
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f) && n++ < 20) fprintf(stderr, "  | %s", line);
  fclose(f);
}

/* "crc32-XXXXXXXX-SIZE" of the file, or false with an error printed. */
static bool file_checksum(const char *path, char *out, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "meridianctl graph import: cannot read %s: %s\n", path, strerror(errno));
    return false;
  }
  static unsigned char buf[1 << 16];
  uint32_t crc = 0;
  uint64_t size = 0;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    crc = geo_crc32(crc, buf, n);
    size += n;
  }
  bool err = ferror(f);
  fclose(f);
  if (err || size == 0) {
    fprintf(stderr, "meridianctl graph import: %s is %s\n", path, err ? "unreadable" : "empty");
    return false;
  }
  snprintf(out, cap, "crc32-%08x-%llu", crc, (unsigned long long)size);
  return true;
}

static bool graph_present(PGconn *c) {
  PGresult *r = PQexec(c, "SELECT to_regclass('public.ways') IS NOT NULL AND "
                          "to_regclass('public.ways_vertices_pgr') IS NOT NULL");
  bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  if (!yes) return false;
  r = PQexec(c, "SELECT EXISTS (SELECT 1 FROM public.ways)");
  yes = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  return yes;
}

static const char *conninfo_value(PQconninfoOption *opts, const char *key) {
  for (PQconninfoOption *o = opts; o && o->keyword; o++)
    if (strcmp(o->keyword, key) == 0 && o->val && *o->val) return o->val;
  return NULL;
}

/* One `graph import`: what it was asked, and what it holds until import_close. */
typedef struct import_job {
  const char *file, *dsn;
  bool if_changed;
  char checksum[64];
  PGconn *c;
  char dir[32]; /* private temp directory (0700): the OSM extract, logs, the pgpass file */
  bool have_dir;
  char schema[64]; /* staging schema osm2pgrouting writes into */
  bool have_schema;
} import_job;

/* FILE [--if-changed] [--dsn DSN]; 0, or 2 after one line on stderr. */
static int import_parse_args(int argc, char **argv, import_job *job) {
  static const struct option longopts[] = {{"if-changed", no_argument, NULL, 'c'},
                                           {"dsn", required_argument, NULL, 'd'},
                                           {NULL, 0, NULL, 0}};
  optind = 0; /* full re-initialisation of getopt: argv is a subverb's, not the process's */
  opterr = 0;
  int o;
  while ((o = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
    switch (o) {
    case 'c': job->if_changed = true; break;
    case 'd': job->dsn = optarg; break;
    default:
      fprintf(stderr, "meridianctl graph import: unexpected argument %s\n", argv[optind - 1]);
      return 2;
    }
  }
  if (optind < argc) job->file = argv[optind++];
  if (optind < argc) {
    fprintf(stderr, "meridianctl graph import: unexpected argument %s\n", argv[optind]);
    return 2;
  }
  if (job->file == NULL) {
    fprintf(stderr,
            "meridianctl graph import: missing FILE (.osm, .osm.gz, .osm.bz2 or .osm.pbf)\n");
    return 2;
  }
  return 0;
}

/* --if-changed: true when the graph in the database came from a file with this checksum. */
static bool import_is_current(const import_job *job) {
  if (!job->if_changed || !graph_present(job->c)) return false;
  char *old = mctl_graph_meta_get(job->c, "source_checksum");
  bool same = old && strcmp(old, job->checksum) == 0;
  free(old);
  return same;
}

/* [1/3] osmium: the file's highways as OSM XML in the temp directory (osm). */
static bool import_extract_highways(import_job *job, char *osm, size_t cap) {
  if (mkdtemp(job->dir) == NULL) {
    fprintf(stderr, "meridianctl graph import: mkdtemp: %s\n", strerror(errno));
    return false;
  }
  job->have_dir = true;
  char log[512];
  snprintf(osm, cap, "%s/roads.osm", job->dir);
  snprintf(log, sizeof log, "%s/osmium.log", job->dir);
  fprintf(stderr, "graph import: [1/3] osmium: highways of %s -> OSM XML\n", job->file);
  char *av[] = {"osmium", "tags-filter", (char *)job->file, "w/highway", "-o", osm, "-O", "-f",
                "osm",    NULL};
  int r = run(av, log);
  if (r != 0) {
    fprintf(stderr, "meridianctl graph import: %s is not a readable OSM file (osmium exit %d):\n",
            job->file, r);
    print_file(log);
    return false;
  }
  return true;
}

/* The staging schema: osm2pgrouting writes there; public is untouched until the swap. */
static bool import_create_staging(import_job *job) {
  char sql[256];
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", job->schema,
           job->schema);
  if (!exec_ok(job->c, sql, "creating the staging schema")) return false;
  job->have_schema = true;
  return true;
}

/* [2/3] osm2pgrouting (car profile) from osm into the staging schema, connecting as the
 * DSN says (else as our own connection does). */
static bool import_run_osm2pgrouting(import_job *job, const char *osm) {
  PGconn *c = job->c;
  fprintf(stderr, "graph import: [2/3] osm2pgrouting (car profile) into schema %s\n", job->schema);
  char *errmsg = NULL;
  PQconninfoOption *opts = PQconninfoParse(job->dsn ? job->dsn : mctl_default_dsn(), &errmsg);
  if (opts == NULL) {
    fprintf(stderr, "meridianctl graph import: bad DSN: %s\n", errmsg ? errmsg : "?");
    PQfreemem(errmsg);
    return false;
  }
  const char *host = conninfo_value(opts, "host") ? conninfo_value(opts, "host")
                                                  : conninfo_value(opts, "hostaddr");
  const char *port = conninfo_value(opts, "port"), *user = conninfo_value(opts, "user");
  const char *db = conninfo_value(opts, "dbname"), *pw = conninfo_value(opts, "password");
  host = host ? host : PQhost(c);
  port = port ? port : PQport(c);
  user = user ? user : PQuser(c);
  db = db ? db : PQdb(c);
  char *av[] = {"osm2pgrouting",
                "-f",
                (char *)osm,
                "-c",
                MAPCONFIG,
                "--schema",
                job->schema,
                "--clean",
                "-d",
                (char *)db,
                "-h",
                (char *)host,
                "-p",
                (char *)port,
                "-U",
                (char *)user,
                NULL};
  /* the password reaches osm2pgrouting's libpq through its environment, not its command
   * line (which every local user can read in /proc) */
  if (pw) setenv("PGPASSWORD", pw, 1);
  /* osm2pgrouting hands libpq an explicit empty password, which hides PGPASSWORD; libpq
   * then looks in the password file, so one is written for it (0600, in our 0700 temp dir) */
  char pgpass[PATH_MAX];
  if (pw && write_pgpass(job->dir, host, port, db, user, pw, pgpass, sizeof pgpass) == 0)
    setenv("PGPASSFILE", pgpass, 1);
  char log[512];
  snprintf(log, sizeof log, "%s/osm2pgrouting.log", job->dir);
  int r = run(av, log);
  PQconninfoFree(opts);
  if (r != 0) {
    fprintf(stderr, "meridianctl graph import: osm2pgrouting failed (exit %d):\n", r);
    print_file(log);
    return false;
  }
  return true;
}

/* [3/3] in one transaction: the staged tables replace public's, graph_meta says where they
 * came from, and the calibration fitted on the old graph goes. */
static bool import_swap_in(import_job *job) {
  PGconn *c = job->c;
  const char *s = job->schema;
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT (SELECT count(*) FROM %s.ways), (SELECT count(*) FROM %s.ways_vertices_pgr)", s,
           s);
  PGresult *r = PQexec(c, sql);
  long ways = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
  long verts = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 1)) : 0;
  PQclear(r);
  if (ways == 0) {
    fprintf(stderr, "meridianctl graph import: %s has no road a car may use: nothing imported\n",
            job->file);
    return false;
  }
  fprintf(stderr, "graph import: [3/3] swapping in %ld ways, %ld vertices\n", ways, verts);
  char swap[2048];
  snprintf(swap, sizeof swap,
           "BEGIN;"
           "DROP TABLE IF EXISTS public.ways, public.ways_vertices_pgr, public.configuration, "
           "public.pointsofinterest CASCADE;"
           "ALTER TABLE %s.ways SET SCHEMA public;"
           "ALTER TABLE %s.ways_vertices_pgr SET SCHEMA public;"
           "ALTER TABLE %s.configuration SET SCHEMA public;"
           "ALTER TABLE %s.pointsofinterest SET SCHEMA public;"
           "DROP SCHEMA %s CASCADE;",
           s, s, s, s, s);
  if (!exec_ok(c, swap, "swapping the new graph in")) {
    PQclear(PQexec(c, "ROLLBACK"));
    return false;
  }
  const char *base = strrchr(job->file, '/') ? strrchr(job->file, '/') + 1 : job->file;
  char now[32], counts[64];
  snprintf(now, sizeof now, "%ld", (long)time(NULL));
  snprintf(counts, sizeof counts, "%ld", ways);
  /* a new import invalidates the calibration fitted on the old one */
  if (!mctl_graph_meta_set(c, "source_file", base) ||
      !mctl_graph_meta_set(c, "source_checksum", job->checksum) ||
      !mctl_graph_meta_set(c, "imported_at", now) || !mctl_graph_meta_set(c, "ways", counts) ||
      !exec_ok(c, "DELETE FROM graph_meta WHERE key = 'calibration'", "clearing calibration") ||
      !exec_ok(c, "COMMIT", "committing the import")) {
    PQclear(PQexec(c, "ROLLBACK"));
    return false;
  }
  job->have_schema = false; /* dropped by the swap */
  return true;
}

/* Drops what the job left behind: the staging schema, the temp directory, the connection. */
static void import_close(import_job *job) {
  if (job->have_schema) {
    char sql[160];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", job->schema);
    exec_ok(job->c, sql, "dropping the staging schema");
  }
  if (job->have_dir) {
    char p[600];
    const char *names[] = {"roads.osm", "osmium.log", "osm2pgrouting.log", "pgpass"};
    for (size_t i = 0; i < 4; i++) {
      snprintf(p, sizeof p, "%s/%s", job->dir, names[i]);
      unlink(p);
    }
    rmdir(job->dir);
  }
  PQfinish(job->c);
}

static int cmd_import(int argc, char **argv) {
  import_job job = {.dir = "/tmp/meridian-import-XXXXXX"};
  int rc = import_parse_args(argc, argv, &job);
  if (rc != 0) return rc;
  if (!file_checksum(job.file, job.checksum, sizeof job.checksum)) return 1;
  job.c = mctl_graph_connect(job.dsn);
  if (job.c == NULL) return 1;
  snprintf(job.schema, sizeof job.schema, "meridian_import_%ld", (long)getpid());
  double t0_s = mrd_mono_s();
  char osm[512];
  rc = 1;
  if (mctl_graph_meta_present(job.c)) { /* else refused, with the line that says why */
    if (import_is_current(&job)) {
      fprintf(stderr, "graph import: %s is already imported (%s): nothing to do\n", job.file,
              job.checksum);
      rc = 0;
    } else if (import_extract_highways(&job, osm, sizeof osm) && import_create_staging(&job) &&
               import_run_osm2pgrouting(&job, osm) && import_swap_in(&job)) {
      fprintf(stderr, "graph import: done in %.1f s (%s)\n", mrd_mono_s() - t0_s, job.checksum);
      rc = 0;
    }
  }
  import_close(&job);
  return rc;
}

static int cmd_status(int argc, char **argv) {
  const char *dsn = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc)
      dsn = argv[++i];
    else {
      fprintf(stderr, "meridianctl graph status: unexpected argument %s\n", argv[i]);
      return 2;
    }
  }
  PGconn *c = mctl_graph_connect(dsn);
  if (c == NULL) return 1;
  bool present = graph_present(c);
  char *file = mctl_graph_meta_get(c, "source_file"),
       *sum = mctl_graph_meta_get(c, "source_checksum");
  char *at = mctl_graph_meta_get(c, "imported_at"), *cal = mctl_graph_meta_get(c, "calibration");
  printf("graph: %s\nsource_file: %s\nsource_checksum: %s\nimported_at: %s\ncalibrated: %s\n",
         present ? "imported" : "absent", file ? file : "-", sum ? sum : "-", at ? at : "-",
         cal ? "yes" : "no");
  free(file);
  free(sum);
  free(at);
  free(cal);
  PQfinish(c);
  return present ? 0 : 1;
}

int mctl_graph_main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    }
  const char *sub = argv[1];
  if (strcmp(sub, "import") == 0) return cmd_import(argc - 1, argv + 1);
  if (strcmp(sub, "export") == 0) return mctl_graph_export(argc - 1, argv + 1);
  if (strcmp(sub, "status") == 0) return cmd_status(argc - 1, argv + 1);
  if (strcmp(sub, "calibrate") == 0) return mctl_graph_calibrate(argc - 1, argv + 1);
  if (strcmp(sub, "eta-report") == 0) return mctl_graph_eta_report(argc - 1, argv + 1);
  fprintf(stderr, "meridianctl graph: unknown subverb \"%s\" (try meridianctl graph --help)\n",
          sub);
  return 2;
}
