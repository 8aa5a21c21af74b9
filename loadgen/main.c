/*
 * main.c: meridian-loadgen. `replay` plays the trips of a CSV file against a running
 * Meridian: N simulated drivers and one rider per trip over real WebSocket connections,
 * then prints the report (and writes the JSON and the plot when asked).
 * Options (getopt_long) -> config -> data (service area, graph, trips) -> run -> report ->
 * exit code (0 done, 1 the run failed, 2 bad usage or input).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
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
  fprintf(
      fp,
      "usage: meridian-loadgen replay --trips FILE --drivers N [options]\n"
      "  --trips FILE        trips CSV: data/trips/nyc-taxi-10k.csv format or NYC TLC yellow taxi\n"
      "  --drivers N         simulated drivers\n"
      "  --speedup X|auto    sim seconds per wall second (default 60); auto: the highest that "
      "keeps\n"
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
      "  --pace X|auto       drivers drive the snapshot's times x X; auto (default): the "
      "calibrated\n"
      "                      pace of the hour dispatch quotes for (now, in MERIDIAN_TIMEZONE)\n"
      "  --no-motion         locations without heading and speed_mps\n"
      "  --keepalive S       WebSocket ping on a connection the server has sent nothing on for S "
      "s,\n"
      "                      hang up after 2 S (default 5: a half-open socket is found within 10 "
      "s)\n"
      "  --chain-horizon S   estimate chained trips: drivers ending a trip within S sim seconds\n"
      "                      timed to each matched pickup (default 120; 0: off; not dispatched)\n"
      "  --drain S           wall seconds at most to let trips finish (default: 1 h of sim time, "
      "10-120 s)\n"
      "  --run-id ID         names of this run's users and requests (default: from the clock)\n"
      "  --graph FILE        graph snapshot (default $MERIDIAN_GRAPH)\n"
      "  --area FILE         service area GeoJSON (default $MERIDIAN_SERVICE_AREA or "
      "data/roads/manhattan-boundary.geojson)\n"
      "  --quiet             no progress lines\n"
      "       meridian-loadgen ramp --trips FILE [options]   (capacity: meridian-loadgen ramp "
      "--help)\n"
      "Environment: MERIDIAN_JWT_SECRET (required) signs the simulated users' tokens;\n"
      "MERIDIAN_LOADGEN_EVENT_LOOP epoll (default) or poll (lws's own loop).\n");
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
  return lg_sim_new(&c->cfg, c->g, c->set, area_fn, c->area, io, lg_now_us(), lg_epoch_ms(), err,
                    errcap);
}

static bool num_arg(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

/* What `replay` was asked for, beside the simulation's config (ctx.cfg). */
typedef struct replay_opts {
  const char *trips, *json, *plot, *outcomes, *run_id, *samples, *eta_samples;
  const char *url, *graph, *area_path;
  unsigned part, parts;
  double keepalive_s; /* lg_ws_opts.keepalive_s */
  bool quiet, have_drivers, speedup_auto, pace_auto;
} replay_opts;

enum {
  OPT_TRIPS = 256,
  OPT_DRIVERS,
  OPT_SPEEDUP,
  OPT_PING_PERIOD,
  OPT_PACE,
  OPT_NO_MOTION,
  OPT_CHAIN_HORIZON,
  OPT_DURATION,
  OPT_DRAIN,
  OPT_MAX_TRIPS,
  OPT_ACCEPT_PROB,
  OPT_CANCEL_PROB,
  OPT_PING_MAX_HZ,
  OPT_SEED,
  OPT_START,
  OPT_URL,
  OPT_JSON,
  OPT_PLOT,
  OPT_OUTCOMES,
  OPT_ETA_SAMPLES,
  OPT_RUN_ID,
  OPT_OFFER_SAMPLES,
  OPT_PART,
  OPT_GRAPH,
  OPT_AREA,
  OPT_QUIET,
  OPT_KEEPALIVE,
};

