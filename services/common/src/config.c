/*
 * config.c: the table-driven parser of config.h. Values are taken as text (default, then
 * environment or secret file, then flag) and converted once, so every error names the
 * variable whatever the source.
 */
#include "mrd/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mrd/log.h"
#include "mrd_internal.h"

#define MAX_SECRET_BYTES 65536

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_len, const char *fmt, ...) {
  if (err && err_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
  }
  return MRD_EINVAL;
}

/* A short, printable rendering of a bad value for the error line. */
static void shown(char *out, size_t cap, const char *v) {
  size_t n = 0;
  for (const char *p = v; *p && n + 4 < cap; p++) {
    unsigned char c = (unsigned char)*p;
    out[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (v[n] && n + 4 >= cap && cap > 4) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n] = '\0';
}

static bool has_range(const mrd_config_opt *o) { return o->min != o->max; }

/* Reads a secret file, strips trailing newlines. Returns a heap string or NULL (errno). */
static char *read_secret_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *buf = malloc(MAX_SECRET_BYTES + 1);
  if (buf == NULL) {
    fclose(f);
    errno = ENOMEM;
    return NULL;
  }
  size_t n = fread(buf, 1, MAX_SECRET_BYTES + 1, f);
  int rerr = ferror(f) ? EIO : 0;
  fclose(f);
  if (rerr || n > MAX_SECRET_BYTES) {
    free(buf);
    errno = rerr ? rerr : EFBIG;
    return NULL;
  }
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
  buf[n] = '\0';
  return buf;
}

static int parse_duration_ms(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno == ERANGE || !isfinite(v) || v < 0 || *s == ' ' || *s == '+') return -1;
  double mult;
  if (*end == '\0' || strcmp(end, "ms") == 0)
    mult = 1;
  else if (strcmp(end, "s") == 0)
    mult = 1000;
  else if (strcmp(end, "m") == 0)
    mult = 60000;
  else if (strcmp(end, "h") == 0)
    mult = 3600000;
  else
    return -1;
  double ms = v * mult;
  if (ms > 9.0e15) return -2;
  *out = (int64_t)llround(ms);
  return 0;
}

static int parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"true", "1", "yes", "on"};
  static const char *const no[] = {"false", "0", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

/* Converts text into o->dst. from_flag only changes the wording of the error. */
static int convert(const mrd_config_opt *o, const char *text, const char *from, char *err,
                   size_t err_len) {
  char v[80];
  shown(v, sizeof v, text);
  switch (o->type) {
  case MRD_CONFIG_INT: {
    char *end;
    errno = 0;
    long long x = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || *text == ' ' || *text == '+')
      return fail(err, err_len, "%s: \"%s\" is not an integer%s", o->env, v, from);
    if (errno == ERANGE || x < INT_MIN || x > INT_MAX ||
        (has_range(o) && ((double)x < o->min || (double)x > o->max))) {
      if (has_range(o))
        return fail(err, err_len, "%s: %s is out of range [%.0f, %.0f]%s", o->env, v, o->min,
                    o->max, from);
      return fail(err, err_len, "%s: %s is out of range for an integer%s", o->env, v, from);
    }
    *(int *)o->dst = (int)x;
    return 0;
  }
  case MRD_CONFIG_DOUBLE: {
    char *end;
    errno = 0;
    double x = strtod(text, &end);
    if (end == text || *end != '\0' || *text == ' ' || !isfinite(x))
      return fail(err, err_len, "%s: \"%s\" is not a number%s", o->env, v, from);
    if (has_range(o) && (x < o->min || x > o->max))
      return fail(err, err_len, "%s: %s is out of range [%g, %g]%s", o->env, v, o->min, o->max,
                  from);
    *(double *)o->dst = x;
    return 0;
  }
  case MRD_CONFIG_BOOL:
    if (parse_bool(text, (bool *)o->dst) != 0)
      return fail(err, err_len, "%s: \"%s\" is not a boolean (true/false)%s", o->env, v, from);
    return 0;
  case MRD_CONFIG_DURATION_MS: {
    int64_t ms;
    int rc = parse_duration_ms(text, &ms);
    if (rc == -1)
      return fail(err, err_len, "%s: \"%s\" is not a duration (like 250ms, 5s, 2m)%s", o->env, v,
                  from);
    if (rc == -2 || (has_range(o) && ((double)ms < o->min || (double)ms > o->max))) {
      if (has_range(o))
        return fail(err, err_len, "%s: %s is out of range [%.0fms, %.0fms]%s", o->env, v, o->min,
                    o->max, from);
      return fail(err, err_len, "%s: %s is out of range%s", o->env, v, from);
    }
    *(int64_t *)o->dst = ms;
    return 0;
  }
  case MRD_CONFIG_STRING: {
    char *copy = strdup(text);
    if (copy == NULL) return fail(err, err_len, "%s: out of memory", o->env);
    char **dst = o->dst;
    free(*dst);
    *dst = copy;
    return 0;
  }
  }
  return fail(err, err_len, "%s: unknown option type", o->env);
}

