/*
 * ramp_run.c: `meridian-loadgen ramp` (ramp_run.h). The adapter around ramp.c: options,
 * child replays (fork + exec of this binary), wait4() for their CPU, /proc/<pid>/stat for
 * the stack's, the gateway's /metrics, the children's JSON and samples, gnuplot.
 */
#define _DEFAULT_SOURCE /* wait4 */
#include "ramp_run.h"

#include "mrd/clock.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hops.h"
#include "ramp.h"
#include "report.h"
#include "scrape.h"
#include "ws.h"

#define DEFAULT_STEPS "500:30,1000:60,2000:120,4000:180,8000:240,12000:300,16000:300,20000:300"

static void usage(FILE *fp) {
  fprintf(
      fp,
      "usage: meridian-loadgen ramp --trips FILE [options]\n"
      "Raises the load step by step (drivers x ping rate for locations, the replay's speedup for\n"
      "requests), holds each step, and finds the knee: the highest step, before the first that\n"
      "fails, where request -> offer p99 < --p99-max-ms, match rate >= --match-min-pct and no\n"
      "location update was dropped. Prints the steps as a table, writes the plot, and ends with\n"
      "one JSON line: knee_updates_per_s, knee_requests_per_s, ...\n"
      "  --trips FILE         trips CSV (as replay)\n"
      "  --steps LIST         DRIVERS:SPEEDUP,... (default " DEFAULT_STEPS ")\n"
      "  --hold S             wall seconds of requests per step (default 20)\n"
      "  --procs N            load processes per step, drivers and trips split (default: one\n"
      "                       per 1,000 drivers, at least 2)\n"
      "  --ping-max-hz H      location messages per driver per second at most (default 1)\n"
      "  --keepalive S        the apps' WebSocket ping after S s without traffic (default 30, as\n"
      "                       mobile apps; replay's default 5 is for its fault tests)\n"
      "  --drain S            wall seconds a step waits for trips to finish (default 3)\n"
      "  --pids NAME=PID,...  stack processes whose CPU to report (scripts/capacity passes them)\n"
      "  --out DIR            children's reports and the plot data (default out/capacity)\n"
      "  --plot FILE.png      the plot (default DIR/capacity.png)\n"
      "  --p99-max-ms X       bound on request -> offer p99 (default 50)\n"
      "  --match-min-pct X    floor on the match rate (default 95)\n"
      "  --start HH:MM, --seed S, --url, --graph, --area: as replay\n"
      "Environment: MERIDIAN_JWT_SECRET (required), MERIDIAN_GATEWAY_URL, MERIDIAN_GRAPH.\n");
}

/* The CPU ticks (user + system, and those of its children it has reaped) of pid so far and
 * its parent, from /proc/<pid>/stat; false when unreadable. */
static bool proc_ticks(long pid, unsigned long long *ticks, long *ppid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *fp = fopen(path, "r");
  if (!fp) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
  if (!p) return false;
  unsigned long long ut = 0, st = 0, cut = 0, cst = 0;
  /* after ")": state(3) ppid(4) pgrp session tty tpgid flags minflt cminflt majflt cmajflt
   * utime(14) stime(15) cutime(16) cstime(17) */
  if (sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", ppid, &ut,
             &st, &cut, &cst) != 5)
    return false;
  *ticks = ut + st + cut + cst;
  return true;
}

/* CPU seconds of pid so far with its children's: those alive (PostgreSQL's backends are the
 * postmaster's children) and those it has reaped. A child that ends between two readings
 * moves from the first sum to the second, so a difference of readings counts it once.
 * NAN when pid is unreadable. */
static double proc_cpu_s(long pid) {
  unsigned long long total = 0, t = 0;
  long ppid = 0;
  if (!proc_ticks(pid, &total, &ppid)) return NAN;
  DIR *d = opendir("/proc");
  for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    long child = strtol(e->d_name, NULL, 10);
    if (child != pid && proc_ticks(child, &t, &ppid) && ppid == pid) total += t;
  }
  if (d) closedir(d);
  return (double)total / (double)sysconf(_SC_CLK_TCK);
}

/* One counter sample `name{label="value"} N` (label NULL: no labels) from Prometheus text;
 * 0 when absent. */
