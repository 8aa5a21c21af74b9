/*
 * token.c: `meridianctl token --role R --sub ID [--ttl S]`, a development JWT.
 *
 * Prints one HS256 token signed with MERIDIAN_JWT_SECRET (or MERIDIAN_JWT_SECRET_FILE), the
 * same secret the gateway verifies with. For development, tests and the load generator; a
 * production deployment mints tokens in its own identity service. It refuses what the
 * gateway would refuse, with the gateway's own check (gw_token_check, services/gateway/
 * auth.h): a sub that is not an id, a role without an endpoint, a ttl above the
 * gateway's maximum lifetime (MERIDIAN_GW_TOKEN_MAX_LIFETIME, 24 h by default).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "mctl.h"
#include "mrd/config.h"
#include "mrd/err.h"
#include "mrd/jwt.h"

static void token_usage(FILE *f) {
  fprintf(f, "usage: meridianctl token --role driver|rider|ops --sub ID [--ttl SECONDS]\n"
             "  prints an HS256 JWT signed with MERIDIAN_JWT_SECRET (or the file named by\n"
             "  MERIDIAN_JWT_SECRET_FILE); --ttl defaults to 3600 s. Refuses what the gateway\n"
             "  refuses: a sub outside [A-Za-z0-9_.:-] or longer than 64 bytes, a role other\n"
             "  than driver, rider or ops, a ttl above MERIDIAN_GW_TOKEN_MAX_LIFETIME (24h)\n");
}

/* Reads the secret from the environment or the file it names; returns a heap string. */
static char *load_secret(void) {
  const char *s = getenv("MERIDIAN_JWT_SECRET");
  if (s && *s) return strdup(s);
  const char *path = getenv("MERIDIAN_JWT_SECRET_FILE");
  if (path == NULL || *path == '\0') return NULL;
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "meridianctl token: MERIDIAN_JWT_SECRET_FILE: cannot read %s: %s\n", path,
            strerror(errno));
    return NULL;
  }
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
  buf[n] = '\0';
  return n ? strdup(buf) : NULL;
}

/* The gateway's maximum token lifetime in seconds, read as the gateway reads it. */
static int max_lifetime_s(int64_t *out) {
  int64_t ms = 0;
  mrd_config_opt opt = {"MERIDIAN_GW_TOKEN_MAX_LIFETIME",
                        NULL,
                        "24h",
                        "longest token lifetime",
                        MRD_CONFIG_DURATION_MS,
                        1000,
                        31622400000.0,
                        false,
                        &ms};
  mrd_config_spec spec = {"meridianctl token", "", &opt, 1};
  char *argv0[] = {"meridianctl", NULL};
  bool help = false;
  char err[256];
  if (mrd_config_parse(&spec, 1, argv0, &help, err, sizeof err) != 0) {
    fprintf(stderr, "meridianctl token: %s\n", err);
    return -1;
  }
  *out = ms / 1000;
  return 0;
}

int mctl_token_main(int argc, char **argv) {
  const char *role_s = NULL, *sub = NULL;
  long long ttl = 3600;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      token_usage(stdout);
      return 0;
    } else if (strcmp(a, "--role") == 0 && v) {
      role_s = v;
      i++;
    } else if (strcmp(a, "--sub") == 0 && v) {
      sub = v;
      i++;
    } else if (strcmp(a, "--ttl") == 0 && v) {
      char *end;
      errno = 0;
      ttl = strtoll(v, &end, 10);
      if (errno || end == v || *end || ttl <= 0 || ttl > 366LL * 86400) {
        fprintf(stderr,
                "meridianctl token: --ttl: \"%s\" is not a number of seconds in [1, 31622400]\n",
                v);
        return 2;
      }
      i++;
    } else {
      fprintf(stderr, "meridianctl token: unknown or incomplete argument \"%s\" (try --help)\n", a);
      return 2;
    }
  }
  mrd_role role = MRD_ROLE_ANY;
  if (role_s == NULL || mrd_role_parse(role_s, &role) != 0 ||
      gw_token_check("x", role, 1, 1) == GW_TOKEN_BAD_ROLE) {
    fprintf(stderr,
            "meridianctl token: --role must be driver, rider or ops (the gateway's endpoints)\n");
    return 2;
  }
  if (sub == NULL || *sub == '\0') {
    fprintf(stderr, "meridianctl token: --sub ID is required\n");
    return 2;
  }
  int64_t max_s = 0;
  if (max_lifetime_s(&max_s) != 0) return 2;
  gw_token_verdict v = gw_token_check(sub, role, ttl, max_s);
  if (v != GW_TOKEN_OK) {
    if (v == GW_TOKEN_TOO_LONG)
      fprintf(stderr,
              "meridianctl token: --ttl %lld: %s (%lld s, MERIDIAN_GW_TOKEN_MAX_LIFETIME)\n", ttl,
              gw_token_verdict_text(v), (long long)max_s);
    else
      fprintf(stderr, "meridianctl token: --sub \"%s\": %s; the gateway would refuse it\n", sub,
              gw_token_verdict_text(v));
    return 2;
  }
  char *secret = load_secret();
  if (secret == NULL) {
    fprintf(stderr, "meridianctl token: MERIDIAN_JWT_SECRET is not set (source .run/env)\n");
    return 2;
  }
  char *tok = NULL;
  int rc = mrd_jwt_mint(secret, strlen(secret), sub, role, ttl, (int64_t)time(NULL), &tok);
  free(secret);
  if (rc != 0) {
    fprintf(stderr, "meridianctl token: %s\n", mrd_strerror(rc));
    return 1;
  }
  printf("%s\n", tok);
  free(tok);
  return 0;
}
