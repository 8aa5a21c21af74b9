/*
 * shards.c: `meridianctl shards show|plan|apply|move|history`, live shard rebalancing
 * (docs/shards.md). The adapters only: PostgreSQL (shard_map, shard_epochs, shard_runs, the
 * move lock, the shard leases), Redis (the per-shard figures and per-cell load dispatch
 * publishes), the plan file (JSON) and the terminal. The planning and the step
 * decisions are the pure mrd/shardplan.h; the map arithmetic is mrd/shardmap.h.
 *
 * Exit codes: 0 done; 1 failed (the message says at which epoch the map was left: as it was,
 * or at a consistent later epoch); 2 bad usage.
 */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mctl.h"
#include "mrd/clock.h"
#include "mrd/hash.h"
#include "mrd/log.h"
#include "mrd/redis.h"
#include "mrd/shardmap.h"
#include "mrd/shardplan.h"

#define SHARDS_LOCK_KEY "7311822012" /* pg_advisory_lock key: "meridian shards" */
#define ALIVE_MS 5000                /* a shard whose figures are older is not alive */
#define CONFIRM_TIMEOUT_MS 60000     /* longest a step waits for its shards to confirm */

/* ---------------------------------------------------------------- helpers */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "meridianctl shards: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static PGconn *pg_connect(void) {
  /* the owner's DSN: the map, its epochs and the runs are written by operators, not by the
   * services' role meridian_app (docs/security.md) */
  const char *dsn = mctl_default_dsn();
  if (!dsn) {
    say("neither MERIDIAN_PG_ADMIN_DSN nor MERIDIAN_PG_DSN is set (source .run/env)");
    return NULL;
  }
  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK) {
    say("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  return c;
}

static mrd_redis *redis_connect(void) {
  const char *url = getenv("MERIDIAN_REDIS_URL");
  mrd_redis *r = NULL;
  if (!url || !*url) {
    say("MERIDIAN_REDIS_URL is not set (source .run/env)");
    return NULL;
  }
  if (mrd_redis_new(url, NULL, &r) != 0) {
    say("MERIDIAN_REDIS_URL: bad URL");
    return NULL;
  }
  return r;
}

static PGresult *q(PGconn *c, const char *sql, int n, const char *const *params) {
  PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    say("SQL failed: %s", PQerrorMessage(c));
    PQclear(r);
    return NULL;
  }
  return r;
}

/* The current map and its epoch. Returns 0, or -1 (said why). */
static int load_map(PGconn *c, uint64_t *epoch, mrd_shardmap *m) {
  PGresult *r = q(c,
                  "SELECT epoch, range_start, range_end, shard FROM shard_map "
                  "WHERE epoch = (SELECT max(epoch) FROM shard_map) ORDER BY range_start",
                  0, NULL);
  if (!r) return -1;
  mrd_shardmap_init(m);
  int n = PQntuples(r);
  if (n == 0) {
    PQclear(r);
    say("shard_map is empty (run meridianctl db migrate)");
    return -1;
  }
  *epoch = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
  for (int i = 0; i < n; i++)
    if (mrd_shardmap_add(m, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                         (uint32_t)atoi(PQgetvalue(r, i, 3))) != 0) {
      PQclear(r);
      mrd_shardmap_close(m);
      say("shard_map: a boundary longer than %d characters", MRD_RANGE_KEY_MAX);
      return -1;
    }
  PQclear(r);
  char err[256];
  if (mrd_shardmap_check(m, err, sizeof err) != 0) {
    say("shard_map epoch %llu does not tile the world: %s", (unsigned long long)*epoch, err);
    mrd_shardmap_close(m);
    return -1;
  }
  return 0;
}

/* A range as show prints it and move takes it: START:END, "" and "~" as they are. */
static void range_str(const char *s, const char *e, char *out, size_t cap) {
  snprintf(out, cap, "%s:%s", s, e);
}

/* ---------------------------------------------------------------- what dispatch reports */

/* One shard's figures (Redis dispatch:stats:{shard}, schemas/redis.md). */
typedef struct shard_stats {
  bool present, alive, ready;
  uint64_t epoch; /* the epoch it serves (warm-up done) */
  int64_t ts_ms, since_ms;
  char host[128];
  long pid;
  long drivers, open_trips, warmed;
  double updates_per_s, requests_per_s, warm_ms;
} shard_stats;

static void read_stats(mrd_redis *rd, shard_stats *st) {
  memset(st, 0, MRD_SHARDS_MAX * sizeof *st);
  for (int k = 0; k < MRD_SHARDS_MAX; k++) {
    char key[48];
    snprintf(key, sizeof key, "dispatch:stats:%d", k);
    const char *argv[] = {"HGETALL", key};
    if (mrd_redis_append(rd, 2, argv, NULL) != 0) return;
  }
  int64_t now = mrd_wall_ms();
  for (int k = 0; k < MRD_SHARDS_MAX; k++) {
    redisReply *r = NULL;
    if (mrd_redis_get_reply(rd, &r) != 0 || !r) continue;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
      shard_stats *s = &st[k];
      s->present = true;
      for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
        if (!f || !v) continue;
        if (!strcmp(f, "epoch"))
          s->epoch = strtoull(v, NULL, 10);
        else if (!strcmp(f, "ts_ms"))
          s->ts_ms = strtoll(v, NULL, 10);
        else if (!strcmp(f, "since_ms"))
          s->since_ms = strtoll(v, NULL, 10);
        else if (!strcmp(f, "host"))
          snprintf(s->host, sizeof s->host, "%s", v);
        else if (!strcmp(f, "pid"))
          s->pid = strtol(v, NULL, 10);
        else if (!strcmp(f, "drivers"))
          s->drivers = strtol(v, NULL, 10);
        else if (!strcmp(f, "open_trips"))
          s->open_trips = strtol(v, NULL, 10);
        else if (!strcmp(f, "warmed"))
          s->warmed = strtol(v, NULL, 10);
        else if (!strcmp(f, "warm_ms"))
          s->warm_ms = strtod(v, NULL);
        else if (!strcmp(f, "updates_per_s"))
          s->updates_per_s = strtod(v, NULL);
        else if (!strcmp(f, "requests_per_s"))
          s->requests_per_s = strtod(v, NULL);
        else if (!strcmp(f, "ready"))
          s->ready = atoi(v) == 1;
      }
      /* alive: reported within ALIVE_MS and consuming commands (past its restore and warm-up) */
      s->alive = now - s->ts_ms < ALIVE_MS && s->ready;
    }
    freeReplyObject(r);
  }
}

/* Who holds each shard's lease (PostgreSQL shard_leases, when the ownership migration is
 * there): the lease, not the figures, says who holds a shard; a shard whose lease has
 * lapsed is not alive whatever it last reported. Without the table, the figures alone. */
