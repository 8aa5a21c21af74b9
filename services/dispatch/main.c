/*
 * main.c: meridian-dispatch, one process per shard (MERIDIAN_SHARD=k): config -> log ->
 * open the graph, Redis, PostgreSQL (the shard map, LISTEN shard_map), Kafka and the admin
 * server -> start as a standby (pings only: the index warms) -> loop: the lease (acquire
 * as a standby, renew as the holder: docs/shards.md); as the holder that may act:
 * consume, tick, flush (events delivered, snapshots written, offsets committed), hot
 * cells; the shard map's epoch -> on SIGTERM finish the batch, flush Kafka, give the
 * lease back, exit 0. Becoming the holder restores the live trips (dispatch_io.c); losing
 * the lease (found at a renew: SIGSTOPped, cut off) steps down to a standby.
 * Bad configuration exits 2; a dependency missing at start or events that cannot be
 * delivered exit 1 (a restart resumes from the committed offsets).
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "mrd/clock.h"
#include "mrd/log.h"
#include "mrd/signals.h"
#include "mrd/tz.h"
#include "service.h"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  mrd_log_init("dispatch");
  dsvc_config cfg;
  memset(&cfg, 0, sizeof cfg);
  dsvc_config_load(&cfg, argc, argv);
  dsvc_config_log();
  if (mrd_timezone_set(cfg.timezone) != 0) { /* before any thread: TZ is process-wide */
    mrd_log_error("config", "MERIDIAN_TIMEZONE=%s is not a known time zone", cfg.timezone);
    return 2;
  }
  if (mrd_signals_install(NULL, NULL) != 0) return 1;

  dsvc s;
  int rc = 1;
  if (dsvc_open(&s, &cfg) != 0) goto out;
  if (dsvc_assign(&s, false) != 0) goto out; /* pings only until this process holds the lease */
  int64_t t = mrd_wall_ms();
  int64_t next_tick = t, next_hot = t, next_metrics = t;
  rc = 0;
  while (!mrd_should_stop()) {
    t = mrd_wall_ms();
    dsvc_lease_step(&s, mrd_mono_ms(), t);
    /* a holder that may not act (past its margin, the renew unanswered) consumes nothing */
    bool holder = s.lease.role == DSP_LEASE_HOLDER;
    bool act = holder && dsvc_may_act(&s);
    int wait = (int)(next_tick - t);
    if (wait > 5) wait = 5;
    if (wait < 0) wait = 0;
    if (!holder || act)
      dsvc_poll(&s, wait, t);
    else
      sleep_ms(wait > 0 ? wait : 5);
    t = mrd_wall_ms();
    if (t >= next_tick) {
      if (s.ready && act)
        dsp_tick(s.shard, t);
      else if (!holder)
        dsp_tick(s.shard, t); /* a standby's index forgets silent drivers too */
      next_tick = t + cfg.tick_ms;
    }
    if (dsvc_flush(&s, t) != 0) {
      mrd_log_error("events_not_delivered", "action=%s",
                    "exit without committing; restart resumes");
      rc = 1;
      break;
    }
    if (t >= next_hot) {
      dsvc_hot_flush(&s, t);
      next_hot = t + cfg.hot_interval_ms;
    }
    dsvc_epoch_poll(&s, t);
    if (t >= next_metrics) {
      dsvc_metrics_sync(&s);
      dsvc_stats_publish(&s, t);
      next_metrics = t + 1000;
    }
    mrd_admin_service(s.admin);
  }
  mrd_log_info("stopping", "signal=%d", mrd_stop_signal());
  if (rc == 0) dsvc_lease_release(&s); /* a standby takes over at once, not after the TTL */
out:
  dsvc_close(&s, 5000);
  dsvc_config_release();
  mrd_log_info("exit", "code=%d", rc);
  return rc;
}
