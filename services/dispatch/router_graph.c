/*
 * router_graph.c: dsp_router over geo_graph: segment snapping (geo_graph_snap, on the
 * graph's R-tree of road segments), one-to-many search between snapped places
 * (geo_route_one_to_many) and the calibrated ETA quote (geo_graph_eta_ms). A snapped
 * place keeps its arc in dsp_snap.data[0] and the bits of its fraction in data[1].
 *
 * Like index_quadtree.c it is a boundary between libgeo's positive geo_err and the core's
 * negative DSP_E*: every geo_err is mapped once, where it is returned, by dsp_err_of_geo.
 */
#define _POSIX_C_SOURCE 200809L
#include "router_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsp_geo_err.h"
#include "geo/geometry.h"
#include "geo/route.h"
#include "geo/snap.h"

struct dsp_graph_router {
  const geo_graph *g;
  double snap_max_m;
  bool use_ch;
  geo_route_state *st;
  geo_route_place *targets; /* grown to the largest n asked */
  uint32_t *times_ms;
  bool *off; /* origins with no road near enough */
  size_t cap;
  uint64_t searches;
};

int dsp_graph_router_new(const geo_graph *g, double snap_max_m, bool use_ch,
                         dsp_graph_router **out) {
  if (!g || !out || !(snap_max_m > 0) || !isfinite(snap_max_m)) return DSP_EINVAL;
  dsp_graph_router *r = calloc(1, sizeof *r);
  if (!r) return DSP_ENOMEM;
  r->g = g;
  r->snap_max_m = snap_max_m;
  r->use_ch = use_ch;
  int rc = dsp_err_of_geo(geo_route_state_new(g, &r->st));
  if (rc != DSP_OK) {
    dsp_graph_router_free(r);
    return rc;
  }
  *out = r;
  return DSP_OK;
}

void dsp_graph_router_free(dsp_graph_router *r) {
  if (!r) return;
  geo_route_state_free(r->st);
  free(r->targets);
  free(r->times_ms);
  free(r->off);
  free(r);
}

uint64_t dsp_graph_router_searches(const dsp_graph_router *r) { return r->searches; }

/* The nearest road place within snap_max_m of p: 0, DSP_ENOTFOUND when none (or p is not a
 * valid position: outside the service area either way), or the DSP_E* of another failure. */
static int snap_to_road(const dsp_graph_router *r, geo_latlng p, geo_snap *out) {
  geo_err e = geo_graph_snap(r->g, p, r->snap_max_m, out);
  return e == GEO_EINVAL ? DSP_ENOTFOUND : dsp_err_of_geo(e);
}

static int gr_snap(void *ud, geo_latlng p, dsp_snap *out) {
  dsp_graph_router *r = ud;
  geo_snap sn;
  int rc = snap_to_road(r, p, &sn);
  if (rc != 0) return rc;
  *out = (dsp_snap){.pos = sn.point, .off_road_m = sn.dist_m};
  out->data[0] = sn.place.arc;
  memcpy(&out->data[1], &sn.place.frac, sizeof sn.place.frac);
  return 0;
}

/* The road place a dsp_snap made by gr_snap stands for. */
static geo_route_place place_of(const dsp_snap *s) {
  geo_route_place pl = {.node = 0, .arc = (uint32_t)s->data[0]};
  memcpy(&pl.frac, &s->data[1], sizeof pl.frac);
  return pl;
}

/* Room for n origins in the scratch arrays. */
static int grow(dsp_graph_router *r, size_t n) {
  if (n <= r->cap) return 0;
  geo_route_place *t = realloc(r->targets, n * sizeof *t);
  if (!t) return DSP_ENOMEM;
  r->targets = t;
  uint32_t *tm = realloc(r->times_ms, n * sizeof *tm);
  if (!tm) return DSP_ENOMEM;
  r->times_ms = tm;
  bool *off = realloc(r->off, n * sizeof *off);
  if (!off) return DSP_ENOMEM;
  r->off = off;
  r->cap = n;
  return 0;
}

