/*
 * shardmap.h: the shard map as a value (docs/shards.md): a list of geohash-string
 * ranges [start, end) -> shard, and the pure operations that rebalancing needs: check that
 * ranges tile the world, look a geohash up, give a range to another shard (splitting the
 * ranges it cuts and merging neighbours of one shard), and the difference between two maps
 * as moves. No I/O: loading from PostgreSQL is the callers' (meridianctl, meridian-dispatch).
 *
 * Boundaries compare as C strings (a Z-order curve): "" is the start of the world and "~"
 * (after every geohash character) its end. A boundary is "", "~" or a geohash prefix of at
 * most MRD_RANGE_KEY_MAX characters of the geohash alphabet; the strings of a prefix p are
 * [p, mrd_geohash_prefix_end(p)), so a range cut at prefix boundaries holds whole cells.
 * Not the gateway's routing map (services/gateway/shardmap.h), which is built from the same
 * rows and adds halo routing.
 */
#ifndef MRD_SHARDMAP_H
#define MRD_SHARDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MRD_RANGE_KEY_MAX 15 /* characters of a range boundary */
#define MRD_SHARDS_MAX 64    /* shards are 0..63: the partitions of the topics */

/* One row of shard_map: strings s with start <= s < end belong to shard. */
typedef struct mrd_shard_range {
  char start[MRD_RANGE_KEY_MAX + 1];
  char end[MRD_RANGE_KEY_MAX + 1];
  uint32_t shard;
} mrd_shard_range;

/* A map: n ranges in r (caller-allocated struct: mrd_shardmap_init / _close). Kept sorted by
 * start by every operation below except mrd_shardmap_add. */
typedef struct mrd_shardmap {
  mrd_shard_range *r;
  size_t n, cap;
} mrd_shardmap;

/* One difference between two maps: [start, end) was on shard from, is on shard to. */
typedef struct mrd_shard_move {
  char start[MRD_RANGE_KEY_MAX + 1];
  char end[MRD_RANGE_KEY_MAX + 1];
  uint32_t from, to;
} mrd_shard_move;

MRD_EXPORT void mrd_shardmap_init(mrd_shardmap *m);
MRD_EXPORT void mrd_shardmap_close(mrd_shardmap *m);
/* Make dst a copy of src (dst initialised). Returns 0 or MRD_ENOMEM (dst unchanged). */
MRD_EXPORT int mrd_shardmap_copy(mrd_shardmap *dst, const mrd_shardmap *src);

/* true for "", "~" and geohash prefixes of at most MRD_RANGE_KEY_MAX characters. */
MRD_EXPORT bool mrd_range_key_valid(const char *key);

/* The first string after every string that starts with prefix p, as a boundary: p with its
 * last character replaced by the next geohash character, carrying ("dr5z" -> "dr6"); "~"
 * for "" or all-'z'. out has MRD_RANGE_KEY_MAX + 1 bytes. Returns 0 or MRD_EINVAL (p is not
 * a geohash prefix of at most MRD_RANGE_KEY_MAX characters). */
MRD_EXPORT int mrd_geohash_prefix_end(const char *p, char *out);

/* Append a range (not checked: call mrd_shardmap_check). Returns 0, MRD_EINVAL (a boundary
 * too long), MRD_ENOMEM. */
MRD_EXPORT int mrd_shardmap_add(mrd_shardmap *m, const char *start, const char *end,
                                uint32_t shard);

/* Sort by start, then check that the ranges tile the world: the first starts at "", each
 * ends where the next starts, the last ends at "~", start < end, boundaries valid, shards
 * below MRD_SHARDS_MAX. Returns 0, or MRD_EINVAL with a one-line reason in err (cap bytes). */
MRD_EXPORT int mrd_shardmap_check(mrd_shardmap *m, char *err, size_t cap);

/* The shard owning string s (m checked). */
MRD_EXPORT uint32_t mrd_shardmap_lookup(const mrd_shardmap *m, const char *s);

/* Give [start, end) to shard `to`, splitting the ranges it cuts, then merge neighbours of one
 * shard. With from >= 0 only the parts now owned by shard `from` move. m must be checked;
 * stays a tiling. Returns 0, MRD_EINVAL (bad boundary, start >= end, shard too big),
 * MRD_ENOMEM (m unchanged). */
MRD_EXPORT int mrd_shardmap_assign(mrd_shardmap *m, const char *start, const char *end, int from,
                                   uint32_t to);

/* The moves that turn map a into map b (both checked): the maximal intervals whose owner
 * differs, adjacent ones with the same (from, to) merged, in string order. *out is malloc'd
 * (free it; NULL when none). Returns 0 or MRD_ENOMEM. */
MRD_EXPORT int mrd_shardmap_diff(const mrd_shardmap *a, const mrd_shardmap *b, mrd_shard_move **out,
                                 size_t *n);

/* Does the interval [start, end) meet the strings of prefix p ([p, prefix_end(p)))? */
MRD_EXPORT bool mrd_range_meets_prefix(const char *start, const char *end, const char *p);

/* Bit k set when shard k owns a range of m. */
MRD_EXPORT uint64_t mrd_shardmap_shards(const mrd_shardmap *m);

#ifdef __cplusplus
}
#endif
#endif /* MRD_SHARDMAP_H */
