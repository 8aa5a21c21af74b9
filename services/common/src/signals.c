/* signals.c: SIGTERM / SIGINT to a flag, a self-pipe and an optional hook (signals.h). */
#include "mrd/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_signo;
static int g_pipe[2] = {-1, -1};
static mrd_stop_hook_fn g_hook;
static void *g_hook_ud;

static void wake(void) {
  if (g_pipe[1] >= 0) {
    char c = 1;
    ssize_t n = write(g_pipe[1], &c, 1); /* a full pipe already wakes the reader */
    (void)n;
  }
  if (g_hook) g_hook(g_hook_ud);
}

static void on_signal(int signo) {
  int saved = errno;
  g_signo = signo;
  g_stop = 1;
  wake();
  errno = saved;
}

int mrd_signals_install(mrd_stop_hook_fn hook, void *ud) {
  g_hook = hook;
  g_hook_ud = ud;
  if (g_pipe[0] < 0) {
    if (pipe(g_pipe) != 0) return mrd_err_from_errno(errno);
    for (int i = 0; i < 2; i++) {
      fcntl(g_pipe[i], F_SETFL, fcntl(g_pipe[i], F_GETFL) | O_NONBLOCK);
      fcntl(g_pipe[i], F_SETFD, FD_CLOEXEC);
    }
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
    return mrd_err_from_errno(errno);
  struct sigaction ign = {0};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  if (sigaction(SIGPIPE, &ign, NULL) != 0) return mrd_err_from_errno(errno);
  return 0;
}

bool mrd_should_stop(void) { return g_stop != 0; }
int mrd_stop_signal(void) { return (int)g_signo; }

void mrd_request_stop(void) {
  g_stop = 1;
  wake();
}

int mrd_signals_fd(void) { return g_pipe[0]; }

void mrd_signals_reset(void) {
  g_stop = 0;
  g_signo = 0;
  if (g_pipe[0] >= 0) {
    char buf[64];
    while (read(g_pipe[0], buf, sizeof buf) > 0) {
    }
  }
}
