/*
 * ramp_run.c: `meridian-loadgen ramp` (ramp_run.h). The adapter around ramp.c: options,
 * child replays (fork + exec of this binary), wait4() for their CPU, /proc/<pid>/stat for
 * the stack's, the gateway's /metrics, the children's JSON and samples, gnuplot.
 */
#define _DEFAULT_SOURCE /* wait4 */
#include "ramp_run.h"

#include "mrd/clock.h"

#include <errno.h>
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
  fprintf(fp,
          "usage: meridian-loadgen ramp --trips FILE [options]\n"
          "Raises the load step by step (drivers x ping rate for locations, the replay's speedup for\n"
          "requests), holds each step, and finds the knee: the highest step, before the first that\n"
          "fails, where request -> offer p99 < --p99-max-ms, match rate >= --match-min-pct and no\n"
          "location update was dropped. Prints the steps as a table, writes the plot, and ends with\n"
          "one JSON line: knee_updates_per_s, knee_requests_per_s, ...\n"
          "  --trips FILE         trips CSV (as replay)\n"
          "  --steps LIST         DRIVERS:SPEEDUP,... (default " DEFAULT_STEPS ")\n"
          "  --hold S             wall seconds of requests per step (default 20)\n"
          "  --procs N            load processes per step, drivers and trips split (default 2)\n"
          "  --ping-max-hz H      location messages per driver per second at most (default 1)\n"
          "  --drain S            wall seconds a step waits for trips to finish (default 3)\n"
          "  --pids NAME=PID,...  stack processes whose CPU to report (scripts/capacity passes them)\n"
          "  --out DIR            children's reports and the plot data (default out/capacity)\n"
          "  --plot FILE.png      the plot (default DIR/capacity.png)\n"
          "  --p99-max-ms X       bound on request -> offer p99 (default 50)\n"
          "  --match-min-pct X    floor on the match rate (default 95)\n"
          "  --start HH:MM, --seed S, --url, --graph, --area: as replay\n"
          "Environment: MERIDIAN_JWT_SECRET (required), MERIDIAN_GATEWAY_URL, MERIDIAN_GRAPH.\n");
}

