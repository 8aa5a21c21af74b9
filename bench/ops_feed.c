/*
 * ops_feed: N drivers' positions written straight into Kafka's `driver-locations`, for
 * measuring the ops stream (/v1/ops) of a real gateway with more drivers than this machine
 * can connect as apps (bench/ops_stream.mjs --feed runs it; see bench/README.md "ops_stream").
 * 20,000 driver apps through WebSockets is beyond a shared 2-core machine; their positions in
 * Kafka are not: the gateway's ops consumer reads them exactly as it reads the positions its
 * own WebSocket ingest writes (owner copies, mrd_driver_location), and everything after that
 * (the city, the frames, the byte budget, the WebSocket, the SDK's decoding) is the real one.
 *
 *   ops_feed [--drivers 20000] [--hz 1] [--seconds 120] [--speed-mps 9] [--prefix feed]
 *            [--first-partition 32]
 *
 * Each driver drives a straight line at --speed-mps in a random direction inside Manhattan's
 * box (40.70..40.88, -74.02..-73.91), turning back at its edges, and reports --hz times a
 * second; the reports are spread evenly over each period (a batch every 20 ms). The messages
 * go to partitions --first-partition.. of driver-locations (round-robin by driver), which no
 * dispatch shard consumes (shard k reads partition k, k < 8 here): dispatch never sees these
 * drivers, only the ops stream does. owner_shard is 0, epoch 1, the driver ids
 * PREFIX-000000.. Brokers: MERIDIAN_KAFKA_BROKERS (.run/env).
 * Progress (messages/s delivered, queue full) on stderr once a second; exits after --seconds
 * with the totals on stdout as one JSON line. The library's delivery reports count what the
 * brokers accepted: a machine too slow to keep the rate shows as sent/s below the target.
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mrd/kafka.h"
#include "mrd/proto.h"

#define TOPIC "driver-locations"
#define BATCH_MS 20
#define MIN_LAT 40.70
#define MAX_LAT 40.88
#define MIN_LON (-74.02)
#define MAX_LON (-73.91)
#define M_PER_DEG_LAT 111320.0
#define PI 3.14159265358979323846

typedef struct feed_opts {
  int drivers, hz, seconds, first_partition;
  double speed_mps;
  const char *prefix;
} feed_opts;

typedef struct car {
  double lat, lon, dlat_s, dlon_s; /* position and velocity in degrees per second */
  uint64_t seq;
} car;

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
  if (ms <= 0) return;
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&t, NULL);
}

typedef struct counts {
  long delivered, failed;
} counts;

static void on_delivery(void *ud, void *opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset) {
  (void)opaque, (void)errstr, (void)partition, (void)offset;
  counts *c = ud;
  if (err)
    c->failed++;
  else
    c->delivered++;
}

/* Move a car by dt seconds, turning back at the box's edges. Pure. */
static void drive(car *c, double dt) {
  c->lat += c->dlat_s * dt;
  c->lon += c->dlon_s * dt;
  if (c->lat < MIN_LAT || c->lat > MAX_LAT) {
    c->dlat_s = -c->dlat_s;
    c->lat = c->lat < MIN_LAT ? MIN_LAT : MAX_LAT;
  }
  if (c->lon < MIN_LON || c->lon > MAX_LON) {
    c->dlon_s = -c->dlon_s;
    c->lon = c->lon < MIN_LON ? MIN_LON : MAX_LON;
  }
}

