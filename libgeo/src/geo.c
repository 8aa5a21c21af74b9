/* geo.c: error strings, allocation hooks and validation shared by every libgeo module. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* madvise and MADV_HUGEPAGE under -std=c11 */
#endif
#include "geo_internal.h"

#include <stdint.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void *libc_malloc(size_t size, void *ud) {
  (void)ud;
  return malloc(size);
}
static void *libc_realloc(void *p, size_t size, void *ud) {
  (void)ud;
  return realloc(p, size);
}
static void libc_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

static geo_allocator g_alloc = {libc_malloc, libc_realloc, libc_free, NULL};

void geo_set_allocator(const geo_allocator *alloc) {
  if (alloc == NULL || alloc->malloc_fn == NULL || alloc->free_fn == NULL) {
    g_alloc = (geo_allocator){libc_malloc, libc_realloc, libc_free, NULL};
    return;
  }
  g_alloc = *alloc;
}

void *geo__malloc(size_t size) { return g_alloc.malloc_fn(size ? size : 1, g_alloc.ud); }

void geo__advise_huge(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t huge = (uintptr_t)2 << 20;
  uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), b = ((uintptr_t)p + bytes) & ~(huge - 1);
  if (b > a) (void)madvise((void *)a, b - a, MADV_HUGEPAGE); /* a hint: errors change nothing */
#else
  (void)p;
  (void)bytes;
#endif
}

void *geo__calloc(size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size) return NULL;
  void *p = geo__malloc(n * size);
  if (p && n * size > 0) memset(p, 0, n * size);
  return p;
}

void *geo__realloc(void *ptr, size_t old_size, size_t new_size) {
  if (g_alloc.realloc_fn) return g_alloc.realloc_fn(ptr, new_size ? new_size : 1, g_alloc.ud);
  void *p = geo__malloc(new_size);
  if (p == NULL) return NULL;
  if (ptr) {
    memcpy(p, ptr, old_size < new_size ? old_size : new_size);
    g_alloc.free_fn(ptr, g_alloc.ud);
  }
  return p;
}

void geo__free(void *ptr) {
  if (ptr) g_alloc.free_fn(ptr, g_alloc.ud);
}

const char *geo_strerror(geo_err err) {
  switch (err) {
  case GEO_OK: return "ok";
  case GEO_EINVAL: return "invalid argument";
  case GEO_ENOMEM: return "out of memory";
  case GEO_ENOTFOUND: return "not found";
  case GEO_EPARSE: return "malformed input";
  case GEO_ERANGE: return "out of range or buffer too small";
  case GEO_EIO: return "i/o error";
  case GEO_EFORMAT: return "bad file format (truncated, corrupt or wrong version)";
  case GEO_EUNREACHABLE: return "unreachable";
  default: return "unknown error";
  }
}

bool geo_latlng_is_valid(geo_latlng p) {
  return isfinite(p.lat) && isfinite(p.lng) && p.lat >= -90.0 && p.lat <= 90.0 && p.lng >= -180.0 &&
         p.lng <= 180.0;
}
