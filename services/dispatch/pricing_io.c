/*
 * pricing_io.c: fares and surge in meridian-dispatch (pricing_io.h). The adapter: reads
 * the tariff file, holds the quotes of live trips, turns the process's local time into the
 * quote's hour and weekday, and hands surge's Redis commands to the hot-cell pipeline.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "geo/route.h"
#include "mrd/log.h"
#include "pricing_io.h"
#include "quote.h"
#include "strmap.h"

#define LEGS_MAX 65536 /* a route of more arcs is not quoted */

typedef struct quote {
  char trip_id[MRD_ID_MAX + 1];
  int64_t cents;
  double surge;
} quote;

struct dsvc_pricing {
  mrd_tariff tariff;
  bool has_tariff;
  const geo_graph *g;
  geo_route_state *st;
  mrd_fare_leg *legs;
  dsp_surge *surge;
  dsp_strmap quotes; /* trip id -> quote */
  int64_t interval_ms, last_update_ms;
  double snap_max_m;
  char key[48]; /* hot:surge:<shard> */
  mrd_gauge *g_max, *g_cells;
  mrd_counter *c_quotes, *c_quote_failed;
};

int dsvc_pricing_open(dsvc_pricing **out, const dsvc_pricing_config *c, const geo_graph *g,
                      mrd_metrics *reg) {
  dsvc_pricing *p = calloc(1, sizeof *p);
  if (!p) return -1;
  dsp_strmap_init(&p->quotes);
  p->g = g;
  p->interval_ms = c->interval_ms > 0 ? c->interval_ms : 5000;
  p->snap_max_m = c->snap_max_m;
  p->last_update_ms = -1;
  snprintf(p->key, sizeof p->key, "hot:surge:%d", c->shard);
  if (c->tariff_path && c->tariff_path[0]) {
    char err[300];
    if (mrd_tariff_load(c->tariff_path, &p->tariff, err, sizeof err) != 0) {
      mrd_log_error("tariff", "err=\"%s\"", err);
      goto fail;
    }
    p->has_tariff = true;
    mrd_log_info("tariff", "name=%s path=%s", p->tariff.name, c->tariff_path);
  }
  if (dsp_surge_new(&c->surge, &p->surge) != 0) {
    mrd_log_error("surge", "err=%s", "bad surge config");
    goto fail;
  }
  if (g &&
      (geo_route_state_new(g, &p->st) != GEO_OK || !(p->legs = malloc(LEGS_MAX * sizeof *p->legs))))
    goto fail;
  int rc = 0;
  rc |= mrd_metrics_gauge(reg, "meridian_dispatch_surge_max", "highest surge multiplier published",
                          NULL, &p->g_max);
  rc |= mrd_metrics_gauge(reg, "meridian_dispatch_surge_cells", "cells with a surge above 1.0",
                          NULL, &p->g_cells);
  rc |= mrd_metrics_counter(reg, "meridian_dispatch_quotes_total", "rides quoted a fare", NULL,
                            &p->c_quotes);
  rc |=
      mrd_metrics_counter(reg, "meridian_dispatch_quote_failed_total",
                          "requests that could not be quoted (no route)", NULL, &p->c_quote_failed);
  if (rc != 0) goto fail;
  mrd_gauge_set(p->g_max, 1.0);
  *out = p;
  return 0;
fail:
  dsvc_pricing_free(p);
  return -1;
}

void dsvc_pricing_free(dsvc_pricing *p) {
  if (!p) return;
  for (size_t i = 0; i < p->quotes.cap; i++)
    if (p->quotes.slots[i].key) free(p->quotes.slots[i].value);
  dsp_strmap_close(&p->quotes);
  dsp_surge_free(p->surge);
  geo_route_state_free(p->st);
  free(p->legs);
  free(p);
}

static bool final_event(mrd_event_type t) {
  return t == MRD_EV_COMPLETED || t == MRD_EV_CANCELLED || t == MRD_EV_NO_DRIVER;
}

static void quote_request(dsvc_pricing *p, mrd_dispatch_event *ev) {
  if (!p->has_tariff || !p->st || !ev->has_pickup || !ev->has_dropoff) return;
  time_t t = (time_t)(ev->ts_ms / 1000);
  struct tm tm;
  if (!localtime_r(&t, &tm)) return;
  geo_latlng a = {ev->pickup.lat, ev->pickup.lon}, b = {ev->dropoff.lat, ev->dropoff.lon};
  double surge = dsp_surge_at(p->surge, a);
  mrd_fare f;
  dsp_quote_when w = {tm.tm_wday, tm.tm_hour, tm.tm_min};
  if (dsp_quote_ride(p->g, p->st, &p->tariff, a, b, p->snap_max_m, w, surge, p->legs, LEGS_MAX,
                     &f) != 0) {
    mrd_counter_inc(p->c_quote_failed);
    return;
  }
  quote *q = dsp_strmap_get(&p->quotes, ev->trip_id);
  if (!q) {
    q = calloc(1, sizeof *q);
    if (!q) return;
    snprintf(q->trip_id, sizeof q->trip_id, "%s", ev->trip_id);
    if (dsp_strmap_put(&p->quotes, q->trip_id, q) != 0) {
      free(q);
      return;
    }
  }
  q->cents = f.total_cents;
  q->surge = f.surge;
  mrd_counter_inc(p->c_quotes);
}

void dsvc_pricing_event(dsvc_pricing *p, mrd_dispatch_event *ev, int64_t now_ms) {
  if (!p || ev->type == MRD_EV_COMMAND_REJECTED || !ev->trip_id[0]) return;
  geo_latlng pickup = {ev->pickup.lat, ev->pickup.lon};
  if (ev->type == MRD_EV_REQUESTED) {
    if (ev->has_pickup) dsp_surge_demand(p->surge, pickup, false, now_ms);
    if (!dsp_strmap_get(&p->quotes, ev->trip_id)) quote_request(p, ev);
  }
  if (ev->type == MRD_EV_NO_DRIVER && ev->has_pickup)
    dsp_surge_demand(p->surge, pickup, true, now_ms);
  quote *q = dsp_strmap_get(&p->quotes, ev->trip_id);
  if (q) {
    ev->has_fare_quote = true;
    ev->fare_quote_cents = q->cents;
    ev->surge = q->surge;
    snprintf(ev->tariff, sizeof ev->tariff, "%s", p->tariff.name);
    if (final_event(ev->type)) free(dsp_strmap_del(&p->quotes, ev->trip_id));
  }
}

static void supply_of(void *ud, const char *cell, int supply, int demand) {
  (void)demand;
  dsp_surge_supply(ud, cell, supply);
}

int dsvc_pricing_hot(dsvc_pricing *p, const dsp_hot *hot, int64_t now_ms, dsp_surge_emit_fn emit,
                     void *ud) {
  if (!p) return 0;
  if (p->last_update_ms < 0 || now_ms - p->last_update_ms >= p->interval_ms) {
    dsp_hot_each_cell(hot, supply_of, p->surge);
    dsp_surge_update(p->surge, now_ms);
    p->last_update_ms = now_ms;
    mrd_gauge_set(p->g_max, dsp_surge_max(p->surge));
    mrd_gauge_set(p->g_cells, (double)dsp_surge_active(p->surge));
  }
  return dsp_surge_collect(p->surge, p->key, emit, ud);
}

void dsvc_pricing_done(dsvc_pricing *p, bool ok) {
  if (p) dsp_surge_done(p->surge, ok);
}

void dsvc_pricing_forget_written(dsvc_pricing *p) {
  if (p) dsp_surge_forget_written(p->surge);
}
