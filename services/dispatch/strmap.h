/*
 * strmap.h: a hash map from NUL-terminated strings to pointers (open addressing, linear
 * probing, backward-shift deletion), for dispatch's lookups by driver, trip, offer and
 * request id.
 *
 * The map does not copy keys: a key must stay valid and unchanged while it is in the map
 * (dispatch keeps keys inside the records the values point to). Not thread-safe.
 */
#ifndef DSP_STRMAP_H
#define DSP_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct dsp_strmap_slot {
  const char *key; /* NULL: empty */
  void *value;
  uint64_t hash;
} dsp_strmap_slot;

typedef struct dsp_strmap {
  dsp_strmap_slot *slots;
  size_t cap; /* a power of two, or 0 */
  size_t len;
} dsp_strmap;

/* An empty map (no allocation until the first put). */
void dsp_strmap_init(dsp_strmap *m);
/* Free the slots (not the keys or values); the map is empty and usable again. */
void dsp_strmap_close(dsp_strmap *m);
/* The value under key, or NULL. */
void *dsp_strmap_get(const dsp_strmap *m, const char *key);
/* Put key -> value, replacing an existing value. Returns 0, or DSP_ENOMEM (dispatch.h) when
 * memory runs out (the map is unchanged). */
int dsp_strmap_put(dsp_strmap *m, const char *key, void *value);
/* Ensure room for n more keys without allocating in put. Returns 0 or DSP_ENOMEM. */
int dsp_strmap_reserve(dsp_strmap *m, size_t n);
/* Remove key; returns its value, or NULL when absent. */
void *dsp_strmap_del(dsp_strmap *m, const char *key);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ...; a delete
 * during iteration may move a later entry to an earlier slot, so collect first. */

#endif /* DSP_STRMAP_H */
