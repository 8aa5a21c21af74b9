/*
 * shardmap.c: the shard map as a value (mrd/shardmap.h). Ranges are kept sorted by start;
 * every operation builds the new list beside the old one and swaps it in, so a failure
 * leaves the map as it was.
 */
#include "mrd/shardmap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char GH_ALPHABET[] = "0123456789bcdefghjkmnpqrstuvwxyz";

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t cap, const char *fmt,
                                                         ...) {
  if (!err || !cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

void mrd_shardmap_init(mrd_shardmap *m) { memset(m, 0, sizeof *m); }

void mrd_shardmap_close(mrd_shardmap *m) {
  if (!m) return;
  free(m->r);
  memset(m, 0, sizeof *m);
}

int mrd_shardmap_copy(mrd_shardmap *dst, const mrd_shardmap *src) {
  mrd_shard_range *r = NULL;
  if (src->n) {
    r = malloc(src->n * sizeof *r);
    if (!r) return MRD_ENOMEM;
    memcpy(r, src->r, src->n * sizeof *r);
  }
  free(dst->r);
  dst->r = r;
  dst->n = dst->cap = src->n;
  return 0;
}

bool mrd_range_key_valid(const char *key) {
  if (!key) return false;
  size_t n = strlen(key);
  if (n > MRD_RANGE_KEY_MAX) return false;
  if (strcmp(key, "~") == 0) return true;
  for (size_t i = 0; i < n; i++)
    if (!strchr(GH_ALPHABET, key[i]) || key[i] == '\0') return false;
  return true;
}

int mrd_geohash_prefix_end(const char *p, char *out) {
  if (!p || strcmp(p, "~") == 0 || !mrd_range_key_valid(p)) return MRD_EINVAL;
  char b[MRD_RANGE_KEY_MAX + 1];
  snprintf(b, sizeof b, "%s", p);
  size_t n = strlen(b);
  while (n > 0) {
    const char *at = strchr(GH_ALPHABET, b[n - 1]);
    if (at[1] != '\0') { /* not 'z': the next character, and the prefix ends there */
      b[n - 1] = at[1];
      b[n] = '\0';
      memcpy(out, b, n + 1);
      return 0;
    }
    n--; /* 'z': carry into the previous character */
  }
  strcpy(out, "~");
  return 0;
}

static int reserve(mrd_shard_range **r, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap * 2 : 16;
  while (c < need) c *= 2;
  mrd_shard_range *n = realloc(*r, c * sizeof *n);
  if (!n) return MRD_ENOMEM;
  *r = n;
  *cap = c;
  return 0;
}

int mrd_shardmap_add(mrd_shardmap *m, const char *start, const char *end, uint32_t shard) {
  if (!start || !end || strlen(start) > MRD_RANGE_KEY_MAX || strlen(end) > MRD_RANGE_KEY_MAX)
    return MRD_EINVAL;
  if (reserve(&m->r, &m->cap, m->n + 1)) return MRD_ENOMEM;
  mrd_shard_range *r = &m->r[m->n++];
  strcpy(r->start, start);
  strcpy(r->end, end);
  r->shard = shard;
  return 0;
}

static int by_start(const void *a, const void *b) {
  return strcmp(((const mrd_shard_range *)a)->start, ((const mrd_shard_range *)b)->start);
}

int mrd_shardmap_check(mrd_shardmap *m, char *err, size_t cap) {
  if (m->n == 0) {
    seterr(err, cap, "the map has no range");
    return MRD_EINVAL;
  }
  qsort(m->r, m->n, sizeof *m->r, by_start);
  for (size_t i = 0; i < m->n; i++) {
    const mrd_shard_range *r = &m->r[i];
    if (!mrd_range_key_valid(r->start) || !mrd_range_key_valid(r->end)) {
      seterr(err, cap, "range ['%s', '%s'): a boundary is not a geohash prefix, '' or '~'",
             r->start, r->end);
      return MRD_EINVAL;
    }
    if (r->shard >= MRD_SHARDS_MAX) {
      seterr(err, cap, "range ['%s', '%s'): shard %u is not below %d", r->start, r->end, r->shard,
             MRD_SHARDS_MAX);
      return MRD_EINVAL;
    }
    if (strcmp(r->start, r->end) >= 0) {
      seterr(err, cap, "range ['%s', '%s') is empty", r->start, r->end);
      return MRD_EINVAL;
    }
    if (i == 0 && r->start[0] != '\0') {
      seterr(err, cap, "the first range starts at '%s', not '' (the world's start is not covered)",
             r->start);
      return MRD_EINVAL;
    }
    if (i + 1 < m->n && strcmp(r->end, m->r[i + 1].start) != 0) {
      seterr(err, cap, "range ['%s', '%s') is followed by one starting at '%s' (%s)", r->start,
             r->end, m->r[i + 1].start,
             strcmp(r->end, m->r[i + 1].start) < 0 ? "a gap" : "an overlap");
      return MRD_EINVAL;
    }
  }
  if (strcmp(m->r[m->n - 1].end, "~") != 0) {
    seterr(err, cap, "the last range ends at '%s', not '~' (the world's end is not covered)",
           m->r[m->n - 1].end);
    return MRD_EINVAL;
  }
  return 0;
}

uint32_t mrd_shardmap_lookup(const mrd_shardmap *m, const char *s) {
  size_t lo = 0, hi = m->n; /* the last range whose start <= s: the first starts at "" */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(m->r[mid].start, s) <= 0)
      lo = mid;
    else
      hi = mid;
  }
  return m->r[lo].shard;
}

