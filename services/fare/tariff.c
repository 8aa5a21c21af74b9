/*
 * tariff.c: the tariff file parser (fare.h: mrd_tariff_parse) and the set of cards that
 * follow one another in time (mrd_tariff_set_*). The format is line-based `key = value`
 * with `#` comments (data/tariffs/README.md). Strict on purpose: a rate card with a typo
 * would price every trip wrong without anyone noticing, so an unknown key, a missing or
 * repeated one, a number out of range or trailing text is an error naming the line.
 * The file reader is the only I/O; the parser is fuzzed (tests/fuzz/fuzz_tariff.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fare.h"

#define MI_M 1609.344   /* metres per statute mile */
#define MPH_MPS 0.44704 /* metres per second per mile per hour */

__attribute__((format(printf, 3, 4))) static void errf(char *err, size_t cap, const char *fmt,
                                                       ...) {
  if (!err || cap == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
  return s;
}

bool mrd_fare_civil_day(int y, int m, int d, int64_t *days) {
  static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1900 || y > 2200 || m < 1 || m > 12 || d < 1) return false;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > mdays[m - 1] + (m == 2 && leap)) return false;
  /* H. Hinnant's days_from_civil */
  int64_t yy = y - (m <= 2);
  int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
  int64_t yoe = yy - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  *days = era * 146097 + doe - 719468;
  return true;
}

/* A whole-field integer in [lo, hi]. */
static bool parse_int(const char *s, long lo, long hi, long *out) {
  if (!*s) return false;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (*end || errno || v < lo || v > hi) return false;
  *out = v;
  return true;
}

/* A whole-field finite number in (lo, hi]. */
static bool parse_num(const char *s, double lo, double hi, double *out) {
  if (!*s || isspace((unsigned char)*s)) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (*end || errno || !isfinite(v) || !(v > lo) || v > hi) return false;
  *out = v;
  return true;
}

/* A number in [lo, hi]: a unit too small to be a meter's (a fraction of a metre or a
 * second) would price an ordinary trip at billions of units. */
static bool parse_num_in(const char *s, double lo, double hi, double *out) {
  return parse_num(s, 0, hi, out) && *out >= lo;
}

static bool parse_date(const char *s, int64_t *days) {
  int y, m, d, used = 0;
  if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &used) != 3 || used != 10 ||
      s[4] != '-' || s[7] != '-')
    return false;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) return false;
  return mrd_fare_civil_day(y, m, d, days);
}

/* "HH:MM" -> minutes of the day. */
static bool parse_hhmm(const char *s, int *min) {
  if (strlen(s) != 5 || s[2] != ':' || !isdigit((unsigned char)s[0]) ||
      !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[3]) ||
      !isdigit((unsigned char)s[4]))
    return false;
  int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 23 || m > 59) return false;
  *min = h * 60 + m;
  return true;
}

static int day_index(const char *s, size_t n) {
  static const char *const names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  if (n != 3) return -1;
  for (int i = 0; i < 7; i++)
    if (strncmp(s, names[i], 3) == 0) return i;
  return -1;
}

/* "all", or a comma list of days and ranges: "mon-fri", "sat,sun", "fri-mon" (wraps). */
static bool parse_days(const char *s, uint8_t *mask) {
  if (strcmp(s, "all") == 0) {
    *mask = 0x7f;
    return true;
  }
  uint8_t m = 0;
  const char *p = s;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    int a, b;
    if (len == 3) {
      if ((a = day_index(p, 3)) < 0) return false;
      b = a;
    } else if (len == 7 && p[3] == '-') {
      if ((a = day_index(p, 3)) < 0 || (b = day_index(p + 4, 3)) < 0) return false;
    } else {
      return false;
    }
    for (int d = a;; d = (d + 1) % 7) {
      m |= (uint8_t)(1u << d);
      if (d == b) break;
    }
    if (!comma) break;
    p = comma + 1;
  }
  *mask = m;
  return true;
}

/* A name: [a-z0-9_], 1..cap-1 bytes. */
static bool parse_name(const char *s, char *out, size_t cap) {
  size_t n = strlen(s);
  if (n == 0 || n >= cap) return false;
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' ||
          s[i] == '-' || s[i] == '.'))
      return false;
  memcpy(out, s, n + 1);
  return true;
}