static double prom_counter(const char *text, const char *name, const char *label,
                           const char *value) {
  char want[256];
  if (label)
    snprintf(want, sizeof want, "%s{%s=\"%s\"} ", name, label, value);
  else
    snprintf(want, sizeof want, "%s ", name);
  size_t n = strlen(want);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (strncmp(p, want, n) == 0) return strtod(p + n, NULL);
  return 0;
}

static int read_samples(const char *path, lg_samples *out) {
  FILE *fp = fopen(path, "r");
  if (!fp) return -1;
  double x;
  while (fscanf(fp, "%lf", &x) == 1) lg_samples_add(out, x);
  fclose(fp);
  return 0;
}

typedef struct ramp_opts {
  const char *trips, *url, *graph, *area, *out, *plot, *start, *seed;
  double hold_s, ping_hz, drain_s, keepalive_s;
  int procs;
  size_t n_pids;
  char pid_name[LG_RAMP_MAX_PROCS][LG_RAMP_NAME_MAX];
  long pid[LG_RAMP_MAX_PROCS];
} ramp_opts;

/* Run step i with n_procs children; fill *st. Returns 0 or -1 (a child failed). */
static int run_step(const ramp_opts *o, const char *self, const char *host, int port,
                    const char *run_base, size_t i, const lg_ramp_plan_step *plan,
                    lg_ramp_step *st) {
  memset(st, 0, sizeof *st);
  st->drivers = plan->drivers;
  st->speedup = plan->speedup;
  char *before = NULL, *after = NULL, err[256];
  if (lg_http_get(host, port, "/metrics", 5000, &before, err, sizeof err) != 0)
    fprintf(stderr, "meridian-loadgen ramp: gateway metrics: %s\n", err);
  double cpu0[LG_RAMP_MAX_PROCS];
  for (size_t k = 0; k < o->n_pids; k++) cpu0[k] = proc_cpu_s(o->pid[k]);
  double t0 = mrd_mono_s();
  pid_t kids[LG_RAMP_MAX_LOAD_PROCS];
  const int want = o->procs ? o->procs : lg_ramp_procs_for(plan->drivers);
  int n = want;
  size_t per = plan->drivers / (size_t)n, extra = plan->drivers % (size_t)n;
  for (int k = 0; k < n; k++) {
    char drivers[32], speedup[32], hold[32], hz[32], drain[32], part[32], run[40], json[4096],
        samples[4096], keepalive[32];
    snprintf(drivers, sizeof drivers, "%zu", per + ((size_t)k < extra ? 1 : 0));
    snprintf(speedup, sizeof speedup, "%g", plan->speedup);
    snprintf(hold, sizeof hold, "%g", o->hold_s);
    snprintf(hz, sizeof hz, "%g", o->ping_hz);
    snprintf(keepalive, sizeof keepalive, "%g", o->keepalive_s);
    snprintf(drain, sizeof drain, "%g", o->drain_s);
    snprintf(part, sizeof part, "%d/%d", k, n);
    snprintf(run, sizeof run, "%ss%zup%d", run_base, i + 1, k);
    snprintf(json, sizeof json, "%s/step%zu-p%d.json", o->out, i + 1, k);
    snprintf(samples, sizeof samples, "%s/step%zu-p%d.offer_ms", o->out, i + 1, k);
    const char *argv[40];
    int a = 0;
    argv[a++] = self;
    argv[a++] = "replay";
    argv[a++] = "--trips";
    argv[a++] = o->trips;
    argv[a++] = "--drivers";
    argv[a++] = drivers;
    argv[a++] = "--speedup";
    argv[a++] = speedup;
    argv[a++] = "--duration";
    argv[a++] = hold;
    argv[a++] = "--ping-max-hz";
    argv[a++] = hz;
    argv[a++] = "--keepalive";
    argv[a++] = keepalive;
    argv[a++] = "--drain";
    argv[a++] = drain;
    argv[a++] = "--part";
    argv[a++] = part;
    argv[a++] = "--run-id";
    argv[a++] = run;
    argv[a++] = "--json";
    argv[a++] = json;
    argv[a++] = "--offer-samples";
    argv[a++] = samples;
    argv[a++] = "--url";
    argv[a++] = o->url;
    argv[a++] = "--quiet";
    if (o->graph) {
      argv[a++] = "--graph";
      argv[a++] = o->graph;
    }
    if (o->area) {
      argv[a++] = "--area";
      argv[a++] = o->area;
    }
    if (o->start) {
      argv[a++] = "--start";
      argv[a++] = o->start;
    }
    if (o->seed) {
      argv[a++] = "--seed";
      argv[a++] = o->seed;
    }
    argv[a] = NULL;
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
      /* the child's report goes to a file; its stderr (warnings) stays visible */
      char log[4200];
      snprintf(log, sizeof log, "%s/step%zu-p%d.txt", o->out, i + 1, k);
      if (!freopen(log, "w", stdout)) _exit(127);
      execv(self, (char *const *)argv);
      _exit(127);
    }
    if (p < 0) {
      fprintf(stderr, "meridian-loadgen ramp: fork: %s\n", strerror(errno));
      n = k;
      break;
    }
    kids[k] = p;
  }
  int rc = n == want ? 0 : -1;
  double lg_cpu = 0;
  for (int k = 0; k < n; k++) {
    int status = 0;
    struct rusage ru;
    while (wait4(kids[k], &status, 0, &ru) < 0 && errno == EINTR) {
    }
    lg_cpu += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr,
              "meridian-loadgen ramp: step %zu process %d failed (see %s/step%zu-p%d.txt)\n", i + 1,
              k, o->out, i + 1, k);
      rc = -1;
    }
  }
  double wall = mrd_mono_s() - t0;
  for (size_t k = 0; k < o->n_pids; k++) {
    double c1 = proc_cpu_s(o->pid[k]);
    snprintf(st->proc_name[k], LG_RAMP_NAME_MAX, "%s", o->pid_name[k]);
    st->cpu_pct[k] = isfinite(cpu0[k]) && isfinite(c1) ? 100.0 * (c1 - cpu0[k]) / wall : NAN;
  }
  snprintf(st->proc_name[o->n_pids], LG_RAMP_NAME_MAX, "loadgen");
  st->cpu_pct[o->n_pids] = 100.0 * lg_cpu / wall;
  st->n_procs = o->n_pids + 1;
  if (before && lg_http_get(host, port, "/metrics", 5000, &after, err, sizeof err) != 0)
    fprintf(stderr, "meridian-loadgen ramp: gateway metrics: %s\n", err);
  /* the children's figures */
  lg_samples offers = {0};
  double sent = 0, skipped = 0;
  for (int k = 0; k < n && rc == 0; k++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/step%zu-p%d.json", o->out, i + 1, k);
    json_error_t je;
    json_t *r = json_load_file(path, 0, &je);
    if (!r) {
      fprintf(stderr, "meridian-loadgen ramp: %s: %s\n", path, je.text);
      rc = -1;
      break;
    }
    st->requested += (size_t)json_integer_value(json_object_get(r, "requested"));
    st->matched += (size_t)json_integer_value(json_object_get(r, "matched"));
    st->updates_per_s += json_number_value(json_object_get(r, "updates_per_s"));
    sent += (double)json_integer_value(json_object_get(r, "updates"));
    skipped += (double)json_integer_value(
        json_object_get(json_object_get(r, "connections"), "pings_skipped"));
    json_decref(r);
    snprintf(path, sizeof path, "%s/step%zu-p%d.offer_ms", o->out, i + 1, k);
    if (read_samples(path, &offers) != 0) {
      fprintf(stderr, "meridian-loadgen ramp: %s: %s\n", path, strerror(errno));
      rc = -1;
    }
  }
  st->requests_per_s = (double)st->requested / o->hold_s;
  lg_summary sum = lg_samples_summary(&offers);
  st->offer_p50_ms = sum.p50;
  st->offer_p99_ms = sum.p99;
  lg_samples_close(&offers);
  st->skipped = skipped;
  for (size_t h = 0; h < 8; h++) st->hops_p50_ms[h] = NAN;
  if (before && after) {
    double received =
        prom_counter(after, "meridian_gateway_messages_in_total", "type", "location") -
        prom_counter(before, "meridian_gateway_messages_in_total", "type", "location");
    double limited = prom_counter(after, "meridian_gateway_rate_limited_total", "role", "driver") -
                     prom_counter(before, "meridian_gateway_rate_limited_total", "role", "driver");
    double failed = prom_counter(after, "meridian_gateway_kafka_failed_total", NULL, NULL) -
                    prom_counter(before, "meridian_gateway_kafka_failed_total", NULL, NULL);
    st->dropped = (sent > received ? sent - received : 0) + limited + failed;
    lg_hops_report hr;
    if (lg_hops_from_scrapes(before, after, &hr) == 0) {
      st->n_hops = hr.n < 8 ? hr.n : 8;
      for (size_t h = 0; h < st->n_hops; h++) st->hops_p50_ms[h] = hr.hop[h].p50_ms;
    }
  } else {
    st->dropped = NAN; /* unknown: the step cannot pass */
  }
  free(before);
  free(after);
  return rc;
}

