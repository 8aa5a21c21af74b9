/*
 * service.h: the meridian-dispatch process (one per shard): its configuration (config.c),
 * its handles and the steps of its loop (dispatch_io.c), driven by main.c.
 *
 * One thread does everything: consume a batch of pings and commands, feed the core,
 * execute its outputs (events to Kafka, waiting for their delivery; snapshots and active
 * trip pointers to Redis), then commit the consumed offsets. Not a library: internal to
 * the service.
 */
#ifndef DSP_SERVICE_H
#define DSP_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "claims_mem.h"
#include "claims_redis.h"
#include "dispatch.h"
#include "geo/graph.h"
#include "hotcells.h"
#include "index_quadtree.h"
#include "lease.h"
#include "lease_pg.h"
#include "lease_worker.h"
#include "mrd/admin.h"
#include "mrd/dlq.h"
#include "mrd/kafka.h"
#include "warmup.h"
#include "mrd/metrics.h"
#include "mrd/pg.h"
#include "mrd/proto.h"
#include "mrd/redis.h"
#include "pricing_io.h"
#include "mrd/shardmap.h"
#include "router_graph.h"
#include "strmap.h"

/* The effective configuration (config.c). */
typedef struct dsvc_config {
  int shard;
  char *graph_path;
  char *timezone; /* MERIDIAN_TIMEZONE: the local time of the calibrated ETA's hour and weekday */
  char *pg_dsn, *redis_url, *kafka_brokers, *log_level, *admin_addr;
  int admin_port;
  int kafka_linger_ms, kafka_fetch_wait_ms;
  char *group_prefix; /* consumer group: <prefix><shard> */
  char *nearby_key;   /* the GEO set the gateway's nearby reads */
  double snap_max_m;  /* service area: how far from the road graph a point may be */
  int64_t offer_timeout_ms, driver_ttl_ms, tick_ms, hot_interval_ms, warmup_ms;
  int64_t epoch_check_ms;
  int64_t loc_commit_ms; /* driver-locations offsets committed this often at most */
  int64_t lease_ttl_ms, lease_renew_ms, lease_retry_ms, lease_margin_ms; /* docs/shards.md */
  int64_t restore_window_ms, restore_timeout_ms; /* restart: events read back, time limit */
  int k_candidates, max_offers;
  double max_eta_s;
  int64_t predict_max_age_ms;
  bool batch;
  int64_t batch_window_ms;
  int poll_batch;            /* messages consumed per loop iteration at most */
  char *tariff_path;         /* MERIDIAN_TARIFF: the rate card quoted to riders ("": none) */
  dsp_surge_config surge;    /* MERIDIAN_SURGE_* */
  int64_t surge_interval_ms; /* surge update period */
} dsvc_config;

/* Parse argv and the environment into c (exits 2 on a bad value, 0 after --help). */
void dsvc_config_load(dsvc_config *c, int argc, char **argv);
void dsvc_config_log(void);
void dsvc_config_release(void);

/* Metrics of the service (registered in dispatch_io.c). */
typedef struct dsvc_metrics {
  mrd_metrics *reg;
  mrd_histogram *match_latency; /* request consumed -> first offer produced */
  mrd_counter *offers, *accepts, *declines, *expiries, *requests, *cancelled, *completed;
  mrd_counter *no_driver[DSP_NO_DRIVER_REASON_COUNT]; /* by dsp_no_driver_reason */
  mrd_counter *claims_contended, *claim_errors, *claims_fallback;
  mrd_counter *pings, *pings_stale, *commands, *bad_messages, *rejected, *commands_repeated;
  mrd_counter *events_produced, *delivery_failed, *redis_failures, *snapshots_written;
  mrd_counter *hot_commands, *restored;
  mrd_counter *dlq[MRD_FAIL_COUNT]; /* meridian_dlq_events_total{consumer="dispatch"} */
  mrd_gauge *index_size, *drivers, *trips_live, *hot_shown, *redis_up, *epoch;
  /* ownership (labelled {shard}): the on-call alerts' series */
  mrd_gauge *lease_held, *lease_generation;
  mrd_counter *lease_lost, *lease_acquired, *claims_fenced, *outputs_dropped;
  mrd_histogram *lease_store_s; /* a lease statement, on the lease's thread */
  mrd_counter *outputs_lost;    /* dsp_stats.outputs_lost: outputs the core had no memory for */
  /* what a flush keeps the loop from consuming: the events' delivery awaited, the snapshots'
   * Redis batch, the offsets' commits (meridian_dispatch_flush_wait_seconds{part}) */
  mrd_histogram *flush_wait[3];
} dsvc_metrics;

enum { DSVC_FLUSH_DELIVERY, DSVC_FLUSH_SNAPSHOTS, DSVC_FLUSH_COMMIT };

/* One range of the shard map: geohash strings s with start <= s < end belong to shard. */
typedef struct dsvc_range {
  char start[16], end[16];
  uint32_t shard;
} dsvc_range;

