/*
 * test_devkafka_front.c: devkafka's long-poll front end to end, against a devkafka of its own
 * (build/<preset>/bin/devkafka, one broker per test run, topics of 8 partitions) and real
 * librdkafka clients:
 *   - the brokers clients learn from Metadata are the front's ports, not the mock's;
 *   - a consumer whose fetch.wait.max.ms is 5 s gets each message as soon as it is produced
 *     (well under the wait: the held fetch was released by the produce, which the mock alone
 *     never does);
 *   - every message of a burst over 8 partitions arrives, once, in order per partition;
 *   - a client that sends garbage loses its connection and the front goes on serving.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#define TOPIC "dispatch-events"
#define NPART 8

static pid_t g_pid = -1;
static char g_bs[512], g_bsfile[128];

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&d, &d) != 0 && errno == EINTR) {
  }
}

static int start_devkafka(void **state) {
  (void)state;
  const char *bindir = getenv("MERIDIAN_BINARY_DIR");
  if (bindir == NULL) {
    fprintf(stderr, "MERIDIAN_BINARY_DIR is not set (ctest sets it)\n");
    return -1;
  }
  char bin[512];
  snprintf(bin, sizeof bin, "%s/bin/devkafka", bindir);
  snprintf(g_bsfile, sizeof g_bsfile, "/tmp/test_devkafka_front.%d", (int)getpid());
  unlink(g_bsfile);
  g_pid = fork();
  if (g_pid == 0) {
    execl(bin, "devkafka", "--brokers", "1", "--partitions", "8", "--topic", TOPIC,
          "--bootstrap-file", g_bsfile, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 300; i++) {
    FILE *f = fopen(g_bsfile, "r");
    if (f) {
      bool ok = fgets(g_bs, sizeof g_bs, f) != NULL;
      fclose(f);
      if (ok) {
        g_bs[strcspn(g_bs, "\n")] = '\0';
        return 0;
      }
    }
    if (waitpid(g_pid, NULL, WNOHANG) == g_pid) break;
    sleep_ms(100);
  }
  fprintf(stderr, "devkafka (%s) did not start\n", bin);
  return -1;
}

static int stop_devkafka(void **state) {
  (void)state;
  if (g_pid > 0) {
    kill(g_pid, SIGTERM);
    int st = 0;
    waitpid(g_pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  unlink(g_bsfile);
  return 0;
}

static rd_kafka_t *producer(void) {
  char e[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", g_bs, e, sizeof e), RD_KAFKA_CONF_OK);
  rd_kafka_conf_set(c, "linger.ms", "1", e, sizeof e);
  rd_kafka_conf_set(c, "enable.idempotence", "true", e, sizeof e);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
  assert_non_null(rk);
  return rk;
}

/* A consumer of every partition from the beginning, with a long fetch wait. Not from the end:
 * a consumer resolves "the end" with a ListOffsets on the same connection as its fetches, and
 * the front (like a real broker) takes a connection's requests in order, so a ListOffsets
 * behind a held fetch can resolve after the test has produced. Tests tell their own messages
 * by their payloads. */
