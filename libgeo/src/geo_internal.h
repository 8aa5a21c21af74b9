/* geo_internal.h: helpers private to libgeo (allocation through the hooks, shared geometry).
 * Nothing here is part of the public API; tests must not rely on it. */
#ifndef GEO_INTERNAL_H
#define GEO_INTERNAL_H

#include "geo/geo.h"

void *geo__malloc(size_t size);
void *geo__calloc(size_t n, size_t size); /* overflow-checked */
void *geo__realloc(void *ptr, size_t old_size, size_t new_size);
void geo__free(void *ptr);

/* Exact minimum great-circle distance in metres from q to a lat/lng box that does not cross
 * the antimeridian (0 when q is inside). A true lower bound for every point of the box. */
double geo__box_min_dist_m(geo_latlng q, double min_lat, double min_lng, double max_lat,
                           double max_lng);

/* geo_haversine_m(a, b) with cos_a = geo__cos_lat(a) computed once: bit-identical results. */
double geo__cos_lat(geo_latlng a);
double geo__haversine_cos_m(geo_latlng a, double cos_a, geo_latlng b);

#endif