static const struct option replay_longopts[] = {
    {"trips", required_argument, NULL, OPT_TRIPS},
    {"drivers", required_argument, NULL, OPT_DRIVERS},
    {"speedup", required_argument, NULL, OPT_SPEEDUP},
    {"ping-period", required_argument, NULL, OPT_PING_PERIOD},
    {"pace", required_argument, NULL, OPT_PACE},
    {"no-motion", no_argument, NULL, OPT_NO_MOTION},
    {"chain-horizon", required_argument, NULL, OPT_CHAIN_HORIZON},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"max-trips", required_argument, NULL, OPT_MAX_TRIPS},
    {"accept-prob", required_argument, NULL, OPT_ACCEPT_PROB},
    {"cancel-prob", required_argument, NULL, OPT_CANCEL_PROB},
    {"ping-max-hz", required_argument, NULL, OPT_PING_MAX_HZ},
    {"seed", required_argument, NULL, OPT_SEED},
    {"start", required_argument, NULL, OPT_START},
    {"url", required_argument, NULL, OPT_URL},
    {"json", required_argument, NULL, OPT_JSON},
    {"plot", required_argument, NULL, OPT_PLOT},
    {"outcomes", required_argument, NULL, OPT_OUTCOMES},
    {"eta-samples", required_argument, NULL, OPT_ETA_SAMPLES},
    {"run-id", required_argument, NULL, OPT_RUN_ID},
    {"offer-samples", required_argument, NULL, OPT_OFFER_SAMPLES},
    {"part", required_argument, NULL, OPT_PART},
    {"graph", required_argument, NULL, OPT_GRAPH},
    {"area", required_argument, NULL, OPT_AREA},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {NULL, 0, NULL, 0},
};

/* A count option's value: a whole number in [lo, hi]. */
static bool count_arg(const char *v, double lo, double hi, size_t *out) {
  double x;
  if (!num_arg(v, lo, hi, &x) || x != floor(x)) return false;
  *out = (size_t)x;
  return true;
}

/* "auto", or a number in [lo, hi]. */
static bool auto_or_num(const char *v, double lo, double hi, bool *is_auto, double *out) {
  if (strcmp(v, "auto") == 0) return *is_auto = true;
  if (!num_arg(v, lo, hi, out)) return false;
  *is_auto = false;
  return true;
}

/* One option (getopt_long's code) with its value v (NULL for a flag) into cfg and o; false
 * when the value is bad. */
static bool replay_option(int opt, const char *v, lg_config *cfg, replay_opts *o) {
  int n = 0, h, m;
  char *e;
  switch (opt) {
  case OPT_TRIPS: o->trips = v; return true;
  case OPT_DRIVERS: return o->have_drivers = count_arg(v, 1, 1e6, &cfg->drivers);
  case OPT_SPEEDUP: return auto_or_num(v, 0.01, 1e5, &o->speedup_auto, &cfg->speedup);
  case OPT_PING_PERIOD: return num_arg(v, 0.5, 600, &cfg->ping_interval_s);
  case OPT_PACE: return auto_or_num(v, 0.05, 20, &o->pace_auto, &cfg->drive_pace);
  case OPT_NO_MOTION: cfg->send_motion = false; return true;
  case OPT_CHAIN_HORIZON: return num_arg(v, 0, 3600, &cfg->chain_horizon_s);
  case OPT_DURATION: return num_arg(v, 0.1, 86400, &cfg->duration_s);
  case OPT_DRAIN: return num_arg(v, 0, 3600, &cfg->drain_s);
  case OPT_MAX_TRIPS: return count_arg(v, 1, 1e9, &cfg->max_trips);
  case OPT_ACCEPT_PROB: return num_arg(v, 0, 1, &cfg->accept_prob);
  case OPT_CANCEL_PROB: return num_arg(v, 0, 1, &cfg->cancel_prob);
  case OPT_PING_MAX_HZ: return num_arg(v, 0.01, 5, &cfg->ping_max_hz);
  case OPT_SEED:
    errno = 0;
    cfg->seed = strtoull(v, &e, 10);
    return !(*e || e == v || errno);
  case OPT_START:
    if (sscanf(v, "%d:%d%n", &h, &m, &n) != 2 || v[n] || h < 0 || h > 23 || m < 0 || m > 59)
      return false;
    cfg->start_tod_s = h * 3600.0 + m * 60.0;
    return true;
  case OPT_URL: o->url = v; return true;
  case OPT_JSON: o->json = v; return true;
  case OPT_PLOT: o->plot = v; return true;
  case OPT_OUTCOMES: o->outcomes = v; return true;
  case OPT_ETA_SAMPLES: o->eta_samples = v; return true;
  case OPT_RUN_ID: o->run_id = v; return true;
  case OPT_OFFER_SAMPLES: o->samples = v; return true;
  case OPT_PART:
    return sscanf(v, "%u/%u%n", &o->part, &o->parts, &n) == 2 && !v[n] && o->parts >= 1 &&
           o->parts <= 64 && o->part < o->parts;
  case OPT_GRAPH: o->graph = v; return true;
  case OPT_AREA: o->area_path = v; return true;
  case OPT_QUIET: o->quiet = true; return true;
  case OPT_KEEPALIVE: return num_arg(v, 1, 3600, &o->keepalive_s);
  }
  return false;
}

