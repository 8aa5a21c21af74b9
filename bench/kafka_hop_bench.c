/*
 * kafka_hop_bench: one Kafka hop on devkafka (produce -> the consumer has it), and what an idle
 * consumer costs, with devkafka's long-poll front (impl "meridian") beside librdkafka's mock
 * cluster as it is (`devkafka --no-long-poll`, impl "librdkafka-mock": the anchor), in the same
 * run. The front lets a consumer keep a long fetch.wait.max.ms (cheap when idle) and still get
 * a message as soon as it is produced; the mock answers an empty fetch only after the whole
 * wait, so there latency and idle CPU trade against each other.
 *
 * Each configuration starts its own devkafka (the binary beside this one, or --devkafka),
 * one producer (linger.ms as the services', 1) and one consumer assigned all 64 partitions of
 * dispatch-events (as the gateway is), sends --msgs messages at --rate per second to random
 * partitions, each carrying its send time, and takes produce -> consumed per message. Then it
 * stays idle for --idle-s seconds with the consumer polling (as a service does) and reads the
 * CPU of devkafka (/proc/<pid>/stat) and of this process (getrusage: the client's librdkafka
 * threads). Not a test: figures go to stderr (a table) and the JSON line (bench/README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench_machine.h"

#define TOPIC "dispatch-events"
#define PARTITIONS 64

typedef struct config {
  const char *impl; /* "meridian" (front) or "librdkafka-mock" */
  bool long_poll;
  int fetch_wait_ms;
} config;

typedef struct result {
  double p50_ms, p95_ms, p99_ms;
  size_t n, lost;
  double broker_cpu_pct, client_cpu_pct; /* idle, % of one core */
} result;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms) {
  struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&d, &d) != 0 && errno == EINTR) {
  }
}

/* utime + stime of a process, in seconds. */
static double proc_cpu_s(pid_t pid) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  const char *p = strrchr(line, ')'); /* comm may hold spaces */
  if (p == NULL) return -1;
  unsigned long ut = 0, st = 0;
  /* after ")": state(3) ... utime is field 14, stime 15 */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double quantile(const double *sorted, size_t n, double q) {
  if (n == 0) return 0;
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);
  return sorted[i < n ? i : n - 1];
}

/* Starts devkafka; its pid, and its bootstrap list in bs. -1 when it does not come up. */
static pid_t devkafka_start(const char *bin, bool long_poll, const char *bsfile, char *bs,
                            size_t bslen) {
  unlink(bsfile);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", 1);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    if (long_poll)
      execl(bin, "devkafka", "--brokers", "3", "--partitions", "64", "--bootstrap-file", bsfile,
            (char *)NULL);
    else
      execl(bin, "devkafka", "--brokers", "3", "--partitions", "64", "--no-long-poll",
            "--bootstrap-file", bsfile, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 300 && pid > 0; i++) { /* 30 s */
    FILE *f = fopen(bsfile, "r");
    if (f) {
      bool ok = fgets(bs, (int)bslen, f) != NULL;
      fclose(f);
      if (ok) {
        bs[strcspn(bs, "\n")] = '\0';
        return pid;
      }
    }
    if (waitpid(pid, NULL, WNOHANG) == pid) return -1;
    sleep_ms(100);
  }
  if (pid > 0) kill(pid, SIGTERM);
  return -1;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *bs, int fetch_wait_ms) {
  char e[256], v[32];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", bs, e, sizeof e);
  if (type == RD_KAFKA_PRODUCER) {
    rd_kafka_conf_set(c, "linger.ms", "1", e, sizeof e);
    rd_kafka_conf_set(c, "enable.idempotence", "true", e, sizeof e);
  } else {
    rd_kafka_conf_set(c, "group.id", "kafka-hop-bench", e, sizeof e);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", e, sizeof e);
    snprintf(v, sizeof v, "%d", fetch_wait_ms);
    rd_kafka_conf_set(c, "fetch.wait.max.ms", v, e, sizeof e);
  }
  rd_kafka_t *rk = rd_kafka_new(type, c, e, sizeof e);
  if (rk == NULL) fprintf(stderr, "kafka_hop_bench: %s\n", e);
  return rk;
}

