/*
 * geohash.h: geohash cells (base32, precision 1-12): encode, decode, strict parsing,
 * neighbours, the precision that fits a size, the cover of a circle, and the string-range
 * helpers that Meridian's shard map needs (a shard owns [range_start, range_end) of geohash
 * strings, compared byte-wise: the base32 alphabet is in ASCII order, so string order is
 * Z-order).
 *
 * This is the classic geohash (Niemeyer): bits alternate longitude, latitude, starting with
 * longitude; a cell is a lat/lng box. It is not S2 or H3: cells are not equal-area.
 */
#ifndef GEO_GEOHASH_H
#define GEO_GEOHASH_H

#include "geo/geo.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GEO_GEOHASH_MAX_LEN 12 /* characters; 60 bits, cells of about 3.7 cm x 1.9 cm */
#define GEO_GEOHASH_BUF 13     /* bytes for the longest geohash and its NUL */

/* A parsed geohash: `len` characters (1..12), their 5*len bits right-aligned in `bits`
 * (longitude bit first). len == 0 marks "no cell" (see geo_geohash_neighbours). */
typedef struct geo_geohash {
  uint64_t bits;
  uint8_t len;
} geo_geohash;

/* Encode p at `precision` characters (1..12) into out (at least GEO_GEOHASH_BUF bytes,
 * NUL-terminated). Errors: GEO_EINVAL for an invalid position, a precision outside 1..12 or
 * a NULL out. Example: {57.64911, 10.40744} at 11 -> "u4pruydqqvj". */
GEO_EXPORT geo_err geo_latlng_to_geohash(geo_latlng p, int precision, char *out);

/* The cell of p at `precision` (1..12) as a geo_geohash. Errors as geo_latlng_to_geohash. */
GEO_EXPORT geo_err geo_geohash_from_latlng(geo_latlng p, int precision, geo_geohash *out);

/* Parse exactly `len` bytes of s (no NUL needed; s may hold anything). Accepts 1..12
 * characters of the geohash alphabet "0123456789bcdefghjkmnpqrstuvwxyz", upper case
 * too. Errors: GEO_EINVAL (NULL), GEO_EPARSE (empty, longer than 12, or any other byte,
 * including 'a', 'i', 'l', 'o' and NUL). Never reads beyond s[len-1]. */
GEO_EXPORT geo_err geo_geohash_parse(const char *s, size_t len, geo_geohash *out);

/* Write h as a NUL-terminated lower-case string to out (at least GEO_GEOHASH_BUF bytes).
 * Errors: GEO_EINVAL for a NULL out or h.len outside 1..12. */
GEO_EXPORT geo_err geo_geohash_format(geo_geohash h, char *out);

/* The cell box of h (borders included) and its centre; either pointer may be NULL.
 * Errors: GEO_EINVAL for h.len outside 1..12. */
GEO_EXPORT geo_err geo_geohash_cell(geo_geohash h, geo_bbox *box, geo_latlng *centre);

/* Parse the NUL-terminated string s and return its cell box and centre (either may be
 * NULL). Errors: those of geo_geohash_parse. */
GEO_EXPORT geo_err geo_geohash_decode(const char *s, geo_bbox *box, geo_latlng *centre);

/* Directions of geo_geohash_neighbours' output, clockwise from north. */
enum { GEO_GH_N, GEO_GH_NE, GEO_GH_E, GEO_GH_SE, GEO_GH_S, GEO_GH_SW, GEO_GH_W, GEO_GH_NW };

/* The 8 neighbours of h at the same precision, indexed by GEO_GH_N..GEO_GH_NW. East and
 * west wrap across the antimeridian. A cell in the northernmost (southernmost) row has no
 * neighbour beyond the pole: those entries get len == 0. Writes the number of neighbours
 * that exist (8, or 5 for a cell in a pole row) to *n_out (may be
 * NULL). Errors: GEO_EINVAL for a NULL out or h.len outside 1..12. */
GEO_EXPORT geo_err geo_geohash_neighbours(geo_geohash h, geo_geohash out[8], size_t *n_out);

/* The finest precision (1..12) whose cells at latitude lat_deg are at least size_m wide and
 * high, so that a circle of radius size_m around any point of a cell lies within that cell
 * and its 8 neighbours. 1 when even precision-1 cells are smaller than size_m.
 * Errors: GEO_EINVAL for a negative or non-finite size, an invalid latitude or a NULL out. */
GEO_EXPORT geo_err geo_geohash_precision_for_size(double size_m, double lat_deg, int *out);

/* Every cell at `precision` that has a point within radius_m of centre (exact on the
 * sphere; across the antimeridian and over the poles too), in row-major order from the
 * south-west. Allocates *cells (free with geo_geohash_cells_free) and writes their number to
 * *n. Errors: GEO_EINVAL (bad centre, radius or precision, NULL out), GEO_ERANGE when more
 * than 1,000,000 candidate cells (of the circle's bounding box) would be examined,
 * GEO_ENOMEM (nothing allocated, outputs untouched). */
GEO_EXPORT geo_err geo_geohash_cover_circle(geo_latlng centre, double radius_m, int precision,
                                            geo_geohash **cells, size_t *n);

/* Free an array returned by geo_geohash_cover_circle. NULL is a no-op. */
GEO_EXPORT void geo_geohash_cells_free(geo_geohash *cells);

/* True when the geohash string `cell` lies in the shard range [start, end) in byte order.
 * An empty start means "from the beginning", an empty end "to the end". Longer strings sort
 * after their prefixes, so a precision-12 cell is in ["dr5", "dr6") iff it starts with
 * "dr5". NULL arguments are treated as empty strings. */
GEO_EXPORT bool geo_geohash_in_range(const char *cell, const char *start, const char *end);

/* The range [start, end) of exactly the strings that begin with prefix (1..12 valid
 * geohash characters): start = prefix in lower case, end = the next prefix of the same or
 * shorter length ("dr5" -> "dr6", "dz" -> "e"); end is "" (unbounded) for "z", "zz", ...
 * Both buffers at least GEO_GEOHASH_BUF bytes. Errors: GEO_EINVAL (NULL), GEO_EPARSE. */
GEO_EXPORT geo_err geo_geohash_prefix_range(const char *prefix, char *start, char *end);

#ifdef __cplusplus
}
#endif
#endif /* GEO_GEOHASH_H */
