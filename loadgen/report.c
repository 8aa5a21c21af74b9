/*
 * report.c: percentiles, counters and the human / JSON / plot outputs (report.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "report.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "trips_csv.h"

int lg_samples_add(lg_samples *s, double x) {
  if (s->n == s->cap) {
    size_t ncap = s->cap ? s->cap * 2 : 256;
    double *nv = realloc(s->v, ncap * sizeof *nv);
    if (!nv) return -1;
    s->v = nv;
    s->cap = ncap;
  }
  s->v[s->n++] = x;
  return 0;
}

void lg_samples_close(lg_samples *s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

double lg_percentile_sorted(const double *sorted, size_t n, double p) {
  if (n == 0) return NAN;
  if (p <= 0) return sorted[0];
  if (p >= 100) return sorted[n - 1];
  double rank = ceil(p / 100.0 * (double)n); /* 1-based */
  size_t i = rank < 1 ? 0 : (size_t)rank - 1;
  return sorted[i < n ? i : n - 1];
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

lg_summary lg_samples_summary(const lg_samples *s) {
  lg_summary r = {0, NAN, NAN, NAN, NAN, NAN};
  if (s->n == 0) return r;
  double *c = malloc(s->n * sizeof *c);
  if (!c) return r;
  memcpy(c, s->v, s->n * sizeof *c);
  qsort(c, s->n, sizeof *c, cmp_double);
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) sum += c[i];
  r.n = s->n;
  r.p50 = lg_percentile_sorted(c, s->n, 50);
  r.p95 = lg_percentile_sorted(c, s->n, 95);
  r.p99 = lg_percentile_sorted(c, s->n, 99);
  r.mean = sum / (double)s->n;
  r.max = c[s->n - 1];
  free(c);
  return r;
}

double lg_samples_median_abs(const lg_samples *s) {
  if (s->n == 0) return NAN;
  lg_samples a = {0};
  for (size_t i = 0; i < s->n; i++)
    if (lg_samples_add(&a, fabs(s->v[i])) != 0) {
      lg_samples_close(&a);
      return NAN;
    }
  lg_summary sm = lg_samples_summary(&a);
  lg_samples_close(&a);
  return sm.p50;
}

void lg_stats_error(lg_stats *st, const char *code) {
  for (size_t i = 0; i < st->n_error_codes; i++)
    if (strcmp(st->errors[i].code, code) == 0) {
      st->errors[i].n++;
      return;
    }
  if (st->n_error_codes == LG_MAX_ERROR_CODES) code = "other";
  if (st->n_error_codes == LG_MAX_ERROR_CODES) {
    for (size_t i = 0; i < st->n_error_codes; i++)
      if (strcmp(st->errors[i].code, "other") == 0) {
        st->errors[i].n++;
        return;
      }
    st->errors[LG_MAX_ERROR_CODES - 1].n++; /* the last slot becomes the catch-all */
    snprintf(st->errors[LG_MAX_ERROR_CODES - 1].code, sizeof st->errors[0].code, "other");
    return;
  }
  snprintf(st->errors[st->n_error_codes].code, sizeof st->errors[0].code, "%s", code);
  st->errors[st->n_error_codes++].n = 1;
}

size_t lg_stats_errors(const lg_stats *st, const char *code) {
  for (size_t i = 0; i < st->n_error_codes; i++)
    if (strcmp(st->errors[i].code, code) == 0) return st->errors[i].n;
  return 0;
}

lg_second *lg_stats_second(lg_stats *st, size_t sec) {
  if (sec >= st->n_secs) {
    size_t n = sec + 1;
    lg_second *ns = realloc(st->secs, n * sizeof *ns);
    if (!ns) return NULL;
    memset(ns + st->n_secs, 0, (n - st->n_secs) * sizeof *ns);
    st->secs = ns;
    st->n_secs = n;
  }
  return &st->secs[sec];
}

