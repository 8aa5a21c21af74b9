/*
 * test_dispatch_claims_redis.c (integration): the Redis claim store against real
 * redis-servers: the stack's (MERIDIAN_REDIS_URL) for the claim rules and for two shards
 * contending for one halo driver, and a private one on a port of the dispatch range
 * (25000-25999), killed and restarted, for the in-memory fallback and the way back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "../integration/itest.h"
#include "claims_redis.h"
#include "lease_pg.h"
#include "dsp_fixture.h"

static char g_prefix[64];

static mrd_redis *stack_redis(void) {
  mrd_redis *r = NULL;
  assert_int_equal(mrd_redis_new(itest_env("MERIDIAN_REDIS_URL"), NULL, &r), 0);
  assert_true(mrd_redis_connected(r));
  return r;
}

static void test_claims_redis_one_owner_renew_release_ttl(void **state) {
  (void)state;
  mrd_redis *r = stack_redis();
  dsp_claims_redis *a, *b;
  assert_int_equal(dsp_claims_redis_new(r, g_prefix, &a), DSP_OK);
  assert_int_equal(dsp_claims_redis_new(r, g_prefix, &b), DSP_OK);
  dsp_claims ca = dsp_claims_redis_iface(a), cb = dsp_claims_redis_iface(b);
  assert_int_equal(ca.try_claim(ca.ud, "d1", "3:t3-1-1:7", 60000, 0), DSP_CLAIM_WON);
  assert_int_equal(cb.try_claim(cb.ud, "d1", "4:t4-1-1:7", 60000, 0), DSP_CLAIM_LOST);
  /* Claiming again what one holds renews it. */
  assert_int_equal(ca.try_claim(ca.ud, "d1", "3:t3-1-1:7", 60000, 0), DSP_CLAIM_WON);
  assert_int_equal(ca.refresh(ca.ud, "d1", "3:t3-1-1:7", 60000, 0), DSP_CLAIM_WON);
  assert_int_equal(cb.refresh(cb.ud, "d1", "4:t4-1-1:7", 60000, 0), DSP_CLAIM_LOST);
  cb.release(cb.ud, "d1", "4:t4-1-1:7", 0); /* not his: nothing happens */
  redisReply *rep = NULL;
  char key[128];
  snprintf(key, sizeof key, "%sd1", g_prefix);
  assert_int_equal(mrd_redis_cmdf(r, &rep, "GET %s", key), 0);
  assert_int_equal(rep->type, REDIS_REPLY_STRING);
  assert_string_equal(rep->str, "3:t3-1-1:7");
  freeReplyObject(rep);
  ca.release(ca.ud, "d1", "3:t3-1-1:7", 0);
  assert_int_equal(cb.try_claim(cb.ud, "d1", "4:t4-1-1:7", 60000, 0), DSP_CLAIM_WON);
  cb.release(cb.ud, "d1", "4:t4-1-1:7", 0);
  /* PX: a claim nobody renews frees the driver. */
  assert_int_equal(ca.try_claim(ca.ud, "d2", "A", 150, 0), DSP_CLAIM_WON);
  assert_int_equal(cb.try_claim(cb.ud, "d2", "B", 150, 0), DSP_CLAIM_LOST);
  itest_sleep_ms(250);
  assert_int_equal(cb.try_claim(cb.ud, "d2", "B", 150, 0), DSP_CLAIM_WON);
  dsp_claims_redis_stats st;
  dsp_claims_redis_stats_get(a, &st);
  assert_int_equal(st.redis_failures, 0);
  assert_int_equal(st.fallback_ops, 0);
  dsp_claims_redis_free(a);
  dsp_claims_redis_free(b);
  mrd_redis_free(r);
}

static bool offered(const dsp_shard *s) {
  const dsp_output *o;
  size_t n = dsp_outputs(s, &o);
  for (size_t i = 0; i < n; i++)
    if (o[i].kind == DSP_OUT_EVENT && o[i].u.event.type == DSP_EV_OFFERED) return true;
  return false;
}

