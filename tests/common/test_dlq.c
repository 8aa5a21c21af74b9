/* test_dlq.c: the retry-or-park decision of mrd/dlq.h (pure, no server): SQLSTATE
 * classification, the decision table, the backoff and the dead-letter headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mrd/dlq.h"

static void test_dlq_sqlstate_classes(void **state) {
  (void)state;
  static const struct {
    const char *sqlstate;
    bool lost;
    mrd_failure want;
  } rows[] = {
      {"23505", false, MRD_FAIL_CONSTRAINT}, /* unique_violation: the poison event */
      {"23503", false, MRD_FAIL_CONSTRAINT}, /* foreign key */
      {"23514", false, MRD_FAIL_CONSTRAINT}, /* check */
      {"22P02", false, MRD_FAIL_DATA},       /* invalid text representation */
      {"22003", false, MRD_FAIL_DATA},       /* numeric out of range */
      {"40001", false, MRD_FAIL_TRANSIENT},  /* serialization failure */
      {"40P01", false, MRD_FAIL_TRANSIENT},  /* deadlock */
      {"55P03", false, MRD_FAIL_TRANSIENT},  /* lock not available */
      {"57014", false, MRD_FAIL_TRANSIENT},  /* statement time-out */
      {"XX000", false, MRD_FAIL_TRANSIENT},  /* internal error */
      {"08006", false, MRD_FAIL_OUTAGE},     /* connection failure */
      {"57P01", false, MRD_FAIL_OUTAGE},     /* admin shutdown */
      {"53100", false, MRD_FAIL_OUTAGE},     /* disk full */
      {"42501", false, MRD_FAIL_OUTAGE},     /* insufficient privilege: every event alike */
      {"42P01", false, MRD_FAIL_OUTAGE},     /* undefined table: not migrated */
      {"28P01", false, MRD_FAIL_OUTAGE},     /* bad password */
      {"3D000", false, MRD_FAIL_OUTAGE},     /* no such database */
      {"", false, MRD_FAIL_OUTAGE},          /* no SQLSTATE: not from the server */
      {"2350", false, MRD_FAIL_OUTAGE},      /* malformed */
      {"23505", true, MRD_FAIL_OUTAGE},      /* the connection was lost: that wins */
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    mrd_failure got = mrd_failure_of_sqlstate(rows[i].sqlstate, rows[i].lost);
    if (got != rows[i].want)
      fail_msg("sqlstate %s lost=%d: got %s, want %s", rows[i].sqlstate, rows[i].lost,
               mrd_failure_name(got), mrd_failure_name(rows[i].want));
  }
  assert_int_equal(mrd_failure_of_sqlstate(NULL, false), MRD_FAIL_OUTAGE);
}

static void test_dlq_message_failures_park_at_once(void **state) {
  (void)state;
  mrd_retry_policy p = {5, 100, 5000};
  mrd_failure f[] = {MRD_FAIL_DECODE, MRD_FAIL_INVALID, MRD_FAIL_CONSTRAINT, MRD_FAIL_DATA};
  for (size_t i = 0; i < 4; i++) {
    mrd_retry_verdict v = mrd_retry_decide(&p, f[i], 1);
    assert_int_equal(v.action, MRD_PARK);
    assert_int_equal(v.wait_ms, 0);
  }
}

static void test_dlq_transient_retries_bounded_then_parks(void **state) {
  (void)state;
  mrd_retry_policy p = {4, 100, 250};
  int64_t want[] = {100, 200, 250};
  for (int a = 1; a <= 3; a++) {
    mrd_retry_verdict v = mrd_retry_decide(&p, MRD_FAIL_TRANSIENT, a);
    assert_int_equal(v.action, MRD_RETRY);
    assert_int_equal(v.wait_ms, want[a - 1]);
  }
  assert_int_equal(mrd_retry_decide(&p, MRD_FAIL_TRANSIENT, 4).action, MRD_PARK);
  assert_int_equal(mrd_retry_decide(&p, MRD_FAIL_TRANSIENT, 400).action, MRD_PARK);
  mrd_retry_policy once = {1, 10, 10};
  assert_int_equal(mrd_retry_decide(&once, MRD_FAIL_TRANSIENT, 1).action, MRD_PARK);
}

static void test_dlq_outage_never_parks(void **state) {
  (void)state;
  mrd_retry_policy p = {3, 100, 5000};
  for (int a = 1; a < 100000; a = a * 3 + 1) {
    mrd_retry_verdict v = mrd_retry_decide(&p, MRD_FAIL_OUTAGE, a);
    assert_int_equal(v.action, MRD_RETRY);
    assert_true(v.wait_ms >= 100 && v.wait_ms <= 5000);
  }
  assert_int_equal(mrd_retry_decide(&p, MRD_FAIL_OUTAGE, 1 << 30).wait_ms, 5000);
  /* a failure out of range is an outage: retried, never parked */
  assert_int_equal(mrd_retry_decide(&p, (mrd_failure)99, 50).action, MRD_RETRY);
}