/* The run id: --run-id (letters and digits) or the clock's. 0, or 2 after one line. */
static int replay_run_id(const replay_opts *o, lg_config *cfg) {
  if (!o->run_id) {
    snprintf(cfg->run_id, sizeof cfg->run_id, "%llx", (unsigned long long)(lg_epoch_ms() / 1000));
    return 0;
  }
  size_t n = strlen(o->run_id);
  if (n == 0 || n >= sizeof cfg->run_id ||
      strspn(o->run_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != n) {
    fprintf(stderr, "meridian-loadgen: --run-id must be 1-%zu letters or digits\n",
            sizeof cfg->run_id - 1);
    return 2;
  }
  snprintf(cfg->run_id, sizeof cfg->run_id, "%s", o->run_id);
  return 0;
}

/* argv of `replay` (argv[1]) into c->cfg and o, with the defaults and the environment's
 * MERIDIAN_GATEWAY_URL, MERIDIAN_GRAPH, MERIDIAN_SERVICE_AREA. 0, or 2 after one line on
 * stderr (a bad usage). */
static int replay_parse_args(int argc, char **argv, ctx *c, replay_opts *o) {
  lg_config_defaults(&c->cfg);
  c->cfg.settle_s = 1; /* the CLI lets dispatch index the drivers before the first request */
  *o = (replay_opts){.parts = 1, .pace_auto = true};
  o->url = getenv("MERIDIAN_GATEWAY_URL");
  o->graph = getenv("MERIDIAN_GRAPH");
  o->area_path = getenv("MERIDIAN_SERVICE_AREA");
  if (!o->url || !*o->url) o->url = "ws://127.0.0.1:8080";
  if (!o->area_path || !*o->area_path) o->area_path = "data/roads/manhattan-boundary.geojson";
  optind = 2; /* after the command */
  opterr = 0;
  int opt, li = -1;
  /* "+": stop at the first non-option (refused below); ":": tell a missing value apart */
  while ((opt = getopt_long(argc, argv, "+:", replay_longopts, &li)) != -1) {
    const char *a = argv[optind - 1];
    if (opt == ':') {
      fprintf(stderr, "meridian-loadgen: %s needs a value\n", a);
      return 2;
    }
    if (opt == '?') {
      fprintf(stderr, "meridian-loadgen: unknown option '%s' (try --help)\n", a);
      return 2;
    }
    if (!replay_option(opt, optarg, &c->cfg, o)) {
      fprintf(stderr, "meridian-loadgen: bad value for --%s: '%s'\n", replay_longopts[li].name,
              optarg);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "meridian-loadgen: unknown option '%s' (try --help)\n", argv[optind]);
    return 2;
  }
  if (!o->trips || !o->have_drivers) {
    fprintf(stderr, "meridian-loadgen: replay needs --trips FILE and --drivers N\n");
    return 2;
  }
  return replay_run_id(o, &c->cfg);
}

/* The ping period: a real app sends its position every ping-period seconds; at a speedup
 * the wall-clock cap cannot carry, dispatch sees older positions than a real one would. */
static void replay_pace_pings(const replay_opts *o, lg_config *cfg) {
  if (o->speedup_auto) cfg->speedup = lg_speedup_for_ping(cfg);
  if (lg_ping_gap_s(cfg) > cfg->ping_interval_s + 1e-9)
    fprintf(
        stderr,
        "meridian-loadgen: note: at speedup %gx the real ping period (%g s) needs %.1f locations a "
        "wall second per driver, above --ping-max-hz %g: drivers ping every %.0f s of sim time "
        "instead, and pickup ETAs are quoted from positions that old (--speedup %g or lower, or "
        "--speedup auto, keeps the real period)\n",
        cfg->speedup, cfg->ping_interval_s, cfg->speedup / cfg->ping_interval_s, cfg->ping_max_hz,
        lg_ping_gap_s(cfg), lg_speedup_for_ping(cfg));
}

/* The environment and the gateway address: the secret, a graph, a ws:// URL into host,
 * port and prefix. 0, or 2 after one line. */
static int replay_check_env(const replay_opts *o, const char **secret, char *host, size_t host_cap,
                            int *port, char *prefix, size_t prefix_cap) {
  *secret = getenv("MERIDIAN_JWT_SECRET");
  if (!*secret || !**secret) {
    fprintf(stderr, "meridian-loadgen: MERIDIAN_JWT_SECRET is not set (source .run/env)\n");
    return 2;
  }
  if (!o->graph || !*o->graph) {
    fprintf(stderr, "meridian-loadgen: no graph snapshot: --graph FILE or MERIDIAN_GRAPH\n");
    return 2;
  }
  if (lg_ws_parse_url(o->url, host, host_cap, port, prefix, prefix_cap) != 0) {
    fprintf(stderr, "meridian-loadgen: --url must be ws://HOST:PORT[/PREFIX], not '%s'\n", o->url);
    return 2;
  }
  return 0;
}

/* The data: the service area, the graph, the trips (this process's part of them), and the
 * drivers' pace. 0, or 2 after one line (what was loaded is freed by the caller). */
static int replay_load(const replay_opts *o, ctx *c, geo_graph **g, lg_trip_set *set) {
  char err[512];
  c->area = gw_area_load(o->area_path, err, sizeof err);
  if (!c->area) {
    fprintf(stderr, "meridian-loadgen: service area %s: %s\n", o->area_path, err);
    return 2;
  }
  geo_err ge = geo_snapshot_load(o->graph, g);
  if (ge != GEO_OK) {
    fprintf(stderr, "meridian-loadgen: graph %s: %s\n", o->graph, geo_strerror(ge));
    return 2;
  }
  if (lg_trips_load(o->trips, area_fn, c->area, c->cfg.seed, set, err, sizeof err) != 0) {
    fprintf(stderr, "meridian-loadgen: %s\n", err);
    return 2;
  }
  if (o->parts > 1) { /* one of several processes of a ramp step: every parts-th trip */
    size_t k = 0;
    for (size_t i = o->part; i < set->n; i += o->parts) set->trips[k++] = set->trips[i];
    set->n = k;
  }
  if (o->pace_auto) {
    /* dispatch quotes the calibrated ETA at the real clock's local hour: the simulated
     * drivers drive at that hour's calibrated pace, so that the pickup ETA error measures the
     * positions and routes dispatch works from, not the replay's clock against the wall's */
    const char *tz = getenv("MERIDIAN_TIMEZONE");
    int hour = -1, wday = -1;
    if (mrd_timezone_set(tz && *tz ? tz : MRD_TIMEZONE_DEFAULT) != 0 ||
        mrd_local_hour_weekday(lg_epoch_ms(), &hour, &wday) != 0) {
      fprintf(stderr, "meridian-loadgen: time zone %s unknown (MERIDIAN_TIMEZONE)\n",
              tz && *tz ? tz : MRD_TIMEZONE_DEFAULT);
      return 2;
    }
    c->cfg.drive_pace = lg_drive_pace_at(*g, hour, wday);
  }
  c->g = *g;
  c->set = set;
  fprintf(stderr, "meridian-loadgen: %s (%s): %zu rows, %zu trips kept, %zu skipped", o->trips,
          lg_csv_format_name(set->format), set->rows, set->n, set->skipped_total);
  if (set->n_first_skipped) {
    fprintf(stderr, " (first at lines");
    for (size_t i = 0; i < set->n_first_skipped; i++) fprintf(stderr, " %u", set->first_skipped[i]);
    fprintf(stderr, ")");
  }
  fprintf(stderr, "\n");
  return 0;
}

/* The process around the run: every connection is a file descriptor (raise the soft limit
 * to the hard one); SIGINT and SIGTERM stop the run; a closed socket is an error, not a
 * signal. */
static void replay_process_setup(void) {
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
}

/* Run the simulation against the gateway, with its /metrics scraped before and after (the
 * difference is this run's hops: hops.h; another load on the same gateway meanwhile would be
 * counted too). 0, or the exit code after one line (1 the run failed, 2 bad settings). */
static int replay_run(const replay_opts *o, ctx *c, const char *secret, const char *host, int port,
                      const char *prefix, lg_sim **sim) {
  lg_ws_opts wo = {host,          port, prefix,    secret,
                   100,           10,   !o->quiet, getenv("MERIDIAN_LOADGEN_EVENT_LOOP"),
                   o->keepalive_s};
  fprintf(stderr,
          "meridian-loadgen: run %s: %zu drivers against %s, speedup %gx, %g s; a location every "
          "%g s of sim time; pace %.3f\n",
          c->cfg.run_id, c->cfg.drivers, o->url, c->cfg.speedup, c->cfg.duration_s,
          lg_ping_gap_s(&c->cfg), c->cfg.drive_pace);
  char *before = NULL, *after = NULL, serr[256] = "", err[512];
  if (lg_http_get(host, port, "/metrics", 5000, &before, serr, sizeof serr) != 0)
    fprintf(stderr, "meridian-loadgen: gateway metrics: %s (no hop breakdown)\n", serr);
  if (lg_ws_run(&wo, c->cfg.drivers, c->set->n, make_sim, c, &g_stop, sim, err, sizeof err) != 0) {
    free(before);
    fprintf(stderr, "meridian-loadgen: %s\n", err);
    return strstr(err, "window") || strstr(err, "settings") ? 2 : 1;
  }
  lg_stats *st = lg_sim_stats(*sim);
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) /* includes loading the trips and the graph: small */
    st->self_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  if (before && lg_http_get(host, port, "/metrics", 5000, &after, serr, sizeof serr) != 0)
    fprintf(stderr, "meridian-loadgen: gateway metrics: %s (no hop breakdown)\n", serr);
  if (before && after)
    lg_hops_from_scrapes(before, after, &st->hops);
  else
    snprintf(st->hops.why, sizeof st->hops.why, "the gateway's /metrics could not be read: %.100s",
             serr);
  free(before);
  free(after);
  return 0;
}

