/*
 * sim.c: drivers and riders of a replay (sim.h). Every entity is a small state machine
 * advanced by lg_sim_tick (timers: pings, human delays, arrivals along paths) and by the
 * messages the gateway sends it. One tick walks every driver (a few thousand: cheap) and the
 * riders whose time has come (a cursor over the trips in time order).
 */
#define _POSIX_C_SOURCE 200809L
#include "sim.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "geo/geometry.h"
#include "geo/route.h"
#include "geo/snap.h"
#include "path.h"

#define ID_MAX 72
#define CONNECT_LEAD_WALL_S 1.0    /* a rider connects this long before his request */
#define PING_KEEPALIVE_US 10000000 /* ping at least every 10 s of wall time (dispatch TTL 30 s) */
#define ACCEPT_WAIT_US 30000000    /* an accept with no answer for 30 s of wall time is given up */
#define RETRY_US 1000000           /* `unavailable` (Redis or Kafka busy): send again after 1 s */

/* One connection's life, apart from what its owner is doing: a simulated app keeps its
 * state (a trip, a request) while it is cut off, and connects again with backoff. */
typedef enum cstate { CS_NONE = 0, CS_CONNECTING, CS_OPEN, CS_WAIT } cstate;
typedef struct link {
  cstate st;
  bool ever_open;
  uint32_t failures;   /* consecutive failed or short-lived connections (backoff.h) */
  uint32_t attempts;   /* connections tried, for the jitter's random stream */
  int64_t opened_us;   /* wall time the current connection opened */
  int64_t retry_at_us; /* CS_WAIT: connect again then */
  /* for MERIDIAN_LOADGEN_DEBUG's end-of-run account of what did not finish */
  uint32_t opens, n_rx;
  int64_t last_rx_us;
  char last_rx[24];
} link;

static bool up(const link *ln) { return ln->st == CS_OPEN; }

typedef enum dstate {
  D_NEW = 0,   /* never connected yet */
  D_IDLE,      /* available, cruising */
  D_OFFERED,   /* deciding on an offer */
  D_ACCEPTING, /* accept sent, waiting for the trip to be matched */
  D_TO_PICKUP,
  D_BOARDING, /* at the pickup, rider getting in */
  D_ON_TRIP
} dstate;

/* The next control message a driver must send when a token allows. */
typedef enum daction {
  A_NONE = 0,
  A_STATUS,
  A_ACCEPT,
  A_DECLINE,
  A_ARRIVED,
  A_START,
  A_COMPLETE
} daction;

/* One simulated driver. */
/* A control message waiting for a token, with the offer or trip id it names. */
typedef struct pending_msg {
  daction a;
  char id[ID_MAX];
  unsigned long long ref; /* once sent: the ref it carried */
} pending_msg;
#define PENDING_MAX 16
#define UNACKED_MAX 16

typedef struct driver {
  dstate st;
  link ln;
  pending_msg pending[PENDING_MAX];
  int n_pending;
  pending_msg
      unacked[UNACKED_MAX]; /* sent, neither acked nor refused yet: re-sent after a reconnection */
  int n_unacked;
  pending_msg
      sent[UNACKED_MAX]; /* the latest sent (ring): dispatch's refusal comes after the ack */
  int sent_next;
  int64_t accepting_us;      /* wall time the accept was queued */
  int64_t resync_until_us;   /* after a reconnection: the gateway's snapshot may come until then */
  char last_trip_id[ID_MAX]; /* the trip he left last: its late events are not taken up */
  bool last_completed;       /* ...and he left it by completing it (his `complete` is re-sent
                                while not acked) */
  bool fresh;                /* reconnected, nothing received yet: a `trip` now is the
                                gateway's snapshot */
  uint64_t rng;
  uint32_t n_offers;
  lg_path path;
  double path_t0_ms;    /* sim time at which path started */
  double idle_until_ms; /* no cruise before (after a routing failure) */
  int64_t seq;
  double next_ping_ms;  /* sim */
  int64_t last_ping_us; /* wall */
  double ping_phase;    /* [0, 1): where in each period his pings fall (ping_phase) */
  double tokens;        /* control token bucket */
  int64_t tokens_us;
  geo_latlng last_in_area;
  bool have_in_area;
  bool chain_counted; /* on a trip: already counted as the chained alternative of a match */
  char offer_id[ID_MAX], trip_id[ID_MAX];
  double decide_at_ms; /* sim */
  bool will_accept;
  double pred_eta_s; /* pickup ETA of the offer */
  double matched_ms; /* sim time the trip was matched */
  long rider;        /* the rider of the offer's request (this run's), or -1 */
  geo_latlng pickup, dropoff;
  double board_until_ms;
} driver;

typedef enum rstate { R_WAIT = 0, R_CONNECTING, R_OPEN, R_REQUESTED, R_MATCHED, R_DONE } rstate;
typedef enum routcome {
  O_NONE = 0,
  O_REQUESTED,
  O_MATCHED,
  O_COMPLETED,
  O_CANCELLED,
  O_NO_DRIVER,
  O_REFUSED
} routcome;

/* One rider: one trip of the file. */
typedef struct rider {
  rstate st;
  link ln;
  routcome outcome;
  bool req_acked, cancel_acked;
  int64_t req_resend_us, cancel_resend_us; /* wall time to send again (0: no need) */
  lg_trip trip;
  double req_ms;   /* sim time of the request (time of day, may pass 24 h) */
  int64_t sent_us; /* wall time the request was sent */
  bool offered, matched, cancel_planned, cancel_sent, requested;
  double cancel_at_ms;
  char trip_id[ID_MAX];
  /* his pickup ETA (--eta-samples): quoted with `matched`, the simulated drive it started
   * (the path's time at the drivers' pace), the drive as it ended, the straight line from
   * the driver to the pickup at `matched`, the driver (-1: none yet) */
  double eta_quoted_s, eta_drive_s, eta_actual_s, eta_line_m;
  long eta_driver;
} rider;

struct lg_sim {
  lg_config cfg;
  const geo_graph *g;
  geo_route_state *rs;
  lg_area_fn in_area;
  void *area_ud;
  lg_io io;
  driver *d;
  rider *r;
  size_t nr;
  size_t next_rider; /* riders before this are past R_WAIT */
  size_t riders_done;
  int64_t created_us, t0_us; /* t0: the replay clock started (0 while connecting) */
  int64_t all_open_us;       /* when every driver was first connected (0 before) */
  int64_t epoch_ms_at_created;
  size_t drivers_open;
  bool stopped, done, window_over;
  uint64_t ref_counter;
  lg_stats st;
  size_t last_updates; /* for the progress line */
  int64_t last_progress_us;
};

static uint64_t rnd(uint64_t *state) { return lg_mix64((*state)++); }
static double unit(uint64_t x) { return (double)(x >> 11) * (1.0 / 9007199254740992.0); }

void lg_config_defaults(lg_config *c) {
  memset(c, 0, sizeof *c);
  c->drivers = 100;
  c->speedup = 60;
  c->duration_s = 60;
  c->drain_s = -1; /* derived from the speedup */
  c->connect_s = 20;
  c->accept_prob = 0.9;
  c->cancel_prob = 0.03;
  c->seed = 1;
  c->start_tod_s = 18 * 3600;
  c->ping_interval_s = 4;
  c->ping_max_hz = 2;
  c->send_motion = true;
  c->drive_pace = 1;
  c->chain_horizon_s = 120;
  c->control_rate_hz = 1.8;
  c->control_burst = 4;
  c->accept_delay_min_s = 2;
  c->accept_delay_max_s = 8;
  c->board_delay_min_s = 20;
  c->board_delay_max_s = 60;
  c->cruise_radius_m = 1500;
  snprintf(c->run_id, sizeof c->run_id, "run");
}

double lg_ping_gap_s(const lg_config *c) {
  double cap_s = c->speedup / c->ping_max_hz;
  return cap_s > c->ping_interval_s ? cap_s : c->ping_interval_s;
}

double lg_speedup_for_ping(const lg_config *c) { return c->ping_max_hz * c->ping_interval_s; }

double lg_drive_pace_at(const geo_graph *g, int hour, int weekday) {
  if (hour < 0 || hour > 23 || weekday < 0 || weekday > 6) return 1.0;
  const uint32_t t = 3600000; /* an hour of route time: the factor to 1e-6 */
  double base = geo_graph_eta_ms(g, 0, hour, weekday);
  return (geo_graph_eta_ms(g, t, hour, weekday) - base) / t;
}

/* ---- clocks ---- */

