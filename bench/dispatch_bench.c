/*
 * dispatch_bench: match latency inside dispatch (a request consumed -> its offer produced)
 * with 5,000 available drivers in Manhattan and 200 requests/s, beside the time of the
 * one-to-many road search alone (the anchor: how close the whole match is to its routing
 * cost). The target: p99 under 10 ms.
 *
 * In process, on the real road graph snapshot (MERIDIAN_GRAPH or --graph): the dispatch
 * core with its production adapters (QuadTree index, graph router with the contraction
 * hierarchy, claims in memory: the Redis round trip of a claim is not in the figure), real
 * NYC taxi trips (data/trips/nyc-taxi-10k.csv): drivers start where trips 1..5000 ended,
 * requests are the pickups and drop-offs of the next trips. Time is virtual: a request every
 * 5 ms (200/s), every driver pings every 4 s, the tick runs every 100 ms, an offered driver
 * accepts at once and completes 120 s later, so the supply shrinks as in a busy hour. Measured
 * per request, in wall time: dsp_on_request plus encoding its outputs to protobuf (what
 * meridian-dispatch does before handing them to Kafka); and each one-to-many search the
 * matcher runs, timed inside the router. Not a test: it asserts nothing.
 *
 * usage: dispatch_bench [--graph PATH] [--trips CSV] [--drivers N] [--requests N] [--rps R]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "claims_mem.h"
#include "dispatch.h"
#include "dispatch_codec.h"
#include "geo/ch.h"
#include "geo/snapshot.h"
#include "index_quadtree.h"
#include "router_graph.h"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The router wrapped to time each one-to-many search. */
typedef struct timed_router {
  dsp_router inner;
  double *us;
  size_t n, cap;
} timed_router;

static int tr_snap(void *ud, geo_latlng p, dsp_snap *out) {
  timed_router *t = ud;
  return t->inner.snap(t->inner.ud, p, out);
}

static double tr_quote(void *ud, double route_s, int64_t at_ms) {
  timed_router *t = ud;
  return t->inner.quote_eta_s(t->inner.ud, route_s, at_ms);
}

static int tr_etas(void *ud, const dsp_snap *target, const geo_latlng *o, size_t n, double max_s,
                   double *out) {
  timed_router *t = ud;
  double t0 = now_us();
  int rc = t->inner.etas_to(t->inner.ud, target, o, n, max_s, out);
  if (t->n < t->cap) t->us[t->n++] = now_us() - t0;
  return rc;
}

typedef struct trip_pt {
  geo_latlng pickup, dropoff;
} trip_pt;

