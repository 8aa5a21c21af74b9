/*
 * graph_eta.c: ETA calibration on real taxi trips (`graph calibrate`) and the ETA error
 * report (`graph eta-report`).
 *
 * Model (mctl_eta_model): arc time = (raw_time x class_factor[class] + arc_penalty) x
 * cell_factor[geohash cell of the arc], baked into the snapshot's arcs, so routing (and
 * the CH, and one-to-many) runs on it; ETA = route time x hour_factor[weekend][hour] x
 * day_factor[weekday] + trip_base (geo_graph_eta_ms), the route being the fastest one
 * under the calibrated times. The factors minimise the mean absolute relative error on the
 * fit trips by coordinate descent (each one-dimensional step is an exact weighted median;
 * a cell factor has a prior pseudo-observation at 1, so cells crossed by few trips stay
 * near 1), then one overall scale minimises the median absolute relative error (the
 * metric), alternating with re-routing on the calibrated graph.
 *
 * Trips: rows of data/trips/nyc-taxi-10k.csv with a duration. The `valid` rows are held
 * out for the report: the fit never reads their durations. The settings (area cells or
 * not, their size and prior, day factors or not) are chosen on a tuning fold, every fifth
 * `train` row, fitting on the other `train` rows; the chosen settings are then fitted on
 * every `train` row. Only hour and weekday are used, never the day of the month. Trips
 * shorter than 60 s or longer than 3 h, or with an end more than 100 m from a road of the
 * graph (drop-offs off the map), are left out and counted.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/ch.h"
#include "geo/geohash.h"
#include "geo/geometry.h"
#include "geo/route.h"
#include "geo/snap.h"
#include "graph.h"

#define SNAP_MAX_M 100.0
#define N_GROUPS 48 /* [weekend][hour] */
#define FIT_ROUNDS 4

/* Raw seconds and arcs of a route in one (cell, class). */
typedef struct part {
  uint32_t cell;
  uint8_t cls;
  double raw_s, arcs;
} part;

typedef struct trip {
  geo_latlng a, b;
  double dur_s;
  int hour, weekday; /* weekday 0 = Sunday */
  bool eval;         /* not seen by the current fit */
  bool valid;        /* a `valid` row: held out for the report */
  bool tune;         /* a `train` row in the tuning fold (choosing the model's settings) */
  geo_snap sa, sb;
  double straight_m, short_m, raw_s;
  part *parts; /* the current route, by (cell, class) */
  size_t n_parts, cap_parts;
  double cal_s; /* calibrated route time (before the hour factor) on the current graph */
} trip;

static int group_of(const trip *t) {
  int we = t->weekday == 0 || t->weekday == 6;
  return we * 24 + t->hour;
}

/* ---- trips ------------------------------------------------------------------------- */

static int col_index(char *header, const char *name) {
  int i = 0;
  for (char *tok = strtok(header, ",\r\n"); tok; tok = strtok(NULL, ",\r\n"), i++)
    if (strcmp(tok, name) == 0) return i;
  return -1;
}

static trip *load_trips(const char *path, size_t *n_out) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "meridianctl graph: cannot read trips %s\n", path);
    return NULL;
  }
  char line[1024], hdr[1024];
  if (!fgets(line, sizeof line, f)) {
    fclose(f);
    return NULL;
  }
  const char *names[] = {"train_id",          "duration",         "hour",
                         "weekday",           "pickup_longitude", "pickup_latitude",
                         "dropoff_longitude", "dropoff_latitude"};
  int col[8];
  for (int i = 0; i < 8; i++) {
    strcpy(hdr, line);
    col[i] = col_index(hdr, names[i]);
    if (col[i] < 0) {
      fprintf(stderr, "meridianctl graph: %s has no column %s\n", path, names[i]);
      fclose(f);
      return NULL;
    }
  }
  size_t cap = 16384, n = 0;
  trip *t = calloc(cap, sizeof *t);
  while (t && fgets(line, sizeof line, f)) {
    char *field[32];
    int nf = 0;
    for (char *p = line; nf < 32;) {
      field[nf++] = p;
      char *c = strchr(p, ',');
      if (c == NULL) break;
      *c = 0;
      p = c + 1;
    }
    int maxc = 0;
    for (int i = 0; i < 8; i++) maxc = col[i] > maxc ? col[i] : maxc;
    if (nf <= maxc) continue;
    const char *split = field[col[0]];
    bool eval = strcmp(split, "valid") == 0;
    if (!eval && strcmp(split, "train") != 0) continue;
    char *end;
    double dur = strtod(field[col[1]], &end);
    if (end == field[col[1]] || !isfinite(dur)) continue;
    if (n == cap) {
      trip *nt = realloc(t, 2 * cap * sizeof *t);
      if (nt == NULL) break;
      t = nt, cap *= 2;
    }
    trip *x = &t[n++];
    memset(x, 0, sizeof *x);
    x->dur_s = dur;
    x->hour = atoi(field[col[2]]) % 24;
    x->weekday = (atoi(field[col[3]]) + 6) % 7; /* 1 = Sunday in the file (R's wday) */
    x->a = (geo_latlng){atof(field[col[5]]), atof(field[col[4]])};
    x->b = (geo_latlng){atof(field[col[7]]), atof(field[col[6]])};
    x->eval = x->valid = eval;
    x->tune = !eval && n % 5 == 0; /* every fifth training row, in file order */
  }
  fclose(f);
  *n_out = n;
  return t;
}

