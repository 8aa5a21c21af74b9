/*
 * hops.h: the per-hop latency breakdown of traced ride requests, read from the gateway's
 * Prometheus histograms (meridian_gateway_trace_hop_seconds{hop=...} and
 * meridian_gateway_trace_seconds, docs/architecture.md "Tracing a request"): parsing the
 * text exposition format, the difference of two scrapes (before and after a run), and
 * quantiles by linear interpolation inside a bucket (as Prometheus' histogram_quantile).
 *
 * Pure: text in, numbers out. Fetching /metrics is the caller's (scrape.c). Quantiles from
 * buckets are estimates: exact at bucket bounds, within one bucket's width otherwise;
 * means (from _sum and _count) are exact.
 */
#ifndef LG_HOPS_H
#define LG_HOPS_H

#include <stdbool.h>
#include <stddef.h>

#define LG_HIST_MAX_BUCKETS 40 /* including +Inf */
#define LG_MAX_HOPS 12
#define LG_HOP_NAME_MAX 32

/* One histogram series: cumulative counts by upper bound, +Inf last. */
typedef struct lg_hist {
  size_t n;                        /* buckets, the last one +Inf when complete */
  double le[LG_HIST_MAX_BUCKETS];  /* upper bounds, strictly increasing */
  double cum[LG_HIST_MAX_BUCKETS]; /* cumulative counts */
  double sum;                      /* _sum (seconds) */
  double count;                    /* _count */
} lg_hist;

/* The series of one family, by the value of one label (in order of first appearance). */
typedef struct lg_hist_set {
  size_t n;
  char name[LG_MAX_HOPS][LG_HOP_NAME_MAX];
  lg_hist h[LG_MAX_HOPS];
} lg_hist_set;

/* Read every series of histogram `family` from Prometheus text: `<family>_bucket{...}`,
 * `<family>_sum{...}`, `<family>_count{...}`, told apart by the value of `label` (NULL: a
 * family without labels, one series named ""). Other lines are skipped. Returns 0 (out->n
 * may be 0: the family is not there), or -1 when a line of the family is malformed (a bad
 * number, bounds not increasing, more series or buckets than fit). */
int lg_prom_histograms(const char *text, const char *family, const char *label, lg_hist_set *out);

/* after - before, bucket by bucket, into *out (may alias neither). Returns 0, or -1 when
 * the bounds differ or a count went down (the process restarted between the scrapes). */
int lg_hist_delta(const lg_hist *after, const lg_hist *before, lg_hist *out);

/* The q-quantile (0 < q < 1) in the histogram's unit: the bucket where the rank q * count
 * falls, linearly interpolated between its lower bound (0 for the first) and its upper one;
 * the last finite bound when it falls in +Inf. NAN when the histogram is empty. */
double lg_hist_quantile(const lg_hist *h, double q);

/* sum / count; NAN when empty. */
double lg_hist_mean(const lg_hist *h);

/* The gateway's families (services/gateway/README.md). */
#define LG_HOP_FAMILY "meridian_gateway_trace_hop_seconds"
#define LG_TRACE_FAMILY "meridian_gateway_trace_seconds"

/* One hop's figures over a run, in ms (n: traces counted). */
typedef struct lg_hop_stat {
  char name[LG_HOP_NAME_MAX];
  double p50_ms, p99_ms, mean_ms, n;
} lg_hop_stat;

/* The breakdown of a run: every hop in the gateway's order, and the whole traced span
 * (gateway received -> answer sent). */
typedef struct lg_hops_report {
  bool have; /* false: why says why (no gateway metrics, nothing traced, ...) */
  char why[160];
  size_t n;
  lg_hop_stat hop[LG_MAX_HOPS];
  lg_hop_stat total;
} lg_hops_report;

/* The breakdown of what the gateway traced between two scrapes of its /metrics (before
 * and after a run). Returns 0 with out->have, or -1 with out->why (the families missing
 * or malformed, the gateway restarted between the scrapes, no trace finished). */
int lg_hops_from_scrapes(const char *before, const char *after, lg_hops_report *out);

#endif /* LG_HOPS_H */