/* Merge adjacent ranges of one shard (m sorted). */
static void normalize(mrd_shardmap *m) {
  if (m->n == 0) return;
  size_t w = 0;
  for (size_t i = 1; i < m->n; i++) {
    if (m->r[i].shard == m->r[w].shard && strcmp(m->r[w].end, m->r[i].start) == 0) {
      strcpy(m->r[w].end, m->r[i].end);
    } else {
      m->r[++w] = m->r[i];
    }
  }
  m->n = w + 1;
}

static const char *smax(const char *a, const char *b) { return strcmp(a, b) >= 0 ? a : b; }
static const char *smin(const char *a, const char *b) { return strcmp(a, b) <= 0 ? a : b; }

static int push(mrd_shard_range **r, size_t *n, size_t *cap, const char *s, const char *e,
                uint32_t shard) {
  if (strcmp(s, e) >= 0) return 0; /* empty part */
  if (reserve(r, cap, *n + 1)) return MRD_ENOMEM;
  mrd_shard_range *x = &(*r)[(*n)++];
  strcpy(x->start, s);
  strcpy(x->end, e);
  x->shard = shard;
  return 0;
}

int mrd_shardmap_assign(mrd_shardmap *m, const char *start, const char *end, int from,
                        uint32_t to) {
  if (!mrd_range_key_valid(start) || !mrd_range_key_valid(end) || strcmp(start, end) >= 0 ||
      to >= MRD_SHARDS_MAX || from >= MRD_SHARDS_MAX)
    return MRD_EINVAL;
  mrd_shard_range *r = NULL;
  size_t n = 0, cap = 0;
  for (size_t i = 0; i < m->n; i++) {
    const mrd_shard_range *x = &m->r[i];
    const char *a = smax(x->start, start), *b = smin(x->end, end);
    if (strcmp(a, b) >= 0) { /* untouched */
      if (push(&r, &n, &cap, x->start, x->end, x->shard)) goto nomem;
      continue;
    }
    bool moves = from < 0 || x->shard == (uint32_t)from;
    if (push(&r, &n, &cap, x->start, a, x->shard) ||
        push(&r, &n, &cap, a, b, moves ? to : x->shard) || push(&r, &n, &cap, b, x->end, x->shard))
      goto nomem;
  }
  free(m->r);
  m->r = r;
  m->n = n;
  m->cap = cap;
  normalize(m);
  return 0;
nomem:
  free(r);
  return MRD_ENOMEM;
}

int mrd_shardmap_diff(const mrd_shardmap *a, const mrd_shardmap *b, mrd_shard_move **out,
                      size_t *n) {
  mrd_shard_move *mv = NULL;
  size_t nm = 0, cap = 0;
  size_t i = 0, j = 0;
  const char *pos = "";
  /* walk both tilings together: each step covers [pos, min(a[i].end, b[j].end)) */
  while (i < a->n && j < b->n) {
    const char *e = smin(a->r[i].end, b->r[j].end);
    uint32_t f = a->r[i].shard, t = b->r[j].shard;
    if (f != t && strcmp(pos, e) < 0) {
      if (nm && mv[nm - 1].from == f && mv[nm - 1].to == t && strcmp(mv[nm - 1].end, pos) == 0) {
        strcpy(mv[nm - 1].end, e);
      } else {
        if (nm == cap) {
          size_t c = cap ? cap * 2 : 8;
          mrd_shard_move *x = realloc(mv, c * sizeof *x);
          if (!x) {
            free(mv);
            return MRD_ENOMEM;
          }
          mv = x;
          cap = c;
        }
        strcpy(mv[nm].start, pos);
        strcpy(mv[nm].end, e);
        mv[nm].from = f;
        mv[nm].to = t;
        nm++;
      }
    }
    pos = e;
    bool ai = strcmp(a->r[i].end, e) == 0, bj = strcmp(b->r[j].end, e) == 0;
    if (ai) i++;
    if (bj) j++;
  }
  *out = mv;
  *n = nm;
  return 0;
}

bool mrd_range_meets_prefix(const char *start, const char *end, const char *p) {
  char pe[MRD_RANGE_KEY_MAX + 1];
  if (mrd_geohash_prefix_end(p, pe) != 0) return false;
  return strcmp(start, pe) < 0 && strcmp(p, end) < 0;
}

uint64_t mrd_shardmap_shards(const mrd_shardmap *m) {
  uint64_t mask = 0;
  for (size_t i = 0; i < m->n; i++) mask |= UINT64_C(1) << m->r[i].shard;
  return mask;
}
