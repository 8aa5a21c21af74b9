/*
 * claims_redis.c: dsp_claims on Redis with an in-memory fallback.
 *
 * Each operation is one Lua script (atomic in Redis: a script runs alone). With a fence
 * set (dsp_claims_redis_fence: this process holds its shard's lease with generation G),
 * every script first compares G with the shard's fence key `dispatch:fence:{shard}` (the
 * highest generation that ever held the shard) and refuses when G is lower: a holder that
 * lost its lease cannot take, renew or release a claim any more (docs/shards.md). The
 * claim's value is `<owner>@<G>` (just `<owner>` without a fence); owners compare on the
 * part before '@', so the next holder, which restores the same trips with the same owner
 * strings, adopts their claims and stamps them with its own generation.
 * try_claim: set when absent or ours (renewed, WON), else LOST. refresh: extend when ours,
 * else LOST. release: delete when ours, in Redis and in the fallback store alike (a claim
 * may have been taken during an outage).
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

/* KEYS[1] = the claim, KEYS[2] = the fence key ("" without a fence); ARGV[1] = owner,
 * ARGV[2] = TTL in ms, ARGV[3] = generation (0: none). Returns 1 done, 0 another owner's
 * (or absent, for a refresh), -2 fenced (a newer generation holds the shard). */
#define FENCE_LUA                                                                                  \
  "local g = tonumber(ARGV[3]) "                                                                   \
  "if g > 0 and g < tonumber(redis.call('GET', KEYS[2]) or '0') then return -2 end "               \
  "local v = redis.call('GET', KEYS[1]) "                                                          \
  "local mine = v and (v == ARGV[1] or string.match(v, '^(.*)@%d+$') == ARGV[1]) "                 \
  "local nv = ARGV[1] if g > 0 then nv = ARGV[1] .. '@' .. ARGV[3] end "
static const char TRY_LUA[] = FENCE_LUA "if v and not mine then return 0 end "
                                        "redis.call('SET', KEYS[1], nv, 'PX', ARGV[2]) return 1";
static const char RENEW_LUA[] = FENCE_LUA "if not mine then return 0 end "
                                          "redis.call('SET', KEYS[1], nv, 'PX', ARGV[2]) return 1";
static const char RELEASE_LUA[] = FENCE_LUA "if not mine then return 0 end "
                                            "redis.call('DEL', KEYS[1]) return 1";

struct dsp_claims_redis {
  mrd_redis *r;
  char prefix[PREFIX_MAX + 1];
  dsp_claims_mem *mem;
  dsp_claims_redis_stats st;
  char fence_key[PREFIX_MAX + 1]; /* "" without a fence */
  char generation[24];            /* "0" without a fence */
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
  strcpy(c->generation, "0");
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

void dsp_claims_redis_fence(dsp_claims_redis *c, const char *fence_key, uint64_t generation) {
  if (!fence_key || generation == 0 || strlen(fence_key) > PREFIX_MAX) {
    c->fence_key[0] = '\0';
    strcpy(c->generation, "0");
    return;
  }
  strcpy(c->fence_key, fence_key);
  snprintf(c->generation, sizeof c->generation, "%" PRIu64, generation);
}

/* Run a claim script: 1 (done) or 0 (not ours; *fenced when refused for a stale
 * generation), or a negative MRD_E* when Redis did not answer. */
static int eval(dsp_claims_redis *c, const char *script, const char *key, const char *owner,
                int64_t ttl_ms, bool *fenced) {
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
  const char *argv[] = {"EVAL", script, "2", key, c->fence_key, owner, ttl, c->generation};
  redisReply *rep = NULL;
  *fenced = false;
  int rc = mrd_redis_cmd(c->r, &rep, 8, argv, NULL);
  if (rc != 0) return rc;
  long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
  freeReplyObject(rep);
  if (v == -2) {
    *fenced = true;
    return 0;
  }
  return v == 1 ? 1 : v == 0 ? 0 : MRD_EREPLY;
}

static dsp_claim_result rd_try(void *ud, const char *driver_id, const char *owner, int64_t ttl_ms,
                               int64_t now_ms) {
  dsp_claims_redis *c = ud;
  char key[PREFIX_MAX + DSP_ID_MAX + 1];
  bool fenced;
  if (!owner || ttl_ms <= 0 || !key_of(c, driver_id, key, sizeof key)) return DSP_CLAIM_ERROR;
  int rc = eval(c, TRY_LUA, key, owner, ttl_ms, &fenced);
  if (rc >= 0) {
    c->st.redis_ops++;
    if (fenced) c->st.fenced++;
    return rc == 1 ? DSP_CLAIM_WON : DSP_CLAIM_LOST;
  }
  c->st.redis_failures++;
  c->st.fallback_ops++;
  return dsp_claims_mem_try(c->mem, driver_id, owner, ttl_ms, now_ms);
}

static dsp_claim_result rd_refresh(void *ud, const char *driver_id, const char *owner,
                                   int64_t ttl_ms, int64_t now_ms) {
  dsp_claims_redis *c = ud;
  char key[PREFIX_MAX + DSP_ID_MAX + 1];
  bool fenced;
  if (!owner || ttl_ms <= 0 || !key_of(c, driver_id, key, sizeof key)) return DSP_CLAIM_ERROR;
  int rc = eval(c, RENEW_LUA, key, owner, ttl_ms, &fenced);
  if (rc >= 0) {
    c->st.redis_ops++;
    if (fenced) c->st.fenced++;
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
  bool fenced;
  if (!owner || !key_of(c, driver_id, key, sizeof key)) return;
  dsp_claims_mem_release(c->mem, driver_id, owner, now_ms);
  if (eval(c, RELEASE_LUA, key, owner, 1, &fenced) >= 0) {
    c->st.redis_ops++;
    if (fenced) c->st.fenced++;
  } else {
    c->st.redis_failures++; /* the claim's TTL frees the driver */
  }
}

dsp_claims dsp_claims_redis_iface(dsp_claims_redis *c) {
  return (dsp_claims){.ud = c, .try_claim = rd_try, .refresh = rd_refresh, .release = rd_release};
}
