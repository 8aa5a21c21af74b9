/*
 * sim.h: the simulated city of a replay: N drivers who cruise the road graph, take offers
 * and drive trips, and one rider per replayed trip who asks for a ride at the trip's time of
 * day. Time is a simulation clock: sim = start time of day + wall elapsed x speedup.
 *
 * The simulation is the domain logic of the load generator and touches no socket: it is
 * driven by calls (a tick, a connection opened or closed, a message received, all with the
 * wall time) and acts through the lg_io callbacks (open a connection, send a text message,
 * close). Every random choice comes from the seed and the entity it concerns (a driver's
 * n-th offer, a rider's cancel), so two runs with one seed make the same choices.
 * Client-side rate limits keep each connection under the gateway's limits.
 */
#ifndef LG_SIM_H
#define LG_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "geo/graph.h"
#include "report.h"
#include "trips_csv.h"

/* Who a connection belongs to. */
typedef enum lg_role { LG_DRIVER = 0, LG_RIDER = 1 } lg_role;

/* The replay's settings (lg_config_defaults fills them). */
typedef struct lg_config {
  size_t drivers;
  double speedup;     /* sim seconds per wall second */
  double duration_s;  /* wall seconds of requests replayed */
  double drain_s;     /* wall seconds at most to let trips finish afterwards */
  double connect_s;   /* wall seconds at most to connect the drivers before the replay */
  double settle_s;    /* wall seconds between the last driver connected and the replay
                         clock (their first positions indexed); 0 in lg_config_defaults */
  double accept_prob; /* a driver accepts an offer with this probability */
  double cancel_prob; /* a rider cancels his request with this probability */
  uint64_t seed;
  double start_tod_s;     /* time of day where the replay starts, [0, 86400) */
  size_t max_trips;       /* replay at most this many trips (0: all in the window) */
  double ping_interval_s; /* sim seconds between a driver's location messages (4) */
  double ping_max_hz;     /* but at most this many per wall second (gateway: 5/s) */
  bool send_motion;       /* locations carry heading and speed_mps (true): what a phone's
                             GPS gives; speed_mps is the simulated speed x speedup (how fast
                             the reported position moves on the wall clock), left out when
                             over the protocol's 100 m/s */
  double drive_pace;      /* the drivers' sim time per unit of the snapshot's arc times (1:
                             as the snapshot says); the CLI sets the calibrated pace of the
                             hour dispatch quotes for (lg_drive_pace_at) */
  double chain_horizon_s; /* chained trips, ESTIMATED (not dispatched): at each match, the
                             drivers on a trip ending within this many sim seconds are
                             timed to the pickup from their drop-off (120; 0: off) */
  double control_rate_hz; /* a driver's other messages per wall second (gateway: 2/s, burst 5) */
  double control_burst;
  double accept_delay_min_s, accept_delay_max_s; /* human delay before answering, sim s */
  double board_delay_min_s, board_delay_max_s;   /* at the pickup before `start`, sim s */
  double cruise_radius_m;                        /* an idle driver cruises to places this close */
  char run_id[24]; /* names users and requests of this run: d<run>-<i>, q<run>-<i> */
} lg_config;

/* Defaults: speedup 60, 60 s, accept 0.9, cancel 0.03, seed 1, start 18:00, pings every
 * 4 s of sim time at most 2 a wall second, motion sent, pace 1, ... */
void lg_config_defaults(lg_config *c);

/* The ping period: sim seconds between two locations of a driver: ping_interval_s, or more
 * when the wall-clock cap ping_max_hz cannot carry it at the speedup (speedup / ping_max_hz). */
double lg_ping_gap_s(const lg_config *c);
/* The highest speedup at which the cap carries the real ping period: ping_max_hz x
 * ping_interval_s (e.g. 2/s x 4 s = 8x). */
double lg_speedup_for_ping(const lg_config *c);
/* The calibrated pace of g at a local hour (0..23) and weekday (0 = Sunday): the factor
 * geo_graph_eta_ms applies to a route's time then (hour x day factor), without the fixed
 * trip base; 1 for an hour or weekday out of range. */