double lg_sim_clock_s(const lg_sim *s, int64_t now_us) {
  if (!s->t0_us) return s->cfg.start_tod_s;
  return s->cfg.start_tod_s + (double)(now_us - s->t0_us) / 1e6 * s->cfg.speedup;
}
static double sim_ms(const lg_sim *s, int64_t now_us) { return lg_sim_clock_s(s, now_us) * 1000.0; }
static int64_t epoch_ms(const lg_sim *s, int64_t now_us) {
  return s->epoch_ms_at_created + (now_us - s->created_us) / 1000;
}
static lg_second *second(lg_sim *s, int64_t now_us) {
  size_t sec = s->t0_us && now_us > s->t0_us ? (size_t)((now_us - s->t0_us) / 1000000) : 0;
  return lg_stats_second(&s->st, sec);
}

/* ---- ids ---- */

static bool id_ok(const char *v) {
  size_t n = strlen(v);
  if (n == 0 || n >= ID_MAX) return false;
  for (const char *p = v; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '.' || *p == ':' || *p == '-'))
      return false;
  return true;
}

static bool copy_id(char *dst, const char *v) {
  if (!v || !id_ok(v)) return false;
  snprintf(dst, ID_MAX, "%s", v);
  return true;
}

/* The rider index of a request id of this run, or -1. */
static long rider_of_request(const lg_sim *s, const char *req) {
  char prefix[40];
  int n = snprintf(prefix, sizeof prefix, "q%s-", s->cfg.run_id);
  if (!req || strncmp(req, prefix, (size_t)n) != 0) return -1;
  char *end;
  long i = strtol(req + n, &end, 10);
  return (*end == '\0' && i >= 0 && (size_t)i < s->nr) ? i : -1;
}

/* ---- sending ---- */

static void send_text(lg_sim *s, lg_role role, uint32_t idx, const char *text) {
  if (s->io.send(s->io.ud, role, idx, text, strlen(text)) != 0)
    lg_stats_error(&s->st, "send_failed");
}

/* Take a control token of driver d, if there is one. */
static bool take_token(lg_sim *s, driver *d, int64_t now_us) {
  double rate = s->cfg.control_rate_hz, burst = s->cfg.control_burst;
  if (d->tokens_us == 0)
    d->tokens = burst;
  else
    d->tokens += (double)(now_us - d->tokens_us) / 1e6 * rate;
  if (d->tokens > burst) d->tokens = burst;
  d->tokens_us = now_us;
  if (d->tokens < 1.0) return false;
  d->tokens -= 1.0;
  return true;
}

static geo_latlng driver_pos(const lg_sim *s, const driver *d, double now_ms,
                             geo_route_place *place) {
  geo_latlng p;
  lg_path_at(&d->path, (now_ms - d->path_t0_ms) / s->cfg.drive_pace, &p, place);
  return p;
}

static bool path_done(const lg_sim *s, const driver *d, double now_ms) {
  return now_ms - d->path_t0_ms >= d->path.total_ms * s->cfg.drive_pace;
}

/* The heading and speed a phone would report with position p (the driver's at sim time
 * now_ms), as JSON fields with a trailing comma, into buf ("" when he stands still): the
 * direction of his next second of path and his speed over it. The speed is in metres per
 * WALL second (the simulated speed x speedup): how fast the reported position moves on the
 * clock dispatch ages pings by; left out above the protocol's 100 m/s. */
static void motion_fields(const lg_sim *s, const driver *d, double now_ms, geo_latlng p, char *buf,
                          size_t cap) {
  buf[0] = '\0';
  if (path_done(s, d, now_ms)) return;
  geo_latlng q = driver_pos(s, d, now_ms + 1000.0, NULL);
  double dist_m = geo_haversine_m(p, q);
  if (dist_m < 0.05) return;
  double heading = geo_bearing_deg(p, q);
  if (!(heading >= 0) || heading >= 359.95) heading = 0; /* "%.1f" must stay below 360 */
  double speed = dist_m * s->cfg.speedup;
  if (speed <= 100)
    snprintf(buf, cap, "\"heading\":%.1f,\"speed_mps\":%.2f,", heading, speed);
  else
    snprintf(buf, cap, "\"heading\":%.1f,", heading);
}

/* p as the wire carries it ("%.6f"): a point within 0.1 m of the area's edge is judged where
 * the gateway will see it, not a hair inside while the sent one is a hair outside. */
static geo_latlng wire_pos(geo_latlng p) {
  return (geo_latlng){round(p.lat * 1e6) / 1e6, round(p.lng * 1e6) / 1e6};
}

/* first: the location sent on connecting, which goes out even behind the status (or the
 * resync) queued just before it: that is no backlog of positions */
static void send_ping(lg_sim *s, uint32_t i, driver *d, int64_t now_us, bool first) {
  double now = sim_ms(s, now_us);
  geo_latlng p = wire_pos(driver_pos(s, d, now, NULL));
  bool held = false; /* p is not where he is: no motion to report */
  if (!s->in_area || s->in_area(s->area_ud, p.lat, p.lng)) {
    d->last_in_area = p;
    d->have_in_area = true;
  } else if (d->have_in_area) {
    p = d->last_in_area; /* a road that leaves the area for a moment: report where it left */
    held = true;
  } else {
    return;
  }
  if (!first && s->io.queued && s->io.queued(s->io.ud, LG_DRIVER, i) > 0) {
    /* the last position has not gone out yet (the gateway reads slowly): an app sends
     * its latest position, not a backlog of stale ones that arrive in a burst */
    d->last_ping_us = now_us;
    s->st.pings_skipped++;
    return;
  }
  char buf[256], motion[64] = "";
  if (s->cfg.send_motion && !held) motion_fields(s, d, now, p, motion, sizeof motion);
  snprintf(buf, sizeof buf,
           "{\"type\":\"location\",\"lat\":%.6f,\"lon\":%.6f,%s\"ts\":%lld,\"seq\":%lld}", p.lat,
           p.lng, motion, (long long)epoch_ms(s, now_us), (long long)++d->seq);
  send_text(s, LG_DRIVER, i, buf);
  d->last_ping_us = now_us;
  d->next_ping_ms = now + s->cfg.ping_interval_s * 1000.0;
  /* Until the replay starts its clock stands still (at --start): a ping sent meanwhile (a
   * keepalive) would put every driver's next one at the same instant of the replay, and
   * all of them in step from then on. He keeps his phase instead. */
  if (!s->t0_us) d->next_ping_ms -= d->ping_phase * s->cfg.ping_interval_s * 1000.0;
  s->st.updates++;
  lg_second *sec = second(s, now_us);
  if (sec) sec->updates++;
  if (s->t0_us && now_us <= s->t0_us + (int64_t)(s->cfg.duration_s * 1e6))
    s->st.updates_in_window++;
}

/* Queue control message a about id (an offer or trip id; NULL for none). */
static void queue_action(driver *d, daction a, const char *id) {
  if (d->n_pending == PENDING_MAX) return; /* cannot happen: at most one per state change */
  pending_msg *p = &d->pending[d->n_pending++];
  p->a = a;
  snprintf(p->id, ID_MAX, "%s", id ? id : "");
}

/* Send one queued control message of the driver if a token allows; false when one waits. */
static bool send_one(lg_sim *s, uint32_t i, driver *d, int64_t now_us);

/* Send the driver's queued control messages while tokens allow; true when none waits. */
static bool send_action(lg_sim *s, uint32_t i, driver *d, int64_t now_us) {
  if (!up(&d->ln)) return d->n_pending == 0;
  while (d->n_pending > 0)
    if (!send_one(s, i, d, now_us)) return false;
  return true;
}

