/*
 * ramp_run.h: `meridian-loadgen ramp`, the capacity ramp's runner (ramp.h has the pure
 * part). Each step runs N child processes of `meridian-loadgen replay` (a share of the
 * drivers and every N-th trip each, so the load generator is not one event loop's
 * bottleneck), measures the CPU of the children (its own) and of the named stack processes
 * from /proc, reads the gateway's /metrics before and after (locations received, Kafka
 * failures, rate limits, hops), merges the children's request -> offer samples, prints the
 * table, writes the plot and ends with the knee as one JSON line on stdout.
 */
#ifndef LG_RAMP_RUN_H
#define LG_RAMP_RUN_H

/* The `ramp` command; argv[1] is "ramp". Returns the exit code: 0 done (whatever the knee),
 * 1 a step could not run, 2 bad usage. */
int lg_ramp_main(int argc, char **argv);

#endif /* LG_RAMP_RUN_H */
