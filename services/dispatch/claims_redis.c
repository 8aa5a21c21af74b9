/*
 * claims_redis.c: dsp_claims on Redis with an in-memory fallback.
 *
 * try_claim: SET NX PX; when the key exists, the renew script decides (ours: renewed, WON;
 * another owner's: LOST). refresh: the renew script. release: the release script in Redis
 * and in the fallback store alike (a claim may have been taken during an outage).
 * A command that fails (MRD_ECONN, MRD_ETIMEDOUT, an error reply) is answered by the
 * fallback store, and counted.
 */
#include "claims_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claims_mem.h"

#define PREFIX_MAX 64

/* Compare the owner, then act: atomic in Redis (a script runs alone). */
static const char RENEW_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
static const char RELEASE_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                  "return redis.call('DEL', KEYS[1]) else return 0 end";

struct dsp_claims_redis {
  mrd_redis *r;
  char prefix[PREFIX_MAX + 1];
  dsp_claims_mem *mem;
  dsp_claims_redis_stats st;
};

int dsp_claims_redis_new(mrd_redis *r, const char *key_prefix, dsp_claims_redis **out) {
  if (!r || !out) return DSP_EINVAL;
  if (!key_prefix) key_prefix = "claim:";
  if (strlen(key_prefix) > PREFIX_MAX) return DSP_EINVAL;
  dsp_claims_redis *c = calloc(1, sizeof *c);
  if (!c) return DSP_ENOMEM;
  c->mem = dsp_claims_mem_new();
  if (!c->mem) {
    free(c);
    return DSP_ENOMEM;
  }
  c->r = r;
  strcpy(c->prefix, key_prefix);
  *out = c;
  return DSP_OK;
}

void dsp_claims_redis_free(dsp_claims_redis *c) {
  if (!c) return;
  dsp_claims_mem_free(c->mem);
  free(c);
}

void dsp_claims_redis_stats_get(const dsp_claims_redis *c, dsp_claims_redis_stats *out) {
  *out = c->st;
}

static bool key_of(const dsp_claims_redis *c, const char *driver_id, char *key, size_t cap) {
  if (!driver_id || !driver_id[0] || strlen(driver_id) > DSP_ID_MAX) return false;
  return (size_t)snprintf(key, cap, "%s%s", c->prefix, driver_id) < cap;
}

/* Run a compare-and-act script; 1 / 0 from the script, or a negative MRD_E*. */
static int eval(dsp_claims_redis *c, const char *script, const char *key, const char *owner,
                int64_t ttl_ms) {
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
  const char *argv[] = {"EVAL", script, "1", key, owner, ttl};
  redisReply *rep = NULL;
  int rc = mrd_redis_cmd(c->r, &rep, 6, argv, NULL);
  if (rc != 0) return rc;
  long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
  freeReplyObject(rep);
  return v == 1 ? 1 : v == 0 ? 0 : MRD_EREPLY;
}

static dsp_claim_result rd_try(void *ud, const char *driver_id, const char *owner, int64_t ttl_ms,
                               int64_t now_ms) {
  dsp_claims_redis *c = ud;
  char key[PREFIX_MAX + DSP_ID_MAX + 1], ttl[24];
  if (!owner || ttl_ms <= 0 || !key_of(c, driver_id, key, sizeof key)) return DSP_CLAIM_ERROR;
  snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
  const char *argv[] = {"SET", key, owner, "NX", "PX", ttl};
  redisReply *rep = NULL;
  int rc = mrd_redis_cmd(c->r, &rep, 6, argv, NULL);
  if (rc == 0) {
    bool won = rep->type == REDIS_REPLY_STATUS; /* "OK"; nil when the key exists */
    freeReplyObject(rep);
    if (won) {
      c->st.redis_ops++;
      return DSP_CLAIM_WON;
    }
    rc = eval(c, RENEW_LUA, key, owner, ttl_ms); /* ours already? */
    if (rc >= 0) {
      c->st.redis_ops++;
      return rc == 1 ? DSP_CLAIM_WON : DSP_CLAIM_LOST;
    }
  }
  c->st.redis_failures++;
  c->st.fallback_ops++;
  return dsp_claims_mem_try(c->mem, driver_id, owner, ttl_ms, now_ms);
}

static dsp_claim_result rd_refresh(void *ud, const char *driver_id, const char *owner,
                                   int64_t ttl_ms, int64_t now_ms) {
  dsp_claims_redis *c = ud;
  char key[PREFIX_MAX + DSP_ID_MAX + 1];
  if (!owner || ttl_ms <= 0 || !key_of(c, driver_id, key, sizeof key)) return DSP_CLAIM_ERROR;
  int rc = eval(c, RENEW_LUA, key, owner, ttl_ms);
  if (rc >= 0) {
    c->st.redis_ops++;
    if (rc == 1) return DSP_CLAIM_WON;
    /* Not in Redis: taken during an outage? The caller re-claims in Redis on LOST. */
    dsp_claims_mem_release(c->mem, driver_id, owner, now_ms);
    return DSP_CLAIM_LOST;
  }
  c->st.redis_failures++;
  c->st.fallback_ops++;
  return dsp_claims_mem_refresh(c->mem, driver_id, owner, ttl_ms, now_ms) == DSP_CLAIM_WON
             ? DSP_CLAIM_WON
             : dsp_claims_mem_try(c->mem, driver_id, owner, ttl_ms, now_ms);
}

static void rd_release(void *ud, const char *driver_id, const char *owner, int64_t now_ms) {
  dsp_claims_redis *c = ud;
  char key[PREFIX_MAX + DSP_ID_MAX + 1];
  if (!owner || !key_of(c, driver_id, key, sizeof key)) return;
  dsp_claims_mem_release(c->mem, driver_id, owner, now_ms);
  if (eval(c, RELEASE_LUA, key, owner, 1) >= 0)
    c->st.redis_ops++;
  else
    c->st.redis_failures++; /* the claim's TTL frees the driver */
}

dsp_claims dsp_claims_redis_iface(dsp_claims_redis *c) {
  return (dsp_claims){.ud = c, .try_claim = rd_try, .refresh = rd_refresh, .release = rd_release};
}
