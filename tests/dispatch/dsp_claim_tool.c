/*
 * dsp_claim_tool.c: a helper of integration_dispatch.py --part failover, not a test by
 * itself: one claim operation through the real claim store (claims_redis.c and its Lua
 * scripts) against the stack's Redis, as a dispatch process of SHARD holding lease
 * GENERATION would do it, so the test can play a fenced holder's late claim:
 *   dsp_claim_tool try|refresh|release REDIS_URL SHARD GENERATION DRIVER OWNER
 * prints "won", "lost" or "released", and the store's fenced count ("fenced=N"). Exit 0, or
 * 2 on bad usage / no Redis.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claims_redis.h"

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: dsp_claim_tool try|refresh|release REDIS_URL SHARD GENERATION "
                    "DRIVER OWNER\n");
    return 2;
  }
  mrd_redis *r = NULL;
  dsp_claims_redis *c = NULL;
  if (mrd_redis_new(argv[2], NULL, &r) != 0 || dsp_claims_redis_new(r, NULL, &c) != DSP_OK) {
    fprintf(stderr, "dsp_claim_tool: cannot use %s\n", argv[2]);
    mrd_redis_free(r);
    return 2;
  }
  char fence[32];
  snprintf(fence, sizeof fence, "dispatch:fence:%d", atoi(argv[3]));
  dsp_claims_redis_fence(c, fence, strtoull(argv[4], NULL, 10));
  dsp_claims cl = dsp_claims_redis_iface(c);
  int rc = 0;
  if (strcmp(argv[1], "try") == 0) {
    puts(cl.try_claim(cl.ud, argv[5], argv[6], 60000, 0) == DSP_CLAIM_WON ? "won" : "lost");
  } else if (strcmp(argv[1], "refresh") == 0) {
    puts(cl.refresh(cl.ud, argv[5], argv[6], 60000, 0) == DSP_CLAIM_WON ? "won" : "lost");
  } else if (strcmp(argv[1], "release") == 0) {
    cl.release(cl.ud, argv[5], argv[6], 0);
    puts("released");
  } else {
    rc = 2;
  }
  dsp_claims_redis_stats st;
  dsp_claims_redis_stats_get(c, &st);
  printf("fenced=%llu fallback=%llu\n", (unsigned long long)st.fenced,
         (unsigned long long)st.fallback_ops);
  dsp_claims_redis_free(c);
  mrd_redis_free(r);
  return rc;
}
