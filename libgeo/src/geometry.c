/* geometry.c: haversine, bearings, destination points, bounding boxes of circles. */
#include "geo/geometry.h"
#include "geo_internal.h"

#include <math.h>

#define DEG2RAD GEO__DEG2RAD
#define RAD2DEG (180.0 / M_PI)

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

double geo_normalize_lng(double lng) {
  if (lng >= -180.0 && lng < 180.0) return lng;
  double r = fmod(lng + 180.0, 360.0);
  if (r < 0) r += 360.0;
  return r - 180.0;
}

/* See geo_internal.h: the polynomial path and this libm path are one function. */
geo__hav_origin geo__hav_origin_of(geo_latlng a) {
  double p1 = a.lat * GEO__DEG2RAD;
  return (geo__hav_origin){a, p1, cos(p1), sin(p1)};
}

double geo__hav_slow_m(const geo__hav_origin *o, double p2, double dp, double dl) {
  double s1 = sin(dp * 0.5), s2 = sin(dl * 0.5);
  double h = s1 * s1 + o->cos_a * cos(p2) * s2 * s2;
  if (h > 1.0) h = 1.0;
  return 2.0 * GEO_EARTH_RADIUS_M * asin(sqrt(h));
}

double geo_haversine_m(geo_latlng a, geo_latlng b) {
  geo__hav_origin o = geo__hav_origin_of(a);
  return geo__hav_m(&o, b);
}

double geo_bearing_deg(geo_latlng a, geo_latlng b) {
  double p1 = a.lat * DEG2RAD, p2 = b.lat * DEG2RAD, dl = (b.lng - a.lng) * DEG2RAD;
  double y = sin(dl) * cos(p2);
  double x = cos(p1) * sin(p2) - sin(p1) * cos(p2) * cos(dl);
  if (x == 0.0 && y == 0.0) return 0.0;
  double deg = atan2(y, x) * RAD2DEG;
  deg = fmod(deg + 360.0, 360.0);
  return deg >= 360.0 ? 0.0 : deg;
}

geo_latlng geo_destination(geo_latlng from, double bearing_deg, double dist_m) {
  double d = dist_m / GEO_EARTH_RADIUS_M, th = bearing_deg * DEG2RAD;
  double p1 = from.lat * DEG2RAD, l1 = from.lng * DEG2RAD;
  double sp2 = sin(p1) * cos(d) + cos(p1) * sin(d) * cos(th);
  if (sp2 > 1.0) sp2 = 1.0;
  if (sp2 < -1.0) sp2 = -1.0;
  double p2 = asin(sp2);
  double l2 = l1 + atan2(sin(th) * sin(d) * cos(p1), cos(d) - sin(p1) * sp2);
  double lng = geo_normalize_lng(l2 * RAD2DEG);
  return (geo_latlng){p2 * RAD2DEG, lng == -180.0 && l2 > 0 ? 180.0 : lng};
}

double geo_equirect_m(geo_latlng a, geo_latlng b) {
  double dl = b.lng - a.lng;
  if (dl > 180.0) dl -= 360.0;
  if (dl < -180.0) dl += 360.0;
  double x = dl * DEG2RAD * cos((a.lat + b.lat) * 0.5 * DEG2RAD);
  double y = (b.lat - a.lat) * DEG2RAD;
  return GEO_EARTH_RADIUS_M * sqrt(x * x + y * y);
}

