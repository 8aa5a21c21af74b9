/*
 * surge.c: per-cell surge multipliers (surge.h). Cells live in a string map; demand is a
 * ring of (cell, kind, time) oldest first, so dropping what left the window is a pop from
 * the front; the Redis side keeps, per cell, the value last written and a dirty flag, so a
 * batch costs what changed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geohash.h"
#include "strmap.h"
#include "surge.h"

#define GH_MAX 13

typedef struct surge_cell {
  char cell[GH_MAX];
  int requests, no_drivers; /* in the window */
  int supply;               /* set since the last update */
  double smoothed;          /* in [1, cap] */
  double published;         /* 1.0 or a multiple of step in (1, cap] */
  double written;           /* what Redis holds (1.0: no field) */
  bool dirty;               /* published != written, queued in dc */
} surge_cell;

typedef struct surge_dem {
  int64_t at_ms;
  surge_cell *cell;
  bool no_driver;
} surge_dem;

struct dsp_surge {
  dsp_surge_config c;
  dsp_strmap cells;
  surge_dem *ring;
  size_t head, len, cap;
  surge_cell **dc; /* dirty cells */
  size_t n_dc, cap_dc, n_dc_batch;
};

dsp_surge_config dsp_surge_config_default(void) {
  return (dsp_surge_config){.window_ms = 300000,
                            .no_driver_weight = 1.0,
                            .threshold = 1.0,
                            .sensitivity = 0.25,
                            .cap = 3.0,
                            .smoothing = 0.1,
                            .hysteresis = 0.2,
                            .step = 0.1,
                            .precision = 6};
}

static bool config_ok(const dsp_surge_config *c) {
  return c && c->window_ms > 0 && isfinite(c->cap) && c->cap >= 1 && isfinite(c->smoothing) &&
         c->smoothing > 0 && c->smoothing <= 1 && isfinite(c->hysteresis) && c->hysteresis >= 0 &&
         isfinite(c->sensitivity) && c->sensitivity >= 0 && isfinite(c->no_driver_weight) &&
         c->no_driver_weight >= 0 && isfinite(c->threshold) && c->threshold >= 0 &&
         isfinite(c->step) && c->step >= 0 && c->precision >= 1 && c->precision <= 12;
}

double dsp_surge_target(double requests, double no_drivers, double supply,
                        const dsp_surge_config *c) {
  if (!config_ok(c) || !(requests >= 0) || !(no_drivers >= 0) || !(supply >= 0)) return 1.0;
  double pressure = (requests + c->no_driver_weight * no_drivers) / (supply + 1);
  double t = 1 + c->sensitivity * fmax(0, pressure - c->threshold);
  return isfinite(t) ? fmin(c->cap, t) : c->cap;
}

int dsp_surge_new(const dsp_surge_config *c, dsp_surge **out) {
  if (!out || !config_ok(c)) return DSP_EINVAL;
  dsp_surge *s = calloc(1, sizeof *s);
  if (!s) return DSP_ENOMEM;
  s->c = *c;
  dsp_strmap_init(&s->cells);
  *out = s;
  return 0;
}

void dsp_surge_free(dsp_surge *s) {
  if (!s) return;
  for (size_t i = 0; i < s->cells.cap; i++)
    if (s->cells.slots[i].key) free(s->cells.slots[i].value);
  dsp_strmap_close(&s->cells);
  free(s->ring);
  free(s->dc);
  free(s);
}

