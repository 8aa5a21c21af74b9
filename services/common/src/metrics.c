/*
 * metrics.c: the registry of metrics.h. Families and series are linked lists in creation
 * order (registration happens at start-up, so lookups are linear on purpose); values are
 * atomics so updates need no lock. Doubles live in atomic 64-bit words, added with CAS.
 */
#include "mrd/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrd_internal.h"

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

typedef struct series {
  struct family *fam;
  char *values[MRD_MAX_LABELS];
  struct series *next;
  atomic_uint_least64_t count;                        /* counter value */
  atomic_uint_least64_t bits;                         /* gauge value / histogram sum (double) */
  atomic_uint_least64_t buckets[MRD_MAX_BUCKETS + 1]; /* per bucket, last is +Inf */
} series;

struct mrd_counter {
  series s;
};
struct mrd_gauge {
  series s;
};
struct mrd_histogram {
  series s;
};

typedef struct family {
  char *name;
  char *help;
  enum kind kind;
  size_t n_labels;
  char *label_names[MRD_MAX_LABELS];
  double bounds[MRD_MAX_BUCKETS];
  size_t n_bounds;
  series *first, *last;
  struct family *next;
} family;

struct mrd_metrics {
  pthread_mutex_t mu;
  family *first, *last;
};

static uint64_t dbits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static double bitsd(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

int mrd_metrics_new(mrd_metrics **out) {
  mrd_metrics *m = calloc(1, sizeof *m);
  if (m == NULL) return MRD_ENOMEM;
  if (pthread_mutex_init(&m->mu, NULL) != 0) {
    free(m);
    return MRD_ENOMEM;
  }
  *out = m;
  return 0;
}

static void series_free(series *s, size_t n_labels) {
  for (size_t i = 0; i < n_labels; i++) free(s->values[i]);
  free(s);
}

static void family_free(family *f) {
  for (series *s = f->first, *next; s; s = next) {
    next = s->next;
    series_free(s, f->n_labels);
  }
  for (size_t i = 0; i < f->n_labels; i++) free(f->label_names[i]);
  free(f->name);
  free(f->help);
  free(f);
}

void mrd_metrics_free(mrd_metrics *m) {
  if (m == NULL) return;
  for (family *f = m->first, *next; f; f = next) {
    next = f->next;
    family_free(f);
  }
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static bool valid_metric_name(const char *s) {
  if (s == NULL || *s == '\0') return false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(p != s && c >= '0' && c <= '9')) return false;
  }
  return true;
}

static bool valid_label_name(const char *s) {
  if (s == NULL || *s == '\0' || strncmp(s, "__", 2) == 0) return false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(p != s && c >= '0' && c <= '9')) return false;
  }
  return true;
}

/* Finds or creates the series; the caller holds the mutex. */
static int get_series(mrd_metrics *m, enum kind kind, const char *name, const char *help,
                      const char *const *labels, const double *bounds, size_t n_bounds,
                      series **out) {
  if (m == NULL || out == NULL || !valid_metric_name(name)) return MRD_EINVAL;
  size_t n = 0;
  if (labels) {
    while (labels[2 * n] != NULL) {
      if (labels[2 * n + 1] == NULL) return MRD_EINVAL; /* a name without a value */
      if (!valid_label_name(labels[2 * n])) return MRD_EINVAL;
      if (kind == K_HISTOGRAM && strcmp(labels[2 * n], "le") == 0) return MRD_EINVAL;
      if (++n > MRD_MAX_LABELS) return MRD_EINVAL;
    }
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (strcmp(labels[2 * i], labels[2 * j]) == 0) return MRD_EINVAL;
  if (kind == K_HISTOGRAM) {
    if (n_bounds > MRD_MAX_BUCKETS || (n_bounds > 0 && bounds == NULL)) return MRD_EINVAL;
    for (size_t i = 0; i < n_bounds; i++) {
      if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) return MRD_EINVAL;
    }
  }

  family *f = m->first;
  while (f && strcmp(f->name, name) != 0) f = f->next;
  if (f) {
    if (f->kind != kind || f->n_labels != n) return MRD_EINVAL;
    for (size_t i = 0; i < n; i++)
      if (strcmp(f->label_names[i], labels[2 * i]) != 0) return MRD_EINVAL;
    if (kind == K_HISTOGRAM &&
        (f->n_bounds != n_bounds || memcmp(f->bounds, bounds, n_bounds * sizeof *bounds) != 0))
      return MRD_EINVAL;
    for (series *s = f->first; s; s = s->next) {
      size_t i = 0;
      while (i < n && strcmp(s->values[i], labels[2 * i + 1]) == 0) i++;
      if (i == n) {
        *out = s;
        return 0;
      }
    }
  } else {
    f = calloc(1, sizeof *f);
    if (f == NULL) return MRD_ENOMEM;
    f->kind = kind;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    bool ok = f->name && f->help;
    for (size_t i = 0; i < n && ok; i++) {
      f->label_names[i] = strdup(labels[2 * i]);
      ok = f->label_names[i] != NULL;
      f->n_labels = i + 1;
    }
    if (!ok) {
      family_free(f);
      return MRD_ENOMEM;
    }
    f->n_labels = n;
    if (kind == K_HISTOGRAM) {
      if (n_bounds) memcpy(f->bounds, bounds, n_bounds * sizeof *bounds);
      f->n_bounds = n_bounds;
    }
    if (m->last)
      m->last->next = f;
    else
      m->first = f;
    m->last = f;
  }

  /* All three handle types have the layout of a series. */
  series *s = calloc(1, sizeof(struct mrd_histogram));
  if (s == NULL) return MRD_ENOMEM;
  s->fam = f;
  for (size_t i = 0; i < n; i++) {
    s->values[i] = strdup(labels[2 * i + 1]);
    if (s->values[i] == NULL) {
      series_free(s, i);
      return MRD_ENOMEM;
    }
  }
  atomic_init(&s->bits, dbits(0.0));
  if (f->last)
    f->last->next = s;
  else
    f->first = s;
  f->last = s;
  *out = s;
  return 0;
}

