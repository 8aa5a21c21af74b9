/*
 * graph_model.c: the ETA model of `meridianctl graph` (mctl_eta_model, graph.h) as text
 * (data/eta-calibration.txt is one), and applied to a graph: each arc's area-cell factor
 * and the calibrated copy export writes. No database, no fitting (graph_eta.c fits).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geohash.h"
#include "graph.h"

void mctl_model_identity(mctl_eta_model *m) {
  geo_graph_calibration_identity(&m->cal);
  m->cell_precision = 0;
  m->n_cells = 0;
}

/* Append printf-formatted text to a growing buffer; false when out of memory. */
__attribute__((format(printf, 4, 5))) static bool appendf(char **buf, size_t *len, size_t *cap,
                                                          const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
    va_end(ap);
    if (k < 0) return false;
    if (*buf && *len + (size_t)k < *cap) {
      *len += (size_t)k;
      return true;
    }
    size_t nc = (*cap ? *cap * 2 : 4096) + (size_t)k;
    char *nb = realloc(*buf, nc);
    if (nb == NULL) return false;
    *buf = nb, *cap = nc;
  }
}

/* v in the fewest significant digits (6 at least) that read back as exactly v: a model
 * written and read again is the same model (a factor of 5e-81 once became "0.0000", which
 * the reader refuses; found by tests/fuzz/fuzz_eta_model.c). */
static const char *exact(double v, char buf[40]) {
  for (int digits = 6; digits <= 17; digits++) {
    snprintf(buf, 40, "%.*g", digits, v);
    if (strtod(buf, NULL) == v) break;
  }
  return buf;
}

char *mctl_model_format(const mctl_eta_model *m, const char *header) {
  char v1[40], v2[40];
  char *buf = NULL;
  size_t len = 0, cap = 0;
  bool ok = true;
  for (const char *h = header; ok && h && *h;) {
    const char *e = strchr(h, '\n');
    size_t n = e ? (size_t)(e - h) : strlen(h);
    ok = appendf(&buf, &len, &cap, "# %.*s\n", (int)n, h);
    h += n + (e != NULL);
  }
  for (int c = 0; ok && c < GEO_ROAD_CLASS_COUNT; c++)
    ok = appendf(&buf, &len, &cap, "class.%s=%s\n", geo_road_class_name((geo_road_class)c),
                 exact(m->cal.class_factor[c], v1));
  for (int w = 0; w < 2; w++)
    for (int h = 0; ok && h < 24; h++)
      ok = appendf(&buf, &len, &cap, "hour.%s.%d=%s\n", w ? "weekend" : "weekday", h,
                   exact(m->cal.hour_factor[w][h], v1));
  for (int d = 0; ok && d < 7; d++)
    ok = appendf(&buf, &len, &cap, "day.%d=%s\n", d, exact(m->cal.day_factor[d], v1));
  if (ok)
    ok = appendf(&buf, &len, &cap, "arc_penalty_ms=%s\ntrip_base_ms=%s\ncell_precision=%d\n",
                 exact(m->cal.arc_penalty_ms, v1), exact(m->cal.trip_base_ms, v2),
                 m->cell_precision);
  for (size_t i = 0; ok && i < m->n_cells; i++)
    ok = appendf(&buf, &len, &cap, "cell.%s=%s\n", m->cell[i], exact(m->cell_factor[i], v1));
  if (!ok) {
    free(buf);
    return NULL;
  }
  return buf;
}

