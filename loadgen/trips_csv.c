/*
 * trips_csv.c: the two trip CSV formats (trips_csv.h). Fields are split on commas in place
 * of a copy of each line; the header decides which column is what.
 */
#define _POSIX_C_SOURCE 200809L
#include "trips_csv.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 64

/* Column indexes of what we read, -1 when absent. */
typedef struct columns {
  int duration, day, hour, minute, weekday;
  int pu_dt, do_dt;
  int fare, rate; /* fare_amount, RatecodeID: optional */
  int pu_lon, pu_lat, do_lon, do_lat;
  int n; /* fields in the header */
} columns;

uint64_t lg_mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

const char *lg_csv_format_name(lg_csv_format f) {
  return f == LG_CSV_TLC ? "nyc-tlc" : "nyc-taxi-sample";
}

const char *lg_skip_reason_name(lg_skip_reason r) {
  static const char *names[LG_SKIP_REASON_COUNT] = {"columns", "number", "missing", "out_of_area",
                                                    "time"};
  return (unsigned)r < LG_SKIP_REASON_COUNT ? names[r] : "?";
}

/* Trim spaces, a trailing CR and surrounding double quotes, in place. */
static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
  if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
    s[n - 1] = '\0';
    s++;
  }
  return s;
}

/* Split line (modified) on commas; returns the number of fields (MAX_FIELDS + 1 if more). */
static int split(char *line, char **f) {
  int n = 0;
  char *p = line;
  for (;;) {
    char *c = strchr(p, ',');
    if (n == MAX_FIELDS) return MAX_FIELDS + 1;
    if (c) *c = '\0';
    f[n++] = trim(p);
    if (!c) break;
    p = c + 1;
  }
  return n;
}

static bool name_is(const char *h, const char *name) {
  for (; *h && *name; h++, name++)
    if (tolower((unsigned char)*h) != *name) return false;
  return *h == '\0' && *name == '\0';
}

static int find(char **h, int n, const char *const *names) {
  for (int i = 0; i < n; i++)
    for (const char *const *nm = names; *nm; nm++)
      if (name_is(h[i], *nm)) return i;
  return -1;
}

static int detect(char **h, int n, columns *c, lg_csv_format *fmt, char *err, size_t errcap) {
  static const char *const
      duration[] = {"duration", NULL},
      *const day[] = {"day", NULL}, *const hour[] = {"hour", NULL},
      *const minute[] = {"minute", NULL}, *const weekday[] = {"weekday", NULL},
      *const pu_dt[] = {"tpep_pickup_datetime", "pickup_datetime", "trip_pickup_datetime", NULL},
      *const do_dt[] = {"tpep_dropoff_datetime", "dropoff_datetime", "trip_dropoff_datetime", NULL},
      *const pu_lon[] = {"pickup_longitude", "start_lon", NULL},
      *const pu_lat[] = {"pickup_latitude", "start_lat", NULL},
      *const do_lon[] = {"dropoff_longitude", "end_lon", NULL},
      *const do_lat[] = {"dropoff_latitude", "end_lat", NULL},
      *const fare[] = {"fare_amount", NULL}, *const rate[] = {"ratecodeid", "rate_code", NULL};
  c->n = n;
  c->duration = find(h, n, duration);
  c->day = find(h, n, day);
  c->hour = find(h, n, hour);
  c->minute = find(h, n, minute);
  c->weekday = find(h, n, weekday);
  c->pu_dt = find(h, n, pu_dt);
  c->do_dt = find(h, n, do_dt);
  c->pu_lon = find(h, n, pu_lon);
  c->pu_lat = find(h, n, pu_lat);
  c->do_lon = find(h, n, do_lon);
  c->do_lat = find(h, n, do_lat);
  c->fare = find(h, n, fare);
  c->rate = find(h, n, rate);
  if (c->pu_lon < 0 || c->pu_lat < 0 || c->do_lon < 0 || c->do_lat < 0) {
    snprintf(err, errcap,
             "header names no pickup/dropoff longitude/latitude columns (neither the "
             "nyc-taxi sample nor the NYC TLC yellow-taxi format)");
    return -1;
  }
  if (c->pu_dt >= 0) {
    *fmt = LG_CSV_TLC;
  } else if (c->day >= 0 && c->hour >= 0 && c->minute >= 0) {
    *fmt = LG_CSV_SAMPLE;
  } else {
    snprintf(err, errcap,
             "header has coordinates but no pickup time (day,hour,minute or a pickup datetime)");
    return -1;
  }
  return 0;
}

