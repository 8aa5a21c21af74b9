/*
 * hash.h: the one string hash of the tree, 64-bit FNV-1a, for hash tables (strmap, the
 * gateway's registries and budgets) and for content tags (migration checksums, snapshot
 * sources). Not cryptographic: never for secrets or untrusted keys that must not collide.
 *
 * Header only (static inline), so that the dispatch core, which links no Meridian library,
 * uses the same function.
 */
#ifndef MRD_HASH_H
#define MRD_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* FNV-1a's 64-bit offset basis: the seed of a plain hash. */
#define MRD_FNV1A64_SEED 1469598103934665603ULL

/* FNV-1a (64-bit) of n bytes at p, continuing from h (MRD_FNV1A64_SEED for a plain hash;
 * another seed to hash a prefix in, e.g. seed ^ role). */
static inline uint64_t mrd_fnv1a64(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}

/* The same over a NUL-terminated string. */
static inline uint64_t mrd_fnv1a64_str(uint64_t h, const char *s) {
  return mrd_fnv1a64(h, s, strlen(s));
}

#endif /* MRD_HASH_H */
