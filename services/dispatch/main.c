/*
 * main.c: meridian-dispatch, one process per shard (MERIDIAN_SHARD=k): config -> log ->
 * open the graph, Redis, PostgreSQL, Kafka and the admin server -> restore the live trips
 * from Redis -> read pings only for the warm-up (so the index is full before the first
 * command is matched) -> loop: consume, tick, flush (events delivered, snapshots written,
 * offsets committed), hot cells -> on SIGTERM finish the batch, flush Kafka, exit 0.
 * Bad configuration exits 2; a dependency missing at start or events that cannot be
 * delivered exit 1 (a restart resumes from the committed offsets).
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "mrd/log.h"
#include "mrd/signals.h"
#include "mrd/tz.h"
#include "service.h"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
  int64_t t = now_ms();
  if (dsvc_restore(&s, t) < 0)
    mrd_log_warn("restore_skipped", "reason=%s", "neither dispatch-events nor redis could be read");
  if (dsvc_assign(&s, false) != 0) goto out;
  dsp_warmup_init(&s.warm, t, cfg.warmup_ms);
  int64_t next_tick = t + cfg.warmup_ms, next_hot = t, next_epoch = t + cfg.epoch_check_ms,
          next_metrics = t;
  rc = 0;
  while (!mrd_should_stop()) {
    t = now_ms();
    if (!s.commands_assigned && dsp_warmup_done(&s.warm, t)) {
      if (dsvc_assign(&s, true) != 0) {
        rc = 1;
        break;
      }
      s.ready = true;
      next_tick = t;
      mrd_log_info("ready", "shard=%d warmup_ms=%lld backlog_from_ms=%lld", cfg.shard,
                   (long long)(t - s.warm.started_ms),
                   (long long)(s.warm.first_ping_ms >= 0 ? t - s.warm.first_ping_ms : -1));
    }
    int wait = (int)(next_tick - t);
    if (wait > 5) wait = 5;
    if (wait < 0) wait = 0;
    dsvc_poll(&s, wait, t);
    t = now_ms();
    if (s.ready && t >= next_tick) {
      dsp_tick(s.shard, t);
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
    if (t >= next_epoch) {
      dsvc_epoch_check(&s);
      next_epoch = t + cfg.epoch_check_ms;
    }
    if (t >= next_metrics) {
      dsvc_metrics_sync(&s);
      next_metrics = t + 1000;
    }
    mrd_admin_service(s.admin);
  }
  mrd_log_info("stopping", "signal=%d", mrd_stop_signal());
out:
  dsvc_close(&s, 5000);
  dsvc_config_release();
  mrd_log_info("exit", "code=%d", rc);
  return rc;
}