geo_err geo_bbox_of_circle(geo_latlng c, double radius_m, geo_bbox *out) {
  if (!geo_latlng_is_valid(c) || !isfinite(radius_m) || radius_m < 0 || out == NULL)
    return GEO_EINVAL;
  double dlat = radius_m / GEO_EARTH_RADIUS_M * RAD2DEG;
  geo_bbox b;
  b.min_lat = c.lat - dlat;
  b.max_lat = c.lat + dlat;
  if (b.max_lat >= 90.0 || b.min_lat <= -90.0) {
    /* The circle reaches a pole: every longitude is within it. */
    b.min_lat = b.min_lat < -90.0 ? -90.0 : b.min_lat;
    b.max_lat = b.max_lat > 90.0 ? 90.0 : b.max_lat;
    b.min_lng = -180.0;
    b.max_lng = 180.0;
    *out = b;
    return GEO_OK;
  }
  /* Largest longitude offset of the circle (tangent meridians), exact on the sphere. */
  double s = sin(radius_m / GEO_EARTH_RADIUS_M) / cos(c.lat * DEG2RAD);
  if (s >= 1.0) {
    b.min_lng = -180.0;
    b.max_lng = 180.0;
    *out = b;
    return GEO_OK;
  }
  double dlng = asin(s) * RAD2DEG;
  if (dlng >= 180.0) {
    b.min_lng = -180.0;
    b.max_lng = 180.0;
  } else {
    b.min_lng = c.lng - dlng;
    b.max_lng = c.lng + dlng;
    if (b.min_lng < -180.0) b.min_lng += 360.0; /* crosses the antimeridian */
    if (b.max_lng > 180.0) b.max_lng -= 360.0;
  }
  *out = b;
  return GEO_OK;
}

bool geo_bbox_contains(geo_bbox box, geo_latlng p) {
  if (p.lat < box.min_lat || p.lat > box.max_lat) return false;
  if (box.min_lng <= box.max_lng) return p.lng >= box.min_lng && p.lng <= box.max_lng;
  return p.lng >= box.min_lng || p.lng <= box.max_lng;
}

double geo_project_on_segment(geo_latlng p, geo_latlng a, geo_latlng b, geo_latlng *proj,
                              double *frac) {
  double k = cos(p.lat * DEG2RAD);
  double ax = a.lng * k, ay = a.lat, bx = b.lng * k, by = b.lat, px = p.lng * k, py = p.lat;
  double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0.0;
  if (t < 0) t = 0;
  if (t > 1) t = 1;
  geo_latlng q = {a.lat + t * (b.lat - a.lat), a.lng + t * (b.lng - a.lng)};
  if (proj) *proj = q;
  if (frac) *frac = t;
  return geo_haversine_m(p, q);
}

/* Exact minimum great-circle distance from q to the box [min_lat, max_lat] x [min_lng,
 * max_lng] (a box that does not cross the antimeridian). When q's longitude is outside the
 * box, every point of the box is farther than its image on the box's side meridian nearest
 * to q in longitude (moving along a parallel towards q shortens the distance), so the answer
 * is the distance to that meridian segment: the foot of the perpendicular if it falls inside
 * the segment, otherwise the nearer end. */
double geo__box_min_dist_m(geo_latlng q, double min_lat, double min_lng, double max_lat,
                           double max_lng) {
  if (q.lng >= min_lng && q.lng <= max_lng) {
    if (q.lat > max_lat) return (q.lat - max_lat) * DEG2RAD * GEO_EARTH_RADIUS_M;
    if (q.lat < min_lat) return (min_lat - q.lat) * DEG2RAD * GEO_EARTH_RADIUS_M;
    return 0.0;
  }
  double dw = fabs(geo_normalize_lng(q.lng - min_lng));
  double de = fabs(geo_normalize_lng(q.lng - max_lng));
  double m = dw <= de ? min_lng : max_lng;
  double dl = (dw <= de ? dw : de) * DEG2RAD;
  double pq = q.lat * DEG2RAD;
  /* cos(d) along the meridian = sin(pq) sin(p) + cos(pq) cos(dl) cos(p): largest at p*. */
  double pstar = atan2(sin(pq), cos(pq) * cos(dl)) * RAD2DEG;
  double best = geo_haversine_m(q, (geo_latlng){min_lat, m});
  double d2 = geo_haversine_m(q, (geo_latlng){max_lat, m});
  if (d2 < best) best = d2;
  if (pstar > min_lat && pstar < max_lat) {
    double d3 = geo_haversine_m(q, (geo_latlng){pstar, m});
    if (d3 < best) best = d3;
  }
  return best;
}
