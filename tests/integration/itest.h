/*
 * itest.h: helpers shared by the integration tests (header-only, static functions):
 * required environment variables, free loopback ports, and child servers started and
 * stopped by PID. Include after <cmocka.h>.
 */
#ifndef MRD_ITEST_H
#define MRD_ITEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The value of a variable scripts/stack exports; fails the test when it is missing. */
static inline const char *itest_env(const char *name) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') {
    fail_msg("%s is not set: integration tests need the stack (scripts/test, or "
             "scripts/stack up and `set -a; . .run/env; set +a`)",
             name);
  }
  return v;
}

static inline int64_t itest_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void itest_sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* A loopback TCP port that was free a moment ago (bind to port 0, read it, close). */
static inline int itest_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* True when something accepts TCP connections on 127.0.0.1:port. */
static inline int itest_port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* Starts argv as a child with stdout/stderr to /dev/null; returns its PID. */
static inline pid_t itest_spawn(char *const argv[]) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    FILE *devnull = freopen("/dev/null", "w", stdout);
    (void)devnull;
    devnull = freopen("/dev/null", "w", stderr);
    (void)devnull;
    execvp(argv[0], argv);
    _exit(127);
  }
  return pid;
}

/* Sends sig to pid and reaps it. */
static inline void itest_kill(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

/* Starts a private redis-server (no persistence) on 127.0.0.1:port and waits up to 5 s for
 * it to listen; fails the test otherwise. Stop it with itest_kill(pid, ...). */
static inline pid_t itest_start_redis(int port) {
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  char *argv[] = {"redis-server", "--port", p,   "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no",     NULL};
  pid_t pid = itest_spawn(argv);
  int64_t deadline = itest_now_ms() + 5000;
  while (!itest_port_open(port)) {
    if (itest_now_ms() > deadline) {
      itest_kill(pid, SIGKILL);
      fail_msg("redis-server did not listen on %d within 5 s", port);
    }
    itest_sleep_ms(20);
  }
  return pid;
}

#endif /* MRD_ITEST_H */
