/*
 * geohash.c: geohash encode/decode by exact bisection (every cell edge is a dyadic
 * fraction of 180 or 360 degrees, so no rounding ever moves a point across an edge),
 * strict parsing, neighbours by row/column arithmetic, and circle covers. It keeps no
 * state; only geo_geohash_cover_circle allocates.
 */
#include "geo/geohash.h"

#include <math.h>
#include <string.h>

#include "geo/geometry.h"
#include "geo_internal.h"

static const char BASE32[] = "0123456789bcdefghjkmnpqrstuvwxyz";
#define MAX_COVER_CANDIDATES 1000000u

/* -1 for a byte outside the alphabet. Upper case is accepted. */
static int char_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
  for (int i = 0; i < 32; i++)
    if ((unsigned char)BASE32[i] == c) return i;
  return -1;
}

static int lat_bits(int len) { return (5 * len) / 2; }
static int lng_bits(int len) { return 5 * len - (5 * len) / 2; }

/* Index of the cell of v in [lo, hi] cut into 2^nbits equal parts, by bisection: v >= mid
 * goes up, as in every geohash implementation, so hi itself maps to the last cell. */
static uint64_t bisect(double v, double lo, double hi, int nbits) {
  uint64_t idx = 0;
  for (int i = 0; i < nbits; i++) {
    double mid = (lo + hi) * 0.5;
    idx <<= 1;
    if (v >= mid) {
      idx |= 1;
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return idx;
}

static geo_geohash interleave(uint64_t row, uint64_t col, int len) {
  int nb = 5 * len, nlat = lat_bits(len), nlng = lng_bits(len);
  uint64_t bits = 0;
  for (int i = 0; i < nb; i++) {
    bits <<= 1;
    if (i % 2 == 0)
      bits |= (col >> (--nlng)) & 1u;
    else
      bits |= (row >> (--nlat)) & 1u;
  }
  return (geo_geohash){bits, (uint8_t)len};
}

static void deinterleave(geo_geohash h, uint64_t *row, uint64_t *col) {
  int nb = 5 * h.len;
  uint64_t r = 0, c = 0;
  for (int i = 0; i < nb; i++) {
    uint64_t bit = (h.bits >> (nb - 1 - i)) & 1u;
    if (i % 2 == 0)
      c = (c << 1) | bit;
    else
      r = (r << 1) | bit;
  }
  *row = r;
  *col = c;
}

static bool valid_len(int len) { return len >= 1 && len <= GEO_GEOHASH_MAX_LEN; }

geo_err geo_geohash_from_latlng(geo_latlng p, int precision, geo_geohash *out) {
  if (!geo_latlng_is_valid(p) || !valid_len(precision) || out == NULL) return GEO_EINVAL;
  uint64_t row = bisect(p.lat, -90.0, 90.0, lat_bits(precision));
  uint64_t col = bisect(p.lng, -180.0, 180.0, lng_bits(precision));
  *out = interleave(row, col, precision);
  return GEO_OK;
}

geo_err geo_geohash_format(geo_geohash h, char *out) {
  if (out == NULL || !valid_len(h.len)) return GEO_EINVAL;
  for (int i = 0; i < h.len; i++) out[i] = BASE32[(h.bits >> (5 * (h.len - 1 - i))) & 31u];
  out[h.len] = '\0';
  return GEO_OK;
}

geo_err geo_latlng_to_geohash(geo_latlng p, int precision, char *out) {
  geo_geohash h;
  if (out == NULL) return GEO_EINVAL;
  geo_err e = geo_geohash_from_latlng(p, precision, &h);
  if (e != GEO_OK) return e;
  return geo_geohash_format(h, out);
}

geo_err geo_geohash_parse(const char *s, size_t len, geo_geohash *out) {
  if (s == NULL || out == NULL) return GEO_EINVAL;
  if (len == 0 || len > GEO_GEOHASH_MAX_LEN) return GEO_EPARSE;
  uint64_t bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = char_value((unsigned char)s[i]);
    if (v < 0) return GEO_EPARSE;
    bits = (bits << 5) | (uint64_t)v;
  }
  *out = (geo_geohash){bits, (uint8_t)len};
  return GEO_OK;
}

static geo_bbox cell_box(uint64_t row, uint64_t col, int len) {
  double hlat = 180.0 / (double)(UINT64_C(1) << lat_bits(len));
  double hlng = 360.0 / (double)(UINT64_C(1) << lng_bits(len));
  geo_bbox b;
  b.min_lat = -90.0 + (double)row * hlat;
  b.max_lat = b.min_lat + hlat;
  b.min_lng = -180.0 + (double)col * hlng;
  b.max_lng = b.min_lng + hlng;
  return b;
}

geo_err geo_geohash_cell(geo_geohash h, geo_bbox *box, geo_latlng *centre) {
  if (!valid_len(h.len) || h.bits >> (5 * h.len) != 0) return GEO_EINVAL;
  uint64_t row, col;
  deinterleave(h, &row, &col);
  geo_bbox b = cell_box(row, col, h.len);
  if (box) *box = b;
  if (centre) *centre = (geo_latlng){(b.min_lat + b.max_lat) * 0.5, (b.min_lng + b.max_lng) * 0.5};
  return GEO_OK;
}

geo_err geo_geohash_decode(const char *s, geo_bbox *box, geo_latlng *centre) {
  if (s == NULL) return GEO_EINVAL;
  geo_geohash h;
  /* Bound the scan: anything longer than 12 is an error, whatever follows. */
  size_t len = 0;
  while (len <= GEO_GEOHASH_MAX_LEN && s[len] != '\0') len++;
  geo_err e = geo_geohash_parse(s, len, &h);
  if (e != GEO_OK) return e;
  return geo_geohash_cell(h, box, centre);
}

geo_err geo_geohash_neighbours(geo_geohash h, geo_geohash out[8], size_t *n_out) {
  if (out == NULL || !valid_len(h.len) || h.bits >> (5 * h.len) != 0) return GEO_EINVAL;
  static const int dr[8] = {1, 1, 0, -1, -1, -1, 0, 1};
  static const int dc[8] = {0, 1, 1, 1, 0, -1, -1, -1};
  uint64_t row, col;
  deinterleave(h, &row, &col);
  uint64_t nrows = UINT64_C(1) << lat_bits(h.len), ncols = UINT64_C(1) << lng_bits(h.len);
  size_t n = 0;
  for (int i = 0; i < 8; i++) {
    if ((dr[i] > 0 && row + 1 == nrows) || (dr[i] < 0 && row == 0)) {
      out[i] = (geo_geohash){0, 0}; /* beyond a pole */
      continue;
    }
    uint64_t r = row + (uint64_t)(int64_t)dr[i];
    uint64_t c = (col + ncols + (uint64_t)(int64_t)dc[i]) & (ncols - 1); /* wraps east-west */
    out[i] = interleave(r, c, h.len);
    n++;
  }
  if (n_out) *n_out = n;
  return GEO_OK;
}

geo_err geo_geohash_precision_for_size(double size_m, double lat_deg, int *out) {
  if (!isfinite(size_m) || size_m < 0 || !isfinite(lat_deg) || lat_deg < -90.0 || lat_deg > 90.0 ||
      out == NULL)
    return GEO_EINVAL;
  const double m_per_deg = GEO_EARTH_RADIUS_M * 3.14159265358979323846 / 180.0;
  double coslat = cos(lat_deg * 3.14159265358979323846 / 180.0);
  int best = 1;
  for (int p = 1; p <= GEO_GEOHASH_MAX_LEN; p++) {
    double h_m = 180.0 / (double)(UINT64_C(1) << lat_bits(p)) * m_per_deg;
    double w_m = 360.0 / (double)(UINT64_C(1) << lng_bits(p)) * m_per_deg * coslat;
    if (h_m >= size_m && w_m >= size_m)
      best = p;
    else
      break;
  }
  *out = best;
  return GEO_OK;
}

/* Append to a growing array; on failure the array is left as it was. */
static geo_err push_cell(geo_geohash **arr, size_t *n, size_t *cap, geo_geohash h) {
  if (*n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 16;
    geo_geohash *p = geo__realloc(*arr, *cap * sizeof **arr, ncap * sizeof **arr);
    if (p == NULL) return GEO_ENOMEM;
    *arr = p;
    *cap = ncap;
  }
  (*arr)[(*n)++] = h;
  return GEO_OK;
}

geo_err geo_geohash_cover_circle(geo_latlng centre, double radius_m, int precision,
                                 geo_geohash **cells, size_t *n) {
  if (!geo_latlng_is_valid(centre) || !isfinite(radius_m) || radius_m < 0 ||
      !valid_len(precision) || cells == NULL || n == NULL)
    return GEO_EINVAL;
  geo_bbox bb;
  geo_err e = geo_bbox_of_circle(centre, radius_m, &bb);
  if (e != GEO_OK) return e;
  int nlat = lat_bits(precision), nlng = lng_bits(precision);
  uint64_t ncols = UINT64_C(1) << nlng;
  uint64_t r0 = bisect(bb.min_lat, -90.0, 90.0, nlat), r1 = bisect(bb.max_lat, -90.0, 90.0, nlat);
  /* Column runs: one, or two when the box crosses the antimeridian. */
  uint64_t c0 = bisect(bb.min_lng, -180.0, 180.0, nlng),
           c1 = bisect(bb.max_lng, -180.0, 180.0, nlng);
  uint64_t ncand_cols = bb.min_lng <= bb.max_lng ? c1 - c0 + 1 : (ncols - c0) + c1 + 1;
  if (ncand_cols > ncols) ncand_cols = ncols;
  uint64_t nrows = r1 - r0 + 1;
  if (nrows > MAX_COVER_CANDIDATES || ncand_cols > MAX_COVER_CANDIDATES / nrows) return GEO_ERANGE;
  geo_geohash *arr = NULL;
  size_t cnt = 0, cap = 0;
  for (uint64_t r = r0; r <= r1; r++) {
    for (uint64_t k = 0; k < ncand_cols; k++) {
      uint64_t c = (c0 + k) & (ncols - 1);
      geo_bbox b = cell_box(r, c, precision);
      if (geo__box_min_dist_m(centre, b.min_lat, b.min_lng, b.max_lat, b.max_lng) > radius_m)
        continue;
      if (push_cell(&arr, &cnt, &cap, interleave(r, c, precision)) != GEO_OK) {
        geo__free(arr);
        return GEO_ENOMEM;
      }
    }
  }
  if (arr == NULL) { /* an empty cover still returns a freeable array */
    arr = geo__malloc(sizeof *arr);
    if (arr == NULL) return GEO_ENOMEM;
  }
  *cells = arr;
  *n = cnt;
  return GEO_OK;
}

void geo_geohash_cells_free(geo_geohash *cells) { geo__free(cells); }

bool geo_geohash_in_range(const char *cell, const char *start, const char *end) {
  if (cell == NULL) cell = "";
  if (start != NULL && start[0] != '\0' && strcmp(cell, start) < 0) return false;
  if (end != NULL && end[0] != '\0' && strcmp(cell, end) >= 0) return false;
  return true;
}

geo_err geo_geohash_prefix_range(const char *prefix, char *start, char *end) {
  if (prefix == NULL || start == NULL || end == NULL) return GEO_EINVAL;
  size_t len = 0;
  while (len <= GEO_GEOHASH_MAX_LEN && prefix[len] != '\0') len++;
  geo_geohash h;
  geo_err e = geo_geohash_parse(prefix, len, &h);
  if (e != GEO_OK) return e;
  char s[GEO_GEOHASH_BUF];
  geo_geohash_format(h, s);
  char t[GEO_GEOHASH_BUF];
  geo_geohash_format(h, t);
  size_t i = h.len;
  while (i > 0) {
    int v = char_value((unsigned char)t[i - 1]);
    if (v < 31) {
      t[i - 1] = BASE32[v + 1];
      t[i] = '\0';
      break;
    }
    i--;
    t[i] = '\0'; /* 'z' carries into the previous character */
  }
  memcpy(start, s, sizeof s);
  memcpy(end, t, sizeof t);
  return GEO_OK;
}