/* CPU seconds (user + system) of pid so far, from /proc/<pid>/stat; NAN when unreadable. */
static double proc_cpu_s(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *fp = fopen(path, "r");
  if (!fp) return NAN;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
  if (!p) return NAN;
  unsigned long long ut = 0, st = 0;
  /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return NAN;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* One counter sample `name{label="value"} N` (label NULL: no labels) from Prometheus text;
 * 0 when absent. */
static double prom_counter(const char *text, const char *name, const char *label, const char *value) {
  char want[256];
  if (label) snprintf(want, sizeof want, "%s{%s=\"%s\"} ", name, label, value);
  else snprintf(want, sizeof want, "%s ", name);
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
  double hold_s, ping_hz, drain_s;
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
  pid_t kids[64];
  int n = o->procs;
  size_t per = plan->drivers / (size_t)n, extra = plan->drivers % (size_t)n;
  for (int k = 0; k < n; k++) {
    char drivers[32], speedup[32], hold[32], hz[32], drain[32], part[32], run[40], json[4096],
        samples[4096];
    snprintf(drivers, sizeof drivers, "%zu", per + ((size_t)k < extra ? 1 : 0));
    snprintf(speedup, sizeof speedup, "%g", plan->speedup);
    snprintf(hold, sizeof hold, "%g", o->hold_s);
    snprintf(hz, sizeof hz, "%g", o->ping_hz);
    snprintf(drain, sizeof drain, "%g", o->drain_s);
    snprintf(part, sizeof part, "%d/%d", k, n);
    snprintf(run, sizeof run, "%ss%zup%d", run_base, i + 1, k);
    snprintf(json, sizeof json, "%s/step%zu-p%d.json", o->out, i + 1, k);
    snprintf(samples, sizeof samples, "%s/step%zu-p%d.offer_ms", o->out, i + 1, k);
    const char *argv[40];
    int a = 0;
    argv[a++] = self;
    argv[a++] = "replay";
    argv[a++] = "--trips"; argv[a++] = o->trips;
    argv[a++] = "--drivers"; argv[a++] = drivers;
    argv[a++] = "--speedup"; argv[a++] = speedup;
    argv[a++] = "--duration"; argv[a++] = hold;
    argv[a++] = "--ping-max-hz"; argv[a++] = hz;
    argv[a++] = "--drain"; argv[a++] = drain;
    argv[a++] = "--part"; argv[a++] = part;
    argv[a++] = "--run-id"; argv[a++] = run;
    argv[a++] = "--json"; argv[a++] = json;
    argv[a++] = "--offer-samples"; argv[a++] = samples;
    argv[a++] = "--url"; argv[a++] = o->url;
    argv[a++] = "--quiet";
    if (o->graph) { argv[a++] = "--graph"; argv[a++] = o->graph; }
    if (o->area) { argv[a++] = "--area"; argv[a++] = o->area; }
    if (o->start) { argv[a++] = "--start"; argv[a++] = o->start; }
    if (o->seed) { argv[a++] = "--seed"; argv[a++] = o->seed; }
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
  int rc = n == o->procs ? 0 : -1;
  double lg_cpu = 0;
  for (int k = 0; k < n; k++) {
    int status = 0;
    struct rusage ru;
    while (wait4(kids[k], &status, 0, &ru) < 0 && errno == EINTR) {}
    lg_cpu += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "meridian-loadgen ramp: step %zu process %d failed (see %s/step%zu-p%d.txt)\n",
              i + 1, k, o->out, i + 1, k);
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
    double received = prom_counter(after, "meridian_gateway_messages_in_total", "type", "location") -
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

int lg_ramp_main(int argc, char **argv) {
  ramp_opts o;
  memset(&o, 0, sizeof o);
  o.url = getenv("MERIDIAN_GATEWAY_URL");
  if (!o.url || !*o.url) o.url = "ws://127.0.0.1:8080";
  o.out = "out/capacity";
  o.hold_s = 20;
  o.procs = 2;
  o.ping_hz = 1;
  o.drain_s = 3;
  const char *steps_s = DEFAULT_STEPS;
  lg_ramp_criteria crit = {50, 95, 0};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    double x;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    }
    if (!v) {
      fprintf(stderr, "meridian-loadgen ramp: %s needs a value (try --help)\n", a);
      return 2;
    }
    i++;
    bool ok = true;
    if (strcmp(a, "--trips") == 0) o.trips = v;
    else if (strcmp(a, "--steps") == 0) steps_s = v;
    else if (strcmp(a, "--hold") == 0) ok = num_arg(v, 1, 3600, &o.hold_s);
    else if (strcmp(a, "--procs") == 0) { ok = num_arg(v, 1, 64, &x) && x == floor(x); o.procs = (int)x; }
    else if (strcmp(a, "--ping-max-hz") == 0) ok = num_arg(v, 0.01, 5, &o.ping_hz);
    else if (strcmp(a, "--drain") == 0) ok = num_arg(v, 0, 3600, &o.drain_s);
    else if (strcmp(a, "--out") == 0) o.out = v;
    else if (strcmp(a, "--plot") == 0) o.plot = v;
    else if (strcmp(a, "--p99-max-ms") == 0) ok = num_arg(v, 0.001, 1e6, &crit.p99_max_ms);
    else if (strcmp(a, "--match-min-pct") == 0) ok = num_arg(v, 0, 100, &crit.match_min_pct);
    else if (strcmp(a, "--url") == 0) o.url = v;
    else if (strcmp(a, "--graph") == 0) o.graph = v;
    else if (strcmp(a, "--area") == 0) o.area = v;
    else if (strcmp(a, "--start") == 0) o.start = v;
    else if (strcmp(a, "--seed") == 0) o.seed = v;
    else if (strcmp(a, "--pids") == 0) {
      char buf[1024];
      snprintf(buf, sizeof buf, "%s", v);
      for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *e = NULL;
        long pid = eq ? strtol(eq + 1, &e, 10) : 0;
        if (!eq || eq == tok || (size_t)(eq - tok) >= LG_RAMP_NAME_MAX || !e || *e || pid <= 0 ||
            o.n_pids + 1 >= LG_RAMP_MAX_PROCS) {
          ok = false;
          break;
        }
        snprintf(o.pid_name[o.n_pids], LG_RAMP_NAME_MAX, "%.*s", (int)(eq - tok), tok);
        o.pid[o.n_pids++] = pid;
      }
    } else {
      fprintf(stderr, "meridian-loadgen ramp: unknown option '%s' (try --help)\n", a);
      return 2;
    }
    if (!ok) {
      fprintf(stderr, "meridian-loadgen ramp: bad value for %s: '%s'\n", a, v);
      return 2;
    }
  }
  if (!o.trips) {
    fprintf(stderr, "meridian-loadgen ramp: needs --trips FILE (try --help)\n");
    return 2;
  }
  lg_ramp_plan_step plan[LG_RAMP_MAX_STEPS];
  char err[256];
  int n_steps = lg_ramp_parse_steps(steps_s, plan, LG_RAMP_MAX_STEPS, err, sizeof err);
  if (n_steps < 0) {
    fprintf(stderr, "meridian-loadgen ramp: --steps: %s\n", err);
    return 2;
  }
  for (int s = 0; s < n_steps; s++)
    if (plan[s].drivers < (size_t)o.procs) {
      fprintf(stderr, "meridian-loadgen ramp: step %d has fewer drivers than --procs\n", s + 1);
      return 2;
    }
  char host[256], prefix[256];
  int port;
  if (lg_ws_parse_url(o.url, host, sizeof host, &port, prefix, sizeof prefix) != 0) {
    fprintf(stderr, "meridian-loadgen ramp: --url must be ws://HOST:PORT, not '%s'\n", o.url);
    return 2;
  }
  if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "meridian-loadgen ramp: %s: %s\n", o.out, strerror(errno));
    return 2;
  }
  char self[4096];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0) {
    fprintf(stderr, "meridian-loadgen ramp: cannot find its own binary\n");
    return 1;
  }
  self[sl] = '\0';
  char run_base[16];
  snprintf(run_base, sizeof run_base, "c%llx", (unsigned long long)(lg_epoch_ms() / 1000) & 0xffffffULL);
  signal(SIGPIPE, SIG_IGN);
  lg_ramp_step steps[LG_RAMP_MAX_STEPS];
  size_t done = 0;
  int rc = 0;
  for (int s = 0; s < n_steps; s++) {
    fprintf(stderr, "meridian-loadgen ramp: step %d/%d: %zu drivers, speedup %g, %d processes, hold %g s\n",
            s + 1, n_steps, plan[s].drivers, plan[s].speedup, o.procs, o.hold_s);
    if (run_step(&o, self, host, port, run_base, (size_t)s, &plan[s], &steps[s]) != 0) {
      rc = 1;
      break;
    }
    done++;
    const lg_ramp_step *st = &steps[s];
    fprintf(stderr, "meridian-loadgen ramp: step %d: %.0f updates/s, %.1f requests/s, p99 %.1f ms, "
                    "dropped %.0f, skipped %.0f: %s\n",
            s + 1, st->updates_per_s, st->requests_per_s, st->offer_p99_ms, st->dropped, st->skipped,
            lg_ramp_step_ok(st, &crit) ? "ok" : "over");
  }
  printf("Meridian capacity ramp: %zu of %d steps, hold %g s, %d load processes, ping at most %g/s\n",
         done, n_steps, o.hold_s, o.procs, o.ping_hz);
  printf("criteria: request -> offer p99 < %g ms, match >= %g%%, no update dropped; CPU in %% of one core over each step\n\n",
         crit.p99_max_ms, crit.match_min_pct);
  lg_ramp_print_table(stdout, steps, done, &crit);
  char png[4096];
  if (o.plot) snprintf(png, sizeof png, "%s", o.plot);
  else snprintf(png, sizeof png, "%s/capacity.png", o.out);
  if (done && lg_ramp_write_plot(png, steps, done, &crit) == 0) {
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "gnuplot '%s.gp' 2>&1", png);
    fflush(NULL);
    int g = system(cmd);
    if (g == 0) printf("\nplot %s (data %s.dat)\n", png, png);
    else fprintf(stderr, "meridian-loadgen ramp: gnuplot failed (%d); data in %s.dat\n", g, png);
  }
  lg_ramp_print_knee(stdout, steps, done, &crit);
  return rc;
}
