/*
 * report.h: what a replay measured and how it is told: latency samples and their
 * percentiles, counters, errors by code, a per-second timeline, and the three outputs (the
 * human report, the JSON report scripts read, and the gnuplot data and PNG).
 *
 * Pure bookkeeping and formatting; the only I/O is writing the files asked for and running
 * gnuplot for the plot. Knows nothing of sockets or of the simulation's inner state.
 */
#ifndef LG_REPORT_H
#define LG_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hops.h"

/* A growable list of samples (ms or %). */
typedef struct lg_samples {
  double *v; /* owned */
  size_t n, cap;
} lg_samples;

/* Add x; returns 0 or -1 when out of memory (the sample is dropped). */
int lg_samples_add(lg_samples *s, double x);
/* Free the samples; the list is empty afterwards. */
void lg_samples_close(lg_samples *s);

/* The p-th percentile (0 <= p <= 100) of n sorted values by the nearest-rank method: the
 * smallest value such that at least p% of the values are <= it (p = 0: the minimum). NAN
 * when n == 0. */
double lg_percentile_sorted(const double *sorted, size_t n, double p);

/* A summary of a list of samples. */
typedef struct lg_summary {
  size_t n;
  double p50, p95, p99, mean, max; /* NAN when n == 0 */
} lg_summary;

/* Summarise s (sorts a copy; s is unchanged). Out of memory gives n = 0. */
lg_summary lg_samples_summary(const lg_samples *s);
/* The median of the absolute values of s (NAN when empty). */
double lg_samples_median_abs(const lg_samples *s);

#define LG_MAX_ERROR_CODES 16

/* One second of wall time since the replay began. */
typedef struct lg_second {
  uint32_t requested, offered, matched, no_driver, completed, cancelled;
  uint32_t updates; /* location messages sent */
  lg_samples offer_ms, match_ms;
} lg_second;

/* Everything a replay counts. */
typedef struct lg_stats {
  size_t trips_in_window; /* trips of the file chosen for the replay */
  size_t requested, offered, matched, no_driver, cancel_sent, cancelled, completed;
  size_t offers, accepts, declines, offers_expired;
  size_t updates; /* location messages sent */
  size_t drivers_connected, riders_connected, connect_failed, closed_unexpectedly;
  size_t reconnect_attempts, reconnects; /* connections tried again after one dropped, and opened */
  size_t resent;         /* messages sent again after a reconnection or `unavailable` */
  size_t resync_adopted; /* trips a driver took up from the gateway's snapshot */
  size_t pings_skipped;  /* positions not sent because the previous one was still queued */
  size_t open_now;       /* connections open at this moment */
  size_t peak_open;
  lg_samples offer_ms, match_ms; /* request -> offer, request -> matched (wall ms) */
  lg_samples pickup_eta_err_pct; /* (simulated arrival - predicted) / predicted */
  lg_samples pickup_eta_err_s;   /* simulated arrival - predicted, sim seconds */
  lg_samples taxi_eta_err_pct;   /* (Meridian route ETA - real duration) / real */
  lg_samples wait_s;             /* rider's wait: request sent -> his driver arrived at the pickup
                                    (simulated), sim seconds */
  lg_samples pickup_eta_s;       /* the pickup ETA dispatch quoted with the match, s */
  /* Chained trips, estimated (sim.c chain_estimate): per match, how much sooner a driver
   * finishing a trip within chain_horizon_s would have reached the pickup than the matched
   * one (0 when none would), sim seconds; chain_sooner: matches where one would have. */
  lg_samples chain_saving_s;
  size_t chain_sooner;
  double chain_horizon_s; /* the horizon used (0: not estimated) */
  struct {
    char code[32];
    size_t n;
  } errors[LG_MAX_ERROR_CODES];
  size_t n_error_codes;
  lg_second *secs; /* timeline, one entry per wall second; owned */
  size_t n_secs;
  double replay_wall_s; /* wall time of the replay window (updates/s is over it) */
  double total_wall_s;  /* including connecting and draining */
  size_t updates_in_window;
  lg_hops_report hops; /* per-hop breakdown from the gateway's /metrics (filled by main.c) */
  double self_cpu_s;   /* the load generator's own CPU (user + system) over the run; main.c */
} lg_stats;

/* Count one error of `code` (codes beyond LG_MAX_ERROR_CODES distinct fold into "other"). */
void lg_stats_error(lg_stats *st, const char *code);
/* The number of errors with `code` (0 if none). Test API (the report prints every code):
 * tests/loadgen/test_loadgen_report.c. */
size_t lg_stats_errors(const lg_stats *st, const char *code);
/* The timeline entry of wall second `sec` (grown as needed); NULL when out of memory. */
lg_second *lg_stats_second(lg_stats *st, size_t sec);
/* Free what st owns and zero it. */
void lg_stats_close(lg_stats *st);

/* The run's parameters, as the report prints them. */
typedef struct lg_report_info {
  const char *trips_file, *format, *url, *run_id;
  size_t drivers, rows, skipped_total, no_duration;
  const size_t *skipped; /* by lg_skip_reason, LG_SKIP_REASON_COUNT entries */
  const uint32_t *first_skipped;
  size_t n_first_skipped;
  double speedup, duration_s, accept_prob, cancel_prob, start_tod_s;
  double ping_max_hz;
  uint64_t seed;
  double ping_period_s; /* the real ping period asked (sim s) */
  double ping_gap_s;    /* the one simulated: more when the wall-clock cap cannot carry it */
  double drive_pace;    /* the drivers' pace: x the snapshot's arc times */
  bool motion;          /* locations carried heading and speed_mps */
} lg_report_info;

/* Print the per-hop breakdown (or why there is none) next to the client's request -> offer. */
void lg_report_print_hops(FILE *fp, const lg_hops_report *h, const lg_samples *offer_ms);
/* Print the human report to fp. */
void lg_report_print(FILE *fp, const lg_report_info *info, const lg_stats *st);
/* Write the JSON report to path. Returns 0 or -1 (errno set). */
int lg_report_write_json(const char *path, const lg_report_info *info, const lg_stats *st);
/* Write the timeline to png_path's data file (png_path + ".dat") and gnuplot script
 * (png_path + ".gp") and run gnuplot to draw png_path. Returns 0, or -1 with a reason in err. */
int lg_report_plot(const char *png_path, const lg_stats *st, char *err, size_t errcap);

#endif /* LG_REPORT_H */
