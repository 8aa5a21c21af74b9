/*
 * log.c: the logfmt writer of log.h, its field-format walker and the library hooks.
 * The walker formats each printf conversion on its own so every value can be escaped
 * after formatting; it is not a general printf replacement (no positional arguments).
 */
#include "mrd/log.h"
#include "mrd/clock.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <libwebsockets.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mrd_internal.h"

static atomic_int g_level = MRD_LOG_INFO;
static char g_svc[64] = "meridian";
static mrd_log_writer_fn g_writer;
static void *g_writer_ud;

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

/* Parses "debug", "info", "warn" (or "warning") or "error", case-insensitively.
 * Returns 0 and sets *out, or MRD_EINVAL (out untouched). */
static int level_parse(const char *s, mrd_log_level *out) {
  if (s == NULL) return MRD_EINVAL;
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, LEVEL_NAMES[i]) == 0) {
      *out = (mrd_log_level)i;
      return 0;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = MRD_LOG_WARN;
    return 0;
  }
  return MRD_EINVAL;
}

/* The lower-case name of a level ("info"); "unknown" for out-of-range values. */
static const char *level_name(mrd_log_level level) {
  return (level >= MRD_LOG_DEBUG && level <= MRD_LOG_ERROR) ? LEVEL_NAMES[level] : "unknown";
}

int mrd_log_init(const char *svc) {
  if (svc) snprintf(g_svc, sizeof g_svc, "%s", svc);
  const char *env = getenv("MERIDIAN_LOG_LEVEL");
  if (env == NULL || *env == '\0') return 0;
  mrd_log_level lvl;
  if (level_parse(env, &lvl) != 0) {
    mrd_log(MRD_LOG_WARN, "bad_log_level", "MERIDIAN_LOG_LEVEL=%s using=info", env);
    atomic_store(&g_level, MRD_LOG_INFO);
    return MRD_EINVAL;
  }
  atomic_store(&g_level, (int)lvl);
  return 0;
}

void mrd_log_set_level(mrd_log_level level) { atomic_store(&g_level, (int)level); }
mrd_log_level mrd_log_get_level(void) { return (mrd_log_level)atomic_load(&g_level); }
bool mrd_log_enabled(mrd_log_level level) { return (int)level >= atomic_load(&g_level); }

void mrd_log_set_writer(mrd_log_writer_fn fn, void *ud) {
  g_writer = fn;
  g_writer_ud = ud;
}

static void write_stderr(const char *line, size_t len) {
  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, line, len);
    if (n <= 0) return; /* nowhere left to report a failing stderr */
    line += n;
    len -= (size_t)n;
  }
}

static bool needs_quotes(const char *v, size_t n) {
  if (n == 0) return true;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

static void append_value(mrd__buf *b, const char *v, size_t n) {
  if (!needs_quotes(v, n)) {
    mrd__buf_append(b, v, n);
    return;
  }
  mrd__buf_putc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    switch (c) {
    case '"': mrd__buf_puts(b, "\\\""); break;
    case '\\': mrd__buf_puts(b, "\\\\"); break;
    case '\n': mrd__buf_puts(b, "\\n"); break;
    case '\r': mrd__buf_puts(b, "\\r"); break;
    case '\t': mrd__buf_puts(b, "\\t"); break;
    default:
      if (c < 0x20 || c == 0x7f)
        mrd__buf_printf(b, "\\x%02x", c);
      else
        mrd__buf_putc(b, (char)c);
    }
  }
  mrd__buf_putc(b, '"');
}

size_t mrd_log_quote(char *dst, size_t cap, const char *value) {
  mrd__buf b = {0};
  append_value(&b, value, strlen(value));
  size_t need = b.len;
  if (cap > 0 && !b.oom) {
    size_t n = need < cap - 1 ? need : cap - 1;
    if (n) memcpy(dst, b.data, n);
    dst[n] = '\0';
  } else if (cap > 0) {
    dst[0] = '\0';
  }
  mrd__buf_free(&b);
  return need;
}

