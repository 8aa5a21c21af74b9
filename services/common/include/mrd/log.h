/*
 * log.h: one logfmt line per event on stderr, with levels, and the log hooks that route
 * libwebsockets, librdkafka and libpq messages through the same writer.
 *
 * A line reads `ts=2026-01-02T03:04:05.678Z level=info svc=gateway msg=listening port=8080`.
 * Callers write fields as a printf format of `key=%spec` tokens separated by spaces:
 *   mrd_log(MRD_LOG_INFO, "listening", "port=%d addr=%s", port, addr);
 * Keys are literal; each value is formatted and then quoted and escaped when it needs to be
 * (spaces, quotes, `=`, control characters, empty), so a value can never break the line.
 * Supported conversions: d i u x X o c s p f F e E g G with flags, width, precision (also
 * `*`) and the length modifiers hh h l ll z j t L; `%%` is a literal percent. A token
 * without `=` is copied as formatted, unescaped: it is meant for text already built with
 * mrd_log_quote (mrd_config_log uses it), never for raw input.
 * Thread-safe: the level is atomic and each line is handed to the writer in one call
 * (librdkafka logs from its own threads). This is not a structured-event bus or a file
 * rotator: stderr is collected by whatever runs the service.
 */
#ifndef MRD_LOG_H
#define MRD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Severity, in increasing order. A line is written when its level >= the current level. */
typedef enum mrd_log_level {
  MRD_LOG_DEBUG = 0,
  MRD_LOG_INFO = 1,
  MRD_LOG_WARN = 2,
  MRD_LOG_ERROR = 3
} mrd_log_level;

/* Sets the service name written as `svc=` on every line (copied, at most 63 bytes) and the
 * level from MERIDIAN_LOG_LEVEL when that is set. Returns 0, or MRD_EINVAL when
 * MERIDIAN_LOG_LEVEL is not one of debug|info|warn|error (the level then stays info). */
MRD_EXPORT int mrd_log_init(const char *svc);

/* Sets / reads the minimum level written. Default: info. */
MRD_EXPORT void mrd_log_set_level(mrd_log_level level);
/* Test API (no service calls it): tests/common/test_log.c. */
MRD_EXPORT mrd_log_level mrd_log_get_level(void);

/* True when a line at this level would be written (to skip costly field formatting). */
MRD_EXPORT bool mrd_log_enabled(mrd_log_level level);

/* Receives each finished line (with its trailing '\n', len excludes the NUL). Called from
 * whichever thread logged. */
typedef void (*mrd_log_writer_fn)(const char *line, size_t len, void *ud);

/* Test API (no service calls it): tests (test_log, test_config, test_pg_adapter capture lines
 * with it). */
/* Replaces the writer (default: write(2) to stderr). NULL restores the default. Set it
 * before other threads log; tests use it to capture lines. */
MRD_EXPORT void mrd_log_set_writer(mrd_log_writer_fn fn, void *ud);

/* Writes one line: msg is the event name (escaped like a value), fields the printf format
 * described above. Never fails: an allocation failure drops the line. */
MRD_EXPORT void mrd_log(mrd_log_level level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));
MRD_EXPORT void mrd_vlog(mrd_log_level level, const char *msg, const char *fields, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Test API (no service calls it): tests/common/test_log.c. */
/* Writes one line with no fields beyond ts, level, svc and msg. */
MRD_EXPORT void mrd_log_msg(mrd_log_level level, const char *msg);

#define mrd_log_debug(msg, ...) mrd_log(MRD_LOG_DEBUG, (msg), __VA_ARGS__)
#define mrd_log_info(msg, ...) mrd_log(MRD_LOG_INFO, (msg), __VA_ARGS__)
#define mrd_log_warn(msg, ...) mrd_log(MRD_LOG_WARN, (msg), __VA_ARGS__)
#define mrd_log_error(msg, ...) mrd_log(MRD_LOG_ERROR, (msg), __VA_ARGS__)

/* Appends `value` to a logfmt line as a value: unchanged when it is a plain word, else in
 * double quotes with \" \\ \n \r \t and \xNN escapes. Exposed for tests and for callers
 * that assemble fields themselves; writes at most cap-1 bytes and a NUL, returns the
 * length the full text needs (like snprintf). */
MRD_EXPORT size_t mrd_log_quote(char *dst, size_t cap, const char *value);

/* Library hooks. Each routes the library's messages into mrd_log with msg=<library> and
 * its text as `text=`, mapping the library's levels onto ours. */

/* libwebsockets: lws_set_log_level() with our emitter; lws ERR/WARN/NOTICE map to
 * error/warn/info, everything finer to debug (enabled only at debug). Process-wide. */
MRD_EXPORT void mrd_log_hook_lws(void);

/* A bound on how often one kind of line is written (401s, header errors, a library's
 * repeated complaint): a token bucket of lines_per_s with burst, plus the count of lines
 * held back since the last one written, which that next line reports. Pure: time comes in
 * as an argument. Not thread-safe: one gate per thread or per kind. */
typedef struct mrd_log_gate {
  double tokens, lines_per_s, burst;
  int64_t last_ms;
  uint64_t suppressed;
} mrd_log_gate;

/* Start a gate full (burst lines may be written at once). lines_per_s > 0, burst >= 1. */
MRD_EXPORT void mrd_log_gate_init(mrd_log_gate *g, double lines_per_s, double burst,
                                  int64_t now_ms);

/* Whether a line may be written at now_ms. True: write it, and *suppressed says how many
 * were held back since the previous one (then reset to 0). False: the line is counted as
 * held back. */
MRD_EXPORT bool mrd_log_gate_pass(mrd_log_gate *g, int64_t now_ms, uint64_t *suppressed);

struct rd_kafka_conf_s;
/* librdkafka: installs the log callback on conf (before rd_kafka_new). Syslog levels
 * 0-3/4/5-6/7 map to error/warn/info/debug. */
MRD_EXPORT void mrd_log_hook_rdkafka(struct rd_kafka_conf_s *conf);

struct pg_conn;
/* libpq: PQsetNoticeProcessor on conn, so server NOTICE/WARNING messages are logged
 * (WARNING as warn, the rest as info). */
MRD_EXPORT void mrd_log_hook_pq(struct pg_conn *conn);

#ifdef __cplusplus
}
#endif
#endif /* MRD_LOG_H */
