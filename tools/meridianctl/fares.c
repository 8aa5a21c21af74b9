/*
 * fares.c: `meridianctl fares report`: how close Meridian's metered fare comes to the
 * meter's, on NYC TLC yellow-taxi trip records (the CSV format meridian-loadgen reads, with
 * its `fare_amount` column: the meter's time-and-distance fare, without surcharges, tips,
 * tolls and taxes). Each trip is priced exactly as meridian-trips prices a ride: pickup and
 * drop-off snapped to the calibrated road graph, the fastest route between them, its legs
 * timed by the calibrated ETA at the pickup's hour and weekday (fare_route.h), the card in
 * force on the pickup date (or the one given with --tariff). The figure is the median of
 * |metered - fare_amount| / fare_amount. Nothing is fitted here: the cards are the TLC's
 * published ones (data/tariffs/), the graph's calibration is the ETA's.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fare.h"
#include "fare_route.h"
#include "geo/ch.h"
#include "geo/route.h"
#include "geo/snap.h"
#include "geo/snapshot.h"
#include "mctl.h"
#include "trips_csv.h"

#define SNAP_MAX_M 100.0 /* an end farther from a road is off the map (as graph eta-report) */

enum { SK_NO_FARE, SK_RATE, SK_NO_DATE, SK_NO_CARD, SK_SNAP, SK_ROUTE, SK_COUNT };
static const char *const SK_NAMES[SK_COUNT] = {"no_fare_amount", "not_standard_rate",
                                               "no_date",        "no_card_for_date",
                                               "off_graph",      "unroutable"};