/* Formats one conversion starting at *pp (just past '%') into b, consuming its argument
 * from ap, and advances *pp past the conversion. */
static void format_conversion(mrd__buf *b, const char **pp, va_list *ap) {
  const char *p = *pp;
  char spec[32] = "%";
  size_t sl = 1;
  int stars[2];
  int nstars = 0;
#define PUT(c)                                                                                     \
  do {                                                                                             \
    if (sl < sizeof spec - 1) spec[sl++] = (c);                                                    \
  } while (0)
  while (*p && strchr("-+ #0", *p)) PUT(*p++);
  if (*p == '*') {
    stars[nstars++] = va_arg(*ap, int);
    PUT(*p++);
  } else {
    while (isdigit((unsigned char)*p)) PUT(*p++);
  }
  if (*p == '.') {
    PUT(*p++);
    if (*p == '*') {
      stars[nstars++] = va_arg(*ap, int);
      PUT(*p++);
    } else {
      while (isdigit((unsigned char)*p)) PUT(*p++);
    }
  }
  enum { L_NONE, L_HH, L_H, L_L, L_LL, L_Z, L_J, L_T, L_BIGL } len = L_NONE;
  if (p[0] == 'h' && p[1] == 'h') {
    len = L_HH;
    PUT(*p++);
    PUT(*p++);
  } else if (p[0] == 'l' && p[1] == 'l') {
    len = L_LL;
    PUT(*p++);
    PUT(*p++);
  } else if (*p == 'h') {
    len = L_H;
    PUT(*p++);
  } else if (*p == 'l') {
    len = L_L;
    PUT(*p++);
  } else if (*p == 'z') {
    len = L_Z;
    PUT(*p++);
  } else if (*p == 'j') {
    len = L_J;
    PUT(*p++);
  } else if (*p == 't') {
    len = L_T;
    PUT(*p++);
  } else if (*p == 'L') {
    len = L_BIGL;
    PUT(*p++);
  }
  char conv = *p;
  if (conv == '\0') {
    *pp = p;
    return;
  }
  PUT(*p++);
#undef PUT
  spec[sl] = '\0';
  *pp = p;

  /* The spec text was built from the caller's own format, which the compiler checked. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#define EMIT(val)                                                                                  \
  do {                                                                                             \
    if (nstars == 2)                                                                               \
      mrd__buf_printf(b, spec, stars[0], stars[1], val);                                           \
    else if (nstars == 1)                                                                          \
      mrd__buf_printf(b, spec, stars[0], val);                                                     \
    else                                                                                           \
      mrd__buf_printf(b, spec, val);                                                               \
  } while (0)
  switch (conv) {
  case 'd':
  case 'i':
    switch (len) {
    case L_L: EMIT(va_arg(*ap, long)); break;
    case L_LL: EMIT(va_arg(*ap, long long)); break;
    case L_Z: EMIT(va_arg(*ap, ssize_t)); break;
    case L_J: EMIT(va_arg(*ap, intmax_t)); break;
    case L_T: EMIT(va_arg(*ap, ptrdiff_t)); break;
    default: EMIT(va_arg(*ap, int)); break; /* hh and h are promoted to int */
    }
    break;
  case 'u':
  case 'x':
  case 'X':
  case 'o':
    switch (len) {
    case L_L: EMIT(va_arg(*ap, unsigned long)); break;
    case L_LL: EMIT(va_arg(*ap, unsigned long long)); break;
    case L_Z: EMIT(va_arg(*ap, size_t)); break;
    case L_J: EMIT(va_arg(*ap, uintmax_t)); break;
    case L_T: EMIT(va_arg(*ap, ptrdiff_t)); break;
    default: EMIT(va_arg(*ap, unsigned)); break;
    }
    break;
  case 'c': EMIT(va_arg(*ap, int)); break;
  case 's': {
    const char *s = va_arg(*ap, const char *);
    EMIT(s ? s : "(null)");
    break;
  }
  case 'p': EMIT(va_arg(*ap, void *)); break;
  case 'f':
  case 'F':
  case 'e':
  case 'E':
  case 'g':
  case 'G':
  case 'a':
  case 'A':
    if (len == L_BIGL)
      EMIT(va_arg(*ap, long double));
    else
      EMIT(va_arg(*ap, double));
    break;
  case '%': mrd__buf_putc(b, '%'); break;
  default: mrd__buf_append(b, spec, sl); break; /* unknown: shown as written */
  }