/* ---- fitting ------------------------------------------------------------------------- */

typedef struct wv {
  double x, w;
} wv;

static int cmp_wv(const void *a, const void *b) {
  double x = ((const wv *)a)->x, y = ((const wv *)b)->x;
  return x < y ? -1 : x > y;
}

/* argmin_x sum w_i |x - x_i| */
static double weighted_median(wv *v, size_t n) {
  if (n == 0) return NAN;
  qsort(v, n, sizeof *v, cmp_wv);
  double total = 0, acc = 0;
  for (size_t i = 0; i < n; i++) total += v[i].w;
  for (size_t i = 0; i < n; i++) {
    acc += v[i].w;
    if (acc >= total / 2) return v[i].x;
  }
  return v[n - 1].x;
}

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

static double median(double *x, size_t n);

/* What a fit may use. */
typedef struct fit_spec {
  const char *name;
  int cell_precision; /* 0: no area cells */
  double cell_prior;  /* weight of the pseudo-observation at 1 for each cell factor */
  bool day_factors;   /* a factor per day of the week on top of the hour profiles */
} fit_spec;

/* The factors being fitted: the model, and the cell factors by cell index. */
typedef struct fit_state {
  geo_graph_calibration cal;
  double *cellf; /* n_cells */
} fit_state;

/* A trip's calibrated route time before the hour factor, in seconds, without the base. */
static double trip_sum(const trip *t, const fit_state *f) {
  double s = 0;
  for (size_t k = 0; k < t->n_parts; k++) {
    const part *p = &t->parts[k];
    s += f->cellf[p->cell] *
         (f->cal.class_factor[p->cls] * p->raw_s + f->cal.arc_penalty_ms / 1000 * p->arcs);
  }
  return s;
}

/* The trip's time-of-departure factor: hour x day. */
static double hour_of(const trip *t, const fit_state *f) {
  int g = group_of(t);
  return f->cal.hour_factor[g / 24][g % 24] * f->cal.day_factor[t->weekday];
}

/* Trips (fit ones only) whose route crosses each cell: CSR lists. */
typedef struct cell_lists {
  size_t *off; /* n_cells + 1 */
  uint32_t *trip;
} cell_lists;

static bool cell_lists_build(const trip *t, size_t n, size_t n_cells, cell_lists *cl) {
  cl->off = calloc(n_cells + 2, sizeof *cl->off);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += t[i].n_parts;
  cl->trip = malloc((total + 1) * sizeof *cl->trip);
  if (cl->off == NULL || cl->trip == NULL) return false;
  /* a trip is listed once per cell even when several classes share it */
  for (size_t i = 0; i < n; i++) {
    if (t[i].eval) continue;
    for (size_t k = 0; k < t[i].n_parts; k++) {
      bool first = true;
      for (size_t j = 0; j < k; j++) first &= t[i].parts[j].cell != t[i].parts[k].cell;
      if (first) cl->off[t[i].parts[k].cell + 1]++;
    }
  }
  for (size_t c = 0; c < n_cells; c++) cl->off[c + 1] += cl->off[c];
  size_t *at = calloc(n_cells + 1, sizeof *at);
  if (at == NULL) return false;
  for (size_t i = 0; i < n; i++) {
    if (t[i].eval) continue;
    for (size_t k = 0; k < t[i].n_parts; k++) {
      bool first = true;
      for (size_t j = 0; j < k; j++) first &= t[i].parts[j].cell != t[i].parts[k].cell;
      uint32_t c = t[i].parts[k].cell;
      if (first) cl->trip[cl->off[c] + at[c]++] = (uint32_t)i;
    }
  }
  free(at);
  return true;
}

/* One fit of every factor: the fit trips (eval ones are skipped), the scratch of weighted
 * values every step reuses (n + 2), and the trips crossing each cell. */
typedef struct fit_job {
  const trip *t;
  size_t n, n_cells;
  const fit_spec *spec;
  fit_state *f;
  wv *v;
  cell_lists cl;
} fit_job;

/* The trip base: argmin_b sum |h S + b - y| / y. */
static void fit_trip_base(const fit_job *j) {
  const trip *t = j->t;
  fit_state *f = j->f;
  size_t k = 0;
  for (size_t i = 0; i < j->n; i++)
    if (!t[i].eval)
      j->v[k++] = (wv){t[i].dur_s - hour_of(&t[i], f) * trip_sum(&t[i], f), 1 / t[i].dur_s};
  if (k >= 30) f->cal.trip_base_ms = clampd(weighted_median(j->v, k), 0, 600) * 1000;
}

/* A factor per road class; classes with too little driving on the routes keep theirs. */
static void fit_class_factors(const fit_job *j, double base) {
  const trip *t = j->t;
  fit_state *f = j->f;
  for (int c = 0; c < GEO_ROAD_CLASS_COUNT; c++) {
    size_t k = 0;
    double share = 0, all = 0;
    for (size_t i = 0; i < j->n; i++) {
      if (t[i].eval) continue;
      double a = 0;
      for (size_t p = 0; p < t[i].n_parts; p++)
        if (t[i].parts[p].cls == c) a += f->cellf[t[i].parts[p].cell] * t[i].parts[p].raw_s;
      all += t[i].dur_s;
      if (a <= 0) continue;
      share += a;
      double h = hour_of(&t[i], f), rest = trip_sum(&t[i], f) - f->cal.class_factor[c] * a;
      j->v[k++] = (wv){(t[i].dur_s - base - h * rest) / (h * a), h * a / t[i].dur_s};
    }
    if (k < 30 || share < 0.002 * all) continue;
    double x = weighted_median(j->v, k);
    if (isfinite(x)) f->cal.class_factor[c] = clampd(x, 0.3, 30);
  }
}