static bool send_one(lg_sim *s, uint32_t i, driver *d, int64_t now_us) {
  if (!take_token(s, d, now_us)) return false;
  char buf[256];
  unsigned long long ref = ++s->ref_counter;
  pending_msg p = d->pending[0];
  memmove(d->pending, d->pending + 1, (size_t)(d->n_pending - 1) * sizeof *d->pending);
  d->n_pending--;
  switch (p.a) {
  case A_STATUS:
    snprintf(buf, sizeof buf, "{\"type\":\"status\",\"status\":\"available\",\"ref\":\"s%llu\"}",
             ref);
    break;
  case A_ACCEPT:
    snprintf(buf, sizeof buf, "{\"type\":\"accept\",\"offer_id\":\"%s\",\"ref\":\"a%llu\"}", p.id,
             ref);
    s->st.accepts++;
    break;
  case A_DECLINE:
    snprintf(buf, sizeof buf, "{\"type\":\"decline\",\"offer_id\":\"%s\",\"ref\":\"d%llu\"}", p.id,
             ref);
    s->st.declines++;
    break;
  case A_ARRIVED:
  case A_START:
  case A_COMPLETE: {
    const char *t = p.a == A_ARRIVED ? "arrived" : p.a == A_START ? "start" : "complete";
    snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"trip_id\":\"%s\",\"ref\":\"p%llu\"}", t, p.id,
             ref);
    break;
  }
  default: return true;
  }
  send_text(s, LG_DRIVER, i, buf);
  if (p.a != A_STATUS) { /* a status is sent afresh on every connection, never re-sent */
    if (d->n_unacked == UNACKED_MAX) { /* cannot happen: acks come within a second */
      memmove(d->unacked, d->unacked + 1, (UNACKED_MAX - 1) * sizeof *d->unacked);
      d->n_unacked--;
    }
    p.ref = ref;
    d->unacked[d->n_unacked++] = p;
    d->sent[d->sent_next] = p;
    d->sent_next = (d->sent_next + 1) % UNACKED_MAX;
  }
  return true;
}

/* The message sent with ref, among the latest sent; false when it is not there. */
static bool find_sent(const driver *d, unsigned long long ref, pending_msg *out) {
  for (int k = 0; k < UNACKED_MAX; k++)
    if (d->sent[k].ref == ref && d->sent[k].a != A_NONE) {
      *out = d->sent[k];
      return true;
    }
  return false;
}

/* Take the message sent with ref out of the unacked ones; false when it is not there. */
static bool take_unacked(driver *d, unsigned long long ref, pending_msg *out) {
  for (int k = 0; k < d->n_unacked; k++)
    if (d->unacked[k].ref == ref) {
      *out = d->unacked[k];
      memmove(d->unacked + k, d->unacked + k + 1,
              (size_t)(d->n_unacked - k - 1) * sizeof *d->unacked);
      d->n_unacked--;
      return true;
    }
  return false;
}

/* Does a control message about id still fit what the driver is doing? (An accept whose
 * offer he no longer holds, or a step of a trip he is no longer on, is not sent again.) */
static bool still_relevant(const driver *d, daction a, const char *id) {
  switch (a) {
  case A_ACCEPT: return d->st == D_ACCEPTING && strcmp(id, d->offer_id) == 0;
  case A_DECLINE: return true; /* harmless when the offer is gone: it frees the rider sooner */
  case A_ARRIVED:
  case A_START:
  case A_COMPLETE: /* he is free at once after it: the trip he just completed */
    return (d->trip_id[0] && strcmp(id, d->trip_id) == 0) ||
           (d->last_completed && strcmp(id, d->last_trip_id) == 0);
  default: return false;
  }
}

/* Is control message a about id waiting to be sent, or sent and not acked? */
static bool in_flight(const driver *d, daction a, const char *id) {
  for (int k = 0; k < d->n_pending; k++)
    if (d->pending[k].a == a && strcmp(d->pending[k].id, id) == 0) return true;
  for (int k = 0; k < d->n_unacked; k++)
    if (d->unacked[k].a == a && strcmp(d->unacked[k].id, id) == 0) return true;
  return false;
}

/* After a reconnection: say available again (dispatch ignores it while he is busy), then
 * what was sent and not acked, then what waited; his position follows at once. */
static void resync_driver(lg_sim *s, driver *d) {
  pending_msg q[PENDING_MAX];
  int n = 0;
  q[n++] = (pending_msg){A_STATUS, "", 0};
  for (int k = 0; k < d->n_unacked && n < PENDING_MAX; k++)
    if (still_relevant(d, d->unacked[k].a, d->unacked[k].id)) {
      q[n] = d->unacked[k];
      q[n++].ref = 0;
      s->st.resent++;
    }
  for (int k = 0; k < d->n_pending && n < PENDING_MAX; k++)
    if (d->pending[k].a != A_STATUS) q[n++] = d->pending[k];
  memcpy(d->pending, q, (size_t)n * sizeof *q);
  d->n_pending = n;
  d->n_unacked = 0;
}

/* ---- driving ---- */

/* A random drivable place inside the area, from the driver's random stream. */
static bool random_place(lg_sim *s, uint64_t *rng, geo_route_place *out, geo_latlng *pos) {
  uint32_t m = geo_graph_arc_count(s->g);
  for (int k = 0; k < 100; k++) {
    uint32_t a = (uint32_t)(rnd(rng) % m);
    geo_route_place pl = {0, a, unit(rnd(rng))};
    geo_latlng p = lg_place_pos(s->g, &pl);
    if (s->in_area && !s->in_area(s->area_ud, p.lat, p.lng)) continue;
    *out = pl;
    *pos = p;
    return true;
  }
  return false;
}

/* Start driving from where d is now to place `to`; false when no route. */
static bool drive_to(lg_sim *s, driver *d, double now_ms, const geo_route_place *to) {
  geo_route_place from;
  driver_pos(s, d, now_ms, &from);
  lg_path np = {0};
  if (lg_path_route(&np, s->g, s->rs, &from, to) != GEO_OK) {
    lg_path_close(&np);
    return false;
  }
  lg_path_close(&d->path);
  d->path = np;
  d->path_t0_ms = now_ms;
  return true;
}

static bool snap(const lg_sim *s, geo_latlng p, geo_route_place *out) {
  geo_snap sn;
  if (geo_graph_snap(s->g, p, INFINITY, &sn) != GEO_OK) return false;
  *out = sn.place;
  return true;
}

/* An idle driver picks a nearby place and drives there. */
static void cruise(lg_sim *s, driver *d, double now_ms) {
  geo_latlng here = driver_pos(s, d, now_ms, NULL);
  geo_route_place best = {0}, pl;
  geo_latlng pos;
  double best_d = INFINITY;
  for (int k = 0; k < 24; k++) {
    if (!random_place(s, &d->rng, &pl, &pos)) break;
    double dist = geo_equirect_m(here, pos);
    if (dist < best_d) best = pl, best_d = dist;
    if (dist < s->cfg.cruise_radius_m && dist > 200) break;
  }
  if (!isfinite(best_d) || !drive_to(s, d, now_ms, &best)) {
    d->idle_until_ms = now_ms + 60000; /* stay put a minute */
    geo_route_place here_pl;
    driver_pos(s, d, now_ms, &here_pl);
    lg_path np = {0};
    if (lg_path_build(&np, s->g, NULL, 0, &here_pl, &here_pl) == GEO_OK) {
      lg_path_close(&d->path);
      d->path = np;
      d->path_t0_ms = now_ms;
    }
  }
}

static void become_idle(lg_sim *s, driver *d, double now_ms) {
  d->st = D_IDLE;
  d->chain_counted = false;
  d->last_completed = false;
  if (d->trip_id[0]) snprintf(d->last_trip_id, ID_MAX, "%s", d->trip_id);
  d->trip_id[0] = d->offer_id[0] = '\0';
  cruise(s, d, now_ms);
}

/* Chained trips, ESTIMATED: the dispatch this replays does not offer a trip to a driver
 * still on one; this measures what doing so could buy. Driver `self` was just matched to a
 * pickup `to` and will drive drive_ms to it. Every other driver on a trip ending within
 * chain_horizon_s is timed: what is left of his trip, then his route from its drop-off to
 * the pickup at the drivers' pace. The saving is drive_ms minus the best of those (0 when
 * none is sooner); the best driver is counted once per trip (he could chain only one), and
 * the saving ignores the knock-on effects either way (the matched driver left free for a
 * later request; the chained one no longer free at his drop-off). */
static void chain_estimate(lg_sim *s, const driver *self, const geo_route_place *to,
                           geo_latlng to_ll, double now_ms, double drive_ms) {
  if (!(s->cfg.chain_horizon_s > 0)) return;
  const double pace = s->cfg.drive_pace, horizon_ms = s->cfg.chain_horizon_s * 1000.0;
  const double fastest_mps = 40.0; /* a lower bound of any drive: no road in the city is faster */
  double best_ms = drive_ms;
  driver *best = NULL;
  for (size_t j = 0; j < s->cfg.drivers; j++) {
    driver *o = &s->d[j];
    if (o == self || o->st != D_ON_TRIP || o->chain_counted) continue;
    double left_ms = o->path.total_ms * pace - (now_ms - o->path_t0_ms);
    if (left_ms < 0) left_ms = 0;
    if (left_ms > horizon_ms || left_ms >= best_ms) continue;
    geo_latlng end;
    geo_route_place end_pl;
    lg_path_at(&o->path, o->path.total_ms, &end, &end_pl);
    if (left_ms + geo_equirect_m(end, to_ll) / fastest_mps * 1000.0 * pace >= best_ms) continue;
    geo_route_result res;
    geo_err e = geo_route(s->rs, s->g, GEO_ROUTE_CH, &end_pl, to, &res);
    if (e == GEO_EINVAL) e = geo_route(s->rs, s->g, GEO_ROUTE_ASTAR, &end_pl, to, &res);
    if (e != GEO_OK) continue;
    double t_ms = left_ms + res.time_ms * pace;
    if (t_ms < best_ms) best_ms = t_ms, best = o;
  }
  if (best) {
    best->chain_counted = true;
    s->st.chain_sooner++;
  }
  lg_samples_add(&s->st.chain_saving_s, (drive_ms - best_ms) / 1000.0);
}

