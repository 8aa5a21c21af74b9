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
#include "mrd/kafka.h"
#include "mrd/metrics.h"
#include "mrd/pg.h"
#include "mrd/proto.h"

typedef struct tsvc_config {
  char *pg_dsn, *kafka_brokers, *log_level, *admin_addr, *group, *graph_path;
  char *tariff_path; /* MERIDIAN_TARIFF: fares (empty: none) */
  char *timezone; /* MERIDIAN_TIMEZONE: the local time of the calibrated trip ETA */
  int admin_port, kafka_fetch_wait_ms, partitions, batch_max;
  int64_t backoff_min_ms, backoff_max_ms;
} tsvc_config;

void tsvc_config_load(tsvc_config *c, int argc, char **argv);
void tsvc_config_log(void);
void tsvc_config_release(void);

/* One consumed event (decoded), with where it came from. */
typedef struct tsvc_msg {
  mrd_dispatch_event ev;
  bool ok; /* decoded; a bad payload is skipped (counted) */
  int32_t partition;
  int64_t offset;
} tsvc_msg;

typedef struct tsvc {
  tsvc_config *cfg;
  mrd_metrics *reg;
  mrd_counter *events, *duplicates, *bad, *rejected_skipped, *db_failures, *batches;
  mrd_counter *fenced; /* events of a stale lease generation, not recorded */
  mrd_fence fence;     /* highest generation recorded per shard (dispatch_generations) */
  bool fence_loaded;
  mrd_histogram *batch_seconds;
  mrd_gauge *pg_up;
  mrd_health health;
  mrd_admin *admin;
  mrd_pg *pg;
  mrd_kafka_consumer *consumer;
  geo_graph *graph; /* NULL: no route, trip ETA or fare */
  geo_route_state *route;
  mrd_tariff tariff; /* when has_tariff */
  bool has_tariff;
  tsvc_msg *batch;
  int n_batch;
} tsvc;

int tsvc_open(tsvc *s, tsvc_config *cfg);
/* Consume up to batch_max events into s->batch (waiting up to wait_ms for the first). */
int tsvc_poll(tsvc *s, int wait_ms);
/* Record the batch in one transaction. Returns 0, or -1 (rolled back; retry later). */
int tsvc_apply(tsvc *s);
/* Commit the batch's offsets (after tsvc_apply succeeded) and empty it. */
int tsvc_commit(tsvc *s);
void tsvc_close(tsvc *s);

#endif /* TRP_SERVICE_H */
