/* fuzz_area.c: libFuzzer target for the service-area reader (gw_area_from_geojson: the
 * GeoJSON file MERIDIAN_SERVICE_AREA names, read by the gateway and the load generator at
 * start). Any bytes must give an area or a refusal with a reason, never a crash, leak or
 * UB; an area has at least one polygon and answers point-in-polygon queries (including
 * non-finite points, which are outside). Not a unit test: scripts/fuzz runs it; seeds in
 * corpus/area/. */
/* fuzz-options: -max_len=4096 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "area.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size ? size : 1);
  if (!text) return 0;
  memcpy(text, data, size);
  char err[256];
  err[0] = '\0';
  gw_area *a = gw_area_from_geojson(text, size, err, sizeof err);
  if (!a) {
    if (err[0] == '\0' || memchr(err, '\0', sizeof err) == NULL) abort();
  } else {
    if (gw_area_polygon_count(a) == 0 || gw_area_vertex_count(a) < 4) abort();
    const double pts[][2] = {{40.758, -73.9855}, {0, 0},   {90, 180},
                             {-90, -180},        {NAN, 0}, {0, INFINITY}};
    for (size_t i = 0; i < sizeof pts / sizeof *pts; i++) {
      bool in = gw_area_contains(a, pts[i][0], pts[i][1]);
      if (in && (!isfinite(pts[i][0]) || !isfinite(pts[i][1]))) abort();
    }
    gw_area_free(a);
  }
  free(text);
  return 0;
}