/* The one search from source to r->targets[0..n) (r->off[i]: no road, INFINITY). */
static int search(dsp_graph_router *r, geo_route_place source, size_t n, double max_eta_s,
                  double *out_eta_s) {
  double bound = max_eta_s * 1000.0;
  uint32_t bound_ms = bound >= (double)UINT32_MAX ? GEO_TIME_NONE : (uint32_t)bound;
  r->searches++;
  geo_err e = geo_route_one_to_many(r->st, r->g, r->use_ch, GEO_ROUTE_TO_SOURCE, &source,
                                    r->targets, n, bound_ms, r->times_ms, NULL);
  if (e != GEO_OK) return dsp_err_of_geo(e);
  for (size_t i = 0; i < n; i++)
    out_eta_s[i] =
        r->off[i] || r->times_ms[i] == GEO_TIME_NONE ? INFINITY : r->times_ms[i] / 1000.0;
  return 0;
}

static int gr_etas(void *ud, const dsp_snap *target, const geo_latlng *origins, size_t n,
                   double max_eta_s, double *out_eta_s) {
  dsp_graph_router *r = ud;
  if (n == 0) return 0;
  int grown = grow(r, n);
  if (grown != 0) return grown;
  /* Origins off the road get the pickup's own place as a stand-in and INFINITY after. */
  geo_route_place source = place_of(target);
  for (size_t i = 0; i < n; i++) {
    geo_snap sn;
    int rc = snap_to_road(r, origins[i], &sn);
    if (rc != 0 && rc != DSP_ENOTFOUND) return rc;
    r->off[i] = rc == DSP_ENOTFOUND;
    r->targets[i] = r->off[i] ? source : sn.place;
  }
  return search(r, source, n, max_eta_s, out_eta_s);
}

/* ---- moving drivers: where a driver is now, from his last ping's heading, speed and age */

/* The i-th point of arc a's polyline (0 = tail, count-1 = head). */
static geo_latlng arc_vertex(const geo_graph *g, uint32_t a, size_t i, size_t count,
                             const geo_latlng *shape) {
  if (i == 0) return geo_graph_node_pos(g, geo_graph_arc_tail(g, a));
  if (i == count - 1) return geo_graph_node_pos(g, geo_graph_arc_head(g, a));
  return shape[i - 1];
}

/* The direction of travel on arc a at fraction frac of its length (the bearing of the
 * polyline's piece there), degrees. */
static double arc_bearing_at(const geo_graph *g, uint32_t a, double frac) {
  size_t ns;
  const geo_latlng *shape = geo_graph_arc_shape(g, a, &ns);
  size_t count = ns + 2;
  double total = 0;
  for (size_t i = 0; i + 1 < count; i++)
    total +=
        geo_haversine_m(arc_vertex(g, a, i, count, shape), arc_vertex(g, a, i + 1, count, shape));
  double want = frac * total, acc = 0;
  for (size_t i = 0; i + 1 < count; i++) {
    geo_latlng u = arc_vertex(g, a, i, count, shape), v = arc_vertex(g, a, i + 1, count, shape);
    double len = geo_haversine_m(u, v);
    if ((acc + len >= want || i + 2 == count) && len > 0) return geo_bearing_deg(u, v);
    acc += len;
  }
  return geo_bearing_deg(geo_graph_node_pos(g, geo_graph_arc_tail(g, a)),
                         geo_graph_node_pos(g, geo_graph_arc_head(g, a)));
}

/* |a - b| between two bearings, in [0, 180]. */
static double angle_between(double a, double b) {
  double d = fmod(fabs(a - b), 360.0);
  return d > 180 ? 360 - d : d;
}

#define TURN_AHEAD_MAX_DEG 100.0 /* a road leaving more sharply is not "straight on" */
#define HEADING_ON_ROAD_DEG 60.0 /* a heading this far from the road: not moving along it */
#define PREDICT_MAX_ARCS 64