/* The per-arc penalty (seconds here). */
static void fit_arc_penalty(const fit_job *j, double base) {
  const trip *t = j->t;
  fit_state *f = j->f;
  size_t k = 0;
  for (size_t i = 0; i < j->n; i++) {
    if (t[i].eval) continue;
    double a = 0;
    for (size_t p = 0; p < t[i].n_parts; p++)
      a += f->cellf[t[i].parts[p].cell] * t[i].parts[p].arcs;
    if (a <= 0) continue;
    double h = hour_of(&t[i], f), rest = trip_sum(&t[i], f) - f->cal.arc_penalty_ms / 1000 * a;
    j->v[k++] = (wv){(t[i].dur_s - base - h * rest) / (h * a), h * a / t[i].dur_s};
  }
  if (k >= 30) f->cal.arc_penalty_ms = clampd(weighted_median(j->v, k), 0, 60) * 1000;
}

/* Area cells, each with a pseudo-observation at 1 (weight spec->cell_prior). */
static void fit_cell_factors(const fit_job *j, double base) {
  fit_state *f = j->f;
  for (size_t c = 0; j->n_cells > 1 && c < j->n_cells; c++) {
    size_t k = 0;
    for (size_t li = j->cl.off[c]; li < j->cl.off[c + 1]; li++) {
      const trip *x = &j->t[j->cl.trip[li]];
      double a = 0;
      for (size_t p = 0; p < x->n_parts; p++)
        if (x->parts[p].cell == c)
          a += f->cal.class_factor[x->parts[p].cls] * x->parts[p].raw_s +
               f->cal.arc_penalty_ms / 1000 * x->parts[p].arcs;
      if (a <= 0) continue;
      double h = hour_of(x, f), rest = trip_sum(x, f) - f->cellf[c] * a;
      j->v[k++] = (wv){(x->dur_s - base - h * rest) / (h * a), h * a / x->dur_s};
    }
    if (k == 0) continue;
    j->v[k++] = (wv){1.0, j->spec->cell_prior};
    double x = weighted_median(j->v, k);
    if (isfinite(x)) f->cellf[c] = clampd(x, 0.25, 4);
  }
}

/* A factor per hour of a weekday and of a weekend day (groups with 20 trips or more). */
static void fit_hour_factors(const fit_job *j, double base) {
  const trip *t = j->t;
  fit_state *f = j->f;
  for (int gidx = 0; gidx < N_GROUPS; gidx++) {
    size_t k = 0;
    for (size_t i = 0; i < j->n; i++) {
      if (t[i].eval || group_of(&t[i]) != gidx) continue;
      double s = trip_sum(&t[i], f) * f->cal.day_factor[t[i].weekday];
      if (s <= 0) continue;
      j->v[k++] = (wv){(t[i].dur_s - base) / s, s / t[i].dur_s};
    }
    if (k >= 20)
      f->cal.hour_factor[gidx / 24][gidx % 24] = clampd(weighted_median(j->v, k), 0.2, 5);
  }
}

/* Days of the week, on top of the weekday/weekend hour profiles (when the spec has them). */
static void fit_day_factors(const fit_job *j, double base) {
  const trip *t = j->t;
  fit_state *f = j->f;
  for (int d = 0; j->spec->day_factors && d < 7; d++) {
    size_t k = 0;
    for (size_t i = 0; i < j->n; i++) {
      if (t[i].eval || t[i].weekday != d) continue;
      int gi = group_of(&t[i]);
      double s = trip_sum(&t[i], f) * f->cal.hour_factor[gi / 24][gi % 24];
      if (s <= 0) continue;
      j->v[k++] = (wv){(t[i].dur_s - base) / s, s / t[i].dur_s};
    }
    if (k >= 50) f->cal.day_factor[d] = clampd(weighted_median(j->v, k), 0.5, 2);
  }
}

/* Identifiability: weekday days average 1, weekend days too (the hour profiles carry the
 * weekday/weekend difference). */
static void normalise_day_factors(fit_state *f) {
  double wd = 0, we = (f->cal.day_factor[0] + f->cal.day_factor[6]) / 2;
  for (int d = 1; d <= 5; d++) wd += f->cal.day_factor[d] / 5;
  for (int d = 0; d < 7; d++) f->cal.day_factor[d] /= d == 0 || d == 6 ? we : wd;
  for (int h = 0; h < 24; h++) f->cal.hour_factor[0][h] *= wd, f->cal.hour_factor[1][h] *= we;
}