static bool num_arg(const char *s, double lo, double hi, double *out) {
  char *e;
  errno = 0;
  double x = strtod(s, &e);
  if (e == s || *e || errno || !(x >= lo && x <= hi)) return false;
  *out = x;
  return true;
}

enum {
  RO_TRIPS = 256,
  RO_STEPS,
  RO_HOLD,
  RO_PROCS,
  RO_PING_MAX_HZ,
  RO_DRAIN,
  RO_OUT,
  RO_PLOT,
  RO_P99_MAX_MS,
  RO_MATCH_MIN_PCT,
  RO_URL,
  RO_GRAPH,
  RO_AREA,
  RO_START,
  RO_SEED,
  RO_PIDS,
  RO_KEEPALIVE,
};

static const struct option ramp_longopts[] = {
    {"trips", required_argument, NULL, RO_TRIPS},
    {"steps", required_argument, NULL, RO_STEPS},
    {"hold", required_argument, NULL, RO_HOLD},
    {"procs", required_argument, NULL, RO_PROCS},
    {"ping-max-hz", required_argument, NULL, RO_PING_MAX_HZ},
    {"keepalive", required_argument, NULL, RO_KEEPALIVE},
    {"drain", required_argument, NULL, RO_DRAIN},
    {"out", required_argument, NULL, RO_OUT},
    {"plot", required_argument, NULL, RO_PLOT},
    {"p99-max-ms", required_argument, NULL, RO_P99_MAX_MS},
    {"match-min-pct", required_argument, NULL, RO_MATCH_MIN_PCT},
    {"url", required_argument, NULL, RO_URL},
    {"graph", required_argument, NULL, RO_GRAPH},
    {"area", required_argument, NULL, RO_AREA},
    {"start", required_argument, NULL, RO_START},
    {"seed", required_argument, NULL, RO_SEED},
    {"pids", required_argument, NULL, RO_PIDS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* --pids NAME=PID,... into o; false when one is malformed or there are too many. */
static bool pids_arg(const char *v, ramp_opts *o) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", v);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    char *e = NULL;
    long pid = eq ? strtol(eq + 1, &e, 10) : 0;
    if (!eq || eq == tok || (size_t)(eq - tok) >= LG_RAMP_NAME_MAX || !e || *e || pid <= 0 ||
        o->n_pids + 1 >= LG_RAMP_MAX_PROCS)
      return false;
    snprintf(o->pid_name[o->n_pids], LG_RAMP_NAME_MAX, "%.*s", (int)(eq - tok), tok);
    o->pid[o->n_pids++] = pid;
  }
  return true;
}

