/*
 * snapshot.c: writing and mapping graph snapshots (format in docs/routing.md), with a
 * CRC-32 over the body and a full structural check on open. It is libgeo's only I/O.
 */
#define _POSIX_C_SOURCE 200809L
#include "geo/snapshot.h"

#include "graph_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "MRDGRAPH"
#define ENDIAN_MARK 0x01020304u
#define HEADER_SIZE 64u
#define MAX_TIME 0x7fffffffu

enum {
  S_POS = 1,
  S_NODE_EXT,
  S_NODE_BY_EXT,
  S_FWD_OFF,
  S_TAIL,
  S_HEAD,
  S_TIME,
  S_LEN,
  S_CLS,
  S_TWIN,
  S_ARC_EXT,
  S_SHAPE_OFF,
  S_SHAPE,
  S_REV_OFF,
  S_REV_ARC,
  S_META,
  S_CH_RANK,
  S_CH_UP_OFF,
  S_CH_UP,
  S_CH_DN_OFF,
  S_CH_DN,
  S_RTREE,
  S_COUNT
};

#define FLAG_CH 1u
#define FLAG_RTREE 2u

typedef struct header {
  char magic[8];
  uint32_t version, endian;
  uint64_t file_size;
  uint32_t n_sections, crc;
  uint32_t n, m;
  uint32_t flags, reserved;
  uint64_t source_tag;
  uint8_t pad[8];
} header;
_Static_assert(sizeof(header) == HEADER_SIZE, "header layout");

typedef struct section {
  uint32_t id, reserved;
  uint64_t offset, size;
} section;

/* META: fixed layout of doubles and counts. */
typedef struct meta {
  double top_speed;
  double class_factor[GEO_ROAD_CLASS_COUNT];
  double hour_factor[2][24];
  double day_factor[7];
  double arc_penalty_ms, trip_base_ms;
  uint32_t stats[5];
  uint32_t n_up, n_dn, pad;
} meta;