/* ---- connections ---- */

/* Open (role, idx)'s connection when it is due: the first time, or when its backoff ran out. */
static void link_tick(lg_sim *s, link *ln, lg_role role, uint32_t idx, int64_t now_us) {
  if (ln->st == CS_OPEN || ln->st == CS_CONNECTING) return;
  if (ln->st == CS_WAIT && now_us < ln->retry_at_us) return;
  char sub[48];
  snprintf(sub, sizeof sub, "%c%s-%u", role == LG_DRIVER ? 'd' : 'r', s->cfg.run_id, idx);
  if (s->io.open(s->io.ud, role, idx, sub) != 0) { /* the old socket is not gone yet: later */
    ln->st = CS_WAIT;
    ln->retry_at_us = now_us + 100000;
    return;
  }
  if (ln->ever_open) s->st.reconnect_attempts++;
  ln->attempts++;
  ln->st = CS_CONNECTING;
}

/* The connection closed or failed: wait a jittered, growing delay before the next try. */
static void link_lost(lg_sim *s, link *ln, lg_role role, uint32_t idx, int64_t now_us) {
  lg_backoff_policy p = lg_backoff_default();
  ln->failures =
      lg_backoff_next_failures(&p, ln->failures, ln->st == CS_OPEN ? ln->opened_us : 0, now_us);
  uint64_t h = lg_mix64(s->cfg.seed ^
                        lg_mix64(((uint64_t)role << 62) ^ ((uint64_t)idx << 24) ^ ln->attempts));
  ln->retry_at_us = now_us + lg_backoff_delay_us(&p, ln->failures, h);
  ln->st = CS_WAIT;
}

static void tick_driver(lg_sim *s, uint32_t i, driver *d, int64_t now_us) {
  double now = sim_ms(s, now_us);
  link_tick(s, &d->ln, LG_DRIVER, i, now_us);
  if (d->st == D_NEW) return;
  /* the driver drives on while cut off; what he would say waits for the connection */
  if (up(&d->ln)) send_action(s, i, d, now_us); /* control messages that waited for a token */
  switch (d->st) {
  case D_IDLE:
    if (path_done(s, d, now) && now >= d->idle_until_ms) cruise(s, d, now);
    break;
  case D_OFFERED:
    if (now >= d->decide_at_ms) {
      queue_action(d, d->will_accept ? A_ACCEPT : A_DECLINE, d->offer_id);
      d->st = d->will_accept ? D_ACCEPTING : D_IDLE;
      d->accepting_us = now_us;
      if (!d->will_accept) d->offer_id[0] = '\0';
      send_action(s, i, d, now_us);
    }
    if (d->st != D_TO_PICKUP && path_done(s, d, now) && now >= d->idle_until_ms) cruise(s, d, now);
    break;
  case D_ACCEPTING:
    if (now_us - d->accepting_us > ACCEPT_WAIT_US) { /* no answer came: give the offer up */
      lg_stats_error(&s->st, "accept_unanswered");
      become_idle(s, d, now);
      break;
    }
    if (path_done(s, d, now) && now >= d->idle_until_ms) cruise(s, d, now);
    break;
  case D_TO_PICKUP:
    if (path_done(s, d, now)) {
      double actual_s = (now - d->matched_ms) / 1000.0;
      if (d->pred_eta_s >= 1.0)
        lg_samples_add(&s->st.pickup_eta_err_pct,
                       (actual_s - d->pred_eta_s) / d->pred_eta_s * 100.0);
      if (d->pred_eta_s >= 0) lg_samples_add(&s->st.pickup_eta_err_s, actual_s - d->pred_eta_s);
      if (d->rider >= 0 && (size_t)d->rider < s->nr && s->r[d->rider].sent_us > 0)
        lg_samples_add(&s->st.wait_s, (now - sim_ms(s, s->r[d->rider].sent_us)) / 1000.0);
      if (d->rider >= 0 && (size_t)d->rider < s->nr && s->r[d->rider].eta_driver == (long)i)
        s->r[d->rider].eta_actual_s = actual_s;
      uint64_t h = lg_mix64(s->cfg.seed ^ lg_mix64(((uint64_t)i << 32) | d->n_offers) ^ 0xb0a4d);
      d->board_until_ms =
          now + 1000.0 * (s->cfg.board_delay_min_s +
                          unit(h) * (s->cfg.board_delay_max_s - s->cfg.board_delay_min_s));
      d->st = D_BOARDING;
      queue_action(d, A_ARRIVED, d->trip_id);
      send_action(s, i, d, now_us);
    }
    break;
  case D_BOARDING:
    if (now >= d->board_until_ms) {
      geo_route_place to;
      if (!snap(s, d->dropoff, &to) || !drive_to(s, d, now, &to)) {
        lg_stats_error(&s->st, "route_failed");
        become_idle(s, d, now);
        break;
      }
      d->st = D_ON_TRIP;
      queue_action(d, A_START, d->trip_id);
      send_action(s, i, d, now_us);
    }
    break;
  case D_ON_TRIP:
    if (path_done(s, d, now)) {
      queue_action(d, A_COMPLETE, d->trip_id);
      send_action(s, i, d, now_us);
      become_idle(s, d, now);
      d->last_completed = true;
    }
    break;
  default: break;
  }
  /* pings: every ping interval of sim time, no faster than the wall-clock cap, and at
   * least every 10 s of wall time so that dispatch keeps the driver */
  int64_t min_gap_us = (int64_t)(1e6 / s->cfg.ping_max_hz);
  if (!up(&d->ln)) return;
  if ((now >= d->next_ping_ms && now_us - d->last_ping_us >= min_gap_us) ||
      now_us - d->last_ping_us >= PING_KEEPALIVE_US)
    send_ping(s, i, d, now_us, false);
}

/* ---- riders ---- */

static void rider_done(lg_sim *s, uint32_t i, rider *r, routcome o) {
  if (r->st == R_DONE) return;
  r->outcome = o;
  r->st = R_DONE;
  s->riders_done++;
  s->io.close(s->io.ud, LG_RIDER, i);
}

/* The request's text; the same every time (same request_id: sending it again makes no
 * second trip). */
static void request_text(const lg_sim *s, uint32_t i, const rider *r, char *buf, size_t cap) {
  snprintf(buf, cap,
           "{\"type\":\"request\",\"request_id\":\"q%s-%u\",\"pickup\":{\"lat\":%.6f,\"lon\":%.6f},"
           "\"dropoff\":{\"lat\":%.6f,\"lon\":%.6f},\"ref\":\"r%u\"}",
           s->cfg.run_id, i, r->trip.pickup_lat, r->trip.pickup_lon, r->trip.dropoff_lat,
           r->trip.dropoff_lon, i);
}

static void send_cancel(lg_sim *s, uint32_t i) {
  char buf[200];
  snprintf(buf, sizeof buf, "{\"type\":\"cancel\",\"request_id\":\"q%s-%u\",\"ref\":\"c%u\"}",
           s->cfg.run_id, i, i);
  send_text(s, LG_RIDER, i, buf);
}

static void send_request(lg_sim *s, uint32_t i, rider *r, int64_t now_us) {
  char buf[400];
  request_text(s, i, r, buf, sizeof buf);
  send_text(s, LG_RIDER, i, buf);
  r->sent_us = now_us;
  r->st = R_REQUESTED;
  r->requested = true;
  r->outcome = O_REQUESTED;
  s->st.requested++;
  lg_second *sec = second(s, now_us);
  if (sec) sec->requested++;
}

