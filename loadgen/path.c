/*
 * path.c: routes turned into timed points (path.h).
 */
#include "path.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geometry.h"

static int push(lg_path *p, geo_latlng pos, double t_ms, uint32_t arc, double frac) {
  if (p->n == p->cap) {
    size_t ncap = p->cap ? p->cap * 2 : 64;
    lg_path_pt *np = realloc(p->pts, ncap * sizeof *np);
    if (!np) return -1;
    p->pts = np;
    p->cap = ncap;
  }
  p->pts[p->n++] = (lg_path_pt){pos, t_ms, arc, frac};
  return 0;
}

/* The i-th vertex of arc a's polyline (0 = tail, count-1 = head). */
static geo_latlng vertex(const geo_graph *g, uint32_t a, size_t i, size_t count,
                         const geo_latlng *shape) {
  if (i == 0) return geo_graph_node_pos(g, geo_graph_arc_tail(g, a));
  if (i == count - 1) return geo_graph_node_pos(g, geo_graph_arc_head(g, a));
  return shape[i - 1];
}

/* Length of arc a's polyline, m. */
static double poly_len(const geo_graph *g, uint32_t a) {
  size_t ns;
  const geo_latlng *shape = geo_graph_arc_shape(g, a, &ns);
  size_t count = ns + 2;
  double len = 0;
  for (size_t i = 0; i + 1 < count; i++)
    len += geo_haversine_m(vertex(g, a, i, count, shape), vertex(g, a, i + 1, count, shape));
  return len;
}

geo_latlng lg_place_pos(const geo_graph *g, const geo_route_place *pl) {
  if (pl->arc == GEO_ARC_NONE) return geo_graph_node_pos(g, pl->node);
  size_t ns;
  uint32_t a = pl->arc;
  const geo_latlng *shape = geo_graph_arc_shape(g, a, &ns);
  size_t count = ns + 2;
  double total = poly_len(g, a), want = pl->frac * total, acc = 0;
  for (size_t i = 0; i + 1 < count; i++) {
    geo_latlng u = vertex(g, a, i, count, shape), v = vertex(g, a, i + 1, count, shape);
    double s = geo_haversine_m(u, v);
    if (acc + s >= want && s > 0) {
      double k = (want - acc) / s;
      return (geo_latlng){u.lat + (v.lat - u.lat) * k, u.lng + (v.lng - u.lng) * k};
    }
    acc += s;
  }
  return geo_graph_node_pos(g, geo_graph_arc_head(g, a));
}

/* Append the part [f0, f1] of arc a, starting at time t0; returns the time at its end. */
static int emit_arc(lg_path *p, const geo_graph *g, uint32_t a, double f0, double f1, double t0,
                    double *t_end) {
  size_t ns;
  const geo_latlng *shape = geo_graph_arc_shape(g, a, &ns);
  size_t count = ns + 2;
  double total = poly_len(g, a);
  double time = geo_graph_arc_time_ms(g, a);
  geo_route_place pl0 = {0, a, f0};
  /* every arc starts with its own point, so a step of the path never spans two arcs */
  if (push(p, lg_place_pos(g, &pl0), t0, a, f0) != 0) return -1;
  /* interior vertices strictly between f0 and f1 */
  double acc = 0;
  for (size_t i = 1; i + 1 < count && total > 0; i++) {
    acc += geo_haversine_m(vertex(g, a, i - 1, count, shape), vertex(g, a, i, count, shape));
    double f = acc / total;
    if (f > f0 && f < f1 && push(p, vertex(g, a, i, count, shape), t0 + (f - f0) * time, a, f) != 0)
      return -1;
  }
  geo_route_place pl1 = {0, a, f1};
  double t1 = t0 + (f1 - f0) * time;
  if (push(p, lg_place_pos(g, &pl1), t1, a, f1) != 0) return -1;
  p->length_m += (f1 - f0) * geo_graph_arc_length_m(g, a);
  *t_end = t1;
  return 0;
}

