/*
 * claims_mem.c: claims as a string map driver -> {owner, expires_at_ms}. An expired
 * claim counts as absent; it is freed when next touched or by a sweep.
 */
#include "claims_mem.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"

#define OWNER_MAX (2 * DSP_ID_MAX + 32)

typedef struct claim {
  char driver_id[DSP_ID_MAX + 1];
  char owner[OWNER_MAX + 1];
  int64_t expires_at_ms;
} claim;

struct dsp_claims_mem {
  dsp_strmap map; /* driver_id -> claim* */
};

dsp_claims_mem *dsp_claims_mem_new(void) {
  dsp_claims_mem *m = calloc(1, sizeof *m);
  if (m) dsp_strmap_init(&m->map);
  return m;
}

void dsp_claims_mem_free(dsp_claims_mem *m) {
  if (!m) return;
  for (size_t i = 0; i < m->map.cap; i++)
    if (m->map.slots[i].key) free(m->map.slots[i].value);
  dsp_strmap_close(&m->map);
  free(m);
}

static bool args_ok(const char *driver_id, const char *owner) {
  return driver_id && owner && driver_id[0] && strlen(driver_id) <= DSP_ID_MAX &&
         strlen(owner) <= OWNER_MAX;
}

/* The live claim on driver_id, freeing an expired one. */
static claim *live(dsp_claims_mem *m, const char *driver_id, int64_t now_ms) {
  claim *c = dsp_strmap_get(&m->map, driver_id);
  if (c && c->expires_at_ms <= now_ms) {
    dsp_strmap_del(&m->map, driver_id);
    free(c);
    c = NULL;
  }
  return c;
}

dsp_claim_result dsp_claims_mem_try(dsp_claims_mem *m, const char *driver_id, const char *owner,
                                    int64_t ttl_ms, int64_t now_ms) {
  if (!m || !args_ok(driver_id, owner) || ttl_ms <= 0) return DSP_CLAIM_ERROR;
  claim *c = live(m, driver_id, now_ms);
  if (c) {
    if (strcmp(c->owner, owner) != 0) return DSP_CLAIM_LOST;
    c->expires_at_ms = now_ms + ttl_ms;
    return DSP_CLAIM_WON;
  }
  c = calloc(1, sizeof *c);
  if (!c) return DSP_CLAIM_ERROR;
  strcpy(c->driver_id, driver_id);
  strcpy(c->owner, owner);
  c->expires_at_ms = now_ms + ttl_ms;
  if (dsp_strmap_put(&m->map, c->driver_id, c) != 0) {
    free(c);
    return DSP_CLAIM_ERROR;
  }
  return DSP_CLAIM_WON;
}

dsp_claim_result dsp_claims_mem_refresh(dsp_claims_mem *m, const char *driver_id, const char *owner,
                                        int64_t ttl_ms, int64_t now_ms) {
  if (!m || !args_ok(driver_id, owner) || ttl_ms <= 0) return DSP_CLAIM_ERROR;
  claim *c = live(m, driver_id, now_ms);
  if (!c || strcmp(c->owner, owner) != 0) return DSP_CLAIM_LOST;
  c->expires_at_ms = now_ms + ttl_ms;
  return DSP_CLAIM_WON;
}

void dsp_claims_mem_release(dsp_claims_mem *m, const char *driver_id, const char *owner,
                            int64_t now_ms) {
  if (!m || !args_ok(driver_id, owner)) return;
  claim *c = live(m, driver_id, now_ms);
  if (!c || strcmp(c->owner, owner) != 0) return;
  dsp_strmap_del(&m->map, driver_id);
  free(c);
}

const char *dsp_claims_mem_owner(dsp_claims_mem *m, const char *driver_id, int64_t now_ms) {
  if (!m || !driver_id) return NULL;
  claim *c = live(m, driver_id, now_ms);
  return c ? c->owner : NULL;
}

size_t dsp_claims_mem_sweep(dsp_claims_mem *m, int64_t now_ms) {
  if (!m) return 0;
  /* Collect first: a delete shifts later entries of the table. */
  size_t n = 0, dropped = 0;
  for (size_t i = 0; i < m->map.cap; i++)
    if (m->map.slots[i].key && ((claim *)m->map.slots[i].value)->expires_at_ms <= now_ms) n++;
  if (n == 0) return 0;
  claim **gone = malloc(n * sizeof *gone);
  if (!gone) return 0; /* expired claims are still treated as absent; freed later */
  for (size_t i = 0; i < m->map.cap && dropped < n; i++) {
    claim *c = m->map.slots[i].value;
    if (m->map.slots[i].key && c->expires_at_ms <= now_ms) gone[dropped++] = c;
  }
  for (size_t i = 0; i < dropped; i++) {
    dsp_strmap_del(&m->map, gone[i]->driver_id);
    free(gone[i]);
  }
  free(gone);
  return dropped;
}

static dsp_claim_result if_try(void *ud, const char *d, const char *o, int64_t ttl, int64_t now) {
  return dsp_claims_mem_try(ud, d, o, ttl, now);
}
static dsp_claim_result if_refresh(void *ud, const char *d, const char *o, int64_t ttl,
                                   int64_t now) {
  return dsp_claims_mem_refresh(ud, d, o, ttl, now);
}
static void if_release(void *ud, const char *d, const char *o, int64_t now) {
  dsp_claims_mem_release(ud, d, o, now);
}

dsp_claims dsp_claims_mem_iface(dsp_claims_mem *m) {
  return (dsp_claims){.ud = m, .try_claim = if_try, .refresh = if_refresh, .release = if_release};
}
