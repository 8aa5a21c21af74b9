/*
 * warmup.c: the end of a shard's warm-up (warmup.h).
 */
#include "warmup.h"

void dsp_warmup_init(dsp_warmup *w, int64_t now_ms, int64_t warmup_ms) {
  w->started_ms = now_ms;
  w->warmup_ms = warmup_ms > 0 ? warmup_ms : 0;
  w->first_ping_ms = -1;
  w->last_ping_ms = -1;
}

void dsp_warmup_ping(dsp_warmup *w, int64_t ts_ms) {
  if (ts_ms < 0) return;
  if (w->first_ping_ms < 0 || ts_ms < w->first_ping_ms) w->first_ping_ms = ts_ms;
  if (ts_ms > w->last_ping_ms) w->last_ping_ms = ts_ms;
}

bool dsp_warmup_done(const dsp_warmup *w, int64_t now_ms) {
  if (now_ms - w->started_ms >= w->warmup_ms) return true;
  return w->first_ping_ms >= 0 && w->first_ping_ms <= now_ms - w->warmup_ms &&
         w->last_ping_ms >= now_ms - DSP_WARMUP_CAUGHT_UP_MS;
}