#undef EMIT
#pragma GCC diagnostic pop
}

/* Formats one space-free token of the fields format into out (not escaped). */
static void format_text(mrd__buf *out, const char *start, const char *end, va_list *ap) {
  const char *p = start;
  while (p < end) {
    const char *pct = memchr(p, '%', (size_t)(end - p));
    if (pct == NULL) {
      mrd__buf_append(out, p, (size_t)(end - p));
      return;
    }
    mrd__buf_append(out, p, (size_t)(pct - p));
    p = pct + 1;
    format_conversion(out, &p, ap);
  }
}

static void append_timestamp(mrd__buf *b) {
  int64_t now_ms = mrd_wall_ms();
  time_t sec = (time_t)(now_ms / 1000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char t[40];
  size_t n = strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(t + n, sizeof t - n, ".%03dZ", (int)(now_ms % 1000));
  mrd__buf_puts(b, "ts=");
  mrd__buf_puts(b, t);
}

/* Builds and writes one line; aq is read only when fields has conversions. */
static void emit(mrd_log_level level, const char *msg, const char *fields, va_list *aq) {
  if (!mrd_log_enabled(level)) return;
  mrd__buf line = {0};
  append_timestamp(&line);
  mrd__buf_puts(&line, " level=");
  mrd__buf_puts(&line, level_name(level));
  mrd__buf_puts(&line, " svc=");
  append_value(&line, g_svc, strlen(g_svc));
  mrd__buf_puts(&line, " msg=");
  const char *m = msg ? msg : "";
  append_value(&line, m, strlen(m));

  const char *p = fields ? fields : "";
  mrd__buf val = {0};
  while (*p) {
    while (*p == ' ') p++;
    if (*p == '\0') break;
    const char *end = strchr(p, ' ');
    if (end == NULL) end = p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(end - p));
    mrd__buf_putc(&line, ' ');
    if (eq == NULL) {
      format_text(&line, p, end, aq);
    } else {
      mrd__buf_append(&line, p, (size_t)(eq - p + 1));
      val.len = 0;
      if (val.data) val.data[0] = '\0';
      format_text(&val, eq + 1, end, aq);
      append_value(&line, val.data ? val.data : "", val.len);
    }
    p = end;
  }
  mrd__buf_free(&val);
  mrd__buf_putc(&line, '\n');
  if (!line.oom) {
    if (g_writer)
      g_writer(line.data, line.len, g_writer_ud);
    else
      write_stderr(line.data, line.len);
  }
  mrd__buf_free(&line);
}

void mrd_vlog(mrd_log_level level, const char *msg, const char *fields, va_list ap) {
  va_list aq;
  va_copy(aq, ap);
  emit(level, msg, fields, &aq);
  va_end(aq);
}

void mrd_log(mrd_log_level level, const char *msg, const char *fields, ...) {
  va_list ap;
  va_start(ap, fields);
  mrd_vlog(level, msg, fields, ap);
  va_end(ap);
}

void mrd_log_msg(mrd_log_level level, const char *msg) { emit(level, msg, NULL, NULL); }