void lg_stats_close(lg_stats *st) {
  lg_samples_close(&st->offer_ms);
  lg_samples_close(&st->match_ms);
  lg_samples_close(&st->pickup_eta_err_pct);
  lg_samples_close(&st->pickup_eta_err_s);
  lg_samples_close(&st->taxi_eta_err_pct);
  lg_samples_close(&st->wait_s);
  lg_samples_close(&st->chain_saving_s);
  lg_samples_close(&st->pickup_eta_s);
  for (size_t i = 0; i < st->n_secs; i++) {
    lg_samples_close(&st->secs[i].offer_ms);
    lg_samples_close(&st->secs[i].match_ms);
  }
  free(st->secs);
  memset(st, 0, sizeof *st);
}

static double pct(size_t a, size_t b) { return b ? 100.0 * (double)a / (double)b : NAN; }

static double mean_of(const lg_samples *s) {
  if (!s->n) return NAN;
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) sum += s->v[i];
  return sum / (double)s->n;
}

static double updates_per_s(const lg_stats *st) {
  return st->replay_wall_s > 0 ? (double)st->updates_in_window / st->replay_wall_s : NAN;
}

static void print_lat(FILE *fp, const char *name, const lg_samples *s) {
  lg_summary m = lg_samples_summary(s);
  fprintf(fp, "  %-22s p50 %7.1f  p95 %7.1f  p99 %7.1f  max %7.1f ms  (n=%zu)\n", name, m.p50,
          m.p95, m.p99, m.max, m.n);
}