/* Hours with too few trips: the mean of the fitted ones of that kind of day. */
static void fill_sparse_hours(const fit_job *j) {
  const trip *t = j->t;
  fit_state *f = j->f;
  for (int w = 0; w < 2; w++) {
    double sum = 0;
    int cnt = 0, have[24] = {0};
    for (int h = 0; h < 24; h++) {
      size_t k = 0;
      for (size_t i = 0; i < j->n; i++) k += !t[i].eval && group_of(&t[i]) == w * 24 + h;
      if (k >= 20) sum += f->cal.hour_factor[w][h], cnt++, have[h] = 1;
    }
    for (int h = 0; h < 24; h++)
      if (!have[h]) f->cal.hour_factor[w][h] = cnt ? sum / cnt : 1.0;
  }
}

/* Identifiability: hour factors average 1, the scale lives in the class factors. */
static void normalise_hour_factors(fit_state *f) {
  double mean = 0;
  for (int w = 0; w < 2; w++)
    for (int h = 0; h < 24; h++) mean += f->cal.hour_factor[w][h] / 48;
  for (int w = 0; w < 2; w++)
    for (int h = 0; h < 24; h++) f->cal.hour_factor[w][h] /= mean;
  for (int c = 0; c < GEO_ROAD_CLASS_COUNT; c++) f->cal.class_factor[c] *= mean;
  f->cal.arc_penalty_ms *= mean;
}

/* The loss of the sweeps (mean absolute relative error) favours ETAs below the typical
 * trip time (its 1/y weights); the metric is the median absolute relative error. One
 * overall scale, chosen to minimise that median on the fit trips, corrects the bias
 * (about +6% here). */
static void rescale_to_median_error(const fit_job *j) {
  const trip *t = j->t;
  fit_state *f = j->f;
  double *rel = malloc((j->n + 1) * sizeof *rel), *e = malloc((j->n + 1) * sizeof *e);
  size_t k = 0;
  for (size_t i = 0; rel && e && i < j->n; i++)
    if (!t[i].eval)
      rel[k++] = (f->cal.trip_base_ms / 1000 + hour_of(&t[i], f) * trip_sum(&t[i], f)) / t[i].dur_s;
  double best = INFINITY, best_s = 1;
  for (double sc = 0.7; rel && e && sc <= 1.3; sc += 0.0025) {
    for (size_t i = 0; i < k; i++) e[i] = fabs(sc * rel[i] - 1);
    double m = median(e, k);
    if (m < best) best = m, best_s = sc;
  }
  free(rel);
  free(e);
  for (int c = 0; c < GEO_ROAD_CLASS_COUNT; c++) f->cal.class_factor[c] *= best_s;
  f->cal.arc_penalty_ms *= best_s;
  f->cal.trip_base_ms *= best_s;
}

/* One fit of every factor on the fit trips' current routes: six sweeps of coordinate
 * descent (each factor the weighted median given the others), then one overall scale. */
static void fit_factors(trip *t, size_t n, size_t n_cells, const fit_spec *spec, fit_state *f) {
  fit_job j = {.t = t, .n = n, .n_cells = n_cells, .spec = spec, .f = f};
  j.v = malloc((n + 2) * sizeof *j.v);
  if (j.v == NULL || (n_cells > 1 && !cell_lists_build(t, n, n_cells, &j.cl))) goto out;
  for (int sweep = 0; sweep < 6; sweep++) {
    fit_trip_base(&j);
    const double base = f->cal.trip_base_ms / 1000;
    fit_class_factors(&j, base);
    fit_arc_penalty(&j, base);
    fit_cell_factors(&j, base);
    fit_hour_factors(&j, base);
    fit_day_factors(&j, base);
    normalise_day_factors(f);
    fill_sparse_hours(&j);
    normalise_hour_factors(f);
  }
  rescale_to_median_error(&j);
out:
  free(j.cl.off);
  free(j.cl.trip);
  free(j.v);
}

/* The area cells of a graph at one precision: names and each arc's cell index. */
typedef struct cells {
  int precision;
  size_t n;
  char (*name)[GEO_GEOHASH_BUF];
  uint32_t *of_arc;
} cells;