static int parse_opts(int argc, char **argv, feed_opts *o) {
  *o = (feed_opts){20000, 1, 120, 32, 9.0, "feed"};
  static const struct option longs[] = {{"drivers", required_argument, NULL, 'd'},
                                        {"hz", required_argument, NULL, 'z'},
                                        {"seconds", required_argument, NULL, 's'},
                                        {"speed-mps", required_argument, NULL, 'v'},
                                        {"prefix", required_argument, NULL, 'p'},
                                        {"first-partition", required_argument, NULL, 'f'},
                                        {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    char *end = NULL;
    switch (ch) {
    case 'd': o->drivers = (int)strtol(optarg, &end, 10); break;
    case 'z': o->hz = (int)strtol(optarg, &end, 10); break;
    case 's': o->seconds = (int)strtol(optarg, &end, 10); break;
    case 'v': o->speed_mps = strtod(optarg, &end); break;
    case 'f': o->first_partition = (int)strtol(optarg, &end, 10); break;
    case 'p':
      o->prefix = optarg;
      end = optarg + strlen(optarg);
      break;
    default: return -1;
    }
    if (!end || *end) {
      fprintf(stderr, "ops_feed: \"%s\" is not a number\n", optarg);
      return -1;
    }
  }
  if (o->drivers < 1 || o->drivers > 65536 || o->hz < 1 || o->hz > 10 || o->seconds < 1 ||
      o->speed_mps < 0 || o->speed_mps > 60 || o->first_partition < 0 || o->first_partition > 63 ||
      strlen(o->prefix) < 1 || strlen(o->prefix) > 40) {
    fprintf(stderr, "ops_feed: out of range: --drivers 1..65536, --hz 1..10, --seconds >= 1, "
                    "--speed-mps 0..60, --first-partition 0..63, --prefix 1..40 characters\n");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  feed_opts o;
  if (parse_opts(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: ops_feed [--drivers N] [--hz H] [--seconds S] [--speed-mps V] "
                    "[--prefix P] [--first-partition K]\n");
    return 2;
  }
  const char *brokers = getenv("MERIDIAN_KAFKA_BROKERS");
  if (!brokers || !*brokers) {
    fprintf(
        stderr,
        "ops_feed: MERIDIAN_KAFKA_BROKERS is not set (source .run/env after scripts/stack up)\n");
    return 2;
  }
  counts cnt = {0, 0};
  mrd_kafka_producer_opts po = MRD_KAFKA_PRODUCER_OPTS_DEFAULT;
  po.linger_ms = 5;
  po.queue_max_messages = 200000;
  po.on_delivery = on_delivery;
  po.ud = &cnt;
  mrd_kafka_producer *p = NULL;
  char err[256];
  if (mrd_kafka_producer_new(brokers, &po, &p, err, sizeof err) != 0) {
    fprintf(stderr, "ops_feed: producer: %s\n", err);
    return 1;
  }
  car *cars = calloc((size_t)o.drivers, sizeof *cars);
  if (!cars) {
    fprintf(stderr, "ops_feed: no memory for %d drivers\n", o.drivers);
    mrd_kafka_producer_free(p);
    return 1;
  }
  srand(17);
  for (int i = 0; i < o.drivers; i++) {
    double a = 2 * PI * rand() / (double)RAND_MAX;
    cars[i].lat = MIN_LAT + (MAX_LAT - MIN_LAT) * rand() / (double)RAND_MAX;
    cars[i].lon = MIN_LON + (MAX_LON - MIN_LON) * rand() / (double)RAND_MAX;
    cars[i].dlat_s = o.speed_mps * cos(a) / M_PER_DEG_LAT;
    cars[i].dlon_s = o.speed_mps * sin(a) / (M_PER_DEG_LAT * cos(cars[i].lat * PI / 180));
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  const int64_t period_ms = 1000 / o.hz;
  const int batches = (int)(period_ms / BATCH_MS);
  const int64_t t0 = now_ms();
  int64_t last_log = t0, next = t0;
  long sent = 0, full = 0, sent_at_log = 0, delivered_at_log = 0;
  int cursor = 0; /* the next driver to report */
  uint8_t buf[512];
  char key[64];
  while (!stop && now_ms() - t0 < (int64_t)o.seconds * 1000) {
    /* one batch: this batch's share of the drivers */
    int n = (o.drivers + batches - 1) / batches;
    int64_t ts = now_ms();
    for (int k = 0; k < n; k++) {
      car *c = &cars[cursor];
      drive(c, 1.0 / o.hz);
      mrd_driver_location loc;
      memset(&loc, 0, sizeof loc);
      snprintf(loc.driver_id, sizeof loc.driver_id, "%s-%06d", o.prefix, cursor);
      loc.pos = (mrd_latlon){c->lat, c->lon};
      loc.ts_ms = ts;
      loc.seq = ++c->seq;
      loc.owner_shard = 0;
      loc.epoch = 1;
      loc.received_ms = ts;
      size_t len = 0;
      if (mrd_driver_location_encode(&loc, buf, sizeof buf, &len) != MRD_PROTO_OK) {
        fprintf(stderr, "ops_feed: cannot encode driver %d\n", cursor);
        stop = 1;
        break;
      }
      int kl = snprintf(key, sizeof key, "%s", loc.driver_id);
      int rc = mrd_kafka_produce(p, TOPIC, o.first_partition + cursor % (64 - o.first_partition),
                                 key, (size_t)kl, buf, len, NULL);
      if (rc == 0)
        sent++;
      else
        full++; /* MRD_EFULL: the brokers are behind; this report is dropped */
      cursor = (cursor + 1) % o.drivers;
    }
    mrd_kafka_producer_poll(p, 0);
    next += BATCH_MS;
    int64_t now = now_ms();
    if (now - last_log >= 1000) {
      fprintf(
          stderr,
          "ops_feed: %.0f s: sent %.0f/s, delivered %.0f/s, dropped (queue full) %ld, failed %ld\n",
          (now - t0) / 1000.0, (sent - sent_at_log) * 1000.0 / (now - last_log),
          (cnt.delivered - delivered_at_log) * 1000.0 / (now - last_log), full, cnt.failed);
      sent_at_log = sent;
      delivered_at_log = cnt.delivered;
      last_log = now;
    }
    if (next > now)
      sleep_ms(next - now);
    else
      next = now; /* behind: no catch-up burst */
  }
  mrd_kafka_flush(p, 10000);
  double secs = (now_ms() - t0) / 1000.0;
  printf("{\"drivers\":%d,\"hz\":%d,\"seconds\":%.1f,\"sent\":%ld,\"delivered\":%ld,\"failed\":%ld,"
         "\"dropped_queue_full\":%ld,\"delivered_per_s\":%.0f}\n",
         o.drivers, o.hz, secs, sent, cnt.delivered, cnt.failed, full, cnt.delivered / secs);
  mrd_kafka_producer_free(p);
  free(cars);
  return 0;
}
