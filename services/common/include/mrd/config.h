/*
 * config.h: one table per service that parses MERIDIAN_* environment variables and
 * command-line flags into the service's variables, validates them, prints --help and logs
 * the effective configuration with secrets masked.
 *
 * Order: default, then environment, then flags (a flag overrides its variable). A value
 * that does not parse or is out of range is an error whose one-line message starts with
 * the variable's name, e.g. `MERIDIAN_GATEWAY_PORT: "abc" is not an integer`.
 * Secrets come only from the environment or from the file named by `<ENV>_FILE`
 * (MERIDIAN_JWT_SECRET_FILE), never from flags, so they stay out of `ps`.
 * This is not a general getopt: flags are long only (`--name=value` or `--name value`,
 * and `--name` alone for a bool), and positional arguments are refused.
 */
#ifndef MRD_CONFIG_H
#define MRD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The type of an option and so of what its dst points to. */
typedef enum mrd_config_type {
  MRD_CONFIG_INT,        /* dst is int *; decimal, range-checked against min/max */
  MRD_CONFIG_DOUBLE,     /* dst is double *; finite */
  MRD_CONFIG_STRING,     /* dst is char **; a heap copy freed by mrd_config_release */
  MRD_CONFIG_BOOL,       /* dst is bool *; true/false, 1/0, yes/no, on/off */
  MRD_CONFIG_DURATION_MS /* dst is int64_t * in ms; "250", "250ms", "5s", "2m", "1h" */
} mrd_config_type;

/* One option of a service's table. */
typedef struct mrd_config_opt {
  const char *env;  /* variable name, MERIDIAN_<SVC>_<NAME>; required */
  const char *flag; /* long flag without dashes ("port"), or NULL; must be NULL for secrets */
  const char *def;  /* default as text, or NULL for a required option */
  const char *help; /* one line for --help */
  mrd_config_type type;
  double min, max; /* inclusive range for INT, DOUBLE and DURATION_MS (in ms); min == max
                      means no range */
  bool secret;     /* masked in --help defaults and logs; may come from <ENV>_FILE */
  void *dst;       /* where the parsed value goes (see mrd_config_type) */
} mrd_config_opt;

/* A service's whole table. */
typedef struct mrd_config_spec {
  const char *program; /* binary name for the usage line ("meridian-gateway") */
  const char *summary; /* one line said under the usage line */
  mrd_config_opt *opts;
  size_t n_opts;
} mrd_config_spec;

/* Parses defaults, the environment (getenv) and argv[1..argc) into every opt's dst.
 * Sets *help_requested when --help or -h is among the arguments (nothing else is then
 * validated). Returns 0, or MRD_EINVAL with one line (no newline) in err naming the
 * variable: missing required value, malformed value, out of range, unreadable secret file,
 * unknown flag, flag without value, positional argument. On error the dst values already
 * set are still released by mrd_config_release. Pure apart from getenv and reading secret
 * files: it never prints or exits. err may be NULL. */
MRD_EXPORT int mrd_config_parse(const mrd_config_spec *spec, int argc, char *const argv[],
                                bool *help_requested, char *err, size_t err_len);

/* Frees the strings mrd_config_parse stored in STRING options and sets them to NULL. */
MRD_EXPORT void mrd_config_release(const mrd_config_spec *spec);

/* Test API (no service calls it): tests/common/test_config.c (mrd_config_load_or_exit prints
 * --help with it). */
/* Prints the usage line, the summary and one block per option (flag, variable, type,
 * default, range, help) to out. */
MRD_EXPORT void mrd_config_print_help(const mrd_config_spec *spec, FILE *out);

/* For main(): parses; on --help prints help to stdout and exits 0; on error prints the one
 * line to stderr and exits 2. Returns only on success. */
MRD_EXPORT void mrd_config_load_or_exit(const mrd_config_spec *spec, int argc, char *const argv[]);

/* Logs the effective configuration as one info line `msg=config` with one field per
 * option named by its variable; secrets show as `***` (or `unset`). */