static int cmp_name(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

static bool cells_build(const geo_graph *g, int precision, cells *cs) {
  uint32_t m = geo_graph_arc_count(g);
  memset(cs, 0, sizeof *cs);
  cs->precision = precision;
  cs->of_arc = calloc((size_t)m + 1, sizeof *cs->of_arc);
  cs->name = calloc((size_t)m + 1, sizeof *cs->name);
  if (cs->of_arc == NULL || cs->name == NULL) return false;
  if (precision == 0) {
    cs->n = 1; /* one cell for everything, factor fixed at 1 */
    return true;
  }
  char(*all)[GEO_GEOHASH_BUF] = calloc((size_t)m + 1, sizeof *all);
  if (all == NULL) return false;
  for (uint32_t a = 0; a < m; a++)
    if (mctl_arc_cell(g, a, precision, all[a]) != GEO_OK) strcpy(all[a], "0");
  memcpy(cs->name, all, (size_t)m * sizeof *all);
  qsort(cs->name, m, sizeof *cs->name, cmp_name);
  size_t u = 0;
  for (uint32_t a = 0; a < m; a++)
    if (u == 0 || strcmp(cs->name[u - 1], cs->name[a]) != 0)
      memmove(cs->name[u++], cs->name[a], sizeof *cs->name);
  cs->n = u;
  for (uint32_t a = 0; a < m; a++) {
    char(*hit)[GEO_GEOHASH_BUF] = bsearch(all[a], cs->name, u, sizeof *cs->name, cmp_name);
    cs->of_arc[a] = (uint32_t)(hit - cs->name);
  }
  free(all);
  return true;
}

static void cells_free(cells *cs) {
  free(cs->name);
  free(cs->of_arc);
}

static bool add_part(trip *t, uint32_t cell, uint8_t cls, double raw_s, double arcs) {
  for (size_t k = 0; k < t->n_parts; k++)
    if (t->parts[k].cell == cell && t->parts[k].cls == cls) {
      t->parts[k].raw_s += raw_s, t->parts[k].arcs += arcs;
      return true;
    }
  if (t->n_parts == t->cap_parts) {
    size_t nc = t->cap_parts ? 2 * t->cap_parts : 8;
    part *np = realloc(t->parts, nc * sizeof *np);
    if (np == NULL) return false;
    t->parts = np, t->cap_parts = nc;
  }
  t->parts[t->n_parts++] = (part){cell, cls, raw_s, arcs};
  return true;
}

/* Route every trip on g (arc i of g is arc i of raw), recording its calibrated time and
 * its decomposition by (cell, class) in raw seconds. */
static void route_all(const geo_graph *g, const geo_graph *raw, const cells *cs,
                      geo_route_state *st, trip *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    geo_route_result r;
    t[i].n_parts = 0;
    t[i].cal_s = NAN;
    if (geo_route(st, g, GEO_ROUTE_CH, &t[i].sa.place, &t[i].sb.place, &r) != GEO_OK) continue;
    size_t na = 0;
    const uint32_t *arcs = geo_route_path_arcs(st, &na);
    double this_total = 0;
    for (size_t k = 0; k < na; k++) this_total += geo_graph_arc_time_ms(g, arcs[k]);
    /* partial first/last arcs: scale the decomposition to the route's real time */
    double scale = this_total > 0 ? r.time_ms / this_total : 0;
    for (size_t k = 0; k < na; k++)
      add_part(&t[i], cs->of_arc[arcs[k]], (uint8_t)geo_graph_arc_class(raw, arcs[k]),
               geo_graph_arc_time_ms(raw, arcs[k]) * scale / 1000.0, scale);
    t[i].cal_s = r.time_ms / 1000.0;
  }
}

static double median(double *x, size_t n) {
  if (n == 0) return NAN;
  for (size_t i = 1; i < n; i++) { /* insertion sort is fine for thousands */
    double v = x[i];
    size_t j = i;
    while (j > 0 && x[j - 1] > v) x[j] = x[j - 1], j--;
    x[j] = v;
  }
  return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

/* Constant k minimising sum |k x_i - y_i| / y_i over the fit trips. */
static double fit_constant(const trip *t, size_t n, const double *x) {
  wv *v = malloc(n * sizeof *v);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!t[i].eval && x[i] > 0) v[k] = (wv){t[i].dur_s / x[i], x[i] / t[i].dur_s}, k++;
  double r = weighted_median(v, k);
  free(v);
  return r;
}

typedef struct eta_run {
  trip *t;
  size_t n;
  geo_graph *raw, *len;
  geo_route_state *st;
  size_t dropped_snap, dropped_dur, dropped_route;
} eta_run;

static void eta_run_free(eta_run *r) {
  for (size_t i = 0; i < r->n; i++) free(r->t[i].parts);
  free(r->t);
  geo_route_state_free(r->st);
  geo_graph_free(r->raw);
  geo_graph_free(r->len);
}

/* Load graphs and trips, snap them, compute the baselines' features. */
static bool eta_prepare(PGconn *c, const char *trips_path, eta_run *r) {
  memset(r, 0, sizeof *r);
  size_t n_all = 0;
  trip *all = load_trips(trips_path, &n_all);
  if (all == NULL) return false;
  r->t = all;
  r->raw = mctl_graph_from_pg(c, MCTL_COST_TIME, NULL);
  r->len = mctl_graph_from_pg(c, MCTL_COST_LENGTH, NULL);
  if (r->raw == NULL || r->len == NULL) return false;
  if (geo_ch_build(r->raw, NULL) != GEO_OK || geo_ch_build(r->len, NULL) != GEO_OK ||
      geo_graph_build_rtree(r->raw) != GEO_OK || geo_route_state_new(r->raw, &r->st) != GEO_OK)
    return false;
  fprintf(stderr, "graph eta: %zu trips with a duration; snapping\n", n_all);
  size_t n = 0;
  for (size_t i = 0; i < n_all; i++) {
    trip *x = &all[i];
    if (x->dur_s < 60 || x->dur_s > 3 * 3600) {
      r->dropped_dur++;
      continue;
    }
    if (!geo_latlng_is_valid(x->a) || !geo_latlng_is_valid(x->b) ||
        geo_graph_snap(r->raw, x->a, SNAP_MAX_M, &x->sa) != GEO_OK ||
        geo_graph_snap(r->raw, x->b, SNAP_MAX_M, &x->sb) != GEO_OK) {
      r->dropped_snap++;
      continue;
    }
    x->straight_m = geo_haversine_m(x->a, x->b);
    all[n++] = *x;
  }
  /* shortest-distance and raw-speed routes: the arcs are the same in all graphs */
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    geo_route_result res;
    if (geo_route(r->st, r->len, GEO_ROUTE_CH, &all[i].sa.place, &all[i].sb.place, &res) !=
            GEO_OK ||
        geo_route(r->st, r->raw, GEO_ROUTE_CH, &all[i].sa.place, &all[i].sb.place, &res) !=
            GEO_OK ||
        res.time_ms == 0) {
      r->dropped_route++;
      continue;
    }
    geo_route(r->st, r->len, GEO_ROUTE_CH, &all[i].sa.place, &all[i].sb.place, &res);
    all[i].short_m = res.length_m;
    geo_route(r->st, r->raw, GEO_ROUTE_CH, &all[i].sa.place, &all[i].sb.place, &res);
    all[i].raw_s = res.time_ms / 1000.0;
    all[k++] = all[i];
  }
  r->n = k;
  return true;
}