void lg_report_print(FILE *fp, const lg_report_info *in, const lg_stats *st) {
  int h = (int)(in->start_tod_s / 3600), mi = (int)(fmod(in->start_tod_s, 3600) / 60);
  fprintf(fp, "\nMeridian load generator: replay report (run %s)\n", in->run_id);
  fprintf(fp, "  trips file      %s (%s): %zu rows, %zu skipped", in->trips_file, in->format,
          in->rows, in->skipped_total);
  if (in->skipped_total) {
    fprintf(fp, " (");
    const char *sep = "";
    for (int r = 0; r < LG_SKIP_REASON_COUNT; r++)
      if (in->skipped[r]) {
        fprintf(fp, "%s%s %zu", sep, lg_skip_reason_name((lg_skip_reason)r), in->skipped[r]);
        sep = ", ";
      }
    fprintf(fp, "; first at lines");
    for (size_t i = 0; i < in->n_first_skipped; i++) fprintf(fp, " %u", in->first_skipped[i]);
    fprintf(fp, ")");
  }
  fprintf(fp, ", %zu without a real duration\n", in->no_duration);
  fprintf(fp,
          "  replay          %zu trips from %02d:%02d at speedup %gx for %.0f s wall; %zu drivers; "
          "accept p %.2f, cancel p %.2f; seed %llu\n",
          st->trips_in_window, h, mi, in->speedup, in->duration_s, in->drivers, in->accept_prob,
          in->cancel_prob, (unsigned long long)in->seed);
  fprintf(fp,
          "  drivers         a location every %g s of sim time (real apps: %g s)%s; driving the "
          "snapshot's times x %.3f\n",
          in->ping_gap_s, in->ping_period_s, in->motion ? ", with heading and speed" : "",
          in->drive_pace);
  fprintf(fp,
          "  gateway         %s; peak %zu connections open, %zu failed to connect, %zu closed by "
          "the server\n",
          in->url, st->peak_open, st->connect_failed, st->closed_unexpectedly);
  if (st->reconnect_attempts)
    fprintf(fp,
            "  reconnections   %zu of %zu tries (jittered backoff); %zu messages sent again, %zu "
            "trips taken up from a snapshot\n",
            st->reconnects, st->reconnect_attempts, st->resent, st->resync_adopted);
  fprintf(fp, "\n  trips requested %zu\n", st->requested);
  fprintf(fp, "    matched       %zu (%.1f%%)\n", st->matched, pct(st->matched, st->requested));
  fprintf(fp, "    no driver     %zu (%.1f%%)\n", st->no_driver, pct(st->no_driver, st->requested));
  fprintf(fp, "    cancelled     %zu (rider cancels sent %zu)\n", st->cancelled, st->cancel_sent);
  fprintf(fp, "    completed     %zu\n", st->completed);
  fprintf(fp, "  offers          %zu (accepted %zu, declined %zu, expired %zu)\n", st->offers,
          st->accepts, st->declines, st->offers_expired);
  fprintf(fp, "\n  latency (wall clock, measured at the client)\n");
  print_lat(fp, "request -> offer", &st->offer_ms);
  print_lat(fp, "request -> matched", &st->match_ms);
  fprintf(fp, "  location updates %.0f/s sustained over the replay (%zu sent in all)\n",
          updates_per_s(st), st->updates);
  lg_summary w = lg_samples_summary(&st->wait_s), pe = lg_samples_summary(&st->pickup_eta_s);
  fprintf(fp, "\n  rider wait (request -> driver at the pickup, simulated)\n");
  fprintf(fp, "    wait            mean %6.0f  p50 %6.0f  p95 %6.0f s  (n=%zu)\n", w.mean, w.p50,
          w.p95, w.n);
  fprintf(
      fp,
      "    pickup ETA      mean %6.0f  p50 %6.0f  p95 %6.0f s  (quoted with the match, n=%zu)\n",
      pe.mean, pe.p50, pe.p95, pe.n);
  if (st->chain_horizon_s > 0) {
    lg_summary ch = lg_samples_summary(&st->chain_saving_s);
    fprintf(fp,
            "    chained trips   an estimate, not dispatched: a driver ending a trip within %.0f s "
            "would\n"
            "                    have reached the pickup sooner in %zu of %zu matches; mean saving "
            "%.1f s a\n"
            "                    match (%.1f%% of the mean wait)\n",
            st->chain_horizon_s, st->chain_sooner, ch.n, ch.n ? ch.mean : 0.0,
            ch.n && w.n && w.mean > 0 ? 100.0 * ch.mean / w.mean : 0.0);
  }
  if (st->total_wall_s > 0)
    fprintf(fp, "  load generator  %.1f%% of one core over %.0f s (its own CPU: one event loop)\n",
            100.0 * st->self_cpu_s / st->total_wall_s, st->total_wall_s);
  lg_report_print_hops(fp, &st->hops, &st->offer_ms);
  fprintf(fp, "\n  ETA\n");
  fprintf(
      fp,
      "    pickup ETA vs simulated arrival: median |error| %.1f%%, mean error %+.1f%% (n=%zu)\n",
      lg_samples_median_abs(&st->pickup_eta_err_pct), mean_of(&st->pickup_eta_err_pct),
      st->pickup_eta_err_pct.n);
  fprintf(fp,
          "      in sim seconds: median |error| %.0f s, mean error %+.0f s (a driver's position "
          "reaches dispatch every %.0f s of sim time)\n",
          lg_samples_median_abs(&st->pickup_eta_err_s), mean_of(&st->pickup_eta_err_s),
          in->ping_gap_s);
  fprintf(fp,
          "    route ETA pickup->drop-off vs real taxi duration: median |error| %.1f%%, "
          "mean error %+.1f%% (n=%zu)\n",
          lg_samples_median_abs(&st->taxi_eta_err_pct), mean_of(&st->taxi_eta_err_pct),
          st->taxi_eta_err_pct.n);
  fprintf(fp, "\n  errors by code:");
  if (!st->n_error_codes) fprintf(fp, " none");
  for (size_t i = 0; i < st->n_error_codes; i++)
    fprintf(fp, " %s=%zu", st->errors[i].code, st->errors[i].n);
  fprintf(fp, "\n");
}

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

