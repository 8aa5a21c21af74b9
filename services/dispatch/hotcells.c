/*
 * hotcells.c: the hot-cell bookkeeping of a dispatch shard (hotcells.h): per driver the
 * state wanted and the state written, per cell the counts wanted and written, and dirty
 * lists so that a batch costs what changed, not what exists.
 */
#include "hotcells.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geohash.h"
#include "geo/geometry.h"
#include "strmap.h"

#define KEY_MAX 64
#define GH_MAX 13

typedef struct hot_driver {
  char id[65];
  bool want;
  geo_latlng want_pos;
  char want_cell[GH_MAX], want_ccell[GH_MAX]; /* GEO cell, count cell */
  bool have;
  geo_latlng have_pos;
  char have_cell[GH_MAX];
  int64_t last_ms;
  bool dirty;
} hot_driver;

typedef struct hot_cell {
  char cell[GH_MAX];
  int supply, supply_written;
  int demand, demand_written;
  int upd[6];                   /* location updates per 10 s bucket, upd[bucket % 6] */
  int64_t upd_bucket;           /* the bucket (now_ms / 10000) upd was last advanced to */
  int updates, updates_written; /* the sum of the 6 buckets when last rolled */
  bool dirty;
} hot_cell;

#define UPD_BUCKET_MS 10000

typedef struct hot_req {
  int64_t at_ms;
  hot_cell *cell;
} hot_req;

struct dsp_hot {
  char geo_key[KEY_MAX + 1], cell_prefix[KEY_MAX + 1], supply_key[KEY_MAX + 1],
      demand_key[KEY_MAX + 1], updates_key[KEY_MAX + 1];
  int64_t upd_rolled; /* the bucket up to which every cell's updates were rolled */
  dsp_hot_config c;
  dsp_strmap drivers, cells;
  hot_driver **dd; /* dirty drivers */
  size_t n_dd, cap_dd;
  hot_cell **dc; /* dirty cells */
  size_t n_dc, cap_dc;
  hot_req *reqs; /* ring of recent requests, oldest first */
  size_t r_head, r_len, r_cap;
  size_t n_dd_batch, n_dc_batch; /* the last collected batch: dd[0..n), dc[0..n) */
  size_t shown;
};

static int grow(void **arr, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap * 2 : 64;
  while (n < need) n *= 2;
  void *p = realloc(*arr, n * size);
  if (!p) return DSP_ENOMEM;
  *arr = p;
  *cap = n;
  return 0;
}

int dsp_hot_new(const dsp_hot_config *c, dsp_hot **out) {
  if (!c || !out || !c->geo_key || !c->cell_prefix || !c->supply_key || !c->demand_key ||
      strlen(c->geo_key) > KEY_MAX || strlen(c->cell_prefix) > KEY_MAX ||
      strlen(c->supply_key) > KEY_MAX || strlen(c->demand_key) > KEY_MAX || c->cell_precision < 1 ||
      c->cell_precision > 12 || c->count_precision < 1 || c->count_precision > 12 ||
      c->demand_window_ms <= 0 || c->ttl_ms <= 0 || c->move_m < 0 ||
      (c->updates_key && strlen(c->updates_key) > KEY_MAX))
    return DSP_EINVAL;
  dsp_hot *h = calloc(1, sizeof *h);
  if (!h) return DSP_ENOMEM;
  h->c = *c;
  strcpy(h->geo_key, c->geo_key);
  strcpy(h->cell_prefix, c->cell_prefix);
  strcpy(h->supply_key, c->supply_key);
  strcpy(h->demand_key, c->demand_key);
  if (c->updates_key) strcpy(h->updates_key, c->updates_key);
  h->c.updates_key = NULL; /* the copy above is the one used */
  dsp_strmap_init(&h->drivers);
  dsp_strmap_init(&h->cells);
  *out = h;
  return 0;
}

void dsp_hot_free(dsp_hot *h) {
  if (!h) return;
  for (size_t i = 0; i < h->drivers.cap; i++)
    if (h->drivers.slots[i].key) free(h->drivers.slots[i].value);
  for (size_t i = 0; i < h->cells.cap; i++)
    if (h->cells.slots[i].key) free(h->cells.slots[i].value);
  dsp_strmap_close(&h->drivers);
  dsp_strmap_close(&h->cells);
  free(h->dd);
  free(h->dc);
  free(h->reqs);
  free(h);
}

