/*
 * main.c: meridian-trips: config -> log -> open PostgreSQL, Kafka (every partition of
 * dispatch-events from the committed offsets) and the admin server -> loop: consume a
 * batch, record it in one transaction, then commit the offsets -> on SIGTERM exit 0 (an
 * unrecorded batch is simply consumed again by the next start). When the transaction
 * fails, mrd_retry_decide (mrd/dlq.h) says what to do with the event that failed: an
 * outage (PostgreSQL down, the connection lost) is retried with exponential backoff for as
 * long as it lasts, committing nothing, and it catches up when the database returns; an
 * event the database refuses for itself (constraint, bad value) or that does not decode is
 * parked in dispatch-events-dlq at once, a transient failure (deadlock, time-out) after
 * MERIDIAN_TRIPS_MAX_ATTEMPTS attempts; then the batch is recorded without it, and the
 * offsets are committed past it. Bad configuration exits 2; a start failure exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "mrd/log.h"
#include "mrd/signals.h"
#include "mrd/tz.h"
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
  if (mrd_timezone_set(cfg.timezone) != 0) { /* before any thread: TZ is process-wide */
    mrd_log_error("config", "MERIDIAN_TIMEZONE=%s is not a known time zone", cfg.timezone);
    return 2;
  }
  if (mrd_signals_install(NULL, NULL) != 0) return 1;
  tsvc s;
  int rc = 1;
  if (tsvc_open(&s, &cfg) != 0) goto out;
  rc = 0;
  while (!mrd_should_stop()) {
    tsvc_poll(&s, 20);
    if (s.n_batch > 0) {
      mrd_retry_policy pol = {cfg.max_attempts, cfg.backoff_min_ms, cfg.backoff_max_ms};
      int batch_failures = 0;
      bool done;
      while (!(done = tsvc_apply(&s) == 0) && !mrd_should_stop()) {
        batch_failures++;
        /* the event that failed carries the count; a failed transaction as a whole (BEGIN,
         * COMMIT) cannot be pinned on one event and is only ever retried */
        tsvc_msg *m = s.fail_at >= 0 ? &s.batch[s.fail_at] : NULL;
        mrd_failure f = m ? s.fail : MRD_FAIL_OUTAGE;
        /* an outage is nobody's attempt: it must not bring an event closer to parking */
        int attempts = f == MRD_FAIL_OUTAGE ? batch_failures : ++m->attempts;
        mrd_retry_verdict v = mrd_retry_decide(&pol, f, attempts);
        if (v.action == MRD_PARK && tsvc_park(&s, s.fail_at, 10000) == 0) continue;
        if (v.action == MRD_PARK) v = mrd_retry_decide(&pol, MRD_FAIL_OUTAGE, batch_failures);
        /* logged on the first failure and then at 2, 4, 8 ... (not every retry) */
        if ((batch_failures & (batch_failures - 1)) == 0)
          mrd_log_warn("batch_failed",
                       "events=%d failures=%d class=%s partition=%d offset=%lld retry_in_ms=%lld "
                       "err=\"%s\" sqlstate=%s",
                       s.n_batch, batch_failures, mrd_failure_name(f), m ? (int)m->partition : -1,
                       m ? (long long)m->offset : -1LL, (long long)v.wait_ms, s.fail_err,
                       mrd_pg_sqlstate(s.pg));
        sleep_ms(&s, v.wait_ms);
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