double lg_drive_pace_at(const geo_graph *g, int hour, int weekday);

/* What the simulation asks of the socket layer. Each returns 0 or -1. */
typedef struct lg_io {
  void *ud;
  /* open the connection of (role, idx) authenticating as user `sub` */
  int (*open)(void *ud, lg_role role, uint32_t idx, const char *sub);
  /* send one text message on it (queued; the connection is open) */
  int (*send)(void *ud, lg_role role, uint32_t idx, const char *text, size_t len);
  /* close it (nothing more is sent or delivered for it) */
  void (*close)(void *ud, lg_role role, uint32_t idx);
  /* messages queued on it and not yet written (may be NULL: never any) */
  size_t (*queued)(void *ud, lg_role role, uint32_t idx);
  /* one line of the socket's own state, for MERIDIAN_LOADGEN_DEBUG (may be NULL) */
  void (*describe)(void *ud, lg_role role, uint32_t idx, char *buf, size_t cap);
} lg_io;

typedef struct lg_sim lg_sim;

/* A simulation of cfg over g (borrowed; must outlive the simulation) with the trips of set
 * (borrowed during the call: the ones chosen are copied) and the service area predicate.
 * now_us is the wall clock (monotonic µs); now_epoch_ms the Unix time in ms at now_us.
 * Returns NULL with a reason in err on bad settings, no trip in the window, no place for
 * drivers, or out of memory. */
lg_sim *lg_sim_new(const lg_config *cfg, const geo_graph *g, const lg_trip_set *set,
                   lg_area_fn in_area, void *area_ud, const lg_io *io, int64_t now_us,
                   int64_t now_epoch_ms, char *err, size_t errcap);
void lg_sim_free(lg_sim *s);

/* Advance to wall time now_us: connect, move, ping, answer, request, cancel. */
void lg_sim_tick(lg_sim *s, int64_t now_us);
/* The connection of (role, idx) is open (ok) or failed / was closed (!ok, why). */
void lg_sim_on_open(lg_sim *s, lg_role role, uint32_t idx, int64_t now_us);
void lg_sim_on_closed(lg_sim *s, lg_role role, uint32_t idx, bool was_open, const char *why,
                      int64_t now_us);
/* One complete text message for (role, idx). */
void lg_sim_on_message(lg_sim *s, lg_role role, uint32_t idx, const char *text, size_t len,
                       int64_t now_us);

/* True when the replay and its drain are over (every connection may be closed). */
bool lg_sim_done(const lg_sim *s);
/* Stop early (a signal): the next tick ends the replay. */
void lg_sim_stop(lg_sim *s);
/* The counters so far (borrowed, valid until lg_sim_free). */
lg_stats *lg_sim_stats(lg_sim *s);
/* One progress line (no newline) into buf. */
void lg_sim_progress(lg_sim *s, int64_t now_us, char *buf, size_t cap);
/* The sim time of day (s) at wall time now_us. */
double lg_sim_clock_s(const lg_sim *s, int64_t now_us);
/* The number of riders (trips chosen). Test API (no command calls it):
 * tests/loadgen/test_loadgen_sim.c. */
size_t lg_sim_riders(const lg_sim *s);

/* Riders' outcomes for checking afterwards: writes "request_id,trip_id,status\n" lines
 * (status: completed, cancelled, no_driver, matched, requested, none). Returns 0 or -1. */
int lg_sim_write_outcomes(const lg_sim *s, const char *path);
/* Every matched request's pickup ETA, for looking at single cases: writes
 * "request_id,trip_id,driver,quoted_s,drive_s,actual_s,line_m\n" lines (quoted with
 * `matched`; the simulated drive at that moment, at the drivers' pace; the drive as it ended,
 * -1 when he did not arrive; the straight line from the driver to the pickup then, m).
 * Returns 0 or -1 (errno). */
int lg_sim_write_eta_samples(const lg_sim *s, const char *path);

#endif /* LG_SIM_H */
