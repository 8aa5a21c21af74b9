/*
 * main.c: meridian-trips: config -> log -> open PostgreSQL, Kafka (every partition of
 * dispatch-events from the committed offsets) and the admin server -> loop: consume a
 * batch, record it in one transaction (retried with exponential backoff while PostgreSQL
 * is down: nothing is committed meanwhile, and it catches up when the database returns),
 * then commit the offsets -> on SIGTERM exit 0 (an unrecorded batch is simply consumed
 * again by the next start). Bad configuration exits 2; a start failure exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "mrd/log.h"
#include "mrd/signals.h"
#include "service.h"

static void sleep_ms(tsvc *s, int64_t ms) {
  while (ms > 0 && !mrd_should_stop()) {
    int64_t step = ms > 20 ? 20 : ms;
    struct timespec ts = {0, (long)step * 1000000L};
    nanosleep(&ts, NULL);
    mrd_admin_service(s->admin);
    ms -= step;
  }
}

int main(int argc, char **argv) {
  mrd_log_init("trips");
  tsvc_config cfg;
  memset(&cfg, 0, sizeof cfg);
  tsvc_config_load(&cfg, argc, argv);
  tsvc_config_log();
  if (mrd_signals_install(NULL, NULL) != 0) return 1;
  tsvc s;
  int rc = 1;
  if (tsvc_open(&s, &cfg) != 0) goto out;
  rc = 0;
  while (!mrd_should_stop()) {
    tsvc_poll(&s, 20);
    if (s.n_batch > 0) {
      int64_t backoff = cfg.backoff_min_ms;
      bool done;
      while (!(done = tsvc_apply(&s) == 0) && !mrd_should_stop()) {
        sleep_ms(&s, backoff);
        backoff = backoff * 2 > cfg.backoff_max_ms ? cfg.backoff_max_ms : backoff * 2;
      }
      if (!done) break; /* stopping with the batch unrecorded: nothing committed */
      tsvc_commit(&s);
    }
    mrd_admin_service(s.admin);
  }
  mrd_log_info("stopping", "signal=%d", mrd_stop_signal());
out:
  tsvc_close(&s);
  tsvc_config_release();
  mrd_log_info("exit", "code=%d", rc);
  return rc;
}