static rd_kafka_t *consumer(int fetch_wait_ms) {
  char e[256], v[32];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", g_bs, e, sizeof e);
  rd_kafka_conf_set(c, "group.id", "test-devkafka-front", e, sizeof e);
  rd_kafka_conf_set(c, "enable.auto.commit", "false", e, sizeof e);
  snprintf(v, sizeof v, "%d", fetch_wait_ms);
  rd_kafka_conf_set(c, "fetch.wait.max.ms", v, e, sizeof e);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof e);
  assert_non_null(rk);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(NPART);
  for (int i = 0; i < NPART; i++)
    rd_kafka_topic_partition_list_add(tl, TOPIC, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
  assert_int_equal(rd_kafka_assign(rk, tl), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(tl);
  return rk;
}

static void produce(rd_kafka_t *p, int32_t part, const void *v, size_t len) {
  assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(part),
                                     RD_KAFKA_V_VALUE((void *)v, len),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Let the consumer settle at the end of every partition, and the producer reach the broker. */
static void settle(rd_kafka_t *p, rd_kafka_t *c) {
  for (int32_t i = 0; i < NPART; i++) produce(p, i, "w", 1);
  assert_int_equal(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  for (int64_t until = mono_ms() + 2500; mono_ms() < until;) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 50);
    if (m) rd_kafka_message_destroy(m);
  }
}

static void test_metadata_names_the_front(void **state) {
  (void)state;
  rd_kafka_t *p = producer();
  const struct rd_kafka_metadata *md = NULL;
  assert_int_equal(rd_kafka_metadata(p, 0, NULL, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(md->broker_cnt, 1);
  char want[64];
  snprintf(want, sizeof want, "%s:%d", md->brokers[0].host, md->brokers[0].port);
  assert_string_equal(want, g_bs); /* the front's port, the one announced */
  rd_kafka_metadata_destroy(md);
  rd_kafka_destroy(p);
}

static void test_a_long_fetch_wait_still_gets_each_message_at_once(void **state) {
  (void)state;
  rd_kafka_t *p = producer(), *c = consumer(5000 /* ms */);
  settle(p, c);
  for (int i = 0; i < 5; i++) {
    sleep_ms(700); /* the consumer's fetch is now held: nothing to read */
    int64_t t0 = mono_ms();
    char mark[32];
    snprintf(mark, sizeof mark, "mark-%d-%d", (int)getpid(), i);
    produce(p, i % NPART, mark, strlen(mark));
    rd_kafka_message_t *m = NULL;
    while (m == NULL && mono_ms() - t0 < 8000) {
      m = rd_kafka_consumer_poll(c, 100);
      if (m && (m->err || m->len != strlen(mark) || memcmp(m->payload, mark, m->len) != 0)) {
        rd_kafka_message_destroy(m);
        m = NULL;
      }
    }
    assert_non_null(m);
    int64_t took = mono_ms() - t0;
    rd_kafka_message_destroy(m);
    /* The mock alone answers at the end of the 5 s wait (uniform over it for a fetch already
     * waiting): five answers under 1.5 s each would happen by chance less than 0.3% of the time. */
    fprintf(stderr, "message %d: %lld ms with fetch.wait.max.ms=5000\n", i, (long long)took);
    assert_true(took < 1500);
  }
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  rd_kafka_destroy(p);
}

static void test_a_burst_arrives_whole_and_in_order(void **state) {
  (void)state;
  rd_kafka_t *p = producer(), *c = consumer(5000);
  settle(p, c);
  enum { N = 4000 };
  for (int i = 0; i < N; i++) {
    int32_t v = i;
    produce(p, i % NPART, &v, sizeof v);
    if (i % 500 == 0) rd_kafka_poll(p, 0);
  }
  assert_int_equal(rd_kafka_flush(p, 20000), RD_KAFKA_RESP_ERR_NO_ERROR);
  int32_t last[NPART];
  for (int i = 0; i < NPART; i++) last[i] = i - NPART;
  int got = 0;
  for (int64_t until = mono_ms() + 30000; got < N && mono_ms() < until;) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (m == NULL) continue;
    if (!m->err && m->len == sizeof(int32_t)) { /* only this test sends 4-byte values */
      int32_t v;
      memcpy(&v, m->payload, sizeof v);
      assert_int_equal(v % NPART, m->partition);
      assert_int_equal(v, last[m->partition] + NPART); /* in order, none missing or twice */
      last[m->partition] = v;
      got++;
    }
    rd_kafka_message_destroy(m);
  }
  assert_int_equal(got, N);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  rd_kafka_destroy(p);
}

static void test_garbage_closes_that_connection_only(void **state) {
  (void)state;
  const char *colon = strrchr(g_bs, ':');
  assert_non_null(colon);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  const uint8_t bad[8] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}; /* a 4 GiB frame */
  assert_int_equal(write(fd, bad, sizeof bad), (ssize_t)sizeof bad);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char b[16];
  assert_int_equal(read(fd, b, sizeof b), 0); /* closed by the front */
  close(fd);
  test_metadata_names_the_front(state); /* and it still serves */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_metadata_names_the_front),
      cmocka_unit_test(test_a_long_fetch_wait_still_gets_each_message_at_once),
      cmocka_unit_test(test_a_burst_arrives_whole_and_in_order),
      cmocka_unit_test(test_garbage_closes_that_connection_only),
  };
  return cmocka_run_group_tests(tests, start_devkafka, stop_devkafka);
}