static void test_dlq_invalid_policy_falls_back_to_default(void **state) {
  (void)state;
  mrd_retry_policy bad[] = {{0, 100, 5000}, {5, 0, 5000}, {5, 100, 50}};
  mrd_retry_policy def = MRD_RETRY_POLICY_DEFAULT;
  assert_true(mrd_retry_policy_valid(&def));
  assert_false(mrd_retry_policy_valid(NULL));
  for (size_t i = 0; i < 3; i++) {
    assert_false(mrd_retry_policy_valid(&bad[i]));
    mrd_retry_verdict v = mrd_retry_decide(&bad[i], MRD_FAIL_TRANSIENT, 1);
    assert_int_equal(v.action, MRD_RETRY);
    assert_int_equal(v.wait_ms, def.backoff_min_ms);
    assert_int_equal(mrd_retry_decide(&bad[i], MRD_FAIL_TRANSIENT, def.max_attempts).action,
                     MRD_PARK);
  }
  assert_int_equal(mrd_retry_decide(NULL, MRD_FAIL_DECODE, 0).action, MRD_PARK);
}

static const char *hdr(const mrd_kafka_header *h, int n, const char *name, char *out) {
  for (int i = 0; i < n; i++)
    if (strcmp(h[i].name, name) == 0) {
      memcpy(out, h[i].value, h[i].len);
      out[h[i].len] = '\0';
      return out;
    }
  return NULL;
}

static void test_dlq_headers_say_who_why_and_where(void **state) {
  (void)state;
  char longerr[400];
  memset(longerr, 'e', sizeof longerr - 1);
  longerr[sizeof longerr - 1] = '\0';
  mrd_dlq_record r = {.consumer = "trips",
                      .reason = MRD_FAIL_CONSTRAINT,
                      .error = "duplicate key value violates unique constraint",
                      .attempts = 1,
                      .topic = "dispatch-events",
                      .partition = 17,
                      .offset = 123456789012LL,
                      .value = "x",
                      .value_len = 1};
  mrd_kafka_header h[MRD_DLQ_HEADERS];
  char buf[MRD_DLQ_HEADER_BUF], v[300];
  int n = mrd_dlq_headers(&r, 1700000000123LL, h, buf);
  assert_int_equal(n, MRD_DLQ_HEADERS);
  assert_string_equal(hdr(h, n, "dlq-version", v), "1");
  assert_string_equal(hdr(h, n, "dlq-consumer", v), "trips");
  assert_string_equal(hdr(h, n, "dlq-reason", v), "constraint");
  assert_string_equal(hdr(h, n, "dlq-error", v), "duplicate key value violates unique constraint");
  assert_string_equal(hdr(h, n, "dlq-attempts", v), "1");
  assert_string_equal(hdr(h, n, "dlq-topic", v), "dispatch-events");
  assert_string_equal(hdr(h, n, "dlq-partition", v), "17");
  assert_string_equal(hdr(h, n, "dlq-offset", v), "123456789012");
  assert_string_equal(hdr(h, n, "dlq-parked-at-ms", v), "1700000000123");
  r.error = longerr; /* cut to 200 bytes */
  r.reason = MRD_FAIL_TRANSIENT;
  assert_int_equal(mrd_dlq_headers(&r, 0, h, buf), MRD_DLQ_HEADERS);
  assert_int_equal(strlen(hdr(h, n, "dlq-error", v)), 200);
  assert_string_equal(hdr(h, n, "dlq-reason", v), "retries_exhausted");
  r.error = NULL;
  assert_int_equal(mrd_dlq_headers(&r, 0, h, buf), MRD_DLQ_HEADERS);
  assert_string_equal(hdr(h, n, "dlq-error", v), "");
  r.consumer = NULL;
  assert_int_equal(mrd_dlq_headers(&r, 0, h, buf), MRD_EINVAL);
  r.consumer = "gateway";
  r.topic = "";
  assert_int_equal(mrd_dlq_headers(&r, 0, h, buf), MRD_EINVAL);
  assert_int_equal(mrd_dlq_park(NULL, &r, NULL), MRD_EINVAL);
}

static void test_dlq_failure_names_are_the_metric_labels(void **state) {
  (void)state;
  assert_string_equal(mrd_failure_name(MRD_FAIL_DECODE), "decode");
  assert_string_equal(mrd_failure_name(MRD_FAIL_INVALID), "invalid");
  assert_string_equal(mrd_failure_name(MRD_FAIL_CONSTRAINT), "constraint");
  assert_string_equal(mrd_failure_name(MRD_FAIL_DATA), "data");
  assert_string_equal(mrd_failure_name(MRD_FAIL_TRANSIENT), "retries_exhausted");
  assert_string_equal(mrd_failure_name(MRD_FAIL_OUTAGE), "outage");
  assert_string_equal(mrd_failure_name(MRD_FAIL_COUNT), "unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dlq_sqlstate_classes),
      cmocka_unit_test(test_dlq_message_failures_park_at_once),
      cmocka_unit_test(test_dlq_transient_retries_bounded_then_parks),
      cmocka_unit_test(test_dlq_outage_never_parks),
      cmocka_unit_test(test_dlq_invalid_policy_falls_back_to_default),
      cmocka_unit_test(test_dlq_headers_say_who_why_and_where),
      cmocka_unit_test(test_dlq_failure_names_are_the_metric_labels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
