/*
 * dsp_fakes.c: the test doubles of dsp_fakes.h.
 */
#include "dsp_fakes.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "geo/geometry.h"

/* ---------------------------------------------------------------- index */

static int ix_upsert(void *ud, uint64_t id, geo_latlng pos) {
  fake_index *ix = ud;
  for (size_t i = 0; i < ix->n; i++)
    if (ix->ids[i] == id) {
      ix->pos[i] = pos;
      return 0;
    }
  if (ix->n == sizeof ix->ids / sizeof ix->ids[0]) return -1;
  ix->ids[ix->n] = id;
  ix->pos[ix->n++] = pos;
  return 0;
}

static void ix_remove(void *ud, uint64_t id) {
  fake_index *ix = ud;
  for (size_t i = 0; i < ix->n; i++)
    if (ix->ids[i] == id) {
      ix->ids[i] = ix->ids[--ix->n];
      ix->pos[i] = ix->pos[ix->n];
      return;
    }
}

static int ix_knn(void *ud, geo_latlng c, double radius_m, size_t k,
                  bool (*accept)(void *, uint64_t), void *actx, uint64_t *out_ids,
                  double *out_dist) {
  fake_index *ix = ud;
  ix->knn_calls++;
  size_t n = 0;
  for (size_t i = 0; i < ix->n; i++) {
    double d = geo_haversine_m(c, ix->pos[i]);
    if (d > radius_m || !accept(actx, ix->ids[i])) continue;
    /* insertion into the sorted top-k */
    size_t j = n < k ? n++ : k;
    if (j == k && (k == 0 || d >= out_dist[k - 1])) continue;
    if (j == k) j = k - 1;
    while (j > 0 && out_dist[j - 1] > d) {
      out_dist[j] = out_dist[j - 1];
      out_ids[j] = out_ids[j - 1];
      j--;
    }
    out_dist[j] = d;
    out_ids[j] = ix->ids[i];
  }
  return (int)n;
}

dsp_index fake_index_iface(fake_index *ix) {
  return (dsp_index){.ud = ix, .upsert = ix_upsert, .remove = ix_remove, .knn = ix_knn};
}

/* ---------------------------------------------------------------- router */

void fake_router_init(fake_router *r, double snap_max_m) {
  memset(r, 0, sizeof *r);
  r->snap_max_m = snap_max_m;
}

uint32_t fake_router_node(fake_router *r, double lat, double lng) {
  assert_true(r->n_nodes < FAKE_MAX_NODES);
  r->node[r->n_nodes] = (geo_latlng){lat, lng};
  return (uint32_t)r->n_nodes++;
}

void fake_router_road(fake_router *r, uint32_t a, uint32_t b, double time_s, bool two_way) {
  assert_true(r->n_edges + 2 <= FAKE_MAX_EDGES);
  r->from[r->n_edges] = a;
  r->to[r->n_edges] = b;
  r->time_s[r->n_edges++] = time_s;
  if (two_way) fake_router_road(r, b, a, time_s, false);
}

void fake_router_grid(fake_router *r, double lat0, double lng0, size_t rows, size_t cols,
                      double step_deg, double time_s) {
  uint32_t base = (uint32_t)r->n_nodes;
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++)
      fake_router_node(r, lat0 + (double)i * step_deg, lng0 + (double)j * step_deg);
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++) {
      uint32_t a = base + (uint32_t)(i * cols + j);
      if (j + 1 < cols) fake_router_road(r, a, a + 1, time_s, true);
      if (i + 1 < rows) fake_router_road(r, a, a + (uint32_t)cols, time_s, true);
    }
}

static uint32_t nearest_node(const fake_router *r, geo_latlng p, double *dist) {
  uint32_t best = UINT32_MAX;
  double bd = INFINITY;
  for (size_t i = 0; i < r->n_nodes; i++) {
    double d = geo_haversine_m(p, r->node[i]);
    if (d < bd) {
      bd = d;
      best = (uint32_t)i;
    }
  }
  *dist = bd;
  return best;
}

static int rt_snap(void *ud, geo_latlng p, dsp_snap *out) {
  fake_router *r = ud;
  r->snap_calls++;
  double d;
  uint32_t n = nearest_node(r, p, &d);
  if (n == UINT32_MAX || d > r->snap_max_m) return 1;
  memset(out, 0, sizeof *out);
  out->pos = r->node[n];
  out->off_road_m = d;
  out->data[0] = n;
  return 0;
}

/* Dijkstra from the target over reversed roads (O(V^2): graphs here are tiny). */
static int rt_etas(void *ud, const dsp_snap *target, const geo_latlng *origins, size_t n,
                   double max_eta_s, double *out) {
  fake_router *r = ud;
  r->eta_calls++;
  if (r->fail_etas) return -1;
  double dist[FAKE_MAX_NODES];
  bool done[FAKE_MAX_NODES] = {false};
  for (size_t i = 0; i < r->n_nodes; i++) dist[i] = INFINITY;
  dist[target->data[0]] = 0;
  for (;;) {
    size_t u = SIZE_MAX;
    for (size_t i = 0; i < r->n_nodes; i++)
      if (!done[i] && isfinite(dist[i]) && (u == SIZE_MAX || dist[i] < dist[u])) u = i;
    if (u == SIZE_MAX || dist[u] > max_eta_s) break;
    done[u] = true;
    for (size_t e = 0; e < r->n_edges; e++)
      if (r->to[e] == u && dist[u] + r->time_s[e] < dist[r->from[e]])
        dist[r->from[e]] = dist[u] + r->time_s[e];
  }
  for (size_t i = 0; i < n; i++) {
    double d;
    uint32_t o = nearest_node(r, origins[i], &d);
    out[i] = (o != UINT32_MAX && done[o]) ? dist[o] : INFINITY;
  }
  return 0;
}

