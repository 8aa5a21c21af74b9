/*
 * hops.c: Prometheus histograms read from text, their difference and quantiles
 * (hops.h). A small reader of the exposition format: one sample per line,
 * `name{label="value",...} number`; label values may hold escaped quotes. No I/O.
 */
#include "hops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read the label set starting at p (just after '{') up to the closing '}': the value of
 * `label` into val (valcap bytes) and of `le` into le (lecap). Returns a pointer past '}'
 * or NULL when malformed. A missing label leaves its buffer "". */
static const char *read_labels(const char *p, const char *label, char *val, size_t valcap, char *le,
                               size_t lecap) {
  val[0] = le[0] = '\0';
  for (;;) {
    if (*p == '}') return p + 1;
    const char *name = p;
    while (*p && *p != '=' && *p != '}' && *p != '\n') p++;
    if (*p != '=' || p[1] != '"') return NULL;
    size_t name_len = (size_t)(p - name);
    p += 2;
    char *dst = NULL;
    size_t cap = 0;
    if (label && strlen(label) == name_len && strncmp(name, label, name_len) == 0) {
      dst = val;
      cap = valcap;
    } else if (name_len == 2 && strncmp(name, "le", 2) == 0) {
      dst = le;
      cap = lecap;
    }
    size_t n = 0;
    while (*p && *p != '"' && *p != '\n') {
      char ch = *p++;
      if (ch == '\\') {
        if (!*p || *p == '\n') return NULL;
        ch = *p == 'n' ? '\n' : *p;
        p++;
      }
      if (dst) {
        if (n + 1 >= cap) return NULL;
        dst[n++] = ch;
      }
    }
    if (*p != '"') return NULL;
    if (dst) dst[n] = '\0';
    p++;
    if (*p == ',') p++;
  }
}

static bool parse_double(const char *s, const char **end, double *out) {
  while (*s == ' ') s++;
  if (strncmp(s, "+Inf", 4) == 0) {
    *out = INFINITY;
    *end = s + 4;
    return true;
  }
  char *e;
  double v = strtod(s, &e);
  if (e == s) return false;
  *out = v;
  *end = e;
  return true;
}

static lg_hist *series_for(lg_hist_set *out, const char *name) {
  for (size_t i = 0; i < out->n; i++)
    if (strcmp(out->name[i], name) == 0) return &out->h[i];
  if (out->n == LG_MAX_HOPS || strlen(name) >= LG_HOP_NAME_MAX) return NULL;
  strcpy(out->name[out->n], name);
  lg_hist *h = &out->h[out->n++];
  memset(h, 0, sizeof *h);
  return h;
}

int lg_prom_histograms(const char *text, const char *family, const char *label, lg_hist_set *out) {
  memset(out, 0, sizeof *out);
  size_t flen = strlen(family);
  for (const char *line = text; line && *line;
       line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    if (*line == '#' || strncmp(line, family, flen) != 0) continue;
    const char *p = line + flen;
    enum { BUCKET, SUM, COUNT } kind;
    if (strncmp(p, "_bucket", 7) == 0)
      kind = BUCKET, p += 7;
    else if (strncmp(p, "_sum", 4) == 0)
      kind = SUM, p += 4;
    else if (strncmp(p, "_count", 6) == 0)
      kind = COUNT, p += 6;
    else
      continue; /* another family sharing the prefix */
    char val[LG_HOP_NAME_MAX + 1], le[64];
    val[0] = le[0] = '\0';
    if (*p == '{') {
      p = read_labels(p + 1, label, val, sizeof val, le, sizeof le);
      if (!p) return -1;
    }
    if (*p != ' ') continue;        /* e.g. family "x" and a line "x_bucketz" */
    if (label && !val[0]) continue; /* a series without the label: not ours */
    double v;
    const char *end;
    if (!parse_double(p, &end, &v) || (*end && *end != '\n' && *end != ' ')) return -1;
    lg_hist *h = series_for(out, label ? val : "");
    if (!h) return -1;
    if (kind == SUM)
      h->sum = v;
    else if (kind == COUNT)
      h->count = v;
    else {
      double bound;
      const char *e2;
      if (!le[0] || !parse_double(le, &e2, &bound) || *e2) return -1;
      if (h->n == LG_HIST_MAX_BUCKETS || (h->n && !(bound > h->le[h->n - 1]))) return -1;
      h->le[h->n] = bound;
      h->cum[h->n++] = v;
    }
  }
  return 0;
}

