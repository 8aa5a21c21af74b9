/* test_config.c: mrd_config_parse on a table shaped like a service's, for every source
 * (default, environment, flag, secret file) and every kind of error line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mrd/config.h"
#include "mrd/log.h"

#include <sys/wait.h>

static int port;
static double halo_km;
static char *pg_dsn;
static bool ops_enabled;
static int64_t offer_ttl_ms;
static char *jwt_secret;

static mrd_config_opt opts[] = {
    {"MERIDIAN_TEST_PORT", "port", "8080", "WebSocket port", MRD_CONFIG_INT, 1, 65535, false,
     &port},
    {"MERIDIAN_TEST_HALO_KM", "halo-km", "1.0", "halo width", MRD_CONFIG_DOUBLE, 0, 50, false,
     &halo_km},
    {"MERIDIAN_TEST_PG_DSN", "pg-dsn", NULL, "PostgreSQL DSN", MRD_CONFIG_STRING, 0, 0, false,
     &pg_dsn},
    {"MERIDIAN_TEST_OPS", "ops", "false", "serve /v1/ops", MRD_CONFIG_BOOL, 0, 0, false,
     &ops_enabled},
    {"MERIDIAN_TEST_OFFER_TTL", "offer-ttl", "10s", "offer expiry", MRD_CONFIG_DURATION_MS, 100,
     600000, false, &offer_ttl_ms},
    {"MERIDIAN_TEST_JWT_SECRET", NULL, "dev-secret", "HS256 key", MRD_CONFIG_STRING, 0, 0, true,
     &jwt_secret},
};
static const mrd_config_spec spec = {"meridian-test", "a test service", opts,
                                     sizeof opts / sizeof opts[0]};

static char err[256];

static int setup(void **state) {
  (void)state;
  static const char *const vars[] = {"MERIDIAN_TEST_PORT",           "MERIDIAN_TEST_HALO_KM",
                                     "MERIDIAN_TEST_PG_DSN",         "MERIDIAN_TEST_OPS",
                                     "MERIDIAN_TEST_OFFER_TTL",      "MERIDIAN_TEST_JWT_SECRET",
                                     "MERIDIAN_TEST_JWT_SECRET_FILE"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  setenv("MERIDIAN_TEST_PG_DSN", "postgresql://x", 1);
  err[0] = '\0';
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mrd_config_release(&spec);
  return 0;
}

static int parse(int argc, char **argv) {
  bool help = false;
  int rc = mrd_config_parse(&spec, argc, argv, &help, err, sizeof err);
  assert_false(help);
  return rc;
}

static void test_config_defaults_fill_every_type(void **state) {
  (void)state;
  char *argv[] = {"prog"};
  assert_int_equal(parse(1, argv), 0);
  assert_int_equal(port, 8080);
  assert_true(halo_km == 1.0);
  assert_string_equal(pg_dsn, "postgresql://x");
  assert_false(ops_enabled);
  assert_int_equal(offer_ttl_ms, 10000);
  assert_string_equal(jwt_secret, "dev-secret");
}

static void test_config_env_then_flags_override(void **state) {
  (void)state;
  setenv("MERIDIAN_TEST_PORT", "9000", 1);
  setenv("MERIDIAN_TEST_OFFER_TTL", "250ms", 1);
  setenv("MERIDIAN_TEST_OPS", "yes", 1);
  char *argv[] = {"prog", "--port=9100", "--halo-km", "2.5", "--offer-ttl=2m"};
  assert_int_equal(parse(5, argv), 0);
  assert_int_equal(port, 9100);
  assert_true(halo_km == 2.5);
  assert_true(ops_enabled);
  assert_int_equal(offer_ttl_ms, 120000);
}

static void test_config_bool_flag_alone_means_true(void **state) {
  (void)state;
  char *argv[] = {"prog", "--ops"};
  assert_int_equal(parse(2, argv), 0);
  assert_true(ops_enabled);
}

static void test_config_missing_required_names_variable(void **state) {
  (void)state;
  unsetenv("MERIDIAN_TEST_PG_DSN");
  char *argv[] = {"prog"};
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_PG_DSN: required but not set");
}

static void test_config_malformed_integer_names_variable_and_value(void **state) {
  (void)state;
  setenv("MERIDIAN_TEST_PORT", "abc", 1);
  char *argv[] = {"prog"};
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_PORT: \"abc\" is not an integer");
  setenv("MERIDIAN_TEST_PORT", "80x", 1);
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_PORT: \"80x\" is not an integer");
}

static void test_config_out_of_range_integer_gives_range(void **state) {
  (void)state;
  setenv("MERIDIAN_TEST_PORT", "70000", 1);
  char *argv[] = {"prog"};
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_PORT: 70000 is out of range [1, 65535]");
  setenv("MERIDIAN_TEST_PORT", "99999999999999999999", 1);
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_non_null(strstr(err, "MERIDIAN_TEST_PORT: "));
  assert_non_null(strstr(err, "out of range"));
}

static void test_config_bad_flag_value_names_variable_and_flag(void **state) {
  (void)state;
  char *argv[] = {"prog", "--port=0"};
  assert_int_equal(parse(2, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_PORT: 0 is out of range [1, 65535] (from --port)");
}

static void test_config_malformed_and_out_of_range_double(void **state) {
  (void)state;
  char *argv[] = {"prog"};
  setenv("MERIDIAN_TEST_HALO_KM", "1,5", 1);
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_HALO_KM: \"1,5\" is not a number");
  setenv("MERIDIAN_TEST_HALO_KM", "nan", 1);
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_HALO_KM: \"nan\" is not a number");
  setenv("MERIDIAN_TEST_HALO_KM", "51", 1);
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_HALO_KM: 51 is out of range [0, 50]");
}

static void test_config_malformed_and_out_of_range_duration(void **state) {
  (void)state;
  char *argv[] = {"prog"};
  setenv("MERIDIAN_TEST_OFFER_TTL", "10 parsecs", 1);
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(
      err, "MERIDIAN_TEST_OFFER_TTL: \"10 parsecs\" is not a duration (like 250ms, 5s, 2m)");
  setenv("MERIDIAN_TEST_OFFER_TTL", "-5s", 1);
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  setenv("MERIDIAN_TEST_OFFER_TTL", "50ms", 1);
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_OFFER_TTL: 50ms is out of range [100ms, 600000ms]");
  setenv("MERIDIAN_TEST_OFFER_TTL", "1.5s", 1);
  assert_int_equal(parse(1, argv), 0);
  assert_int_equal(offer_ttl_ms, 1500);
}

static void test_config_malformed_bool(void **state) {
  (void)state;
  setenv("MERIDIAN_TEST_OPS", "maybe", 1);
  char *argv[] = {"prog"};
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_OPS: \"maybe\" is not a boolean (true/false)");
}

static void test_config_unknown_flag_and_positional_refused(void **state) {
  (void)state;
  char *argv1[] = {"prog", "--prot=1"};
  assert_int_equal(parse(2, argv1), MRD_EINVAL);
  assert_string_equal(err, "--prot: unknown flag (see --help)");
  char *argv2[] = {"prog", "stray"};
  assert_int_equal(parse(2, argv2), MRD_EINVAL);
  assert_non_null(strstr(err, "stray"));
  char *argv3[] = {"prog", "--port"};
  assert_int_equal(parse(2, argv3), MRD_EINVAL);
  assert_string_equal(err, "MERIDIAN_TEST_PORT: --port needs a value");
}

static void test_config_secret_has_no_flag(void **state) {
  (void)state;
  char *argv[] = {"prog", "--jwt-secret=x"};
  assert_int_equal(parse(2, argv), MRD_EINVAL);
  assert_string_equal(err, "--jwt-secret: unknown flag (see --help)");
}

static void test_config_secret_read_from_file_without_newline(void **state) {
  (void)state;
  char path[] = "/tmp/mrd_secret_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "s3cr3t\n", 7), 7);
  close(fd);
  setenv("MERIDIAN_TEST_JWT_SECRET_FILE", path, 1);
  char *argv[] = {"prog"};
  assert_int_equal(parse(1, argv), 0);
  assert_string_equal(jwt_secret, "s3cr3t");
  /* the environment variable itself wins over the file */
  setenv("MERIDIAN_TEST_JWT_SECRET", "from-env", 1);
  assert_int_equal(parse(1, argv), 0);
  assert_string_equal(jwt_secret, "from-env");
  unlink(path);
}