/* Two shards, each with its own Redis handle, see one halo driver: one offer only. */
static void test_claims_redis_two_shards_never_offer_one_driver_twice(void **state) {
  (void)state;
  fixture f;
  fixture_init(&f);
  fixture_city(&f);
  fixture_start(&f);
  mrd_redis *ra = stack_redis(), *rb = stack_redis();
  dsp_claims_redis *ca, *cb;
  assert_int_equal(dsp_claims_redis_new(ra, g_prefix, &ca), DSP_OK);
  assert_int_equal(dsp_claims_redis_new(rb, g_prefix, &cb), DSP_OK);
  dsp_qt_index *qa, *qb;
  assert_int_equal(dsp_qt_index_new(&qa), DSP_OK);
  assert_int_equal(dsp_qt_index_new(&qb), DSP_OK);
  dsp_index ia = dsp_qt_index_iface(qa), ib = dsp_qt_index_iface(qb);
  dsp_router rt = dsp_graph_router_iface(f.gr);
  dsp_claims cla = dsp_claims_redis_iface(ca), clb = dsp_claims_redis_iface(cb);
  dsp_config cfa = f.cfg, cfb = f.cfg;
  cfa.shard = 1;
  cfb.shard = 2;
  dsp_shard *a, *b;
  assert_int_equal(dsp_shard_new(&cfa, &ia, &rt, &cla, &a), DSP_OK);
  assert_int_equal(dsp_shard_new(&cfb, &ib, &rt, &clb, &b), DSP_OK);
  dsp_location l = {.driver_id = "halo1", .pos = {40.751, -73.99}, .ts_ms = 1, .seq = 1};
  dsp_on_location(a, &l, 0);
  l.halo = true;
  l.owner_shard = 1;
  dsp_on_location(b, &l, 0);
  dsp_request q = {
      .request_id = "q1", .rider_id = "r1", .pickup = {40.75, -73.99}, .dropoff = {40.752, -73.99}};
  assert_int_equal(dsp_on_request(a, &q, NULL, 10), DSP_OK);
  q.rider_id = "r2";
  assert_int_equal(dsp_on_request(b, &q, NULL, 11), DSP_OK);
  assert_true(offered(a));
  assert_false(offered(b));
  dsp_stats st;
  dsp_stats_get(b, &st);
  assert_int_equal(st.claims_lost, 1);
  /* Shard 1's rider cancels: Redis frees him for shard 2. */
  assert_int_equal(dsp_on_cancel(a, "q1", "r1", NULL, 20), DSP_OK);
  dsp_outputs_clear(b);
  l.seq = 2;
  dsp_on_location(b, &l, 20000);
  q.request_id = "q2";
  assert_int_equal(dsp_on_request(b, &q, NULL, 20000), DSP_OK);
  assert_true(offered(b));
  dsp_outputs_clear(a);
  dsp_outputs_clear(b);
  /* Shard 2's offer is released by its rider, for the next tests' sake. */
  dsp_on_cancel(b, "q2", "r2", NULL, 20001);
  dsp_shard_free(a);
  dsp_shard_free(b);
  dsp_qt_index_free(qa);
  dsp_qt_index_free(qb);
  dsp_claims_redis_free(ca);
  dsp_claims_redis_free(cb);
  mrd_redis_free(ra);
  mrd_redis_free(rb);
  fixture_close(&f);
}

/* A free loopback port in the dispatch helper's range. */
static int range_port(void) {
  for (int p = 25000 + (int)(getpid() % 900); p < 26000; p++)
    if (!itest_port_open(p)) return p;
  fail_msg("no free port in 25000-25999");
  return -1;
}

static void test_claims_redis_falls_back_to_memory_and_back(void **state) {
  (void)state;
  int port = range_port();
  pid_t pid = itest_start_redis(port);
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  mrd_redis_opts o = {.connect_timeout_ms = 200,
                      .command_timeout_ms = 200,
                      .backoff_min_ms = 10,
                      .backoff_max_ms = 50};
  mrd_redis *r = NULL;
  assert_int_equal(mrd_redis_new(url, &o, &r), 0);
  dsp_claims_redis *c;
  assert_int_equal(dsp_claims_redis_new(r, NULL, &c), DSP_OK);
  dsp_claims cl = dsp_claims_redis_iface(c);
  assert_int_equal(cl.try_claim(cl.ud, "d1", "A", 60000, 0), DSP_CLAIM_WON);

  itest_kill(pid, SIGKILL); /* Redis is gone */
  assert_int_equal(cl.try_claim(cl.ud, "d2", "A", 60000, 1000), DSP_CLAIM_WON);
  assert_int_equal(cl.try_claim(cl.ud, "d2", "B", 60000, 1001), DSP_CLAIM_LOST);
  assert_int_equal(cl.refresh(cl.ud, "d2", "A", 60000, 1002), DSP_CLAIM_WON);
  dsp_claims_redis_stats st;
  dsp_claims_redis_stats_get(c, &st);
  assert_true(st.fallback_ops >= 3);
  assert_true(st.redis_failures >= 3);

  pid = itest_start_redis(port); /* back, and empty */
  itest_sleep_ms(100);           /* past the reconnect backoff */
  /* The renewal finds no claim in Redis: LOST, and the core claims again, in Redis. */
  dsp_claim_result res = DSP_CLAIM_ERROR;
  for (int i = 0; i < 50 && res != DSP_CLAIM_LOST; i++) {
    res = cl.refresh(cl.ud, "d2", "A", 60000, 2000);
    if (res != DSP_CLAIM_LOST) itest_sleep_ms(20);
  }
  assert_int_equal(res, DSP_CLAIM_LOST);
  assert_int_equal(cl.try_claim(cl.ud, "d2", "A", 60000, 2001), DSP_CLAIM_WON);
  redisReply *rep = NULL;
  assert_int_equal(mrd_redis_cmdf(r, &rep, "GET claim:d2"), 0);
  assert_int_equal(rep->type, REDIS_REPLY_STRING);
  assert_string_equal(rep->str, "A");
  freeReplyObject(rep);
  cl.release(cl.ud, "d2", "A", 2002);
  assert_int_equal(mrd_redis_cmdf(r, &rep, "EXISTS claim:d2"), 0);
  assert_int_equal(rep->integer, 0);
  freeReplyObject(rep);
  dsp_claims_redis_free(c);
  mrd_redis_free(r);
  itest_kill(pid, SIGTERM);
}