static void read_leases(PGconn *c, shard_stats *st) {
  PGresult *r = q(c, "SELECT to_regclass('shard_leases') IS NOT NULL", 0, NULL);
  if (!r) return;
  bool have = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (!have) return;
  r = q(c,
        "SELECT shard, holder_host, holder_pid, (extract(epoch from since) * 1000)::bigint, "
        "expires_at > now() FROM shard_leases",
        0, NULL);
  if (!r) return;
  bool leased[MRD_SHARDS_MAX] = {false};
  for (int i = 0; i < PQntuples(r); i++) {
    int k = atoi(PQgetvalue(r, i, 0));
    if (k < 0 || k >= MRD_SHARDS_MAX) continue;
    shard_stats *s = &st[k];
    leased[k] = PQgetvalue(r, i, 4)[0] == 't';
    if (!leased[k]) continue;
    snprintf(s->host, sizeof s->host, "%s", PQgetvalue(r, i, 1));
    s->pid = atol(PQgetvalue(r, i, 2));
    s->since_ms = strtoll(PQgetvalue(r, i, 3), NULL, 10);
  }
  PQclear(r);
  for (int k = 0; k < MRD_SHARDS_MAX; k++)
    if (!leased[k]) st[k].alive = false;
}

typedef enum load_by { BY_UPDATES, BY_REQUESTS, BY_DRIVERS } load_by;
static const char *const BY_NAMES[] = {"updates", "requests", "drivers"};

/* Per-cell load, all shards added up: hot:updates:{k} and hot:demand:{k} hold counts over
 * the last minute (-> per second), hot:supply:{k} available drivers. *out malloc'd. */
static int read_cells(mrd_redis *rd, load_by by, mrd_cell_load **out, size_t *n) {
  static const char *const prefix[] = {"hot:updates:", "hot:demand:", "hot:supply:"};
  double scale = by == BY_DRIVERS ? 1.0 : 1.0 / 60;
  for (int k = 0; k < MRD_SHARDS_MAX; k++) {
    char key[48];
    snprintf(key, sizeof key, "%s%d", prefix[by], k);
    const char *argv[] = {"HGETALL", key};
    if (mrd_redis_append(rd, 2, argv, NULL) != 0) return -1;
  }
  mrd_cell_load *c = NULL;
  size_t len = 0, cap = 0;
  int rc = 0;
  for (int k = 0; k < MRD_SHARDS_MAX; k++) {
    redisReply *r = NULL;
    if (mrd_redis_get_reply(rd, &r) != 0 || !r) {
      rc = -1;
      continue;
    }
    if (r->type == REDIS_REPLY_ARRAY)
      for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *cell = r->element[i]->str, *v = r->element[i + 1]->str;
        if (!cell || !v || strlen(cell) > MRD_CELL_MAX || !mrd_range_key_valid(cell)) continue;
        if (len == cap) {
          cap = cap ? cap * 2 : 256;
          mrd_cell_load *x = realloc(c, cap * sizeof *x);
          if (!x) {
            rc = -1;
            break;
          }
          c = x;
        }
        snprintf(c[len].cell, sizeof c[len].cell, "%s", cell);
        c[len].load_per_s = strtod(v, NULL) * scale;
        len++;
      }
    freeReplyObject(r);
  }
  *out = c;
  *n = len;
  return rc;
}

/* The run under way, if any (shard_runs 'running'). */
typedef struct run_row {
  bool present;
  long id;
  char command[512], plan_file[512], plan_hash[32], host[128], started[40], step[512];
  int steps, done;
  long pid;
} run_row;

static int read_run(PGconn *c, run_row *rr) {
  memset(rr, 0, sizeof *rr);
  PGresult *r =
      q(c,
        "SELECT id, command, coalesce(plan_file, ''), coalesce(plan_hash, ''), steps, done, "
        "host, pid, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "coalesce(step::text, '') FROM shard_runs WHERE state = 'running'",
        0, NULL);
  if (!r) return -1;
  if (PQntuples(r) == 1) {
    rr->present = true;
    rr->id = atol(PQgetvalue(r, 0, 0));
    snprintf(rr->command, sizeof rr->command, "%s", PQgetvalue(r, 0, 1));
    snprintf(rr->plan_file, sizeof rr->plan_file, "%s", PQgetvalue(r, 0, 2));
    snprintf(rr->plan_hash, sizeof rr->plan_hash, "%s", PQgetvalue(r, 0, 3));
    rr->steps = atoi(PQgetvalue(r, 0, 4));
    rr->done = atoi(PQgetvalue(r, 0, 5));
    snprintf(rr->host, sizeof rr->host, "%s", PQgetvalue(r, 0, 6));
    rr->pid = atol(PQgetvalue(r, 0, 7));
    snprintf(rr->started, sizeof rr->started, "%s", PQgetvalue(r, 0, 8));
    snprintf(rr->step, sizeof rr->step, "%s", PQgetvalue(r, 0, 9));
  }
  PQclear(r);
  return 0;
}

/* Is the move lock held by a live session (someone else's)? 1 yes, 0 no, -1 error. */
static int lock_held_elsewhere(PGconn *c) {
  PGresult *r = q(c,
                  "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                  "AND ((classid::bigint << 32) | objid::bigint) = " SHARDS_LOCK_KEY
                  " AND pid <> pg_backend_pid()",
                  0, NULL);
  if (!r) return -1;
  int held = atoi(PQgetvalue(r, 0, 0)) > 0;
  PQclear(r);
  return held;
}

/* ---------------------------------------------------------------- show */

static void usage_show(FILE *f) {
  fprintf(f,
          "usage: meridianctl shards show [--json]\n"
          "  the current epoch, every range -> shard, per shard: alive (holder host, pid, since),\n"
          "  drivers indexed, open trips, location updates/s and requests/s over the last minute,\n"
          "  the imbalance (max/mean), and the move under way if any\n");
}