/* The files asked for: JSON report, plot, offer and ETA samples, outcomes. 0, or 1 when
 * one could not be written (each is tried). */
static int replay_write_files(const replay_opts *o, const lg_report_info *info, lg_sim *sim) {
  lg_stats *st = lg_sim_stats(sim);
  int rc = 0;
  char err[512];
  if (o->json) {
    if (lg_report_write_json(o->json, info, st) != 0) {
      fprintf(stderr, "meridian-loadgen: %s: %s\n", o->json, strerror(errno));
      rc = 1;
    } else {
      printf("  JSON report     %s\n", o->json);
    }
  }
  if (o->plot) {
    if (lg_report_plot(o->plot, st, err, sizeof err) != 0) {
      fprintf(stderr, "meridian-loadgen: plot: %s\n", err);
      rc = 1;
    } else {
      printf("  plot            %s (data %s.dat)\n", o->plot, o->plot);
    }
  }
  if (o->samples) { /* request -> offer of every trip, for a ramp step's percentiles */
    FILE *fp = fopen(o->samples, "w");
    for (size_t i = 0; fp && i < st->offer_ms.n; i++) fprintf(fp, "%.3f\n", st->offer_ms.v[i]);
    if (!fp || fclose(fp) != 0) {
      fprintf(stderr, "meridian-loadgen: %s: %s\n", o->samples, strerror(errno));
      rc = 1;
    }
  }
  if (o->eta_samples && lg_sim_write_eta_samples(sim, o->eta_samples) != 0) {
    fprintf(stderr, "meridian-loadgen: %s: %s\n", o->eta_samples, strerror(errno));
    rc = 1;
  }
  if (o->outcomes) {
    if (lg_sim_write_outcomes(sim, o->outcomes) != 0) {
      fprintf(stderr, "meridian-loadgen: %s: %s\n", o->outcomes, strerror(errno));
      rc = 1;
    } else {
      printf("  outcomes        %s\n", o->outcomes);
    }
  }
  return rc;
}

