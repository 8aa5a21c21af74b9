/*
 * warmup.h: when a (re)started shard may start matching. Before its first command it reads
 * only driver positions, so that the index holds the drivers a rider would expect. Drivers
 * ping every 4 s: a fixed warm-up (MERIDIAN_DISPATCH_WARMUP, 5 s) fills the index from live
 * pings. After a crash the shard resumes `driver-locations` at its committed offset, so the
 * pings sent while it was down are waiting: once it has read a backlog that reaches back a
 * whole warm-up and has caught up with the present, the index is as full as after the fixed
 * wait, and waiting longer only delays the riders. This is that rule, pure (no clock, no
 * Kafka): the service feeds it the timestamps of the positions it reads.
 */
#ifndef DSP_WARMUP_H
#define DSP_WARMUP_H

#include <stdbool.h>
#include <stdint.h>

/* How close to now (ms) the latest position read must be to count as caught up. */
#define DSP_WARMUP_CAUGHT_UP_MS 1000

typedef struct dsp_warmup {
  int64_t started_ms;    /* the warm-up began (after the restore) */
  int64_t warmup_ms;     /* the configured warm-up: the longest it lasts */
  int64_t first_ping_ms; /* timestamp of the first position read (-1: none yet) */
  int64_t last_ping_ms;  /* and of the latest */
} dsp_warmup;

/* Start a warm-up of at most warmup_ms at now_ms. */
void dsp_warmup_init(dsp_warmup *w, int64_t now_ms, int64_t warmup_ms);
/* A position was read whose message timestamp is ts_ms (< 0: unknown, ignored). */
void dsp_warmup_ping(dsp_warmup *w, int64_t ts_ms);
/* True when the shard may take commands: warmup_ms have passed, or the positions read
 * reach back warmup_ms before now_ms and the latest is within DSP_WARMUP_CAUGHT_UP_MS. */
bool dsp_warmup_done(const dsp_warmup *w, int64_t now_ms);

#endif /* DSP_WARMUP_H */