static int cmd_show(int argc, char **argv) {
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      json = true;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
      return usage_show(stdout), 0;
    else {
      say("show: unknown argument \"%s\" (try --help)", argv[i]);
      return 2;
    }
  }
  PGconn *c = pg_connect();
  if (!c) return 1;
  mrd_redis *rd = redis_connect();
  if (!rd) return PQfinish(c), 1;
  uint64_t epoch;
  mrd_shardmap m;
  run_row run;
  int rc = 1;
  if (load_map(c, &epoch, &m) != 0) goto out_nomap;
  if (read_run(c, &run) != 0) goto out;
  int held = run.present ? lock_held_elsewhere(c) : 0;
  static shard_stats st[MRD_SHARDS_MAX];
  read_stats(rd, st);
  read_leases(c, st);
  uint64_t owners = mrd_shardmap_shards(&m), listed = owners;
  for (int k = 0; k < MRD_SHARDS_MAX; k++)
    if (st[k].present) listed |= UINT64_C(1) << k;
  double upd[MRD_SHARDS_MAX], req[MRD_SHARDS_MAX];
  for (int k = 0; k < MRD_SHARDS_MAX; k++) {
    upd[k] = st[k].updates_per_s;
    req[k] = st[k].requests_per_s;
  }
  double imb_u = mrd_plan_imbalance(upd, owners), imb_r = mrd_plan_imbalance(req, owners);

  if (json) {
    json_t *o = json_object(), *ranges = json_array(), *shards = json_array();
    json_object_set_new(o, "epoch", json_integer((json_int_t)epoch));
    for (size_t i = 0; i < m.n; i++)
      json_array_append_new(ranges, json_pack("{s:s,s:s,s:i}", "start", m.r[i].start, "end",
                                              m.r[i].end, "shard", (int)m.r[i].shard));
    for (int k = 0; k < MRD_SHARDS_MAX; k++) {
      if (!(listed & (UINT64_C(1) << k))) continue;
      const shard_stats *s = &st[k];
      json_t *h = json_null();
      if (s->present && s->alive) {
        char since[40];
        time_t t = (time_t)(s->since_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
        h = json_pack("{s:s,s:i,s:s}", "host", s->host, "pid", (int)s->pid, "since", since);
      }
      int nr = 0;
      for (size_t i = 0; i < m.n; i++) nr += m.r[i].shard == (uint32_t)k;
      json_array_append_new(
          shards, json_pack("{s:i,s:b,s:o,s:i,s:i,s:f,s:f,s:i,s:I,s:b}", "shard", k, "alive",
                            (int)(s->present && s->alive), "holder", h, "drivers", (int)s->drivers,
                            "open_trips", (int)s->open_trips, "updates_per_s", s->updates_per_s,
                            "requests_per_s", s->requests_per_s, "ranges", nr, "serving_epoch",
                            (json_int_t)s->epoch, "owns_ranges", nr > 0));
    }
    json_object_set_new(o, "ranges", ranges);
    json_object_set_new(o, "shards", shards);
    json_object_set_new(o, "imbalance",
                        json_pack("{s:f,s:f}", "updates", imb_u, "requests", imb_r));
    if (run.present) {
      json_t *step = run.step[0] ? json_loads(run.step, 0, NULL) : NULL;
      json_object_set_new(
          o, "moving",
          json_pack("{s:I,s:s,s:s,s:i,s:i,s:o,s:s,s:I,s:s,s:b}", "run", (json_int_t)run.id,
                    "command", run.command, "plan_file", run.plan_file, "steps", run.steps, "done",
                    run.done, "step", step ? step : json_null(), "host", run.host, "pid",
                    (json_int_t)run.pid, "since", run.started, "interrupted", held == 0));
    } else {
      json_object_set_new(o, "moving", json_null());
    }
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(o);
  } else {
    printf("epoch %llu: %zu ranges\n", (unsigned long long)epoch, m.n);
    printf("  %-24s %s\n", "range", "shard");
    for (size_t i = 0; i < m.n; i++) {
      char rs[64];
      range_str(m.r[i].start, m.r[i].end, rs, sizeof rs);
      printf("  %-24s %u\n", rs, m.r[i].shard);
    }
    printf("\n  %-5s %-6s %-36s %8s %10s %10s %10s %7s\n", "shard", "alive",
           "holder (host pid since)", "drivers", "open_trips", "updates/s", "requests/s", "ranges");
    for (int k = 0; k < MRD_SHARDS_MAX; k++) {
      if (!(listed & (UINT64_C(1) << k))) continue;
      const shard_stats *s = &st[k];
      char holder[96] = "-";
      if (s->present && s->alive) {
        time_t t = (time_t)(s->since_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char since[24];
        strftime(since, sizeof since, "%H:%M:%SZ", &tm);
        snprintf(holder, sizeof holder, "%.40s %ld %s", s->host, s->pid, since);
      }
      int nr = 0;
      for (size_t i = 0; i < m.n; i++) nr += m.r[i].shard == (uint32_t)k;
      printf("  %-5d %-6s %-36s %8ld %10ld %10.1f %10.2f %7d%s\n", k,
             s->present && s->alive ? "yes" : "NO", holder, s->drivers, s->open_trips,
             s->updates_per_s, s->requests_per_s, nr, nr == 0 ? " (idle, ready)" : "");
    }
    printf("\n  imbalance (max/mean over shards owning ranges): updates %.2f, requests %.2f\n",
           imb_u, imb_r);
    if (run.present) {
      printf("\n  moving: run %ld \"%s\", step %d of %d done, started %s by %s pid %ld%s\n", run.id,
             run.command, run.done, run.steps, run.started, run.host, run.pid,
             held ? "" : " -- INTERRUPTED (no CLI holds the lock)");
      if (run.step[0]) printf("          step under way: %s\n", run.step);
      if (!held)
        printf("          the map is consistent at epoch %llu; %s\n", (unsigned long long)epoch,
               run.plan_file[0] ? "run `meridianctl shards apply <the same file>` to resume"
                                : "re-run the move to finish it (it resumes where it stopped)");
    } else {
      printf("\n  moving: nothing\n");
    }
  }
  rc = 0;
out:
  mrd_shardmap_close(&m);
out_nomap:
  mrd_redis_free(rd);
  PQfinish(c);
  return rc;
}

/* ---------------------------------------------------------------- plan */

static void usage_plan(FILE *f) {
  fprintf(
      f,
      "usage: meridianctl shards plan --shards N [--by updates|requests|drivers] [--out FILE] "
      "[--json]\n"
      "  proposes a map for N shards (1..64) from the load measured per geohash-6 cell over the\n"
      "  last minute (default: location updates), balanced, moving as little as possible;\n"
      "  prints each move and the load per shard before and after. --out writes the plan for\n"
      "  `shards apply`; --json prints the plan itself on stdout.\n");
}

static json_t *plan_json(const mrd_plan *p, uint64_t epoch, load_by by, int shards) {
  json_t *o = json_object(), *ranges = json_array(), *moves = json_array(), *bef = json_array(),
         *aft = json_array();
  json_object_set_new(o, "version", json_integer(1));
  json_object_set_new(o, "base_epoch", json_integer((json_int_t)epoch));
  json_object_set_new(o, "shards", json_integer(shards));
  json_object_set_new(o, "by", json_string(BY_NAMES[by]));
  for (size_t i = 0; i < p->map.n; i++)
    json_array_append_new(ranges, json_pack("{s:s,s:s,s:i}", "start", p->map.r[i].start, "end",
                                            p->map.r[i].end, "shard", (int)p->map.r[i].shard));
  for (size_t i = 0; i < p->n_moves; i++) {
    const mrd_plan_move *mv = &p->moves[i];
    json_array_append_new(moves, json_pack("{s:s,s:s,s:i,s:i,s:f}", "start", mv->range.start, "end",
                                           mv->range.end, "from", (int)mv->range.from, "to",
                                           (int)mv->range.to, "load", mv->load_per_s));
  }
  int top = shards;
  for (int k = 0; k < MRD_SHARDS_MAX; k++)
    if (p->before_per_s[k] > 0 && k + 1 > top) top = k + 1;
  for (int k = 0; k < top; k++) {
    json_array_append_new(bef, json_real(p->before_per_s[k]));
    json_array_append_new(aft, json_real(p->after_per_s[k]));
  }
  json_object_set_new(o, "ranges", ranges);
  json_object_set_new(o, "moves", moves);
  json_object_set_new(o, "load_before", bef);
  json_object_set_new(o, "load_after", aft);
  return o;
}

static int cmd_plan(int argc, char **argv) {
  long shards = -1;
  load_by by = BY_UPDATES;
  const char *out = NULL;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage_plan(stdout), 0;
    if (!strcmp(a, "--json")) {
      json = true;
    } else if (!strcmp(a, "--shards") && i + 1 < argc) {
      char *end;
      errno = 0;
      shards = strtol(argv[++i], &end, 10);
      if (errno || *end || end == argv[i] || shards < 1 || shards > MRD_SHARDS_MAX) {
        say("plan: --shards: \"%s\" is not a shard count in [1, %d]", argv[i], MRD_SHARDS_MAX);
        return 2;
      }
    } else if (!strcmp(a, "--by") && i + 1 < argc) {
      const char *v = argv[++i];
      if (!strcmp(v, "updates"))
        by = BY_UPDATES;
      else if (!strcmp(v, "requests"))
        by = BY_REQUESTS;
      else if (!strcmp(v, "drivers"))
        by = BY_DRIVERS;
      else {
        say("plan: --by must be updates, requests or drivers, not \"%s\"", v);
        return 2;
      }
    } else if (!strcmp(a, "--out") && i + 1 < argc) {
      out = argv[++i];
    } else {
      say("plan: unknown or incomplete argument \"%s\" (try --help)", a);
      return 2;
    }
  }
  if (shards < 0) {
    say("plan: --shards N is required (try --help)");
    return 2;
  }
  PGconn *c = pg_connect();
  if (!c) return 1;
  mrd_redis *rd = redis_connect();
  if (!rd) return PQfinish(c), 1;
  int rc = 1;
  uint64_t epoch;
  mrd_shardmap m;
  mrd_cell_load *cells = NULL;
  size_t n = 0;
  mrd_plan p;
  memset(&p, 0, sizeof p);
  if (load_map(c, &epoch, &m) != 0) goto out_nomap;
  if (read_cells(rd, by, &cells, &n) != 0) {
    say("plan: cannot read the per-cell load from Redis: %s", mrd_redis_errstr(rd));
    goto out;
  }
  char err[256];
  if (mrd_plan_make(&m, cells, n, (uint32_t)shards, &p, err, sizeof err) != 0) {
    say("plan: %s (by %s, %zu cells measured)", err, BY_NAMES[by], n);
    goto out;
  }
  const char *unit = by == BY_DRIVERS ? "drivers" : by == BY_UPDATES ? "updates/s" : "requests/s";
  FILE *h = json ? stderr : stdout;
  fprintf(
      h,
      "plan: %ld shards from epoch %llu, by %s (%zu cells, %.1f %s in all, ideal %.1f per shard)\n",
      shards, (unsigned long long)epoch, BY_NAMES[by], n, p.total_per_s, unit, p.ideal_per_s);
  fprintf(h, "moves (%zu):\n", p.n_moves);
  for (size_t i = 0; i < p.n_moves; i++) {
    char rs[64];
    range_str(p.moves[i].range.start, p.moves[i].range.end, rs, sizeof rs);
    fprintf(h, "  %2zu. %-24s shard %u -> %u   %.1f %s\n", i + 1, rs, p.moves[i].range.from,
            p.moves[i].range.to, p.moves[i].load_per_s, unit);
  }
  fprintf(h, "load per shard (%s):\n  %-5s %10s %10s\n", unit, "shard", "before", "after");
  for (int k = 0; k < MRD_SHARDS_MAX; k++) {
    if (k >= shards && p.before_per_s[k] <= 0) continue;
    fprintf(h, "  %-5d %10.1f %10.1f\n", k, p.before_per_s[k], p.after_per_s[k]);
  }
  uint64_t before_mask = mrd_shardmap_shards(&m), after_mask = mrd_shardmap_shards(&p.map);
  fprintf(h, "imbalance (max/mean): %.2f -> %.2f\n",
          mrd_plan_imbalance(p.before_per_s, before_mask),
          mrd_plan_imbalance(p.after_per_s, after_mask));
  json_t *pj = plan_json(&p, epoch, by, (int)shards);
  if (out) {
    if (json_dump_file(pj, out, JSON_INDENT(2)) != 0) {
      say("plan: cannot write %s: %s", out, strerror(errno));
      json_decref(pj);
      goto out;
    }
    fprintf(h, "written to %s: meridianctl shards apply %s\n", out, out);
  }
  if (json) {
    char *s = json_dumps(pj, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
  }
  json_decref(pj);
  rc = 0;
out:
  mrd_plan_close(&p);
  free(cells);
  mrd_shardmap_close(&m);
out_nomap:
  mrd_redis_free(rd);
  PQfinish(c);
  return rc;
}

/* ---------------------------------------------------------------- apply, move */

typedef struct step {
  mrd_shard_move mv;
  double load;
} step;

static char g_command[1024]; /* the command line, for shard_epochs and shard_runs */

static void set_command(int argc, char **argv) {
  size_t o = (size_t)snprintf(g_command, sizeof g_command, "meridianctl shards");
  for (int i = 0; i < argc && o < sizeof g_command; i++)
    o += (size_t)snprintf(g_command + o, sizeof g_command - o, " %s", argv[i]);
}

static void fnv_hex(const char *s, size_t n, char out[17]) {
  snprintf(out, 17, "%016llx", (unsigned long long)mrd_fnv1a64(MRD_FNV1A64_SEED, s, n));
}

/* Write the next epoch: the current map with mv carried out, in one transaction with its
 * history row and the run's step. Returns the new epoch, 0 when the step turned out to be
 * no longer needed, or -1 (said why; nothing written). */
static long long commit_step(PGconn *c, const mrd_shard_move *mv, long run_id) {
  PGresult *r = PQexec(c, "BEGIN");
  PQclear(r);
  r = PQexec(c, "LOCK TABLE shard_map IN EXCLUSIVE MODE");
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    say("cannot lock shard_map: %s", PQerrorMessage(c));
    PQclear(r);
    PQclear(PQexec(c, "ROLLBACK"));
    return -1;
  }
  PQclear(r);
  uint64_t epoch;
  mrd_shardmap m;
  if (load_map(c, &epoch, &m) != 0) {
    PQclear(PQexec(c, "ROLLBACK"));
    return -1;
  }
  long long rc = -1;
  uint64_t none[MRD_SHARDS_MAX] = {0};
  mrd_step_action a = mrd_plan_step(&m, epoch, mv, none);
  if (a != MRD_STEP_COMMIT) {
    rc = a == MRD_STEP_CONFLICT ? -1 : 0;
    if (a == MRD_STEP_CONFLICT)
      say("the map changed under the plan (epoch %llu): re-plan", (unsigned long long)epoch);
    PQclear(PQexec(c, "ROLLBACK"));
    mrd_shardmap_close(&m);
    return rc;
  }
  if (mrd_shardmap_assign(&m, mv->start, mv->end, (int)mv->from, mv->to) != 0) {
    say("out of memory");
    goto fail;
  }
  char ep[24], run[24], cmd_json[512];
  snprintf(ep, sizeof ep, "%llu", (unsigned long long)(epoch + 1));
  snprintf(run, sizeof run, "%ld", run_id);
  for (size_t i = 0; i < m.n; i++) {
    char sh[12];
    snprintf(sh, sizeof sh, "%u", m.r[i].shard);
    const char *p[4] = {ep, m.r[i].start, m.r[i].end, sh};
    PGresult *x =
        q(c, "INSERT INTO shard_map (epoch, range_start, range_end, shard) VALUES ($1, $2, $3, $4)",
          4, p);
    if (!x) goto fail;
    PQclear(x);
  }
  const char *p2[3] = {ep, g_command, run};
  PGresult *x =
      q(c, "INSERT INTO shard_epochs (epoch, command, run_id) VALUES ($1, $2, $3)", 3, p2);
  if (!x) goto fail;
  PQclear(x);
  snprintf(cmd_json, sizeof cmd_json,
           "{\"start\":\"%s\",\"end\":\"%s\",\"from\":%u,\"to\":%u,\"epoch\":%s}", mv->start,
           mv->end, mv->from, mv->to, ep);
  const char *p3[2] = {run, cmd_json};
  x = q(c, "UPDATE shard_runs SET step = $2::jsonb, updated_at = now() WHERE id = $1", 2, p3);
  if (!x) goto fail;
  PQclear(x);
  x = PQexec(c, "COMMIT");
  if (PQresultStatus(x) != PGRES_COMMAND_OK) {
    say("commit failed: %s", PQerrorMessage(c));
    PQclear(x);
    mrd_shardmap_close(&m);
    return -1;
  }
  PQclear(x);
  mrd_shardmap_close(&m);
  return (long long)(epoch + 1);
fail:
  PQclear(PQexec(c, "ROLLBACK"));
  mrd_shardmap_close(&m);
  return rc;
}

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

