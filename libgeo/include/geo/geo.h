/*
 * geo.h: the types, error codes and allocation hooks that every libgeo module shares.
 *
 * libgeo is pure C11 with libm only: it never logs, never does I/O beyond its graph
 * snapshot file, and knows nothing of Kafka, Redis or SQL. Every function that can fail
 * returns a geo_err (GEO_OK = 0) and leaves its out-parameters untouched on failure;
 * yes/no questions return bool. Out of memory is an error code, never an abort.
 */
#ifndef GEO_GEO_H
#define GEO_GEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define GEO_EXPORT __attribute__((visibility("default")))
#else
#define GEO_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes. 0 is success; every other value names one kind of failure. */
typedef enum geo_err {
  GEO_OK = 0,
  GEO_EINVAL,       /* an argument is out of range, NaN, or NULL where it must not be */
  GEO_ENOMEM,       /* an allocation failed; the structure is unchanged and still valid */
  GEO_ENOTFOUND,    /* the id, node or edge asked for does not exist */
  GEO_EPARSE,       /* a string (geohash, ...) is malformed */
  GEO_ERANGE,       /* a result would not fit the caller's buffer, or a value overflows */
  GEO_EIO,          /* reading or writing a file failed (see errno) */
  GEO_EFORMAT,      /* a file is truncated, corrupt, or of another version */
  GEO_EUNREACHABLE, /* no path exists between the two points */
  GEO_ERR_COUNT
} geo_err;

/* A human-readable message for err; never NULL, static storage. */
GEO_EXPORT const char *geo_strerror(geo_err err);

/* A WGS84 position in degrees: lat in [-90, 90], lng in [-180, 180]. */
typedef struct geo_latlng {
  double lat;
  double lng;
} geo_latlng;

/* A latitude/longitude box in degrees. When min_lng > max_lng the box crosses the
 * antimeridian (it covers [min_lng, 180] and [-180, max_lng]). */
typedef struct geo_bbox {
  double min_lat, min_lng;
  double max_lat, max_lng;
} geo_bbox;

/* Allocation hooks. Every allocation in libgeo goes through these, so tests can count
 * allocations and inject failures. realloc_fn may be NULL: libgeo then uses
 * malloc_fn + memcpy + free_fn. Passing NULL restores the libc allocator. Not
 * thread-safe: set them before using the library. */
typedef struct geo_allocator {
  void *(*malloc_fn)(size_t size, void *ud);
  void *(*realloc_fn)(void *ptr, size_t size, void *ud);
  void (*free_fn)(void *ptr, void *ud);
  void *ud;
} geo_allocator;

GEO_EXPORT void geo_set_allocator(const geo_allocator *alloc);

/* True when the coordinates are finite and within [-90, 90] x [-180, 180]. */
GEO_EXPORT bool geo_latlng_is_valid(geo_latlng p);

#ifdef __cplusplus
}
#endif
#endif /* GEO_GEO_H */