/* Logs a library's message with trailing newlines and spaces trimmed. */
static void log_library(mrd_log_level level, const char *lib, const char *fac, const char *text) {
  if (!mrd_log_enabled(level)) return;
  size_t n = strlen(text);
  while (n > 0 && isspace((unsigned char)text[n - 1])) n--;
  char *copy = malloc(n + 1);
  if (copy == NULL) return;
  memcpy(copy, text, n);
  copy[n] = '\0';
  if (fac)
    mrd_log(level, lib, "facility=%s text=%s", fac, copy);
  else
    mrd_log(level, lib, "text=%s", copy);
  free(copy);
}

void mrd_log_gate_init(mrd_log_gate *g, double lines_per_s, double burst, int64_t now_ms) {
  g->lines_per_s = lines_per_s > 0 ? lines_per_s : 1e-9;
  g->burst = burst >= 1 ? burst : 1;
  g->tokens = g->burst;
  g->last_ms = now_ms;
  g->suppressed = 0;
}

bool mrd_log_gate_pass(mrd_log_gate *g, int64_t now_ms, uint64_t *suppressed) {
  if (now_ms > g->last_ms) {
    g->tokens += (double)(now_ms - g->last_ms) * g->lines_per_s / 1000.0;
    if (g->tokens > g->burst) g->tokens = g->burst;
    g->last_ms = now_ms;
  }
  if (g->tokens < 1.0) {
    g->suppressed++;
    return false;
  }
  g->tokens -= 1.0;
  if (suppressed) *suppressed = g->suppressed;
  g->suppressed = 0;
  return true;
}

/* lws's lines, at most 10 a second (burst 20): a client can make lws complain once per bad
 * request ("Ran out of header data space"), which must not flood the log. lws logs from
 * its service thread only. */
static mrd_log_gate g_lws_gate;
static bool g_lws_gate_init;

static void lws_emit(int lws_level, const char *line) {
  int64_t now = mrd_mono_ms();
  if (!g_lws_gate_init) {
    mrd_log_gate_init(&g_lws_gate, 10, 20, now);
    g_lws_gate_init = true;
  }
  uint64_t held = 0;
  if (!mrd_log_gate_pass(&g_lws_gate, now, &held)) return;
  if (held) mrd_log(MRD_LOG_WARN, "lws", "suppressed=%llu", (unsigned long long)held);
  mrd_log_level lvl = lws_level & LLL_ERR      ? MRD_LOG_ERROR
                      : lws_level & LLL_WARN   ? MRD_LOG_WARN
                      : lws_level & LLL_NOTICE ? MRD_LOG_INFO
                                               : MRD_LOG_DEBUG;
  log_library(lvl, "lws", NULL, line);
}

void mrd_log_hook_lws(void) {
  int mask = LLL_ERR | LLL_WARN;
  if (mrd_log_enabled(MRD_LOG_INFO)) mask |= LLL_NOTICE;
  if (mrd_log_enabled(MRD_LOG_DEBUG)) mask |= LLL_INFO;
  lws_set_log_level(mask, lws_emit);
}

static void rdkafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk;
  mrd_log_level lvl = level <= 3   ? MRD_LOG_ERROR
                      : level == 4 ? MRD_LOG_WARN
                      : level <= 6 ? MRD_LOG_INFO
                                   : MRD_LOG_DEBUG;
  log_library(lvl, "rdkafka", fac, buf);
}

void mrd_log_hook_rdkafka(struct rd_kafka_conf_s *conf) {
  rd_kafka_conf_set_log_cb(conf, rdkafka_log);
}

static void pq_notice(void *arg, const char *message) {
  (void)arg;
  mrd_log_level lvl = strncmp(message, "WARNING", 7) == 0 ? MRD_LOG_WARN : MRD_LOG_INFO;
  log_library(lvl, "libpq", NULL, message);
}

void mrd_log_hook_pq(struct pg_conn *conn) { PQsetNoticeProcessor(conn, pq_notice, NULL); }
