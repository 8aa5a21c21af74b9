/*
 * handoff.c: the dispatch side of a range handoff (handoff.h): set differences of two
 * tilings restricted to one shard, and two small decisions.
 */
#include "handoff.h"

#include <stdlib.h>
#include <string.h>

int dsp_handoff_diff(const mrd_shardmap *old_map, const mrd_shardmap *new_map, uint32_t shard,
                     dsp_handoff *h) {
  memset(h, 0, sizeof *h);
  if (!old_map || old_map->n == 0) return 0;
  mrd_shard_move *mv = NULL;
  size_t n = 0;
  if (mrd_shardmap_diff(old_map, new_map, &mv, &n) != 0) return DSP_ENOMEM; /* its one failure */
  if (n) {
    h->gained = calloc(n, sizeof *h->gained);
    h->lost = calloc(n, sizeof *h->lost);
    if (!h->gained || !h->lost) {
      free(mv);
      dsp_handoff_close(h);
      return DSP_ENOMEM;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (mv[i].to == shard)
      h->gained[h->n_gained++] = mv[i];
    else if (mv[i].from == shard)
      h->lost[h->n_lost++] = mv[i];
  }
  free(mv);
  return 0;
}

void dsp_handoff_close(dsp_handoff *h) {
  free(h->gained);
  free(h->lost);
  memset(h, 0, sizeof *h);
}

bool dsp_handoff_in(const mrd_shard_move *r, size_t n, const char *gh) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(r[i].start, gh) <= 0 && strcmp(gh, r[i].end) < 0) return true;
  return false;
}

bool dsp_handoff_cell_wanted(const dsp_handoff *h, const char *cell) {
  for (size_t i = 0; i < h->n_gained; i++)
    if (mrd_range_meets_prefix(h->gained[i].start, h->gained[i].end, cell)) return true;
  return false;
}

dsp_gate dsp_handoff_gate(uint64_t serving, uint64_t msg_epoch) {
  return msg_epoch > serving ? DSP_GATE_LOAD_FIRST : DSP_GATE_PASS;
}

void dsp_handoff_judge_ping(const mrd_shardmap *m, uint32_t shard, const char *gh, bool *halo,
                            uint32_t *owner) {
  if (!m || m->n == 0 || !gh || !gh[0]) return; /* no map yet: the gateway's word stands */
  uint32_t o = mrd_shardmap_lookup(m, gh);
  *owner = o;
  *halo = o != shard;
}