void lg_report_print_hops(FILE *fp, const lg_hops_report *h, const lg_samples *offer_ms) {
  if (!h->have) {
    fprintf(fp, "\n  hops            not measured: %s\n", h->why);
    return;
  }
  fprintf(fp, "\n  hops (the gateway's traces of the requests, from its /metrics; p50/p99 within a "
              "bucket)\n");
  double sum_p50 = 0, sum_mean = 0;
  for (size_t i = 0; i < h->n; i++) {
    const lg_hop_stat *s = &h->hop[i];
    fprintf(fp, "    %-16s p50 %7.2f  p99 %7.2f  mean %7.2f ms\n", s->name, s->p50_ms, s->p99_ms,
            s->mean_ms);
    sum_p50 += s->p50_ms;
    sum_mean += s->mean_ms;
  }
  lg_summary o = lg_samples_summary(offer_ms);
  fprintf(fp, "    %-16s p50 %7.2f  p99 %7.2f  mean %7.2f ms  (gateway received -> sent, n=%.0f)\n",
          "traced", h->total.p50_ms, h->total.p99_ms, h->total.mean_ms, h->total.n);
  fprintf(fp,
          "    hops add up to mean %.2f ms (traced mean %.2f), p50s to %.2f ms; the client's "
          "request -> offer p50 %.2f mean %.2f ms (the rest: the client's send and receive, "
          "both event loops)\n",
          sum_mean, h->total.mean_ms, sum_p50, o.p50, o.mean);
}

static json_t *hops_json(const lg_hops_report *h) {
  json_t *o = json_object();
  if (!o || !h->have) return o;
  for (size_t i = 0; i < h->n; i++) {
    const lg_hop_stat *s = &h->hop[i];
    json_object_set_new(o, s->name,
                        json_pack("{s:o,s:o,s:o,s:I}", "p50", num(s->p50_ms), "p99", num(s->p99_ms),
                                  "mean", num(s->mean_ms), "n", (json_int_t)s->n));
  }
  return o;
}

static json_t *lat_json(const lg_samples *s) {
  lg_summary m = lg_samples_summary(s);
  return json_pack("{s:o,s:o,s:o,s:o,s:o,s:I}", "p50", num(m.p50), "p95", num(m.p95), "p99",
                   num(m.p99), "mean", num(m.mean), "max", num(m.max), "n", (json_int_t)m.n);
}