static int get_locked(mrd_metrics *m, enum kind kind, const char *name, const char *help,
                      const char *const *labels, const double *bounds, size_t n_bounds,
                      series **out) {
  if (m == NULL) return MRD_EINVAL;
  pthread_mutex_lock(&m->mu);
  int rc = get_series(m, kind, name, help, labels, bounds, n_bounds, out);
  pthread_mutex_unlock(&m->mu);
  return rc;
}

int mrd_metrics_counter(mrd_metrics *m, const char *name, const char *help,
                        const char *const *labels, mrd_counter **out) {
  series *s;
  int rc = get_locked(m, K_COUNTER, name, help, labels, NULL, 0, &s);
  if (rc == 0) *out = (mrd_counter *)s;
  return rc;
}

int mrd_metrics_gauge(mrd_metrics *m, const char *name, const char *help, const char *const *labels,
                      mrd_gauge **out) {
  series *s;
  int rc = get_locked(m, K_GAUGE, name, help, labels, NULL, 0, &s);
  if (rc == 0) *out = (mrd_gauge *)s;
  return rc;
}

int mrd_metrics_histogram(mrd_metrics *m, const char *name, const char *help,
                          const char *const *labels, const double *bounds, size_t n_bounds,
                          mrd_histogram **out) {
  series *s;
  int rc = get_locked(m, K_HISTOGRAM, name, help, labels, bounds, n_bounds, &s);
  if (rc == 0) *out = (mrd_histogram *)s;
  return rc;
}

void mrd_counter_add(mrd_counter *c, uint64_t n) {
  atomic_fetch_add_explicit(&c->s.count, n, memory_order_relaxed);
}
void mrd_counter_inc(mrd_counter *c) { mrd_counter_add(c, 1); }
uint64_t mrd_counter_value(const mrd_counter *c) {
  return atomic_load_explicit(&((mrd_counter *)c)->s.count, memory_order_relaxed);
}

void mrd_gauge_set(mrd_gauge *g, double v) {
  atomic_store_explicit(&g->s.bits, dbits(v), memory_order_relaxed);
}

static void add_double(atomic_uint_least64_t *a, double delta) {
  uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + delta),
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

void mrd_gauge_add(mrd_gauge *g, double delta) { add_double(&g->s.bits, delta); }
double mrd_gauge_value(const mrd_gauge *g) {
  return bitsd(atomic_load_explicit(&((mrd_gauge *)g)->s.bits, memory_order_relaxed));
}

void mrd_histogram_observe(mrd_histogram *h, double v) {
  if (isnan(v)) return;
  const family *f = h->s.fam;
  size_t i = 0;
  while (i < f->n_bounds && v > f->bounds[i]) i++; /* le: v <= bound */
  atomic_fetch_add_explicit(&h->s.buckets[i], 1, memory_order_relaxed);
  add_double(&h->s.bits, v);
}

