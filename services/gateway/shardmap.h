/*
 * shardmap.h: the shard map as the gateway caches it: sorted geohash ranges
 * [start, end) -> shard under one epoch, with lookups by binary search, and the routing of a
 * driver position to its owner shard plus the halo shards within a distance.
 *
 * A map is immutable once built: on an epoch change the gateway builds a new one and swaps
 * the pointer. Shards are 0..63 (MRD_SHARD_COUNT), so a set of shards is a uint64_t bit
 * mask. Loading from PostgreSQL is gateway_io.c's job, not this file's.
 */
#ifndef MRD_GATEWAY_SHARDMAP_H
#define MRD_GATEWAY_SHARDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "mrd/proto.h"

#define GW_RANGE_KEY_MAX 15 /* characters of a range boundary */

/* One row of shard_map: geohash strings s with start <= s < end belong to shard. */
typedef struct gw_shard_range {
  char start[GW_RANGE_KEY_MAX + 1];
  char end[GW_RANGE_KEY_MAX + 1];
  uint32_t shard;
} gw_shard_range;

typedef struct gw_shardmap gw_shardmap;

/* One row of the shard_map table as PostgreSQL returns it (text): range_start and
 * range_end (each at most GW_RANGE_KEY_MAX bytes; a longer one is refused, never
 * truncated) and shard (decimal digits only, below MRD_SHARD_COUNT). Returns 0 and *out,
 * or -1 with a one-line reason in err (errcap bytes). Whether the rows tile the world is
 * gw_shardmap_new's check. */
int gw_shard_range_parse(const char *start, const char *end, const char *shard, gw_shard_range *out,
                         char *err, size_t errcap);

/* Build a map of epoch from n ranges in any order (copied). The ranges must tile the
 * world: sorted by start they begin at "", each ends where the next begins, the last ends
 * at "~", each start < end, every shard < 64. Returns the map (free with gw_shardmap_free)
 * or NULL with a one-line reason in err (errcap bytes). */
gw_shardmap *gw_shardmap_new(uint64_t epoch, const gw_shard_range *ranges, size_t n, char *err,
                             size_t errcap);

/* Free a map; NULL is a no-op. */
void gw_shardmap_free(gw_shardmap *map);

/* The map's epoch. */
uint64_t gw_shardmap_epoch(const gw_shardmap *map);

/* Record the shards that any epoch of the map named so far (bit k = shard k; the
 * shard_map table's history, gw_shardmap_load). */
void gw_shardmap_set_history(gw_shardmap *map, uint64_t named_before);

/* The shards that may hold offers and trips: those owning a range now and those an earlier
 * epoch named. Ids name the shard that made them and offers and trips never move, so a
 * shard whose ranges all moved away still finishes its trips (docs/shards.md, the handoff):
 * its accepts and trip steps must still reach it. A shard no epoch ever named cannot have
 * made one. */
uint64_t gw_shardmap_trip_shards(const gw_shardmap *map);

/* Number of ranges. */
size_t gw_shardmap_size(const gw_shardmap *map);

/* The i-th range (i < gw_shardmap_size), sorted by start. */
const gw_shard_range *gw_shardmap_range(const gw_shardmap *map, size_t i);

/* The shard owning geohash gh (any precision, NUL-terminated). O(log n). */
uint32_t gw_shardmap_lookup(const gw_shardmap *map, const char *gh);

/* The set of shards owning any geohash that starts with prefix (a cell and everything
 * inside it), as a bit mask (bit k = shard k). "" gives every shard of the map. */
uint64_t gw_shardmap_prefix_shards(const gw_shardmap *map, const char *prefix);

/* Where one driver position goes: the owner shard, and the other shards owning any geohash
 * cell that intersects the circle of halo_m around it (the halo copies). */
typedef struct gw_route {
  uint32_t owner;
  uint64_t halo_mask;                /* never contains owner */
  char geohash[MRD_GEOHASH_MAX + 1]; /* the position's geohash at GW_ROUTE_PRECISION */
} gw_route;

#define GW_ROUTE_PRECISION 9 /* characters of the geohash used to find the owner */

/* Route pos (valid WGS84) with halo distance halo_m (0 = no halo). The halo is computed on
 * geohash cells one precision finer than the finest whose cells are at least halo_m wide
 * and high (about half the halo: at 1000 m in Manhattan, precision 6, 0.9 x 0.6 km): every
 * shard owning part of a cell that has a point within halo_m gets a copy, so it errs on the
 * side of sending one. Returns 0, or -1 for an invalid position or halo (or no memory). */
int gw_shardmap_route(const gw_shardmap *map, mrd_latlon pos, double halo_m, gw_route *out);

#endif /* MRD_GATEWAY_SHARDMAP_H */
