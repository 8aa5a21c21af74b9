/*
 * gw_kafka_tool.c: a helper for the gateway's integration test (integration_gateway.py),
 * not a test by itself. With librdkafka and mrd_proto it:
 *   gw_kafka_tool event BROKERS PARTITION TYPE TRIP_ID RIDER DRIVER [SEQ GENERATION REQUEST]
 *       writes one valid DispatchEvent (TYPE: matched, arrived, cancelled) to dispatch-events
 *       (seq 3, no generation, request "req-it"; with the three optional arguments, those,
 *       plus a pickup and a drop-off so that meridian-trips would record it: the fencing
 *       test of integration_dispatch.py --part failover writes a stale holder's late event)
 *   gw_kafka_tool locations BROKERS TIMEOUT_MS
 *       reads driver-locations (every partition, from the end) for TIMEOUT_MS and prints one
 *       line per message: "partition=P key=K driver=D halo=0|1 owner=S lat=.. lon=.. seq=N";
 *       prints "ready" on stderr once assigned
 *   gw_kafka_tool commands BROKERS TIMEOUT_MS
 *       the same for dispatch-commands: "partition=P kind=K driver=D offer=O trip=T"
 */
#define _POSIX_C_SOURCE 200809L
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mrd/proto.h"

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int produce_event(const char *brokers, int partition, const char *type, const char *trip,
                         const char *rider, const char *driver, const char *seq,
                         const char *generation, const char *request) {
  mrd_dispatch_event ev;
  memset(&ev, 0, sizeof ev);
  uint32_t shard = 0;
  if (!mrd_trip_id_shard(trip, &shard)) return 2;
  snprintf(ev.trip_id, sizeof ev.trip_id, "%s", trip);
  ev.shard = shard;
  ev.epoch = 1;
  ev.seq = seq ? strtoull(seq, NULL, 10) : 3;
  ev.generation = generation ? strtoull(generation, NULL, 10) : 0;
  ev.ts_ms = now_ms();
  snprintf(ev.rider_id, sizeof ev.rider_id, "%s", rider);
  snprintf(ev.driver_id, sizeof ev.driver_id, "%s", driver);
  snprintf(ev.request_id, sizeof ev.request_id, "%s", request ? request : "req-it");
  if (request) {
    ev.has_pickup = ev.has_dropoff = true;
    ev.pickup = (mrd_latlon){40.7445, -73.9885};
    ev.dropoff = (mrd_latlon){40.7500, -73.9850};
  }
  ev.has_driver_pos = ev.has_pickup_eta = true;
  ev.driver_pos = (mrd_latlon){40.7614, -73.9776};
  ev.pickup_eta_s = 60;
  if (strcmp(type, "matched") == 0) {
    ev.type = MRD_EV_MATCHED;
    ev.status = MRD_TRIP_MATCHED;
  } else if (strcmp(type, "arrived") == 0) {
    ev.type = MRD_EV_ARRIVED;
    ev.status = MRD_TRIP_ARRIVED;
  } else {
    ev.type = MRD_EV_CANCELLED;
    ev.status = MRD_TRIP_CANCELLED;
    snprintf(ev.reason, sizeof ev.reason, "rider_cancelled");
  }
  uint8_t buf[MRD_PROTO_MAX_SIZE];
  size_t len;
  if (mrd_dispatch_event_encode(&ev, buf, sizeof buf, &len) != 0) return 2;
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) return 1;
  rd_kafka_resp_err_t e = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(MRD_TOPIC_DISPATCH_EVENTS), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_KEY(trip, strlen(trip)), RD_KAFKA_V_VALUE(buf, len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (!e) e = rd_kafka_flush(rk, 10000);
  rd_kafka_destroy(rk);
  if (e) {
    fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
    return 1;
  }
  return 0;
}

static int read_topic(const char *brokers, const char *topic, int timeout_ms) {
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "gw-kafka-tool", err, sizeof err);
  rd_kafka_conf_set(conf, "fetch.wait.max.ms", "5", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) return 1;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
  for (int i = 0; i < 64; i++)
    rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_END;
  rd_kafka_assign(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  /* the END offsets are resolved on the first fetches: poll a little before saying ready */
  for (int i = 0; i < 20; i++) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
    if (m) rd_kafka_message_destroy(m);
  }
  fprintf(stderr, "ready\n");
  fflush(stderr);
  int64_t end = now_ms() + timeout_ms;
  while (now_ms() < end) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
    if (!m) continue;
    if (!m->err && strcmp(topic, MRD_TOPIC_DISPATCH_COMMANDS) == 0) {
      mrd_command c;
      int rc = mrd_command_decode(m->payload, m->len, &c);
      if (rc)
        printf("partition=%d bad=%s\n", (int)m->partition, mrd_proto_strerror(rc));
      else
        printf("partition=%d kind=%s driver=%s offer=%s trip=%s\n", (int)m->partition,
               mrd_cmd_kind_name(c.kind), c.driver_id, c.offer_id, c.trip_id);
      fflush(stdout);
    } else if (!m->err) {
      mrd_driver_location loc;
      int rc = mrd_driver_location_decode(m->payload, m->len, &loc);
      if (rc)
        printf("partition=%d bad=%s\n", (int)m->partition, mrd_proto_strerror(rc));
      else
        printf("partition=%d key=%.*s driver=%s halo=%d owner=%u lat=%.6f lon=%.6f seq=%llu\n",
               (int)m->partition, (int)m->key_len, (const char *)m->key, loc.driver_id, loc.halo,
               loc.owner_shard, loc.pos.lat, loc.pos.lon, (unsigned long long)loc.seq);
      fflush(stdout);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 8 && strcmp(argv[1], "event") == 0)
    return produce_event(argv[2], atoi(argv[3]), argv[4], argv[5], argv[6], argv[7], NULL, NULL,
                         NULL);
  if (argc == 11 && strcmp(argv[1], "event") == 0)
    return produce_event(argv[2], atoi(argv[3]), argv[4], argv[5], argv[6], argv[7], argv[8],
                         argv[9], argv[10]);
  if (argc == 4 && strcmp(argv[1], "locations") == 0)
    return read_topic(argv[2], MRD_TOPIC_DRIVER_LOCATIONS, atoi(argv[3]));
  if (argc == 4 && strcmp(argv[1], "commands") == 0)
    return read_topic(argv[2], MRD_TOPIC_DISPATCH_COMMANDS, atoi(argv[3]));
  fprintf(stderr, "usage: gw_kafka_tool event BROKERS PARTITION TYPE TRIP RIDER DRIVER "
                  "[SEQ GENERATION REQUEST]\n"
                  "       gw_kafka_tool locations|commands BROKERS TIMEOUT_MS\n");
  return 2;
}