static void tick_rider(lg_sim *s, uint32_t i, rider *r, int64_t now_us) {
  double now = sim_ms(s, now_us);
  link_tick(s, &r->ln, LG_RIDER, i, now_us);
  if (!up(&r->ln)) return; /* cut off: the request and cancel wait (the app keeps them) */
  if (r->st == R_OPEN && now >= r->req_ms && !s->window_over) send_request(s, i, r, now_us);
  if (r->req_resend_us && now_us >= r->req_resend_us) { /* not acked: the same request again */
    char buf[400];
    request_text(s, i, r, buf, sizeof buf);
    send_text(s, LG_RIDER, i, buf);
    r->req_resend_us = 0;
    s->st.resent++;
  }
  if ((r->st == R_REQUESTED || r->st == R_MATCHED) && r->cancel_planned && !r->cancel_sent &&
      now >= r->cancel_at_ms) {
    send_cancel(s, i);
    r->cancel_sent = true;
    s->st.cancel_sent++;
  }
  if (r->cancel_resend_us && now_us >= r->cancel_resend_us) {
    send_cancel(s, i);
    r->cancel_resend_us = 0;
    s->st.resent++;
  }
}

/* ---- lifecycle ---- */

static int cmp_rider(const void *a, const void *b) {
  const rider *x = a, *y = b;
  if (x->req_ms != y->req_ms) return (x->req_ms > y->req_ms) - (x->req_ms < y->req_ms);
  return (x->trip.line > y->trip.line) - (x->trip.line < y->trip.line);
}

/* Meridian's route ETA pickup -> drop-off against the real duration of the trip. */
static void taxi_eta(lg_sim *s, const lg_trip *t) {
  if (t->duration_s < 60) return;
  geo_snap a, b;
  if (geo_graph_snap(s->g, (geo_latlng){t->pickup_lat, t->pickup_lon}, 200, &a) != GEO_OK ||
      geo_graph_snap(s->g, (geo_latlng){t->dropoff_lat, t->dropoff_lon}, 200, &b) != GEO_OK)
    return;
  geo_route_result res;
  geo_err e = geo_route(s->rs, s->g, GEO_ROUTE_CH, &a.place, &b.place, &res);
  if (e == GEO_EINVAL) e = geo_route(s->rs, s->g, GEO_ROUTE_ASTAR, &a.place, &b.place, &res);
  if (e != GEO_OK) return;
  double eta_s = geo_graph_eta_ms(s->g, res.time_ms, t->hour, t->weekday) / 1000.0;
  lg_samples_add(&s->st.taxi_eta_err_pct, (eta_s - t->duration_s) / t->duration_s * 100.0);
}

lg_sim *lg_sim_new(const lg_config *cfg, const geo_graph *g, const lg_trip_set *set,
                   lg_area_fn in_area, void *area_ud, const lg_io *io, int64_t now_us,
                   int64_t now_epoch_ms, char *err, size_t errcap) {
  if (cfg->drivers == 0 || !(cfg->speedup > 0) || !(cfg->duration_s > 0) || cfg->accept_prob < 0 ||
      cfg->accept_prob > 1 || cfg->cancel_prob < 0 || cfg->cancel_prob > 1 ||
      !(cfg->ping_max_hz > 0) || !(cfg->ping_interval_s > 0) || cfg->start_tod_s < 0 ||
      cfg->start_tod_s >= 86400 || !(cfg->drive_pace >= 0.05) || !(cfg->drive_pace <= 20) ||
      !(cfg->chain_horizon_s >= 0) || !(cfg->chain_horizon_s <= 3600)) {
    snprintf(err, errcap,
             "bad settings (drivers > 0, speedup > 0, duration > 0, "
             "probabilities in [0, 1], start in [00:00, 24:00), pace in [0.05, 20], "
             "chain horizon in [0, 3600] s)");
    return NULL;
  }
  lg_sim *s = calloc(1, sizeof *s);
  if (!s) goto nomem;
  s->cfg = *cfg;
  if (s->cfg.drain_s < 0) {
    double d = 3600.0 / s->cfg.speedup + 5; /* an hour of sim time finishes any trip */
    s->cfg.drain_s = d < 10 ? 10 : (d > 120 ? 120 : d);
  }
  s->g = g;
  s->in_area = in_area;
  s->area_ud = area_ud;
  s->io = *io;
  s->created_us = now_us;
  s->epoch_ms_at_created = now_epoch_ms;
  if (geo_route_state_new(g, &s->rs) != GEO_OK) goto nomem;
  /* the window: trips from the start time of day, wrapping past midnight */
  double window_s = cfg->duration_s * cfg->speedup, start = cfg->start_tod_s;
  s->r = calloc(set->n ? set->n : 1, sizeof *s->r);
  if (!s->r) goto nomem;
  for (size_t k = 0; k < set->n; k++) {
    const lg_trip *t = &set->trips[k];
    double tod = t->tod_s < start ? t->tod_s + 86400 : t->tod_s;
    if (tod - start >= window_s) continue;
    rider *r = &s->r[s->nr++];
    r->trip = *t;
    r->req_ms = tod * 1000.0;
    r->eta_driver = -1;
  }
  qsort(s->r, s->nr, sizeof *s->r, cmp_rider);
  if (cfg->max_trips && s->nr > cfg->max_trips) s->nr = cfg->max_trips;
  if (s->nr == 0) {
    snprintf(err, errcap, "no trip of the file falls in the replay window");
    lg_sim_free(s);
    return NULL;
  }
  for (size_t k = 0; k < s->nr; k++) {
    rider *r = &s->r[k];
    uint64_t h = lg_mix64(cfg->seed ^ lg_mix64(0x51de0000ULL + r->trip.line));
    r->cancel_planned = unit(h) < cfg->cancel_prob;
    r->cancel_at_ms = r->req_ms + 1000.0 * (10 + unit(lg_mix64(h)) * 170); /* 10 s .. 3 min */
    taxi_eta(s, &r->trip);
  }
  s->st.trips_in_window = s->nr;
  s->st.chain_horizon_s = s->cfg.chain_horizon_s;
  s->d = calloc(cfg->drivers, sizeof *s->d);
  if (!s->d) goto nomem;
  for (size_t i = 0; i < cfg->drivers; i++) {
    driver *d = &s->d[i];
    d->rng = lg_mix64(cfg->seed * 0x9e3779b97f4a7c15ULL + i + 1);
    d->rider = -1;
    geo_route_place pl;
    geo_latlng pos;
    if (!random_place(s, &d->rng, &pl, &pos) ||
        lg_path_build(&d->path, g, NULL, 0, &pl, &pl) != GEO_OK) {
      snprintf(err, errcap, "no place found for driver %zu inside the service area", i);
      lg_sim_free(s);
      return NULL;
    }
    d->path_t0_ms = cfg->start_tod_s * 1000.0;
  }
  return s;
nomem:
  snprintf(err, errcap, "out of memory");
  lg_sim_free(s);
  return NULL;
}

void lg_sim_free(lg_sim *s) {
  if (!s) return;
  if (s->d)
    for (size_t i = 0; i < s->cfg.drivers; i++) lg_path_close(&s->d[i].path);
  free(s->d);
  free(s->r);
  geo_route_state_free(s->rs);
  lg_stats_close(&s->st);
  free(s);
}

/* MERIDIAN_LOADGEN_DEBUG: at the end, every rider whose request has no final outcome, and
 * his driver, as the simulation saw them (states, connections, what waits to be sent). */
static void debug_link(const lg_sim *s, lg_role role, uint32_t idx, const link *ln,
                       int64_t now_us) {
  char sock[400] = "-";
  if (s->io.describe) s->io.describe(s->io.ud, role, idx, sock, sizeof sock);
  fprintf(stderr,
          "debug:   %s link st=%d opens=%u failures=%u rx=%u last_rx=%s %.1f s ago; socket %s\n",
          role == LG_DRIVER ? "driver" : "rider", (int)ln->st, ln->opens, ln->failures, ln->n_rx,
          ln->last_rx[0] ? ln->last_rx : "-",
          ln->last_rx_us ? (double)(now_us - ln->last_rx_us) / 1e6 : -1.0, sock);
}

