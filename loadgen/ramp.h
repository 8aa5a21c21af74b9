/*
 * ramp.h: the capacity ramp (`meridian-loadgen ramp`, scripts/capacity): a ladder of load
 * steps (drivers x ping rate for locations, the replay's speedup for requests), what each
 * step measured, the knee (the highest step, before the first that fails, where request ->
 * offer p99 stays under a bound, the match rate over a floor and no location update was
 * dropped), and the outputs: the steps as a table, the gnuplot data and script, and the
 * knee as one JSON line.
 *
 * Pure: parsing, judging and formatting. Running the steps (child replays, /proc, the
 * gateway's /metrics) is main.c's.
 */
#ifndef LG_RAMP_H
#define LG_RAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define LG_RAMP_MAX_STEPS 32
#define LG_RAMP_MAX_PROCS 12 /* processes whose CPU a step reports */
#define LG_RAMP_NAME_MAX 24

/* One step of the plan. */
typedef struct lg_ramp_plan_step {
  size_t drivers;
  double speedup;
} lg_ramp_plan_step;

/* Parse "DRIVERS:SPEEDUP,DRIVERS:SPEEDUP,..." (1..LG_RAMP_MAX_STEPS steps, drivers >= 1,
 * speedup in (0, 10000]). Returns the number of steps written to out, or -1 with a reason
 * in err. */
int lg_ramp_parse_steps(const char *s, lg_ramp_plan_step *out, size_t cap, char *err,
                        size_t errcap);

/* What one step measured. */
typedef struct lg_ramp_step {
  size_t drivers;
  double speedup;
  double updates_per_s;  /* location updates sent per second (all load processes) */
  double requests_per_s; /* ride requests sent per second */
  size_t requested, matched;
  double offer_p50_ms, offer_p99_ms; /* request -> offer at the client, all processes */
  double dropped;                    /* updates Meridian did not take: sent but not received by the
                                        gateway, refused by its rate limit, failed to Kafka */
  double skipped;        /* positions the clients did not send because the previous one was
                            still queued (backpressure; one per driver at connection is usual:
                            its `status` goes first): shown, not judged */
  double hops_p50_ms[8]; /* the gateway's per-hop p50 (hops.h order), NAN when unknown */
  size_t n_hops;
  size_t n_procs;
  char proc_name[LG_RAMP_MAX_PROCS][LG_RAMP_NAME_MAX];
  double cpu_pct[LG_RAMP_MAX_PROCS]; /* % of one core over the step, NAN when unknown */
} lg_ramp_step;

/* The bounds a step must keep. */
typedef struct lg_ramp_criteria {
  double p99_max_ms;    /* 50 */
  double match_min_pct; /* 95 */
  double dropped_max;   /* 0 */
} lg_ramp_criteria;

/* True when step s keeps every bound (a step with no request fails: nothing was shown). */
bool lg_ramp_step_ok(const lg_ramp_step *s, const lg_ramp_criteria *c);

/* The load processes a step of `drivers` runs when --procs is not given: one per
 * LG_RAMP_DRIVERS_PER_PROC drivers, at least 2 (never more than the drivers), at most
 * LG_RAMP_MAX_LOAD_PROCS. libwebsockets keeps every connection's timers in one sorted list a
 * process, inserted into by walking it: at 3,000 connections a process that walk took half
 * of the load generator's CPU (perf), and the load generator, not the system, set the knee. */
#define LG_RAMP_DRIVERS_PER_PROC 1000
#define LG_RAMP_MAX_LOAD_PROCS 64
int lg_ramp_procs_for(size_t drivers);

/* The knee: the index of the last step of the run of passing steps that starts at step 0
 * (a later step that passes again after a failure is not trusted); -1 when step 0 fails. */
int lg_ramp_knee(const lg_ramp_step *steps, size_t n, const lg_ramp_criteria *c);

/* Print the steps as a table (one line per step, with a pass/fail column and CPU per process). */
void lg_ramp_print_table(FILE *fp, const lg_ramp_step *steps, size_t n, const lg_ramp_criteria *c);

/* Write the knee as one JSON object on one line (no newline inside), ending in '\n':
 * knee_updates_per_s, knee_requests_per_s (0 when no step passed), knee_step (-1), steps,
 * and the criteria. Returns the number of bytes, as fprintf. */
int lg_ramp_print_knee(FILE *fp, const lg_ramp_step *steps, size_t n, const lg_ramp_criteria *c);

/* Write the plot's data (png_path + ".dat": one line per step) and gnuplot script
 * (png_path + ".gp"): request -> offer p50/p99 and CPU per process against updates/s.
 * Returns 0 or -1 (errno set). Running gnuplot is the caller's. */
int lg_ramp_write_plot(const char *png_path, const lg_ramp_step *steps, size_t n,
                       const lg_ramp_criteria *c);

#endif /* LG_RAMP_H */