static mrd_config_opt *find_flag(const mrd_config_spec *spec, const char *name, size_t n) {
  for (size_t i = 0; i < spec->n_opts; i++) {
    const char *f = spec->opts[i].flag;
    if (f && strlen(f) == n && strncmp(f, name, n) == 0) return &spec->opts[i];
  }
  return NULL;
}

int mrd_config_parse(const mrd_config_spec *spec, int argc, char *const argv[],
                     bool *help_requested, char *err, size_t err_len) {
  if (err && err_len) err[0] = '\0';
  if (help_requested) *help_requested = false;
  if (spec == NULL || (spec->n_opts > 0 && spec->opts == NULL))
    return fail(err, err_len, "config: no option table");
  for (size_t i = 0; i < spec->n_opts; i++) {
    const mrd_config_opt *o = &spec->opts[i];
    if (o->env == NULL || o->dst == NULL)
      return fail(err, err_len, "config: option %zu has no variable name or destination", i);
    if (o->secret && o->flag) return fail(err, err_len, "%s: a secret cannot have a flag", o->env);
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      if (help_requested) *help_requested = true;
      return 0;
    }
  }

  /* Flag text per option (the last occurrence wins). */
  const char **flag_text = calloc(spec->n_opts ? spec->n_opts : 1, sizeof *flag_text);
  if (flag_text == NULL) return fail(err, err_len, "config: out of memory");
  int rc = 0;
  for (int i = 1; i < argc && rc == 0; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      rc = fail(err, err_len, "%s: unexpected argument (options are --name=value)", a);
      break;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    mrd_config_opt *o = find_flag(spec, name, nlen);
    if (o == NULL) {
      rc = fail(err, err_len, "--%.*s: unknown flag (see --help)", (int)nlen, name);
      break;
    }
    const char *val;
    if (eq)
      val = eq + 1;
    else if (o->type == MRD_CONFIG_BOOL)
      val = "true";
    else if (i + 1 < argc)
      val = argv[++i];
    else {
      rc = fail(err, err_len, "%s: --%s needs a value", o->env, o->flag);
      break;
    }
    flag_text[o - spec->opts] = val;
  }

  for (size_t i = 0; i < spec->n_opts && rc == 0; i++) {
    const mrd_config_opt *o = &spec->opts[i];
    const char *text = NULL;
    const char *from = "";
    char *file_text = NULL;
    char from_buf[96];
    if (flag_text[i]) {
      text = flag_text[i];
      snprintf(from_buf, sizeof from_buf, " (from --%s)", o->flag);
      from = from_buf;
    } else {
      const char *env = getenv(o->env);
      if (env && *env) text = env;
    }
    if (text == NULL && o->secret) {
      char fname[256];
      snprintf(fname, sizeof fname, "%s_FILE", o->env);
      const char *path = getenv(fname);
      if (path && *path) {
        file_text = read_secret_file(path);
        if (file_text == NULL) {
          rc = fail(err, err_len, "%s: cannot read %s: %s", fname, path, strerror(errno));
          break;
        }
        if (*file_text == '\0') {
          free(file_text);
          rc = fail(err, err_len, "%s: %s is empty", fname, path);
          break;
        }
        text = file_text;
        from = "";
      }
    }
    if (text == NULL) text = o->def;
    if (text == NULL) {
      rc = o->secret ? fail(err, err_len, "%s: required but not set (nor %s_FILE)", o->env, o->env)
                     : fail(err, err_len, "%s: required but not set", o->env);
      break;
    }
    if (o->secret) {
      /* never echo a secret in an error line */
      rc = convert(o, text, from, NULL, 0);
      if (rc != 0) fail(err, err_len, "%s: invalid value (secret not shown)", o->env);
    } else {
      rc = convert(o, text, from, err, err_len);
    }
    free(file_text);
  }
  free(flag_text);
  return rc;
}

void mrd_config_release(const mrd_config_spec *spec) {
  if (spec == NULL) return;
  for (size_t i = 0; i < spec->n_opts; i++) {
    const mrd_config_opt *o = &spec->opts[i];
    if (o->type == MRD_CONFIG_STRING && o->dst) {
      char **dst = o->dst;
      free(*dst);
      *dst = NULL;
    }
  }
}

static const char *type_word(mrd_config_type t) {
  switch (t) {
  case MRD_CONFIG_INT: return "INT";
  case MRD_CONFIG_DOUBLE: return "NUM";
  case MRD_CONFIG_STRING: return "STR";
  case MRD_CONFIG_BOOL: return "BOOL";
  case MRD_CONFIG_DURATION_MS: return "DURATION";
  }
  return "?";
}

