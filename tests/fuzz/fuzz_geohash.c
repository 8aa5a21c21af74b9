/* fuzz_geohash.c: libFuzzer target for geohash parsing (untrusted input from clients and
 * shard maps). Any bytes must give GEO_OK or an error, never a crash, leak or UB; what
 * parses must format back to the same cell, decode to a box containing its centre, and
 * have neighbours that are valid cells. Not a unit test: scripts/fuzz runs it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geohash.h"
#include "geo/geometry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  geo_geohash h;
  geo_err e = geo_geohash_parse((const char *)data, size, &h);
  if (e == GEO_OK) {
    char s[GEO_GEOHASH_BUF];
    if (geo_geohash_format(h, s) != GEO_OK) abort();
    geo_geohash h2;
    if (geo_geohash_parse(s, strlen(s), &h2) != GEO_OK || h2.bits != h.bits || h2.len != h.len)
      abort();
    geo_bbox box;
    geo_latlng c;
    if (geo_geohash_cell(h, &box, &c) != GEO_OK || !geo_bbox_contains(box, c)) abort();
    geo_geohash nb[8];
    size_t n;
    if (geo_geohash_neighbours(h, nb, &n) != GEO_OK || (n != 8 && n != 5)) abort();
    for (int i = 0; i < 8; i++)
      if (nb[i].len != 0 && geo_geohash_cell(nb[i], NULL, NULL) != GEO_OK) abort();
  } else if (e != GEO_EPARSE) {
    abort();
  }
  /* The NUL-terminated entry points on the same bytes. */
  char *z = malloc(size + 1);
  if (z == NULL) return 0;
  memcpy(z, data, size);
  z[size] = '\0';
  geo_bbox box;
  (void)geo_geohash_decode(z, &box, NULL);
  char a[GEO_GEOHASH_BUF], b[GEO_GEOHASH_BUF];
  if (geo_geohash_prefix_range(z, a, b) == GEO_OK) {
    /* The lower-case form of the prefix, and anything longer that starts with it, is in
     * [a, b); the next prefix is not. */
    geo_geohash p;
    char lower[GEO_GEOHASH_BUF], longer[GEO_GEOHASH_BUF + 2];
    if (geo_geohash_parse(z, strlen(z), &p) != GEO_OK || geo_geohash_format(p, lower) != GEO_OK)
      abort();
    if (!geo_geohash_in_range(lower, a, b)) abort();
    memcpy(longer, lower, strlen(lower));
    memcpy(longer + strlen(lower), "zz", 3);
    if (!geo_geohash_in_range(longer, a, b)) abort();
    if (b[0] != '\0' && geo_geohash_in_range(b, a, b)) abort();
  }
  free(z);
  return 0;
}