/* Split value into at most max whitespace-separated words (in place). */
static int words(char *v, char **w, int max) {
  int n = 0;
  char *save = NULL;
  for (char *t = strtok_r(v, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
    if (n == max) return max + 1;
    w[n++] = t;
  }
  return n;
}

enum { K_NAME, K_FIRST_DAY, K_FLAG, K_INC, K_INC_DIST, K_INC_TIME, K_SLOW, K_MIN, K_COUNT };

int mrd_tariff_parse(const char *text, size_t len, mrd_tariff *out, char *err, size_t errcap) {
  if (!text || !out) {
    errf(err, errcap, "no tariff text");
    return -1;
  }
  if (len > MRD_TARIFF_FILE_MAX) {
    errf(err, errcap, "tariff longer than %d bytes", MRD_TARIFF_FILE_MAX);
    return -1;
  }
  memset(out, 0, sizeof *out);
  char *buf = malloc(len + 1);
  if (!buf) {
    errf(err, errcap, "out of memory");
    return -1;
  }
  memcpy(buf, text, len);
  buf[len] = '\0';
  if (memchr(text, '\0', len) != NULL) {
    free(buf);
    errf(err, errcap, "NUL byte in the tariff text");
    return -1;
  }
  int seen[K_COUNT] = {0};
  int rc = -1, line = 0;
  char *p = buf;
  while (p) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    line++;
    char *l = p;
    p = nl ? nl + 1 : NULL;
    char *hash = strchr(l, '#');
    if (hash) *hash = '\0';
    l = trim(l);
    if (!*l) continue;
    char *eq = strchr(l, '=');
    if (!eq) {
      errf(err, errcap, "line %d: expected `key = value`", line);
      goto done;
    }
    *eq = '\0';
    char *key = trim(l), *val = trim(eq + 1);
    if (!*val) {
      errf(err, errcap, "line %d: %s: empty value", line, key);
      goto done;
    }
    long iv;
    double dv;
    int k = -1;
    if (strcmp(key, "source") == 0 || strcmp(key, "note") == 0 || strcmp(key, "currency") == 0) {
      continue; /* documentation kept in the file: any text */
    } else if (strcmp(key, "name") == 0) {
      k = K_NAME;
      if (!parse_name(val, out->name, sizeof out->name)) {
        errf(err, errcap, "line %d: name: [a-z0-9_.-], 1 to %d characters", line,
             MRD_TARIFF_NAME_MAX - 1);
        goto done;
      }
    } else if (strcmp(key, "first_day") == 0) {
      k = K_FIRST_DAY;
      if (!parse_date(val, &out->first_day)) {
        errf(err, errcap, "line %d: first_day: not a date YYYY-MM-DD", line);
        goto done;
      }
    } else if (strcmp(key, "flag_drop_cents") == 0 || strcmp(key, "increment_cents") == 0 ||
               strcmp(key, "minimum_cents") == 0) {
      k = key[0] == 'f' ? K_FLAG : key[0] == 'i' ? K_INC : K_MIN;
      if (!parse_int(val, 0, 100000, &iv)) {
        errf(err, errcap, "line %d: %s: not an integer in [0, 100000]", line, key);
        goto done;
      }
      int32_t *dst = k == K_FLAG  ? &out->flag_drop_cents
                     : k == K_INC ? &out->increment_cents
                                  : &out->minimum_cents;
      *dst = (int32_t)iv;
    } else if (strcmp(key, "increment_distance_m") == 0 ||
               strcmp(key, "increment_distance_mi") == 0) {
      k = K_INC_DIST;
      bool mi = key[strlen(key) - 1] == 'i';
      if (!parse_num_in(val, mi ? 0.001 : 1, mi ? 10 : 16093.44, &dv)) {
        errf(err, errcap, "line %d: %s: not a number in [%s, %s]", line, key, mi ? "0.001" : "1",
             mi ? "10" : "16093.44");
        goto done;
      }
      out->increment_distance_m = mi ? dv * MI_M : dv;
    } else if (strcmp(key, "increment_time_s") == 0) {
      k = K_INC_TIME;
      if (!parse_num_in(val, 1, 3600, &dv)) {
        errf(err, errcap, "line %d: %s: not a number in [1, 3600]", line, key);
        goto done;
      }
      out->increment_time_s = dv;
    } else if (strcmp(key, "slow_speed_mph") == 0 || strcmp(key, "slow_speed_kmh") == 0 ||
               strcmp(key, "slow_speed_mps") == 0) {
      k = K_SLOW;
      double scale = strcmp(key, "slow_speed_mph") == 0   ? MPH_MPS
                     : strcmp(key, "slow_speed_kmh") == 0 ? 1 / 3.6
                                                          : 1.0;
      if (!parse_num(val, 0, 200, &dv)) {
        errf(err, errcap, "line %d: %s: not a number in (0, 200]", line, key);
        goto done;
      }
      out->slow_speed_mps = dv * scale;
    } else if (strcmp(key, "surcharge") == 0) {
      /* surcharge = NAME DAYS HH:MM-HH:MM CENTS */
      char *w[5];
      int nw = words(val, w, 4);
      mrd_tariff_window win = {0};
      char *dash = nw == 4 ? strchr(w[2], '-') : NULL;
      if (dash) *dash = '\0';
      long c;
      if (nw != 4 || !dash || !parse_name(w[0], win.name, sizeof win.name) ||
          !parse_days(w[1], &win.days_mask) || !parse_hhmm(w[2], &win.from_min) ||
          !parse_hhmm(dash + 1, &win.to_min) || win.from_min == win.to_min ||
          !parse_int(w[3], 0, 100000, &c)) {
        errf(err, errcap,
             "line %d: surcharge: expected `NAME DAYS HH:MM-HH:MM CENTS` (DAYS: all, mon-fri, "
             "sat,sun; an empty window is refused)",
             line);
        goto done;
      }
      if (out->n_windows == MRD_TARIFF_WINDOWS_MAX) {
        errf(err, errcap, "line %d: more than %d surcharges", line, MRD_TARIFF_WINDOWS_MAX);
        goto done;
      }
      win.cents = (int32_t)c;
      out->windows[out->n_windows++] = win;
    } else if (strcmp(key, "fixed") == 0) {
      /* fixed = NAME CENTS */
      char *w[3];
      int nw = words(val, w, 2);
      mrd_tariff_fixed fx = {0};
      long c;
      if (nw != 2 || !parse_name(w[0], fx.name, sizeof fx.name) ||
          !parse_int(w[1], 0, 100000, &c)) {
        errf(err, errcap, "line %d: fixed: expected `NAME CENTS`", line);
        goto done;
      }
      if (out->n_fixed == MRD_TARIFF_FIXED_MAX) {
        errf(err, errcap, "line %d: more than %d fixed surcharges", line, MRD_TARIFF_FIXED_MAX);
        goto done;
      }
      fx.cents = (int32_t)c;
      out->fixed[out->n_fixed++] = fx;
    } else {
      errf(err, errcap, "line %d: unknown key \"%.40s\"", line, key);
      goto done;
    }
    if (k >= 0) {
      if (seen[k]) {
        errf(err, errcap, "line %d: %s given twice", line, key);
        goto done;
      }
      seen[k] = line;
    }
  }
  static const char *const required[K_MIN] = {"name",
                                              "first_day",
                                              "flag_drop_cents",
                                              "increment_cents",
                                              "increment_distance_m (or _mi)",
                                              "increment_time_s",
                                              "slow_speed_mph (or _kmh, _mps)"};
  for (int k = 0; k < K_MIN; k++)
    if (!seen[k]) {
      errf(err, errcap, "missing %s", required[k]);
      goto done;
    }
  rc = 0;
done:
  free(buf);
  return rc;
}

