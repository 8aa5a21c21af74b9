/* test_admin.c: the /healthz /readyz /metrics router, and the admin HTTP server on its own
 * lws context serviced from this thread while a client thread makes real requests. The
 * server uses a kernel-chosen free port on 127.0.0.1. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mrd/admin.h"

static int ready_state; /* 0 ready, else not */
static int ready_cb(void *ud, char *reason, size_t cap) {
  (void)ud;
  if (ready_state == 0) return 0;
  snprintf(reason, cap, "redis: connection refused");
  return -1;
}

static void test_admin_respond_routes_each_path(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  mrd_counter *c;
  assert_int_equal(mrd_metrics_counter(m, "hits_total", "Hits.", NULL, &c), 0);
  mrd_counter_add(c, 3);
  mrd_health h = {ready_cb, NULL, m};
  mrd_http_response r;
  assert_int_equal(mrd_admin_respond(&h, "/healthz", &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok\n");
  mrd_http_response_free(&r);
  ready_state = 0;
  assert_int_equal(mrd_admin_respond(&h, "/readyz?verbose=1", &r), 0);
  assert_int_equal(r.status, 200);
  mrd_http_response_free(&r);
  ready_state = 1;
  assert_int_equal(mrd_admin_respond(&h, "/readyz", &r), 0);
  assert_int_equal(r.status, 503);
  assert_string_equal(r.body, "not ready: redis: connection refused\n");
  mrd_http_response_free(&r);
  assert_int_equal(mrd_admin_respond(&h, "/metrics", &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.content_type, MRD_METRICS_CONTENT_TYPE);
  assert_non_null(strstr(r.body, "hits_total 3\n"));
  mrd_http_response_free(&r);
  static const char *const missing[] = {"/", "/healthzz", "/metrics/x", "/READYZ", ""};
  for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
    assert_int_equal(mrd_admin_respond(&h, missing[i], &r), 0);
    assert_int_equal(r.status, 404);
    mrd_http_response_free(&r);
  }
  mrd_health none = {NULL, NULL, NULL};
  assert_int_equal(mrd_admin_respond(&none, "/readyz", &r), 0);
  assert_int_equal(r.status, 200);
  mrd_http_response_free(&r);
  mrd_metrics_free(m);
}

/* A client request run on its own thread. */
typedef struct request {
  int port;
  const char *path;
  char response[65536];
  size_t len;
  atomic_int done;
} request;

static void *client(void *arg) {
  request *rq = arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)rq->port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     rq->path);
    if (write(fd, req, (size_t)n) == n) {
      ssize_t r;
      while (rq->len < sizeof rq->response - 1 &&
             (r = read(fd, rq->response + rq->len, sizeof rq->response - 1 - rq->len)) > 0)
        rq->len += (size_t)r;
    }
  }
  rq->response[rq->len] = '\0';
  if (fd >= 0) close(fd);
  atomic_store(&rq->done, 1);
  return NULL;
}

/* Makes one request while servicing the admin server from this thread. */
static void get(mrd_admin *a, const char *path, request *rq) {
  memset(rq, 0, sizeof *rq);
  rq->port = mrd_admin_port(a);
  rq->path = path;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, client, rq), 0);
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (!atomic_load(&rq->done)) {
    assert_int_equal(mrd_admin_service(a), 0);
    nanosleep(&(struct timespec){0, 1000000L}, NULL);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - t0.tv_sec > 10) fail_msg("no answer for %s within 10 s", path);
  }
  pthread_join(t, NULL);
}

static void test_admin_server_answers_over_http(void **state) {
  (void)state;
  mrd_metrics *m;
  assert_int_equal(mrd_metrics_new(&m), 0);
  /* enough series that /metrics spans several writes */
  for (int i = 0; i < 300; i++) {
    char v[16];
    snprintf(v, sizeof v, "%d", i);
    mrd_counter *c;
    assert_int_equal(mrd_metrics_counter(m, "messages_total", "Messages by shard.",
                                         (const char *[]){"shard", v, NULL}, &c),
                     0);
    mrd_counter_add(c, (uint64_t)i);
  }
  mrd_health h = {ready_cb, NULL, m};
  mrd_admin *a = NULL;
  assert_int_equal(mrd_admin_start(NULL, 0, &h, &a), 0);
  assert_true(mrd_admin_port(a) > 0);
  static request rq;

  get(a, "/healthz", &rq);
  assert_non_null(strstr(rq.response, "HTTP/1.1 200"));
  assert_non_null(strstr(rq.response, "\r\n\r\nok\n"));

  ready_state = 1;
  get(a, "/readyz", &rq);
  assert_non_null(strstr(rq.response, "HTTP/1.1 503"));
  assert_non_null(strstr(rq.response, "not ready: redis: connection refused"));
  ready_state = 0;
  get(a, "/readyz", &rq);
  assert_non_null(strstr(rq.response, "HTTP/1.1 200"));

  get(a, "/metrics", &rq);
  assert_non_null(strstr(rq.response, "HTTP/1.1 200"));
  assert_non_null(strstr(rq.response, "text/plain; version=0.0.4"));
  assert_non_null(strstr(rq.response, "messages_total{shard=\"0\"} 0\n"));
  assert_non_null(strstr(rq.response, "messages_total{shard=\"299\"} 299\n"));
  char *text = NULL;
  size_t text_len = 0;
  assert_int_equal(mrd_metrics_render(m, &text, &text_len), 0);
  assert_true(text_len > 8192);
  const char *body = strstr(rq.response, "\r\n\r\n");
  assert_non_null(body);
  assert_string_equal(body + 4, text); /* the whole body, every chunk */
  free(text);

  get(a, "/nope", &rq);
  assert_non_null(strstr(rq.response, "HTTP/1.1 404"));
  mrd_admin_stop(a);
  mrd_admin_stop(NULL);
  mrd_metrics_free(m);
}

/* True when /proc/net/<file> lists a listening socket on port whose local address starts
 * with addr_hex (empty: any address). */
static int listening(const char *file, const char *addr_hex, int port) {
  char path[64], line[512], want[16];
  snprintf(path, sizeof path, "/proc/net/%s", file);
  snprintf(want, sizeof want, ":%04X", port);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    char local[64], remote[64];
    unsigned st;
    if (sscanf(line, " %*d: %63s %63s %x", local, remote, &st) != 3) continue;
    char *colon = strrchr(local, ':');
    if (st == 0x0A && colon && strcmp(colon, want) == 0 &&
        strncmp(local, addr_hex, strlen(addr_hex)) == 0)
      found = 1;
  }
  fclose(f);
  return found;
}

static void test_admin_server_binds_loopback_only(void **state) {
  (void)state;
  mrd_health h = {NULL, NULL, NULL};
  mrd_admin *a = NULL;
  assert_int_equal(mrd_admin_start("127.0.0.1", 0, &h, &a), 0);
  int port = mrd_admin_port(a);
  assert_true(listening("tcp", "0100007F", port));
  assert_false(listening("tcp", "00000000", port));
  assert_false(listening("tcp6", "", port));
  /* a second server on the same port is an error, not a crash */
  mrd_admin *b = NULL;
  assert_int_equal(mrd_admin_start("127.0.0.1", port, &h, &b), MRD_EIO);
  mrd_admin_stop(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_admin_respond_routes_each_path),
      cmocka_unit_test(test_admin_server_answers_over_http),
      cmocka_unit_test(test_admin_server_binds_loopback_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
