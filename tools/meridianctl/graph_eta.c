/*
 * graph_eta.c: ETA calibration on real taxi trips (`graph calibrate`) and the ETA error
 * report (`graph eta-report`).
 *
 * Model: ETA = hour_factor[weekend][hour] x sum over the route's arcs of (raw_time x
 * class_factor[class] + arc_penalty), the route being the fastest one under the calibrated times. The
 * factors minimise the mean absolute relative error on the fit trips by coordinate descent
 * (each one-dimensional step is an exact weighted median), alternating with re-routing on
 * the calibrated graph. Trips: rows of data/trips/nyc-taxi-10k.csv with a duration; the
 * `train` rows are fitted, the `valid` rows are held out for the report (none of them is
 * seen by the fit). Trips shorter than 60 s or longer than 3 h, or with an end more than
 * 100 m from a road of the graph (drop-offs off the map), are left out and counted.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/ch.h"
#include "geo/geometry.h"
#include "geo/route.h"
#include "geo/snap.h"
#include "graph.h"

#define SNAP_MAX_M 100.0
#define N_GROUPS 48 /* [weekend][hour] */

typedef struct trip {
  geo_latlng a, b;
  double dur_s;
  int hour, weekday; /* weekday 0 = Sunday */
  bool eval;         /* held out */
  geo_snap sa, sb;
  double straight_m, short_m, raw_s;
  double tc[GEO_ROAD_CLASS_COUNT]; /* raw seconds per class along the current route */
  double cal_s;                    /* calibrated route time before the hour factor */
  double n_arcs;                   /* arcs on the current route (intersections passed) */
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
  const char *names[] = {"train_id", "duration", "hour", "weekday", "pickup_longitude",
                         "pickup_latitude", "dropoff_longitude", "dropoff_latitude"};
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
    x->eval = eval;
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

/* One fit of class and hour factors on the fit trips' current class decompositions. */
static void fit_factors(trip *t, size_t n, geo_graph_calibration *cal) {
  wv *v = malloc(n * sizeof *v);
  if (v == NULL) return;
  for (int sweep = 0; sweep < 6; sweep++) {
    /* the trip base: argmin_b sum |h S + b - y| / y */
    {
      size_t k = 0;
      for (size_t i = 0; i < n; i++) {
        if (t[i].eval) continue;
        double h = cal->hour_factor[group_of(&t[i]) / 24][t[i].hour];
        double s = cal->arc_penalty_ms / 1000 * t[i].n_arcs;
        for (int d = 0; d < GEO_ROAD_CLASS_COUNT; d++) s += cal->class_factor[d] * t[i].tc[d];
        v[k++] = (wv){t[i].dur_s - h * s, 1 / t[i].dur_s};
      }
      if (k >= 30) cal->trip_base_ms = clampd(weighted_median(v, k), 0, 600) * 1000;
    }
    const double base = cal->trip_base_ms / 1000;
    for (int c = 0; c < GEO_ROAD_CLASS_COUNT; c++) {
      size_t k = 0;
      double share = 0, all = 0;
      for (size_t i = 0; i < n; i++) {
        if (t[i].eval) continue;
        double h = cal->hour_factor[group_of(&t[i]) / 24][t[i].hour];
        double rest = cal->arc_penalty_ms / 1000 * t[i].n_arcs;
        for (int d = 0; d < GEO_ROAD_CLASS_COUNT; d++)
          if (d != c) rest += cal->class_factor[d] * t[i].tc[d];
        all += t[i].dur_s;
        if (t[i].tc[c] <= 0) continue;
        share += t[i].tc[c];
        double a = h * t[i].tc[c];
        v[k++] = (wv){(t[i].dur_s - base - h * rest) / a, a / t[i].dur_s};
      }
      /* classes with too little driving on the routes keep their factor */
      if (k < 30 || share < 0.002 * all) continue;
      double x = weighted_median(v, k);
      if (isfinite(x)) cal->class_factor[c] = clampd(x, 0.3, 30);
    }
    /* the per-arc penalty (seconds here) */
    {
      size_t k = 0;
      for (size_t i = 0; i < n; i++) {
        if (t[i].eval || t[i].n_arcs <= 0) continue;
        double h = cal->hour_factor[group_of(&t[i]) / 24][t[i].hour];
        double rest = 0;
        for (int d = 0; d < GEO_ROAD_CLASS_COUNT; d++) rest += cal->class_factor[d] * t[i].tc[d];
        double a = h * t[i].n_arcs;
        v[k++] = (wv){(t[i].dur_s - base - h * rest) / a, a / t[i].dur_s};
      }
      if (k >= 30) cal->arc_penalty_ms = clampd(weighted_median(v, k), 0, 60) * 1000;
    }
    for (int gidx = 0; gidx < N_GROUPS; gidx++) {
      size_t k = 0;
      for (size_t i = 0; i < n; i++) {
        if (t[i].eval || group_of(&t[i]) != gidx) continue;
        double s = cal->arc_penalty_ms / 1000 * t[i].n_arcs;
        for (int d = 0; d < GEO_ROAD_CLASS_COUNT; d++) s += cal->class_factor[d] * t[i].tc[d];
        if (s <= 0) continue;
        v[k++] = (wv){(t[i].dur_s - base) / s, s / t[i].dur_s};
      }
      if (k >= 20) cal->hour_factor[gidx / 24][gidx % 24] = clampd(weighted_median(v, k), 0.2, 5);
    }
    /* hours with too few trips: the mean of the fitted ones of that kind of day */
    for (int w = 0; w < 2; w++) {
      double sum = 0;
      int cnt = 0, have[24] = {0};
      for (int h = 0; h < 24; h++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += !t[i].eval && group_of(&t[i]) == w * 24 + h;
        if (k >= 20) sum += cal->hour_factor[w][h], cnt++, have[h] = 1;
      }
      for (int h = 0; h < 24; h++)
        if (!have[h]) cal->hour_factor[w][h] = cnt ? sum / cnt : 1.0;
    }
    /* identifiability: hour factors average 1, the scale lives in the class factors */
    double mean = 0;
    for (int w = 0; w < 2; w++)
      for (int h = 0; h < 24; h++) mean += cal->hour_factor[w][h] / 48;
    for (int w = 0; w < 2; w++)
      for (int h = 0; h < 24; h++) cal->hour_factor[w][h] /= mean;
    for (int c = 0; c < GEO_ROAD_CLASS_COUNT; c++) cal->class_factor[c] *= mean;
    cal->arc_penalty_ms *= mean;
  }
  free(v);
}

/* Route every trip on g (raw times from raw), filling class decompositions and times. */
static void route_all(const geo_graph *g, const geo_graph *raw, geo_route_state *st, trip *t,
                      size_t n, bool set_raw) {
  for (size_t i = 0; i < n; i++) {
    geo_route_result r;
    memset(t[i].tc, 0, sizeof t[i].tc);
    t[i].cal_s = NAN;
    if (geo_route(st, g, GEO_ROUTE_CH, &t[i].sa.place, &t[i].sb.place, &r) != GEO_OK) continue;
    size_t na = 0;
    const uint32_t *arcs = geo_route_path_arcs(st, &na);
    double raw_total = 0, this_total = 0;
    for (size_t k = 0; k < na; k++) {
      raw_total += geo_graph_arc_time_ms(raw, arcs[k]);
      this_total += geo_graph_arc_time_ms(g, arcs[k]);
    }
    /* partial first/last arcs: scale the decomposition to the route's real time */
    double scale = this_total > 0 ? r.time_ms / this_total : 0;
    for (size_t k = 0; k < na; k++)
      t[i].tc[geo_graph_arc_class(raw, arcs[k])] += geo_graph_arc_time_ms(raw, arcs[k]) * scale / 1000.0;
    t[i].cal_s = r.time_ms / 1000.0;
    t[i].n_arcs = (double)na;
    if (set_raw) t[i].raw_s = r.time_ms / 1000.0;
    (void)raw_total;
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
  geo_graph *raw, *len, *cal_g;
  geo_graph_calibration cal;
  size_t dropped_snap, dropped_dur, dropped_route;
} eta_run;

static void eta_run_free(eta_run *r) {
  free(r->t);
  geo_graph_free(r->raw);
  geo_graph_free(r->len);
  geo_graph_free(r->cal_g);
}

/* Load graphs and trips, compute features, fit the calibration. */
static bool eta_prepare(PGconn *c, const char *trips_path, eta_run *r) {
  memset(r, 0, sizeof *r);
  size_t n_all = 0;
  trip *all = load_trips(trips_path, &n_all);
  if (all == NULL) return false;
  r->raw = mctl_graph_from_pg(c, MCTL_COST_TIME, NULL);
  r->len = mctl_graph_from_pg(c, MCTL_COST_LENGTH, NULL);
  if (r->raw == NULL || r->len == NULL) {
    free(all);
    return false;
  }
  if (geo_ch_build(r->raw, NULL) != GEO_OK || geo_ch_build(r->len, NULL) != GEO_OK ||
      geo_graph_build_rtree(r->raw) != GEO_OK) {
    free(all);
    return false;
  }
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
  geo_route_state *st = NULL;
  if (geo_route_state_new(r->raw, &st) != GEO_OK) {
    free(all);
    return false;
  }
  /* shortest-distance routes: the arcs are the same in both graphs */
  for (size_t i = 0; i < n; i++) {
    geo_route_result res;
    all[i].short_m = geo_route(st, r->len, GEO_ROUTE_CH, &all[i].sa.place, &all[i].sb.place, &res) == GEO_OK
                         ? res.length_m : NAN;
  }
  fprintf(stderr, "graph eta: routing %zu trips on raw speeds\n", n);
  route_all(r->raw, r->raw, st, all, n, true);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(all[i].raw_s) || !isfinite(all[i].short_m) || all[i].raw_s <= 0) {
      r->dropped_route++;
      continue;
    }
    all[k++] = all[i];
  }
  n = k;
  r->t = all;
  r->n = n;
  geo_graph_calibration_identity(&r->cal);
  for (int round = 0; round < 4; round++) {
    fit_factors(all, n, &r->cal);
    geo_graph_free(r->cal_g);
    r->cal_g = NULL;
    if (geo_graph_calibrated(r->raw, &r->cal, &r->cal_g) != GEO_OK || geo_ch_build(r->cal_g, NULL) != GEO_OK)
      break;
    fprintf(stderr, "graph eta: fit round %d: re-routing on calibrated times\n", round + 1);
    route_all(r->cal_g, r->raw, st, all, n, false);
  }
  geo_route_state_free(st);
  return r->cal_g != NULL;
}

