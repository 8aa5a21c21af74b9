/* internal.c: the growable string, clocks and backoff of mrd_internal.h. */
#include "mrd_internal.h"
#include "mrd/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void mrd__buf_free(mrd__buf *b) {
  free(b->data);
  *b = (mrd__buf){0};
}

static bool reserve(mrd__buf *b, size_t extra) {
  if (b->oom) return false;
  if (b->len + extra + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) {
    if (cap > SIZE_MAX / 2) {
      b->oom = true;
      return false;
    }
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (p == NULL) {
    b->oom = true;
    return false;
  }
  b->data = p;
  b->cap = cap;
  return true;
}

void mrd__buf_append(mrd__buf *b, const char *s, size_t n) {
  if (!reserve(b, n)) return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void mrd__buf_puts(mrd__buf *b, const char *s) { mrd__buf_append(b, s, strlen(s)); }

void mrd__buf_putc(mrd__buf *b, char c) { mrd__buf_append(b, &c, 1); }

void mrd__buf_vprintf(mrd__buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) {
    b->oom = true;
    return;
  }
  if (!reserve(b, (size_t)n)) return;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void mrd__buf_printf(mrd__buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mrd__buf_vprintf(b, fmt, ap);
  va_end(ap);
}

char *mrd__buf_take(mrd__buf *b, size_t *len) {
  if (b->oom) {
    mrd__buf_free(b);
    return NULL;
  }
  if (b->data == NULL && !reserve(b, 0)) return NULL;
  if (b->len == 0) b->data[0] = '\0';
  char *s = b->data;
  if (len) *len = b->len;
  *b = (mrd__buf){0};
  return s;
}

int64_t mrd__mono_ms(void) { return mrd_mono_ms(); }

void mrd__backoff_init(mrd__backoff *b, int64_t min_ms, int64_t max_ms) {
  b->min_ms = min_ms > 0 ? min_ms : 1;
  b->max_ms = max_ms >= b->min_ms ? max_ms : b->min_ms;
  b->delay_ms = b->min_ms;
  b->next_at_ms = 0;
}

bool mrd__backoff_ready(const mrd__backoff *b) { return mrd__mono_ms() >= b->next_at_ms; }

void mrd__backoff_failed(mrd__backoff *b) {
  b->next_at_ms = mrd__mono_ms() + b->delay_ms;
  b->delay_ms = b->delay_ms * 2 > b->max_ms ? b->max_ms : b->delay_ms * 2;
}

void mrd__backoff_reset(mrd__backoff *b) {
  b->delay_ms = b->min_ms;
  b->next_at_ms = 0;
}