/* One option (getopt_long's code) with its value v into o, *steps and crit; false when the
 * value is bad. */
static bool ramp_option(int opt, const char *v, ramp_opts *o, const char **steps,
                        lg_ramp_criteria *crit) {
  double x;
  switch (opt) {
  case RO_TRIPS: o->trips = v; return true;
  case RO_STEPS: *steps = v; return true;
  case RO_HOLD: return num_arg(v, 1, 3600, &o->hold_s);
  case RO_PROCS:
    if (!num_arg(v, 1, LG_RAMP_MAX_LOAD_PROCS, &x) || x != floor(x)) return false;
    o->procs = (int)x;
    return true;
  case RO_PING_MAX_HZ: return num_arg(v, 0.01, 5, &o->ping_hz);
  case RO_KEEPALIVE: return num_arg(v, 1, 3600, &o->keepalive_s);
  case RO_DRAIN: return num_arg(v, 0, 3600, &o->drain_s);
  case RO_OUT: o->out = v; return true;
  case RO_PLOT: o->plot = v; return true;
  case RO_P99_MAX_MS: return num_arg(v, 0.001, 1e6, &crit->p99_max_ms);
  case RO_MATCH_MIN_PCT: return num_arg(v, 0, 100, &crit->match_min_pct);
  case RO_URL: o->url = v; return true;
  case RO_GRAPH: o->graph = v; return true;
  case RO_AREA: o->area = v; return true;
  case RO_START: o->start = v; return true;
  case RO_SEED: o->seed = v; return true;
  case RO_PIDS: return pids_arg(v, o);
  }
  return false;
}