/* Fit a model of spec on the run's `train` trips; *g_out gets the calibrated graph (with
 * its CH) the held-out trips are then routed on. Leaves every trip's cal_s on *g_out. */
static bool fit_model(eta_run *r, const fit_spec *spec, mctl_eta_model *model, geo_graph **g_out) {
  cells cs;
  bool ok = false;
  geo_graph *g = NULL;
  fit_state f = {0};
  if (!cells_build(r->raw, spec->cell_precision, &cs)) goto out;
  f.cellf = malloc(cs.n * sizeof *f.cellf);
  if (f.cellf == NULL) goto out;
  for (size_t c = 0; c < cs.n; c++) f.cellf[c] = 1.0;
  geo_graph_calibration_identity(&f.cal);
  route_all(r->raw, r->raw, &cs, r->st, r->t, r->n);
  for (int rd = 0; rd < FIT_ROUNDS; rd++) {
    fit_factors(r->t, r->n, spec->cell_precision ? cs.n : 1, spec, &f);
    /* the model as it will be stored, so the graph is exactly the exported one */
    mctl_model_identity(model);
    model->cal = f.cal;
    model->cell_precision = spec->cell_precision;
    for (size_t c = 0; spec->cell_precision && c < cs.n && model->n_cells < MCTL_MAX_CELLS; c++) {
      if (f.cellf[c] == 1.0) continue; /* never crossed by a fit trip */
      double rounded = round(f.cellf[c] * 1e4) / 1e4;
      f.cellf[c] = rounded;
      strcpy(model->cell[model->n_cells], cs.name[c]);
      model->cell_factor[model->n_cells++] = rounded;
    }
    /* through the text form: the graph is then exactly the one export makes of the file */
    char *text = mctl_model_format(model, NULL);
    bool parsed = text && mctl_model_parse(text, model);
    free(text);
    if (!parsed) goto out;
    f.cal = model->cal;
    geo_graph_free(g);
    g = NULL;
    if (mctl_model_apply(model, r->raw, &g) != GEO_OK || geo_ch_build(g, NULL) != GEO_OK) goto out;
    fprintf(stderr, "graph eta: %s: fit round %d: re-routing on calibrated times\n", spec->name,
            rd + 1);
    route_all(g, r->raw, &cs, r->st, r->t, r->n);
  }
  ok = true;
out:
  free(f.cellf);
  cells_free(&cs);
  if (!ok) {
    geo_graph_free(g);
    g = NULL;
  }
  *g_out = g;
  return ok;
}

/* Median absolute % error of the ETAs from g's routes (cal_s) on the held-out trips, or
 * on the tuning fold when tune. e has room for every trip. */
static double eval_graph(const eta_run *r, const geo_graph *g, bool tune, double *e) {
  size_t k = 0;
  for (size_t i = 0; i < r->n; i++) {
    const trip *t = &r->t[i];
    if (tune ? !t->tune : !t->valid) continue;
    double eta =
        isfinite(t->cal_s)
            ? geo_graph_eta_ms(g, (uint32_t)llround(t->cal_s * 1000), t->hour, t->weekday) / 1000
            : t->raw_s;
    e[k++] = fabs(eta - t->dur_s) / t->dur_s * 100;
  }
  return median(e, k);
}

/* The settings the shipped model is chosen from: hour profiles alone (the first model of
 * this project) or with a factor per day of the week; no area cells, or geohash cells of
 * precision 5 (about 4.9 x 4.9 km), 6 (1.2 x 0.6 km) or 7 (150 x 150 m) with a prior of
 * weight 0.3, 1 or 3 (in units of "one trip's whole time in that cell"). */
static const fit_spec candidates[] = {
    {"class x hour (weekday/weekend)", 0, 0, false},
    {"class x hour x day", 0, 0, true},
    {"class x area(geohash 5, prior 0.3) x hour x day", 5, 0.3, true},
    {"class x area(geohash 5, prior 1) x hour x day", 5, 1, true},
    {"class x area(geohash 5, prior 3) x hour x day", 5, 3, true},
    {"class x area(geohash 6, prior 0.3) x hour x day", 6, 0.3, true},
    {"class x area(geohash 6, prior 1) x hour x day", 6, 1, true},
    {"class x area(geohash 6, prior 3) x hour x day", 6, 3, true},
    {"class x area(geohash 7, prior 0.3) x hour x day", 7, 0.3, true},
    {"class x area(geohash 7, prior 1) x hour x day", 7, 1, true},
    {"class x area(geohash 7, prior 3) x hour x day", 7, 3, true},
};
enum { N_CAND = sizeof candidates / sizeof candidates[0] };

static void set_fit_rows(eta_run *r, bool tuning) {
  for (size_t i = 0; i < r->n; i++) r->t[i].eval = r->t[i].valid || (tuning && r->t[i].tune);
}

