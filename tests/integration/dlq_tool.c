/*
 * dlq_tool.c: a helper of the reliability integration test (integration_reliability.py),
 * not a test by itself. On the stack's Kafka (mrd_kafka, mrd_proto) it:
 *   dlq_tool raw BROKERS TOPIC PARTITION KEY TEXT
 *       writes TEXT as the value (a poison message: not a protobuf payload) and prints
 *       "offset=N" once delivered
 *   dlq_tool event BROKERS PARTITION TYPE TRIP_ID RIDER REQUEST_ID SEQ
 *       writes one valid DispatchEvent (TYPE: requested, no_driver) keyed by the trip id,
 *       pickup and drop-off in Midtown, and prints "offset=N"
 *   dlq_tool find BROKERS CONSUMER TOPIC PARTITION OFFSET TIMEOUT_MS
 *       reads dispatch-events-dlq from the beginning until a message parked by CONSUMER
 *       from TOPIC/PARTITION/OFFSET shows up: prints "reason=R attempts=A error=E value=V"
 *       and exits 0; exits 1 when none came within TIMEOUT_MS
 * Exits 2 on bad arguments or Kafka errors.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mrd/dlq.h"
#include "mrd/kafka.h"
#include "mrd/proto.h"

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int delivered_err = 1;
static int64_t delivered_offset = -1;

static void on_delivery(void *ud, void *opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset) {
  (void)ud;
  (void)opaque;
  (void)partition;
  delivered_err = err;
  delivered_offset = offset;
  if (err) fprintf(stderr, "dlq_tool: delivery failed: %s\n", errstr ? errstr : "?");
}

static int produce(const char *brokers, const char *topic, int32_t partition, const char *key,
                   const void *value, size_t len) {
  mrd_kafka_producer_opts o = MRD_KAFKA_PRODUCER_OPTS_DEFAULT;
  o.on_delivery = on_delivery;
  mrd_kafka_producer *p = NULL;
  char err[256];
  if (mrd_kafka_producer_new(brokers, &o, &p, err, sizeof err) != 0) {
    fprintf(stderr, "dlq_tool: %s\n", err);
    return 2;
  }
  int rc = mrd_kafka_produce(p, topic, partition, key, strlen(key), value, len, NULL);
  if (rc == 0) rc = mrd_kafka_flush(p, 10000);
  if (rc != 0 || delivered_err) {
    fprintf(stderr, "dlq_tool: produce failed: %s\n", mrd_kafka_producer_errstr(p));
    mrd_kafka_producer_free(p);
    return 2;
  }
  printf("offset=%lld\n", (long long)delivered_offset);
  mrd_kafka_producer_free(p);
  return 0;
}

static int event(char **a) {
  mrd_dispatch_event ev;
  memset(&ev, 0, sizeof ev);
  uint32_t shard = 0;
  if (!mrd_trip_id_shard(a[3], &shard)) return 2;
  snprintf(ev.trip_id, sizeof ev.trip_id, "%s", a[3]);
  snprintf(ev.rider_id, sizeof ev.rider_id, "%s", a[4]);
  snprintf(ev.request_id, sizeof ev.request_id, "%s", a[5]);
  ev.seq = strtoull(a[6], NULL, 10);
  ev.shard = shard;
  ev.epoch = 1;
  ev.ts_ms = now_ms();
  ev.has_pickup = ev.has_dropoff = true;
  ev.pickup = (mrd_latlon){40.758, -73.9855};
  ev.dropoff = (mrd_latlon){40.7484, -73.9857};
  if (strcmp(a[2], "requested") == 0) {
    ev.type = MRD_EV_REQUESTED;
    ev.status = MRD_TRIP_REQUESTED;
  } else if (strcmp(a[2], "no_driver") == 0) {
    ev.type = MRD_EV_NO_DRIVER;
    ev.status = MRD_TRIP_NO_DRIVER;
    snprintf(ev.reason, sizeof ev.reason, "no_driver_nearby");
  } else {
    return 2;
  }
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len = 0;
  if (mrd_dispatch_event_encode(&ev, buf, sizeof buf, &len) != 0) return 2;
  return produce(a[0], "dispatch-events", atoi(a[1]), ev.trip_id, buf, len);
}

static bool header_is(const mrd_kafka_msg *m, const char *name, const char *want) {
  const void *v = NULL;
  size_t n = 0;
  return mrd_kafka_msg_header(m, name, &v, &n) == 0 && v && n == strlen(want) &&
         memcmp(v, want, n) == 0;
}

static void print_header(const mrd_kafka_msg *m, const char *name, const char *label) {
  const void *v = NULL;
  size_t n = 0;
  if (mrd_kafka_msg_header(m, name, &v, &n) == 0 && v)
    printf("%s=%.*s ", label, (int)n, (const char *)v);
}

static int find(char **a) {
  mrd_kafka_consumer *c = NULL;
  char err[256];
  if (mrd_kafka_consumer_new(a[0], NULL, &c, err, sizeof err) != 0) {
    fprintf(stderr, "dlq_tool: %s\n", err);
    return 2;
  }
  int32_t parts = 0;
  if (mrd_kafka_consumer_partitions(c, MRD_TOPIC_DLQ, 10000, &parts) != 0) {
    fprintf(stderr, "dlq_tool: %s\n", mrd_kafka_consumer_errstr(c));
    mrd_kafka_consumer_free(c);
    return 2;
  }
  mrd_kafka_tp *tps = calloc((size_t)parts, sizeof *tps);
  for (int32_t i = 0; tps && i < parts; i++)
    tps[i] = (mrd_kafka_tp){MRD_TOPIC_DLQ, i, MRD_KAFKA_OFFSET_BEGINNING};
  if (!tps || mrd_kafka_consumer_assign(c, tps, (size_t)parts) != 0) {
    free(tps);
    mrd_kafka_consumer_free(c);
    return 2;
  }
  free(tps);
  int64_t until = now_ms() + atoll(a[5]);
  int rc = 1;
  while (rc == 1 && now_ms() < until) {
    mrd_kafka_msg m;
    if (mrd_kafka_consume(c, 100, &m) != 0) continue;
    if (header_is(&m, "dlq-consumer", a[1]) && header_is(&m, "dlq-topic", a[2]) &&
        header_is(&m, "dlq-partition", a[3]) && header_is(&m, "dlq-offset", a[4])) {
      print_header(&m, "dlq-reason", "reason");
      print_header(&m, "dlq-attempts", "attempts");
      print_header(&m, "dlq-version", "version");
      printf("value=%.*s error=", (int)(m.value_len > 64 ? 64 : m.value_len),
             m.value ? (const char *)m.value : "");
      const void *v = NULL;
      size_t n = 0;
      if (mrd_kafka_msg_header(&m, "dlq-error", &v, &n) == 0 && v)
        printf("%.*s", (int)n, (const char *)v);
      printf("\n");
      rc = 0;
    }
    mrd_kafka_msg_release(&m);
  }
  mrd_kafka_consumer_free(c);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 7 && strcmp(argv[1], "raw") == 0)
    return produce(argv[2], argv[3], atoi(argv[4]), argv[5], argv[6], strlen(argv[6]));
  if (argc == 9 && strcmp(argv[1], "event") == 0) return event(argv + 2);
  if (argc == 8 && strcmp(argv[1], "find") == 0) return find(argv + 2);
  fprintf(stderr, "usage: dlq_tool raw BROKERS TOPIC PARTITION KEY TEXT\n"
                  "       dlq_tool event BROKERS PARTITION TYPE TRIP_ID RIDER REQUEST_ID SEQ\n"
                  "       dlq_tool find BROKERS CONSUMER TOPIC PARTITION OFFSET TIMEOUT_MS\n");
  return 2;
}
