/*
 * run_cmd.h: run one of the project's binaries in a child process and capture its exit
 * code, stdout and stderr (header-only, for tests). argv[0] is a path; no shell is involved.
 */
#ifndef MRD_RUN_CMD_H
#define MRD_RUN_CMD_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct run_result {
  int status;      /* exit code, or 128 + signal */
  char out[16384]; /* stdout, NUL-terminated, truncated to fit */
  char err[16384]; /* stderr, likewise */
} run_result;

static inline void run_slurp(int fd, char *buf, size_t cap) {
  size_t n = 0;
  for (;;) {
    char tmp[4096];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r <= 0) break;
    size_t take = (size_t)r;
    if (n + take > cap - 1) take = cap - 1 - n;
    memcpy(buf + n, tmp, take);
    n += take;
  }
  buf[n] = '\0';
}

/* Runs argv (NULL-terminated) with extra environment entries env ("K=V", NULL-terminated,
 * may be NULL; "K=" unsets K). Returns the heap result (free it), never NULL. */
static inline run_result *run_cmd(char *const argv[], const char *const env[]) {
  run_result *res = calloc(1, sizeof *res);
  if (res == NULL) abort();
  char outp[] = "/tmp/mrd-run-out-XXXXXX", errp[] = "/tmp/mrd-run-err-XXXXXX";
  int ofd = mkstemp(outp), efd = mkstemp(errp);
  if (ofd < 0 || efd < 0) abort();
  unlink(outp);
  unlink(errp);
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; env && env[i]; i++) {
      const char *eq = strchr(env[i], '=');
      if (eq == NULL) continue;
      char name[256];
      size_t len =
          (size_t)(eq - env[i]) < sizeof name - 1 ? (size_t)(eq - env[i]) : sizeof name - 1;
      memcpy(name, env[i], len);
      name[len] = '\0';
      if (eq[1] == '\0')
        unsetenv(name);
      else
        setenv(name, eq + 1, 1);
    }
    dup2(ofd, 1);
    dup2(efd, 2);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    execv(argv[0], argv);
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  lseek(ofd, 0, SEEK_SET);
  lseek(efd, 0, SEEK_SET);
  run_slurp(ofd, res->out, sizeof res->out);
  run_slurp(efd, res->err, sizeof res->err);
  close(ofd);
  close(efd);
  return res;
}

/* The path of a project binary in this build (build/<preset>/bin/NAME); static storage. */
static inline const char *run_bin(const char *name) {
  static char path[4096];
  const char *dir = getenv("MERIDIAN_BINARY_DIR");
  snprintf(path, sizeof path, "%s/bin/%s", dir ? dir : ".", name);
  return path;
}

#endif