static int run(const char *bin, const config *cf, int msgs, int rate, int idle_s, result *out) {
  char bs[512], bsfile[64];
  snprintf(bsfile, sizeof bsfile, "/tmp/kafka_hop_bench.%d.bootstrap", (int)getpid());
  pid_t pid = devkafka_start(bin, cf->long_poll, bsfile, bs, sizeof bs);
  if (pid < 0) {
    fprintf(stderr, "kafka_hop_bench: devkafka (%s) did not start\n", bin);
    return -1;
  }
  rd_kafka_t *p = client(RD_KAFKA_PRODUCER, bs, 0),
             *c = client(RD_KAFKA_CONSUMER, bs, cf->fetch_wait_ms);
  int rc = -1;
  double *lat = calloc((size_t)msgs, sizeof *lat);
  if (p == NULL || c == NULL || lat == NULL) goto done;
  rd_kafka_poll_set_consumer(c);
  rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(PARTITIONS);
  for (int i = 0; i < PARTITIONS; i++)
    rd_kafka_topic_partition_list_add(tl, TOPIC, i)->offset = RD_KAFKA_OFFSET_END;
  rd_kafka_assign(c, tl);
  rd_kafka_topic_partition_list_destroy(tl);
  /* Warm-up: the producer connects to a broker when it first has something for it, so one
   * message goes to every partition; then the consumer reads them all (connections, metadata,
   * its position at the end of every partition). */
  for (int64_t until = mono_ns() + 2000000000LL; mono_ns() < until;) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 50);
    if (m) rd_kafka_message_destroy(m);
  }
  for (int32_t i = 0; i < PARTITIONS; i++)
    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(i), RD_KAFKA_V_VALUE("w", 1),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  rd_kafka_flush(p, 10000);
  for (int64_t until = mono_ns() + 3000000000LL; mono_ns() < until;) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 50);
    if (m) rd_kafka_message_destroy(m);
    rd_kafka_poll(p, 0);
  }
  size_t got = 0;
  int64_t period = 1000000000LL / rate, next = mono_ns();
  unsigned seed = 42;
  for (int sent = 0; sent < msgs || mono_ns() < next + 2000000000LL;) {
    if (sent < msgs && mono_ns() >= next) {
      int64_t t = mono_ns();
      int32_t part = (int32_t)(rand_r(&seed) % PARTITIONS);
      if (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(part),
                            RD_KAFKA_V_VALUE(&t, sizeof t),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) == 0)
        sent++;
      next += period;
      if (sent == msgs) next = mono_ns();
    }
    rd_kafka_poll(p, 0);
    int64_t wait_ns = next - mono_ns();
    int wait_ms = sent < msgs ? (wait_ns > 0 ? (int)(wait_ns / 1000000) : 0) : 50;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, wait_ms);
    if (m) {
      if (!m->err && m->len == sizeof(int64_t) && got < (size_t)msgs) {
        int64_t t0;
        memcpy(&t0, m->payload, sizeof t0);
        lat[got++] = (double)(mono_ns() - t0) / 1e6;
      }
      rd_kafka_message_destroy(m);
    }
    if (got == (size_t)msgs) break;
  }
  qsort(lat, got, sizeof *lat, cmp_d);
  out->n = got;
  out->lost = (size_t)msgs - got;
  out->p50_ms = quantile(lat, got, 0.50);
  out->p95_ms = quantile(lat, got, 0.95);
  out->p99_ms = quantile(lat, got, 0.99);
  /* Idle: the consumer polls as a service's loop does; nothing is produced. */
  sleep_ms(1000);
  double b0 = proc_cpu_s(pid), s0 = self_cpu_s();
  int64_t t0 = mono_ns(), until = t0 + (int64_t)idle_s * 1000000000LL;
  while (mono_ns() < until) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (m) rd_kafka_message_destroy(m);
    rd_kafka_poll(p, 0);
  }
  double wall = (double)(mono_ns() - t0) / 1e9;
  out->broker_cpu_pct = 100.0 * (proc_cpu_s(pid) - b0) / wall;
  out->client_cpu_pct = 100.0 * (self_cpu_s() - s0) / wall;
  rc = 0;
done:
  free(lat);
  if (c) {
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
  }
  if (p) rd_kafka_destroy(p);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  unlink(bsfile);
  return rc;
}

static int env_int(const char *name, int def, int lo, int hi) {
  const char *s = getenv(name);
  if (s == NULL || *s == '\0') return def;
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || v < lo || v > hi) {
    fprintf(stderr, "kafka_hop_bench: %s=%s is not an integer in [%d, %d]\n", name, s, lo, hi);
    exit(2);
  }
  return (int)v;
}