uint32_t geo_crc32(uint32_t crc, const void *data, size_t len) {
  uint32_t t[8][256];
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  const uint8_t *p = data;
  crc = ~crc;
  while (len >= 8) {
    uint32_t lo, hi;
    memcpy(&lo, p, 4);
    memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
          t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

static size_t align8(size_t x) { return (x + 7) & ~(size_t)7; }

/* ---- write --------------------------------------------------------------------------- */

typedef struct wsec {
  uint32_t id;
  const void *data;
  size_t size;
} wsec;

geo_err geo_snapshot_write(const geo_graph *g, const char *path) {
  if (g == NULL || path == NULL) return GEO_EINVAL;
  uint32_t n = g->n, m = g->m, k = g->shape_off[m];
  meta mt;
  memset(&mt, 0, sizeof mt);
  mt.top_speed = g->top_speed;
  memcpy(mt.class_factor, g->cal.class_factor, sizeof mt.class_factor);
  memcpy(mt.hour_factor, g->cal.hour_factor, sizeof mt.hour_factor);
  memcpy(mt.day_factor, g->cal.day_factor, sizeof mt.day_factor);
  mt.arc_penalty_ms = g->cal.arc_penalty_ms;
  mt.trip_base_ms = g->cal.trip_base_ms;
  mt.stats[0] = g->stats.nodes, mt.stats[1] = g->stats.arcs, mt.stats[2] = g->stats.dropped_nodes;
  mt.stats[3] = g->stats.dropped_arcs, mt.stats[4] = g->stats.self_loops;
  mt.n_up = g->has_ch ? g->ch.n_up : 0;
  mt.n_dn = g->has_ch ? g->ch.n_dn : 0;
  wsec secs[S_COUNT];
  int ns = 0;
  secs[ns++] = (wsec){S_POS, g->pos, (size_t)n * sizeof *g->pos};
  secs[ns++] = (wsec){S_NODE_EXT, g->node_ext, (size_t)n * 8};
  secs[ns++] = (wsec){S_NODE_BY_EXT, g->node_by_ext, (size_t)n * 4};
  secs[ns++] = (wsec){S_FWD_OFF, g->fwd_off, ((size_t)n + 1) * 4};
  secs[ns++] = (wsec){S_TAIL, g->tail, (size_t)m * 4};
  secs[ns++] = (wsec){S_HEAD, g->head, (size_t)m * 4};
  secs[ns++] = (wsec){S_TIME, g->time_ms, (size_t)m * 4};
  secs[ns++] = (wsec){S_LEN, g->len_m, (size_t)m * 4};
  secs[ns++] = (wsec){S_CLS, g->cls, (size_t)m};
  secs[ns++] = (wsec){S_TWIN, g->twin, (size_t)m * 4};
  secs[ns++] = (wsec){S_ARC_EXT, g->arc_ext, (size_t)m * 8};
  secs[ns++] = (wsec){S_SHAPE_OFF, g->shape_off, ((size_t)m + 1) * 4};
  secs[ns++] = (wsec){S_SHAPE, g->shape, (size_t)k * sizeof *g->shape};
  secs[ns++] = (wsec){S_REV_OFF, g->rev_off, ((size_t)n + 1) * 4};
  secs[ns++] = (wsec){S_REV_ARC, g->rev_arc, (size_t)m * 4};
  secs[ns++] = (wsec){S_META, &mt, sizeof mt};
  uint32_t flags = 0;
  if (g->has_ch) {
    flags |= FLAG_CH;
    secs[ns++] = (wsec){S_CH_RANK, g->ch.rank, (size_t)n * 4};
    secs[ns++] = (wsec){S_CH_UP_OFF, g->ch.up_off, ((size_t)n + 1) * 4};
    secs[ns++] = (wsec){S_CH_UP, g->ch.up, (size_t)g->ch.n_up * sizeof(geo_ch_edge)};
    secs[ns++] = (wsec){S_CH_DN_OFF, g->ch.dn_off, ((size_t)n + 1) * 4};
    secs[ns++] = (wsec){S_CH_DN, g->ch.dn, (size_t)g->ch.n_dn * sizeof(geo_ch_edge)};
  }
  size_t rtree_size = geo__graph_rtree_blob_size(g);
  if (rtree_size > 0) {
    flags |= FLAG_RTREE;
    secs[ns++] = (wsec){S_RTREE, NULL, rtree_size};
  }
  size_t off = align8(HEADER_SIZE + (size_t)ns * sizeof(section));
  size_t total = off;
  for (int i = 0; i < ns; i++) total = align8(total + secs[i].size);
  uint8_t *buf = geo__calloc(1, total);
  if (buf == NULL) return GEO_ENOMEM;
  section *tab = (section *)(buf + HEADER_SIZE);
  for (int i = 0; i < ns; i++) {
    tab[i] = (section){secs[i].id, 0, off, secs[i].size};
    if (secs[i].id == S_RTREE) {
      if (geo__graph_rtree_write_blob(g, buf + off, secs[i].size) != GEO_OK) {
        geo__free(buf);
        return GEO_ENOMEM;
      }
    } else if (secs[i].size) {
      memcpy(buf + off, secs[i].data, secs[i].size);
    }
    off = align8(off + secs[i].size);
  }
  header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, MAGIC, 8);
  h.version = GEO_SNAPSHOT_VERSION;
  h.endian = ENDIAN_MARK;
  h.file_size = total;
  h.n_sections = (uint32_t)ns;
  h.n = n, h.m = m;
  h.flags = flags;
  h.source_tag = g->source_tag;
  memcpy(buf, &h, sizeof h); /* with crc 0: the checksum covers the header too */
  h.crc = geo_crc32(0, buf, total);
  memcpy(buf, &h, sizeof h);

  size_t plen = strlen(path);
  char *tmp = geo__malloc(plen + 5);
  if (tmp == NULL) {
    geo__free(buf);
    return GEO_ENOMEM;
  }
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  geo_err err = GEO_EIO;
  FILE *f = fopen(tmp, "wb");
  if (f != NULL) {
    bool ok = fwrite(buf, 1, total, f) == total;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
      err = GEO_OK;
    else {
      int e = errno;
      remove(tmp);
      errno = e;
    }
  }
  geo__free(tmp);
  geo__free(buf);
  return err;
}

/* ---- open and check ------------------------------------------------------------------- */

void geo__snapshot_unmap(void *map, size_t len) { munmap(map, len); }

static bool latlng_ok(geo_latlng p) { return geo_latlng_is_valid(p); }

/* A ranged CSR offset array: off[0] == 0, non-decreasing, off[count] == total. */
static bool offsets_ok(const uint32_t *off, uint32_t count, uint32_t total) {
  if (off[0] != 0 || off[count] != total) return false;
  for (uint32_t i = 0; i < count; i++)
    if (off[i] > off[i + 1]) return false;
  return true;
}

static geo_err check_graph(const geo_graph *g) {
  uint32_t n = g->n, m = g->m;
  for (uint32_t v = 0; v < n; v++)
    if (!latlng_ok(g->pos[v])) return GEO_EFORMAT;
  if (!offsets_ok(g->fwd_off, n, m) || !offsets_ok(g->rev_off, n, m)) return GEO_EFORMAT;
  for (uint32_t v = 0; v < n; v++)
    for (uint32_t a = g->fwd_off[v]; a < g->fwd_off[v + 1]; a++)
      if (g->tail[a] != v) return GEO_EFORMAT;
  for (uint32_t a = 0; a < m; a++) {
    if (g->head[a] >= n || g->time_ms[a] > MAX_TIME || g->cls[a] >= GEO_ROAD_CLASS_COUNT)
      return GEO_EFORMAT;
    if (!isfinite(g->len_m[a]) || g->len_m[a] < 0) return GEO_EFORMAT;
    uint32_t t = g->twin[a];
    if (t != GEO_ARC_NONE &&
        (t >= m || g->twin[t] != a || g->tail[t] != g->head[a] || g->head[t] != g->tail[a]))
      return GEO_EFORMAT;
  }
  for (uint32_t v = 0; v < n; v++)
    for (uint32_t i = g->rev_off[v]; i < g->rev_off[v + 1]; i++)
      if (g->rev_arc[i] >= m || g->head[g->rev_arc[i]] != v) return GEO_EFORMAT;
  if (g->shape_off[0] != 0) return GEO_EFORMAT;
  for (uint32_t a = 0; a < m; a++)
    if (g->shape_off[a] > g->shape_off[a + 1]) return GEO_EFORMAT;
  for (uint32_t i = 0; i < g->shape_off[m]; i++)
    if (!latlng_ok(g->shape[i])) return GEO_EFORMAT;
  for (uint32_t i = 0; i < n; i++) {
    if (g->node_by_ext[i] >= n) return GEO_EFORMAT;
    if (i > 0 && g->node_ext[g->node_by_ext[i - 1]] > g->node_ext[g->node_by_ext[i]])
      return GEO_EFORMAT;
  }
  for (int c = 0; c < GEO_ROAD_CLASS_COUNT; c++)
    if (!isfinite(g->cal.class_factor[c]) || g->cal.class_factor[c] <= 0) return GEO_EFORMAT;
  for (int w = 0; w < 2; w++)
    for (int h = 0; h < 24; h++)
      if (!isfinite(g->cal.hour_factor[w][h]) || g->cal.hour_factor[w][h] <= 0) return GEO_EFORMAT;
  for (int d = 0; d < 7; d++)
    if (!isfinite(g->cal.day_factor[d]) || g->cal.day_factor[d] <= 0) return GEO_EFORMAT;
  if (!isfinite(g->cal.arc_penalty_ms) || g->cal.arc_penalty_ms < 0) return GEO_EFORMAT;
  if (!isfinite(g->cal.trip_base_ms) || g->cal.trip_base_ms < 0) return GEO_EFORMAT;
  return GEO_OK;
}

/* The hierarchy: ranks form a permutation, edges go to higher ranks, original edges match
 * their arcs, and a shortcut's halves meet at a lower-ranked node with weights that add up,
 * so unpacking always ends and yields a connected path. */
static geo_err check_ch(const geo_graph *g) {
  const geo_ch_data *ch = &g->ch;
  uint32_t n = g->n, total = ch->n_up + ch->n_dn;
  if (ch->n_up > UINT32_MAX / 2 || ch->n_dn > UINT32_MAX / 2) return GEO_EFORMAT;
  if (!offsets_ok(ch->up_off, n, ch->n_up) || !offsets_ok(ch->dn_off, n, ch->n_dn))
    return GEO_EFORMAT;
  geo_err err = GEO_EFORMAT;
  uint8_t *seen = geo__calloc(n ? n : 1, 1);
  uint32_t *tail = geo__calloc(total ? total : 1, sizeof *tail); /* tail of each CH edge */
  uint32_t *head = geo__calloc(total ? total : 1, sizeof *head);
  if (seen == NULL || tail == NULL || head == NULL) {
    err = GEO_ENOMEM;
    goto done;
  }
  for (uint32_t v = 0; v < n; v++) {
    if (ch->rank[v] >= n || seen[ch->rank[v]]) goto done;
    seen[ch->rank[v]] = 1;
  }
  for (uint32_t v = 0; v < n; v++) {
    for (uint32_t i = ch->up_off[v]; i < ch->up_off[v + 1]; i++) {
      if (ch->up[i].node >= n) goto done;
      tail[i] = v, head[i] = ch->up[i].node;
    }
    for (uint32_t i = ch->dn_off[v]; i < ch->dn_off[v + 1]; i++) {
      if (ch->dn[i].node >= n) goto done;
      tail[ch->n_up + i] = ch->dn[i].node, head[ch->n_up + i] = v;
    }
  }
  for (uint32_t id = 0; id < total; id++) {
    const geo_ch_edge *e = id < ch->n_up ? &ch->up[id] : &ch->dn[id - ch->n_up];
    uint32_t lo = id < ch->n_up ? tail[id] : head[id];
    if (ch->rank[e->node] <= ch->rank[lo]) goto done;
    if (e->b == GEO_ARC_NONE) {
      if (e->a >= g->m || g->tail[e->a] != tail[id] || g->head[e->a] != head[id] ||
          g->time_ms[e->a] != e->weight)
        goto done;
      continue;
    }
    if (e->a >= total || e->b >= total) goto done;
    uint32_t mid = head[e->a];
    if (tail[e->a] != tail[id] || tail[e->b] != mid || head[e->b] != head[id]) goto done;
    if (ch->rank[mid] >= ch->rank[tail[id]] || ch->rank[mid] >= ch->rank[head[id]]) goto done;
    const geo_ch_edge *ea = e->a < ch->n_up ? &ch->up[e->a] : &ch->dn[e->a - ch->n_up];
    const geo_ch_edge *eb = e->b < ch->n_up ? &ch->up[e->b] : &ch->dn[e->b - ch->n_up];
    if ((uint64_t)ea->weight + eb->weight != e->weight) goto done;
  }
  err = GEO_OK;
done:
  geo__free(seen);
  geo__free(tail);
  geo__free(head);
  return err;
}

static geo_err open_buffer(const uint8_t *buf, size_t len, geo_graph *g) {
  header h;
  if (len < HEADER_SIZE) return GEO_EFORMAT;
  memcpy(&h, buf, sizeof h);
  if (memcmp(h.magic, MAGIC, 8) != 0 || h.endian != ENDIAN_MARK) return GEO_EFORMAT;
  if (h.version != GEO_SNAPSHOT_VERSION) return GEO_EFORMAT;
  if (h.file_size != len || h.n_sections == 0 || h.n_sections > S_COUNT) return GEO_EFORMAT;
  if (HEADER_SIZE + (size_t)h.n_sections * sizeof(section) > len) return GEO_EFORMAT;
  header h0 = h;
  h0.crc = 0;
  uint32_t crc = geo_crc32(geo_crc32(0, &h0, sizeof h0), buf + HEADER_SIZE, len - HEADER_SIZE);
  if (crc != h.crc) return GEO_EFORMAT;
  if (h.n == 0 || h.n >= 0x7fffffffu || h.m >= 0x7fffffffu) return GEO_EFORMAT;
  const void *sec[S_COUNT] = {0};
  uint64_t ssize[S_COUNT] = {0};
  for (uint32_t i = 0; i < h.n_sections; i++) {
    section s;
    memcpy(&s, buf + HEADER_SIZE + i * sizeof s, sizeof s);
    if (s.id == 0 || s.id >= S_COUNT || sec[s.id] != NULL) return GEO_EFORMAT;
    if (s.offset % 8 != 0 || s.offset > len || s.size > len - s.offset) return GEO_EFORMAT;
    if (s.offset < HEADER_SIZE + (size_t)h.n_sections * sizeof(section)) return GEO_EFORMAT;
    sec[s.id] = buf + s.offset;
    ssize[s.id] = s.size;
  }
  uint64_t n = h.n, m = h.m;
  /* required sections and their exact sizes */
  if (!sec[S_SHAPE_OFF] || ssize[S_SHAPE_OFF] != (m + 1) * 4) return GEO_EFORMAT;
  uint32_t k = ((const uint32_t *)sec[S_SHAPE_OFF])[m];
  const struct {
    int id;
    uint64_t size;
  } need[] = {{S_POS, n * 16},          {S_NODE_EXT, n * 8}, {S_NODE_BY_EXT, n * 4},
              {S_FWD_OFF, (n + 1) * 4}, {S_TAIL, m * 4},     {S_HEAD, m * 4},
              {S_TIME, m * 4},          {S_LEN, m * 4},      {S_CLS, m},
              {S_TWIN, m * 4},          {S_ARC_EXT, m * 8},  {S_SHAPE, (uint64_t)k * 16},
              {S_REV_OFF, (n + 1) * 4}, {S_REV_ARC, m * 4},  {S_META, sizeof(meta)}};
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    if (sec[need[i].id] == NULL || ssize[need[i].id] != need[i].size) return GEO_EFORMAT;
  meta mt;
  memcpy(&mt, sec[S_META], sizeof mt);
  g->n = h.n;
  g->m = h.m;
  g->pos = sec[S_POS];
  g->node_ext = sec[S_NODE_EXT];
  g->node_by_ext = sec[S_NODE_BY_EXT];
  g->fwd_off = sec[S_FWD_OFF];
  g->tail = sec[S_TAIL];
  g->head = sec[S_HEAD];
  g->time_ms = sec[S_TIME];
  g->len_m = sec[S_LEN];
  g->cls = sec[S_CLS];
  g->twin = sec[S_TWIN];
  g->arc_ext = sec[S_ARC_EXT];
  g->shape_off = sec[S_SHAPE_OFF];
  g->shape = sec[S_SHAPE];
  g->rev_off = sec[S_REV_OFF];
  g->rev_arc = sec[S_REV_ARC];
  memcpy(g->cal.class_factor, mt.class_factor, sizeof mt.class_factor);
  memcpy(g->cal.hour_factor, mt.hour_factor, sizeof mt.hour_factor);
  memcpy(g->cal.day_factor, mt.day_factor, sizeof mt.day_factor);
  g->cal.arc_penalty_ms = mt.arc_penalty_ms;
  g->cal.trip_base_ms = mt.trip_base_ms;
  g->stats = (geo_graph_stats){mt.stats[0], mt.stats[1], mt.stats[2], mt.stats[3], mt.stats[4]};
  g->source_tag = h.source_tag;
  geo_err err = check_graph(g);
  if (err != GEO_OK) return err;
  geo__graph_compute_top_speed(g); /* not trusted from the file: A* depends on it */
  if (h.flags & FLAG_CH) {
    const struct {
      int id;
      uint64_t size;
    } chs[] = {{S_CH_RANK, n * 4},
               {S_CH_UP_OFF, (n + 1) * 4},
               {S_CH_UP, (uint64_t)mt.n_up * sizeof(geo_ch_edge)},
               {S_CH_DN_OFF, (n + 1) * 4},
               {S_CH_DN, (uint64_t)mt.n_dn * sizeof(geo_ch_edge)}};
    for (size_t i = 0; i < sizeof chs / sizeof chs[0]; i++)
      if (sec[chs[i].id] == NULL || ssize[chs[i].id] != chs[i].size) return GEO_EFORMAT;
    g->ch = (geo_ch_data){sec[S_CH_RANK], sec[S_CH_UP_OFF], sec[S_CH_UP], sec[S_CH_DN_OFF],
                          sec[S_CH_DN],   mt.n_up,          mt.n_dn};
    if ((err = check_ch(g)) != GEO_OK) return err;
    /* the query layout is derived, not stored: a checked hierarchy always makes one */
    if ((err = geo__ch_query_make(&g->ch, g->n, g->len_m, &g->chq)) != GEO_OK) return err;
    g->has_ch = true;
  }
  if (h.flags & FLAG_RTREE) {
    if (sec[S_RTREE] == NULL) return GEO_EFORMAT;
    err = geo__graph_rtree_open_blob(g, sec[S_RTREE], (size_t)ssize[S_RTREE]);
    if (err != GEO_OK) return err == GEO_ENOMEM ? err : GEO_EFORMAT;
  }
  return GEO_OK;
}

geo_err geo_snapshot_open_buffer(const void *buf, size_t len, geo_graph **out) {
  if (buf == NULL || out == NULL || ((uintptr_t)buf & 7) != 0) return GEO_EINVAL;
  geo_graph *g = geo__calloc(1, sizeof *g);
  if (g == NULL) return GEO_ENOMEM;
  g->read_only = true;
  geo_err err = open_buffer(buf, len, g);
  if (err != GEO_OK) {
    geo_graph_free(g);
    return err;
  }
  *out = g;
  return GEO_OK;
}

geo_err geo_snapshot_load(const char *path, geo_graph **out) {
  if (path == NULL || out == NULL) return GEO_EINVAL;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return GEO_EIO;
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    close(fd);
    return GEO_EIO;
  }
  if (sb.st_size < (off_t)HEADER_SIZE) {
    close(fd);
    return GEO_EFORMAT;
  }
  size_t len = (size_t)sb.st_size;
  void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (map == MAP_FAILED) {
    errno = e;
    return GEO_EIO;
  }
  geo_graph *g = geo__calloc(1, sizeof *g);
  if (g == NULL) {
    munmap(map, len);
    return GEO_ENOMEM;
  }
  g->map = map;
  g->map_len = len;
  g->read_only = true;
  geo_err err = open_buffer(map, len, g);
  if (err != GEO_OK) {
    geo_graph_free(g);
    return err;
  }
  *out = g;
  return GEO_OK;
}