/* The shard map of one epoch, sorted by start (as PostgreSQL `shard_map` holds it). */
typedef struct dsvc_map {
  uint64_t epoch; /* 0: none loaded yet */
  size_t n;
  dsvc_range *ranges;
} dsvc_map;

#define DSVC_MAX_REFS 64
#define DSVC_MAX_TRACES 256 /* traced events per batch; beyond, events go out untraced */

/* A trip's snapshot for Redis: waiting to be written (dirty), or written and kept so that a
 * Redis that restarted empty gets it again: a live trip's until it ends, an ended trip's
 * until its keep time in Redis is over (gone_ms). */
typedef struct dsvc_pending {
  char trip_id[DSP_ID_MAX + 1];
  uint8_t bytes[2048]; /* the encoded DispatchEvent */
  size_t len;
  bool live;
  int64_t keep_ms;
  char rider_id[DSP_ID_MAX + 1];
  char driver_id[DSP_ID_MAX + 1]; /* set: his pointer names this trip */
  char released[4][DSP_ID_MAX + 1];
  int n_released;
  bool dirty;      /* not written since its last change */
  int64_t gone_ms; /* ended: when its keys expire in Redis (wall ms; 0 until first written) */
  bool not_last;   /* ended, and not the rider's latest ended trip here: no trip:last */
} dsvc_pending;

typedef struct dsvc {
  dsvc_config *cfg;
  dsvc_metrics m;
  mrd_admin *admin;
  mrd_health health;
  geo_graph *graph;
  dsp_graph_router *router;
  dsp_qt_index *index;
  mrd_redis *redis;
  dsp_claims_redis *claims;
  dsp_shard *shard;
  dsp_hot *hot;
  dsvc_pricing *pricing; /* fare quotes and surge (pricing_io.c) */
  mrd_pg *pg;
  mrd_kafka_producer *producer;
  mrd_kafka_consumer *consumer;
  uint64_t epoch;    /* = map.epoch */
  dsvc_map map;      /* the shard map in force (dsvc_on_epoch) */
  mrd_shardmap hmap; /* the same map as a checked tiling, for the handoff (handoff_io.c) */
  bool have_hmap;
  long last_warmed;    /* drivers warmed from Redis for the last ranges gained */
  double last_warm_ms; /* how long that warm-up (and release) took */
  /* figures for dispatch:stats:{shard}: one sample a second over the last minute */
#define DSVC_RATE_SAMPLES 61
  struct {
    int64_t t_ms;
    uint64_t pings, requests;
  } rate[DSVC_RATE_SAMPLES];
  uint64_t rate_n;
  uint64_t owner_pings; /* pings of drivers this shard owns (not halo copies) */
  char host[128];
  int64_t since_ms;
  uint64_t notified_epoch;
  unsigned pg_connects;
  int64_t next_notify_ms, next_epoch_ms;
  /* ownership: docs/shards.md */
  dsp_lease lease;
  dsp_lease_worker *lease_store; /* the lease's statements, off the loop (lease_worker.h) */
  char fence_key[32];            /* dispatch:fence:<shard> */
  bool fence_raised;             /* the fence key holds our generation */
  bool paused;           /* holder, but its lease is unconfirmed past the margin: not acting */
  int64_t warm_since_ms; /* pings read since (wall ms): a standby's warm index */
  int64_t warm_until_ms; /* holder: commands from then on */
  uint64_t last_fenced;
  bool ready;      /* restored and consuming commands */
  dsp_warmup warm; /* until ready: the positions read so far (warmup.h) */
  bool commands_assigned;
  int64_t loc_next, cmd_next;           /* next offsets to commit (-1: nothing consumed) */
  int64_t loc_committed, cmd_committed; /* what was committed */
  int64_t loc_commit_due_ms;            /* the next driver-locations commit, not before */
  int in_flight;                        /* events produced, not yet reported */
  int delivery_failures;                /* since the last flush */
  dsp_strmap pending;         /* trip id -> dsvc_pending: live trips, and ended ones unwritten */
  size_t n_dirty;             /* entries of pending to write */
  bool redis_lost;            /* a Redis write failed: resync when it answers again */
  uint64_t redis_connections; /* mrd_redis_connections when last in sync: a new connection
                               * may reach a Redis that restarted empty */
  int64_t redis_checked_ms;   /* last PING that looks for such a restart */
  int64_t expired_swept_ms;   /* last pass over ended trips whose snapshots expired */
  int64_t last_redis_log_s;
  char live_key[64]; /* dispatch:live:<shard> */
  /* requests of the current batch, for the match latency */
  struct {
    char trip_id[DSP_ID_MAX + 1];
    double t0_s;
  } lat[512];
  int n_lat;
  /* full refs of the replies queued in the current batch (the core keeps 64 bytes) */
  struct {
    size_t out_index;
    char ref[MRD_REF_MAX + 1];
  } refs[DSVC_MAX_REFS];
  int n_refs;
  /* the traces of the requests of the current batch, by the output index of each event they
   * made (mrd/trace.h): consumed and matched stamped, produced when the event goes out */
  struct {
    size_t out_index;
    mrd_trace trace;
  } traces[DSVC_MAX_TRACES];
  int n_traces;
  uint64_t rng; /* splitmix64 state for span ids */
  dsp_stats last_stats;
  uint64_t last_fallback;
  uint64_t last_redis_failures;
} dsvc;