void mrd_config_print_help(const mrd_config_spec *spec, FILE *out) {
  fprintf(out, "usage: %s [--name=value ...]\n", spec->program ? spec->program : "meridian");
  if (spec->summary) fprintf(out, "%s\n", spec->summary);
  fprintf(out, "\nEvery option is an environment variable; a flag overrides it.\n\n");
  for (size_t i = 0; i < spec->n_opts; i++) {
    const mrd_config_opt *o = &spec->opts[i];
    char left[128];
    if (o->flag)
      snprintf(left, sizeof left, "--%s=%s", o->flag, type_word(o->type));
    else
      snprintf(left, sizeof left, "(no flag) %s", type_word(o->type));
    fprintf(out, "  %-32s %s%s\n", left, o->env, o->secret ? " (or " : "");
    if (o->secret) fprintf(out, "  %-32s   %s_FILE)\n", "", o->env);
    fprintf(out, "      %s", o->help ? o->help : "");
    if (o->def == NULL)
      fprintf(out, " (required");
    else if (o->secret)
      fprintf(out, " (default: set");
    else
      fprintf(out, " (default: \"%s\"", o->def);
    if (has_range(o)) {
      if (o->type == MRD_CONFIG_DURATION_MS)
        fprintf(out, "; range %.0fms..%.0fms", o->min, o->max);
      else
        fprintf(out, "; range %g..%g", o->min, o->max);
    }
    fprintf(out, ")\n");
  }
}

void mrd_config_load_or_exit(const mrd_config_spec *spec, int argc, char *const argv[]) {
  char err[512];
  bool help = false;
  int rc = mrd_config_parse(spec, argc, argv, &help, err, sizeof err);
  if (rc == 0 && help) {
    mrd_config_print_help(spec, stdout);
    fflush(stdout);
    exit(0);
  }
  if (rc != 0) {
    fprintf(stderr, "%s\n", err);
    mrd_config_release(spec);
    exit(2);
  }
}

void mrd_config_log(const mrd_config_spec *spec) {
  if (!mrd_log_enabled(MRD_LOG_INFO)) return;
  mrd__buf fields = {0};
  char num[64];
  for (size_t i = 0; i < spec->n_opts; i++) {
    const mrd_config_opt *o = &spec->opts[i];
    const char *val = num;
    switch (o->type) {
    case MRD_CONFIG_INT: snprintf(num, sizeof num, "%d", *(int *)o->dst); break;
    case MRD_CONFIG_DOUBLE: snprintf(num, sizeof num, "%g", *(double *)o->dst); break;
    case MRD_CONFIG_BOOL: val = *(bool *)o->dst ? "true" : "false"; break;
    case MRD_CONFIG_DURATION_MS:
      snprintf(num, sizeof num, "%lldms", (long long)*(int64_t *)o->dst);
      break;
    case MRD_CONFIG_STRING: val = *(char **)o->dst ? *(char **)o->dst : ""; break;
    }
    if (o->secret)
      val =
          (o->type == MRD_CONFIG_STRING && (*(char **)o->dst == NULL || **(char **)o->dst == '\0'))
              ? "unset"
              : "***";
    char *masked = NULL;
    if (!o->secret && o->type == MRD_CONFIG_STRING && (masked = malloc(strlen(val) + 4)) != NULL)
      val = mrd_config_mask_credentials(val, masked, strlen(val) + 4);
    size_t need = mrd_log_quote(NULL, 0, val);
    char *q = malloc(need + 1);
    if (q == NULL) break;
    mrd_log_quote(q, need + 1, val);
    mrd__buf_printf(&fields, "%s%s=%s", fields.len ? " " : "", o->env, q);
    free(q);
    free(masked);
  }
  if (!fields.oom) mrd_log(MRD_LOG_INFO, "config", "%s", fields.data ? fields.data : "");
  mrd__buf_free(&fields);
}

const char *mrd_config_mask_credentials(const char *value, char *out, size_t cap) {
  if (value == NULL || out == NULL || cap == 0) return value ? value : "";
  size_t n = strlen(value);
  if (n + 4 > cap) return value;
  /* scheme://user:password@host... -> scheme://user:***@host... */
  const char *sep = strstr(value, "://");
  if (sep) {
    const char *auth = sep + 3;
    const char *stop = auth + strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < stop; p++)
      if (*p == '@') at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
      size_t head = (size_t)(colon + 1 - value);
      memcpy(out, value, head);
      memcpy(out + head, "***", 3);
      strcpy(out + head + 3, at);
      return out;
    }
  }
  /* key=value DSN: password=secret -> password=*** */
  const char *pw = strstr(value, "password=");
  if (pw && (pw == value || pw[-1] == ' ')) {
    size_t head = (size_t)(pw + 9 - value);
    const char *end = pw + 9 + strcspn(pw + 9, " ");
    memcpy(out, value, head);
    memcpy(out + head, "***", 3);
    strcpy(out + head + 3, end);
    return out;
  }
  return value;
}
