/* fuzz_tariff.c: libFuzzer target for the tariff file parser (services/fare/tariff.c; a
 * tariff file is an operator's input, loaded at start by dispatch and trips and by
 * `meridianctl fares report --tariff`). Any bytes must parse or fail with an error line,
 * never crash, leak or hit UB; a card that parses must have positive units and windows in
 * range, and must price a few legs into a fare that passes mrd_fare_check. Not a unit
 * test: scripts/fuzz runs it. */
/* fuzz-options: -max_len=2048 -max_total_time=90 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fare.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mrd_tariff t;
  char err[256];
  err[0] = '\0';
  if (mrd_tariff_parse((const char *)data, size, &t, err, sizeof err) != 0) {
    if (err[0] == '\0') abort(); /* an error always says why */
    return 0;
  }
  if (!(t.increment_distance_m > 0) || !(t.increment_time_s > 0) || !(t.slow_speed_mps > 0) ||
      t.n_windows > MRD_TARIFF_WINDOWS_MAX || t.n_fixed > MRD_TARIFF_FIXED_MAX || !t.name[0])
    abort();
  for (size_t i = 0; i < t.n_windows; i++)
    if (t.windows[i].from_min < 0 || t.windows[i].from_min >= 1440 || t.windows[i].to_min < 0 ||
        t.windows[i].to_min >= 1440 || t.windows[i].from_min == t.windows[i].to_min)
      abort();
  mrd_fare_leg legs[] = {{1000, 120}, {0, 60}, {5000, 300}};
  mrd_fare f;
  for (int wd = 0; wd < 7; wd++)
    if (mrd_fare_price(&t, legs, 3, 1.0, (mrd_fare_when){wd, wd * 200}, 1.3, &f) != 0 ||
        !mrd_fare_check(&f))
      abort();
  return 0;
}