/* The report on stdout, and the files asked for. 0, or 1 when a file could not be
 * written. */
static int replay_report(const replay_opts *o, const ctx *c, const lg_trip_set *set, lg_sim *sim) {
  lg_stats *st = lg_sim_stats(sim);
  lg_report_info info = {o->trips,
                         lg_csv_format_name(set->format),
                         o->url,
                         c->cfg.run_id,
                         c->cfg.drivers,
                         set->rows,
                         set->skipped_total,
                         set->no_duration,
                         set->skipped,
                         set->first_skipped,
                         set->n_first_skipped,
                         c->cfg.speedup,
                         c->cfg.duration_s,
                         c->cfg.accept_prob,
                         c->cfg.cancel_prob,
                         c->cfg.start_tod_s,
                         c->cfg.ping_max_hz,
                         c->cfg.seed,
                         c->cfg.ping_interval_s,
                         lg_ping_gap_s(&c->cfg),
                         c->cfg.drive_pace,
                         c->cfg.send_motion};
  lg_report_print(stdout, &info, st);
  return replay_write_files(o, &info, sim);
}

/* `replay`: options -> environment -> data -> run -> report. */
static int replay_main(int argc, char **argv) {
  ctx c = {0};
  replay_opts o;
  int rc = replay_parse_args(argc, argv, &c, &o);
  if (rc != 0) return rc;
  replay_pace_pings(&o, &c.cfg);
  const char *secret;
  char host[256], prefix[256];
  int port;
  rc = replay_check_env(&o, &secret, host, sizeof host, &port, prefix, sizeof prefix);
  if (rc != 0) return rc;
  geo_graph *g = NULL;
  lg_trip_set set = {0};
  lg_sim *sim = NULL;
  rc = replay_load(&o, &c, &g, &set);
  if (rc == 0) {
    replay_process_setup();
    rc = replay_run(&o, &c, secret, host, port, prefix, &sim);
  }
  if (rc == 0) rc = replay_report(&o, &c, &set, sim);
  lg_sim_free(sim);
  lg_trip_set_free(&set);
  geo_graph_free(g);
  gw_area_free(c.area);
  return rc;
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
  return replay_main(argc, argv);
}