int mrd_tariff_load(const char *path, mrd_tariff *out, char *err, size_t errcap) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    errf(err, errcap, "%s: %s", path, strerror(errno));
    return -1;
  }
  char *buf = malloc(MRD_TARIFF_FILE_MAX + 1);
  if (!buf) {
    fclose(f);
    errf(err, errcap, "%s: out of memory", path);
    return -1;
  }
  size_t n = fread(buf, 1, MRD_TARIFF_FILE_MAX + 1, f);
  bool bad = ferror(f);
  fclose(f);
  int rc = -1;
  char e2[200];
  if (bad)
    errf(err, errcap, "%s: read error", path);
  else if (n > MRD_TARIFF_FILE_MAX)
    errf(err, errcap, "%s: longer than %d bytes", path, MRD_TARIFF_FILE_MAX);
  else if ((rc = mrd_tariff_parse(buf, n, out, e2, sizeof e2)) != 0)
    errf(err, errcap, "%s: %s", path, e2);
  free(buf);
  return rc;
}

static int cmp_first_day(const void *a, const void *b) {
  const mrd_tariff *x = a, *y = b;
  return (x->first_day > y->first_day) - (x->first_day < y->first_day);
}

int mrd_tariff_set_load_dir(const char *dir, mrd_tariff_set *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  DIR *d = opendir(dir);
  if (!d) {
    errf(err, errcap, "%s: %s", dir, strerror(errno));
    return -1;
  }
  size_t cap = 0;
  struct dirent *e;
  int rc = -1;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 8 || strcmp(e->d_name + n - 7, ".tariff") != 0 || e->d_name[0] == '.') continue;
    if (out->n == cap) {
      size_t nc = cap ? cap * 2 : 8;
      mrd_tariff *nt = realloc(out->cards, nc * sizeof *nt);
      if (!nt) {
        errf(err, errcap, "out of memory");
        goto done;
      }
      out->cards = nt, cap = nc;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (mrd_tariff_load(path, &out->cards[out->n], err, errcap) != 0) goto done;
    out->n++;
  }
  if (out->n == 0) {
    errf(err, errcap, "%s: no *.tariff file", dir);
    goto done;
  }
  qsort(out->cards, out->n, sizeof *out->cards, cmp_first_day);
  for (size_t i = 1; i < out->n; i++)
    if (out->cards[i].first_day == out->cards[i - 1].first_day) {
      errf(err, errcap, "%s: %s and %s start on the same day", dir, out->cards[i - 1].name,
           out->cards[i].name);
      goto done;
    }
  rc = 0;
done:
  closedir(d);
  if (rc != 0) mrd_tariff_set_free(out);
  return rc;
}

const mrd_tariff *mrd_tariff_set_at(const mrd_tariff_set *set, int64_t day) {
  const mrd_tariff *best = NULL;
  for (size_t i = 0; set && i < set->n; i++)
    if (set->cards[i].first_day <= day) best = &set->cards[i];
  return best;
}

void mrd_tariff_set_free(mrd_tariff_set *set) {
  if (!set) return;
  free(set->cards);
  memset(set, 0, sizeof *set);
}
