/*
 * main.c: meridian-loadgen. `replay` plays the trips of a CSV file against a running
 * Meridian: N simulated drivers and one rider per trip over real WebSocket connections,
 * then prints the report (and writes the JSON and the plot when asked).
 * Config -> data (service area, graph, trips) -> run -> report -> exit code
 * (0 done, 1 the run failed, 2 bad usage or input).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "area.h"
#include "mrd/tz.h"
#include "geo/snapshot.h"
#include "report.h"
#include "scrape.h"
#include "ramp_run.h"
#include "sim.h"
#include "trips_csv.h"
#include "ws.h"

static volatile int g_stop;
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static void usage(FILE *fp) {
  fprintf(fp,
          "usage: meridian-loadgen replay --trips FILE --drivers N [options]\n"
          "  --trips FILE        trips CSV: data/trips/nyc-taxi-10k.csv format or NYC TLC yellow taxi\n"
          "  --drivers N         simulated drivers\n"
          "  --speedup X|auto    sim seconds per wall second (default 60); auto: the highest that keeps\n"
          "                      the real ping period under --ping-max-hz (ping-max-hz x ping-period)\n"
          "  --duration S        wall seconds of requests to replay (default 60)\n"
          "  --start HH:MM       time of day the replay starts (default 18:00)\n"
          "  --max-trips N       replay at most N trips of the window (default all)\n"
          "  --url ws://H:P      gateway (default $MERIDIAN_GATEWAY_URL or ws://127.0.0.1:8080)\n"
          "  --accept-prob P     a driver accepts an offer with probability P (default 0.9)\n"
          "  --cancel-prob P     a rider cancels with probability P (default 0.03)\n"
          "  --seed S            random seed: same seed, same drivers and choices (default 1)\n"
          "  --json FILE         write the JSON report\n"
          "  --offer-samples F   write every request -> offer latency (ms), one a line\n"
          "  --part K/N          replay every N-th trip from the K-th (0-based): one of N processes\n"
          "  --plot FILE.png     draw latency and match rate over time (gnuplot)\n"
          "  --outcomes FILE     write request_id,trip_id,status of every request\n"
          "  --eta-samples FILE  write every match's pickup ETA: quoted, simulated drive, actual\n"
          "  --ping-max-hz H     location messages per driver per wall second at most (default 2; the\n"
          "                      gateway allows 5)\n"
          "  --ping-period S     sim seconds between a driver's locations, as real apps (default 4)\n"
          "  --pace X|auto       drivers drive the snapshot's times x X; auto (default): the calibrated\n"
          "                      pace of the hour dispatch quotes for (now, in MERIDIAN_TIMEZONE)\n"
          "  --no-motion         locations without heading and speed_mps\n"
          "  --chain-horizon S   estimate chained trips: drivers ending a trip within S sim seconds\n"
          "                      timed to each matched pickup (default 120; 0: off; not dispatched)\n"
          "  --drain S           wall seconds at most to let trips finish (default: 1 h of sim time, 10-120 s)\n"
          "  --run-id ID         names of this run's users and requests (default: from the clock)\n"
          "  --graph FILE        graph snapshot (default $MERIDIAN_GRAPH)\n"
          "  --area FILE         service area GeoJSON (default $MERIDIAN_SERVICE_AREA or data/roads/manhattan-boundary.geojson)\n"
          "  --quiet             no progress lines\n"
          "       meridian-loadgen ramp --trips FILE [options]   (capacity: meridian-loadgen ramp --help)\n"
          "Environment: MERIDIAN_JWT_SECRET (required) signs the simulated users' tokens.\n");
}

static bool area_fn(void *ud, double lat, double lon) { return gw_area_contains(ud, lat, lon); }

/* What make_sim needs. */
typedef struct ctx {
  lg_config cfg;
  const geo_graph *g;
  lg_trip_set *set;
  gw_area *area;
} ctx;

static lg_sim *make_sim(void *ud, const lg_io *io, char *err, size_t errcap) {
  ctx *c = ud;
  return lg_sim_new(&c->cfg, c->g, c->set, area_fn, c->area, io, lg_now_us(), lg_epoch_ms(), err, errcap);
}