/* The load of mv's range by `by`, all shards added up (read_cells: per second, or available
 * drivers); -1 when Redis could not be read. */
static double range_load(mrd_redis *rd, const mrd_shard_move *mv, load_by by) {
  mrd_cell_load *c = NULL;
  size_t n = 0;
  if (read_cells(rd, by, &c, &n) != 0) {
    free(c);
    return -1;
  }
  double sum = 0;
  for (size_t i = 0; i < n; i++)
    if (strcmp(mv->start, c[i].cell) <= 0 && strcmp(c[i].cell, mv->end) < 0) sum += c[i].load_per_s;
  free(c);
  return sum;
}

/* The available drivers in mv's range, as the shards last published them (hot:supply:<k>,
 * per geohash-6 cell, at most one hot interval old): what the receiver should warm. -1 when
 * Redis could not be read. */
static long available_in(mrd_redis *rd, const mrd_shard_move *mv) {
  double sum = range_load(rd, mv, BY_DRIVERS);
  return sum < 0 ? -1 : (long)(sum + 0.5);
}

/* Carry out steps[0..n) live, one epoch each. Run bookkeeping in shard_runs; the lock is
 * taken by the caller. Returns the exit code. */
static int run_steps(PGconn *c, mrd_redis *rd, long run_id, const step *steps, size_t n,
                     int already) {
  for (size_t i = 0; i < n; i++) {
    const mrd_shard_move *mv = &steps[i].mv;
    char rs[64];
    range_str(mv->start, mv->end, rs, sizeof rs);
    double t0 = mrd_mono_s();
    static shard_stats st[MRD_SHARDS_MAX];
    read_stats(rd, st);
    read_leases(c, st);
    uint64_t epoch;
    mrd_shardmap m;
    if (load_map(c, &epoch, &m) != 0) return 1;
    uint64_t conf[MRD_SHARDS_MAX];
    for (int k = 0; k < MRD_SHARDS_MAX; k++) conf[k] = st[k].alive ? st[k].epoch : 0;
    if (!st[mv->from].alive) conf[mv->from] = UINT64_MAX; /* a dead giver cannot confirm */
    mrd_step_action a = mrd_plan_step(&m, epoch, mv, conf);
    mrd_shardmap_close(&m);
    if (a == MRD_STEP_CONFLICT) {
      say("step %zu/%zu %s %u -> %u: part of the range is on another shard now (epoch %llu): the "
          "map changed under the plan; the map is left at epoch %llu (consistent); re-plan",
          i + 1, n, rs, mv->from, mv->to, (unsigned long long)epoch, (unsigned long long)epoch);
      return 1;
    }
    long available = -1; /* the range's available drivers as the giver last published them */
    if (a == MRD_STEP_COMMIT) available = available_in(rd, mv);
    /* a step of `move` has no planned load (< 0): the range's location updates/s, measured */
    double load = steps[i].load;
    if (load < 0) load = a == MRD_STEP_COMMIT ? range_load(rd, mv, BY_UPDATES) : 0;
    if (load < 0) load = 0;
    if (a == MRD_STEP_COMMIT) {
      if (!st[mv->to].alive) {
        say("step %zu/%zu: shard %u is not alive (no dispatch process has reported for it in the "
            "last "
            "%d s): start it first (scripts/stack up --shards N, or scale the dispatch "
            "StatefulSet); "
            "the map is left at epoch %llu",
            i + 1, n, mv->to, ALIVE_MS / 1000, (unsigned long long)epoch);
        return 1;
      }
      long long e = commit_step(c, mv, run_id);
      if (e < 0) {
        say("step %zu/%zu failed; the map is left at epoch %llu (consistent)", i + 1, n,
            (unsigned long long)epoch);
        return 1;
      }
      if (e > 0) epoch = (uint64_t)e; /* migration 0006 notifies shard_map at the commit */
    }
    /* wait until the receiver has warmed and serves the epoch, and the giver let go */
    bool ok = a == MRD_STEP_DONE;
    while (!ok && !g_stop && mrd_mono_s() - t0 < CONFIRM_TIMEOUT_MS / 1000.0) {
      sleep_ms(100);
      read_stats(rd, st);
      read_leases(c, st);
      for (int k = 0; k < MRD_SHARDS_MAX; k++) conf[k] = st[k].alive ? st[k].epoch : 0;
      if (!st[mv->from].alive) conf[mv->from] = UINT64_MAX;
      if (load_map(c, &epoch, &m) != 0) return 1;
      a = mrd_plan_step(&m, epoch, mv, conf);
      mrd_shardmap_close(&m);
      ok = a == MRD_STEP_DONE;
      if (a == MRD_STEP_CONFLICT || a == MRD_STEP_COMMIT) break;
    }
    if (!ok) {
      say("step %zu/%zu %s %u -> %u: %s; the map is at epoch %llu (consistent: the range is on "
          "shard %u); `shards show` tells what each shard serves",
          i + 1, n, rs, mv->from, mv->to,
          g_stop ? "interrupted" : "the shards did not confirm the new epoch within 60 s",
          (unsigned long long)epoch, mv->to);
      return 1;
    }
    char done[24];
    snprintf(done, sizeof done, "%d", already + (int)i + 1);
    char run[24];
    snprintf(run, sizeof run, "%ld", run_id);
    const char *p[2] = {run, done};
    PGresult *x =
        q(c, "UPDATE shard_runs SET done = $2::integer, updated_at = now() WHERE id = $1", 2, p);
    if (x) PQclear(x);
    fprintf(
        stderr,
        "step %zu/%zu: %-22s shard %u -> %u  epoch %llu  %.1f load  shard %u warmed %ld drivers in "
        "%.0f ms  confirmed in %.2f s  (%ld available at the move)\n",
        i + 1 + (size_t)already, n + (size_t)already, rs, mv->from, mv->to,
        (unsigned long long)epoch, load, mv->to, st[mv->to].warmed, st[mv->to].warm_ms,
        mrd_mono_s() - t0, available < 0 ? 0 : available);
  }
  return 0;
}

