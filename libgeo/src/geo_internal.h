/* geo_internal.h: helpers private to libgeo (allocation through the hooks, shared geometry).
 * Nothing here is part of the public API; tests must not rely on it. */
#ifndef GEO_INTERNAL_H
#define GEO_INTERNAL_H

#include <math.h>

#include "geo/geo.h"
#include "geo/geometry.h"

#define GEO__DEG2RAD (3.14159265358979323846 / 180.0)

void *geo__malloc(size_t size);
void *geo__calloc(size_t n, size_t size); /* overflow-checked */
void *geo__realloc(void *ptr, size_t old_size, size_t new_size);
void geo__free(void *ptr);
/* Ask the kernel to back the whole 2 MiB pages inside [p, p + bytes) with huge pages (Linux
 * transparent huge pages in "madvise" mode; a no-op elsewhere and for regions under 2 MiB).
 * For large tables read at random, where a 4 KiB page costs a TLB miss on nearly every
 * access. Only a hint: the memory stays the allocator's. */
void geo__advise_huge(void *p, size_t bytes);

/* Exact minimum great-circle distance in metres from q to a lat/lng box that does not cross
 * the antimeridian (0 when q is inside). A true lower bound for every point of the box. */
double geo__box_min_dist_m(geo_latlng q, double min_lat, double min_lng, double max_lat,
                           double max_lng);

/* The one haversine implementation. geo_haversine_m(a, b) is geo__hav_m(&o, b) with o from
 * geo__hav_origin_of(a), so a search that prepares its origin once per query computes distances
 * bit-identical to geo_haversine_m.
 *
 * h = sin^2(dp/2) + cos(p1) cos(p2) sin^2(dl/2), d = 2R asin(sqrt(h)). When both angular
 * differences are at most 0.02 rad (about 127 km) every transcendental function is a short
 * Taylor polynomial whose truncation error is below 1e-18 relative: sin(x) to x^7, cos(p2)
 * as cos(p1) cos(dp) - sin(p1) sin(dp) with cos(dp) to dp^6 and sin(dp) to dp^7, asin(y) to
 * y^9 (y <= 0.0142). The result stays within a few ulps of the libm formula (tested against
 * it), at a fraction of the cost of four libm calls; beyond that range libm is used. */
typedef struct geo__hav_origin {
  geo_latlng a;
  double p1, cos_a, sin_a;
} geo__hav_origin;

geo__hav_origin geo__hav_origin_of(geo_latlng a);
double geo__hav_slow_m(const geo__hav_origin *o, double p2, double dp, double dl);

static inline double geo__sin_small(double x) {
  double x2 = x * x;
  return x + x * x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0)));
}

static inline double geo__hav_m(const geo__hav_origin *o, geo_latlng b) {
  double p2 = b.lat * GEO__DEG2RAD;
  double dp = p2 - o->p1, dl = (b.lng - o->a.lng) * GEO__DEG2RAD;
  if (!(fabs(dp) <= 0.02 && fabs(dl) <= 0.02)) return geo__hav_slow_m(o, p2, dp, dl);
  double s1 = geo__sin_small(dp * 0.5), s2 = geo__sin_small(dl * 0.5);
  double dp2 = dp * dp;
  double cos_dp = 1.0 + dp2 * (-0.5 + dp2 * (1.0 / 24.0 + dp2 * (-1.0 / 720.0)));
  double cos_p2 = o->cos_a * cos_dp - o->sin_a * geo__sin_small(dp);
  double h = s1 * s1 + o->cos_a * cos_p2 * s2 * s2;
  double y = sqrt(h), y2 = h;
  double as =
      y + y * y2 * (1.0 / 6.0 + y2 * (3.0 / 40.0 + y2 * (5.0 / 112.0 + y2 * (35.0 / 1152.0))));
  return 2.0 * GEO_EARTH_RADIUS_M * as;
}

#endif