/* Open everything the shard needs (graph, Redis, PostgreSQL epoch, Kafka, admin server).
 * Returns 0, or -1 after logging why. */
int dsvc_open(dsvc *s, dsvc_config *cfg);
/* Put the shard's live trips back: its events of the last restore_window_ms are read back
 * from dispatch-events (every partition, up to the ends found at start) and each trip whose
 * latest event (highest seq) is not final is restored; a trip listed in
 * dispatch:live:<shard> but not seen in the window (its latest event is older) is restored
 * from its Redis snapshot, and so is every listed trip when Kafka cannot be read. The
 * snapshots of restored trips, and of listed trips Kafka shows ended, are written again.
 * Returns how many were restored, or -1 (neither Kafka nor Redis could be read). */
int dsvc_restore(dsvc *s, int64_t now_ms);
/* Assign partition <shard> of driver-locations (and of dispatch-commands when
 * with_commands) from the committed offsets (driver-locations from where this process
 * has read, when it has). Returns 0 or -1. */
int dsvc_assign(dsvc *s, bool with_commands);
/* Consume up to cfg->poll_batch messages (waiting up to wait_ms for the first) and feed
 * them to the core. Returns the number consumed. */
int dsvc_poll(dsvc *s, int wait_ms, int64_t now_ms);
/* Execute the queued outputs: produce events and wait for their delivery, then write
 * snapshots and pointers to Redis, then commit the consumed offsets. Returns 0, or -1
 * when events could not be delivered (nothing committed: the caller stops, and the
 * restart consumes again from the committed offsets). */
int dsvc_flush(dsvc *s, int64_t now_ms);
/* Write the hot cells that changed (one pipelined batch). */
void dsvc_hot_flush(dsvc *s, int64_t now_ms);
/* The shard map (epoch_io.c). dsvc_epoch_load: read the newest map and, when its epoch
 * differs, hand it to dsvc_on_epoch; 0 or -1 (logged). dsvc_epoch_listen: LISTEN
 * shard_map. dsvc_epoch_poll: every loop turn: the notifications (every 20 ms, without
 * blocking) and the fallback read (every epoch_check_ms). */
int dsvc_epoch_load(dsvc *s);
void dsvc_epoch_listen(dsvc *s);
void dsvc_epoch_poll(dsvc *s, int64_t now_ms);
/* THE place where a new shard-map epoch takes effect in this process: takes ownership of
 * *next (left empty), stamps the epoch on later events and claims, logs the ranges owned.
 * The range handoff (docs/shards.md) extends this function. */
void dsvc_on_epoch(dsvc *s, dsvc_map *next);
/* The handoff of a new epoch (handoff_io.c, docs/shards.md), called by dsvc_on_epoch before
 * the epoch takes effect: warm the ranges gained from the Redis hot cells, release the
 * drivers of the ranges lost, keep the map as s->hmap. Returns 0 or -1 (the map does not
 * tile, or out of memory: logged, nothing handed over). */
int dsvc_handoff(dsvc *s, const dsvc_map *next, int64_t now_ms);
/* Write dispatch:stats:{shard} (schemas/redis.md): served epoch, holder, figures. Every 1 s,
 * by the lease holder only. */
void dsvc_stats_publish(dsvc *s, int64_t now_ms);
/* Ranges of m owned by shard. */
int dsvc_map_owned(const dsvc_map *m, uint32_t shard);
void dsvc_map_release(dsvc_map *m);

/* Ownership (dispatch_io.c; the rules are lease.h's). Run the lease operation due at
 * mono_ms against PostgreSQL; on an acquisition take over (fence Redis, restore the live
 * trips, assign dispatch-commands after the warm-up); on a loss step down (forget every
 * trip and queued output, consume pings only, commit nothing). now_ms: wall clock. */
void dsvc_lease_step(dsvc *s, int64_t mono_ms, int64_t now_ms);
/* True while this process may act as the shard's holder (lease.h). */
bool dsvc_may_act(const dsvc *s);
/* SIGTERM: give the lease back so a standby takes over at once. */
void dsvc_lease_release(dsvc *s);
/* Bring the metrics up to date with the core's counters. */
void dsvc_metrics_sync(dsvc *s);
/* Flush Kafka within timeout_ms and free everything. */
void dsvc_close(dsvc *s, int timeout_ms);

#endif /* DSP_SERVICE_H */