/* Fencing: a holder whose generation is below the shard's fence key can neither take,
 * renew nor free a claim; the next holder adopts the claims of the trips it restored (same
 * owner string) and stamps them with its generation. */
static void test_claims_redis_refuses_a_fenced_generation(void **state) {
  (void)state;
  mrd_redis *ra = NULL, *rb = NULL;
  assert_int_equal(mrd_redis_new(itest_env("MERIDIAN_REDIS_URL"), NULL, &ra), 0);
  assert_int_equal(mrd_redis_new(itest_env("MERIDIAN_REDIS_URL"), NULL, &rb), 0);
  dsp_claims_redis *old = NULL, *nw = NULL;
  assert_int_equal(dsp_claims_redis_new(ra, g_prefix, &old), DSP_OK);
  assert_int_equal(dsp_claims_redis_new(rb, g_prefix, &nw), DSP_OK);
  char fence[96], key[128];
  snprintf(fence, sizeof fence, "%sfence", g_prefix);
  snprintf(key, sizeof key, "%sdf1", g_prefix);
  redisReply *rep = NULL;
  assert_int_equal(mrd_redis_cmdf(ra, &rep, "SET %s 4", fence), 0);
  freeReplyObject(rep);
  dsp_claims_redis_fence(old, fence, 4);
  dsp_claims co = dsp_claims_redis_iface(old), cn = dsp_claims_redis_iface(nw);
  assert_int_equal(co.try_claim(co.ud, "df1", "0:t0-a:1", 60000, 0), DSP_CLAIM_WON);
  assert_int_equal(mrd_redis_cmdf(ra, &rep, "GET %s", key), 0);
  assert_string_equal(rep->str, "0:t0-a:1@4"); /* the value carries the generation */
  freeReplyObject(rep);
  /* a takeover: the new holder raises the fence to 5 */
  assert_int_equal(dsp_fence_raise(rb, fence, 5), 0);
  assert_int_equal(dsp_fence_raise(rb, fence, 3), 0); /* a max: never lowered */
  assert_int_equal(mrd_redis_cmdf(rb, &rep, "GET %s", fence), 0);
  assert_string_equal(rep->str, "5");
  freeReplyObject(rep);
  dsp_claims_redis_fence(nw, fence, 5);
  /* the old holder is refused everything, even on its own claim */
  assert_int_equal(co.refresh(co.ud, "df1", "0:t0-a:1", 60000, 1), DSP_CLAIM_LOST);
  assert_int_equal(co.try_claim(co.ud, "df2", "0:t0-b:1", 60000, 1), DSP_CLAIM_LOST);
  co.release(co.ud, "df1", "0:t0-a:1", 2);
  assert_int_equal(mrd_redis_cmdf(ra, &rep, "GET %s", key), 0);
  assert_string_equal(rep->str, "0:t0-a:1@4"); /* not freed by the fenced one */
  freeReplyObject(rep);
  dsp_claims_redis_stats st;
  dsp_claims_redis_stats_get(old, &st);
  assert_int_equal(st.fenced, 3);
  assert_int_equal(st.fallback_ops, 0); /* refused, not failed */
  /* the new holder, which restored trip t0-a, adopts its claim */
  assert_int_equal(cn.refresh(cn.ud, "df1", "0:t0-a:1", 60000, 3), DSP_CLAIM_WON);
  assert_int_equal(mrd_redis_cmdf(rb, &rep, "GET %s", key), 0);
  assert_string_equal(rep->str, "0:t0-a:1@5");
  freeReplyObject(rep);
  assert_int_equal(cn.try_claim(cn.ud, "df1", "0:t0-z:1", 60000, 4), DSP_CLAIM_LOST); /* others' */
  cn.release(cn.ud, "df1", "0:t0-a:1", 5);
  assert_int_equal(mrd_redis_cmdf(rb, &rep, "EXISTS %s", key), 0);
  assert_int_equal(rep->integer, 0);
  freeReplyObject(rep);
  assert_int_equal(mrd_redis_cmdf(rb, &rep, "DEL %s", fence), 0);
  freeReplyObject(rep);
  dsp_claims_redis_free(old);
  dsp_claims_redis_free(nw);
  mrd_redis_free(ra);
  mrd_redis_free(rb);
}

int main(void) {
  snprintf(g_prefix, sizeof g_prefix, "test:claim:%d:", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claims_redis_one_owner_renew_release_ttl),
      cmocka_unit_test(test_claims_redis_two_shards_never_offer_one_driver_twice),
      cmocka_unit_test(test_claims_redis_falls_back_to_memory_and_back),
      cmocka_unit_test(test_claims_redis_refuses_a_fenced_generation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
