/* bench_machine.h: the "machine" string every benchmark puts in its JSON line (bench/README.md):
 * the CPU model from /proc/cpuinfo and the number of online CPUs. Header-only. */
#ifndef MERIDIAN_BENCH_MACHINE_H
#define MERIDIAN_BENCH_MACHINE_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static inline void bench_machine(char *out, size_t len) {
  char model[128] = "unknown cpu", line[256];
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f && fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) == 0) {
      const char *p = strchr(line, ':');
      if (p) snprintf(model, sizeof model, "%s", p + 2);
      model[strcspn(model, "\n")] = '\0';
      break;
    }
  }
  if (f) fclose(f);
  snprintf(out, len, "%s, %ld cpus", model, sysconf(_SC_NPROCESSORS_ONLN));
}

#endif
