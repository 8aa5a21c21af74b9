/* mctl.h: what the verbs of meridianctl share. Each verb is `int mctl_<verb>_main(argc, argv)`
 * with argv[0] the verb's name; it returns the exit code (0 ok, 1 failure, 2 bad usage). */
#ifndef MCTL_H
#define MCTL_H

int mctl_db_main(int argc, char **argv);
int mctl_token_main(int argc, char **argv);
int mctl_fares_main(int argc, char **argv); /* fares.c */
int mctl_shards_main(int argc, char **argv);

#endif