static void debug_unfinished(const lg_sim *s, int64_t now_us) {
  for (size_t i = 0; i < s->nr; i++) {
    const rider *r = &s->r[i];
    if (!r->requested || r->st == R_DONE) continue;
    fprintf(stderr, "debug: unfinished rider %zu trip %s state %d outcome %d acked %d\n", i,
            r->trip_id[0] ? r->trip_id : "-", (int)r->st, (int)r->outcome, (int)r->req_acked);
    debug_link(s, LG_RIDER, (uint32_t)i, &r->ln, now_us);
    if (r->eta_driver < 0 || (size_t)r->eta_driver >= s->cfg.drivers) continue;
    const driver *d = &s->d[r->eta_driver];
    fprintf(stderr,
            "debug:   driver %ld st=%d trip=%s last_trip=%s last_completed=%d pending=%d "
            "unacked=%d",
            r->eta_driver, (int)d->st, d->trip_id[0] ? d->trip_id : "-",
            d->last_trip_id[0] ? d->last_trip_id : "-", (int)d->last_completed, d->n_pending,
            d->n_unacked);
    for (int k = 0; k < d->n_pending; k++)
      fprintf(stderr, " p%d:%d:%s", k, (int)d->pending[k].a, d->pending[k].id);
    for (int k = 0; k < d->n_unacked; k++)
      fprintf(stderr, " u%d:%d:%s:%llu", k, (int)d->unacked[k].a, d->unacked[k].id,
              d->unacked[k].ref);
    fprintf(stderr, "\n");
    debug_link(s, LG_DRIVER, (uint32_t)r->eta_driver, &d->ln, now_us);
  }
}

void lg_sim_tick(lg_sim *s, int64_t now_us) {
  if (s->done) return;
  /* the replay clock starts settle_s after every driver is connected (their first positions
   * indexed by dispatch before the first rider asks), or after connect_s */
  if (!s->all_open_us && s->drivers_open == s->cfg.drivers) s->all_open_us = now_us;
  if (!s->t0_us &&
      ((s->all_open_us && now_us - s->all_open_us >= (int64_t)(s->cfg.settle_s * 1e6)) ||
       now_us - s->created_us >= (int64_t)(s->cfg.connect_s * 1e6) || s->stopped)) {
    s->t0_us = now_us;
    for (size_t i = 0; i < s->cfg.drivers; i++) s->d[i].path_t0_ms = sim_ms(s, now_us);
  }
  for (uint32_t i = 0; i < s->cfg.drivers; i++) tick_driver(s, i, &s->d[i], now_us);
  if (!s->t0_us) return;
  int64_t end_us = s->t0_us + (int64_t)(s->cfg.duration_s * 1e6);
  if ((now_us >= end_us || s->stopped) && !s->window_over) {
    s->window_over = true;
    s->st.replay_wall_s = (double)((now_us < end_us ? now_us : end_us) - s->t0_us) / 1e6;
    for (uint32_t i = 0; i < s->nr; i++) /* riders who never got to ask */
      if (s->r[i].st != R_REQUESTED && s->r[i].st != R_MATCHED)
        rider_done(s, i, &s->r[i], s->r[i].outcome);
  }
  double now = sim_ms(s, now_us), lead = CONNECT_LEAD_WALL_S * s->cfg.speedup * 1000.0;
  while (!s->window_over && s->next_rider < s->nr && s->r[s->next_rider].req_ms - lead <= now) {
    uint32_t i = (uint32_t)s->next_rider++;
    s->r[i].st = R_CONNECTING; /* tick_rider opens the connection */
  }
  for (uint32_t i = 0; i < s->next_rider; i++)
    if (s->r[i].st != R_DONE) tick_rider(s, i, &s->r[i], now_us);
  bool all_done = s->riders_done == s->nr;
  if (s->window_over &&
      (all_done || s->stopped || now_us >= end_us + (int64_t)(s->cfg.drain_s * 1e6))) {
    s->done = true;
    s->st.total_wall_s = (double)(now_us - s->created_us) / 1e6;
    if (getenv("MERIDIAN_LOADGEN_DEBUG")) debug_unfinished(s, now_us);
    for (uint32_t i = 0; i < s->nr; i++)
      if (s->r[i].st != R_DONE && s->r[i].st != R_WAIT) s->io.close(s->io.ud, LG_RIDER, i);
    /* drivers sign off, so that dispatch does not offer the next run's trips to them */
    for (uint32_t i = 0; i < s->cfg.drivers; i++)
      if (up(&s->d[i].ln)) {
        send_text(s, LG_DRIVER, i, "{\"type\":\"status\",\"status\":\"offline\"}");
        s->io.close(s->io.ud, LG_DRIVER, i);
      } else if (s->d[i].ln.st == CS_CONNECTING) {
        s->io.close(s->io.ud, LG_DRIVER, i);
      }
  }
}

/* Real apps ping on clocks of their own. Drivers that connected in the same instant (a
 * replay's start, a gateway restart) would otherwise ping together every period, a burst
 * no city sends: every message of the stack queued behind a second's pings at once. After
 * the first ping on connecting, each driver's period starts at a phase of its own (fixed
 * by the seed and the driver). */
static void ping_phase(lg_sim *s, uint32_t i, driver *d, int64_t now_us) {
  double f = (double)(lg_mix64(s->cfg.seed ^ lg_mix64(0x9a5e0000ULL + i)) >> 11) * 0x1p-53;
  double gap_wall_us = lg_ping_gap_s(&s->cfg) / s->cfg.speedup * 1e6;
  d->ping_phase = f;
  /* set, not shifted: the first location may not have gone out (nothing else moved them) */
  d->next_ping_ms = sim_ms(s, now_us) + (1 - f) * s->cfg.ping_interval_s * 1000.0;
  d->last_ping_us = now_us - (int64_t)(f * gap_wall_us);
}

void lg_sim_on_open(lg_sim *s, lg_role role, uint32_t idx, int64_t now_us) {
  s->st.open_now++;
  if (s->st.open_now > s->st.peak_open) s->st.peak_open = s->st.open_now;
  link *ln = role == LG_DRIVER ? &s->d[idx].ln : &s->r[idx].ln;
  bool again = ln->ever_open;
  ln->st = CS_OPEN;
  ln->ever_open = true;
  ln->opened_us = now_us;
  ln->opens++;
  if (again) s->st.reconnects++;
  if (role == LG_DRIVER) {
    driver *d = &s->d[idx];
    s->drivers_open++;
    if (!again) {
      s->st.drivers_connected++;
      d->st = D_IDLE;
      queue_action(d, A_STATUS, NULL);
    } else {
      resync_driver(s, d);
      d->resync_until_us = now_us + 5000000; /* the snapshot comes first, in well under 5 s */
      d->fresh = true;
    }
    send_action(s, idx, d, now_us);
    send_ping(s, idx, d, now_us, true);
    ping_phase(s, idx, d, now_us);
  } else {
    rider *r = &s->r[idx];
    if (!again) s->st.riders_connected++;
    if (r->st == R_CONNECTING) r->st = R_OPEN;
    /* what was sent and not acked goes again; the gateway's snapshot of his trip (sent
     * at once on connection) tells what happened meanwhile */
    if (r->requested && !r->req_acked) r->req_resend_us = now_us;
    if (r->cancel_sent && !r->cancel_acked) r->cancel_resend_us = now_us;
    tick_rider(s, idx, r, now_us);
  }
}

void lg_sim_on_closed(lg_sim *s, lg_role role, uint32_t idx, bool was_open, const char *why,
                      int64_t now_us) {
  if (was_open && s->st.open_now) s->st.open_now--;
  if (s->done) return;
  if (role == LG_RIDER && s->r[idx].st == R_DONE) return; /* closed by us */
  link *ln = role == LG_DRIVER ? &s->d[idx].ln : &s->r[idx].ln;
  if (ln->st != CS_OPEN && ln->st != CS_CONNECTING) return;
  if (was_open) {
    if (role == LG_DRIVER && s->drivers_open) s->drivers_open--;
    s->st.closed_unexpectedly++;
    lg_stats_error(&s->st, "connection_closed");
  } else {
    s->st.connect_failed++;
    lg_stats_error(&s->st, "connection_failed");
  }
  link_lost(s, ln, role, idx, now_us); /* the app keeps its state and connects again */
  (void)why;
}

