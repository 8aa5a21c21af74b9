/* fuzz_trips_csv.c: libFuzzer target for the load generator's trip readers (lg_trips_parse:
 * the project's sample CSV and the NYC TLC yellow-taxi records, told apart by the header),
 * which read whatever file a user points `meridian-loadgen replay --trips` at. The first
 * byte is the seed of the seconds drawn for minute-precision rows, the rest is the file.
 * Any bytes must parse or be refused with a reason, never a crash, leak or UB; a parse
 * keeps trips whose fields are in range (time of day, coordinates inside the test area,
 * lines increasing) and counts every data row as kept or skipped by one reason. Not a unit
 * test: scripts/fuzz runs it; seeds in corpus/trips_csv/. */
/* fuzz-options: -max_len=4096 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trips_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A box around Manhattan, as the service area (the real one is a GeoJSON file). */
static bool in_box(void *ud, double lat, double lon) {
  (void)ud;
  return lat > 40.69 && lat < 40.89 && lon > -74.03 && lon < -73.90;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t len = size - 1;
  char *text = malloc(len ? len : 1); /* not NUL-terminated, as a mapped file is not */
  if (!text) return 0;
  memcpy(text, data + 1, len);
  lg_trip_set set;
  memset(&set, 0, sizeof set);
  char err[256];
  err[0] = '\0';
  int rc = lg_trips_parse(text, len, in_box, NULL, data[0], &set, err, sizeof err);
  if (rc != 0) {
    if (rc != -1 || err[0] == '\0' || memchr(err, '\0', sizeof err) == NULL) abort();
  } else {
    if (set.format != LG_CSV_SAMPLE && set.format != LG_CSV_TLC) abort();
    size_t skipped = 0;
    for (int r = 0; r < LG_SKIP_REASON_COUNT; r++) skipped += set.skipped[r];
    if (skipped != set.skipped_total || set.n + set.skipped_total != set.rows) abort();
    if (set.n_first_skipped > LG_FIRST_SKIPPED_MAX) abort();
    uint32_t last = 1;
    for (size_t i = 0; i < set.n; i++) {
      const lg_trip *t = &set.trips[i];
      if (t->line <= last) abort();
      last = t->line;
      if (!(t->tod_s >= 0 && t->tod_s < 86400)) abort();
      if (!in_box(NULL, t->pickup_lat, t->pickup_lon) ||
          !in_box(NULL, t->dropoff_lat, t->dropoff_lon))
        abort();
      if (t->weekday < -1 || t->weekday > 6) abort();
      if (!(t->duration_s == -1 || (isfinite(t->duration_s) && t->duration_s >= 0))) abort();
    }
  }
  lg_trip_set_free(&set);
  free(text);
  return 0;
}
