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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "geo/snapshot.h"

#define MAPCONFIG "/usr/share/osm2pgrouting/mapconfig_for_cars.xml"

static void usage(FILE *f) {
  fprintf(f,
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
          "                                fit the ETA model on the taxi trips' `train` rows (settings\n"
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

uint64_t mctl_fnv64(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

PGconn *mctl_graph_connect(const char *dsn) {
  if (dsn == NULL) dsn = mctl_default_dsn();
  if (dsn == NULL || *dsn == 0) {
    fprintf(stderr, "meridianctl graph: no database: set MERIDIAN_PG_ADMIN_DSN or MERIDIAN_PG_DSN, or pass --dsn\n");
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
  bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
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
  PGresult *r = PQexecParams(c,
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

static int cmd_import(int argc, char **argv) {
  const char *file = NULL, *dsn = NULL;
  bool if_changed = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--if-changed") == 0) if_changed = true;
    else if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) dsn = argv[++i];
    else if (argv[i][0] != '-' && file == NULL) file = argv[i];
    else {
      fprintf(stderr, "meridianctl graph import: unexpected argument %s\n", argv[i]);
      return 2;
    }
  }
  if (file == NULL) {
    fprintf(stderr, "meridianctl graph import: missing FILE (.osm, .osm.gz, .osm.bz2 or .osm.pbf)\n");
    return 2;
  }
  char checksum[64];
  if (!file_checksum(file, checksum, sizeof checksum)) return 1;
  PGconn *c = mctl_graph_connect(dsn);
  if (c == NULL) return 1;
  int rc = 1;
  char dir[] = "/tmp/meridian-import-XXXXXX";
  bool have_dir = false;
  char schema[64];
  snprintf(schema, sizeof schema, "meridian_import_%ld", (long)getpid());
  bool have_schema = false;
  if (!mctl_graph_meta_present(c)) goto done;
  if (if_changed && graph_present(c)) {
    char *old = mctl_graph_meta_get(c, "source_checksum");
    bool same = old && strcmp(old, checksum) == 0;
    free(old);
    if (same) {
      fprintf(stderr, "graph import: %s is already imported (%s): nothing to do\n", file, checksum);
      rc = 0;
      goto done;
    }
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (mkdtemp(dir) == NULL) {
    fprintf(stderr, "meridianctl graph import: mkdtemp: %s\n", strerror(errno));
    goto done;
  }
  have_dir = true;
  char osm[512], log[512];
  snprintf(osm, sizeof osm, "%s/roads.osm", dir);
  snprintf(log, sizeof log, "%s/osmium.log", dir);
  fprintf(stderr, "graph import: [1/3] osmium: highways of %s -> OSM XML\n", file);
  {
    char *av[] = {"osmium", "tags-filter", (char *)file, "w/highway", "-o", osm, "-O", "-f", "osm", NULL};
    int r = run(av, log);
    if (r != 0) {
      fprintf(stderr, "meridianctl graph import: %s is not a readable OSM file (osmium exit %d):\n", file, r);
      print_file(log);
      goto done;
    }
  }
  /* staging schema: osm2pgrouting writes there; public is untouched until the swap */
  {
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema, schema);
    if (!exec_ok(c, sql, "creating the staging schema")) goto done;
    have_schema = true;
  }
  fprintf(stderr, "graph import: [2/3] osm2pgrouting (car profile) into schema %s\n", schema);
  {
    const char *d = dsn ? dsn : mctl_default_dsn();
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(d, &errmsg);
    if (opts == NULL) {
      fprintf(stderr, "meridianctl graph import: bad DSN: %s\n", errmsg ? errmsg : "?");
      PQfreemem(errmsg);
      goto done;
    }
    const char *host = conninfo_value(opts, "host") ? conninfo_value(opts, "host") : conninfo_value(opts, "hostaddr");
    const char *port = conninfo_value(opts, "port"), *user = conninfo_value(opts, "user");
    const char *db = conninfo_value(opts, "dbname"), *pw = conninfo_value(opts, "password");
    char *av[32];
    int k = 0;
    av[k++] = "osm2pgrouting";
    av[k++] = "-f", av[k++] = osm;
    av[k++] = "-c", av[k++] = MAPCONFIG;
    av[k++] = "--schema", av[k++] = schema;
    av[k++] = "--clean";
    av[k++] = "-d", av[k++] = (char *)(db ? db : PQdb(c));
    av[k++] = "-h", av[k++] = (char *)(host ? host : PQhost(c));
    av[k++] = "-p", av[k++] = (char *)(port ? port : PQport(c));
    av[k++] = "-U", av[k++] = (char *)(user ? user : PQuser(c));
    /* the password reaches osm2pgrouting's libpq through its environment, not its command
     * line (which every local user can read in /proc) */
    if (pw) setenv("PGPASSWORD", pw, 1);
    /* osm2pgrouting hands libpq an explicit empty password, which hides PGPASSWORD; libpq
     * then looks in the password file, so one is written for it (0600, in our 0700 temp dir) */
    char pgpass[PATH_MAX];
    if (pw && write_pgpass(dir, host ? host : PQhost(c), port ? port : PQport(c),
                           db ? db : PQdb(c), user ? user : PQuser(c), pw, pgpass, sizeof pgpass) == 0)
      setenv("PGPASSFILE", pgpass, 1);
    av[k] = NULL;
    snprintf(log, sizeof log, "%s/osm2pgrouting.log", dir);
    int r = run(av, log);
    PQconninfoFree(opts);
    if (r != 0) {
      fprintf(stderr, "meridianctl graph import: osm2pgrouting failed (exit %d):\n", r);
      print_file(log);
      goto done;
    }
  }
  {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT (SELECT count(*) FROM %s.ways), (SELECT count(*) FROM %s.ways_vertices_pgr)",
             schema, schema);
    PGresult *r = PQexec(c, sql);
    long ways = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
    long verts = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 1)) : 0;
    PQclear(r);
    if (ways == 0) {
      fprintf(stderr, "meridianctl graph import: %s has no road a car may use: nothing imported\n", file);
      goto done;
    }
    fprintf(stderr, "graph import: [3/3] swapping in %ld ways, %ld vertices\n", ways, verts);
    char swap[2048];
    char now[32];
    snprintf(now, sizeof now, "%ld", (long)time(NULL));
    snprintf(swap, sizeof swap,
             "BEGIN;"
             "DROP TABLE IF EXISTS public.ways, public.ways_vertices_pgr, public.configuration, "
             "public.pointsofinterest CASCADE;"
             "ALTER TABLE %s.ways SET SCHEMA public;"
             "ALTER TABLE %s.ways_vertices_pgr SET SCHEMA public;"
             "ALTER TABLE %s.configuration SET SCHEMA public;"
             "ALTER TABLE %s.pointsofinterest SET SCHEMA public;"
             "DROP SCHEMA %s CASCADE;",
             schema, schema, schema, schema, schema);
    if (!exec_ok(c, swap, "swapping the new graph in")) {
      PQclear(PQexec(c, "ROLLBACK"));
      goto done;
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    char counts[64];
    snprintf(counts, sizeof counts, "%ld", ways);
    /* a new import invalidates the calibration fitted on the old one */
    if (!mctl_graph_meta_set(c, "source_file", base) || !mctl_graph_meta_set(c, "source_checksum", checksum) ||
        !mctl_graph_meta_set(c, "imported_at", now) || !mctl_graph_meta_set(c, "ways", counts) ||
        !exec_ok(c, "DELETE FROM graph_meta WHERE key = 'calibration'", "clearing calibration") ||
        !exec_ok(c, "COMMIT", "committing the import")) {
      PQclear(PQexec(c, "ROLLBACK"));
      goto done;
    }
    have_schema = false;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "graph import: done in %.1f s (%s)\n",
          (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, checksum);
  rc = 0;
done:
  if (have_schema) {
    char sql[160];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    exec_ok(c, sql, "dropping the staging schema");
  }
  if (have_dir) {
    char p[600];
    const char *names[] = {"roads.osm", "osmium.log", "osm2pgrouting.log", "pgpass"};
    for (size_t i = 0; i < 4; i++) {
      snprintf(p, sizeof p, "%s/%s", dir, names[i]);
      unlink(p);
    }
    rmdir(dir);
  }
  PQfinish(c);
  return rc;
}

static int cmd_status(int argc, char **argv) {
  const char *dsn = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) dsn = argv[++i];
    else {
      fprintf(stderr, "meridianctl graph status: unexpected argument %s\n", argv[i]);
      return 2;
    }
  }
  PGconn *c = mctl_graph_connect(dsn);
  if (c == NULL) return 1;
  bool present = graph_present(c);
  char *file = mctl_graph_meta_get(c, "source_file"), *sum = mctl_graph_meta_get(c, "source_checksum");
  char *at = mctl_graph_meta_get(c, "imported_at"), *cal = mctl_graph_meta_get(c, "calibration");
  printf("graph: %s\nsource_file: %s\nsource_checksum: %s\nimported_at: %s\ncalibrated: %s\n",
         present ? "imported" : "absent", file ? file : "-", sum ? sum : "-", at ? at : "-", cal ? "yes" : "no");
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
  fprintf(stderr, "meridianctl graph: unknown subverb \"%s\" (try meridianctl graph --help)\n", sub);
  return 2;
}
