/*
 * devkafka: the embedded Kafka for one machine.
 *
 * Hosts librdkafka's mock cluster (rdkafka_mock.h) in a process of its own: N brokers on
 * 127.0.0.1 with random ports, Meridian's topics pre-created with their partition counts,
 * and the bootstrap servers written to a file for the other processes. It is a real
 * Kafka-protocol broker held in memory, for development and tests; it is not a Kafka
 * replacement (no persistence, about 5 MiB kept per partition). See README.md.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: devkafka [options]\n"
          "  --brokers N            brokers in the mock cluster (default 3)\n"
          "  --partitions N         partitions of each topic (default 64)\n"
          "  --topic NAME[:N]       a topic to create (repeatable; default: driver-locations,\n"
          "                         dispatch-commands, dispatch-events, dispatch-events-dlq)\n"
          "  --bootstrap-file FILE  write the bootstrap servers there (atomically)\n"
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
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  fprintf(stderr, "ts=%lld.%03ld level=%s svc=devkafka msg=\"%s\"%s%s\n", (long long)ts.tv_sec,
          ts.tv_nsec / 1000000, level, msg, extra ? " " : "", extra ? extra : "");
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

int main(int argc, char **argv) {
  int brokers = 3, partitions = 64;
  const char *bootstrap_file = NULL;
  const char *topics[MAX_TOPICS];
  int topic_parts[MAX_TOPICS];
  int ntopics = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--brokers") == 0 && v) {
      if (parse_int(v, 1, 16, &brokers) != 0) {
        fprintf(stderr, "devkafka: --brokers: \"%s\" is not an integer in [1, 16]\n", v);
        return 2;
      }
      i++;
    } else if (strcmp(a, "--partitions") == 0 && v) {
      if (parse_int(v, 1, 1024, &partitions) != 0) {
        fprintf(stderr, "devkafka: --partitions: \"%s\" is not an integer in [1, 1024]\n", v);
        return 2;
      }
      i++;
    } else if (strcmp(a, "--topic") == 0 && v) {
      if (ntopics == MAX_TOPICS) {
        fprintf(stderr, "devkafka: at most %d topics\n", MAX_TOPICS);
        return 2;
      }
      topics[ntopics] = v;
      topic_parts[ntopics] = 0;
      ntopics++;
      i++;
    } else if (strcmp(a, "--bootstrap-file") == 0 && v) {
      bootstrap_file = v;
      i++;
    } else {
      fprintf(stderr, "devkafka: unknown or incomplete argument \"%s\" (try --help)\n", a);
      return 2;
    }
  }
  if (ntopics == 0) {
    topics[0] = "driver-locations";
    topics[1] = "dispatch-commands";
    topics[2] = "dispatch-events";
    topics[3] = "dispatch-events-dlq"; /* the dead-letter topic (schemas/kafka/README.md) */
    topic_parts[0] = topic_parts[1] = topic_parts[2] = topic_parts[3] = 0;
    ntopics = 4;
  }

  /* NAME:N overrides the partition count of one topic. */
  static char names[MAX_TOPICS][256];
  for (int t = 0; t < ntopics; t++) {
    const char *colon = strchr(topics[t], ':');
    size_t len = colon ? (size_t)(colon - topics[t]) : strlen(topics[t]);
    if (len == 0 || len >= sizeof names[t]) {
      fprintf(stderr, "devkafka: --topic: bad topic name \"%s\"\n", topics[t]);
      return 2;
    }
    memcpy(names[t], topics[t], len);
    names[t][len] = '\0';
    if (colon && parse_int(colon + 1, 1, 1024, &topic_parts[t]) != 0) {
      fprintf(stderr, "devkafka: --topic: bad partition count in \"%s\"\n", topics[t]);
      return 2;
    }
    if (!colon) topic_parts[t] = partitions;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* The handle only hosts the cluster; it never produces. */
  if (rd_kafka_conf_set(conf, "client.id", "devkafka", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "devkafka: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return 1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == NULL) {
    fprintf(stderr, "devkafka: rd_kafka_new: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (mc == NULL) {
    fprintf(stderr, "devkafka: could not create the mock cluster\n");
    rd_kafka_destroy(rk);
    return 1;
  }
  for (int t = 0; t < ntopics; t++) {
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, names[t], topic_parts[t], 1);
    if (err) {
      fprintf(stderr, "devkafka: creating topic %s: %s\n", names[t], rd_kafka_err2str(err));
      rd_kafka_mock_cluster_destroy(mc);
      rd_kafka_destroy(rk);
      return 1;
    }
    char extra[320];
    snprintf(extra, sizeof extra, "topic=%s partitions=%d", names[t], topic_parts[t]);
    log_line("info", "topic created", extra);
  }

  const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
  if (bootstrap_file && write_file_atomic(bootstrap_file, bootstraps) != 0) {
    fprintf(stderr, "devkafka: cannot write %s: %s\n", bootstrap_file, strerror(errno));
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 1;
  }
  printf("%s\n", bootstraps);
  fflush(stdout);
  char extra[600];
  snprintf(extra, sizeof extra, "brokers=%d bootstrap=%s", brokers, bootstraps);
  log_line("info", "ready", extra);

  while (!g_stop) {
    struct timespec d = {0, 100 * 1000000L}; /* 100 ms */
    nanosleep(&d, NULL);
  }
  log_line("info", "stopping", NULL);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  if (bootstrap_file) unlink(bootstrap_file);
  log_line("info", "stopped", NULL);
  return 0;
}