MRD_EXPORT void mrd_config_log(const mrd_config_spec *spec);

/* Table rows for the settings every service shares, so their names, defaults, ranges and
 * help are written once. Each takes the destination (and the admin port its default):
 *   mrd_config_opt opts[] = { MRD_OPT_LOG_LEVEL(&cfg.log_level), MRD_OPT_PG_DSN(&cfg.pg), ... };
 * fetch.wait.max.ms is 100 ms: a broker answers a fetch as soon as data arrives (devkafka's
 * long-poll front does too), so the wait only bounds how often an idle consumer asks. */
#define MRD_OPT_LOG_LEVEL(dst)                                                                     \
  {                                                                                                \
    "MERIDIAN_LOG_LEVEL", "log-level", "info", "debug | info | warn | error", MRD_CONFIG_STRING,   \
        0, 0, false, (dst)                                                                         \
  }
#define MRD_OPT_PG_DSN(dst)                                                                        \
  {                                                                                                \
    "MERIDIAN_PG_DSN", "pg-dsn", NULL, "PostgreSQL connection URI (postgresql://...)",             \
        MRD_CONFIG_STRING, 0, 0, false, (dst)                                                      \
  }
#define MRD_OPT_REDIS_URL(dst)                                                                     \
  {                                                                                                \
    "MERIDIAN_REDIS_URL", "redis-url", NULL, "Redis URL (redis://[user:password@]host:port[/db])", \
        MRD_CONFIG_STRING, 0, 0, false, (dst)                                                      \
  }
#define MRD_OPT_KAFKA_BROKERS(dst)                                                                 \
  {                                                                                                \
    "MERIDIAN_KAFKA_BROKERS", "kafka-brokers", NULL, "Kafka bootstrap servers (host:port,...)",    \
        MRD_CONFIG_STRING, 0, 0, false, (dst)                                                      \
  }
#define MRD_OPT_KAFKA_LINGER_MS(dst)                                                               \
  {                                                                                                \
    "MERIDIAN_KAFKA_LINGER_MS", "kafka-linger-ms", "1", "producer linger.ms", MRD_CONFIG_INT, 0,   \
        10000, false, (dst)                                                                        \
  }
#define MRD_OPT_KAFKA_FETCH_WAIT_MS(dst)                                                           \
  {                                                                                                \
    "MERIDIAN_KAFKA_FETCH_WAIT_MS", "kafka-fetch-wait-ms", "100", "consumer fetch.wait.max.ms",    \
        MRD_CONFIG_INT, 1, 10000, false, (dst)                                                     \
  }
#define MRD_OPT_JWT_SECRET(dst)                                                                    \
  {                                                                                                \
    "MERIDIAN_JWT_SECRET", NULL, NULL, "HS256 key for client tokens (or a file in _FILE)",         \
        MRD_CONFIG_STRING, 0, 0, true, (dst)                                                       \
  }
#define MRD_OPT_ADMIN_PORT(def, dst)                                                               \
  {                                                                                                \
    "MERIDIAN_ADMIN_PORT", "admin-port", (def), "port of /healthz /readyz /metrics",               \
        MRD_CONFIG_INT, 1, 65535, false, (dst)                                                     \
  }
#define MRD_OPT_ADMIN_ADDR(dst)                                                                    \
  {                                                                                                \
    "MERIDIAN_ADMIN_ADDR", "admin-addr", "127.0.0.1", "address /healthz etc. bind to",             \
        MRD_CONFIG_STRING, 0, 0, false, (dst)                                                      \
  }

/* Test API (no service calls it): tests/common/test_config.c (mrd_config_log masks with it). */
/* value with the password of a URL's userinfo (`scheme://user:password@host` ->
 * `scheme://user:***@host`) or of a `password=` DSN keyword masked, in out (cap >=
 * strlen(value) + 4); value itself when there is nothing to mask or out is too small.
 * mrd_config_log applies it to every string option that is not a secret. Pure. */
MRD_EXPORT const char *mrd_config_mask_credentials(const char *value, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* MRD_CONFIG_H */