/* A finite number filling the whole field. */
static bool number(const char *s, double *out) {
  if (*s == '\0') return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (*end != '\0' || errno == ERANGE || !isfinite(v)) return false;
  *out = v;
  return true;
}

static bool integer(const char *s, long lo, long hi, int *out) {
  double v;
  if (!number(s, &v) || v != floor(v) || v < (double)lo || v > (double)hi) return false;
  *out = (int)v;
  return true;
}

static bool is_missing(const char *s) {
  return *s == '\0' || name_is(s, "na") || name_is(s, "nan") || name_is(s, "null");
}

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static long days_from_civil(long y, int m, int d) {
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD HH:MM:SS" (or 'T' between). Seconds since the epoch, and the parts. */
static bool datetime(const char *s, long *epoch_s, int *year, int *month, int *day, int *hour,
                     int *minute, int *second, int *weekday) {
  int y, mo, d, h, mi, se;
  char sep;
  int used = 0;
  if (sscanf(s, "%4d-%2d-%2d%c%2d:%2d:%2d%n", &y, &mo, &d, &sep, &h, &mi, &se, &used) != 7 ||
      (sep != ' ' && sep != 'T') || s[used] != '\0')
    return false;
  if (y < 1970 || y > 2100 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
      se > 60 || h < 0 || mi < 0 || se < 0)
    return false;
  long days = days_from_civil(y, mo, d);
  *epoch_s = days * 86400 + h * 3600 + mi * 60 + se;
  *year = y, *month = mo, *day = d, *hour = h, *minute = mi, *second = se;
  *weekday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
  return true;
}

static void skip(lg_trip_set *s, lg_skip_reason r, uint32_t line) {
  s->skipped[r]++;
  s->skipped_total++;
  if (s->n_first_skipped < LG_FIRST_SKIPPED_MAX) s->first_skipped[s->n_first_skipped++] = line;
}

/* Parse one data row; returns the skip reason or -1 when *t is filled. */
static int row(char **f, int nf, const columns *c, lg_csv_format fmt, lg_area_fn in_area, void *ud,
               uint64_t seed, uint32_t line, lg_trip *t, bool *no_duration) {
  if (nf != c->n) return LG_SKIP_COLUMNS;
  memset(t, 0, sizeof *t);
  t->line = line;
  t->weekday = -1;
  t->duration_s = -1;
  t->fare_amount_usd = -1;
  t->rate_code = -1;
  const char *co[4] = {f[c->pu_lat], f[c->pu_lon], f[c->do_lat], f[c->do_lon]};
  double v[4];
  for (int i = 0; i < 4; i++) {
    if (is_missing(co[i])) return LG_SKIP_MISSING;
    if (!number(co[i], &v[i])) return LG_SKIP_NUMBER;
    if (v[i] == 0.0) return LG_SKIP_MISSING; /* TLC writes 0 for "no GPS fix" */
    if (fabs(v[i]) > ((i % 2) ? 180.0 : 90.0)) return LG_SKIP_NUMBER;
  }
  t->pickup_lat = v[0], t->pickup_lon = v[1], t->dropoff_lat = v[2], t->dropoff_lon = v[3];
  *no_duration = false;
  if (fmt == LG_CSV_SAMPLE) {
    if (!integer(f[c->day], 1, 31, &t->day) || !integer(f[c->hour], 0, 23, &t->hour) ||
        !integer(f[c->minute], 0, 59, &t->minute))
      return LG_SKIP_NUMBER;
    if (c->weekday >= 0 && !is_missing(f[c->weekday])) {
      int w;
      if (!integer(f[c->weekday], 1, 7, &w)) return LG_SKIP_NUMBER;
      t->weekday = w - 1; /* the sample numbers days 1 = Sunday .. 7 = Saturday (R's wday) */
    }
    t->second = (int)(lg_mix64(seed ^ ((uint64_t)line << 20)) % 60);
    if (c->duration < 0 || is_missing(f[c->duration])) {
      *no_duration = true;
    } else {
      double d;
      if (!number(f[c->duration], &d) || d < 0) return LG_SKIP_NUMBER;
      t->duration_s = d;
    }
  } else {
    long pu, dof;
    int yy, mo, dd, hh, mm, ss, wd;
    if (is_missing(f[c->pu_dt]) || !datetime(f[c->pu_dt], &pu, &t->year, &t->month, &t->day,
                                             &t->hour, &t->minute, &t->second, &t->weekday))
      return LG_SKIP_TIME;
    if (c->do_dt >= 0 && !is_missing(f[c->do_dt]) &&
        datetime(f[c->do_dt], &dof, &yy, &mo, &dd, &hh, &mm, &ss, &wd) && dof >= pu)
      t->duration_s = (double)(dof - pu);
    else
      *no_duration = true;
  }
  /* optional TLC columns: a bad value is left unknown, not a reason to skip the trip */
  double v2;
  if (c->fare >= 0 && !is_missing(f[c->fare]) && number(f[c->fare], &v2) && v2 >= 0)
    t->fare_amount_usd = v2;
  int rc;
  if (c->rate >= 0 && !is_missing(f[c->rate]) && integer(f[c->rate], 1, 99, &rc)) t->rate_code = rc;
  if (t->second > 59) t->second = 59;
  t->tod_s = t->hour * 3600.0 + t->minute * 60.0 + t->second;
  /* Meridian serves trips inside its area: dispatch refuses a drop-off away from the road
   * graph (no_driver, dropoff_out_of_area), so such rows are not replayed either */
  if (in_area &&
      (!in_area(ud, t->pickup_lat, t->pickup_lon) || !in_area(ud, t->dropoff_lat, t->dropoff_lon)))
    return LG_SKIP_OUT_OF_AREA;
  return -1;
}

int lg_trips_parse(const char *text, size_t len, lg_area_fn in_area, void *area_ud, uint64_t seed,
                   lg_trip_set *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  char *buf = malloc(len + 1);
  if (!buf) {
    snprintf(err, errcap, "out of memory");
    return -1;
  }
  memcpy(buf, text, len);
  buf[len] = '\0';
  char *fields[MAX_FIELDS + 1];
  columns c = {0};
  size_t cap = 0;
  uint32_t line = 0;
  bool header = false;
  char *p = buf;
  while (p && *p) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    line++;
    char *l = p;
    p = nl ? nl + 1 : NULL;
    if (*trim(l) == '\0') continue;
    int nf = split(l, fields);
    if (!header) {
      if (nf > MAX_FIELDS || detect(fields, nf, &c, &out->format, err, errcap) != 0) {
        if (nf > MAX_FIELDS) snprintf(err, errcap, "header has more than %d columns", MAX_FIELDS);
        goto fail;
      }
      header = true;
      continue;
    }
    out->rows++;
    lg_trip t;
    bool no_dur = false;
    int r = row(fields, nf, &c, out->format, in_area, area_ud, seed, line, &t, &no_dur);
    if (r >= 0) {
      skip(out, (lg_skip_reason)r, line);
      continue;
    }
    if (out->n == cap) {
      size_t ncap = cap ? cap * 2 : 1024;
      lg_trip *nt = realloc(out->trips, ncap * sizeof *nt);
      if (!nt) {
        snprintf(err, errcap, "out of memory");
        goto fail;
      }
      out->trips = nt;
      cap = ncap;
    }
    out->trips[out->n++] = t;
    if (no_dur) out->no_duration++;
  }
  if (!header) {
    snprintf(err, errcap, "empty file: no header line");
    goto fail;
  }
  free(buf);
  return 0;
fail:
  free(buf);
  lg_trip_set_free(out);
  return -1;
}

int lg_trips_load(const char *path, lg_area_fn in_area, void *area_ud, uint64_t seed,
                  lg_trip_set *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    snprintf(err, errcap, "%s: %s", path, strerror(errno));
    return -1;
  }
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 65536 > cap) {
      size_t ncap = cap ? cap * 2 : 1 << 20;
      char *nt = realloc(text, ncap);
      if (!nt) {
        free(text);
        fclose(fp);
        snprintf(err, errcap, "%s: out of memory", path);
        return -1;
      }
      text = nt;
      cap = ncap;
    }
    size_t got = fread(text + len, 1, cap - len, fp);
    len += got;
    if (got == 0) break;
  }
  int bad = ferror(fp);
  fclose(fp);
  if (bad) {
    free(text);
    snprintf(err, errcap, "%s: read error", path);
    return -1;
  }
  char e2[200];
  int rc = lg_trips_parse(text, len, in_area, area_ud, seed, out, e2, sizeof e2);
  if (rc != 0) snprintf(err, errcap, "%s: %s", path, e2);
  free(text);
  return rc;
}

void lg_trip_set_free(lg_trip_set *set) {
  if (!set) return;
  free(set->trips);
  memset(set, 0, sizeof *set);
}
