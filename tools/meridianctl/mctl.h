/* mctl.h: what the verbs of meridianctl share. Each verb is `int mctl_<verb>_main(argc, argv)`
 * with argv[0] the verb's name; it returns the exit code (0 ok, 1 failure, 2 bad usage). */
#ifndef MCTL_H
#define MCTL_H

int mctl_db_main(int argc, char **argv);
int mctl_token_main(int argc, char **argv);
int mctl_fares_main(int argc, char **argv); /* fares.c */
int mctl_shards_main(int argc, char **argv);

/* The database the db and graph verbs work on when no --dsn is given: the owner's
 * MERIDIAN_PG_ADMIN_DSN when set (migrations and the graph import create and alter tables,
 * which the services' role meridian_app may not: docs/security.md), else MERIDIAN_PG_DSN.
 * NULL when neither is set. Inline: graph.c does not link db.c's object alone. */
#include <stdlib.h>
static inline const char *mctl_default_dsn(void) {
  const char *d = getenv("MERIDIAN_PG_ADMIN_DSN");
  if (d == NULL || *d == '\0') d = getenv("MERIDIAN_PG_DSN");
  return d && *d ? d : NULL;
}

#endif