bool mctl_model_parse(const char *text, mctl_eta_model *m) {
  mctl_model_identity(m);
  const char *p = text;
  while (*p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (*p == 0) break;
    if (*p == '#') {
      while (*p && *p != '\n') p++;
      continue;
    }
    char key[64];
    double v;
    int used = 0;
    if (sscanf(p, "%63[^= \t\n]=%lf%n", key, &v, &used) != 2) return false;
    p += used;
    if (strcmp(key, "arc_penalty_ms") == 0 || strcmp(key, "trip_base_ms") == 0) {
      if (!(v >= 0 && v < 1e6)) return false;
      *(key[0] == 'a' ? &m->cal.arc_penalty_ms : &m->cal.trip_base_ms) = v;
      continue;
    }
    if (strcmp(key, "cell_precision") == 0) {
      if (!(v >= 0 && v <= 12) || v != (int)v) return false;
      m->cell_precision = (int)v;
      continue;
    }
    if (!(v > 0 && v < 1000)) return false;
    if (strncmp(key, "class.", 6) == 0) {
      geo_road_class c = geo_road_class_from_name(key + 6);
      if (c == GEO_ROAD_OTHER && strcmp(key + 6, "other") != 0) return false;
      m->cal.class_factor[c] = v;
    } else if (strncmp(key, "hour.", 5) == 0) {
      char kind[16];
      int h;
      if (sscanf(key + 5, "%15[a-z].%d", kind, &h) != 2 || h < 0 || h > 23) return false;
      if (strcmp(kind, "weekday") == 0)
        m->cal.hour_factor[0][h] = v;
      else if (strcmp(kind, "weekend") == 0)
        m->cal.hour_factor[1][h] = v;
      else
        return false;
    } else if (strncmp(key, "day.", 4) == 0) {
      char *end;
      long d = strtol(key + 4, &end, 10);
      if (end == key + 4 || *end || d < 0 || d > 6) return false;
      m->cal.day_factor[d] = v;
    } else if (strncmp(key, "cell.", 5) == 0) {
      geo_geohash gh;
      const char *name = key + 5;
      if (m->n_cells == MCTL_MAX_CELLS || geo_geohash_parse(name, strlen(name), &gh) != GEO_OK)
        return false;
      if (v > 100) return false;
      geo_geohash_format(gh, m->cell[m->n_cells]); /* lower case */
      m->cell_factor[m->n_cells++] = v;
    } else {
      return false;
    }
  }
  /* every cell at the stated precision */
  for (size_t i = 0; i < m->n_cells; i++)
    if ((int)strlen(m->cell[i]) != m->cell_precision) return false;
  return true;
}

typedef struct cell_ref {
  const char *name;
  size_t idx;
} cell_ref;

static int cmp_cell(const void *a, const void *b) {
  return strcmp(((const cell_ref *)a)->name, ((const cell_ref *)b)->name);
}

double *mctl_model_arc_factors(const mctl_eta_model *m, const geo_graph *g) {
  uint32_t na = geo_graph_arc_count(g);
  double *f = malloc(((size_t)na + 1) * sizeof *f);
  cell_ref *sorted = malloc((m->n_cells + 1) * sizeof *sorted);
  if (f == NULL || sorted == NULL) {
    free(f);
    free(sorted);
    return NULL;
  }
  for (size_t i = 0; i < m->n_cells; i++) sorted[i] = (cell_ref){m->cell[i], i};
  qsort(sorted, m->n_cells, sizeof *sorted, cmp_cell);
  for (uint32_t a = 0; a < na; a++) {
    f[a] = 1.0;
    if (m->cell_precision == 0 || m->n_cells == 0) continue;
    char name[GEO_GEOHASH_BUF];
    if (mctl_arc_cell(g, a, m->cell_precision, name) != GEO_OK) continue;
    cell_ref key = {name, 0};
    const cell_ref *hit = bsearch(&key, sorted, m->n_cells, sizeof *sorted, cmp_cell);
    if (hit) f[a] = m->cell_factor[hit->idx];
  }
  free(sorted);
  return f;
}

geo_err mctl_arc_cell(const geo_graph *g, uint32_t a, int precision, char *out) {
  geo_latlng p = geo_graph_node_pos(g, geo_graph_arc_tail(g, a)),
             q = geo_graph_node_pos(g, geo_graph_arc_head(g, a));
  return geo_latlng_to_geohash((geo_latlng){(p.lat + q.lat) / 2, (p.lng + q.lng) / 2}, precision,
                               out);
}

geo_err mctl_model_apply(const mctl_eta_model *m, const geo_graph *raw, geo_graph **out) {
  double *f = mctl_model_arc_factors(m, raw);
  if (f == NULL) return GEO_ENOMEM;
  geo_err e = geo_graph_calibrated_arcs(raw, &m->cal, f, out);
  free(f);
  return e;
}

/* The whole file as a NUL-terminated malloc'd string; NULL when unreadable or over 16 MB. */
char *mctl_read_text(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - 1 - n, f);
    if (n < cap - 1 || cap >= (1u << 24)) break;
    char *nb = realloc(buf, cap * 2);
    if (nb == NULL) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = nb, cap *= 2;
  }
  bool bad = ferror(f) || (buf && n >= cap - 1);
  fclose(f);
  if (buf == NULL || bad) {
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  return buf;
}
