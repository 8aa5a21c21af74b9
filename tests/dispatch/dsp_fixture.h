/*
 * dsp_fixture.h: a dispatch shard on the real libgeo parts for the unit tests: the
 * QuadTree index (index_quadtree.c), a road graph built with geo_graph_builder from a
 * table of roads and routed by one-to-many search (router_graph.c), the in-memory claim
 * store; and helpers to read and check the shard's outputs. No servers.
 */
#ifndef DSP_FIXTURE_H
#define DSP_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "claims_mem.h"
#include "dispatch.h"
#include "geo/graph.h"
#include "index_quadtree.h"
#include "router_graph.h"

typedef struct seen_trip {
  char id[DSP_ID_MAX + 1];
  dsp_trip_state status;
  uint64_t seq;
} seen_trip;

typedef struct fixture {
  seen_trip seen[512]; /* what check_and_clear has seen of each trip */
  size_t n_seen;
  dsp_config cfg;
  geo_graph_builder *gb; /* until fixture_start */
  uint32_t n_nodes;
  geo_graph *g;
  dsp_graph_router *gr;
  dsp_qt_index *qi;
  dsp_claims_mem *cm;
  dsp_shard *s;
  bool fail_etas;    /* make the router's etas_to fail */
  size_t etas_calls; /* calls of etas_to */
} fixture;

/* Defaults (shard 3, epoch 7, a TTL sweep on every tick) and an empty road table. */
void fixture_init(fixture *f);
/* A node at (lat, lng); returns its number for fixture_road. */
uint32_t fixture_node(fixture *f, double lat, double lng);
/* A road a -> b taking time_s (and b -> a when two_way). */
void fixture_road(fixture *f, uint32_t a, uint32_t b, double time_s, bool two_way);
/* A grid city: rows x cols nodes from (lat0, lng0), step_deg apart, two-way roads of
 * time_s between neighbours. */
void fixture_grid(fixture *f, double lat0, double lng0, uint32_t rows, uint32_t cols,
                  double step_deg, double time_s);
/* The usual city: a 21 x 21 grid from (40.74, -74.0), 0.001 deg and 10 s per block. */
void fixture_city(fixture *f);
/* Build the graph and the shard from f->cfg (snap radius 150 m). */
void fixture_start(fixture *f);
/* Replace the shard (after editing f->cfg), keeping graph, index and claims. */
void fixture_restart(fixture *f);
void fixture_close(fixture *f);

/* cmocka setup/teardown: a fixture with the usual city, started. */
int fixture_setup_city(void **state);
int fixture_teardown(void **state);

/* A ping for driver id at (lat, lng) with seq, ts = now. Returns the core's rc. */
int ping(fixture *f, const char *id, double lat, double lng, uint64_t seq, int64_t now_ms);
/* A request from rider with request id req, pickup (lat, lng), drop-off 500 m away.
 * Returns the core's rc. */
int request(fixture *f, const char *rider, const char *req, double lat, double lng, int64_t now_ms);

/* Outputs queued now: events (of type, or all when type == 0), replies. */
size_t n_events(const dsp_shard *s, int type);
size_t n_replies(const dsp_shard *s);
/* The i-th queued event of type (0: any), or NULL. */
const dsp_event *event_at(const dsp_shard *s, int type, size_t i);
const dsp_event *last_event(const dsp_shard *s);
const dsp_reply *last_reply(const dsp_shard *s);
/* Assert (cmocka) that every queued event follows the transition table from the previous
 * status of its trip, that seq grows by one per trip from 1, that shard and epoch are
 * stamped, and that each event is followed by the snapshot of its trip at its seq; then
 * clear the outputs. */
void check_and_clear(fixture *f);

/* SEED from the environment, else from the clock; printed on stderr. */
unsigned test_seed(void);

#endif
