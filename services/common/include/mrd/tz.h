/*
 * tz.h: the service's local time zone, for what depends on the local time of day (the
 * calibrated ETA: geo_graph_eta_ms takes the hour and weekday of the trip, in the time zone
 * the calibration was fitted in: America/New_York for the NYC data). It sets the process's
 * TZ once at start, before any thread; it is not a time zone library.
 */
#ifndef MRD_TZ_H
#define MRD_TZ_H

#include <stdint.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The default zone of the services' MERIDIAN_TIMEZONE setting. */
#define MRD_TIMEZONE_DEFAULT "America/New_York"

/* Make zone (an IANA name such as "America/New_York", or "UTC") the process's local time
 * zone (TZ, tzset). Call at start, before any thread. Errors: MRD_EINVAL (NULL, empty, or
 * not "UTC" and no such file under $TZDIR or /usr/share/zoneinfo: glibc would silently use
 * UTC). */
MRD_EXPORT int mrd_timezone_set(const char *zone);

/* The local hour (0..23) and weekday (0 = Sunday .. 6) of the Unix time unix_ms, in the
 * process's time zone. Errors: MRD_ERANGE (the time cannot be converted). */
MRD_EXPORT int mrd_local_hour_weekday(int64_t unix_ms, int *hour, int *weekday);

#ifdef __cplusplus
}
#endif
#endif /* MRD_TZ_H */