int lg_hist_delta(const lg_hist *after, const lg_hist *before, lg_hist *out) {
  if (after->n != before->n) return -1;
  lg_hist d;
  memset(&d, 0, sizeof d);
  d.n = after->n;
  for (size_t i = 0; i < after->n; i++) {
    if (after->le[i] != before->le[i] || after->cum[i] < before->cum[i]) return -1;
    d.le[i] = after->le[i];
    d.cum[i] = after->cum[i] - before->cum[i];
  }
  if (after->count < before->count) return -1;
  d.count = after->count - before->count;
  d.sum = after->sum - before->sum;
  *out = d;
  return 0;
}

double lg_hist_quantile(const lg_hist *h, double q) {
  if (h->n == 0 || !(q > 0 && q < 1)) return NAN;
  double total = h->cum[h->n - 1];
  if (!(total > 0)) return NAN;
  double rank = q * total;
  for (size_t i = 0; i < h->n; i++) {
    if (h->cum[i] >= rank) {
      if (isinf(h->le[i])) return i ? h->le[i - 1] : NAN; /* beyond every finite bound */
      double lo = i ? h->le[i - 1] : 0.0, below = i ? h->cum[i - 1] : 0.0;
      double in = h->cum[i] - below;
      if (!(in > 0)) return h->le[i];
      return lo + (h->le[i] - lo) * (rank - below) / in;
    }
  }
  return NAN;
}

double lg_hist_mean(const lg_hist *h) { return h->count > 0 ? h->sum / h->count : NAN; }

static void stat_of(const char *name, const lg_hist *h, lg_hop_stat *out) {
  snprintf(out->name, sizeof out->name, "%s", name);
  out->p50_ms = lg_hist_quantile(h, 0.50) * 1000.0;
  out->p99_ms = lg_hist_quantile(h, 0.99) * 1000.0;
  out->mean_ms = lg_hist_mean(h) * 1000.0;
  out->n = h->count;
}

int lg_hops_from_scrapes(const char *before, const char *after, lg_hops_report *out) {
  memset(out, 0, sizeof *out);
  lg_hist_set *sets = malloc(4 * sizeof *sets); /* ~40 KiB each: not on the stack */
  if (!sets) {
    snprintf(out->why, sizeof out->why, "out of memory");
    return -1;
  }
  lg_hist_set *hb = &sets[0], *ha = &sets[1], *tb = &sets[2], *ta = &sets[3];
  int rc = -1;
  if (lg_prom_histograms(before, LG_HOP_FAMILY, "hop", hb) != 0 ||
      lg_prom_histograms(after, LG_HOP_FAMILY, "hop", ha) != 0 ||
      lg_prom_histograms(before, LG_TRACE_FAMILY, NULL, tb) != 0 ||
      lg_prom_histograms(after, LG_TRACE_FAMILY, NULL, ta) != 0) {
    snprintf(out->why, sizeof out->why, "the gateway's trace histograms are malformed");
    goto done;
  }
  if (ha->n == 0 || ta->n != 1 || tb->n != 1 || hb->n != ha->n) {
    snprintf(out->why, sizeof out->why, "the gateway has no trace histograms (%s)", LG_HOP_FAMILY);
    goto done;
  }
  lg_hist d;
  if (lg_hist_delta(&ta->h[0], &tb->h[0], &d) != 0) {
    snprintf(out->why, sizeof out->why, "the gateway restarted between the scrapes");
    goto done;
  }
  if (!(d.count > 0)) {
    snprintf(out->why, sizeof out->why, "no traced request was answered during the run");
    goto done;
  }
  stat_of("total", &d, &out->total);
  for (size_t i = 0; i < ha->n; i++) {
    if (strcmp(ha->name[i], hb->name[i]) != 0 || lg_hist_delta(&ha->h[i], &hb->h[i], &d) != 0) {
      snprintf(out->why, sizeof out->why, "hop %s changed between the scrapes", ha->name[i]);
      goto done;
    }
    stat_of(ha->name[i], &d, &out->hop[out->n++]);
  }
  out->have = true;
  rc = 0;
done:
  if (rc) out->n = 0;
  free(sets);
  return rc;
}