geo_route_place dsp_graph_predict_place(const geo_graph *g, geo_route_place at, double heading_deg,
                                        double speed_mps, double age_s) {
  if (at.arc == GEO_ARC_NONE || !(heading_deg >= 0 && heading_deg < 360)) return at;
  /* the direction of the road he drives: the arc or its twin, whichever his heading fits */
  uint32_t a = at.arc;
  double frac = at.frac;
  double off = angle_between(heading_deg, arc_bearing_at(g, a, frac));
  uint32_t twin = geo_graph_arc_twin(g, a);
  if (twin != GEO_ARC_NONE) {
    double off_twin = angle_between(heading_deg, arc_bearing_at(g, twin, 1.0 - frac));
    if (off_twin < off) {
      a = twin;
      frac = 1.0 - frac;
      off = off_twin;
    }
  }
  geo_route_place out = {0, a, frac};
  if (off > HEADING_ON_ROAD_DEG || !(age_s > 0)) return out; /* turning, or no time passed */
  double len = geo_graph_arc_length_m(g, a);
  double v = speed_mps;
  if (!(v >= 0) || !isfinite(v)) { /* no speed sent: the road's (calibrated) speed */
    uint32_t t_ms = geo_graph_arc_time_ms(g, a);
    v = t_ms > 0 ? len / (t_ms / 1000.0) : 0;
  }
  double left_m = v * age_s;
  for (int step = 0; step < PREDICT_MAX_ARCS && left_m > 0; step++) {
    double rest_m = (1.0 - frac) * len;
    if (left_m <= rest_m || len <= 0) {
      if (len > 0) frac += left_m / len;
      break;
    }
    left_m -= rest_m;
    /* at the arc's head: straight on, the road leaving closest to his direction (no U-turn) */
    double in_deg = arc_bearing_at(g, a, 1.0);
    uint32_t head = geo_graph_arc_head(g, a), first, end, next = GEO_ARC_NONE;
    uint32_t back = geo_graph_arc_twin(g, a);
    double best = TURN_AHEAD_MAX_DEG;
    geo_graph_out_arcs(g, head, &first, &end);
    for (uint32_t b = first; b < end; b++) {
      if (b == back) continue;
      double turn = angle_between(in_deg, arc_bearing_at(g, b, 0.0));
      if (turn < best) best = turn, next = b;
    }
    if (next == GEO_ARC_NONE) { /* a dead end or only sharp turns: he waits at the corner */
      frac = 1.0;
      break;
    }
    a = next;
    frac = 0;
    len = geo_graph_arc_length_m(g, a);
  }
  out.arc = a;
  out.frac = frac < 0 ? 0 : (frac > 1 ? 1 : frac);
  return out;
}

static int gr_etas_moving(void *ud, const dsp_snap *target, const geo_latlng *origins,
                          const dsp_motion *motion, size_t n, double max_eta_s, double *out_eta_s) {
  dsp_graph_router *r = ud;
  if (n == 0) return 0;
  int grown = grow(r, n);
  if (grown != 0) return grown;
  geo_route_place source = place_of(target);
  for (size_t i = 0; i < n; i++) {
    geo_snap sn;
    int rc = snap_to_road(r, origins[i], &sn);
    if (rc != 0 && rc != DSP_ENOTFOUND) return rc;
    r->off[i] = rc == DSP_ENOTFOUND;
    if (r->off[i]) {
      r->targets[i] = source;
      continue;
    }
    const dsp_motion *m = motion ? &motion[i] : NULL;
    r->targets[i] =
        m ? dsp_graph_predict_place(r->g, sn.place, m->heading_deg, m->speed_mps, m->age_s)
          : sn.place;
  }
  return search(r, source, n, max_eta_s, out_eta_s);
}

int dsp_local_hour_weekday(int64_t unix_ms, int *hour, int *weekday) {
  time_t t = (time_t)(unix_ms >= 0 ? unix_ms / 1000 : -((-unix_ms + 999) / 1000));
  struct tm tm;
  if (!localtime_r(&t, &tm)) return DSP_ERANGE; /* EOVERFLOW: beyond the calendar */
  *hour = tm.tm_hour;
  *weekday = tm.tm_wday;
  return 0;
}

static double gr_quote(void *ud, double route_s, int64_t at_ms) {
  dsp_graph_router *r = ud;
  if (!isfinite(route_s) || route_s < 0) return route_s;
  int hour = -1, weekday = -1; /* out of range: route time + trip base */
  dsp_local_hour_weekday(at_ms, &hour, &weekday);
  double ms = route_s * 1000.0;
  uint32_t t = ms >= (double)UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)llround(ms);
  return geo_graph_eta_ms(r->g, t, hour, weekday) / 1000.0;
}

dsp_router dsp_graph_router_iface(dsp_graph_router *r) {
  return (dsp_router){.ud = r,
                      .snap = gr_snap,
                      .etas_to = gr_etas,
                      .quote_eta_s = gr_quote,
                      .etas_to_moving = gr_etas_moving};
}
