/*
 * area.c: the service area from GeoJSON (see area.h). Each polygon keeps its rings as flat
 * lon/lat arrays and a bounding box that answers most points without touching the rings.
 * The point-in-polygon test is the classic crossing-number (even-odd) ray cast. A long ring
 * also keeps its edges sorted into latitude strips: a point's ray can only cross an edge that
 * spans its latitude, so the test reads the edges of the point's strip, not all of them
 * (the Manhattan boundary, 1,523 positions: 0.81 us a point scanning, 0.029 us by strips,
 * paid once per location by the gateway and once by the load generator).
 * gw_area_contains_scan reads every edge: the reference.
 */
#define _POSIX_C_SOURCE 200809L
#include "area.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ring {
  size_t n;   /* positions, the closing one included */
  double *xy; /* lon, lat pairs */
  /* Latitude strips (none for a short ring): strip k covers [y0 + k / inv_h, y0 + (k + 1) /
   * inv_h); strip_edge[strip_off[k] .. strip_off[k + 1]) are the edges whose latitude range
   * meets it, edge i joining position i - 1 (n - 1 for i = 0) to position i. */
  uint32_t nstrips;
  double y0, y1, inv_h;
  uint32_t *strip_off, *strip_edge;
} ring;

enum { RING_STRIP_MIN_N = 32 }; /* shorter rings are scanned whole */

typedef struct polygon {
  size_t nrings;
  ring *rings;
  double min_lon, min_lat, max_lon, max_lat;
} polygon;

