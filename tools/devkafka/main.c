/*
 * devkafka: the embedded Kafka for one machine.
 *
 * Hosts librdkafka's mock cluster (rdkafka_mock.h) in a process of its own: N brokers on
 * 127.0.0.1 with random ports, Meridian's topics pre-created with their partition counts,
 * and the bootstrap servers written to a file for the other processes. It is a real
 * Kafka-protocol broker held in memory, for development and tests; it is not a Kafka
 * replacement (no persistence, about 5 MiB kept per partition). See README.md.
 *
 * Clients reach the brokers through the long-poll front (front.h): the mock holds an empty
 * Fetch for its whole MaxWait, the front answers it as soon as a produce reaches it, as a real
 * broker does. --no-long-poll announces the mock's own ports instead (to compare).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "front.h"
#include "mrd/clock.h"
#include "mrd/proto.h"

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static void usage(FILE *f) {
  fprintf(f, "usage: devkafka [options]\n"
             "  --brokers N            brokers in the mock cluster (default 3)\n"
             "  --partitions N         partitions of each topic (default 64)\n"
             "  --topic NAME[:N]       a topic to create (repeatable; default: driver-locations,\n"
             "                         dispatch-commands, dispatch-events, dispatch-events-dlq)\n"
             "  --bootstrap-file FILE  write the bootstrap servers there (atomically)\n"
             "  --no-long-poll         no front: clients talk to the mock brokers, whose Fetch\n"
             "                         with no data waits its whole fetch.wait.max.ms\n"
             "  --help                 this text\n"
             "Prints the bootstrap servers on stdout, then runs until SIGTERM or SIGINT.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

static void log_line(const char *level, const char *msg, const char *extra) {
  int64_t now_ms = mrd_wall_ms();
  fprintf(stderr, "ts=%lld.%03d level=%s svc=devkafka msg=\"%s\"%s%s\n", (long long)(now_ms / 1000),
          (int)(now_ms % 1000), level, msg, extra ? " " : "", extra ? extra : "");
}

static int write_file_atomic(const char *path, const char *text) {
  size_t n = strlen(path) + 8;
  char *tmp = malloc(n);
  if (tmp == NULL) return -1;
  snprintf(tmp, n, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL) {
    free(tmp);
    return -1;
  }
  int rc = fprintf(f, "%s\n", text) < 0 ? -1 : 0;
  if (fclose(f) != 0) rc = -1;
  if (rc == 0 && rename(tmp, path) != 0) rc = -1;
  if (rc != 0) unlink(tmp);
  free(tmp);
  return rc;
}

#define MAX_TOPICS 32

/* What the command line asks for; topics resolved to names and partition counts. */
typedef struct devkafka_opts {
  int brokers, partitions;
  bool long_poll; /* clients go through the front (default) */
  const char *bootstrap_file;
  const char *topic_args[MAX_TOPICS]; /* NAME[:N] as given */
  int ntopics;
  char names[MAX_TOPICS][256];
  int parts[MAX_TOPICS];
} devkafka_opts;

/* 0: go on; 1: --help was printed (exit 0); 2: bad usage, said on stderr. */
static int parse_args(int argc, char **argv, devkafka_opts *o) {
  enum { OPT_BROKERS = 256, OPT_PARTITIONS, OPT_TOPIC, OPT_BOOTSTRAP_FILE, OPT_NO_LONG_POLL };
  static const struct option longopts[] = {
      {"brokers", required_argument, NULL, OPT_BROKERS},
      {"partitions", required_argument, NULL, OPT_PARTITIONS},
      {"topic", required_argument, NULL, OPT_TOPIC},
      {"bootstrap-file", required_argument, NULL, OPT_BOOTSTRAP_FILE},
      {"no-long-poll", no_argument, NULL, OPT_NO_LONG_POLL},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (c) {
    case 'h': usage(stdout); return 1;
    case OPT_BROKERS:
      if (parse_int(optarg, 1, 16, &o->brokers) != 0) {
        fprintf(stderr, "devkafka: --brokers: \"%s\" is not an integer in [1, 16]\n", optarg);
        return 2;
      }
      break;
    case OPT_PARTITIONS:
      if (parse_int(optarg, 1, 1024, &o->partitions) != 0) {
        fprintf(stderr, "devkafka: --partitions: \"%s\" is not an integer in [1, 1024]\n", optarg);
        return 2;
      }
      break;
    case OPT_TOPIC:
      if (o->ntopics == MAX_TOPICS) {
        fprintf(stderr, "devkafka: at most %d topics\n", MAX_TOPICS);
        return 2;
      }
      o->topic_args[o->ntopics++] = optarg;
      break;
    case OPT_BOOTSTRAP_FILE: o->bootstrap_file = optarg; break;
    case OPT_NO_LONG_POLL: o->long_poll = false; break;
    default:
      fprintf(stderr, "devkafka: unknown or incomplete argument \"%s\" (try --help)\n",
              argv[optind - 1]);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "devkafka: unknown or incomplete argument \"%s\" (try --help)\n", argv[optind]);
    return 2;
  }
  return 0;
}