static bool num_arg(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "ramp") == 0) return lg_ramp_main(argc, argv);
  if (strcmp(argv[1], "replay") != 0) {
    fprintf(stderr, "meridian-loadgen: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
  }
  ctx c = {0};
  lg_config_defaults(&c.cfg);
  c.cfg.settle_s = 1; /* the CLI lets dispatch index the drivers before the first request */
  const char *trips = NULL, *json = NULL, *plot = NULL, *outcomes = NULL, *run_id = NULL;
  const char *samples = NULL, *eta_samples = NULL;
  unsigned part = 0, parts = 1;
  const char *url = getenv("MERIDIAN_GATEWAY_URL"), *graph = getenv("MERIDIAN_GRAPH");
  const char *area_path = getenv("MERIDIAN_SERVICE_AREA");
  bool quiet = false, have_drivers = false, speedup_auto = false, pace_auto = true;
  if (!url || !*url) url = "ws://127.0.0.1:8080";
  if (!area_path || !*area_path) area_path = "data/roads/manhattan-boundary.geojson";
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    double x;
#define NEED()                                                                   \
  do {                                                                           \
    if (!v) {                                                                    \
      fprintf(stderr, "meridian-loadgen: %s needs a value\n", a);               \
      return 2;                                                                  \
    }                                                                            \
    i++;                                                                         \
  } while (0)
#define BAD()                                                                    \
  do {                                                                           \
    fprintf(stderr, "meridian-loadgen: bad value for %s: '%s'\n", a, v);        \
    return 2;                                                                    \
  } while (0)
    if (strcmp(a, "--trips") == 0) { NEED(); trips = v; }
    else if (strcmp(a, "--drivers") == 0) { NEED(); if (!num_arg(v, 1, 1e6, &x) || x != floor(x)) BAD(); c.cfg.drivers = (size_t)x; have_drivers = true; }
    else if (strcmp(a, "--speedup") == 0) { NEED(); if (strcmp(v, "auto") == 0) speedup_auto = true; else if (!num_arg(v, 0.01, 1e5, &c.cfg.speedup)) BAD(); else speedup_auto = false; }
    else if (strcmp(a, "--ping-period") == 0) { NEED(); if (!num_arg(v, 0.5, 600, &c.cfg.ping_interval_s)) BAD(); }
    else if (strcmp(a, "--pace") == 0) { NEED(); if (strcmp(v, "auto") == 0) pace_auto = true; else if (!num_arg(v, 0.05, 20, &c.cfg.drive_pace)) BAD(); else pace_auto = false; }
    else if (strcmp(a, "--no-motion") == 0) { c.cfg.send_motion = false; }
    else if (strcmp(a, "--chain-horizon") == 0) { NEED(); if (!num_arg(v, 0, 3600, &c.cfg.chain_horizon_s)) BAD(); }
    else if (strcmp(a, "--duration") == 0) { NEED(); if (!num_arg(v, 0.1, 86400, &c.cfg.duration_s)) BAD(); }
    else if (strcmp(a, "--drain") == 0) { NEED(); if (!num_arg(v, 0, 3600, &c.cfg.drain_s)) BAD(); }
    else if (strcmp(a, "--max-trips") == 0) { NEED(); if (!num_arg(v, 1, 1e9, &x) || x != floor(x)) BAD(); c.cfg.max_trips = (size_t)x; }
    else if (strcmp(a, "--accept-prob") == 0) { NEED(); if (!num_arg(v, 0, 1, &c.cfg.accept_prob)) BAD(); }
    else if (strcmp(a, "--cancel-prob") == 0) { NEED(); if (!num_arg(v, 0, 1, &c.cfg.cancel_prob)) BAD(); }
    else if (strcmp(a, "--ping-max-hz") == 0) { NEED(); if (!num_arg(v, 0.01, 5, &c.cfg.ping_max_hz)) BAD(); }
    else if (strcmp(a, "--seed") == 0) { NEED(); char *e; errno = 0; c.cfg.seed = strtoull(v, &e, 10); if (*e || e == v || errno) BAD(); }
    else if (strcmp(a, "--start") == 0) {
      NEED();
      int h, m, n = 0;
      if (sscanf(v, "%d:%d%n", &h, &m, &n) != 2 || v[n] || h < 0 || h > 23 || m < 0 || m > 59) BAD();
      c.cfg.start_tod_s = h * 3600.0 + m * 60.0;
    }
    else if (strcmp(a, "--url") == 0) { NEED(); url = v; }
    else if (strcmp(a, "--json") == 0) { NEED(); json = v; }
    else if (strcmp(a, "--plot") == 0) { NEED(); plot = v; }
    else if (strcmp(a, "--outcomes") == 0) { NEED(); outcomes = v; }
    else if (strcmp(a, "--eta-samples") == 0) { NEED(); eta_samples = v; }
    else if (strcmp(a, "--run-id") == 0) { NEED(); run_id = v; }
    else if (strcmp(a, "--offer-samples") == 0) { NEED(); samples = v; }
    else if (strcmp(a, "--part") == 0) {
      NEED();
      int n = 0;
      if (sscanf(v, "%u/%u%n", &part, &parts, &n) != 2 || v[n] || parts < 1 || parts > 64 || part >= parts) BAD();
    }
    else if (strcmp(a, "--graph") == 0) { NEED(); graph = v; }
    else if (strcmp(a, "--area") == 0) { NEED(); area_path = v; }
    else if (strcmp(a, "--quiet") == 0) { quiet = true; }
    else { fprintf(stderr, "meridian-loadgen: unknown option '%s' (try --help)\n", a); return 2; }
  }
  if (!trips || !have_drivers) {
    fprintf(stderr, "meridian-loadgen: replay needs --trips FILE and --drivers N\n");
    return 2;
  }
  if (run_id) {
    size_t n = strlen(run_id);
    if (n == 0 || n >= sizeof c.cfg.run_id || strspn(run_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != n) {
      fprintf(stderr, "meridian-loadgen: --run-id must be 1-%zu letters or digits\n", sizeof c.cfg.run_id - 1);
      return 2;
    }
    snprintf(c.cfg.run_id, sizeof c.cfg.run_id, "%s", run_id);
  } else {
    snprintf(c.cfg.run_id, sizeof c.cfg.run_id, "%llx", (unsigned long long)(lg_epoch_ms() / 1000));
  }
  /* The ping period: a real app sends its position every ping-period seconds; at a speedup
   * the wall-clock cap cannot carry, dispatch sees older positions than a real one would. */
  if (speedup_auto) c.cfg.speedup = lg_speedup_for_ping(&c.cfg);
  if (lg_ping_gap_s(&c.cfg) > c.cfg.ping_interval_s + 1e-9)
    fprintf(stderr,
            "meridian-loadgen: note: at speedup %gx the real ping period (%g s) needs %.1f locations a "
            "wall second per driver, above --ping-max-hz %g: drivers ping every %.0f s of sim time "
            "instead, and pickup ETAs are quoted from positions that old (--speedup %g or lower, or "
            "--speedup auto, keeps the real period)\n",
            c.cfg.speedup, c.cfg.ping_interval_s, c.cfg.speedup / c.cfg.ping_interval_s,
            c.cfg.ping_max_hz, lg_ping_gap_s(&c.cfg), lg_speedup_for_ping(&c.cfg));
  const char *secret = getenv("MERIDIAN_JWT_SECRET");
  if (!secret || !*secret) {
    fprintf(stderr, "meridian-loadgen: MERIDIAN_JWT_SECRET is not set (source .run/env)\n");
    return 2;
  }
  if (!graph || !*graph) {
    fprintf(stderr, "meridian-loadgen: no graph snapshot: --graph FILE or MERIDIAN_GRAPH\n");
    return 2;
  }
  char host[256], prefix[256];
  int port;
  if (lg_ws_parse_url(url, host, sizeof host, &port, prefix, sizeof prefix) != 0) {
    fprintf(stderr, "meridian-loadgen: --url must be ws://HOST:PORT[/PREFIX], not '%s'\n", url);
    return 2;
  }
  char err[512];
  int rc = 2;
  geo_graph *g = NULL;
  lg_trip_set set = {0};
  lg_sim *sim = NULL;
  c.area = gw_area_load(area_path, err, sizeof err);
  if (!c.area) {
    fprintf(stderr, "meridian-loadgen: service area %s: %s\n", area_path, err);
    return 2;
  }
  geo_err ge = geo_snapshot_load(graph, &g);
  if (ge != GEO_OK) {
    fprintf(stderr, "meridian-loadgen: graph %s: %s\n", graph, geo_strerror(ge));
    goto out;
  }
  if (lg_trips_load(trips, area_fn, c.area, c.cfg.seed, &set, err, sizeof err) != 0) {
    fprintf(stderr, "meridian-loadgen: %s\n", err);
    goto out;
  }
  if (parts > 1) { /* one of several processes of a ramp step: every parts-th trip */
    size_t k = 0;
    for (size_t i = part; i < set.n; i += parts) set.trips[k++] = set.trips[i];
    set.n = k;
  }
  if (pace_auto) {
    /* dispatch quotes the calibrated ETA at the real clock's local hour: the simulated
     * drivers drive at that hour's calibrated pace, so that the pickup ETA error measures the
     * positions and routes dispatch works from, not the replay's clock against the wall's */
    const char *tz = getenv("MERIDIAN_TIMEZONE");
    int hour = -1, wday = -1;
    if (mrd_timezone_set(tz && *tz ? tz : MRD_TIMEZONE_DEFAULT) != 0 ||
        mrd_local_hour_weekday(lg_epoch_ms(), &hour, &wday) != 0) {
      fprintf(stderr, "meridian-loadgen: time zone %s unknown (MERIDIAN_TIMEZONE)\n",
              tz && *tz ? tz : MRD_TIMEZONE_DEFAULT);
      goto out;
    }
    c.cfg.drive_pace = lg_drive_pace_at(g, hour, wday);
  }
  c.g = g;
  c.set = &set;
  fprintf(stderr, "meridian-loadgen: %s (%s): %zu rows, %zu trips kept, %zu skipped", trips,
          lg_csv_format_name(set.format), set.rows, set.n, set.skipped_total);
  if (set.n_first_skipped) {
    fprintf(stderr, " (first at lines");
    for (size_t i = 0; i < set.n_first_skipped; i++) fprintf(stderr, " %u", set.first_skipped[i]);
    fprintf(stderr, ")");
  }
  fprintf(stderr, "\n");
  /* every connection is a file descriptor: raise the soft limit to the hard one */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  lg_ws_opts o = {host, port, prefix, secret, 100, 10, !quiet};
  fprintf(stderr, "meridian-loadgen: run %s: %zu drivers against %s, speedup %gx, %g s; a location every %g s of sim time; pace %.3f\n", c.cfg.run_id,
          c.cfg.drivers, url, c.cfg.speedup, c.cfg.duration_s, lg_ping_gap_s(&c.cfg), c.cfg.drive_pace);
  /* the gateway's trace histograms before and after: their difference is this run's hops
   * (hops.h; another load on the same gateway meanwhile would be counted too) */
  char *before = NULL, *after = NULL, serr[256] = "";
  if (lg_http_get(host, port, "/metrics", 5000, &before, serr, sizeof serr) != 0)
    fprintf(stderr, "meridian-loadgen: gateway metrics: %s (no hop breakdown)\n", serr);
  if (lg_ws_run(&o, c.cfg.drivers, set.n, make_sim, &c, &g_stop, &sim, err, sizeof err) != 0) {
    free(before);
    fprintf(stderr, "meridian-loadgen: %s\n", err);
    rc = strstr(err, "window") || strstr(err, "settings") ? 2 : 1;
    goto out;
  }
  lg_stats *st = lg_sim_stats(sim);
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) /* includes loading the trips and the graph: small */
    st->self_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  if (before && lg_http_get(host, port, "/metrics", 5000, &after, serr, sizeof serr) != 0)
    fprintf(stderr, "meridian-loadgen: gateway metrics: %s (no hop breakdown)\n", serr);
  if (before && after) lg_hops_from_scrapes(before, after, &st->hops);
  else snprintf(st->hops.why, sizeof st->hops.why, "the gateway's /metrics could not be read: %.100s", serr);
  free(before);
  free(after);
  lg_report_info info = {trips, lg_csv_format_name(set.format), url, c.cfg.run_id,
                         c.cfg.drivers, set.rows, set.skipped_total, set.no_duration,
                         set.skipped, set.first_skipped, set.n_first_skipped, c.cfg.speedup,
                         c.cfg.duration_s, c.cfg.accept_prob, c.cfg.cancel_prob,
                         c.cfg.start_tod_s, c.cfg.ping_max_hz, c.cfg.seed,
                         c.cfg.ping_interval_s, lg_ping_gap_s(&c.cfg), c.cfg.drive_pace,
                         c.cfg.send_motion};
  lg_report_print(stdout, &info, st);
  rc = 0;
  if (json) {
    if (lg_report_write_json(json, &info, st) != 0) {
      fprintf(stderr, "meridian-loadgen: %s: %s\n", json, strerror(errno));
      rc = 1;
    } else {
      printf("  JSON report     %s\n", json);
    }
  }
  if (plot) {
    if (lg_report_plot(plot, st, err, sizeof err) != 0) {
      fprintf(stderr, "meridian-loadgen: plot: %s\n", err);
      rc = 1;
    } else {
      printf("  plot            %s (data %s.dat)\n", plot, plot);
    }
  }
  if (samples) { /* request -> offer of every trip, for a ramp step's percentiles */
    FILE *fp = fopen(samples, "w");
    for (size_t i = 0; fp && i < st->offer_ms.n; i++) fprintf(fp, "%.3f\n", st->offer_ms.v[i]);
    if (!fp || fclose(fp) != 0) {
      fprintf(stderr, "meridian-loadgen: %s: %s\n", samples, strerror(errno));
      rc = 1;
    }
  }
  if (eta_samples && lg_sim_write_eta_samples(sim, eta_samples) != 0) {
    fprintf(stderr, "meridian-loadgen: %s: %s\n", eta_samples, strerror(errno));
    rc = 1;
  }
  if (outcomes) {
    if (lg_sim_write_outcomes(sim, outcomes) != 0) {
      fprintf(stderr, "meridian-loadgen: %s: %s\n", outcomes, strerror(errno));
      rc = 1;
    } else {
      printf("  outcomes        %s\n", outcomes);
    }
  }
out:
  lg_sim_free(sim);
  lg_trip_set_free(&set);
  geo_graph_free(g);
  gw_area_free(c.area);
  return rc;
}