/* The set of polygons; a point is in the area when it is in any of them. */
struct gw_area {
  size_t npolys;
  size_t cap;
  polygon *polys;
  size_t nvertices;
};

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t cap, const char *fmt,
                                                         ...) {
  if (!err || !cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

void gw_area_free(gw_area *area) {
  if (!area) return;
  for (size_t i = 0; i < area->npolys; i++) {
    for (size_t r = 0; r < area->polys[i].nrings; r++) {
      free(area->polys[i].rings[r].xy);
      free(area->polys[i].rings[r].strip_off);
      free(area->polys[i].rings[r].strip_edge);
    }
    free(area->polys[i].rings);
  }
  free(area->polys);
  free(area);
}

static uint32_t strip_of(const ring *r, double y) {
  double k = floor((y - r->y0) * r->inv_h); /* monotone in y: an edge's strips hold its points */
  if (!(k > 0)) return 0;
  return k >= (double)(r->nstrips - 1) ? r->nstrips - 1 : (uint32_t)k;
}

/* Sort r's edges into latitude strips, about one per two edges. -1: out of memory. */
static int build_strips(ring *r) {
  if (r->n < RING_STRIP_MIN_N || r->n > UINT32_MAX / 4) return 0;
  double y0 = INFINITY, y1 = -INFINITY;
  for (size_t i = 0; i < r->n; i++) {
    double y = r->xy[2 * i + 1];
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  if (!(y1 > y0)) return 0;
  r->nstrips = (uint32_t)(r->n / 2);
  r->y0 = y0;
  r->y1 = y1;
  r->inv_h = r->nstrips / (y1 - y0);
  r->strip_off = calloc((size_t)r->nstrips + 1, sizeof *r->strip_off);
  if (!r->strip_off) return -1;
  /* two passes: count each strip's edges, then place them */
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0, j = r->n - 1; i < r->n; j = i++) {
      double a = r->xy[2 * j + 1], b = r->xy[2 * i + 1];
      uint32_t k0 = strip_of(r, a < b ? a : b), k1 = strip_of(r, a < b ? b : a);
      for (uint32_t k = k0; k <= k1; k++) {
        if (pass == 0)
          r->strip_off[k + 1]++;
        else
          r->strip_edge[r->strip_off[k]++] = (uint32_t)i;
      }
    }
    if (pass == 0) {
      for (uint32_t k = 0; k < r->nstrips; k++) r->strip_off[k + 1] += r->strip_off[k];
      r->strip_edge = malloc((size_t)r->strip_off[r->nstrips] * sizeof *r->strip_edge);
      if (!r->strip_edge) return -1;
    }
  }
  /* the second pass advanced each start to the next strip's: shift them back */
  for (uint32_t k = r->nstrips; k > 0; k--) r->strip_off[k] = r->strip_off[k - 1];
  r->strip_off[0] = 0;
  return 0;
}

/* Append the polygon given as GeoJSON coordinates (an array of rings). */
static int add_polygon(gw_area *a, json_t *coords, char *err, size_t errcap) {
  if (!json_is_array(coords) || json_array_size(coords) == 0) {
    seterr(err, errcap, "a polygon must be a non-empty array of rings");
    return -1;
  }
  if (a->npolys == a->cap) {
    size_t ncap = a->cap ? a->cap * 2 : 8;
    polygon *np = realloc(a->polys, ncap * sizeof *np);
    if (!np) {
      seterr(err, errcap, "out of memory");
      return -1;
    }
    a->polys = np;
    a->cap = ncap;
  }
  polygon *p = &a->polys[a->npolys];
  memset(p, 0, sizeof *p);
  p->rings = calloc(json_array_size(coords), sizeof *p->rings);
  if (!p->rings) {
    seterr(err, errcap, "out of memory");
    return -1;
  }
  a->npolys++; /* counted now so gw_area_free releases what is built on failure */
  p->min_lon = p->min_lat = INFINITY;
  p->max_lon = p->max_lat = -INFINITY;
  size_t ri;
  json_t *jr;
  json_array_foreach(coords, ri, jr) {
    size_t n = json_array_size(jr);
    if (!json_is_array(jr) || n < 4) {
      seterr(err, errcap, "a ring must be an array of at least 4 positions");
      return -1;
    }
    ring *r = &p->rings[p->nrings];
    r->xy = malloc(2 * n * sizeof *r->xy);
    if (!r->xy) {
      seterr(err, errcap, "out of memory");
      return -1;
    }
    p->nrings++;
    r->n = n;
    size_t k;
    json_t *pos;
    json_array_foreach(jr, k, pos) {
      json_t *jx = json_array_get(pos, 0), *jy = json_array_get(pos, 1);
      if (!json_is_array(pos) || !json_is_number(jx) || !json_is_number(jy)) {
        seterr(err, errcap, "a position must be [lon, lat] numbers");
        return -1;
      }
      double x = json_number_value(jx), y = json_number_value(jy);
      if (!isfinite(x) || !isfinite(y) || x < -180 || x > 180 || y < -90 || y > 90) {
        seterr(err, errcap, "a position is out of range: [%g, %g]", x, y);
        return -1;
      }
      r->xy[2 * k] = x;
      r->xy[2 * k + 1] = y;
      if (x < p->min_lon) p->min_lon = x;
      if (x > p->max_lon) p->max_lon = x;
      if (y < p->min_lat) p->min_lat = y;
      if (y > p->max_lat) p->max_lat = y;
    }
    if (build_strips(r) != 0) {
      seterr(err, errcap, "out of memory");
      return -1;
    }
    a->nvertices += n;
  }
  return 0;
}

static int add_geometry(gw_area *a, json_t *g, int depth, char *err, size_t errcap) {
  if (depth > 8) {
    seterr(err, errcap, "GeoJSON nested too deeply");
    return -1;
  }
  const char *type = json_string_value(json_object_get(g, "type"));
  if (!json_is_object(g) || !type) {
    seterr(err, errcap, "a GeoJSON object must have a string \"type\"");
    return -1;
  }
  size_t i;
  json_t *item;
  if (strcmp(type, "Polygon") == 0)
    return add_polygon(a, json_object_get(g, "coordinates"), err, errcap);
  if (strcmp(type, "MultiPolygon") == 0) {
    json_t *coords = json_object_get(g, "coordinates");
    if (!json_is_array(coords)) {
      seterr(err, errcap, "MultiPolygon coordinates must be an array");
      return -1;
    }
    json_array_foreach(coords, i, item) {
      if (add_polygon(a, item, err, errcap)) return -1;
    }
    return 0;
  }
  if (strcmp(type, "Feature") == 0)
    return add_geometry(a, json_object_get(g, "geometry"), depth + 1, err, errcap);
  const char *key = strcmp(type, "FeatureCollection") == 0    ? "features"
                    : strcmp(type, "GeometryCollection") == 0 ? "geometries"
                                                              : NULL;
  if (!key) {
    seterr(err, errcap, "unsupported GeoJSON type \"%s\" (want polygons)", type);
    return -1;
  }
  json_t *list = json_object_get(g, key);
  if (!json_is_array(list)) {
    seterr(err, errcap, "%s needs an array \"%s\"", type, key);
    return -1;
  }
  json_array_foreach(list, i, item) {
    if (add_geometry(a, item, depth + 1, err, errcap)) return -1;
  }
  return 0;
}

gw_area *gw_area_from_geojson(const char *text, size_t len, char *err, size_t errcap) {
  json_error_t jerr;
  json_t *root = json_loadb(text, len, 0, &jerr);
  if (!root) {
    seterr(err, errcap, "bad GeoJSON at line %d: %s", jerr.line, jerr.text);
    return NULL;
  }
  gw_area *a = calloc(1, sizeof *a);
  if (!a) {
    json_decref(root);
    seterr(err, errcap, "out of memory");
    return NULL;
  }
  int rc = add_geometry(a, root, 0, err, errcap);
  json_decref(root);
  if (rc == 0 && a->npolys == 0) {
    seterr(err, errcap, "the GeoJSON holds no polygon");
    rc = -1;
  }
  if (rc) {
    gw_area_free(a);
    return NULL;
  }
  return a;
}

gw_area *gw_area_load(const char *path, char *err, size_t errcap) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    seterr(err, errcap, "%s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 1 << 16;
      if (ncap > (64u << 20)) { /* a service area is kilobytes; refuse absurd files */
        free(buf);
        fclose(f);
        seterr(err, errcap, "%s: larger than 64 MiB", path);
        return NULL;
      }
      char *nb = realloc(buf, ncap);
      if (!nb) {
        free(buf);
        fclose(f);
        seterr(err, errcap, "out of memory");
        return NULL;
      }
      buf = nb;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  int ioerr = ferror(f);
  fclose(f);
  if (ioerr) {
    free(buf);
    seterr(err, errcap, "%s: read error", path);
    return NULL;
  }
  char inner[200];
  gw_area *a = gw_area_from_geojson(buf, len, inner, sizeof inner);
  free(buf);
  if (!a) seterr(err, errcap, "%s: %s", path, inner);
  return a;
}

/* Does the horizontal ray from (x, y) to +infinity cross edge i of r (from position j)? */
static inline bool crosses(const double *v, size_t i, size_t j, double x, double y) {
  double xi = v[2 * i], yi = v[2 * i + 1], xj = v[2 * j], yj = v[2 * j + 1];
  return (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi;
}

/* Crossing number of that ray with ring r, odd or even: every edge (scan), or only those of
 * y's strip, which are all the edges the ray can cross (the same arithmetic, edge by edge). */
static bool ring_odd(const ring *r, double x, double y, bool scan) {
  bool in = false;
  const double *v = r->xy;
  if (scan || r->nstrips == 0) {
    for (size_t i = 0, j = r->n - 1; i < r->n; j = i++)
      if (crosses(v, i, j, x, y)) in = !in;
    return in;
  }
  if (y < r->y0 || y > r->y1) return false;
  uint32_t k = strip_of(r, y);
  for (uint32_t e = r->strip_off[k]; e < r->strip_off[k + 1]; e++) {
    size_t i = r->strip_edge[e];
    if (crosses(v, i, i ? i - 1 : r->n - 1, x, y)) in = !in;
  }
  return in;
}

static bool contains(const gw_area *area, double lat, double lon, bool scan) {
  if (!area || !isfinite(lat) || !isfinite(lon)) return false;
  for (size_t i = 0; i < area->npolys; i++) {
    const polygon *p = &area->polys[i];
    if (lon < p->min_lon || lon > p->max_lon || lat < p->min_lat || lat > p->max_lat) continue;
    bool in = false;
    for (size_t r = 0; r < p->nrings; r++) {
      if (ring_odd(&p->rings[r], lon, lat, scan)) in = !in;
    }
    if (in) return true;
  }
  return false;
}

bool gw_area_contains(const gw_area *area, double lat, double lon) {
  return contains(area, lat, lon, false);
}

bool gw_area_contains_scan(const gw_area *area, double lat, double lon) {
  return contains(area, lat, lon, true);
}

size_t gw_area_polygon_count(const gw_area *area) { return area ? area->npolys : 0; }
size_t gw_area_vertex_count(const gw_area *area) { return area ? area->nvertices : 0; }