static hot_cell *cell_get(dsp_hot *h, const char *gh) {
  hot_cell *c = dsp_strmap_get(&h->cells, gh);
  if (c) return c;
  c = calloc(1, sizeof *c);
  if (!c) return NULL;
  snprintf(c->cell, sizeof c->cell, "%s", gh);
  if (dsp_strmap_put(&h->cells, c->cell, c) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

static int cell_dirty(dsp_hot *h, hot_cell *c) {
  if (c->dirty) return 0;
  if (grow((void **)&h->dc, &h->cap_dc, h->n_dc + 1, sizeof *h->dc)) return DSP_ENOMEM;
  h->dc[h->n_dc++] = c;
  c->dirty = true;
  return 0;
}

static int driver_dirty(dsp_hot *h, hot_driver *d) {
  if (d->dirty) return 0;
  if (grow((void **)&h->dd, &h->cap_dd, h->n_dd + 1, sizeof *h->dd)) return DSP_ENOMEM;
  h->dd[h->n_dd++] = d;
  d->dirty = true;
  return 0;
}

/* Move d's wanted state to (shown, pos), keeping the cell supply counts in step. 0,
 * DSP_EINVAL (pos has no geohash) or DSP_ENOMEM. */
static int set_want(dsp_hot *h, hot_driver *d, bool shown, geo_latlng pos) {
  char cell[GH_MAX] = "", ccell[GH_MAX] = "";
  if (shown && (geo_latlng_to_geohash(pos, h->c.cell_precision, cell) != GEO_OK ||
                geo_latlng_to_geohash(pos, h->c.count_precision, ccell) != GEO_OK))
    return DSP_EINVAL;
  hot_cell *old = d->want ? dsp_strmap_get(&h->cells, d->want_ccell) : NULL;
  hot_cell *neu = shown ? cell_get(h, ccell) : NULL;
  if (shown && !neu) return DSP_ENOMEM;
  if (old != neu || d->want != shown) {
    if (old) {
      old->supply--;
      if (cell_dirty(h, old)) return DSP_ENOMEM;
    }
    if (neu) {
      neu->supply++;
      if (cell_dirty(h, neu)) return DSP_ENOMEM;
    }
  }
  bool changed = d->want != shown || (shown && (!d->have || strcmp(cell, d->have_cell) != 0 ||
                                                geo_equirect_m(pos, d->have_pos) > h->c.move_m));
  d->want = shown;
  if (shown) {
    d->want_pos = pos;
    memcpy(d->want_cell, cell, sizeof cell);
    memcpy(d->want_ccell, ccell, sizeof ccell);
  }
  if (changed || d->want != d->have) return driver_dirty(h, d);
  return 0;
}

int dsp_hot_driver(dsp_hot *h, const char *id, bool shown, geo_latlng pos, int64_t now_ms) {
  if (!id || !id[0] || strlen(id) > 64 || (shown && !geo_latlng_is_valid(pos))) return DSP_EINVAL;
  hot_driver *d = dsp_strmap_get(&h->drivers, id);
  if (!d) {
    if (!shown) return 0; /* never shown: nothing to take back */
    d = calloc(1, sizeof *d);
    if (!d) return DSP_ENOMEM;
    snprintf(d->id, sizeof d->id, "%s", id);
    if (dsp_strmap_put(&h->drivers, d->id, d) != 0) {
      free(d);
      return DSP_ENOMEM;
    }
  }
  d->last_ms = now_ms;
  return set_want(h, d, shown, pos);
}

int dsp_hot_request(dsp_hot *h, geo_latlng pickup, int64_t now_ms) {
  char ccell[GH_MAX];
  if (geo_latlng_to_geohash(pickup, h->c.count_precision, ccell) != GEO_OK) return DSP_EINVAL;
  hot_cell *c = cell_get(h, ccell);
  if (!c) return DSP_ENOMEM;
  if (h->r_len == h->r_cap) { /* grow the ring, unrolled */
    size_t cap = h->r_cap ? h->r_cap * 2 : 256;
    hot_req *n = malloc(cap * sizeof *n);
    if (!n) return DSP_ENOMEM;
    for (size_t i = 0; i < h->r_len; i++) n[i] = h->reqs[(h->r_head + i) % h->r_cap];
    free(h->reqs);
    h->reqs = n;
    h->r_cap = cap;
    h->r_head = 0;
  }
  h->reqs[(h->r_head + h->r_len++) % h->r_cap] = (hot_req){now_ms, c};
  c->demand++;
  return cell_dirty(h, c);
}

/* Advance c's buckets to bucket b, dropping those older than a minute. */
static void upd_roll(hot_cell *c, int64_t b) {
  if (b <= c->upd_bucket) return;
  int64_t gap = b - c->upd_bucket;
  for (int64_t i = 1; i <= gap && i <= 6; i++) c->upd[(c->upd_bucket + i) % 6] = 0;
  c->upd_bucket = b;
}

int dsp_hot_update(dsp_hot *h, geo_latlng pos, int64_t now_ms) {
  if (!h->updates_key[0]) return 0;
  char ccell[GH_MAX];
  if (geo_latlng_to_geohash(pos, h->c.count_precision, ccell) != GEO_OK) return DSP_EINVAL;
  hot_cell *c = cell_get(h, ccell);
  if (!c) return DSP_ENOMEM;
  int64_t b = now_ms / UPD_BUCKET_MS;
  if (c->upd_bucket == 0) c->upd_bucket = b;
  upd_roll(c, b);
  c->upd[b % 6]++;
  return 0;
}

int dsp_hot_disown(dsp_hot *h, const char *id) {
  hot_driver *d = id ? dsp_strmap_get(&h->drivers, id) : NULL;
  if (!d) return 0;
  int rc = set_want(h, d, false, d->want_pos); /* out of this shard's supply */
  if (rc != 0) return rc;
  if (d->have) { /* written: the entry is the new owner's now, nothing to take back */
    h->shown--;
    d->have = false;
  }
  return 0;
}

static int emit_geoadd(dsp_hot *h, dsp_hot_emit_fn emit, void *ud, const char *key,
                       const hot_driver *d) {
  char lon[32], lat[32];
  snprintf(lon, sizeof lon, "%.7f", d->want_pos.lng);
  snprintf(lat, sizeof lat, "%.7f", d->want_pos.lat);
  const char *argv[] = {"GEOADD", key, lon, lat, d->id};
  (void)h;
  return emit(ud, 5, argv);
}

int dsp_hot_collect(dsp_hot *h, int64_t now_ms, dsp_hot_emit_fn emit, void *ud) {
  /* silent drivers stop being shown */
  for (size_t i = 0; i < h->drivers.cap; i++) {
    hot_driver *d = h->drivers.slots[i].key ? h->drivers.slots[i].value : NULL;
    int rc =
        d && d->want && now_ms - d->last_ms >= h->c.ttl_ms ? set_want(h, d, false, d->want_pos) : 0;
    if (rc != 0) return rc;
  }
  /* old requests leave the demand */
  while (h->r_len && now_ms - h->reqs[h->r_head].at_ms >= h->c.demand_window_ms) {
    hot_cell *c = h->reqs[h->r_head].cell;
    c->demand--;
    if (cell_dirty(h, c)) return DSP_ENOMEM;
    h->r_head = (h->r_head + 1) % h->r_cap;
    h->r_len--;
  }
  /* a closed 10 s bucket: every cell's updates of the last minute are recounted */
  int64_t b = now_ms / UPD_BUCKET_MS;
  if (h->updates_key[0] && b > h->upd_rolled) {
    h->upd_rolled = b;
    for (size_t i = 0; i < h->cells.cap; i++) {
      hot_cell *c = h->cells.slots[i].key ? h->cells.slots[i].value : NULL;
      if (!c || c->upd_bucket == 0) continue;
      upd_roll(c, b);
      int sum = 0;
      for (int j = 0; j < 6; j++) sum += c->upd[j];
      if (sum != c->updates) {
        c->updates = sum;
        if (cell_dirty(h, c)) return DSP_ENOMEM;
      }
    }
  }
  int n = 0, rc;
  char key[2 * KEY_MAX + 2];
  for (size_t i = 0; i < h->n_dd; i++) {
    hot_driver *d = h->dd[i];
    if (d->want) {
      bool moved = !d->have || strcmp(d->want_cell, d->have_cell) != 0 ||
                   geo_equirect_m(d->want_pos, d->have_pos) > h->c.move_m;
      if (!moved) continue;
      if ((rc = emit_geoadd(h, emit, ud, h->geo_key, d)) != 0) return rc;
      snprintf(key, sizeof key, "%s%s", h->cell_prefix, d->want_cell);
      if ((rc = emit_geoadd(h, emit, ud, key, d)) != 0) return rc;
      n += 2;
      if (d->have && strcmp(d->want_cell, d->have_cell) != 0) {
        snprintf(key, sizeof key, "%s%s", h->cell_prefix, d->have_cell);
        const char *argv[] = {"ZREM", key, d->id};
        if ((rc = emit(ud, 3, argv)) != 0) return rc;
        n++;
      }
    } else if (d->have) {
      const char *a1[] = {"ZREM", h->geo_key, d->id};
      snprintf(key, sizeof key, "%s%s", h->cell_prefix, d->have_cell);
      const char *a2[] = {"ZREM", key, d->id};
      if ((rc = emit(ud, 3, a1)) != 0 || (rc = emit(ud, 3, a2)) != 0) return rc;
      n += 2;
    }
  }
  for (size_t i = 0; i < h->n_dc; i++) {
    hot_cell *c = h->dc[i];
    char num[16];
    if (c->supply != c->supply_written) {
      snprintf(num, sizeof num, "%d", c->supply);
      const char *set[] = {"HSET", h->supply_key, c->cell, num};
      const char *del[] = {"HDEL", h->supply_key, c->cell};
      if ((rc = c->supply > 0 ? emit(ud, 4, set) : emit(ud, 3, del)) != 0) return rc;
      n++;
    }
    if (c->demand != c->demand_written) {
      snprintf(num, sizeof num, "%d", c->demand);
      const char *set[] = {"HSET", h->demand_key, c->cell, num};
      const char *del[] = {"HDEL", h->demand_key, c->cell};
      if ((rc = c->demand > 0 ? emit(ud, 4, set) : emit(ud, 3, del)) != 0) return rc;
      n++;
    }
    if (h->updates_key[0] && c->updates != c->updates_written) {
      snprintf(num, sizeof num, "%d", c->updates);
      const char *set[] = {"HSET", h->updates_key, c->cell, num};
      const char *del[] = {"HDEL", h->updates_key, c->cell};
      if ((rc = c->updates > 0 ? emit(ud, 4, set) : emit(ud, 3, del)) != 0) return rc;
      n++;
    }
  }
  h->n_dd_batch = h->n_dd;
  h->n_dc_batch = h->n_dc;
  return n;
}

void dsp_hot_done(dsp_hot *h, bool ok) {
  if (!ok) return; /* everything stays dirty: sent again next time */
  for (size_t i = 0; i < h->n_dd_batch; i++) {
    hot_driver *d = h->dd[i];
    d->dirty = false;
    if (d->have) h->shown--;
    d->have = d->want;
    if (d->have) {
      h->shown++;
      d->have_pos = d->want_pos;
      memcpy(d->have_cell, d->want_cell, sizeof d->have_cell);
    } else {
      dsp_strmap_del(&h->drivers, d->id);
      free(d);
    }
  }
  for (size_t i = 0; i < h->n_dc_batch; i++) {
    hot_cell *c = h->dc[i];
    c->dirty = false;
    c->supply_written = c->supply;
    c->demand_written = c->demand;
    c->updates_written = c->updates;
  }
  /* entries made dirty after the batch was collected stay in the lists */
  if (h->n_dd > h->n_dd_batch)
    memmove(h->dd, h->dd + h->n_dd_batch, (h->n_dd - h->n_dd_batch) * sizeof *h->dd);
  h->n_dd -= h->n_dd_batch;
  if (h->n_dc > h->n_dc_batch)
    memmove(h->dc, h->dc + h->n_dc_batch, (h->n_dc - h->n_dc_batch) * sizeof *h->dc);
  h->n_dc -= h->n_dc_batch;
  h->n_dd_batch = h->n_dc_batch = 0;
}

void dsp_hot_forget_written(dsp_hot *h) {
  for (size_t i = 0; i < h->drivers.cap; i++) {
    hot_driver *d = h->drivers.slots[i].key ? h->drivers.slots[i].value : NULL;
    if (!d) continue;
    if (d->want) { /* shown: GEOADD again */
      if (d->have) h->shown--;
      d->have = false;
    } /* hidden but not yet removed: the ZREM is still owed */
    if (d->want || d->have) driver_dirty(h, d); /* out of memory: at its next change */
  }
  for (size_t i = 0; i < h->cells.cap; i++) {
    hot_cell *c = h->cells.slots[i].key ? h->cells.slots[i].value : NULL;
    if (!c) continue;
    c->supply_written = c->supply == 0 ? 0 : -1;
    c->demand_written = c->demand == 0 ? 0 : -1;
    c->updates_written = c->updates == 0 ? 0 : -1;
    if (c->supply || c->demand || c->updates) cell_dirty(h, c);
  }
}

size_t dsp_hot_shown(const dsp_hot *h) { return h->shown; }
size_t dsp_hot_tracked(const dsp_hot *h) { return h->drivers.len; }

void dsp_hot_each_cell(const dsp_hot *h,
                       void (*fn)(void *ud, const char *cell, int supply, int demand), void *ud) {
  for (size_t i = 0; h && fn && i < h->cells.cap; i++) {
    const hot_cell *c = h->cells.slots[i].key ? h->cells.slots[i].value : NULL;
    if (c) fn(ud, c->cell, c->supply, c->demand);
  }
}