static void test_config_unreadable_secret_file_names_file_variable(void **state) {
  (void)state;
  setenv("MERIDIAN_TEST_JWT_SECRET_FILE", "/nonexistent/secret", 1);
  char *argv[] = {"prog"};
  assert_int_equal(parse(1, argv), MRD_EINVAL);
  assert_string_equal(err,
                      "MERIDIAN_TEST_JWT_SECRET_FILE: cannot read /nonexistent/secret: No such "
                      "file or directory");
}

static void test_config_help_flag_reported_not_validated(void **state) {
  (void)state;
  setenv("MERIDIAN_TEST_PORT", "abc", 1);
  char *argv[] = {"prog", "--bogus", "--help"};
  bool help = false;
  assert_int_equal(mrd_config_parse(&spec, 3, argv, &help, err, sizeof err), 0);
  assert_true(help);
}

static void test_config_help_lists_every_variable_and_default(void **state) {
  (void)state;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_non_null(f);
  mrd_config_print_help(&spec, f);
  fclose(f);
  for (size_t i = 0; i < spec.n_opts; i++) assert_non_null(strstr(text, opts[i].env));
  assert_non_null(strstr(text, "--port=INT"));
  assert_non_null(strstr(text, "range 1..65535"));
  assert_non_null(strstr(text, "MERIDIAN_TEST_JWT_SECRET_FILE"));
  assert_null(strstr(text, "dev-secret")); /* a secret's default is not printed */
  free(text);
}

