/*
 * tz.c: the process's local time zone (mrd/tz.h).
 */
#include "mrd/tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int mrd_timezone_set(const char *zone) {
  if (!zone || !zone[0] || strstr(zone, "..") || zone[0] == '/') return MRD_EINVAL;
  if (strcmp(zone, "UTC") != 0) {
    const char *dir = getenv("TZDIR");
    char path[512];
    int n = snprintf(path, sizeof path, "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", zone);
    if (n < 0 || (size_t)n >= sizeof path || access(path, R_OK) != 0) return MRD_EINVAL;
  }
  if (setenv("TZ", zone, 1) != 0) return MRD_EINVAL;
  tzset();
  return 0;
}

int mrd_local_hour_weekday(int64_t unix_ms, int *hour, int *weekday) {
  if (!hour || !weekday) return MRD_EINVAL;
  int64_t s = unix_ms >= 0 ? unix_ms / 1000 : -((-unix_ms + 999) / 1000);
  time_t t = (time_t)s;
  struct tm tm;
  if ((int64_t)t != s || !localtime_r(&t, &tm)) return MRD_ERANGE;
  *hour = tm.tm_hour;
  *weekday = tm.tm_wday;
  return 0;
}
