/*
 * shardmap.c: the shard map of shardmap.h. Ranges are kept sorted by start; since they
 * tile the world, the range holding a string is the last one whose start is <= it, found
 * by binary search. A geohash cell (a prefix) covers the strings [prefix, next(prefix)),
 * so the shards of a cell are those of the ranges that interval meets: the range holding
 * the prefix and the following ones that start before next(prefix).
 */
#define _POSIX_C_SOURCE 200809L
#include "shardmap.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geohash.h"

/* An immutable, sorted, gap-free list of ranges under one epoch. */
struct gw_shardmap {
  uint64_t epoch;
  size_t n;
  gw_shard_range *ranges;
  uint64_t named_before; /* bit k: an earlier epoch named shard k (gw_shardmap_set_history) */
};

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t cap, const char *fmt,
                                                         ...) {
  if (!err || !cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

static int by_start(const void *a, const void *b) {
  return strcmp(((const gw_shard_range *)a)->start, ((const gw_shard_range *)b)->start);
}

int gw_shard_range_parse(const char *start, const char *end, const char *shard, gw_shard_range *out,
                         char *err, size_t errcap) {
  if (!start || !end || !shard) {
    seterr(err, errcap, "a shard_map row needs range_start, range_end and shard");
    return -1;
  }
  if (strnlen(start, GW_RANGE_KEY_MAX + 1) > GW_RANGE_KEY_MAX ||
      strnlen(end, GW_RANGE_KEY_MAX + 1) > GW_RANGE_KEY_MAX) {
    seterr(err, errcap, "a range boundary longer than %d characters", GW_RANGE_KEY_MAX);
    return -1;
  }
  uint32_t v = 0;
  size_t digits = 0;
  for (const char *p = shard; *p; p++, digits++) {
    if (*p < '0' || *p > '9' || digits >= 3) {
      seterr(err, errcap, "shard \"%.8s\" is not a number below %d", shard, MRD_SHARD_COUNT);
      return -1;
    }
    v = v * 10 + (uint32_t)(*p - '0');
  }
  if (digits == 0 || v >= MRD_SHARD_COUNT) {
    seterr(err, errcap, "shard \"%.8s\" is not a number below %d", shard, MRD_SHARD_COUNT);
    return -1;
  }
  gw_shard_range r;
  memset(&r, 0, sizeof r);
  memcpy(r.start, start, strlen(start) + 1);
  memcpy(r.end, end, strlen(end) + 1);
  r.shard = v;
  *out = r;
  return 0;
}

gw_shardmap *gw_shardmap_new(uint64_t epoch, const gw_shard_range *ranges, size_t n, char *err,
                             size_t errcap) {
  if (epoch < 1 || !ranges || n == 0) {
    seterr(err, errcap, "a shard map needs an epoch >= 1 and at least one range");
    return NULL;
  }
  gw_shardmap *m = calloc(1, sizeof *m);
  gw_shard_range *r = calloc(n, sizeof *r);
  if (!m || !r) {
    free(m);
    free(r);
    seterr(err, errcap, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    if (memchr(ranges[i].start, '\0', sizeof ranges[i].start) == NULL ||
        memchr(ranges[i].end, '\0', sizeof ranges[i].end) == NULL) {
      seterr(err, errcap, "range %zu: a boundary longer than %d characters", i, GW_RANGE_KEY_MAX);
      goto fail;
    }
    r[i] = ranges[i];
  }
  qsort(r, n, sizeof *r, by_start);
  for (size_t i = 0; i < n; i++) {
    if (r[i].shard >= MRD_SHARD_COUNT) {
      seterr(err, errcap, "range ['%s', '%s'): shard %u is not below %d", r[i].start, r[i].end,
             r[i].shard, MRD_SHARD_COUNT);
      goto fail;
    }
    if (strcmp(r[i].start, r[i].end) >= 0) {
      seterr(err, errcap, "range ['%s', '%s') is empty", r[i].start, r[i].end);
      goto fail;
    }
    if (i == 0 && r[0].start[0] != '\0') {
      seterr(err, errcap, "the first range starts at '%s', not ''", r[0].start);
      goto fail;
    }
    if (i + 1 < n && strcmp(r[i].end, r[i + 1].start) != 0) {
      seterr(err, errcap, "range ['%s', '%s') is followed by one starting at '%s'", r[i].start,
             r[i].end, r[i + 1].start);
      goto fail;
    }
  }
  if (strcmp(r[n - 1].end, "~") != 0) {
    seterr(err, errcap, "the last range ends at '%s', not '~'", r[n - 1].end);
    goto fail;
  }
  m->epoch = epoch;
  m->n = n;
  m->ranges = r;
  return m;
fail:
  free(r);
  free(m);
  return NULL;
}

void gw_shardmap_free(gw_shardmap *map) {
  if (!map) return;
  free(map->ranges);
  free(map);
}

uint64_t gw_shardmap_epoch(const gw_shardmap *map) { return map->epoch; }

void gw_shardmap_set_history(gw_shardmap *map, uint64_t named_before) {
  map->named_before = named_before;
}

uint64_t gw_shardmap_trip_shards(const gw_shardmap *map) {
  return gw_shardmap_prefix_shards(map, "") | map->named_before;
}
size_t gw_shardmap_size(const gw_shardmap *map) { return map->n; }
const gw_shard_range *gw_shardmap_range(const gw_shardmap *map, size_t i) {
  return i < map->n ? &map->ranges[i] : NULL;
}

/* Index of the last range whose start <= s (there is one: the first starts at ""). */
static size_t find(const gw_shardmap *map, const char *s) {
  size_t lo = 0, hi = map->n; /* answer in [lo, hi) */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(map->ranges[mid].start, s) <= 0)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

uint32_t gw_shardmap_lookup(const gw_shardmap *map, const char *gh) {
  return map->ranges[find(map, gh)].shard;
}

uint64_t gw_shardmap_prefix_shards(const gw_shardmap *map, const char *prefix) {
  uint64_t mask = 0;
  char start[GEO_GEOHASH_BUF], end[GEO_GEOHASH_BUF];
  if (prefix[0] == '\0' || geo_geohash_prefix_range(prefix, start, end) != GEO_OK) {
    /* "" (or a string that is no geohash): be safe, every shard */
    for (size_t i = 0; i < map->n; i++) mask |= UINT64_C(1) << map->ranges[i].shard;
    return mask;
  }
  for (size_t i = find(map, start); i < map->n; i++) {
    if (end[0] && strcmp(map->ranges[i].start, end) >= 0) break;
    mask |= UINT64_C(1) << map->ranges[i].shard;
  }
  return mask;
}

int gw_shardmap_route(const gw_shardmap *map, mrd_latlon pos, double halo_m, gw_route *out) {
  geo_latlng p = {pos.lat, pos.lon};
  if (!isfinite(halo_m) || halo_m < 0) return -1;
  char gh[GEO_GEOHASH_BUF];
  if (geo_latlng_to_geohash(p, GW_ROUTE_PRECISION, gh) != GEO_OK) return -1;
  gw_route r;
  memset(&r, 0, sizeof r);
  memcpy(r.geohash, gh, sizeof r.geohash);
  r.owner = gw_shardmap_lookup(map, gh);
  if (halo_m > 0 && map->n > 1) {
    /* cells about half the halo in size: a fair cover without hundreds of cells */
    int precision = 1;
    if (geo_geohash_precision_for_size(halo_m, pos.lat, &precision) != GEO_OK) return -1;
    if (precision < GEO_GEOHASH_MAX_LEN) precision++;
    geo_geohash *cells = NULL;
    size_t n = 0;
    if (geo_geohash_cover_circle(p, halo_m, precision, &cells, &n) != GEO_OK) return -1;
    for (size_t i = 0; i < n; i++) {
      char cell[GEO_GEOHASH_BUF];
      if (geo_geohash_format(cells[i], cell) == GEO_OK)
        r.halo_mask |= gw_shardmap_prefix_shards(map, cell);
    }
    geo_geohash_cells_free(cells);
    r.halo_mask &= ~(UINT64_C(1) << r.owner);
  }
  *out = r;
  return 0;
}
