/*
 * ramp.c: the capacity ramp's plan, judgement and outputs (ramp.h). No sockets, no
 * processes: main.c runs the steps and hands their figures here.
 */
#include "ramp.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int lg_ramp_parse_steps(const char *s, lg_ramp_plan_step *out, size_t cap, char *err,
                        size_t errcap) {
  size_t n = 0;
  const char *p = s;
  if (!s || !*s) {
    snprintf(err, errcap, "no steps");
    return -1;
  }
  for (;;) {
    char *e;
    errno = 0;
    double d = strtod(p, &e);
    if (e == p || *e != ':' || errno || !(d >= 1) || d > 1e6 || d != floor(d)) {
      snprintf(err, errcap,
               "step %zu: want DRIVERS:SPEEDUP (drivers a whole number >= 1) at '%.20s'", n + 1, p);
      return -1;
    }
    p = e + 1;
    double sp = strtod(p, &e);
    if (e == p || (*e && *e != ',') || errno || !(sp > 0) || sp > 10000) {
      snprintf(err, errcap, "step %zu: speedup must be in (0, 10000] at '%.20s'", n + 1, p);
      return -1;
    }
    if (n == cap) {
      snprintf(err, errcap, "at most %zu steps", cap);
      return -1;
    }
    out[n++] = (lg_ramp_plan_step){(size_t)d, sp};
    if (!*e) break;
    p = e + 1;
  }
  return (int)n;
}

static double match_pct(const lg_ramp_step *s) {
  return s->requested ? 100.0 * (double)s->matched / (double)s->requested : NAN;
}

int lg_ramp_procs_for(size_t drivers) {
  size_t n = (drivers + LG_RAMP_DRIVERS_PER_PROC - 1) / LG_RAMP_DRIVERS_PER_PROC;
  if (n < 2) n = 2;
  if (n > LG_RAMP_MAX_LOAD_PROCS) n = LG_RAMP_MAX_LOAD_PROCS;
  if (n > drivers) n = drivers ? drivers : 1;
  return (int)n;
}

bool lg_ramp_step_ok(const lg_ramp_step *s, const lg_ramp_criteria *c) {
  if (!s->requested || !isfinite(s->offer_p99_ms)) return false;
  return s->offer_p99_ms < c->p99_max_ms && match_pct(s) >= c->match_min_pct &&
         s->dropped <= c->dropped_max;
}

int lg_ramp_knee(const lg_ramp_step *steps, size_t n, const lg_ramp_criteria *c) {
  int knee = -1;
  for (size_t i = 0; i < n; i++) {
    if (!lg_ramp_step_ok(&steps[i], c)) break;
    knee = (int)i;
  }
  return knee;
}

void lg_ramp_print_table(FILE *fp, const lg_ramp_step *steps, size_t n, const lg_ramp_criteria *c) {
  fprintf(fp, "step drivers speedup updates/s requests/s  offer p50    p99 ms  match%%  dropped  "
              "skipped  ok");
  if (n)
    for (size_t k = 0; k < steps[0].n_procs; k++) fprintf(fp, " %10.10s%%", steps[0].proc_name[k]);
  fprintf(fp, "\n");
  for (size_t i = 0; i < n; i++) {
    const lg_ramp_step *s = &steps[i];
    fprintf(fp, "%4zu %7zu %7.0f %9.0f %10.1f %10.2f %9.2f %7.1f %8.0f %8.0f %3s", i + 1,
            s->drivers, s->speedup, s->updates_per_s, s->requests_per_s, s->offer_p50_ms,
            s->offer_p99_ms, match_pct(s), s->dropped, s->skipped,
            lg_ramp_step_ok(s, c) ? "yes" : "no");
    for (size_t k = 0; k < s->n_procs; k++) fprintf(fp, " %11.1f", s->cpu_pct[k]);
    fprintf(fp, "\n");
  }
}

static double num_or_zero(double x) { return isfinite(x) ? x : 0.0; }

int lg_ramp_print_knee(FILE *fp, const lg_ramp_step *steps, size_t n, const lg_ramp_criteria *c) {
  int k = lg_ramp_knee(steps, n, c);
  double ups = k >= 0 ? num_or_zero(steps[k].updates_per_s) : 0.0;
  double rps = k >= 0 ? num_or_zero(steps[k].requests_per_s) : 0.0;
  double p99 = k >= 0 ? num_or_zero(steps[k].offer_p99_ms) : 0.0;
  return fprintf(fp,
                 "{\"knee_updates_per_s\":%.1f,\"knee_requests_per_s\":%.2f,\"knee_step\":%d,"
                 "\"knee_offer_p99_ms\":%.2f,\"steps\":%zu,\"criteria\":{\"p99_max_ms\":%g,"
                 "\"match_min_pct\":%g,\"dropped_max\":%g}}\n",
                 ups, rps, k >= 0 ? k + 1 : -1, p99, n, c->p99_max_ms, c->match_min_pct,
                 c->dropped_max);
}

int lg_ramp_write_plot(const char *png_path, const lg_ramp_step *steps, size_t n,
                       const lg_ramp_criteria *c) {
  char path[4096];
  snprintf(path, sizeof path, "%s.dat", png_path);
  FILE *d = fopen(path, "w");
  if (!d) return -1;
  fprintf(d, "# step updates_per_s requests_per_s offer_p50_ms offer_p99_ms");
  if (n)
    for (size_t k = 0; k < steps[0].n_procs; k++) fprintf(d, " cpu_%s", steps[0].proc_name[k]);
  fprintf(d, "\n");
  for (size_t i = 0; i < n; i++) {
    const lg_ramp_step *s = &steps[i];
    fprintf(d, "%zu %.1f %.2f %.3f %.3f", i + 1, s->updates_per_s, s->requests_per_s,
            num_or_zero(s->offer_p50_ms), num_or_zero(s->offer_p99_ms));
    for (size_t k = 0; k < s->n_procs; k++) fprintf(d, " %.2f", num_or_zero(s->cpu_pct[k]));
    fprintf(d, "\n");
  }
  if (fclose(d) != 0) return -1;
  snprintf(path, sizeof path, "%s.gp", png_path);
  FILE *g = fopen(path, "w");
  if (!g) return -1;
  fprintf(g, "set terminal pngcairo size 1100,800 noenhanced\nset output '%s'\n", png_path);
  fprintf(g, "set multiplot layout 2,1 title 'Meridian capacity ramp'\n");
  fprintf(
      g,
      "set grid\nset key left top\nset xlabel 'location updates/s (requests/s grow with them)'\n");
  fprintf(g, "set ylabel 'request -> offer (ms)'\nset logscale y\n");
  fprintf(g,
          "plot '%s.dat' using 2:4 with linespoints title 'p50', '' using 2:5 with linespoints "
          "title 'p99', "
          "%g with lines dashtype 2 title 'p99 bound'\n",
          png_path, c->p99_max_ms);
  fprintf(g, "unset logscale y\nset ylabel 'CPU (%% of one core)'\n");
  if (n && steps[0].n_procs) {
    fprintf(g, "plot ");
    for (size_t k = 0; k < steps[0].n_procs; k++)
      fprintf(g, "%s'%s.dat' using 2:%zu with linespoints title '%s'", k ? ", " : "", png_path,
              6 + k, steps[0].proc_name[k]);
    fprintf(g, "\n");
  } else {
    fprintf(g, "plot '%s.dat' using 2:3 with linespoints title 'requests/s'\n", png_path);
  }
  fprintf(g, "unset multiplot\n");
  return fclose(g) != 0 ? -1 : 0;
}