static void usage(FILE *f) {
  fprintf(f,
          "usage: meridianctl fares report --trips CSV [--tariff FILE] [--json]\n"
          "                                [--graph SNAPSHOT] [--tariffs DIR]\n\n"
          "Prices every trip of a NYC TLC yellow-taxi CSV (pickup/drop-off coordinates and\n"
          "datetimes, fare_amount) on the calibrated road graph and prints the median absolute\n"
          "%% error of the metered fare against fare_amount. Trips whose RatecodeID is not 1\n"
          "(flat airport fares, negotiated fares), without fare_amount, or with an end more\n"
          "than %.0f m from a road are skipped and counted.\n\n"
          "  --trips CSV        the trip records (required)\n"
          "  --tariff FILE      price every trip with this card (default: each trip with the\n"
          "                     card in force on its pickup date, from --tariffs)\n"
          "  --json             one JSON object: n, median_abs_pct, mean_abs_pct, p90_abs_pct,\n"
          "                     median_pct (signed), skipped, by_tariff\n"
          "  --graph SNAPSHOT   calibrated graph snapshot (default: $MERIDIAN_GRAPH)\n"
          "  --tariffs DIR      the cards by first day (default: $MERIDIAN_TARIFFS or\n"
          "                     data/tariffs)\n"
          "  --per-trip FILE    also write one CSV line per priced trip: line, tariff,\n"
          "                     fare_amount_cents, metered_cents, route_m, eta_s, slow_s (time\n"
          "                     below the slow-traffic speed), real_duration_s and\n"
          "                     metered_real_time_cents (the same route priced over the trip's\n"
          "                     real duration: what is left is the route's, not the ETA's)\n",
          SNAP_MAX_M);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The q-quantile (0..1) of x[0..n) (sorted in place); NAN for n = 0. */
static double quantile(double *x, size_t n, double q) {
  if (n == 0) return NAN;
  qsort(x, n, sizeof *x, cmp_d);
  double pos = q * (double)(n - 1);
  size_t i = (size_t)pos;
  double fr = pos - (double)i;
  return i + 1 < n ? x[i] * (1 - fr) + x[i + 1] * fr : x[i];
}

typedef struct card_stat {
  const char *name;
  double *abs_pct;
  size_t n;
} card_stat;

static int report(int argc, char **argv) {
  const char *trips = NULL, *tariff = NULL, *graph = getenv("MERIDIAN_GRAPH"),
             *dir = getenv("MERIDIAN_TARIFFS");
  const char *per_trip = NULL;
  bool json = false;
  if (!dir || !*dir) dir = "data/tariffs";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--trips") == 0 && i + 1 < argc)
      trips = argv[++i];
    else if (strcmp(argv[i], "--tariff") == 0 && i + 1 < argc)
      tariff = argv[++i];
    else if (strcmp(argv[i], "--graph") == 0 && i + 1 < argc)
      graph = argv[++i];
    else if (strcmp(argv[i], "--tariffs") == 0 && i + 1 < argc)
      dir = argv[++i];
    else if (strcmp(argv[i], "--per-trip") == 0 && i + 1 < argc)
      per_trip = argv[++i];
    else if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "meridianctl fares report: unexpected argument %s (try --help)\n", argv[i]);
      return 2;
    }
  }
  if (!trips) {
    fprintf(stderr, "meridianctl fares report: --trips CSV is required (try --help)\n");
    return 2;
  }
  if (!graph || !*graph) {
    fprintf(stderr, "meridianctl fares report: no graph: give --graph SNAPSHOT or set "
                    "MERIDIAN_GRAPH (scripts/stack up writes it in .run/env)\n");
    return 2;
  }
  char err[512];
  mrd_tariff one;
  mrd_tariff_set set = {0};
  if (tariff) {
    if (mrd_tariff_load(tariff, &one, err, sizeof err) != 0) {
      fprintf(stderr, "meridianctl fares report: %s\n", err);
      return 1;
    }
  } else if (mrd_tariff_set_load_dir(dir, &set, err, sizeof err) != 0) {
    fprintf(stderr, "meridianctl fares report: %s\n", err);
    return 1;
  }
  int rc = 1;
  FILE *pt = NULL;
  lg_trip_set ts = {0};
  geo_graph *g = NULL;
  geo_route_state *st = NULL;
  double *abs_pct = NULL, *pct = NULL;
  mrd_fare_leg *legs = NULL;
  size_t legs_cap = 0;
  size_t n_cards = tariff ? 1 : set.n;
  card_stat *cs = calloc(n_cards, sizeof *cs);
  if (!cs) goto done;
  for (size_t i = 0; i < n_cards; i++) cs[i].name = tariff ? one.name : set.cards[i].name;
  if (lg_trips_load(trips, NULL, NULL, 1, &ts, err, sizeof err) != 0) {
    fprintf(stderr, "meridianctl fares report: %s\n", err);
    goto done;
  }
  geo_err ge = geo_snapshot_load(graph, &g);
  if (ge != GEO_OK) {
    fprintf(stderr, "meridianctl fares report: %s: %s\n", graph, geo_strerror(ge));
    goto done;
  }
  if (geo_route_state_new(g, &st) != GEO_OK) goto done;
  if (per_trip) {
    pt = fopen(per_trip, "w");
    if (!pt) {
      fprintf(stderr, "meridianctl fares report: %s: cannot write\n", per_trip);
      goto done;
    }
    fprintf(pt, "line,tariff,fare_amount_cents,metered_cents,route_m,eta_s,slow_s,"
                "real_duration_s,metered_real_time_cents\n");
  }
  abs_pct = malloc((ts.n + 1) * sizeof *abs_pct);
  pct = malloc((ts.n + 1) * sizeof *pct);
  for (size_t i = 0; i < n_cards; i++) cs[i].abs_pct = malloc((ts.n + 1) * sizeof(double));
  for (size_t i = 0; i < n_cards; i++)
    if (!cs[i].abs_pct) goto done;
  if (!abs_pct || !pct) goto done;
  size_t skipped[SK_COUNT] = {0}, n = 0;
  geo_route_algo algo = geo_ch_present(g) ? GEO_ROUTE_CH : GEO_ROUTE_DIJKSTRA;
  for (size_t i = 0; i < ts.n; i++) {
    const lg_trip *t = &ts.trips[i];
    if (i % 1000 == 0 && !json) fprintf(stderr, "fares report: %zu / %zu trips\r", i, ts.n);
    if (t->fare_amount_usd <= 0) {
      skipped[SK_NO_FARE]++;
      continue;
    }
    if (t->rate_code > 1) {
      skipped[SK_RATE]++;
      continue;
    }
    size_t card = 0;
    const mrd_tariff *tf = &one;
    if (!tariff) {
      int64_t day;
      if (t->year == 0 || !mrd_fare_civil_day(t->year, t->month, t->day, &day)) {
        skipped[SK_NO_DATE]++;
        continue;
      }
      tf = mrd_tariff_set_at(&set, day);
      if (!tf) {
        skipped[SK_NO_CARD]++;
        continue;
      }
      card = (size_t)(tf - set.cards);
    }
    geo_snap a, b;
    if (geo_graph_snap(g, (geo_latlng){t->pickup_lat, t->pickup_lon}, SNAP_MAX_M, &a) != GEO_OK ||
        geo_graph_snap(g, (geo_latlng){t->dropoff_lat, t->dropoff_lon}, SNAP_MAX_M, &b) != GEO_OK) {
      skipped[SK_SNAP]++;
      continue;
    }
    geo_route_result r;
    if (geo_route(st, g, algo, &a.place, &b.place, &r) != GEO_OK) {
      skipped[SK_ROUTE]++;
      continue;
    }
    size_t nl = 0;
    if (mrd_fare_route_legs(g, st, &r, t->hour, t->weekday, legs, legs_cap, &nl) != 0) {
      mrd_fare_leg *nlg = realloc(legs, nl * 2 * sizeof *nlg);
      if (!nlg) goto done;
      legs = nlg, legs_cap = nl * 2;
      if (mrd_fare_route_legs(g, st, &r, t->hour, t->weekday, legs, legs_cap, &nl) != 0) {
        skipped[SK_ROUTE]++;
        continue;
      }
    }
    mrd_fare f;
    mrd_fare_when w = {t->weekday, t->hour * 60 + t->minute};
    if (mrd_fare_price(tf, legs, nl, 1.0, w, 1.0, &f) != 0) {
      skipped[SK_ROUTE]++;
      continue;
    }
    if (pt) {
      /* the same legs over the real duration (each leg's share kept): the ETA taken out */
      long long real_cents = -1;
      mrd_fare fr;
      if (t->duration_s > 0 && f.time_s > 0 &&
          mrd_fare_price(tf, legs, nl, t->duration_s / f.time_s, w, 1.0, &fr) == 0)
        real_cents = (long long)fr.metered_cents;
      fprintf(pt, "%u,%s,%.0f,%lld,%.1f,%.1f,%.1f,%.0f,%lld\n", t->line, tf->name,
              t->fare_amount_usd * 100, (long long)f.metered_cents, f.distance_m, f.time_s,
              f.slow_time_s, t->duration_s, real_cents);
    }
    double truth = t->fare_amount_usd * 100;
    double e = ((double)f.metered_cents - truth) / truth * 100;
    pct[n] = e;
    abs_pct[n++] = fabs(e);
    cs[card].abs_pct[cs[card].n++] = fabs(e);
  }
  if (!json) fprintf(stderr, "%60s\r", "");
  size_t n_skipped = 0;
  for (int k = 0; k < SK_COUNT; k++) n_skipped += skipped[k];
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += abs_pct[i];
  double mean = n ? sum / (double)n : NAN;
  double med_signed = quantile(pct, n, 0.5);
  double p90 = quantile(abs_pct, n, 0.9);
  double med = quantile(abs_pct, n, 0.5);
  if (json) {
    printf("{\"trips_file\":\"%s\",\"tariff\":\"%s\",\"rows\":%zu,\"n\":%zu,"
           "\"median_abs_pct\":%.2f,\"mean_abs_pct\":%.2f,\"p90_abs_pct\":%.2f,"
           "\"median_pct\":%.2f,\"skipped\":{",
           trips, tariff ? one.name : "by_pickup_date", ts.rows, n, n ? med : 0.0, n ? mean : 0.0,
           n ? p90 : 0.0, n ? med_signed : 0.0);
    for (int k = 0; k < SK_COUNT; k++)
      printf("%s\"%s\":%zu", k ? "," : "", SK_NAMES[k], skipped[k]);
    printf(",\"out_of_file\":%zu},\"by_tariff\":{", ts.skipped_total);
    for (size_t i = 0; i < n_cards; i++) {
      double m = quantile(cs[i].abs_pct, cs[i].n, 0.5);
      printf("%s\"%s\":{\"n\":%zu,\"median_abs_pct\":%.2f}", i ? "," : "", cs[i].name, cs[i].n,
             cs[i].n ? m : 0.0);
    }
    printf("}}\n");
  } else {
    printf("Meridian fares report: %s (%s)\n", trips, lg_csv_format_name(ts.format));
    if (tariff)
      printf("  tariff        %s (every trip)\n", one.name);
    else
      printf("  tariff        the card in force on each pickup date (%s: %zu cards)\n", dir, set.n);
    printf("  trips         %zu rows, %zu priced; skipped %zu:", ts.rows, n,
           n_skipped + ts.skipped_total);
    for (int k = 0; k < SK_COUNT; k++)
      if (skipped[k]) printf(" %s %zu", SK_NAMES[k], skipped[k]);
    if (ts.skipped_total) printf(" bad_row %zu", ts.skipped_total);
    printf("\n");
    if (n) {
      printf("  metered fare vs fare_amount: median |error| %.1f%%, mean %.1f%%, p90 %.1f%%, "
             "median signed %+.1f%%\n",
             med, mean, p90, med_signed);
      for (size_t i = 0; i < n_cards; i++)
        if (cs[i].n)
          printf("    %-28s n %5zu  median |error| %5.1f%%\n", cs[i].name, cs[i].n,
                 quantile(cs[i].abs_pct, cs[i].n, 0.5));
    }
  }
  if (n == 0) {
    fprintf(stderr, "meridianctl fares report: no trip could be priced (a fare_amount column, "
                    "dated rows and ends on the graph are needed)\n");
    goto done;
  }
  rc = 0;
  if (pt && fclose(pt) != 0) {
    fprintf(stderr, "meridianctl fares report: %s: write error\n", per_trip);
    rc = 1;
  }
  pt = NULL;
done:
  if (pt) fclose(pt);
  if (rc != 0 && !cs) fprintf(stderr, "meridianctl fares report: out of memory\n");
  for (size_t i = 0; cs && i < n_cards; i++) free(cs[i].abs_pct);
  free(cs);
  free(legs);
  free(abs_pct);
  free(pct);
  geo_route_state_free(st);
  geo_graph_free(g);
  lg_trip_set_free(&ts);
  mrd_tariff_set_free(&set);
  return rc;
}

int mctl_fares_main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "report") == 0) return report(argc - 1, argv + 1);
  fprintf(stderr, "meridianctl fares: unknown command \"%s\" (try meridianctl fares --help)\n",
          argv[1]);
  return 2;
}
