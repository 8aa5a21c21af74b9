/*
 * trips_csv.h: reading the trips the load generator replays from CSV. Two formats, told
 * apart by the header: the project's sample (data/trips/nyc-taxi-10k.csv: day, hour, minute,
 * weekday, duration in seconds, pickup/dropoff longitude/latitude) and the NYC TLC
 * yellow-taxi trip records with pickup/dropoff datetimes and longitude/latitude columns
 * (2009-2016 files: tpep_pickup_datetime or pickup_datetime, pickup_longitude, ...).
 *
 * Bad rows are skipped and counted by reason, with the first few line numbers kept for the
 * report. A row whose real duration is unknown is kept (it can still be replayed) and
 * counted; only the comparison with Meridian's ETA leaves it out. This module does no
 * networking and knows nothing of the simulation: the service area is a caller's predicate.
 * Not a general CSV reader: no quoted commas or newlines inside fields (neither format has any).
 */
#ifndef LG_TRIPS_CSV_H
#define LG_TRIPS_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The file formats this module reads. */
typedef enum lg_csv_format {
  LG_CSV_SAMPLE = 0, /* data/trips/nyc-taxi-10k.csv (statsmaths/ml_data nyc_taxi) */
  LG_CSV_TLC         /* NYC TLC yellow-taxi trip records with coordinates */
} lg_csv_format;

/* Why a row was skipped. */
typedef enum lg_skip_reason {
  LG_SKIP_COLUMNS = 0, /* not as many fields as the header */
  LG_SKIP_NUMBER,      /* a field that must be a number is not one (or out of range) */
  LG_SKIP_MISSING,     /* a pickup or drop-off coordinate is empty, NA or 0 */
  LG_SKIP_OUT_OF_AREA, /* the pickup or the drop-off is outside the service area */
  LG_SKIP_TIME,        /* the pickup time is missing or malformed */
  LG_SKIP_REASON_COUNT
} lg_skip_reason;

/* One trip to replay. */
typedef struct lg_trip {
  uint32_t line;                 /* 1-based line number in the file (the header is line 1) */
  int day, hour, minute, second; /* pickup time: day of month 1..31, time of day */
  int weekday;                   /* 0 = Sunday .. 6 = Saturday; -1 when unknown */
  double pickup_lat, pickup_lon;
  double dropoff_lat, dropoff_lon;
  double duration_s;      /* the real trip time, or -1 when the file has none */
  double tod_s;           /* pickup time of day in seconds, [0, 86400) */
  int year, month;        /* pickup date's year and month 1..12; 0 when the file has
                             none (the sample format) */
  double fare_amount_usd; /* TLC's fare_amount (the meter's fare), or -1 when absent */
  int rate_code;          /* TLC's RatecodeID (1 = standard rate), or -1 when absent */
} lg_trip;

#define LG_FIRST_SKIPPED_MAX 8 /* line numbers of skipped rows kept for the report */

/* The trips of one file and what was left out. */
typedef struct lg_trip_set {
  lg_trip *trips; /* n trips in file order; owned, freed by lg_trip_set_free */
  size_t n;
  lg_csv_format format;
  size_t rows;                          /* data rows read (not counting the header, blanks) */
  size_t skipped[LG_SKIP_REASON_COUNT]; /* rows skipped, by reason */
  size_t skipped_total;
  uint32_t first_skipped[LG_FIRST_SKIPPED_MAX]; /* line numbers of the first skipped rows */
  size_t n_first_skipped;
  size_t no_duration; /* kept rows without a real duration */
} lg_trip_set;

/* The service area: true when (lat, lon) is inside. */
typedef bool (*lg_area_fn)(void *ud, double lat, double lon);

/* Parse len bytes of CSV text into *out (which the caller zeroes or frees first). The
 * seconds of a time given to the minute (the sample format) are drawn from `seed` and the
 * line number, so a replay spreads a minute's requests evenly and the same way every run.
 * Returns 0, or -1 with a one-line reason in err (errcap bytes) when the header is of
 * neither format, no column names the coordinates, or memory runs out. Bad rows are not
 * errors: they are skipped and counted in *out. */
int lg_trips_parse(const char *text, size_t len, lg_area_fn in_area, void *area_ud, uint64_t seed,
                   lg_trip_set *out, char *err, size_t errcap);

/* lg_trips_parse on the contents of the file at path; err also says why it cannot be read. */
int lg_trips_load(const char *path, lg_area_fn in_area, void *area_ud, uint64_t seed,
                  lg_trip_set *out, char *err, size_t errcap);

/* Free the trips of a set and zero it; a zeroed set is a no-op. */
void lg_trip_set_free(lg_trip_set *set);

/* The name of a format ("nyc-taxi-sample", "nyc-tlc") or of a skip reason ("columns",
 * "number", "missing", "out_of_area", "time"). */
const char *lg_csv_format_name(lg_csv_format f);
const char *lg_skip_reason_name(lg_skip_reason r);

/* A 64-bit mix of x (splitmix64's finaliser): the project's one hash for seeded choices. */
uint64_t lg_mix64(uint64_t x);

#endif /* LG_TRIPS_CSV_H */