int lg_report_write_json(const char *path, const lg_report_info *in, const lg_stats *st) {
  json_t *errors = json_object(), *skipped = json_object(), *first = json_array();
  for (size_t i = 0; i < st->n_error_codes; i++)
    json_object_set_new(errors, st->errors[i].code, json_integer((json_int_t)st->errors[i].n));
  for (int r = 0; r < LG_SKIP_REASON_COUNT; r++)
    json_object_set_new(skipped, lg_skip_reason_name((lg_skip_reason)r),
                        json_integer((json_int_t)in->skipped[r]));
  for (size_t i = 0; i < in->n_first_skipped; i++)
    json_array_append_new(first, json_integer(in->first_skipped[i]));
  json_t *o = json_pack(
      "{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "run_id", in->run_id,
      "requested", (json_int_t)st->requested, "matched", (json_int_t)st->matched, "no_driver",
      (json_int_t)st->no_driver, "cancelled", (json_int_t)st->cancelled, "completed",
      (json_int_t)st->completed, "cancel_sent", (json_int_t)st->cancel_sent, "matched_pct",
      num(pct(st->matched, st->requested)), "no_driver_pct", num(pct(st->no_driver, st->requested)),
      "match_latency_ms", lat_json(&st->match_ms), "offer_latency_ms", lat_json(&st->offer_ms),
      "updates_per_s", num(updates_per_s(st)), "eta_error_pct",
      num(lg_samples_median_abs(&st->pickup_eta_err_pct)), "eta_error",
      json_pack("{s:o,s:o,s:I,s:o,s:o,s:o,s:I}", "pickup_median_abs_pct",
                num(lg_samples_median_abs(&st->pickup_eta_err_pct)), "pickup_mean_pct",
                num(mean_of(&st->pickup_eta_err_pct)), "pickup_n",
                (json_int_t)st->pickup_eta_err_pct.n, "pickup_median_abs_s",
                num(lg_samples_median_abs(&st->pickup_eta_err_s)), "taxi_median_abs_pct",
                num(lg_samples_median_abs(&st->taxi_eta_err_pct)), "taxi_mean_pct",
                num(mean_of(&st->taxi_eta_err_pct)), "taxi_n", (json_int_t)st->taxi_eta_err_pct.n),
      "taxi_eta_error_pct", num(lg_samples_median_abs(&st->taxi_eta_err_pct)), "errors", errors);
  if (!o) {
    json_decref(skipped);
    json_decref(first);
    errno = ENOMEM;
    return -1;
  }
  json_object_set_new(o, "wait_s", lat_json(&st->wait_s));
  json_object_set_new(o, "pickup_eta_s", lat_json(&st->pickup_eta_s));
  {
    lg_summary ch = lg_samples_summary(&st->chain_saving_s), w = lg_samples_summary(&st->wait_s);
    json_object_set_new(o, "chain_estimate",
                        json_pack("{s:o,s:I,s:I,s:o,s:o}", "horizon_s", num(st->chain_horizon_s),
                                  "matches", (json_int_t)ch.n, "sooner",
                                  (json_int_t)st->chain_sooner, "saving_mean_s",
                                  num(ch.n ? ch.mean : 0.0), "saving_pct_of_wait_mean",
                                  num(ch.n && w.n && w.mean > 0 ? 100.0 * ch.mean / w.mean : 0.0)));
  }
  json_object_set_new(o, "hops_ms", hops_json(&st->hops));
  json_object_set_new(o, "updates", json_integer((json_int_t)st->updates));
  json_object_set_new(
      o, "traced_ms",
      st->hops.have ? json_pack("{s:o,s:o,s:o,s:I}", "p50", num(st->hops.total.p50_ms), "p99",
                                num(st->hops.total.p99_ms), "mean", num(st->hops.total.mean_ms),
                                "n", (json_int_t)st->hops.total.n)
                    : json_pack("{s:s}", "why", st->hops.why));
  json_object_set_new(o, "offers",
                      json_pack("{s:I,s:I,s:I,s:I}", "sent", (json_int_t)st->offers, "accepted",
                                (json_int_t)st->accepts, "declined", (json_int_t)st->declines,
                                "expired", (json_int_t)st->offers_expired));
  json_object_set_new(
      o, "connections",
      json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "peak_open", (json_int_t)st->peak_open,
                "connect_failed", (json_int_t)st->connect_failed, "closed_by_server",
                (json_int_t)st->closed_unexpectedly, "riders", (json_int_t)st->riders_connected,
                "reconnect_attempts", (json_int_t)st->reconnect_attempts, "reconnects",
                (json_int_t)st->reconnects, "resent", (json_int_t)st->resent, "trips_adopted",
                (json_int_t)st->resync_adopted, "pings_skipped", (json_int_t)st->pings_skipped));
  json_object_set_new(o, "input",
                      json_pack("{s:s,s:s,s:I,s:I,s:o,s:o,s:I}", "file", in->trips_file, "format",
                                in->format, "rows", (json_int_t)in->rows, "skipped_total",
                                (json_int_t)in->skipped_total, "skipped", skipped,
                                "first_skipped_lines", first, "no_duration",
                                (json_int_t)in->no_duration));
  json_object_set_new(o, "config",
                      json_pack("{s:s,s:I,s:f,s:f,s:f,s:f,s:f,s:I,s:I}", "url", in->url, "drivers",
                                (json_int_t)in->drivers, "speedup", in->speedup, "duration_s",
                                in->duration_s, "accept_prob", in->accept_prob, "cancel_prob",
                                in->cancel_prob, "start_tod_s", in->start_tod_s, "seed",
                                (json_int_t)in->seed, "trips_in_window",
                                (json_int_t)st->trips_in_window));
  json_t *cfg = json_object_get(o, "config");
  if (cfg) {
    json_object_set_new(cfg, "ping_period_s", num(in->ping_period_s));
    json_object_set_new(cfg, "ping_gap_s", num(in->ping_gap_s));
    json_object_set_new(cfg, "drive_pace", num(in->drive_pace));
    json_object_set_new(cfg, "motion", json_boolean(in->motion));
  }
  json_object_set_new(o, "updates", json_integer((json_int_t)st->updates));
  json_object_set_new(o, "replay_wall_s", num(st->replay_wall_s));
  json_object_set_new(o, "total_wall_s", num(st->total_wall_s));
  json_object_set_new(o, "loadgen_cpu_pct",
                      num(st->total_wall_s > 0 ? 100.0 * st->self_cpu_s / st->total_wall_s : NAN));
  int rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (rc != 0 && errno == 0) errno = EIO;
  return rc == 0 ? 0 : -1;
}