/* Take the lock and the run row, or resume an interrupted run of the same plan. Returns
 * the run id (> 0), or -1 (said why), and *already the steps a resumed run had done. */
static long begin_run(PGconn *c, const char *plan_file, const char *plan_hash, int steps,
                      int *already) {
  *already = 0;
  PGresult *r = q(c, "SELECT pg_try_advisory_lock(" SHARDS_LOCK_KEY ")", 0, NULL);
  if (!r) return -1;
  bool got = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  run_row run;
  if (read_run(c, &run) != 0) return -1;
  if (!got) {
    if (run.present)
      say("another shards command is running (\"%s\", started %s by %s pid %ld, step %d of %d "
          "done): the map is left as it is; wait for it (meridianctl shards show)",
          run.command, run.started, run.host, run.pid, run.done, run.steps);
    else
      say("another shards command is running (a session holds the move lock): the map is left "
          "as it is; wait for it (meridianctl shards show)");
    return -1;
  }
  char host[128] = "?";
  gethostname(host, sizeof host - 1);
  char pid[24], st[24];
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  snprintf(st, sizeof st, "%d", steps);
  if (run.present) {
    if (plan_hash && !strcmp(run.plan_hash, plan_hash)) {
      char id[24];
      snprintf(id, sizeof id, "%ld", run.id);
      const char *p[3] = {id, host, pid};
      PGresult *x = q(
          c, "UPDATE shard_runs SET host = $2, pid = $3::integer, updated_at = now() WHERE id = $1",
          3, p);
      if (!x) return -1;
      PQclear(x);
      fprintf(stderr,
              "resuming run %ld (\"%s\", %d of %d steps were done, started %s by %s pid %ld)\n",
              run.id, run.command, run.done, run.steps, run.started, run.host, run.pid);
      *already = 0; /* every step is re-checked against the map: done ones are skipped */
      return run.id;
    }
    if (!run.plan_file[0] && !plan_hash) {
      /* a move left behind: a new move takes its place (its steps are checked anew) */
      char id[24];
      snprintf(id, sizeof id, "%ld", run.id);
      const char *p[1] = {id};
      PGresult *x = q(c,
                      "UPDATE shard_runs SET state = 'failed', message = 'interrupted; superseded "
                      "by a later move', updated_at = now() WHERE id = $1",
                      1, p);
      if (!x) return -1;
      PQclear(x);
      fprintf(stderr,
              "closing the interrupted move \"%s\" (started %s by %s pid %ld); the map was "
              "consistent at every epoch\n",
              run.command, run.started, run.host, run.pid);
    } else {
      say("an interrupted run is pending: \"%s\" (step %d of %d done, started %s by %s pid %ld); "
          "the "
          "map is consistent; %s; refused, the map is unchanged",
          run.command, run.done, run.steps, run.started, run.host, run.pid,
          run.plan_file[0] ? "resume it first with `meridianctl shards apply` of its file"
                           : "finish it first by running the same move again");
      return -1;
    }
  }
  const char *p[6] = {g_command, plan_file, plan_hash, st, host, pid};
  PGresult *x = q(c,
                  "INSERT INTO shard_runs (command, plan_file, plan_hash, steps, state, host, pid) "
                  "VALUES ($1, $2, $3, $4::integer, 'running', $5, $6::integer) RETURNING id",
                  6, p);
  if (!x) return -1;
  long id = atol(PQgetvalue(x, 0, 0));
  PQclear(x);
  return id;
}