/* Choose the settings on the tuning fold (fit on the other training rows, the `valid`
 * rows untouched), then fit them on every training row: *model and *g_out (its graph).
 * tune_err (N_CAND entries, may be NULL) gets each candidate's tuning-fold error. */
static bool fit_shipped(eta_run *r, mctl_eta_model *model, geo_graph **g_out, double *tune_err,
                        size_t *chosen) {
  double *e = calloc(r->n + 1, sizeof *e);
  if (e == NULL) return false;
  size_t best = 0;
  double best_err = INFINITY;
  set_fit_rows(r, true);
  for (size_t c = 0; c < N_CAND; c++) {
    geo_graph *g = NULL;
    if (!fit_model(r, &candidates[c], model, &g)) {
      free(e);
      set_fit_rows(r, false);
      return false;
    }
    double err = eval_graph(r, g, true, e);
    geo_graph_free(g);
    if (tune_err) tune_err[c] = err;
    fprintf(stderr, "graph eta: tuning fold: %s: %.2f%%\n", candidates[c].name, err);
    if (err < best_err) best_err = err, best = c;
  }
  free(e);
  set_fit_rows(r, false);
  *chosen = best;
  fprintf(stderr, "graph eta: chosen on the tuning fold: %s\n", candidates[best].name);
  return fit_model(r, &candidates[best], model, g_out);
}

static int parse_args(int argc, char **argv, const char **trips, const char **dsn, const char **out,
                      const char **factors) {
  *trips = "data/trips/nyc-taxi-10k.csv";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--trips") == 0 && i + 1 < argc)
      *trips = argv[++i];
    else if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc)
      *dsn = argv[++i];
    else if (out && strcmp(argv[i], "--out") == 0 && i + 1 < argc)
      *out = argv[++i];
    else if (factors && strcmp(argv[i], "--factors") == 0 && i + 1 < argc)
      *factors = argv[++i];
    else {
      fprintf(stderr, "meridianctl graph: unexpected argument %s\n", argv[i]);
      return 2;
    }
  }
  return 0;
}

int mctl_graph_calibrate(int argc, char **argv) {
  const char *dsn = NULL, *trips = NULL, *out = NULL;
  if (parse_args(argc, argv, &trips, &dsn, &out, NULL)) return 2;
  PGconn *c = mctl_graph_connect(dsn);
  if (c == NULL) return 1;
  eta_run r = {0};
  int rc = 1;
  geo_graph *g = NULL;
  char *text = NULL;
  mctl_eta_model *model = malloc(sizeof *model);
  size_t chosen = 0;
  if (model == NULL || !eta_prepare(c, trips, &r) || !fit_shipped(&r, model, &g, NULL, &chosen))
    goto done;
  char header[512];
  snprintf(
      header, sizeof header,
      "Meridian ETA calibration: %s.\n"
      "Produced by `meridianctl graph calibrate --out FILE`: settings chosen on a tuning fold\n"
      "of the `train` rows of %s, then fitted on every `train` row (the `valid` rows\n"
      "are never seen). Read by `meridianctl graph export --factors FILE`.",
      candidates[chosen].name, trips);
  text = mctl_model_format(model, header);
  if (text == NULL) goto done;
  if (out) {
    FILE *f = fopen(out, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
      fprintf(stderr, "meridianctl graph calibrate: cannot write %s\n", out);
      goto done;
    }
    fprintf(stderr,
            "graph calibrate: factors written to %s (graph export --factors %s uses them)\n", out,
            out);
  } else {
    if (!mctl_graph_meta_present(c) || !mctl_graph_meta_set(c, "calibration", text)) goto done;
    printf("%s", text);
    fprintf(stderr,
            "graph calibrate: factors stored in graph_meta (run graph export to use them)\n");
  }
  rc = 0;
done:
  free(text);
  free(model);
  geo_graph_free(g);
  eta_run_free(&r);
  PQfinish(c);
  return rc;
}

