/* fuzz_shardmap.c: libFuzzer target for the gateway's shard-map reader: the rows of the
 * shard_map table as PostgreSQL hands them over in text (gw_shard_range_parse) and the map
 * built from them (gw_shardmap_new: sorted, gap-free, tiling "" to "~"), then lookups and
 * routing on whatever map was accepted. The shard map has no file of its own: it lives in
 * PostgreSQL, written by the migrations or by an operator, so a bad row is the "bad file"
 * here. The input is lines "start<TAB>end<TAB>shard"; the first line's first byte is the
 * epoch. Any bytes must build a map or be refused with a reason, never a crash, leak or
 * UB; an accepted map answers every lookup with a shard it contains, and a route's owner
 * is never in its halo. Not a unit test: scripts/fuzz runs it; seeds in corpus/shardmap/. */
/* fuzz-options: -max_len=2048 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shardmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROWS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  char *text = malloc(size);
  if (!text) return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  uint64_t epoch = data[0];
  gw_shard_range rows[MAX_ROWS];
  size_t n = 0;
  char err[200];
  bool bad = false;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line && n < MAX_ROWS;
       line = strtok_r(NULL, "\n", &save)) {
    char *f[3] = {line, NULL, NULL};
    for (int k = 1; k < 3; k++) {
      char *tab = f[k - 1] ? strchr(f[k - 1], '\t') : NULL;
      if (tab) {
        *tab = '\0';
        f[k] = tab + 1;
      }
    }
    err[0] = '\0';
    if (gw_shard_range_parse(f[0], f[1], f[2], &rows[n], err, sizeof err) != 0) {
      if (err[0] == '\0') abort();
      bad = true;
      continue;
    }
    if (strlen(rows[n].start) > GW_RANGE_KEY_MAX || rows[n].shard >= MRD_SHARD_COUNT) abort();
    n++;
  }
  (void)bad;
  gw_shardmap *m = n ? gw_shardmap_new(epoch, rows, n, err, sizeof err) : NULL;
  if (m) {
    uint64_t all = gw_shardmap_prefix_shards(m, "");
    const char *probes[] = {"", "0", "dr5ru", "dr5ruzzzz", "~", "zzzzzzzzzzzz", "dr", "9"};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
      uint32_t s = gw_shardmap_lookup(m, probes[i]);
      if (s >= MRD_SHARD_COUNT || !(all & (UINT64_C(1) << s))) abort();
      if ((gw_shardmap_prefix_shards(m, probes[i]) & ~all) != 0) abort();
    }
    gw_route r;
    mrd_latlon pos = {40.758, -73.9855};
    if (gw_shardmap_route(m, pos, 1000, &r) == 0) {
      if (r.halo_mask & (UINT64_C(1) << r.owner)) abort();
      if (!(all & (UINT64_C(1) << r.owner)) || (r.halo_mask & ~all)) abort();
    }
    gw_shardmap_free(m);
  }
  free(text);
  return 0;
}
