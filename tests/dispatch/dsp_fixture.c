/*
 * dsp_fixture.c: the test fixture of dsp_fixture.h.
 */
#include "dsp_fixture.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

void fixture_init(fixture *f) {
  memset(f, 0, sizeof *f);
  dsp_config_default(&f->cfg);
  f->cfg.shard = 3;
  f->cfg.epoch = 7;
  f->cfg.incarnation = 36 * 36; /* "100" in base 36 */
  f->cfg.ttl_sweep_ms = 0;
  assert_int_equal(geo_graph_builder_new(&f->gb), GEO_OK);
  f->cm = dsp_claims_mem_new();
  assert_non_null(f->cm);
}

uint32_t fixture_node(fixture *f, double lat, double lng) {
  uint32_t idx;
  assert_int_equal(
      geo_graph_builder_add_node(f->gb, (int64_t)f->n_nodes, (geo_latlng){lat, lng}, &idx), GEO_OK);
  f->n_nodes++;
  return idx;
}

void fixture_road(fixture *f, uint32_t a, uint32_t b, double time_s, bool two_way) {
  uint32_t ms = (uint32_t)llround(time_s * 1000);
  geo_graph_road r = {.from = a,
                      .to = b,
                      .fwd_time_ms = ms,
                      .bwd_time_ms = two_way ? ms : GEO_TIME_NONE,
                      .length_m = time_s * 10,
                      .road_class = GEO_ROAD_RESIDENTIAL,
                      .ext_id = 0};
  assert_int_equal(geo_graph_builder_add_road(f->gb, &r), GEO_OK);
}

void fixture_grid(fixture *f, double lat0, double lng0, uint32_t rows, uint32_t cols,
                  double step_deg, double time_s) {
  uint32_t base = 0;
  for (uint32_t i = 0; i < rows; i++)
    for (uint32_t j = 0; j < cols; j++) {
      uint32_t v = fixture_node(f, lat0 + i * step_deg, lng0 + j * step_deg);
      if (i == 0 && j == 0) base = v;
    }
  for (uint32_t i = 0; i < rows; i++)
    for (uint32_t j = 0; j < cols; j++) {
      uint32_t a = base + i * cols + j;
      if (j + 1 < cols) fixture_road(f, a, a + 1, time_s, true);
      if (i + 1 < rows) fixture_road(f, a, a + cols, time_s, true);
    }
}

void fixture_city(fixture *f) { fixture_grid(f, 40.74, -74.0, 21, 21, 0.001, 10); }

/* The router, with a switch to make etas_to fail and a call counter. */
static int fx_snap(void *ud, geo_latlng p, dsp_snap *out) {
  fixture *f = ud;
  dsp_router r = dsp_graph_router_iface(f->gr);
  return r.snap(r.ud, p, out);
}

static int fx_etas(void *ud, const dsp_snap *t, const geo_latlng *o, size_t n, double max_s,
                   double *out) {
  fixture *f = ud;
  f->etas_calls++;
  if (f->fail_etas) return -1;
  dsp_router r = dsp_graph_router_iface(f->gr);
  return r.etas_to(r.ud, t, o, n, max_s, out);
}

static int fx_etas_moving(void *ud, const dsp_snap *t, const geo_latlng *o, const dsp_motion *m,
                          size_t n, double max_s, double *out) {
  fixture *f = ud;
  f->etas_calls++;
  if (f->fail_etas) return -1;
  dsp_router r = dsp_graph_router_iface(f->gr);
  return r.etas_to_moving(r.ud, t, o, m, n, max_s, out);
}

static double fx_quote(void *ud, double route_s, int64_t at_ms) {
  fixture *f = ud;
  dsp_router r = dsp_graph_router_iface(f->gr);
  return r.quote_eta_s(r.ud, route_s, at_ms);
}

void fixture_restart(fixture *f) {
  dsp_shard_free(f->s);
  f->s = NULL;
  f->n_seen = 0;
  dsp_index ix = dsp_qt_index_iface(f->qi);
  dsp_router rt = {.ud = f,
                   .snap = fx_snap,
                   .etas_to = fx_etas,
                   .quote_eta_s = fx_quote,
                   .etas_to_moving = fx_etas_moving};
  dsp_claims cl = dsp_claims_mem_iface(f->cm);
  assert_int_equal(dsp_shard_new(&f->cfg, &ix, &rt, &cl, &f->s), DSP_OK);
}

void fixture_start(fixture *f) {
  geo_graph_build_opts o = {.keep_largest_scc = false, .reorder_nodes = false};
  assert_int_equal(geo_graph_builder_build(f->gb, &o, &f->g, NULL), GEO_OK);
  geo_graph_builder_free(f->gb);
  f->gb = NULL;
  assert_int_equal(dsp_graph_router_new(f->g, 150, false, &f->gr), DSP_OK);
  assert_int_equal(dsp_qt_index_new(&f->qi), DSP_OK);
  fixture_restart(f);
}

void fixture_close(fixture *f) {
  if (f->s) check_and_clear(f);
  dsp_shard_free(f->s);
  dsp_graph_router_free(f->gr);
  dsp_qt_index_free(f->qi);
  geo_graph_free(f->g);
  geo_graph_builder_free(f->gb);
  dsp_claims_mem_free(f->cm);
  memset(f, 0, sizeof *f);
}

int fixture_setup_city(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  fixture_init(f);
  fixture_city(f);
  fixture_start(f);
  *state = f;
  return 0;
}

int fixture_teardown(void **state) {
  fixture_close(*state);
  free(*state);
  return 0;
}

int ping(fixture *f, const char *id, double lat, double lng, uint64_t seq, int64_t now_ms) {
  dsp_location l = {.driver_id = id, .pos = {lat, lng}, .ts_ms = now_ms, .seq = seq};
  return dsp_on_location(f->s, &l, now_ms);
}

int request(fixture *f, const char *rider, const char *req, double lat, double lng,
            int64_t now_ms) {
  dsp_request r = {.request_id = req,
                   .rider_id = rider,
                   .pickup = {lat, lng},
                   .dropoff = {lat + 0.003, lng + 0.003}};
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
    if (o[i].kind == DSP_OUT_EVENT && (type == 0 || (int)o[i].u.event.type == type) && idx-- == 0)
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
    assert_int_equal(e->epoch, f->cfg.epoch);
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
    assert_true(i + 1 < n);
    assert_int_equal(o[i + 1].kind, DSP_OUT_SNAPSHOT);
    assert_string_equal(o[i + 1].u.snapshot.trip_id, e->trip_id);
    assert_int_equal(o[i + 1].u.snapshot.seq, e->seq);
    assert_int_equal(o[i + 1].u.snapshot.status, e->status);
    /* The driver leaves the trip with the events that end his part in it. */
    bool leaves = e->type == DSP_EV_OFFER_DECLINED || e->type == DSP_EV_OFFER_EXPIRED ||
                  ((e->type == DSP_EV_CANCELLED || e->type == DSP_EV_COMPLETED) && e->driver_id[0]);
    if (leaves)
      assert_string_equal(o[i + 1].u.snapshot.released_driver_id, e->driver_id);
    else
      assert_string_equal(o[i + 1].u.snapshot.released_driver_id, "");
  }
  dsp_outputs_clear(f->s);
}

unsigned test_seed(void) {
  const char *env = getenv("SEED");
  unsigned seed = env && *env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
  fprintf(stderr, "SEED=%u\n", seed);
  return seed;
}