int mctl_graph_eta_report(int argc, char **argv) {
  const char *dsn = NULL, *trips = NULL, *factors = NULL;
  if (parse_args(argc, argv, &trips, &dsn, NULL, &factors)) return 2;
  PGconn *c = mctl_graph_connect(dsn);
  if (c == NULL) return 1;
  eta_run r = {0};
  int rc = 1;
  mctl_eta_model *model = malloc(sizeof *model);
  double *e = NULL, *x = NULL;
  char *text = NULL;
  if (factors) {
    text = mctl_read_text(factors);
    if (text == NULL || model == NULL || !mctl_model_parse(text, model)) {
      fprintf(stderr, "meridianctl graph eta-report: %s: unreadable or malformed factors\n",
              factors);
      goto done;
    }
  }
  if (model == NULL || !eta_prepare(c, trips, &r)) goto done;
  trip *t = r.t;
  size_t n = r.n;
  e = calloc(n + 1, sizeof *e);
  x = calloc(n + 1, sizeof *x);
  if (e == NULL || x == NULL) goto done;
  size_t n_eval = 0, n_fit = 0;
  for (size_t i = 0; i < n; i++) n_eval += t[i].eval, n_fit += !t[i].eval;
  /* baselines: one constant each, fitted on the fit trips */
  double k_const[3];
  for (int m = 0; m < 3; m++) {
    for (size_t i = 0; i < n; i++)
      x[i] = m == 0 ? t[i].straight_m : m == 1 ? t[i].short_m : t[i].raw_s;
    k_const[m] = fit_constant(t, n, x);
  }
  double err_raw, err_base[3];
  {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (t[i].eval) e[k++] = fabs(t[i].raw_s - t[i].dur_s) / t[i].dur_s * 100;
    err_raw = median(e, k);
    for (int m = 0; m < 3; m++) {
      k = 0;
      for (size_t i = 0; i < n; i++) {
        if (!t[i].eval) continue;
        double feat = m == 0 ? t[i].straight_m : m == 1 ? t[i].short_m : t[i].raw_s;
        e[k++] = fabs(k_const[m] * feat - t[i].dur_s) / t[i].dur_s * 100;
      }
      err_base[m] = median(e, k);
    }
  }
  if (factors) {
    /* a stored model (what `graph export --factors` bakes), measured without any fit */
    geo_graph *g = NULL;
    cells none;
    if (!cells_build(r.raw, 0, &none)) goto done;
    bool ok = mctl_model_apply(model, r.raw, &g) == GEO_OK && geo_ch_build(g, NULL) == GEO_OK;
    if (ok) route_all(g, r.raw, &none, r.st, r.t, r.n);
    cells_free(&none);
    if (!ok) {
      geo_graph_free(g);
      goto done;
    }
    double err = eval_graph(&r, g, false, e);
    geo_graph_free(g);
    printf("ETA error on %zu held-out trips (`valid` rows)\n", n_eval);
    printf("%-52s %18s\n", "method", "median abs % error");
    printf("%-52s %17.1f%%\n", "raw edge speeds (osm2pgrouting maxspeed)", err_raw);
    printf("%-52s %17.1f%%   (%zu area cells)\n", factors, err, model->n_cells);
    printf("%-52s %17.1f%%   (%.2f m/s)\n", "straight line at constant speed", err_base[0],
           1 / k_const[0]);
    printf("%-52s %17.1f%%   (%.2f m/s)\n", "shortest-distance route at constant speed",
           err_base[1], 1 / k_const[1]);
    rc = 0;
    goto done;
  }
  /* every candidate fitted on all training rows and measured on the held-out rows, for the
   * table; the shipped one was chosen on the tuning fold, before any of these */
  double tune_err[N_CAND], held_err[N_CAND];
  size_t chosen = 0;
  geo_graph *g = NULL;
  if (!fit_shipped(&r, model, &g, tune_err, &chosen)) goto done;
  double err_cal = eval_graph(&r, g, false, e);
  geo_graph_free(g);
  mctl_eta_model *other = malloc(sizeof *other);
  if (other == NULL) goto done;
  for (size_t s = 0; s < N_CAND; s++) {
    held_err[s] = NAN;
    if (s == chosen) {
      held_err[s] = err_cal;
      continue;
    }
    g = NULL;
    if (fit_model(&r, &candidates[s], other, &g)) held_err[s] = eval_graph(&r, g, false, e);
    geo_graph_free(g);
  }
  free(other);
  printf("ETA error on %zu held-out trips (`valid` rows; fit on %zu `train` rows)\n", n_eval,
         n_fit);
  printf("left out: %zu duration < 60 s or > 3 h, %zu ends > %.0f m from a road, %zu unroutable\n",
         r.dropped_dur, r.dropped_snap, SNAP_MAX_M, r.dropped_route);
  printf("%-52s %18s\n", "method", "median abs % error");
  printf("%-52s %17.1f%%\n", "raw edge speeds (osm2pgrouting maxspeed)", err_raw);
  printf("%-52s %17.1f%%   (%s)\n", "calibrated Meridian", err_cal, candidates[chosen].name);
  printf("%-52s %17.1f%%   (%.2f m/s)\n", "straight line at constant speed", err_base[0],
         1 / k_const[0]);
  printf("%-52s %17.1f%%   (%.2f m/s)\n", "shortest-distance route at constant speed", err_base[1],
         1 / k_const[1]);
  printf("%-52s %17.1f%%   (x%.2f)\n", "fastest raw route x one global factor", err_base[2],
         k_const[2]);
  printf("\nmodel settings: error on the tuning fold (every 5th `train` row, fit on the other\n"
         "`train` rows; this column chose the shipped model) and on the held-out rows (fit on\n"
         "every `train` row)\n");
  printf("%-52s %10s %10s\n", "settings", "tuning", "held-out");
  for (size_t s = 0; s < N_CAND; s++)
    printf("%-52s %9.1f%% %9.1f%%%s\n", candidates[s].name, tune_err[s], held_err[s],
           s == chosen ? "   <- shipped" : "");
  printf("\nshipped model: class factors");
  for (int cc = 0; cc < GEO_ROAD_CLASS_COUNT; cc++)
    if (model->cal.class_factor[cc] != 1.0)
      printf(" %s=%.2f", geo_road_class_name((geo_road_class)cc), model->cal.class_factor[cc]);
  printf("; per-arc cost %.1f s; trip base %.0f s; %zu area cells\n",
         model->cal.arc_penalty_ms / 1000, model->cal.trip_base_ms / 1000, model->n_cells);
  rc = 0;
done:
  free(text);
  free(e);
  free(x);
  free(model);
  eta_run_free(&r);
  PQfinish(c);
  return rc;
}