/* The fraction on arc a where place pl is, if pl lies on a or its twin; -1 otherwise. */
static double frac_on(const geo_graph *g, uint32_t a, const geo_route_place *pl, bool at_tail) {
  if (pl->arc == GEO_ARC_NONE) {
    uint32_t v = at_tail ? geo_graph_arc_tail(g, a) : geo_graph_arc_head(g, a);
    return v == pl->node ? (at_tail ? 0.0 : 1.0) : -1.0;
  }
  if (pl->arc == a) return pl->frac;
  if (geo_graph_arc_twin(g, a) == pl->arc) return 1.0 - pl->frac;
  return -1.0;
}

geo_err lg_path_build(lg_path *p, const geo_graph *g, const uint32_t *arcs, size_t n_arcs,
                      const geo_route_place *from, const geo_route_place *to) {
  lg_path q = {0};
  q.origin = *from;
  if (n_arcs == 0) {
    geo_latlng pos = lg_place_pos(g, from);
    q.origin = *from;
    if (push(&q, pos, 0, from->arc, from->arc == GEO_ARC_NONE ? 0 : from->frac) != 0)
      return GEO_ENOMEM;
  } else {
    double t = 0;
    for (size_t i = 0; i < n_arcs; i++) {
      uint32_t a = arcs[i];
      double f0 = 0, f1 = 1;
      if (i == 0) {
        f0 = frac_on(g, a, from, true);
        if (f0 < 0) goto inval;
      }
      if (i + 1 == n_arcs) {
        f1 = frac_on(g, a, to, false);
        if (f1 < 0) goto inval;
      }
      if (f1 < f0) goto inval;
      if (emit_arc(&q, g, a, f0, f1, t, &t) != 0) {
        lg_path_close(&q);
        return GEO_ENOMEM;
      }
    }
    q.total_ms = t;
  }
  lg_path_close(p);
  *p = q;
  return GEO_OK;
inval:
  lg_path_close(&q);
  return GEO_EINVAL;
}

geo_err lg_path_route(lg_path *p, const geo_graph *g, geo_route_state *st,
                      const geo_route_place *from, const geo_route_place *to) {
  geo_route_result r;
  geo_err e = geo_route(st, g, GEO_ROUTE_CH, from, to, &r);
  if (e == GEO_EINVAL) e = geo_route(st, g, GEO_ROUTE_ASTAR, from, to, &r);
  if (e != GEO_OK) return e;
  size_t n;
  const uint32_t *arcs = geo_route_path_arcs(st, &n);
  return lg_path_build(p, g, arcs, n, from, to);
}

void lg_path_at(const lg_path *p, double t_ms, geo_latlng *pos, geo_route_place *place) {
  size_t lo = 0, hi = p->n - 1;
  if (t_ms <= p->pts[0].t_ms || p->n == 1) {
    hi = 0;
  } else if (t_ms >= p->pts[hi].t_ms) {
    lo = hi;
  } else {
    while (hi - lo > 1) { /* pts[lo].t <= t < pts[hi].t */
      size_t mid = (lo + hi) / 2;
      if (p->pts[mid].t_ms <= t_ms)
        lo = mid;
      else
        hi = mid;
    }
  }
  const lg_path_pt *a = &p->pts[lo], *b = &p->pts[hi];
  double k = (b->t_ms > a->t_ms) ? (t_ms - a->t_ms) / (b->t_ms - a->t_ms) : 0.0;
  if (k < 0) k = 0;
  if (k > 1) k = 1;
  /* the two points of a step are on one arc (each arc starts with its own point) */
  const lg_path_pt *on = (a->arc == b->arc) ? a : (k < 1 ? a : b);
  if (pos) {
    *pos = (geo_latlng){a->pos.lat + (b->pos.lat - a->pos.lat) * k,
                        a->pos.lng + (b->pos.lng - a->pos.lng) * k};
  }
  if (place) {
    if (p->n == 1) {
      *place = p->origin;
      return;
    }
    if (on->arc == GEO_ARC_NONE) {
      *place = p->origin;
      return;
    }
    double f = (a->arc == b->arc) ? a->frac + (b->frac - a->frac) * k : on->frac;
    place->node = 0;
    place->arc = on->arc;
    place->frac = f < 0 ? 0 : (f > 1 ? 1 : f);
  }
}

void lg_path_close(lg_path *p) {
  free(p->pts);
  memset(p, 0, sizeof *p);
}
