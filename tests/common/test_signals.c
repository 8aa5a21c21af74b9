/*
 * test_signals.c: mrd_signals_* (services/common signals.c) with real signals: SIGTERM and
 * SIGINT set the stop flag, record which signal it was, call the hook and make the
 * self-pipe readable; mrd_request_stop does the same without a signal; a second install
 * replaces the hook; SIGPIPE is ignored (a write to a closed pipe is EPIPE, not death);
 * blocking calls are interrupted (no SA_RESTART), so a loop wakes at once. The tests run
 * in order in one process: the first runs before anything is installed.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mrd/signals.h"

static volatile sig_atomic_t g_hook_a, g_hook_b;
static void hook_a(void *ud) {
  (void)ud;
  g_hook_a++;
}
static void hook_b(void *ud) { *(volatile sig_atomic_t *)ud += 1; }

static bool fd_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void test_signals_fd_is_minus_one_before_install(void **state) {
  (void)state;
  assert_int_equal(mrd_signals_fd(), -1);
  assert_false(mrd_should_stop());
  assert_int_equal(mrd_stop_signal(), 0);
}

static void test_signals_sigterm_sets_flag_calls_hook_and_wakes_fd(void **state) {
  (void)state;
  assert_int_equal(mrd_signals_install(hook_a, NULL), 0);
  int fd = mrd_signals_fd();
  assert_true(fd >= 0);
  assert_false(fd_readable(fd));
  assert_int_equal(raise(SIGTERM), 0);
  assert_true(mrd_should_stop());
  assert_int_equal(mrd_stop_signal(), SIGTERM);
  assert_int_equal(g_hook_a, 1);
  assert_true(fd_readable(fd));
  assert_true(fd_readable(fd)); /* it stays readable: never read by the service */
  mrd_signals_reset();
  assert_false(mrd_should_stop());
  assert_int_equal(mrd_stop_signal(), 0);
  assert_false(fd_readable(fd));
}

static void test_signals_sigint_is_told_apart(void **state) {
  (void)state;
  assert_int_equal(raise(SIGINT), 0);
  assert_true(mrd_should_stop());
  assert_int_equal(mrd_stop_signal(), SIGINT);
  assert_int_equal(g_hook_a, 2);
  mrd_signals_reset();
}

static void test_signals_request_stop_without_a_signal(void **state) {
  (void)state;
  mrd_request_stop();
  assert_true(mrd_should_stop());
  assert_int_equal(mrd_stop_signal(), 0);
  assert_int_equal(g_hook_a, 3);
  assert_true(fd_readable(mrd_signals_fd()));
  mrd_signals_reset();
}

static void test_signals_second_install_replaces_hook_keeps_fd(void **state) {
  (void)state;
  int fd = mrd_signals_fd();
  assert_int_equal(mrd_signals_install(hook_b, (void *)&g_hook_b), 0);
  assert_int_equal(mrd_signals_fd(), fd);
  assert_int_equal(raise(SIGTERM), 0);
  assert_int_equal(g_hook_b, 1);
  assert_int_equal(g_hook_a, 3);
  mrd_signals_reset();
  assert_int_equal(mrd_signals_install(NULL, NULL), 0);
  assert_int_equal(raise(SIGTERM), 0);
  assert_true(mrd_should_stop());
  assert_int_equal(g_hook_b, 1);
  mrd_signals_reset();
}

static void test_signals_sigpipe_is_ignored(void **state) {
  (void)state;
  int p[2];
  assert_int_equal(pipe(p), 0);
  close(p[0]);
  char c = 1;
  errno = 0;
  assert_int_equal(write(p[1], &c, 1), -1);
  assert_int_equal(errno, EPIPE);
  close(p[1]);
  assert_false(mrd_should_stop());
}

static void test_signals_interrupt_a_blocking_read(void **state) {
  (void)state;
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t parent = getpid();
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    struct timespec d = {0, 200 * 1000000L}; /* 200 ms: the parent is blocked in read() by then */
    nanosleep(&d, NULL);
    kill(parent, SIGTERM);
    _exit(0);
  }
  char c;
  errno = 0;
  ssize_t n = read(p[0], &c, 1); /* nothing is ever written: only the signal ends it */
  int err = errno;
  int status;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_int_equal(n, -1);
  assert_int_equal(err, EINTR);
  assert_true(mrd_should_stop());
  assert_int_equal(mrd_stop_signal(), SIGTERM);
  close(p[0]);
  close(p[1]);
  mrd_signals_reset();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_signals_fd_is_minus_one_before_install),
      cmocka_unit_test(test_signals_sigterm_sets_flag_calls_hook_and_wakes_fd),
      cmocka_unit_test(test_signals_sigint_is_told_apart),
      cmocka_unit_test(test_signals_request_stop_without_a_signal),
      cmocka_unit_test(test_signals_second_install_replaces_hook_keeps_fd),
      cmocka_unit_test(test_signals_sigpipe_is_ignored),
      cmocka_unit_test(test_signals_interrupt_a_blocking_read),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
