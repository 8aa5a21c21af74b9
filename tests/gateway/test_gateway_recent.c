/* test_gateway_recent.c: each user's latest event kept for the snapshot on connect
 * (recent.h): the newer of it and Redis' snapshot is shown, by seq within a trip and by
 * dispatch's timestamp across trips; late duplicates never replace a newer event; entries
 * expire after keep_ms and are swept; the table refuses past its cap. Pure, no sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "recent.h"

static mrd_dispatch_event event(const char *trip, uint64_t seq, int64_t ts_ms, mrd_trip_status st) {
  mrd_dispatch_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = st == MRD_TRIP_COMPLETED ? MRD_EV_COMPLETED : MRD_EV_STARTED;
  snprintf(ev.trip_id, sizeof ev.trip_id, "%s", trip);
  snprintf(ev.rider_id, sizeof ev.rider_id, "r1");
  snprintf(ev.driver_id, sizeof ev.driver_id, "d1");
  ev.seq = seq;
  ev.ts_ms = ts_ms;
  ev.status = st;
  return ev;
}

/* The chaos replay's case: Redis still shows `started` when the rider connects, the
 * `completed` went by before he was registered. */
static void test_the_newer_of_redis_and_the_event_kept_is_shown(void **state) {
  (void)state;
  gw_recent *r = gw_recent_new(16, 30000);
  assert_non_null(r);
  mrd_dispatch_event started = event("t0-a-1", 5, 1000, MRD_TRIP_STARTED);
  mrd_dispatch_event completed = event("t0-a-1", 6, 2000, MRD_TRIP_COMPLETED);
  /* nothing kept: Redis' snapshot, or nothing */
  assert_ptr_equal(gw_recent_pick(r, GW_ROLE_RIDER, "r1", &started, 0), &started);
  assert_null(gw_recent_pick(r, GW_ROLE_RIDER, "r1", NULL, 0));
  assert_int_equal(gw_recent_put(r, GW_ROLE_RIDER, "r1", &completed, 100), 0);
  const mrd_dispatch_event *shown = gw_recent_pick(r, GW_ROLE_RIDER, "r1", &started, 200);
  assert_non_null(shown);
  assert_int_equal(shown->seq, 6);
  assert_int_equal(shown->status, MRD_TRIP_COMPLETED);
  /* Redis has caught up (or is ahead): its snapshot */
  mrd_dispatch_event later = event("t0-a-1", 7, 2500, MRD_TRIP_COMPLETED);
  assert_ptr_equal(gw_recent_pick(r, GW_ROLE_RIDER, "r1", &later, 200), &later);
  /* no snapshot in Redis at all: the event kept */
  assert_int_equal(gw_recent_pick(r, GW_ROLE_RIDER, "r1", NULL, 200)->seq, 6);
  /* the same user in the other role, and another user, have nothing kept */
  assert_null(gw_recent_pick(r, GW_ROLE_DRIVER, "r1", NULL, 200));
  assert_null(gw_recent_pick(r, GW_ROLE_RIDER, "r2", NULL, 200));
  gw_recent_free(r);
}

static void test_across_trips_the_later_timestamp_wins(void **state) {
  (void)state;
  gw_recent *r = gw_recent_new(16, 30000);
  mrd_dispatch_event old_trip = event("t0-a-1", 6, 2000, MRD_TRIP_COMPLETED);
  mrd_dispatch_event new_trip = event("t1-b-1", 2, 5000, MRD_TRIP_STARTED);
  assert_int_equal(gw_recent_put(r, GW_ROLE_DRIVER, "d1", &new_trip, 100), 0);
  assert_string_equal(gw_recent_pick(r, GW_ROLE_DRIVER, "d1", &old_trip, 100)->trip_id, "t1-b-1");
  /* Redis shows a newer trip than the event kept: Redis */
  mrd_dispatch_event newest = event("t0-c-1", 1, 9000, MRD_TRIP_STARTED);
  assert_ptr_equal(gw_recent_pick(r, GW_ROLE_DRIVER, "d1", &newest, 100), &newest);
  gw_recent_free(r);
}

static void test_a_late_duplicate_never_replaces_a_newer_event(void **state) {
  (void)state;
  gw_recent *r = gw_recent_new(16, 30000);
  mrd_dispatch_event s6 = event("t0-a-1", 6, 2000, MRD_TRIP_COMPLETED);
  mrd_dispatch_event s5 = event("t0-a-1", 5, 1000, MRD_TRIP_STARTED);
  assert_int_equal(gw_recent_put(r, GW_ROLE_RIDER, "r1", &s6, 100), 0);
  assert_int_equal(gw_recent_put(r, GW_ROLE_RIDER, "r1", &s5, 110), 0);
  assert_int_equal(gw_recent_pick(r, GW_ROLE_RIDER, "r1", NULL, 120)->seq, 6);
  assert_int_equal(gw_recent_len(r), 1);
  gw_recent_free(r);
}

static void test_entries_expire_are_swept_and_the_cap_holds(void **state) {
  (void)state;
  gw_recent *r = gw_recent_new(3, 1000);
  mrd_dispatch_event ev = event("t0-a-1", 1, 1000, MRD_TRIP_STARTED);
  assert_int_equal(gw_recent_put(r, GW_ROLE_RIDER, "u1", &ev, 0), 0);
  assert_int_equal(gw_recent_put(r, GW_ROLE_RIDER, "u2", &ev, 0), 0);
  assert_int_equal(gw_recent_put(r, GW_ROLE_RIDER, "u3", &ev, 0), 0);
  assert_int_equal(gw_recent_put(r, GW_ROLE_RIDER, "u4", &ev, 500), -1); /* full of live ones */
  assert_null(gw_recent_pick(r, GW_ROLE_RIDER, "u4", NULL, 500));
  /* kept keep_ms, then no longer shown */
  assert_non_null(gw_recent_pick(r, GW_ROLE_RIDER, "u1", NULL, 1000));
  assert_null(gw_recent_pick(r, GW_ROLE_RIDER, "u1", NULL, 1001));
  /* puts sweep every bucket in turn: after enough of them the expired ones are gone */
  for (int i = 0; i < 4096; i++) gw_recent_put(r, GW_ROLE_DRIVER, "d", &ev, 5000);
  assert_int_equal(gw_recent_len(r), 1);
  assert_int_equal(gw_recent_put(r, GW_ROLE_RIDER, "u4", &ev, 5000), 0);
  /* bad arguments */
  assert_null(gw_recent_new(0, 1000));
  assert_null(gw_recent_new(4, 0));
  char long_user[MRD_ID_MAX + 2];
  memset(long_user, 'x', sizeof long_user - 1);
  long_user[sizeof long_user - 1] = '\0';
  assert_int_equal(gw_recent_put(r, GW_ROLE_RIDER, long_user, &ev, 5000), -1);
  gw_recent_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_the_newer_of_redis_and_the_event_kept_is_shown),
      cmocka_unit_test(test_across_trips_the_later_timestamp_wins),
      cmocka_unit_test(test_a_late_duplicate_never_replaces_a_newer_event),
      cmocka_unit_test(test_entries_expire_are_swept_and_the_cap_holds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