static char logged[2048];
static void capture(const char *line, size_t len, void *ud) {
  (void)ud;
  snprintf(logged, sizeof logged, "%.*s", (int)len, line);
}

static void test_config_log_masks_secrets(void **state) {
  (void)state;
  setenv("MERIDIAN_TEST_JWT_SECRET", "topsecret", 1);
  setenv("MERIDIAN_TEST_PG_DSN", "postgresql://h/db name", 1);
  char *argv[] = {"prog"};
  assert_int_equal(parse(1, argv), 0);
  mrd_log_set_writer(capture, NULL);
  mrd_config_log(&spec);
  mrd_log_set_writer(NULL, NULL);
  assert_null(strstr(logged, "topsecret"));
  assert_non_null(strstr(logged, " MERIDIAN_TEST_JWT_SECRET=***"));
  assert_non_null(strstr(logged, " MERIDIAN_TEST_PORT=8080"));
  assert_non_null(strstr(logged, " MERIDIAN_TEST_PG_DSN=\"postgresql://h/db name\""));
  assert_non_null(strstr(logged, " MERIDIAN_TEST_OFFER_TTL=10000ms"));
}

/* Runs mrd_config_load_or_exit in a child; returns its exit status and stderr. */
static int run_load_or_exit(char **argv, int argc, char *out, size_t cap) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    mrd_config_load_or_exit(&spec, argc, argv);
    mrd_config_release(&spec);
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
  out[n] = '\0';
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static void test_config_load_or_exit_exits_2_with_one_line(void **state) {
  (void)state;
  setenv("MERIDIAN_TEST_PORT", "abc", 1);
  char out[1024];
  char *argv[] = {"prog"};
  assert_int_equal(run_load_or_exit(argv, 1, out, sizeof out), 2);
  assert_string_equal(out, "MERIDIAN_TEST_PORT: \"abc\" is not an integer\n");
}

static void test_config_load_or_exit_help_exits_0(void **state) {
  (void)state;
  char out[4096];
  char *argv[] = {"prog", "--help"};
  assert_int_equal(run_load_or_exit(argv, 2, out, sizeof out), 0);
  assert_non_null(strstr(out, "usage: meridian-test"));
}

