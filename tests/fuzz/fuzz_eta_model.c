/* fuzz_eta_model.c: libFuzzer target for the ETA calibration file reader of meridianctl
 * (mctl_model_parse: the "key=value" text of data/eta-calibration.txt that `graph export
 * --model` bakes into a snapshot and `graph calibrate` writes). Any bytes must parse or be
 * refused, never a crash, leak or UB; a parsed model has every factor in range and
 * survives a round trip: formatted (mctl_model_format) and parsed again it is the same,
 * every value exactly (corpus/eta_model/crash-tiny-cell-factor: a factor of 5e-81 was
 * written as "0.0000" and could not be read back).
 * Not a unit test: scripts/fuzz runs it; seeds in corpus/eta_model/. */
/* fuzz-options: -max_len=4096 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mctl_eta_model a, b; /* large (cells): static, not on the stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  if (mctl_model_parse(text, &a)) {
    if (a.cell_precision < 0 || a.cell_precision > 12 || a.n_cells > MCTL_MAX_CELLS) abort();
    for (size_t i = 0; i < a.n_cells; i++)
      if (!(a.cell_factor[i] > 0 && a.cell_factor[i] <= 100)) abort();
    if (!(a.cal.arc_penalty_ms >= 0 && a.cal.trip_base_ms >= 0)) abort();
    char *out = mctl_model_format(&a, "# fuzz");
    if (out) {
      if (!mctl_model_parse(out, &b)) abort();
      if (b.n_cells != a.n_cells || b.cell_precision != a.cell_precision) abort();
      for (size_t i = 0; i < a.n_cells; i++)
        if (strcmp(a.cell[i], b.cell[i]) != 0 || a.cell_factor[i] != b.cell_factor[i]) abort();
      if (memcmp(&a.cal, &b.cal, sizeof a.cal) != 0) abort();
      free(out);
    }
  }
  free(text);
  return 0;
}