int lg_report_plot(const char *png, const lg_stats *st, char *err, size_t errcap) {
  size_t n = strlen(png) + 8;
  char *dat = malloc(n), *gp = malloc(n);
  int rc = -1;
  FILE *fp = NULL;
  if (!dat || !gp) {
    snprintf(err, errcap, "out of memory");
    goto out;
  }
  snprintf(dat, n, "%s.dat", png);
  snprintf(gp, n, "%s.gp", png);
  fp = fopen(dat, "w");
  if (!fp) {
    snprintf(err, errcap, "%s: %s", dat, strerror(errno));
    goto out;
  }
  fprintf(fp, "# second requested matched no_driver completed offer_p50_ms offer_p99_ms "
              "match_p50_ms match_p99_ms match_rate_pct updates\n");
  size_t cm = 0, cn = 0;
  for (size_t i = 0; i < st->n_secs; i++) {
    const lg_second *s = &st->secs[i];
    lg_summary o = lg_samples_summary(&s->offer_ms), m = lg_samples_summary(&s->match_ms);
    cm += s->matched;
    cn += s->no_driver;
    fprintf(fp, "%zu %u %u %u %u ", i, s->requested, s->matched, s->no_driver, s->completed);
    double v[5] = {o.p50, o.p99, m.p50, m.p99, pct(cm, cm + cn)};
    for (int k = 0; k < 5; k++) {
      if (isfinite(v[k]))
        fprintf(fp, "%.2f ", v[k]);
      else
        fprintf(fp, "NaN ");
    }
    fprintf(fp, "%u\n", s->updates);
  }
  if (fclose(fp) != 0) {
    fp = NULL;
    snprintf(err, errcap, "%s: write error", dat);
    goto out;
  }
  fp = fopen(gp, "w");
  if (!fp) {
    snprintf(err, errcap, "%s: %s", gp, strerror(errno));
    goto out;
  }
  fprintf(fp,
          "set terminal pngcairo size 1100,800 font ',10'\n"
          "set output '%s'\n"
          "set datafile missing 'NaN'\n"
          "set multiplot layout 2,1 title 'Meridian replay: latency and match rate over time'\n"
          "set grid\n"
          "set xlabel 'wall time since the replay started (s)'\n"
          "set ylabel 'latency (ms)'\n"
          "set logscale y\n"
          "set key top left\n"
          "plot '%s' u 1:6 w lp pt 7 ps 0.4 t 'request->offer p50', "
          "'' u 1:7 w lp pt 7 ps 0.4 t 'request->offer p99', "
          "'' u 1:8 w l t 'request->matched p50', '' u 1:9 w l t 'request->matched p99'\n"
          "unset logscale y\n"
          "set ylabel 'per second'\n"
          "set y2label 'matched (%%, cumulative)'\n"
          "set y2range [0:105]\n"
          "set y2tics\n"
          "plot '%s' u 1:2 w boxes fs solid 0.3 t 'requests/s', '' u 1:3 w l lw 2 t 'matched/s', "
          "'' u 1:4 w l t 'no driver/s', '' u 1:10 axes x1y2 w l lw 2 dt 2 t 'matched %% "
          "(cumulative)'\n"
          "unset multiplot\n",
          png, dat, dat);
  if (fclose(fp) != 0) {
    fp = NULL;
    snprintf(err, errcap, "%s: write error", gp);
    goto out;
  }
  fp = NULL;
  size_t cl = strlen(gp) + 64;
  char *cmd = malloc(cl);
  if (!cmd) {
    snprintf(err, errcap, "out of memory");
    goto out;
  }
  snprintf(cmd, cl, "gnuplot '%s' 2>&1", gp);
  int st2 = system(cmd);
  free(cmd);
  if (st2 == -1 || !WIFEXITED(st2) || WEXITSTATUS(st2) != 0) {
    snprintf(err, errcap, "gnuplot failed on %s (is gnuplot-nox installed?)", gp);
    goto out;
  }
  rc = 0;
out:
  if (fp) fclose(fp);
  free(dat);
  free(gp);
  return rc;
}
