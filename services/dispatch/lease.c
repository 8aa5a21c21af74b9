/*
 * lease.c: the shard lease's state machine (lease.h). Pure: times come in as arguments.
 */
#include "lease.h"

#include <string.h>

#include "dispatch.h"

void dsp_lease_config_default(dsp_lease_config *c) {
  c->ttl_ms = 5000;
  c->renew_ms = 1000;
  c->retry_ms = 500;
  c->margin_ms = 1500;
}

int dsp_lease_init(dsp_lease *l, const dsp_lease_config *c) {
  if (!l || !c || c->ttl_ms <= 0 || c->renew_ms <= 0 || c->retry_ms <= 0 || c->margin_ms <= 0 ||
      c->ttl_ms <= c->margin_ms + c->renew_ms)
    return DSP_EINVAL;
  memset(l, 0, sizeof *l);
  l->cfg = *c;
  l->role = DSP_LEASE_STANDBY;
  l->next_op_ms = 0; /* a new process tries at once */
  return DSP_OK;
}

dsp_lease_op dsp_lease_due(const dsp_lease *l, int64_t now_ms) {
  if (now_ms < l->next_op_ms) return DSP_LEASE_OP_NONE;
  return l->role == DSP_LEASE_HOLDER ? DSP_LEASE_OP_RENEW : DSP_LEASE_OP_ACQUIRE;
}

static dsp_lease_change become_standby(dsp_lease *l, int64_t now_ms) {
  l->role = DSP_LEASE_STANDBY;
  l->valid_until_ms = 0;
  l->next_op_ms = now_ms + l->cfg.retry_ms;
  return DSP_LEASE_LOST;
}

dsp_lease_change dsp_lease_answered(dsp_lease *l, dsp_lease_op op, int64_t sent_ms, int64_t now_ms,
                                    dsp_lease_answer a, uint64_t generation) {
  if (op == DSP_LEASE_OP_ACQUIRE && l->role == DSP_LEASE_STANDBY) {
    if (a != DSP_LEASE_GRANTED || generation == 0) {
      l->next_op_ms = now_ms + l->cfg.retry_ms;
      return DSP_LEASE_SAME;
    }
    l->role = DSP_LEASE_HOLDER;
    l->generation = generation;
    l->valid_until_ms = sent_ms + l->cfg.ttl_ms;
    l->next_op_ms = sent_ms + l->cfg.renew_ms;
    l->acquired++;
    return DSP_LEASE_ACQUIRED;
  }
  if (op == DSP_LEASE_OP_RENEW && l->role == DSP_LEASE_HOLDER) {
    switch (a) {
    case DSP_LEASE_GRANTED:
      if (sent_ms + l->cfg.ttl_ms > l->valid_until_ms) l->valid_until_ms = sent_ms + l->cfg.ttl_ms;
      l->next_op_ms = sent_ms + l->cfg.renew_ms;
      if (l->next_op_ms <= now_ms) l->next_op_ms = now_ms + 1; /* a slow answer: not a spin */
      return DSP_LEASE_SAME;
    case DSP_LEASE_TAKEN: l->lost++; return become_standby(l, now_ms);
    case DSP_LEASE_UNREACHABLE: l->next_op_ms = now_ms + l->cfg.retry_ms; return DSP_LEASE_SAME;
    }
  }
  return DSP_LEASE_SAME;
}

bool dsp_lease_may_act(const dsp_lease *l, int64_t now_ms) {
  return l->role == DSP_LEASE_HOLDER && now_ms < l->valid_until_ms - l->cfg.margin_ms;
}

void dsp_lease_released(dsp_lease *l, int64_t now_ms) {
  if (l->role != DSP_LEASE_HOLDER) return;
  (void)become_standby(l, now_ms);
}

bool dsp_lease_check(const dsp_lease *l) {
  if (l->lost > l->acquired) return false;
  if (l->role == DSP_LEASE_HOLDER) return l->generation > 0 && l->valid_until_ms != 0;
  if (l->role == DSP_LEASE_STANDBY) return l->valid_until_ms == 0;
  return false;
}