static void end_run(PGconn *c, long id, bool ok, const char *msg) {
  char sid[24];
  snprintf(sid, sizeof sid, "%ld", id);
  const char *p[3] = {sid, ok ? "done" : "failed", msg};
  PGresult *x = q(
      c, "UPDATE shard_runs SET state = $2, message = $3, updated_at = now() WHERE id = $1", 3, p);
  if (x) PQclear(x);
  PQclear(PQexec(c, "SELECT pg_advisory_unlock(" SHARDS_LOCK_KEY ")"));
}

static void usage_apply(FILE *f) {
  fprintf(f,
          "usage: meridianctl shards apply FILE [--dry-run]\n"
          "  carries out a plan written by `shards plan --out FILE`, live, one move (one epoch)\n"
          "  at a time, with a progress line per step. Re-running it after an interruption\n"
          "  resumes: steps already carried out are skipped. --dry-run checks the plan and\n"
          "  prints what each step would do, changing nothing.\n");
}

/* Read and check a plan file: its target ranges must tile the world and its moves, applied
 * to the map they start from, must give those ranges. Returns 0 or 1 (said why). */
static int read_plan(const char *path, step **steps, size_t *n, char hash[17]) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    say("apply: cannot read %s: %s", path, strerror(errno));
    return 1;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *x = realloc(buf, cap);
      if (!x) {
        free(buf);
        fclose(f);
        return 1;
      }
      buf = x;
    }
    size_t got = fread(buf + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0) break;
  }
  fclose(f);
  buf[len] = '\0';
  fnv_hex(buf, len, hash);
  json_error_t je;
  json_t *o = json_loads(buf, 0, &je);
  free(buf);
  if (!o || !json_is_object(o)) {
    say("apply: %s is not a plan (JSON error at line %d: %s)", path, je.line, je.text);
    json_decref(o);
    return 1;
  }
  int rc = 1;
  mrd_shardmap target, base;
  mrd_shardmap_init(&target);
  mrd_shardmap_init(&base);
  json_t *ranges = json_object_get(o, "ranges"), *moves = json_object_get(o, "moves");
  if (!json_is_array(ranges) || !json_is_array(moves)) {
    say("apply: %s: a plan has \"ranges\" and \"moves\" arrays (meridianctl shards plan --out)",
        path);
    goto out;
  }
  size_t i;
  json_t *v;
  json_array_foreach(ranges, i, v) {
    const char *s = json_string_value(json_object_get(v, "start"));
    const char *e = json_string_value(json_object_get(v, "end"));
    json_t *sh = json_object_get(v, "shard");
    if (!s || !e || !json_is_integer(sh) || json_integer_value(sh) < 0 ||
        json_integer_value(sh) >= MRD_SHARDS_MAX ||
        mrd_shardmap_add(&target, s, e, (uint32_t)json_integer_value(sh))) {
      say("apply: %s: range %zu needs a start, an end and a shard in [0, %d)", path, i,
          MRD_SHARDS_MAX);
      goto out;
    }
  }
  char err[256];
  if (mrd_shardmap_check(&target, err, sizeof err) != 0) {
    say("apply: %s: the plan's ranges do not tile the world: %s; refused, the map is unchanged",
        path, err);
    goto out;
  }
  *n = json_array_size(moves);
  *steps = *n ? calloc(*n, sizeof **steps) : NULL;
  json_array_foreach(moves, i, v) {
    const char *s = json_string_value(json_object_get(v, "start"));
    const char *e = json_string_value(json_object_get(v, "end"));
    json_t *fr = json_object_get(v, "from"), *to = json_object_get(v, "to");
    if (!s || !e || !mrd_range_key_valid(s) || !mrd_range_key_valid(e) || strcmp(s, e) >= 0 ||
        !json_is_integer(fr) || !json_is_integer(to) || json_integer_value(fr) < 0 ||
        json_integer_value(to) < 0 || json_integer_value(fr) >= MRD_SHARDS_MAX ||
        json_integer_value(to) >= MRD_SHARDS_MAX ||
        json_integer_value(fr) == json_integer_value(to)) {
      say("apply: %s: move %zu needs start < end (geohash prefixes, '' or '~') and two different "
          "shards from, to in [0, %d)",
          path, i + 1, MRD_SHARDS_MAX);
      free(*steps);
      *steps = NULL;
      goto out;
    }
    step *st = &(*steps)[i];
    snprintf(st->mv.start, sizeof st->mv.start, "%s", s);
    snprintf(st->mv.end, sizeof st->mv.end, "%s", e);
    st->mv.from = (uint32_t)json_integer_value(fr);
    st->mv.to = (uint32_t)json_integer_value(to);
    st->load = json_number_value(json_object_get(v, "load"));
    /* every target range the move touches says `to` */
    for (size_t k = 0; k < target.n; k++) {
      const mrd_shard_range *r = &target.r[k];
      if (strcmp(r->end, s) <= 0 || strcmp(r->start, e) >= 0) continue;
      if (r->shard != st->mv.to) {
        say("apply: %s: move %zu gives %s:%s to shard %u but the plan's ranges give part of it to "
            "shard %u; refused, the map is unchanged",
            path, i + 1, s, e, st->mv.to, r->shard);
        free(*steps);
        *steps = NULL;
        goto out;
      }
    }
  }
  rc = 0;
