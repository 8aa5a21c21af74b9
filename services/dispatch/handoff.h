/*
 * handoff.h: the dispatch side of a range handoff (docs/shards.md, "The handoff"), pure: what
 * a new shard-map epoch changes for one shard (ranges gained, ranges lost), which hot cells
 * hold the gained ranges' drivers, whether a message stamped with an epoch may be handled
 * before the shard has applied that epoch, and who owns a ping under the shard's map.
 *
 * The I/O around it (reading the map from PostgreSQL, the warm-up from Redis, telling the
 * hot cells) is dispatch_io.c's. Not thread-safe; no allocation except in dsp_handoff_diff.
 */
#ifndef DSP_HANDOFF_H
#define DSP_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatch.h" /* DSP_E* */
#include "mrd/shardmap.h"

/* What one epoch change means for shard `shard`. */
typedef struct dsp_handoff {
  mrd_shard_move *gained; /* ranges now this shard's (from = the giver) */
  size_t n_gained;
  mrd_shard_move *lost; /* ranges this shard gave (to = the receiver) */
  size_t n_lost;
} dsp_handoff;

/* Fill h from the old map (NULL or empty: the shard's first map, nothing to hand over) and
 * the new one (both checked). Returns 0 or DSP_ENOMEM (h empty). Free with
 * dsp_handoff_close. */
int dsp_handoff_diff(const mrd_shardmap *old_map, const mrd_shardmap *new_map, uint32_t shard,
                     dsp_handoff *h);
void dsp_handoff_close(dsp_handoff *h);

/* Is string gh (a position's geohash) inside one of the n ranges? */
bool dsp_handoff_in(const mrd_shard_move *r, size_t n, const char *gh);

/* Does the hot cell (a geohash prefix) meet a gained range, i.e. may it hold drivers to warm? */
bool dsp_handoff_cell_wanted(const dsp_handoff *h, const char *cell);

/* A message (ping or command) stamped by the gateway with epoch msg_epoch, on a shard that
 * serves `serving`: PASS, or LOAD_FIRST when the gateway already routes by a newer map,
 * whose ranges (and their warm-up) the shard must apply before handling it. That is the
 * guarantee "the receiving shard knows the range's drivers before its first request". */
typedef enum dsp_gate { DSP_GATE_PASS = 0, DSP_GATE_LOAD_FIRST = 1 } dsp_gate;
dsp_gate dsp_handoff_gate(uint64_t serving, uint64_t msg_epoch);

/* A ping routed under an older map is judged by the shard's own (newer) one: whether it is
 * a halo copy here and whose driver it is, from the position's geohash gh. */
void dsp_handoff_judge_ping(const mrd_shardmap *m, uint32_t shard, const char *gh, bool *halo,
                            uint32_t *owner);

#endif /* DSP_HANDOFF_H */