/* Prometheus float: NaN, +Inf, -Inf, else the shortest %g that reads back exactly. */
static void put_double(mrd__buf *b, double v) {
  if (isnan(v)) {
    mrd__buf_puts(b, "NaN");
    return;
  }
  if (isinf(v)) {
    mrd__buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  char t[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(t, sizeof t, "%.*g", prec, v);
    if (strtod(t, NULL) == v) break;
  }
  mrd__buf_puts(b, t);
}

static void put_escaped(mrd__buf *b, const char *s, bool quote) {
  for (; *s; s++) {
    if (*s == '\\')
      mrd__buf_puts(b, "\\\\");
    else if (*s == '\n')
      mrd__buf_puts(b, "\\n");
    else if (quote && *s == '"')
      mrd__buf_puts(b, "\\\"");
    else
      mrd__buf_putc(b, *s);
  }
}

/* `{a="x",b="y"}` with an optional trailing le label; nothing when there are no labels. */
static void put_labels(mrd__buf *b, const family *f, const series *s, const char *le) {
  if (f->n_labels == 0 && le == NULL) return;
  mrd__buf_putc(b, '{');
  for (size_t i = 0; i < f->n_labels; i++) {
    if (i) mrd__buf_putc(b, ',');
    mrd__buf_puts(b, f->label_names[i]);
    mrd__buf_puts(b, "=\"");
    put_escaped(b, s->values[i], true);
    mrd__buf_putc(b, '"');
  }
  if (le) {
    if (f->n_labels) mrd__buf_putc(b, ',');
    mrd__buf_puts(b, "le=\"");
    mrd__buf_puts(b, le);
    mrd__buf_putc(b, '"');
  }
  mrd__buf_putc(b, '}');
}

static void render_family(mrd__buf *b, const family *f) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  mrd__buf_printf(b, "# HELP %s ", f->name);
  put_escaped(b, f->help, false);
  mrd__buf_printf(b, "\n# TYPE %s %s\n", f->name, types[f->kind]);
  for (const series *s = f->first; s; s = s->next) {
    switch (f->kind) {
    case K_COUNTER:
      mrd__buf_puts(b, f->name);
      put_labels(b, f, s, NULL);
      mrd__buf_printf(
          b, " %llu\n",
          (unsigned long long)atomic_load_explicit(&((series *)s)->count, memory_order_relaxed));
      break;
    case K_GAUGE:
      mrd__buf_puts(b, f->name);
      put_labels(b, f, s, NULL);
      mrd__buf_putc(b, ' ');
      put_double(b, bitsd(atomic_load_explicit(&((series *)s)->bits, memory_order_relaxed)));
      mrd__buf_putc(b, '\n');
      break;
    case K_HISTOGRAM: {
      uint64_t cum = 0;
      for (size_t i = 0; i <= f->n_bounds; i++) {
        cum += atomic_load_explicit(&((series *)s)->buckets[i], memory_order_relaxed);
        mrd__buf t = {0};
        if (i < f->n_bounds)
          put_double(&t, f->bounds[i]);
        else
          mrd__buf_puts(&t, "+Inf");
        mrd__buf_printf(b, "%s_bucket", f->name);
        put_labels(b, f, s, t.oom ? "?" : t.data);
        mrd__buf_free(&t);
        mrd__buf_printf(b, " %llu\n", (unsigned long long)cum);
      }
      mrd__buf_printf(b, "%s_sum", f->name);
      put_labels(b, f, s, NULL);
      mrd__buf_putc(b, ' ');
      put_double(b, bitsd(atomic_load_explicit(&((series *)s)->bits, memory_order_relaxed)));
      mrd__buf_printf(b, "\n%s_count", f->name);
      put_labels(b, f, s, NULL);
      mrd__buf_printf(b, " %llu\n", (unsigned long long)cum);
      break;
    }
    }
  }
}

int mrd_metrics_render(mrd_metrics *m, char **out, size_t *out_len) {
  if (m == NULL || out == NULL) return MRD_EINVAL;
  mrd__buf b = {0};
  pthread_mutex_lock(&m->mu);
  for (const family *f = m->first; f; f = f->next) render_family(&b, f);
  pthread_mutex_unlock(&m->mu);
  char *s = mrd__buf_take(&b, out_len);
  if (s == NULL) return MRD_ENOMEM;
  *out = s;
  return 0;
}
