/*
 * metrics.h: counters, gauges and histograms in a registry, rendered in the Prometheus
 * text exposition format (version 0.0.4).
 *
 * A family is a metric name with its HELP text, type and label names; each distinct set of
 * label values is one series, got once at start-up and then updated from the hot path.
 * Updates are lock-free C11 atomics, safe from any thread (Kafka delivery callbacks);
 * registration and rendering take the registry's mutex. Series live as long as the
 * registry. This is not a push client and keeps no history: it renders current values.
 */
#ifndef MRD_METRICS_H
#define MRD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrd_metrics mrd_metrics;     /* the registry */
typedef struct mrd_counter mrd_counter;     /* one counter series */
typedef struct mrd_gauge mrd_gauge;         /* one gauge series */
typedef struct mrd_histogram mrd_histogram; /* one histogram series */

/* Latency buckets in seconds, 0.5 ms to 10 s: a sensible default for request timings. */
#define MRD_BUCKETS_LATENCY_S                                                                      \
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
#define MRD_MAX_BUCKETS 32
#define MRD_MAX_LABELS 8

/* Creates an empty registry. Returns 0 and *out, or MRD_ENOMEM. Free with mrd_metrics_free. */
MRD_EXPORT int mrd_metrics_new(mrd_metrics **out);

/* Frees the registry and every series in it (their handles become invalid). NULL is a no-op. */
MRD_EXPORT void mrd_metrics_free(mrd_metrics *m);

/* Gets (creating on first use) the series of family `name` with the given labels.
 * labels is NULL or a NULL-terminated list of name, value pairs:
 *   (const char *[]){"type", "location", NULL}
 * help is used when the family is created. Calling again with the same name and label
 * values returns the same series. Names are copied.
 * Returns 0 and *out (a borrowed pointer valid until mrd_metrics_free), or MRD_EINVAL
 * (bad metric or label name, odd label list, more than MRD_MAX_LABELS, a family that
 * exists with another type or other label names, histogram buckets not strictly
 * increasing or more than MRD_MAX_BUCKETS) or MRD_ENOMEM. */
MRD_EXPORT int mrd_metrics_counter(mrd_metrics *m, const char *name, const char *help,
                                   const char *const *labels, mrd_counter **out);
MRD_EXPORT int mrd_metrics_gauge(mrd_metrics *m, const char *name, const char *help,
                                 const char *const *labels, mrd_gauge **out);
/* bounds: the n_bounds finite upper bounds (`le`), strictly increasing; +Inf is implicit.
 * A family keeps the bounds it was created with; later calls must pass the same ones. */
MRD_EXPORT int mrd_metrics_histogram(mrd_metrics *m, const char *name, const char *help,
                                     const char *const *labels, const double *bounds,
                                     size_t n_bounds, mrd_histogram **out);

/* Adds n (>= 0 by type) to a counter; inc adds 1. */
MRD_EXPORT void mrd_counter_add(mrd_counter *c, uint64_t n);
MRD_EXPORT void mrd_counter_inc(mrd_counter *c);
/* Test API (no service calls it): tests/common/test_metrics.c. */
MRD_EXPORT uint64_t mrd_counter_value(const mrd_counter *c);

/* Sets, adds to (delta may be negative) and reads a gauge. */
MRD_EXPORT void mrd_gauge_set(mrd_gauge *g, double v);
MRD_EXPORT void mrd_gauge_add(mrd_gauge *g, double delta);
/* Test API (no service calls it): tests/common/test_metrics.c. */
MRD_EXPORT double mrd_gauge_value(const mrd_gauge *g);

/* Records one observation (NaN is ignored). */
MRD_EXPORT void mrd_histogram_observe(mrd_histogram *h, double v);

/* Renders every family in registration order, series in creation order: `# HELP`,
 * `# TYPE`, then samples (`_bucket{le="..."}` cumulative with `+Inf`, `_sum`, `_count` for
 * histograms). Label values are escaped (\\, \", \n), HELP text too (\\, \n).
 * Returns 0 and a NUL-terminated heap string in *out (length in *out_len, may be NULL) that
 * the caller frees with free(), or MRD_ENOMEM. */
MRD_EXPORT int mrd_metrics_render(mrd_metrics *m, char **out, size_t *out_len);

/* The Content-Type of the rendered text. */
#define MRD_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#ifdef __cplusplus
}
#endif
#endif /* MRD_METRICS_H */
