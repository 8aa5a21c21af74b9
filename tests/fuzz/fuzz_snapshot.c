/* fuzz_snapshot.c: libFuzzer target for graph snapshots (files services map at start-up).
 * The checksum is fixed up first, so the fuzzer reaches the structural checks behind it.
 * Any bytes must give GEO_OK or GEO_EFORMAT, never a crash, leak or UB; a graph that opens
 * must answer queries of every algorithm without fault. Not a unit test: scripts/fuzz runs
 * it (a seed is any file written by `meridianctl graph export`). */
/* fuzz-options: -max_len=8192 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "geo/ch.h"
#include "geo/route.h"
#include "geo/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = aligned_alloc(8, (size + 8) & ~(size_t)7);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  if (size >= 64) {
    memset(buf + 28, 0, 4);
    uint32_t crc = geo_crc32(0, buf, size);
    memcpy(buf + 28, &crc, 4);
  }
  geo_graph *g = NULL;
  geo_err e = geo_snapshot_open_buffer(buf, size, &g);
  if (e != GEO_OK && e != GEO_EFORMAT) abort();
  if (e == GEO_OK) {
    geo_route_state *st = NULL;
    if (geo_route_state_new(g, &st) == GEO_OK) {
      uint32_t n = geo_graph_node_count(g);
      for (int algo = 0; algo < GEO_ROUTE_ALGO_COUNT; algo++) {
        if (algo == GEO_ROUTE_CH && !geo_ch_present(g)) continue;
        geo_route_result r;
        geo_route_nodes(st, g, (geo_route_algo)algo, 0, n - 1, &r);
      }
      geo_route_state_free(st);
    }
    geo_graph_free(g);
  }
  free(buf);
  return 0;
}