static surge_cell *cell_get(dsp_surge *s, const char *name) {
  surge_cell *c = dsp_strmap_get(&s->cells, name);
  if (c) return c;
  if (strlen(name) >= GH_MAX) return NULL;
  c = calloc(1, sizeof *c);
  if (!c) return NULL;
  snprintf(c->cell, sizeof c->cell, "%s", name);
  c->smoothed = c->published = c->written = 1.0;
  if (dsp_strmap_put(&s->cells, c->cell, c) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

int dsp_surge_demand(dsp_surge *s, geo_latlng pickup, bool no_driver, int64_t now_ms) {
  char gh[GH_MAX];
  if (!s || geo_latlng_to_geohash(pickup, s->c.precision, gh) != GEO_OK) return DSP_EINVAL;
  surge_cell *c = cell_get(s, gh);
  if (!c) return DSP_ENOMEM;
  if (s->len == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 256;
    surge_dem *r = malloc(nc * sizeof *r);
    if (!r) return DSP_ENOMEM;
    for (size_t i = 0; i < s->len; i++) r[i] = s->ring[(s->head + i) % s->cap];
    free(s->ring);
    s->ring = r, s->cap = nc, s->head = 0;
  }
  s->ring[(s->head + s->len++) % s->cap] = (surge_dem){now_ms, c, no_driver};
  if (no_driver)
    c->no_drivers++;
  else
    c->requests++;
  return 0;
}

int dsp_surge_supply(dsp_surge *s, const char *cell, int drivers) {
  if (!s || !cell || drivers < 0 || strlen(cell) != (size_t)s->c.precision) return DSP_EINVAL;
  surge_cell *c = cell_get(s, cell);
  if (!c) return DSP_ENOMEM;
  c->supply = drivers;
  return 0;
}

static double round_step(double v, double step) { return step > 0 ? round(v / step) * step : v; }

static void mark_dirty(dsp_surge *s, surge_cell *c) {
  if (c->dirty) return;
  if (s->n_dc == s->cap_dc) {
    size_t nc = s->cap_dc ? s->cap_dc * 2 : 64;
    surge_cell **d = realloc(s->dc, nc * sizeof *d);
    if (!d) return; /* stays undirty: written at the next change or forget */
    s->dc = d, s->cap_dc = nc;
  }
  c->dirty = true;
  s->dc[s->n_dc++] = c;
}

void dsp_surge_update(dsp_surge *s, int64_t now_ms) {
  if (!s) return;
  while (s->len > 0 && s->ring[s->head].at_ms <= now_ms - s->c.window_ms) {
    surge_dem *d = &s->ring[s->head];
    if (d->no_driver)
      d->cell->no_drivers--;
    else
      d->cell->requests--;
    s->head = (s->head + 1) % s->cap;
    s->len--;
  }
  const dsp_surge_config *c = &s->c;
  for (size_t i = 0; i < s->cells.cap; i++) {
    surge_cell *sc = s->cells.slots[i].key ? s->cells.slots[i].value : NULL;
    if (!sc) continue;
    double t = dsp_surge_target(sc->requests, sc->no_drivers, sc->supply, c);
    sc->smoothed += c->smoothing * (t - sc->smoothed);
    if (sc->smoothed < 1) sc->smoothed = 1;
    if (sc->smoothed > c->cap) sc->smoothed = c->cap;
    double pub = sc->published;
    if (fabs(sc->smoothed - pub) >= c->hysteresis) {
      pub = round_step(sc->smoothed, c->step);
      if (pub > c->cap) pub = c->cap;
    }
    /* back to exactly 1.0 once the smoothed value is within hysteresis of it */
    if (sc->smoothed - 1 < c->hysteresis) pub = 1.0;
    if (pub < 1) pub = 1.0;
    if (pub != sc->published) {
      sc->published = pub;
      if (pub != sc->written) mark_dirty(s, sc);
    }
    sc->supply = 0;
  }
}

double dsp_surge_of_cell(const dsp_surge *s, const char *cell) {
  const surge_cell *c = s && cell ? dsp_strmap_get(&s->cells, cell) : NULL;
  return c ? c->published : 1.0;
}

double dsp_surge_at(const dsp_surge *s, geo_latlng pos) {
  char gh[GH_MAX];
  if (!s || geo_latlng_to_geohash(pos, s->c.precision, gh) != GEO_OK) return 1.0;
  return dsp_surge_of_cell(s, gh);
}

size_t dsp_surge_active(const dsp_surge *s) {
  size_t n = 0;
  for (size_t i = 0; s && i < s->cells.cap; i++) {
    const surge_cell *c = s->cells.slots[i].key ? s->cells.slots[i].value : NULL;
    if (c && c->published > 1.0) n++;
  }
  return n;
}

double dsp_surge_max(const dsp_surge *s) {
  double m = 1.0;
  for (size_t i = 0; s && i < s->cells.cap; i++) {
    const surge_cell *c = s->cells.slots[i].key ? s->cells.slots[i].value : NULL;
    if (c && c->published > m) m = c->published;
  }
  return m;
}

int dsp_surge_collect(dsp_surge *s, const char *key, dsp_surge_emit_fn emit, void *ud) {
  if (!s || !key || !emit) return DSP_EINVAL;
  int n = 0;
  s->n_dc_batch = s->n_dc;
  for (size_t i = 0; i < s->n_dc; i++) {
    surge_cell *c = s->dc[i];
    int rc;
    if (c->published > 1.0) {
      char v[32];
      snprintf(v, sizeof v, "%.2f", c->published);
      const char *argv[] = {"HSET", key, c->cell, v};
      rc = emit(ud, 4, argv);
    } else {
      const char *argv[] = {"HDEL", key, c->cell};
      rc = emit(ud, 3, argv);
    }
    if (rc != 0) return rc; /* emit's own code */
    n++;
  }
  return n;
}

void dsp_surge_done(dsp_surge *s, bool ok) {
  if (!s || !ok) return;
  for (size_t i = 0; i < s->n_dc_batch && i < s->n_dc; i++) {
    s->dc[i]->written = s->dc[i]->published;
    s->dc[i]->dirty = false;
  }
  /* cells that changed after the collect stay queued */
  size_t k = 0;
  for (size_t i = 0; i < s->n_dc; i++)
    if (s->dc[i]->dirty) s->dc[k++] = s->dc[i];
  s->n_dc = k;
  s->n_dc_batch = 0;
}

void dsp_surge_forget_written(dsp_surge *s) {
  for (size_t i = 0; s && i < s->cells.cap; i++) {
    surge_cell *c = s->cells.slots[i].key ? s->cells.slots[i].value : NULL;
    if (!c) continue;
    c->written = 1.0;
    if (c->published > 1.0) mark_dirty(s, c);
  }
}

bool dsp_surge_check(const dsp_surge *s) {
  if (!s) return false;
  for (size_t i = 0; i < s->cells.cap; i++) {
    const surge_cell *c = s->cells.slots[i].key ? s->cells.slots[i].value : NULL;
    if (!c) continue;
    if (c->requests < 0 || c->no_drivers < 0 || c->supply < 0) return false;
    if (!(c->smoothed >= 1 && c->smoothed <= s->c.cap)) return false;
    if (!(c->published >= 1 && c->published <= s->c.cap)) return false;
    if (c->published > 1 && s->c.step > 0) {
      double q = c->published / s->c.step;
      if (fabs(q - round(q)) > 1e-6 && c->published != s->c.cap) return false;
    }
  }
  return true;
}
