/* geo_internal.h: helpers private to libgeo (allocation through the hooks). */
#ifndef GEO_INTERNAL_H
#define GEO_INTERNAL_H

#include "geo/geo.h"

void *geo__malloc(size_t size);
void *geo__calloc(size_t n, size_t size); /* overflow-checked */
void *geo__realloc(void *ptr, size_t old_size, size_t new_size);
void geo__free(void *ptr);

#endif