int main(int argc, char **argv) {
  char bin[PATH_MAX];
  if (argc == 3 && strcmp(argv[1], "--devkafka") == 0) {
    snprintf(bin, sizeof bin, "%s", argv[2]);
  } else if (argc == 1) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = '\0';
    snprintf(bin, sizeof bin, "%s/devkafka", dirname(self));
  } else {
    fprintf(stderr, "usage: kafka_hop_bench [--devkafka PATH]\n"
                    "  env KAFKA_HOP_BENCH_MSGS (300), _RATE (50/s), _IDLE_S (20)\n");
    return 2;
  }
  int msgs = env_int("KAFKA_HOP_BENCH_MSGS", 300, 10, 1000000);
  int rate = env_int("KAFKA_HOP_BENCH_RATE", 50, 1, 100000);
  int idle_s = env_int("KAFKA_HOP_BENCH_IDLE_S", 20, 1, 3600);
  /* The front with the services' new default wait, then the mock with the gateway's old one
   * (10 ms) and the low-latency setting (1 ms). */
  const config cfs[] = {
      {"meridian", true, 100}, {"librdkafka-mock", false, 10}, {"librdkafka-mock", false, 1}};
  const size_t ncf = sizeof cfs / sizeof cfs[0];
  result res[sizeof cfs / sizeof cfs[0]];
  double la0[3] = {0}, la1[3] = {0};
  getloadavg(la0, 3);
  fprintf(stderr, "%-16s %8s %9s %9s %9s %6s %12s %12s\n", "impl", "wait_ms", "p50_ms", "p95_ms",
          "p99_ms", "lost", "broker_idle%", "client_idle%");
  for (size_t i = 0; i < ncf; i++) {
    if (run(bin, &cfs[i], msgs, rate, idle_s, &res[i]) != 0) return 1;
    fprintf(stderr, "%-16s %8d %9.2f %9.2f %9.2f %6zu %12.1f %12.1f\n", cfs[i].impl,
            cfs[i].fetch_wait_ms, res[i].p50_ms, res[i].p95_ms, res[i].p99_ms, res[i].lost,
            res[i].broker_cpu_pct, res[i].client_cpu_pct);
  }
  getloadavg(la1, 3);
  fprintf(stderr, "load average (1 min) %.2f before, %.2f after; %d msgs at %d/s, idle %d s\n",
          la0[0], la1[0], msgs, rate, idle_s);
  char machine[256];
  bench_machine(machine, sizeof machine);
  printf("{\"bench\": \"kafka_hop_bench\", \"machine\": \"%s\", \"loadavg_1m\": [%.2f, %.2f], "
         "\"rows\": [",
         machine, la0[0], la1[0]);
  for (size_t i = 0; i < ncf; i++) {
    const char *sfx = cfs[i].fetch_wait_ms == 1 ? "_fw1" : "";
    printf("%s{\"workload\": \"produce_to_consume%s\", \"impl\": \"%s\", \"unit\": \"ms\", "
           "\"median\": %.3f, "
           "\"p95\": %.3f, \"n\": %zu, \"fetch_wait_ms\": %d}",
           i ? ", " : "", sfx, cfs[i].impl, res[i].p50_ms, res[i].p95_ms, res[i].n,
           cfs[i].fetch_wait_ms);
    printf(", {\"workload\": \"idle_cpu_broker%s\", \"impl\": \"%s\", \"unit\": \"pct_core\", "
           "\"median\": %.2f, "
           "\"p95\": %.2f, \"n\": 1, \"fetch_wait_ms\": %d}",
           sfx, cfs[i].impl, res[i].broker_cpu_pct, res[i].broker_cpu_pct, cfs[i].fetch_wait_ms);
    printf(", {\"workload\": \"idle_cpu_client%s\", \"impl\": \"%s\", \"unit\": \"pct_core\", "
           "\"median\": %.2f, "
           "\"p95\": %.2f, \"n\": 1, \"fetch_wait_ms\": %d}",
           sfx, cfs[i].impl, res[i].client_cpu_pct, res[i].client_cpu_pct, cfs[i].fetch_wait_ms);
  }
  printf("]}\n");
  return 0;
}
