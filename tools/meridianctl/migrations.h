/* migrations.h: the SQL migrations embedded in meridianctl, and applying them. */
#ifndef MCTL_MIGRATIONS_H
#define MCTL_MIGRATIONS_H

#include <stddef.h>

typedef struct mctl_migration {
  int version;      /* NNNN of NNNN_name.sql */
  const char *name; /* NNNN_name */
  const char *sql;  /* the file's text */
} mctl_migration;

/* Every migration of schemas/sql, sorted by version (generated at build time). */
extern const mctl_migration mctl_migrations[];
extern const size_t mctl_migration_count;

/* `meridianctl db ...`: returns the process exit code. */
int mctl_db_main(int argc, char **argv);

#endif