dsp_router fake_router_iface(fake_router *r) {
  return (dsp_router){.ud = r, .snap = rt_snap, .etas_to = rt_etas};
}

/* ---------------------------------------------------------------- fixture */

void fixture_init(fixture *f) {
  memset(f, 0, sizeof *f);
  dsp_config_default(&f->cfg);
  f->cfg.shard = 3;
  f->cfg.epoch = 7;
  f->cfg.incarnation = 36 * 36; /* "100" in base 36 */
  f->cfg.ttl_sweep_ms = 0;
  fake_router_init(&f->rt, 150);
  fake_router_grid(&f->rt, 40.74, -74.0, 21, 21, 0.001, 10);
  f->cm = dsp_claims_mem_new();
  assert_non_null(f->cm);
}

void fixture_start(fixture *f) {
  dsp_index ix = fake_index_iface(&f->ix);
  dsp_router rt = fake_router_iface(&f->rt);
  dsp_claims cl = dsp_claims_mem_iface(f->cm);
  assert_int_equal(dsp_shard_new(&f->cfg, &ix, &rt, &cl, &f->s), DSP_OK);
}

void fixture_close(fixture *f) {
  if (f->s) check_and_clear(f);
  dsp_shard_free(f->s);
  dsp_claims_mem_free(f->cm);
  f->s = NULL;
  f->cm = NULL;
}

int ping(fixture *f, const char *id, double lat, double lng, uint64_t seq, int64_t now_ms) {
  dsp_location l = {.driver_id = id, .pos = {lat, lng}, .ts_ms = now_ms, .seq = seq};
  return dsp_on_location(f->s, &l, now_ms);
}

int request(fixture *f, const char *rider, const char *req, double lat, double lng,
            int64_t now_ms) {
  dsp_request r = {.request_id = req, .rider_id = rider, .pickup = {lat, lng},
                   .dropoff = {lat + 0.005, lng + 0.005}};
  return dsp_on_request(f->s, &r, "ref-1", now_ms);
}

size_t n_events(const dsp_shard *s, int type) {
  const dsp_output *o;
  size_t n = dsp_outputs(s, &o), c = 0;
  for (size_t i = 0; i < n; i++)
    if (o[i].kind == DSP_OUT_EVENT && (type == 0 || (int)o[i].u.event.type == type)) c++;
  return c;
}

size_t n_replies(const dsp_shard *s) {
  const dsp_output *o;
  size_t n = dsp_outputs(s, &o), c = 0;
  for (size_t i = 0; i < n; i++) c += o[i].kind == DSP_OUT_REPLY;
  return c;
}

const dsp_event *event_at(const dsp_shard *s, int type, size_t idx) {
  const dsp_output *o;
  size_t n = dsp_outputs(s, &o);
  for (size_t i = 0; i < n; i++)
    if (o[i].kind == DSP_OUT_EVENT && (type == 0 || (int)o[i].u.event.type == type) &&
        idx-- == 0)
      return &o[i].u.event;
  return NULL;
}

const dsp_event *last_event(const dsp_shard *s) {
  const dsp_output *o;
  size_t n = dsp_outputs(s, &o);
  for (size_t i = n; i-- > 0;)
    if (o[i].kind == DSP_OUT_EVENT) return &o[i].u.event;
  return NULL;
}

const dsp_reply *last_reply(const dsp_shard *s) {
  const dsp_output *o;
  size_t n = dsp_outputs(s, &o);
  for (size_t i = n; i-- > 0;)
    if (o[i].kind == DSP_OUT_REPLY) return &o[i].u.reply;
  return NULL;
}

void check_and_clear(fixture *f) {
  const dsp_output *o;
  size_t n = dsp_outputs(f->s, &o);
  for (size_t i = 0; i < n; i++) {
    if (o[i].kind != DSP_OUT_EVENT) continue;
    const dsp_event *e = &o[i].u.event;
    assert_int_equal(e->shard, f->cfg.shard);
    assert_true(e->epoch >= 1);
    assert_true(e->trip_id[0] == 't');
    seen_trip *st = NULL;
    for (size_t j = 0; j < f->n_seen; j++)
      if (strcmp(f->seen[j].id, e->trip_id) == 0) st = &f->seen[j];
    if (!st) {
      assert_int_equal(e->type, DSP_EV_REQUESTED);
      assert_int_equal(e->seq, 1);
      assert_true(f->n_seen < sizeof f->seen / sizeof f->seen[0]);
      st = &f->seen[f->n_seen++];
      strcpy(st->id, e->trip_id);
    } else {
      if (!dsp_trip_transition_allowed(st->status, e->status))
        fail_msg("trip %s: %s -> %s by %s is not in the table", e->trip_id,
                 dsp_trip_state_name(st->status), dsp_trip_state_name(e->status),
                 dsp_event_type_name(e->type));
      assert_int_equal(e->seq, st->seq + 1);
    }
    st->status = e->status;
    st->seq = e->seq;
    /* Each event is followed by the snapshot of the same trip at the same seq. */
    assert_true(i + 1 < n);
    assert_int_equal(o[i + 1].kind, DSP_OUT_SNAPSHOT);
    assert_string_equal(o[i + 1].u.snapshot.trip_id, e->trip_id);
    assert_int_equal(o[i + 1].u.snapshot.seq, e->seq);
    assert_int_equal(o[i + 1].u.snapshot.status, e->status);
  }
  dsp_outputs_clear(f->s);
}

unsigned test_seed(void) {
  const char *env = getenv("SEED");
  unsigned seed = env && *env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
  fprintf(stderr, "SEED=%u\n", seed);
  return seed;
}