static const char *arg_trips(int argc, char **argv, const char **dsn, int *bad) {
  const char *trips = "data/trips/nyc-taxi-10k.csv";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--trips") == 0 && i + 1 < argc) trips = argv[++i];
    else if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) *dsn = argv[++i];
    else {
      fprintf(stderr, "meridianctl graph: unexpected argument %s\n", argv[i]);
      *bad = 1;
    }
  }
  return trips;
}

int mctl_graph_calibrate(int argc, char **argv) {
  const char *dsn = NULL;
  int bad = 0;
  const char *trips = arg_trips(argc, argv, &dsn, &bad);
  if (bad) return 2;
  PGconn *c = mctl_graph_connect(dsn);
  if (c == NULL) return 1;
  eta_run r;
  int rc = 1;
  if (eta_prepare(c, trips, &r) && mctl_graph_meta_ensure(c)) {
    char text[8192];
    mctl_calibration_format(&r.cal, text, sizeof text);
    if (mctl_graph_meta_set(c, "calibration", text)) {
      printf("%s\n", text);
      fprintf(stderr, "graph calibrate: factors stored in graph_meta (run graph export to use them)\n");
      rc = 0;
    }
  }
  eta_run_free(&r);
  PQfinish(c);
  return rc;
}

int mctl_graph_eta_report(int argc, char **argv) {
  const char *dsn = NULL;
  int bad = 0;
  const char *trips = arg_trips(argc, argv, &dsn, &bad);
  if (bad) return 2;
  PGconn *c = mctl_graph_connect(dsn);
  if (c == NULL) return 1;
  eta_run r;
  int rc = 1;
  if (!eta_prepare(c, trips, &r)) goto done;
  trip *t = r.t;
  size_t n = r.n;
  double *straight = calloc(n + 1, sizeof *straight), *shortm = calloc(n + 1, sizeof *shortm);
  for (size_t i = 0; i < n; i++) straight[i] = t[i].straight_m, shortm[i] = t[i].short_m;
  double k_straight = fit_constant(t, n, straight), k_short = fit_constant(t, n, shortm);
  /* a single global factor on the raw routes, for comparison */
  double *rawv = calloc(n + 1, sizeof *rawv);
  for (size_t i = 0; i < n; i++) rawv[i] = t[i].raw_s;
  double k_global = fit_constant(t, n, rawv);
  double *e[5];
  for (int m = 0; m < 5; m++) e[m] = calloc(n + 1, sizeof(double));
  size_t k = 0, n_fit = 0;
  for (size_t i = 0; i < n; i++) {
    if (!t[i].eval) {
      n_fit++;
      continue;
    }
    double y = t[i].dur_s;
    double cal = geo_graph_eta_ms(r.cal_g, (uint32_t)llround(t[i].cal_s * 1000), t[i].hour, t[i].weekday) / 1000;
    double pred[5] = {t[i].raw_s, cal, k_straight * t[i].straight_m, k_short * t[i].short_m, k_global * t[i].raw_s};
    for (int m = 0; m < 5; m++) e[m][k] = fabs(pred[m] - y) / y * 100;
    k++;
  }
  const char *names[5] = {"raw edge speeds (osm2pgrouting maxspeed)", "calibrated Meridian (class x hour factors)",
                          "straight line at constant speed", "shortest route at constant speed",
                          "fastest raw route x one global factor"};
  printf("ETA error on %zu held-out trips (`valid` rows; fit on %zu `train` rows)\n", k, n_fit);
  printf("left out: %zu duration < 60 s or > 3 h, %zu ends > %.0f m from a road, %zu unroutable\n",
         r.dropped_dur, r.dropped_snap, SNAP_MAX_M, r.dropped_route);
  printf("%-46s %18s\n", "method", "median abs % error");
  for (int m = 0; m < 5; m++) {
    printf("%-46s %17.1f%%", names[m], median(e[m], k));
    if (m == 2) printf("   (%.2f m/s)", 1 / k_straight);
    if (m == 3) printf("   (%.2f m/s)", 1 / k_short);
    if (m == 4) printf("   (x%.2f)", k_global);
    printf("\n");
  }
  printf("class factors (time multipliers):");
  for (int cc = 0; cc < GEO_ROAD_CLASS_COUNT; cc++)
    if (r.cal.class_factor[cc] != 1.0) printf(" %s=%.2f", geo_road_class_name((geo_road_class)cc), r.cal.class_factor[cc]);
  printf("; per-arc penalty %.1f s; trip base %.0f s\n", r.cal.arc_penalty_ms / 1000, r.cal.trip_base_ms / 1000);
  for (int m = 0; m < 5; m++) free(e[m]);
  free(straight);
  free(shortm);
  free(rawv);
  rc = 0;
done:
  eta_run_free(&r);
  PQfinish(c);
  return rc;
}
