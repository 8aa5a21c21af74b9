/*
 * lease_worker.c: the lease store on a thread of its own (lease_worker.h).
 *
 * States: IDLE -> (post) QUEUED -> (the thread takes it) RUNNING -> DONE -> (take) IDLE.
 * A release's answer is kept by the thread for dsp_lease_worker_release, which waits for it.
 */
#define _POSIX_C_SOURCE 200809L
#include "lease_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "lease_pg.h"
#include "mrd/clock.h"
#include "mrd/pg.h"

typedef enum { LW_IDLE, LW_QUEUED, LW_RUNNING, LW_DONE } lw_state;
typedef enum { LW_ACQUIRE, LW_RENEW, LW_RELEASE } lw_job;

struct dsp_lease_worker {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* signalled on every change of state or stop */
  pthread_t thread;
  bool stop;
  lw_state state;
  lw_job job;
  uint64_t generation;     /* of the job: renew, release */
  dsp_lease_result result; /* DONE: the job's answer */
  int release_rc;          /* DONE after a release */
  mrd_pg *pg;              /* the thread's own connection */
  dsp_lease_pg store;
};

/* Runs one job on the thread, without the mutex held. */
static void run_job(dsp_lease_worker *w, lw_job job, uint64_t generation, dsp_lease_result *r,
                    int *release_rc) {
  int64_t t0 = mrd_mono_us();
  r->generation = 0;
  r->holder[0] = r->err[0] = '\0';
  switch (job) {
  case LW_ACQUIRE:
    r->answer = dsp_lease_pg_acquire(&w->store, &r->generation);
    if (r->answer == DSP_LEASE_TAKEN) snprintf(r->holder, sizeof r->holder, "%s", w->store.holder);
    break;
  case LW_RENEW: r->answer = dsp_lease_pg_renew(&w->store, generation); break;
  case LW_RELEASE: *release_rc = dsp_lease_pg_release(&w->store, generation); break;
  }
  if ((job != LW_RELEASE && r->answer == DSP_LEASE_UNREACHABLE) ||
      (job == LW_RELEASE && *release_rc != 0))
    snprintf(r->err, sizeof r->err, "%s", mrd_pg_errstr(w->pg));
  r->took_ms = (double)(mrd_mono_us() - t0) / 1e3;
}

static void *worker_main(void *arg) {
  dsp_lease_worker *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->stop && w->state != LW_QUEUED) pthread_cond_wait(&w->cv, &w->mu);
    if (w->stop) break;
    w->state = LW_RUNNING;
    lw_job job = w->job;
    uint64_t generation = w->generation;
    dsp_lease_result r = w->result; /* op and sent_ms, set at the post */
    int release_rc = 0;
    pthread_mutex_unlock(&w->mu);
    run_job(w, job, generation, &r, &release_rc);
    pthread_mutex_lock(&w->mu);
    w->result = r;
    w->release_rc = release_rc;
    w->state = LW_DONE;
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

int dsp_lease_worker_start(const char *dsn, int shard, const char *host, int pid, int64_t ttl_ms,
                           dsp_lease_worker **out) {
  if (!dsn || !host || !out || shard < 0 || shard >= 64 || ttl_ms <= 0) return DSP_EINVAL;
  dsp_lease_worker *w = calloc(1, sizeof *w);
  if (!w) return DSP_ENOMEM;
  pthread_condattr_t ca;
  bool cv_ok = false;
  if (pthread_condattr_init(&ca) == 0) {
    cv_ok =
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&w->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
  }
  if (!cv_ok) return free(w), DSP_ENOMEM;
  if (pthread_mutex_init(&w->mu, NULL) != 0) {
    pthread_cond_destroy(&w->cv);
    return free(w), DSP_ENOMEM;
  }
  int rc = mrd_pg_new(dsn, NULL, &w->pg);
  if (rc == 0) rc = dsp_lease_pg_init(&w->store, w->pg, shard, host, pid, ttl_ms);
  if (rc == 0 && pthread_create(&w->thread, NULL, worker_main, w) != 0) rc = DSP_ENOMEM;
  if (rc != 0) {
    mrd_pg_free(w->pg);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    return rc == MRD_ENOMEM || rc == DSP_ENOMEM ? DSP_ENOMEM : DSP_EINVAL;
  }
  *out = w;
  return DSP_OK;
}

/* With the mutex held: queue job if the worker is idle. */
static int queue_locked(dsp_lease_worker *w, lw_job job, dsp_lease_op op, uint64_t generation,
                        int64_t sent_ms) {
  if (w->state != LW_IDLE) return DSP_ESTATE;
  memset(&w->result, 0, sizeof w->result);
  w->result.op = op;
  w->result.sent_ms = sent_ms;
  w->job = job;
  w->generation = generation;
  w->state = LW_QUEUED;
  pthread_cond_broadcast(&w->cv);
  return DSP_OK;
}

int dsp_lease_worker_post(dsp_lease_worker *w, dsp_lease_op op, uint64_t generation,
                          int64_t sent_ms) {
  if (op != DSP_LEASE_OP_ACQUIRE && op != DSP_LEASE_OP_RENEW) return DSP_EINVAL;
  pthread_mutex_lock(&w->mu);
  int rc =
      queue_locked(w, op == DSP_LEASE_OP_ACQUIRE ? LW_ACQUIRE : LW_RENEW, op, generation, sent_ms);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

bool dsp_lease_worker_busy(dsp_lease_worker *w) {
  pthread_mutex_lock(&w->mu);
  bool busy = w->state != LW_IDLE;
  pthread_mutex_unlock(&w->mu);
  return busy;
}

/* With the mutex held: hand over a DONE acquire or renew. */
static bool take_locked(dsp_lease_worker *w, dsp_lease_result *out) {
  if (w->state != LW_DONE || w->job == LW_RELEASE) return false;
  *out = w->result;
  w->state = LW_IDLE;
  return true;
}

bool dsp_lease_worker_take(dsp_lease_worker *w, dsp_lease_result *out) {
  pthread_mutex_lock(&w->mu);
  bool got = take_locked(w, out);
  pthread_mutex_unlock(&w->mu);
  return got;
}

/* With the mutex held: wait until the state is not QUEUED / RUNNING, or deadline passes.
 * True when it is not. */
static bool wait_done_locked(dsp_lease_worker *w, int timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
  while (w->state == LW_QUEUED || w->state == LW_RUNNING)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT) break;
  return w->state != LW_QUEUED && w->state != LW_RUNNING;
}

bool dsp_lease_worker_wait(dsp_lease_worker *w, int timeout_ms, dsp_lease_result *out) {
  pthread_mutex_lock(&w->mu);
  bool got = w->state != LW_IDLE && wait_done_locked(w, timeout_ms) && take_locked(w, out);
  pthread_mutex_unlock(&w->mu);
  return got;
}

int dsp_lease_worker_release(dsp_lease_worker *w, uint64_t generation, int timeout_ms) {
  pthread_mutex_lock(&w->mu);
  int rc = queue_locked(w, LW_RELEASE, DSP_LEASE_OP_NONE, generation, mrd_mono_ms());
  if (rc == DSP_OK) {
    if (wait_done_locked(w, timeout_ms)) {
      rc = w->release_rc == 0 ? DSP_OK : DSP_ENOTFOUND;
      w->state = LW_IDLE;
    } else {
      rc = DSP_ENOTFOUND; /* still running: stop() waits for it */
    }
  }
  pthread_mutex_unlock(&w->mu);
  return rc;
}

void dsp_lease_worker_stop(dsp_lease_worker *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  mrd_pg_free(w->pg);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
}
