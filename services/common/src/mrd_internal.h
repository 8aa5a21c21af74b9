/*
 * mrd_internal.h: helpers shared by the mrd_* modules and not part of the public API:
 * a growable string, clocks, and the backoff used by the adapters' reconnects.
 */
#ifndef MRD_INTERNAL_H
#define MRD_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable NUL-terminated string. A failed append sets oom and leaves the text as it
 * was; callers check oom once at the end. Zero-initialise, release with mrd__buf_free. */
typedef struct mrd__buf {
  char *data;
  size_t len;
  size_t cap;
  bool oom;
} mrd__buf;

void mrd__buf_free(mrd__buf *b);
void mrd__buf_append(mrd__buf *b, const char *s, size_t n);
void mrd__buf_puts(mrd__buf *b, const char *s);
void mrd__buf_putc(mrd__buf *b, char c);
void mrd__buf_printf(mrd__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mrd__buf_vprintf(mrd__buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Takes the text out of b (caller frees); b is empty afterwards. NULL if b->oom. */
char *mrd__buf_take(mrd__buf *b, size_t *len);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t mrd__mono_ms(void);

/* Exponential reconnect backoff: the first retry is immediate, then min_ms doubling up to
 * max_ms. ready() says whether an attempt may be made now. */
typedef struct mrd__backoff {
  int64_t min_ms, max_ms;
  int64_t delay_ms;   /* delay after the next failure */
  int64_t next_at_ms; /* monotonic time of the next allowed attempt */
} mrd__backoff;

void mrd__backoff_init(mrd__backoff *b, int64_t min_ms, int64_t max_ms);
bool mrd__backoff_ready(const mrd__backoff *b);
void mrd__backoff_failed(mrd__backoff *b);
void mrd__backoff_reset(mrd__backoff *b);

#endif /* MRD_INTERNAL_H */