/* argv of `ramp` (argv[1]) into o, *steps and crit, with the defaults. 0; -1 after the
 * usage (--help); 2 after one line on stderr (a bad usage). */
static int ramp_parse_args(int argc, char **argv, ramp_opts *o, const char **steps,
                           lg_ramp_criteria *crit) {
  memset(o, 0, sizeof *o);
  o->url = getenv("MERIDIAN_GATEWAY_URL");
  if (!o->url || !*o->url) o->url = "ws://127.0.0.1:8080";
  o->out = "out/capacity";
  o->hold_s = 20;
  o->procs = 0; /* lg_ramp_procs_for each step */
  o->ping_hz = 1;
  o->keepalive_s = 30;
  o->drain_s = 3;
  *steps = DEFAULT_STEPS;
  *crit = (lg_ramp_criteria){50, 95, 0};
  optind = 2; /* after the command */
  opterr = 0;
  int opt, li = -1;
  /* "+": stop at the first non-option (refused below); ":": tell a missing value apart */
  while ((opt = getopt_long(argc, argv, "+:h", ramp_longopts, &li)) != -1) {
    const char *a = argv[optind - 1];
    if (opt == 'h') {
      usage(stdout);
      return -1;
    }
    if (opt == ':') {
      fprintf(stderr, "meridian-loadgen ramp: %s needs a value (try --help)\n", a);
      return 2;
    }
    if (opt == '?') {
      fprintf(stderr, "meridian-loadgen ramp: unknown option '%s' (try --help)\n", a);
      return 2;
    }
    if (!ramp_option(opt, optarg, o, steps, crit)) {
      fprintf(stderr, "meridian-loadgen ramp: bad value for --%s: '%s'\n", ramp_longopts[li].name,
              optarg);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "meridian-loadgen ramp: unknown option '%s' (try --help)\n", argv[optind]);
    return 2;
  }
  if (!o->trips) {
    fprintf(stderr, "meridian-loadgen ramp: needs --trips FILE (try --help)\n");
    return 2;
  }
  return 0;
}

/* The steps (--steps, each with at least --procs drivers), the gateway's address and the
 * output directory. n_steps, or -1 after one line on stderr. */
static int ramp_prepare(const ramp_opts *o, const char *steps_s, lg_ramp_plan_step *plan,
                        char *host, size_t host_cap, int *port, char *prefix, size_t prefix_cap) {
  char err[256];
  int n_steps = lg_ramp_parse_steps(steps_s, plan, LG_RAMP_MAX_STEPS, err, sizeof err);
  if (n_steps < 0) {
    fprintf(stderr, "meridian-loadgen ramp: --steps: %s\n", err);
    return -1;
  }
  for (int s = 0; s < n_steps; s++)
    if (o->procs && plan[s].drivers < (size_t)o->procs) {
      fprintf(stderr, "meridian-loadgen ramp: step %d has fewer drivers than --procs\n", s + 1);
      return -1;
    }
  if (lg_ws_parse_url(o->url, host, host_cap, port, prefix, prefix_cap) != 0) {
    fprintf(stderr, "meridian-loadgen ramp: --url must be ws://HOST:PORT, not '%s'\n", o->url);
    return -1;
  }
  if (mkdir(o->out, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "meridian-loadgen ramp: %s: %s\n", o->out, strerror(errno));
    return -1;
  }
  return n_steps;
}

/* Run the steps in turn, each a set of child replays, until one cannot run. How many ran;
 * *rc 1 when one could not. */