out:
  mrd_shardmap_close(&target);
  mrd_shardmap_close(&base);
  json_decref(o);
  return rc;
}

static int execute(const char *plan_file, const char *hash, step *steps, size_t n, bool dry_run) {
  PGconn *c = pg_connect();
  if (!c) return 1;
  mrd_redis *rd = redis_connect();
  if (!rd) return PQfinish(c), 1;
  int rc = 1;
  uint64_t epoch;
  mrd_shardmap m;
  if (load_map(c, &epoch, &m) != 0) goto out;
  static shard_stats st[MRD_SHARDS_MAX];
  read_stats(rd, st);
  read_leases(c, st);
  if (dry_run) {
    uint64_t conf[MRD_SHARDS_MAX];
    for (int k = 0; k < MRD_SHARDS_MAX; k++) conf[k] = st[k].alive ? st[k].epoch : 0;
    rc = 0;
    for (size_t i = 0; i < n; i++) {
      char rs[64];
      range_str(steps[i].mv.start, steps[i].mv.end, rs, sizeof rs);
      mrd_step_action a = mrd_plan_step(&m, epoch, &steps[i].mv, conf);
      const char *what = a == MRD_STEP_COMMIT     ? "would move it (one new epoch)"
                         : a == MRD_STEP_CONFLICT ? "CONFLICT: part of it is on another shard now"
                                                  : "already carried out: skipped";
      bool dead = a == MRD_STEP_COMMIT && !st[steps[i].mv.to].alive;
      printf("step %zu/%zu: %-22s shard %u -> %u  %.1f load: %s%s\n", i + 1, n, rs,
             steps[i].mv.from, steps[i].mv.to, steps[i].load, what,
             dead ? " -- REFUSED: the receiving shard is not alive" : "");
      if (a == MRD_STEP_CONFLICT || dead) rc = 1;
      if (a == MRD_STEP_COMMIT)
        mrd_shardmap_assign(&m, steps[i].mv.start, steps[i].mv.end, (int)steps[i].mv.from,
                            steps[i].mv.to);
    }
    printf("dry run: nothing changed (epoch %llu)\n", (unsigned long long)epoch);
    goto out_map;
  }
  int already = 0;
  long run = begin_run(c, plan_file, hash, (int)n, &already);
  if (run < 0) goto out_map;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  double t0 = mrd_mono_s();
  rc = run_steps(c, rd, run, steps, n, already);
  uint64_t e2 = epoch;
  mrd_shardmap m2;
  if (load_map(c, &e2, &m2) == 0) mrd_shardmap_close(&m2);
  char msg[160];
  snprintf(msg, sizeof msg, "%s at epoch %llu after %.1f s", rc == 0 ? "done" : "failed",
           (unsigned long long)e2, mrd_mono_s() - t0);
  end_run(c, run, rc == 0, msg);
  if (rc == 0)
    fprintf(stderr, "done: %zu steps, the map is at epoch %llu (%.1f s)\n", n,
            (unsigned long long)e2, mrd_mono_s() - t0);
out_map:
  mrd_shardmap_close(&m);
out:
  mrd_redis_free(rd);
  PQfinish(c);
  return rc;
}

