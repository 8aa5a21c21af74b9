/*
 * dsp_fakes.h: test doubles for the dispatch core's interfaces, and helpers to read its
 * outputs. A linear-scan spatial index (exact kNN by haversine), a router over a small
 * hand-made directed graph (snapping to the nearest node within a service radius,
 * Dijkstra on the reverse graph for one-to-many ETAs, calls counted), and checks shared
 * by the dispatch tests. Not production code.
 */
#ifndef DSP_FAKES_H
#define DSP_FAKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "claims_mem.h"
#include "dispatch.h"

/* ---- linear index */
typedef struct fake_index {
  uint64_t ids[4096];
  geo_latlng pos[4096];
  size_t n;
  size_t knn_calls;
} fake_index;
dsp_index fake_index_iface(fake_index *ix);

/* ---- graph router */
#define FAKE_MAX_NODES 1024
#define FAKE_MAX_EDGES 4096
typedef struct fake_router {
  geo_latlng node[FAKE_MAX_NODES];
  size_t n_nodes;
  uint32_t from[FAKE_MAX_EDGES], to[FAKE_MAX_EDGES];
  double time_s[FAKE_MAX_EDGES];
  size_t n_edges;
  double snap_max_m;      /* farther than this from every node: out of area */
  size_t snap_calls, eta_calls;
  bool fail_etas;         /* etas_to fails (router broken) */
} fake_router;
/* An empty graph with snap radius snap_max_m. */
void fake_router_init(fake_router *r, double snap_max_m);
uint32_t fake_router_node(fake_router *r, double lat, double lng);
/* A road a -> b of time_s (and b -> a too when two_way). */
void fake_router_road(fake_router *r, uint32_t a, uint32_t b, double time_s, bool two_way);
/* A grid of rows x cols nodes from (lat0, lng0), step_deg apart, two-way roads of
 * time_s between neighbours: a plain city for tests that do not care about roads. */
void fake_router_grid(fake_router *r, double lat0, double lng0, size_t rows, size_t cols,
                      double step_deg, double time_s);
dsp_router fake_router_iface(fake_router *r);

/* ---- a shard with fakes */
typedef struct seen_trip {
  char id[DSP_ID_MAX + 1];
  dsp_trip_state status;
  uint64_t seq;
} seen_trip;

typedef struct fixture {
  seen_trip seen[512]; /* what check_and_clear has seen of each trip */
  size_t n_seen;
  fake_index ix;
  fake_router rt;
  dsp_claims_mem *cm;
  dsp_shard *s;
  dsp_config cfg;
} fixture;
/* Fill f->cfg with defaults (shard 3, epoch 7, ttl sweep every tick) and a grid city
 * around (40.75, -73.99): 21 x 21 nodes 0.001 deg apart, 10 s per block. */
void fixture_init(fixture *f);
/* Make the shard from f->cfg (call after editing cfg / the graph). */
void fixture_start(fixture *f);
void fixture_close(fixture *f);

/* A ping for driver id at (lat, lng) with seq and ts. Returns the core's rc. */
int ping(fixture *f, const char *id, double lat, double lng, uint64_t seq, int64_t now_ms);
/* A request; returns rc. */
int request(fixture *f, const char *rider, const char *req, double lat, double lng,
            int64_t now_ms);

/* Outputs: number of events (of type, or all if type == 0) queued now. */
size_t n_events(const dsp_shard *s, int type);
size_t n_replies(const dsp_shard *s);
/* The i-th event of type (0 = any), or NULL. */
const dsp_event *event_at(const dsp_shard *s, int type, size_t i);
const dsp_event *last_event(const dsp_shard *s);
const dsp_reply *last_reply(const dsp_shard *s);
/* Assert (cmocka) that every event queued follows the transition table from the
 * previous status of its trip, that seq grows by one per trip, that each event is
 * followed by its snapshot, and that shard/epoch are stamped; then clear outputs. */
void check_and_clear(fixture *f);

/* SEED from the environment, or from the clock; printed. */
unsigned test_seed(void);

#endif
