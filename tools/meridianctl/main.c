/*
 * meridianctl: Meridian's ops command line. One verb per concern (db, token, graph, ...);
 * each verb has its own --help. Bad usage exits 2 with one clear line.
 */
#include <stdio.h>
#include <string.h>

#include "graph.h"
#include "mctl.h"

typedef struct verb {
  const char *name;
  int (*main)(int argc, char **argv);
  const char *help;
} verb;

static const verb VERBS[] = {
    {"db", mctl_db_main, "database migrations: migrate, status"},
    {"token", mctl_token_main, "mint a development JWT: --role R --sub ID [--ttl S]"},
    {"graph", mctl_graph_main, "road graph: import, export, status, calibrate, eta-report"},
    {"fares", mctl_fares_main, "metered fares: report --trips CSV [--tariff FILE] [--json]"},
    {"shards", mctl_shards_main, "shard map: show, plan, apply, move, history (live rebalancing)"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: meridianctl <verb> [args]   (meridianctl <verb> --help for more)\n\nverbs:\n");
  for (size_t i = 0; i < sizeof VERBS / sizeof VERBS[0]; i++)
    fprintf(f, "  %-8s %s\n", VERBS[i].name, VERBS[i].help);
  fprintf(
      f,
      "\nenvironment: MERIDIAN_PG_DSN, MERIDIAN_REDIS_URL, MERIDIAN_JWT_SECRET (see .run/env)\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof VERBS / sizeof VERBS[0]; i++)
    if (strcmp(argv[1], VERBS[i].name) == 0) return VERBS[i].main(argc - 1, argv + 1);
  fprintf(stderr, "meridianctl: unknown verb \"%s\" (try meridianctl --help)\n", argv[1]);
  return 2;
}