static int cmd_apply(int argc, char **argv) {
  const char *file = NULL;
  bool dry = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage_apply(stdout), 0;
    if (!strcmp(argv[i], "--dry-run"))
      dry = true;
    else if (argv[i][0] == '-' || file) {
      say("apply: unknown argument \"%s\" (try --help)", argv[i]);
      return 2;
    } else {
      file = argv[i];
    }
  }
  if (!file) {
    say("apply: FILE is required (a plan from `meridianctl shards plan --out FILE`)");
    return 2;
  }
  step *steps = NULL;
  size_t n = 0;
  char hash[17];
  if (read_plan(file, &steps, &n, hash) != 0) return 1;
  int rc = execute(file, hash, steps, n, dry);
  free(steps);
  return rc;
}

static void usage_move(FILE *f) {
  fprintf(f,
          "usage: meridianctl shards move --range START:END --to K\n"
          "  gives the geohash range [START, END) to shard K, live (START, END: geohash prefixes\n"
          "  as `shards show` prints them, '' for the world's start, '~' for its end). Ranges\n"
          "  the boundaries cut are split there; one step (one epoch) per shard giving a part.\n");
}

static int cmd_move(int argc, char **argv) {
  const char *range = NULL;
  long to = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage_move(stdout), 0;
    if (!strcmp(argv[i], "--range") && i + 1 < argc) {
      range = argv[++i];
    } else if (!strcmp(argv[i], "--to") && i + 1 < argc) {
      char *end;
      errno = 0;
      to = strtol(argv[++i], &end, 10);
      if (errno || *end || end == argv[i] || to < 0 || to >= MRD_SHARDS_MAX) {
        say("move: --to: \"%s\" is not a shard in [0, %d)", argv[i], MRD_SHARDS_MAX);
        return 2;
      }
    } else {
      say("move: unknown or incomplete argument \"%s\" (try --help)", argv[i]);
      return 2;
    }
  }
  if (!range || to < 0) {
    say("move: --range START:END and --to K are required (try --help)");
    return 2;
  }
  const char *colon = strchr(range, ':');
  char s[MRD_RANGE_KEY_MAX + 2] = "", e[MRD_RANGE_KEY_MAX + 2] = "";
  if (!colon || (size_t)(colon - range) > MRD_RANGE_KEY_MAX ||
      strlen(colon + 1) > MRD_RANGE_KEY_MAX) {
    say("move: --range must be START:END (geohash prefixes of at most %d characters)",
        MRD_RANGE_KEY_MAX);
    return 2;
  }
  memcpy(s, range, (size_t)(colon - range));
  snprintf(e, sizeof e, "%s", colon + 1);
  if (!mrd_range_key_valid(s) || !mrd_range_key_valid(e) || strcmp(s, e) >= 0) {
    say("move: --range %s: START and END must be geohash prefixes ('' and '~' for the world's "
        "ends) with START < END",
        range);
    return 2;
  }
  PGconn *c = pg_connect();
  if (!c) return 1;
  uint64_t epoch;
  mrd_shardmap m, t;
  if (load_map(c, &epoch, &m) != 0) return PQfinish(c), 1;
  PQfinish(c);
  mrd_shardmap_init(&t);
  mrd_shardmap_copy(&t, &m);
  mrd_shard_move *mv = NULL;
  size_t n = 0;
  if (mrd_shardmap_assign(&t, s, e, -1, (uint32_t)to) != 0 ||
      mrd_shardmap_diff(&m, &t, &mv, &n) != 0) {
    say("move: out of memory");
    mrd_shardmap_close(&m);
    mrd_shardmap_close(&t);
    return 1;
  }
  mrd_shardmap_close(&m);
  mrd_shardmap_close(&t);
  int rc = 0;
  if (n == 0) {
    fprintf(stderr, "move: %s is already on shard %ld (epoch %llu): nothing to do\n", range, to,
            (unsigned long long)epoch);
  } else {
    step *steps = calloc(n, sizeof *steps);
    for (size_t i = 0; i < n; i++) {
      steps[i].mv = mv[i];
      steps[i].load = -1; /* measured when the step commits */
    }
    rc = execute(NULL, NULL, steps, n, false);
    free(steps);
  }
  free(mv);
  return rc;
}

/* ---------------------------------------------------------------- history */

static int cmd_history(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: meridianctl shards history\n  every epoch of the shard map: when, by which "
             "command, its ranges and shards\n");
      return 0;
    }
    say("history: unknown argument \"%s\" (try --help)", argv[i]);
    return 2;
  }
  PGconn *c = pg_connect();
  if (!c) return 1;
  PGresult *r =
      q(c,
        "SELECT m.epoch, to_char(coalesce(e.created_at, min(m.created_at)) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), coalesce(e.command, '(unrecorded)'), count(*), "
        "count(DISTINCT m.shard) FROM shard_map m LEFT JOIN shard_epochs e ON e.epoch = m.epoch "
        "GROUP BY m.epoch, e.created_at, e.command ORDER BY m.epoch",
        0, NULL);
  if (!r) return PQfinish(c), 1;
  printf("%-6s %-25s %-7s %-7s %s\n", "epoch", "when (UTC)", "ranges", "shards", "command");
  for (int i = 0; i < PQntuples(r); i++)
    printf("%-6s %-25s %-7s %-7s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
           PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 2));
  PQclear(r);
  PQfinish(c);
  return 0;
}

/* ---------------------------------------------------------------- the verb */

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: meridianctl shards <command> [args]   (docs/shards.md)\n"
      "  show [--json]                                   the map, the shards, the move under way\n"
      "  plan --shards N [--by updates|requests|drivers] [--out FILE] [--json]\n"
      "  apply FILE [--dry-run]                          carry a plan out live (resumable)\n"
      "  move --range START:END --to K                   one range to shard K, live\n"
      "  history                                         every epoch: when, by which command\n"
      "exit codes: 0 done, 1 failed (the map as it was or at a consistent later epoch), 2 bad "
      "usage\n"
      "environment: MERIDIAN_PG_ADMIN_DSN (else MERIDIAN_PG_DSN), MERIDIAN_REDIS_URL (see "
      ".run/env)\n");
}

int mctl_shards_main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *sub = argv[1];
  if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) return usage(stdout), 0;
  set_command(argc - 1, argv + 1);
  /* the adapters' connection lines are noise here: warnings and errors only, unless asked */
  mrd_log_init("meridianctl");
  if (!getenv("MERIDIAN_LOG_LEVEL")) mrd_log_set_level(MRD_LOG_WARN);
  if (!strcmp(sub, "show")) return cmd_show(argc - 1, argv + 1);
  if (!strcmp(sub, "plan")) return cmd_plan(argc - 1, argv + 1);
  if (!strcmp(sub, "apply")) return cmd_apply(argc - 1, argv + 1);
  if (!strcmp(sub, "move")) return cmd_move(argc - 1, argv + 1);
  if (!strcmp(sub, "history")) return cmd_history(argc - 1, argv + 1);
  say("unknown command \"%s\" (try meridianctl shards --help)", sub);
  return 2;
}
