/*
 * geometry.h: distances and directions on the WGS84 sphere approximation.
 *
 * Distances use a sphere of radius GEO_EARTH_RADIUS_M (the IUGG mean radius), which is
 * what haversine-based systems (Redis GEO, Tile38) use; the error against the ellipsoid is
 * up to about 0.5%. This module is not a geodesy library: no ellipsoidal (Vincenty) math.
 */
#ifndef GEO_GEOMETRY_H
#define GEO_GEOMETRY_H

#include "geo/geo.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GEO_EARTH_RADIUS_M 6371008.8

/* Great-circle distance in metres between a and b (haversine formula). Within 1e-14 relative
 * of the formula in long double (plus ~1e-9 m from rounding the inputs to radians);
 * symmetric to within that. Below 0.02 rad of latitude and longitude difference (~127 km)
 * it is evaluated with Taylor polynomials instead of libm, a few times faster. */
GEO_EXPORT double geo_haversine_m(geo_latlng a, geo_latlng b);

/* Initial bearing from a to b in degrees clockwise from north, in [0, 360). 0 when a == b. */
GEO_EXPORT double geo_bearing_deg(geo_latlng a, geo_latlng b);

/* The point reached from `from` after dist_m metres on the initial bearing bearing_deg.
 * The result's longitude is normalised to [-180, 180]. */
GEO_EXPORT geo_latlng geo_destination(geo_latlng from, double bearing_deg, double dist_m);

/* Fast equirectangular distance in metres, for pruning (the mean-latitude plane
 * approximation; the longitude difference is taken the short way round the antimeridian).
 * Error bound against geo_haversine_m, checked by tests/libgeo/test_geometry.c:
 *  - points at most 10 km apart, both with |lat| <= 80: within 0.001% (relative 1e-5);
 *  - points at most 1000 km apart, both with |lat| <= 70: within 1% (relative 1e-2);
 *  - no bound near the poles (it overestimates across a pole). Use geo_haversine_m where
 *    exactness matters; it is never used by libgeo's own exact searches. */
GEO_EXPORT double geo_equirect_m(geo_latlng a, geo_latlng b);

/* The smallest lat/lng box that contains every point within radius_m of centre.
 * Near a pole (the circle reaches it) the box spans every longitude [-180, 180]; across the
 * antimeridian min_lng > max_lng (see geo_bbox). Errors: GEO_EINVAL for an invalid centre or
 * a negative / non-finite radius. */
GEO_EXPORT geo_err geo_bbox_of_circle(geo_latlng centre, double radius_m, geo_bbox *out);

/* True when p lies inside box (borders included), handling boxes that cross the antimeridian. */
GEO_EXPORT bool geo_bbox_contains(geo_bbox box, geo_latlng p);

/* Normalise a longitude in degrees to [-180, 180). */
GEO_EXPORT double geo_normalize_lng(double lng);

/* Project p onto the segment a-b, working in a local equirectangular plane (accurate for
 * road-segment lengths, up to a few km). Writes the closest point on the segment to *proj,
 * its fraction along a->b in [0, 1] to *frac, and returns the haversine distance in metres
 * from p to *proj. proj and frac may be NULL. */
GEO_EXPORT double geo_project_on_segment(geo_latlng p, geo_latlng a, geo_latlng b, geo_latlng *proj,
                                         double *frac);

#ifdef __cplusplus
}
#endif
#endif /* GEO_GEOMETRY_H */