/* The topics to create: the default four when none was named; NAME:N overrides the
 * partition count of one topic. 0, or 2 after one line on stderr. */
static int resolve_topics(devkafka_opts *o) {
  if (o->ntopics == 0) {
    static const char *const defaults[] = {MRD_TOPIC_DRIVER_LOCATIONS, MRD_TOPIC_DISPATCH_COMMANDS,
                                           MRD_TOPIC_DISPATCH_EVENTS, MRD_TOPIC_DLQ};
    for (int t = 0; t < 4; t++) o->topic_args[t] = defaults[t];
    o->ntopics = 4;
  }
  for (int t = 0; t < o->ntopics; t++) {
    const char *arg = o->topic_args[t];
    const char *colon = strchr(arg, ':');
    size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
    if (len == 0 || len >= sizeof o->names[t]) {
      fprintf(stderr, "devkafka: --topic: bad topic name \"%s\"\n", arg);
      return 2;
    }
    memcpy(o->names[t], arg, len);
    o->names[t][len] = '\0';
    if (colon && parse_int(colon + 1, 1, 1024, &o->parts[t]) != 0) {
      fprintf(stderr, "devkafka: --topic: bad partition count in \"%s\"\n", arg);
      return 2;
    }
    if (!colon) o->parts[t] = o->partitions;
  }
  return 0;
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* The handle that hosts the cluster (it never produces), the cluster and its topics.
 * NULL after one line on stderr. */
static rd_kafka_mock_cluster_t *cluster_start(const devkafka_opts *o, rd_kafka_t **rk_out) {
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "client.id", "devkafka", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "devkafka: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == NULL) {
    fprintf(stderr, "devkafka: rd_kafka_new: %s\n", errstr);
    return NULL;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, o->brokers);
  if (mc == NULL) {
    fprintf(stderr, "devkafka: could not create the mock cluster\n");
    rd_kafka_destroy(rk);
    return NULL;
  }
  for (int t = 0; t < o->ntopics; t++) {
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, o->names[t], o->parts[t], 1);
    if (err) {
      fprintf(stderr, "devkafka: creating topic %s: %s\n", o->names[t], rd_kafka_err2str(err));
      rd_kafka_mock_cluster_destroy(mc);
      rd_kafka_destroy(rk);
      return NULL;
    }
    char extra[320];
    snprintf(extra, sizeof extra, "topic=%s partitions=%d", o->names[t], o->parts[t]);
    log_line("info", "topic created", extra);
  }
  *rk_out = rk;
  return mc;
}

/* The mock brokers' ports, in the order of its bootstrap list ("127.0.0.1:P,..."). The count,
 * or -1 when the list is not of that form. */
static int mock_ports(const char *bootstraps, int32_t *ports, int cap) {
  int n = 0;
  const char *p = bootstraps;
  while (*p) {
    const char *colon = strchr(p, ':');
    if (colon == NULL || n == cap) return -1;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || port <= 0 || port > 65535 || (*end != ',' && *end != '\0')) return -1;
    ports[n++] = (int32_t)port;
    p = *end == ',' ? end + 1 : end;
  }
  return n;
}