static size_t ramp_run_steps(const ramp_opts *o, const char *self, const char *host, int port,
                             const lg_ramp_plan_step *plan, int n_steps,
                             const lg_ramp_criteria *crit, lg_ramp_step *steps, int *rc) {
  char run_base[16];
  snprintf(run_base, sizeof run_base, "c%llx",
           (unsigned long long)(lg_epoch_ms() / 1000) & 0xffffffULL);
  size_t done = 0;
  *rc = 0;
  for (int s = 0; s < n_steps; s++) {
    fprintf(stderr,
            "meridian-loadgen ramp: step %d/%d: %zu drivers, speedup %g, %d processes, hold %g s\n",
            s + 1, n_steps, plan[s].drivers, plan[s].speedup,
            o->procs ? o->procs : lg_ramp_procs_for(plan[s].drivers), o->hold_s);
    if (run_step(o, self, host, port, run_base, (size_t)s, &plan[s], &steps[s]) != 0) {
      *rc = 1;
      break;
    }
    done++;
    const lg_ramp_step *st = &steps[s];
    fprintf(stderr,
            "meridian-loadgen ramp: step %d: %.0f updates/s, %.1f requests/s, p99 %.1f ms, "
            "dropped %.0f, skipped %.0f: %s\n",
            s + 1, st->updates_per_s, st->requests_per_s, st->offer_p99_ms, st->dropped,
            st->skipped, lg_ramp_step_ok(st, crit) ? "ok" : "over");
  }
  return done;
}

/* The table, the plot (gnuplot) and the knee line. */
static void ramp_report(const ramp_opts *o, const lg_ramp_step *steps, size_t done, int n_steps,
                        const lg_ramp_criteria *crit) {
  char procs[64];
  if (o->procs)
    snprintf(procs, sizeof procs, "%d load processes", o->procs);
  else
    snprintf(procs, sizeof procs, "a load process per %d drivers (at least 2)",
             LG_RAMP_DRIVERS_PER_PROC);
  printf("Meridian capacity ramp: %zu of %d steps, hold %g s, %s, ping at most %g/s\n", done,
         n_steps, o->hold_s, procs, o->ping_hz);
  printf("criteria: request -> offer p99 < %g ms, match >= %g%%, no update dropped; CPU in %% of "
         "one core over each step\n\n",
         crit->p99_max_ms, crit->match_min_pct);
  lg_ramp_print_table(stdout, steps, done, crit);
  char png[4096];
  if (o->plot)
    snprintf(png, sizeof png, "%s", o->plot);
  else
    snprintf(png, sizeof png, "%s/capacity.png", o->out);
  if (done && lg_ramp_write_plot(png, steps, done, crit) == 0) {
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "gnuplot '%s.gp' 2>&1", png);
    fflush(NULL);
    int g = system(cmd);
    if (g == 0)
      printf("\nplot %s (data %s.dat)\n", png, png);
    else
      fprintf(stderr, "meridian-loadgen ramp: gnuplot failed (%d); data in %s.dat\n", g, png);
  }
  lg_ramp_print_knee(stdout, steps, done, crit);
}

int lg_ramp_main(int argc, char **argv) {
  ramp_opts o;
  const char *steps_s;
  lg_ramp_criteria crit;
  int rc = ramp_parse_args(argc, argv, &o, &steps_s, &crit);
  if (rc != 0) return rc < 0 ? 0 : rc;
  lg_ramp_plan_step plan[LG_RAMP_MAX_STEPS];
  char host[256], prefix[256];
  int port;
  int n_steps = ramp_prepare(&o, steps_s, plan, host, sizeof host, &port, prefix, sizeof prefix);
  if (n_steps < 0) return 2;
  char self[4096];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0) {
    fprintf(stderr, "meridian-loadgen ramp: cannot find its own binary\n");
    return 1;
  }
  self[sl] = '\0';
  signal(SIGPIPE, SIG_IGN);
  lg_ramp_step steps[LG_RAMP_MAX_STEPS];
  size_t done = ramp_run_steps(&o, self, host, port, plan, n_steps, &crit, steps, &rc);
  ramp_report(&o, steps, done, n_steps, &crit);
  return rc;
}
