/*
 * strmap.c: open addressing with linear probing at load <= 1/2, FNV-1a hashes, and
 * backward-shift deletion (no tombstones), so lookups stay short under churn.
 */
#include "strmap.h"

#include "dispatch.h" /* DSP_ENOMEM */
#include "mrd/hash.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s) { return mrd_fnv1a64_str(MRD_FNV1A64_SEED, s); }

void dsp_strmap_init(dsp_strmap *m) { memset(m, 0, sizeof *m); }

void dsp_strmap_close(dsp_strmap *m) {
  free(m->slots);
  dsp_strmap_init(m);
}

static size_t find(const dsp_strmap *m, const char *key, uint64_t h) {
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const dsp_strmap_slot *s = &m->slots[i];
    if (!s->key || (s->hash == h && strcmp(s->key, key) == 0)) return i;
  }
}

void *dsp_strmap_get(const dsp_strmap *m, const char *key) {
  if (m->cap == 0) return NULL;
  size_t i = find(m, key, hash_str(key));
  return m->slots[i].key ? m->slots[i].value : NULL;
}

static int grow(dsp_strmap *m, size_t cap) {
  dsp_strmap_slot *slots = calloc(cap, sizeof *slots);
  if (!slots) return DSP_ENOMEM;
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->slots[i].key) continue;
    size_t j = m->slots[i].hash & (cap - 1);
    while (slots[j].key) j = (j + 1) & (cap - 1);
    slots[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

int dsp_strmap_reserve(dsp_strmap *m, size_t n) {
  size_t need = (m->len + n) * 2;
  if (need <= m->cap) return 0;
  size_t cap = m->cap ? m->cap : 16;
  while (cap < need) cap *= 2;
  return grow(m, cap);
}

int dsp_strmap_put(dsp_strmap *m, const char *key, void *value) {
  if (dsp_strmap_reserve(m, 1) != 0) return DSP_ENOMEM;
  uint64_t h = hash_str(key);
  size_t i = find(m, key, h);
  if (!m->slots[i].key) m->len++;
  m->slots[i] = (dsp_strmap_slot){key, value, h};
  return 0;
}

void *dsp_strmap_del(dsp_strmap *m, const char *key) {
  if (m->cap == 0) return NULL;
  size_t mask = m->cap - 1;
  size_t i = find(m, key, hash_str(key));
  if (!m->slots[i].key) return NULL;
  void *value = m->slots[i].value;
  /* Backward shift: pull later entries of the probe run into the hole when their home
   * slot does not lie cyclically in (hole, j]. */
  size_t hole = i;
  for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
    size_t home = m->slots[j].hash & mask;
    int in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!in_range) {
      m->slots[hole] = m->slots[j];
      hole = j;
    }
  }
  m->slots[hole].key = NULL;
  m->slots[hole].value = NULL;
  m->len--;
  return value;
}