/* The front before the mock's brokers, and its bootstrap list in out. NULL after one line on
 * stderr. */
static dk_front *front_start(rd_kafka_mock_cluster_t *mc, char *out, size_t out_len) {
  int32_t ports[16];
  int n = mock_ports(rd_kafka_mock_cluster_bootstraps(mc), ports, 16);
  if (n <= 0) {
    fprintf(stderr, "devkafka: cannot read the mock's bootstrap list \"%s\"\n",
            rd_kafka_mock_cluster_bootstraps(mc));
    return NULL;
  }
  char err[256];
  dk_front *f = dk_front_new(ports, (size_t)n, err, sizeof err);
  if (f == NULL) {
    fprintf(stderr, "devkafka: %s\n", err);
    return NULL;
  }
  size_t at = 0;
  out[0] = '\0';
  for (int i = 0; i < n && at < out_len; i++)
    at += (size_t)snprintf(out + at, out_len - at, "%s127.0.0.1:%d", i ? "," : "",
                           (int)dk_front_port(f, (size_t)i));
  return f;
}

/* The bootstrap servers: to the file (atomically, before anything else can see it), on
 * stdout and in the log. false when the file cannot be written. */
static bool announce(const devkafka_opts *o, const char *bootstraps) {
  if (o->bootstrap_file && write_file_atomic(o->bootstrap_file, bootstraps) != 0) {
    fprintf(stderr, "devkafka: cannot write %s: %s\n", o->bootstrap_file, strerror(errno));
    return false;
  }
  printf("%s\n", bootstraps);
  fflush(stdout);
  char extra[600];
  snprintf(extra, sizeof extra, "brokers=%d long_poll=%s bootstrap=%s", o->brokers,
           o->long_poll ? "on" : "off", bootstraps);
  log_line("info", "ready", extra);
  return true;
}

static void log_front_stats(const dk_front *f) {
  dk_front_stats st = dk_front_get_stats(f);
  char extra[400];
  snprintf(extra, sizeof extra,
           "connections=%llu fetches=%llu held=%llu released_by_produce=%llu "
           "released_at_max_wait=%llu produces=%llu produce_unreadable=%llu ports_rewritten=%llu",
           (unsigned long long)st.connections, (unsigned long long)st.fetches,
           (unsigned long long)st.fetches_held, (unsigned long long)st.released_by_produce,
           (unsigned long long)st.released_at_max_wait, (unsigned long long)st.produces,
           (unsigned long long)st.produce_unreadable, (unsigned long long)st.ports_rewritten);
  log_line("info", "front", extra);
}

int main(int argc, char **argv) {
  static devkafka_opts o = {.brokers = 3, .partitions = 64, .long_poll = true};
  int rc = parse_args(argc, argv, &o);
  if (rc == 1) return 0;
  if (rc != 0 || resolve_topics(&o) != 0) return 2;
  install_signals();
  rd_kafka_t *rk = NULL;
  rd_kafka_mock_cluster_t *mc = cluster_start(&o, &rk);
  if (mc == NULL) return 1;
  dk_front *front = NULL;
  static char bootstraps[16 * 32];
  if (o.long_poll) {
    front = front_start(mc, bootstraps, sizeof bootstraps);
    rc = front ? 0 : 1;
  } else {
    snprintf(bootstraps, sizeof bootstraps, "%s", rd_kafka_mock_cluster_bootstraps(mc));
  }
  if (rc == 0 && !announce(&o, bootstraps)) rc = 1;
  if (rc == 0 && front && dk_front_run(front, &g_stop) != 0) {
    log_line("error", "front: epoll failed", NULL);
    rc = 1;
  }
  while (rc == 0 && !g_stop) {               /* no front: the mock's threads do the work */
    struct timespec d = {0, 100 * 1000000L}; /* 100 ms */
    nanosleep(&d, NULL);
  }
  log_line("info", "stopping", NULL);
  if (front) log_front_stats(front);
  dk_front_free(front);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  if (o.bootstrap_file) unlink(o.bootstrap_file);
  log_line("info", "stopped", NULL);
  return rc;
}