static void test_config_shared_rows_parse_with_their_defaults(void **state) {
  (void)state;
  char *level = NULL, *brokers = NULL, *secret = NULL;
  int linger = -1, fetch_wait = -1, admin_port = -1;
  mrd_config_opt shared[] = {
      MRD_OPT_LOG_LEVEL(&level),        MRD_OPT_KAFKA_BROKERS(&brokers),
      MRD_OPT_KAFKA_LINGER_MS(&linger), MRD_OPT_KAFKA_FETCH_WAIT_MS(&fetch_wait),
      MRD_OPT_JWT_SECRET(&secret),      MRD_OPT_ADMIN_PORT("9102", &admin_port),
  };
  mrd_config_spec s = {"svc", NULL, shared, sizeof shared / sizeof shared[0]};
  setenv("MERIDIAN_KAFKA_BROKERS", "127.0.0.1:1", 1);
  setenv("MERIDIAN_JWT_SECRET", "k", 1);
  unsetenv("MERIDIAN_KAFKA_LINGER_MS");
  unsetenv("MERIDIAN_KAFKA_FETCH_WAIT_MS");
  char *argv[] = {"prog", "--kafka-fetch-wait-ms=20"};
  bool help = false;
  assert_int_equal(mrd_config_parse(&s, 2, argv, &help, err, sizeof err), 0);
  assert_string_equal(level, "info");
  assert_int_equal(linger, 1);
  assert_int_equal(fetch_wait, 20);
  assert_int_equal(admin_port, 9102);
  assert_string_equal(secret, "k");
  unsetenv("MERIDIAN_JWT_SECRET");
  assert_int_equal(mrd_config_parse(&s, 1, argv, &help, err, sizeof err), MRD_EINVAL);
  assert_string_equal(err,
                      "MERIDIAN_JWT_SECRET: required but not set (nor MERIDIAN_JWT_SECRET_FILE)");
  unsetenv("MERIDIAN_KAFKA_BROKERS");
  mrd_config_release(&s);
  assert_null(level);
}

static void test_config_log_masks_credentials_in_urls(void **state) {
  (void)state;
  char out[256];
  assert_string_equal(
      mrd_config_mask_credentials("postgresql://meridian_app:s3cret@127.0.0.1:5432/meridian", out,
                                  sizeof out),
      "postgresql://meridian_app:***@127.0.0.1:5432/meridian");
  assert_string_equal(
      mrd_config_mask_credentials("redis://meridian-app:p%40ss@h:1/2", out, sizeof out),
      "redis://meridian-app:***@h:1/2");
  assert_string_equal(mrd_config_mask_credentials("redis://:pw@h", out, sizeof out),
                      "redis://:***@h");
  assert_string_equal(
      mrd_config_mask_credentials("host=h user=u password=pw dbname=d", out, sizeof out),
      "host=h user=u password=*** dbname=d");
  /* nothing to mask */
  assert_string_equal(mrd_config_mask_credentials("postgresql://postgres@h/db", out, sizeof out),
                      "postgresql://postgres@h/db");
  assert_string_equal(mrd_config_mask_credentials("redis://h:1/a@b", out, sizeof out),
                      "redis://h:1/a@b");
  assert_string_equal(mrd_config_mask_credentials("info", out, sizeof out), "info");
  char tiny[4];
  const char *v = "redis://u:p@h";
  assert_ptr_equal(mrd_config_mask_credentials(v, tiny, sizeof tiny), v);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_config_defaults_fill_every_type),
      T(test_config_env_then_flags_override),
      T(test_config_bool_flag_alone_means_true),
      T(test_config_missing_required_names_variable),
      T(test_config_malformed_integer_names_variable_and_value),
      T(test_config_out_of_range_integer_gives_range),
      T(test_config_bad_flag_value_names_variable_and_flag),
      T(test_config_malformed_and_out_of_range_double),
      T(test_config_malformed_and_out_of_range_duration),
      T(test_config_malformed_bool),
      T(test_config_unknown_flag_and_positional_refused),
      T(test_config_secret_has_no_flag),
      T(test_config_secret_read_from_file_without_newline),
      T(test_config_unreadable_secret_file_names_file_variable),
      T(test_config_help_flag_reported_not_validated),
      T(test_config_help_lists_every_variable_and_default),
      T(test_config_log_masks_secrets),
      T(test_config_load_or_exit_exits_2_with_one_line),
      T(test_config_load_or_exit_help_exits_0),
      T(test_config_shared_rows_parse_with_their_defaults),
      cmocka_unit_test(test_config_log_masks_credentials_in_urls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
