/*
 * service.h: the meridian-trips process: configuration (config.c) and the database and
 * Kafka steps (trips_io.c) that main.c drives. Internal to the service.
 */
#ifndef TRP_SERVICE_H
#define TRP_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "fare.h"
#include "geo/graph.h"
#include "geo/route.h"
#include "mrd/admin.h"
#include "mrd/dlq.h"
#include "mrd/kafka.h"
#include "mrd/metrics.h"
#include "mrd/pg.h"
#include "mrd/proto.h"

typedef struct tsvc_config {
  char *pg_dsn, *kafka_brokers, *log_level, *admin_addr, *group, *graph_path;
  char *tariff_path; /* MERIDIAN_TARIFF: fares (empty: none) */
  char *timezone;    /* MERIDIAN_TIMEZONE: the local time of the calibrated trip ETA */
  int admin_port, kafka_fetch_wait_ms, partitions, batch_max;
  int64_t backoff_min_ms, backoff_max_ms;
  int max_attempts; /* of a transient failure of one event before it is parked */
} tsvc_config;

void tsvc_config_load(tsvc_config *c, int argc, char **argv);
void tsvc_config_log(void);
void tsvc_config_release(void);

/* One consumed event (decoded), with where it came from and its bytes (for the
 * dead-letter topic). */
typedef struct tsvc_msg {
  mrd_dispatch_event ev;
  bool ok;      /* decoded; a bad payload is parked */
  bool parked;  /* in dispatch-events-dlq: skipped by tsvc_apply */
  int attempts; /* failed attempts to record it */
  int32_t partition;
  int64_t offset;
  uint8_t *bytes; /* key then value, malloc'd */
  size_t key_len, value_len;
} tsvc_msg;

typedef struct tsvc {
  tsvc_config *cfg;
  mrd_metrics *reg;
  mrd_counter *events, *duplicates, *bad, *rejected_skipped, *db_failures, *batches;
  mrd_counter *dlq[MRD_FAIL_COUNT]; /* meridian_dlq_events_total{consumer="trips"} */
  mrd_counter *fenced;              /* events of a stale lease generation, not recorded */
  mrd_fence fence; /* highest generation recorded per shard (dispatch_generations) */
  bool fence_loaded;
  mrd_histogram *batch_seconds;
  mrd_gauge *pg_up;
  mrd_health health;
  mrd_admin *admin;
  mrd_pg *pg;
  mrd_kafka_consumer *consumer;
  mrd_kafka_producer *producer;  /* the dead-letter topic only */
  int dlq_delivered, dlq_failed; /* delivery reports of parked events */
  geo_graph *graph;              /* NULL: no route, trip ETA or fare */
  geo_route_state *route;
  mrd_tariff tariff; /* when has_tariff */
  bool has_tariff;
  tsvc_msg *batch;
  int n_batch;
  /* the last failure of tsvc_apply */
  int fail_at;        /* the batch index of the event that failed, -1: the transaction */
  mrd_failure fail;   /* its class (mrd_failure_of_sqlstate, or decode / invalid) */
  char fail_err[256]; /* its text */
} tsvc;

int tsvc_open(tsvc *s, tsvc_config *cfg);
/* Consume up to batch_max events into s->batch (waiting up to wait_ms for the first). */
int tsvc_poll(tsvc *s, int wait_ms);
/* Record the batch (but the parked events) in one transaction. Returns 0, or -1 (rolled
 * back) with s->fail_at, s->fail and s->fail_err saying which event failed and how: an
 * event that does not decode or lacks trip fields fails before the database is touched. */
int tsvc_apply(tsvc *s);
/* Park the event s->batch[i] in dispatch-events-dlq (reason s->fail) and wait up to
 * timeout_ms for its delivery. Returns 0 (marked parked, counted, logged once) or -1 (not
 * delivered: nothing marked; try again later). */
int tsvc_park(tsvc *s, int i, int timeout_ms);
/* Commit the batch's offsets (after tsvc_apply succeeded) and empty it. */
int tsvc_commit(tsvc *s);
void tsvc_close(tsvc *s);

#endif /* TRP_SERVICE_H */