static const char *str(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static bool latlng(json_t *o, const char *k, geo_latlng *out) {
  json_t *p = json_object_get(o, k);
  json_t *la = json_object_get(p, "lat"), *lo = json_object_get(p, "lon");
  if (!json_is_number(la) || !json_is_number(lo)) return false;
  *out = (geo_latlng){json_number_value(la), json_number_value(lo)};
  return true;
}

static void offer_seen(lg_sim *s, rider *r, int64_t now_us) {
  if (r->offered || !r->sent_us) return;
  r->offered = true;
  double ms = (double)(now_us - r->sent_us) / 1000.0;
  lg_samples_add(&s->st.offer_ms, ms);
  s->st.offered++;
  lg_second *sec = second(s, now_us);
  if (sec) {
    sec->offered++;
    lg_samples_add(&sec->offer_ms, ms);
  }
}

/* MERIDIAN_LOADGEN_DEBUG=N prints the first N error replies (any other value: 40). */
static void debug_error(lg_role role, uint32_t i, json_t *m) {
  static long shown;
  const char *dbg = getenv("MERIDIAN_LOADGEN_DEBUG");
  if (!dbg) return;
  long cap = strtol(dbg, NULL, 10);
  if (shown++ >= (cap > 0 ? cap : 40)) return;
  char *t = json_dumps(m, JSON_COMPACT);
  fprintf(stderr, "debug: %s %u <- %s\n", role == LG_DRIVER ? "driver" : "rider", i, t ? t : "?");
  free(t);
}

/* A `trip` naming a trip the driver does not know he is on, just after a reconnection: the
 * snapshot the gateway sends when an accept's `matched` (or later steps) was lost while he
 * was cut off. He takes it up where it is. Late events of the trip he just left (he sends
 * `complete` and is free before its `started` comes back) are not snapshots. Returns true
 * when adopted. */
static bool adopt_trip(lg_sim *s, driver *d, json_t *m, const char *status, const char *tid,
                       double now, int64_t now_us) {
  bool matched = strcmp(status, "matched") == 0, arrived = strcmp(status, "arrived") == 0,
       started = strcmp(status, "started") == 0;
  if (!(matched || arrived || started) || d->st > D_ACCEPTING) return false;
  if (now_us > d->resync_until_us || strcmp(tid, d->last_trip_id) == 0) return false;
  geo_latlng pickup = d->pickup, dropoff = d->dropoff;
  latlng(m, "pickup", &pickup);
  latlng(m, "dropoff", &dropoff);
  geo_route_place to;
  if (!copy_id(d->trip_id, tid)) return false;
  d->offer_id[0] = '\0';
  d->pickup = pickup;
  d->dropoff = dropoff;
  d->pred_eta_s = -1; /* not comparable any more */
  d->matched_ms = now;
  s->st.resync_adopted++;
  if (matched && snap(s, pickup, &to) && drive_to(s, d, now, &to)) {
    d->st = D_TO_PICKUP;
  } else if (started && snap(s, dropoff, &to) && drive_to(s, d, now, &to)) {
    d->st = D_ON_TRIP;
  } else { /* arrived, or no route: at the pickup, boarding */
    d->st = D_BOARDING;
    d->board_until_ms = now + 1000.0 * s->cfg.board_delay_min_s;
  }
  return true;
}

/* The gateway's snapshot on reconnection shows his trip (tid, status) behind the steps he
 * took: those it does not show, that are neither waiting nor unacked, were lost with the
 * connection (or refused as unavailable meanwhile): send them again, in order. A step
 * dispatch applied meanwhile (the snapshot was read before it) is answered as done. */
static void resend_behind(lg_sim *s, uint32_t i, driver *d, const char *status, const char *tid,
                          int64_t now_us) {
  /* 1 matched, 2 arrived, 3 started, 4 completed; step[k] takes the trip to k */
  static const daction step[] = {A_NONE, A_NONE, A_ARRIVED, A_START, A_COMPLETE};
  int shown = strcmp(status, "matched") == 0   ? 1
              : strcmp(status, "arrived") == 0 ? 2
              : strcmp(status, "started") == 0 ? 3
                                               : 0;
  int took = 0;
  if (d->trip_id[0] && strcmp(tid, d->trip_id) == 0)
    took = d->st == D_TO_PICKUP ? 1 : d->st == D_BOARDING ? 2 : d->st == D_ON_TRIP ? 3 : 0;
  else if (d->last_completed && strcmp(tid, d->last_trip_id) == 0)
    took = 4;
  if (!shown || took <= shown) return;
  for (int k = shown + 1; k <= took; k++)
    if (!in_flight(d, step[k], tid)) {
      queue_action(d, step[k], tid);
      s->st.resent++;
    }
  send_action(s, i, d, now_us);
}

static void driver_message(lg_sim *s, uint32_t i, json_t *m, const char *type, int64_t now_us) {
  driver *d = &s->d[i];
  double now = sim_ms(s, now_us);
  bool snapshot =
      d->fresh && strcmp(type, "trip") == 0; /* the first message after a reconnection */
  d->fresh = false;
  if (strcmp(type, "offer") == 0) {
    s->st.offers++;
    long ri = rider_of_request(s, str(m, "request_id"));
    if (ri >= 0) offer_seen(s, &s->r[ri], now_us);
    if (d->st == D_IDLE) d->rider = ri;
    char oid[ID_MAX];
    if (!copy_id(oid, str(m, "offer_id"))) return;
    if (strcmp(oid, d->offer_id) == 0) return; /* his offer again (a snapshot on reconnection) */
    if (d->st != D_IDLE) {                     /* busy: say no at once */
      queue_action(d, A_DECLINE, oid);
      send_action(s, i, d, now_us);
      return;
    }
    snprintf(d->offer_id, ID_MAX, "%s", oid);
    copy_id(d->trip_id, str(m, "trip_id"));
    json_t *eta = json_object_get(m, "pickup_eta_s");
    d->pred_eta_s = json_is_number(eta) ? json_number_value(eta) : -1;
    if (!latlng(m, "pickup", &d->pickup) || !latlng(m, "dropoff", &d->dropoff)) d->pred_eta_s = -1;
    uint64_t h = lg_mix64(s->cfg.seed ^ lg_mix64(((uint64_t)i << 32) | ++d->n_offers));
    d->will_accept = unit(h) < s->cfg.accept_prob;
    double delay_ms =
        1000.0 * (s->cfg.accept_delay_min_s +
                  unit(lg_mix64(h)) * (s->cfg.accept_delay_max_s - s->cfg.accept_delay_min_s));
    /* answer before the offer runs out, whatever the speedup */
    json_t *exp = json_object_get(m, "expires_at");
    if (json_is_number(exp)) {
      double left_wall_ms = json_number_value(exp) - (double)epoch_ms(s, now_us) - 1500;
      double cap = left_wall_ms * s->cfg.speedup;
      if (delay_ms > cap) delay_ms = cap > 0 ? cap : 0;
    }
    d->decide_at_ms = now + delay_ms;
    d->st = D_OFFERED;
    return;
  }
  if (strcmp(type, "trip") == 0) {
    const char *status = str(m, "status"), *tid = str(m, "trip_id");
    if (status && strcmp(status, "offer_expired") == 0) s->st.offers_expired++;
    if (snapshot && status && tid) resend_behind(s, i, d, status, tid, now_us);
    if (status && tid && strcmp(tid, d->trip_id) != 0 &&
        adopt_trip(s, d, m, status, tid, now, now_us))
      return;
    if (!status || !tid || strcmp(tid, d->trip_id) != 0) return;
    if (strcmp(status, "matched") == 0 && d->st == D_ACCEPTING) {
      geo_route_place to;
      json_t *eta = json_object_get(m, "pickup_eta_s");
      if (json_is_number(eta)) d->pred_eta_s = json_number_value(eta);
      if (d->pred_eta_s >= 0) lg_samples_add(&s->st.pickup_eta_s, d->pred_eta_s);
      latlng(m, "pickup", &d->pickup);
      latlng(m, "dropoff", &d->dropoff);
      d->matched_ms = now;
      if (!snap(s, d->pickup, &to) || !drive_to(s, d, now, &to)) {
        lg_stats_error(&s->st, "route_failed");
        return;
      }
      d->st = D_TO_PICKUP;
      chain_estimate(s, d, &to, d->pickup, now, d->path.total_ms * s->cfg.drive_pace);
      if (d->rider >= 0 && (size_t)d->rider < s->nr) {
        rider *r = &s->r[d->rider];
        r->eta_driver = (long)(d - s->d);
        r->eta_quoted_s = d->pred_eta_s;
        r->eta_drive_s = d->path.total_ms * s->cfg.drive_pace / 1000.0;
        r->eta_actual_s = -1;
        r->eta_line_m = d->path.n ? geo_equirect_m(d->path.pts[0].pos, d->pickup) : -1;
      }
    } else if (strcmp(status, "offer_expired") == 0) {
      if (d->st == D_OFFERED || d->st == D_ACCEPTING) become_idle(s, d, now);
    } else if (strcmp(status, "cancelled") == 0) {
      if (d->st >= D_OFFERED && d->st <= D_ON_TRIP) {
        d->n_pending = 0;
        become_idle(s, d, now);
      }
    }
    return;
  }
  if (strcmp(type, "ack") == 0) {
    const char *ref = str(m, "ref");
    pending_msg p;
    if (ref && ref[0]) take_unacked(d, strtoull(ref + 1, NULL, 10), &p);
    return;
  }
  if (strcmp(type, "error") == 0) {
    const char *code = str(m, "code"), *ref = str(m, "ref");
    lg_stats_error(&s->st, code ? code : "?");
    debug_error(LG_DRIVER, i, m);
    pending_msg p;
    if (!ref || !ref[0]) return;
    unsigned long long n = strtoull(ref + 1, NULL, 10);
    take_unacked(d, n, &p);
    if (!find_sent(d, n, &p)) return;
    if (code && (strcmp(code, "unavailable") == 0 || strcmp(code, "rate_limited") == 0)) {
      if (still_relevant(d, p.a, p.id)) queue_action(d, p.a, p.id); /* not taken: again */
      return;
    }
    /* refused by dispatch: the offer or the trip is not his any more (it expired, or was
     * cancelled while he was cut off) */
    if (p.a == A_ACCEPT && d->st == D_ACCEPTING && strcmp(p.id, d->offer_id) == 0)
      become_idle(s, d, now);
    else if ((p.a == A_ARRIVED || p.a == A_START || p.a == A_COMPLETE) &&
             strcmp(p.id, d->trip_id) == 0 && code && strcmp(code, "invalid_state") == 0 &&
             d->st >= D_TO_PICKUP && d->st <= D_ON_TRIP) {
      d->n_pending = 0;
      become_idle(s, d, now);
    }
    return;
  }
}

static void rider_message(lg_sim *s, uint32_t i, json_t *m, const char *type, int64_t now_us) {
  rider *r = &s->r[i];
  if (strcmp(type, "ack") == 0) {
    const char *ref = str(m, "ref");
    if (ref && ref[0] == 'r') r->req_acked = true;
    if (ref && ref[0] == 'c') r->cancel_acked = true;
    return;
  }
  if (strcmp(type, "trip") == 0 || strcmp(type, "matched") == 0 || strcmp(type, "no_driver") == 0)
    r->req_acked = true; /* dispatch has it: whatever was lost with the connection, it is in */
  if (strcmp(type, "trip") == 0) {
    const char *status = str(m, "status");
    if (!status) return;
    copy_id(r->trip_id, str(m, "trip_id"));
    if (strcmp(status, "offered") == 0) {
      offer_seen(s, r, now_us);
    } else if (strcmp(status, "completed") == 0) {
      s->st.completed++;
      lg_second *sec = second(s, now_us);
      if (sec) sec->completed++;
      rider_done(s, i, r, O_COMPLETED);
    } else if (strcmp(status, "cancelled") == 0) {
      s->st.cancelled++;
      lg_second *sec = second(s, now_us);
      if (sec) sec->cancelled++;
      rider_done(s, i, r, O_CANCELLED);
    } else if (strcmp(status, "no_driver") == 0 && r->outcome != O_NO_DRIVER) {
      s->st.no_driver++;
      lg_second *sec = second(s, now_us);
      if (sec) sec->no_driver++;
      rider_done(s, i, r, O_NO_DRIVER);
    }
    return;
  }
  if (strcmp(type, "matched") == 0) {
    if (r->matched || !r->sent_us) return;
    r->matched = true;
    r->outcome = O_MATCHED;
    r->st = R_MATCHED;
    copy_id(r->trip_id, str(m, "trip_id"));
    offer_seen(s, r, now_us);
    double ms = (double)(now_us - r->sent_us) / 1000.0;
    lg_samples_add(&s->st.match_ms, ms);
    s->st.matched++;
    lg_second *sec = second(s, now_us);
    if (sec) {
      sec->matched++;
      lg_samples_add(&sec->match_ms, ms);
    }
    return;
  }
  if (strcmp(type, "no_driver") == 0) {
    if (r->st == R_DONE) return;
    s->st.no_driver++;
    lg_second *sec = second(s, now_us);
    if (sec) sec->no_driver++;
    rider_done(s, i, r, O_NO_DRIVER);
    return;
  }
  if (strcmp(type, "error") == 0) {
    const char *code = str(m, "code"), *ref = str(m, "ref");
    lg_stats_error(&s->st, code ? code : "?");
    debug_error(LG_RIDER, i, m);
    bool again = code && (strcmp(code, "unavailable") == 0 || strcmp(code, "rate_limited") == 0);
    if (ref && ref[0] == 'r') {
      if (again)
        r->req_resend_us = now_us + RETRY_US; /* Redis or Kafka busy: a bit later */
      else if (!r->req_acked)
        rider_done(s, i, r, O_REFUSED); /* the request itself was refused */
    } else if (ref && ref[0] == 'c' && again) {
      r->cancel_resend_us = now_us + RETRY_US;
    }
  }
}

void lg_sim_on_message(lg_sim *s, lg_role role, uint32_t idx, const char *text, size_t len,
                       int64_t now_us) {
  json_error_t je;
  json_t *m = json_loadb(text, len, 0, &je);
  const char *type = json_is_object(m) ? str(m, "type") : NULL;
  link *ln = role == LG_DRIVER ? (idx < s->cfg.drivers ? &s->d[idx].ln : NULL)
                               : (idx < s->nr ? &s->r[idx].ln : NULL);
  if (ln) {
    ln->n_rx++;
    ln->last_rx_us = now_us;
    const char *st = type ? str(m, "status") : NULL;
    snprintf(ln->last_rx, sizeof ln->last_rx, "%s%s%s", type ? type : "?", st ? ":" : "",
             st ? st : "");
  }
  if (!type) {
    lg_stats_error(&s->st, "unreadable_message");
  } else if (role == LG_DRIVER) {
    if (idx < s->cfg.drivers) driver_message(s, idx, m, type, now_us);
  } else if (idx < s->nr) {
    rider_message(s, idx, m, type, now_us);
  }
  json_decref(m);
}

bool lg_sim_done(const lg_sim *s) { return s->done; }
void lg_sim_stop(lg_sim *s) { s->stopped = true; }
lg_stats *lg_sim_stats(lg_sim *s) { return &s->st; }
size_t lg_sim_riders(const lg_sim *s) { return s->nr; }

void lg_sim_progress(lg_sim *s, int64_t now_us, char *buf, size_t cap) {
  double dt = s->last_progress_us ? (double)(now_us - s->last_progress_us) / 1e6 : 0;
  double ups = dt > 0 ? (double)(s->st.updates - s->last_updates) / dt : 0;
  s->last_updates = s->st.updates;
  s->last_progress_us = now_us;
  lg_summary o = lg_samples_summary(&s->st.offer_ms), m = lg_samples_summary(&s->st.match_ms);
  double tod = fmod(lg_sim_clock_s(s, now_us), 86400);
  snprintf(buf, cap,
           "[%5.1fs sim %02d:%02d] conns %zu | requested %zu matched %zu no_driver %zu "
           "completed %zu | updates %.0f/s | p99 offer %.1f ms, match %.1f ms",
           (double)(now_us - s->created_us) / 1e6, (int)(tod / 3600), (int)fmod(tod / 60, 60),
           s->st.open_now, s->st.requested, s->st.matched, s->st.no_driver, s->st.completed, ups,
           o.n ? o.p99 : 0.0, m.n ? m.p99 : 0.0);
}

int lg_sim_write_eta_samples(const lg_sim *s, const char *path) {
  FILE *fp = fopen(path, "w");
  if (!fp) return -1;
  fprintf(fp, "request_id,trip_id,driver,quoted_s,drive_s,actual_s,line_m\n");
  for (size_t i = 0; i < s->nr; i++) {
    const rider *r = &s->r[i];
    if (!r->requested || r->eta_driver < 0) continue;
    fprintf(fp, "q%s-%zu,%s,d%s-%ld,%.1f,%.1f,%.1f,%.0f\n", s->cfg.run_id, i, r->trip_id,
            s->cfg.run_id, r->eta_driver, r->eta_quoted_s, r->eta_drive_s, r->eta_actual_s,
            r->eta_line_m);
  }
  return fclose(fp) == 0 ? 0 : -1;
}

int lg_sim_write_outcomes(const lg_sim *s, const char *path) {
  FILE *fp = fopen(path, "w");
  if (!fp) return -1;
  static const char *names[] = {"none",      "requested", "matched", "completed",
                                "cancelled", "no_driver", "refused"};
  fprintf(fp, "request_id,trip_id,status\n");
  for (size_t i = 0; i < s->nr; i++)
    if (s->r[i].requested)
      fprintf(fp, "q%s-%zu,%s,%s\n", s->cfg.run_id, i, s->r[i].trip_id, names[s->r[i].outcome]);
  return fclose(fp) == 0 ? 0 : -1;
}