static size_t load_trips(const char *path, trip_pt *out, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[1024];
  size_t n = 0;
  if (!fgets(line, sizeof line, f)) {
    fclose(f);
    return 0;
  }
  while (n < cap && fgets(line, sizeof line, f)) {
    double v[4];
    char *p = line;
    for (int col = 0; col < 7 && p; col++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
    if (!p || sscanf(p, "%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3]) != 4) continue;
    out[n].pickup = (geo_latlng){v[1], v[0]};
    out[n].dropoff = (geo_latlng){v[3], v[2]};
    n++;
  }
  fclose(f);
  return n;
}

typedef struct busy {
  char trip[DSP_ID_MAX + 1], driver[DSP_ID_MAX + 1];
  int64_t done_ms;
} busy;

int main(int argc, char **argv) {
  const char *graph_path = getenv("MERIDIAN_GRAPH");
  const char *csv = "data/trips/nyc-taxi-10k.csv";
  size_t n_drivers = 5000, n_req = 3000;
  double rps = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--graph"))
      graph_path = argv[i + 1];
    else if (!strcmp(argv[i], "--trips"))
      csv = argv[i + 1];
    else if (!strcmp(argv[i], "--drivers"))
      n_drivers = strtoul(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--requests"))
      n_req = strtoul(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--rps"))
      rps = strtod(argv[i + 1], NULL);
    else {
      fprintf(stderr, "usage: dispatch_bench [--graph PATH] [--trips CSV] [--drivers N] "
                      "[--requests N] [--rps R]\n");
      return 2;
    }
  }
  if (!graph_path) {
    fprintf(stderr,
            "dispatch_bench: no graph (MERIDIAN_GRAPH or --graph; scripts/stack up writes one)\n");
    return 2;
  }
  trip_pt *trips = calloc(20000, sizeof *trips);
  size_t n_trips = load_trips(csv, trips, 20000);
  if (n_trips < n_drivers + 1) {
    fprintf(stderr, "dispatch_bench: %s has %zu trips, need more than %zu\n", csv, n_trips,
            n_drivers);
    return 2;
  }
  geo_graph *g = NULL;
  double t0 = now_us();
  if (geo_snapshot_load(graph_path, &g) != GEO_OK) {
    fprintf(stderr, "dispatch_bench: cannot load %s\n", graph_path);
    return 1;
  }
  fprintf(stderr, "graph %s loaded in %.1f ms (contraction hierarchy: %s)\n", graph_path,
          (now_us() - t0) / 1e3, geo_ch_present(g) ? "yes" : "no");
  dsp_graph_router *gr = NULL;
  dsp_qt_index *qi = NULL;
  dsp_claims_mem *cm = dsp_claims_mem_new();
  if (dsp_graph_router_new(g, 150, geo_ch_present(g), &gr) || dsp_qt_index_new(&qi) || !cm)
    return 1;
  timed_router tr = {.inner = dsp_graph_router_iface(gr), .cap = n_req * 8};
  tr.us = calloc(tr.cap, sizeof *tr.us);
  dsp_router rt = {.ud = &tr, .snap = tr_snap, .etas_to = tr_etas, .quote_eta_s = tr_quote};
  dsp_index ix = dsp_qt_index_iface(qi);
  dsp_claims cl = dsp_claims_mem_iface(cm);
  dsp_config cfg;
  dsp_config_default(&cfg);
  dsp_shard *s = NULL;
  if (dsp_shard_new(&cfg, &ix, &rt, &cl, &s) != DSP_OK) return 1;

  int64_t now = 1700000000000;
  char id[32];
  uint64_t *seq = calloc(n_drivers, sizeof *seq);
  srand(42);
  for (size_t i = 0; i < n_drivers; i++) { /* where trips ended, give or take 30 m */
    geo_latlng p = trips[i].dropoff;
    p.lat += ((rand() % 600) - 300) * 1e-7;
    p.lng += ((rand() % 600) - 300) * 1e-7;
    snprintf(id, sizeof id, "d%zu", i);
    dsp_location l = {.driver_id = id, .pos = p, .ts_ms = now, .seq = ++seq[i]};
    dsp_on_location(s, &l, now);
  }
  dsp_outputs_clear(s);
  dsp_stats st;
  dsp_stats_get(s, &st);
  fprintf(stderr, "%zu drivers indexed; %zu requests at %.0f/s (virtual time)\n",
          (size_t)st.drivers_indexed, n_req, rps);

  double *match_us = calloc(n_req, sizeof *match_us);
  size_t n_match = 0, offered = 0, no_driver = 0;
  busy *b = calloc(n_req, sizeof *b);
  size_t n_busy = 0, b_head = 0;
  int64_t step_ms = (int64_t)(1000.0 / rps);
  int64_t next_tick = now, next_ping = now;
  size_t ping_i = 0;
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  for (size_t r = 0; r < n_req; r++) {
    now += step_ms;
    /* pings: every driver once every 4 s, spread evenly */
    size_t pings = (size_t)((double)n_drivers * (double)step_ms / 4000.0);
    for (size_t k = 0; k < pings; k++, ping_i = (ping_i + 1) % n_drivers) {
      snprintf(id, sizeof id, "d%zu", ping_i);
      dsp_driver_view v;
      geo_latlng p = trips[ping_i].dropoff;
      if (dsp_driver_get(s, id, &v) == DSP_OK && v.in_index) p = v.pos;
      dsp_location l = {.driver_id = id, .pos = p, .ts_ms = now, .seq = ++seq[ping_i]};
      dsp_on_location(s, &l, now);
    }
    (void)next_ping;
    if (now >= next_tick) {
      dsp_tick(s, now);
      next_tick = now + 100;
    }
    /* trips that end now free their drivers */
    while (b_head < n_busy && b[b_head].done_ms <= now) {
      dsp_on_arrived(s, b[b_head].trip, b[b_head].driver, NULL, now);
      dsp_on_start(s, b[b_head].trip, b[b_head].driver, NULL, now);
      dsp_on_complete(s, b[b_head].trip, b[b_head].driver, NULL, now);
      b_head++;
    }
    dsp_outputs_clear(s);

    const trip_pt *tp = &trips[n_drivers + (r % (n_trips - n_drivers))];
    char req[32], rider[32];
    snprintf(req, sizeof req, "q%zu", r);
    snprintf(rider, sizeof rider, "r%zu", r);
    dsp_request q = {
        .request_id = req, .rider_id = rider, .pickup = tp->pickup, .dropoff = tp->dropoff};
    double a = now_us();
    dsp_on_request(s, &q, NULL, now);
    const dsp_output *o;
    size_t n = dsp_outputs(s, &o);
    const dsp_event *off = NULL;
    for (size_t i = 0; i < n; i++) {
      if (o[i].kind != DSP_OUT_EVENT) continue;
      mrd_dispatch_event ev;
      size_t len;
      dspc_event_to_proto(&o[i].u.event, &ev);
      mrd_dispatch_event_encode(&ev, buf, sizeof buf, &len);
      if (o[i].u.event.type == DSP_EV_OFFERED) off = &o[i].u.event;
    }
    double us = now_us() - a;
    if (off) {
      match_us[n_match++] = us;
      offered++;
      char offer[DSP_ID_MAX + 1];
      snprintf(offer, sizeof offer, "%s", off->offer_id);
      snprintf(b[n_busy].trip, sizeof b[0].trip, "%s", off->trip_id);
      snprintf(b[n_busy].driver, sizeof b[0].driver, "%s", off->driver_id);
      b[n_busy++].done_ms = now + 120000;
      dsp_on_accept(s, offer, b[n_busy - 1].driver, NULL, now);
    } else {
      no_driver++;
    }
    dsp_outputs_clear(s);
  }
  qsort(match_us, n_match, sizeof *match_us, cmp_d);
  qsort(tr.us, tr.n, sizeof *tr.us, cmp_d);
#define Q(v, n, q) ((n) ? (v)[(size_t)((double)((n)-1) * (q))] : NAN)
  double m50 = Q(match_us, n_match, 0.5), m95 = Q(match_us, n_match, 0.95),
         m99 = Q(match_us, n_match, 0.99);
  double s50 = Q(tr.us, tr.n, 0.5), s95 = Q(tr.us, tr.n, 0.95), s99 = Q(tr.us, tr.n, 0.99);
  dsp_stats_get(s, &st);
  fprintf(stderr, "\n%zu requests: %zu offered, %zu no_driver; %llu searches, %llu widenings\n",
          n_req, offered, no_driver, (unsigned long long)st.searches,
          (unsigned long long)st.widenings);
  fprintf(stderr, "  %-34s %10s %10s %10s %8s\n", "workload", "p50 us", "p95 us", "p99 us", "n");
  fprintf(stderr, "  %-34s %10.1f %10.1f %10.1f %8zu\n", "match: request -> offer encoded", m50,
          m95, m99, n_match);
  fprintf(stderr, "  %-34s %10.1f %10.1f %10.1f %8zu\n", "one-to-many search alone (anchor)", s50,
          s95, s99, tr.n);
  fprintf(stderr, "  target p99 < 10 ms: %s\n", m99 < 10000 ? "met" : "NOT met");
  char host[64] = "?";
  gethostname(host, sizeof host);
  printf(
      "{\"bench\": \"dispatch_bench\", \"machine\": \"%s, %ld cpus\", \"rows\": ["
      "{\"workload\": \"match_5000_drivers_200rps\", \"impl\": \"meridian\", \"unit\": \"us\", "
      "\"median\": %.2f, \"p95\": %.2f, \"p99\": %.2f, \"n\": %zu}, "
      "{\"workload\": \"match_5000_drivers_200rps\", \"impl\": \"one-to-many\", \"unit\": \"us\", "
      "\"median\": %.2f, \"p95\": %.2f, \"p99\": %.2f, \"n\": %zu}]}\n",
      host, sysconf(_SC_NPROCESSORS_ONLN), m50, m95, m99, n_match, s50, s95, s99, tr.n);
  dsp_shard_free(s);
  dsp_claims_mem_free(cm);
  dsp_qt_index_free(qi);
  dsp_graph_router_free(gr);
  geo_graph_free(g);
  free(trips);
  free(tr.us);
  free(seq);
  free(match_us);
  free(b);
  return 0;
}
