/*
 * test_devkafka_longpoll.c: the pure half of devkafka's long-poll front (longpoll.h) on Kafka
 * frames built here byte by byte from the protocol guide's layouts: Fetch and Produce requests,
 * Produce, Metadata, FindCoordinator and ApiVersions answers, the end-offset table and the hold
 * decision. Every parser is also fed each prefix of a good frame and random bytes: it must
 * refuse or read within bounds (ASan watches), never read past the frame.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "longpoll.h"

/* ---- a frame writer ---- */

typedef struct wr {
  uint8_t b[4096];
  size_t n;
} wr;

static void w8(wr *w, int v) { w->b[w->n++] = (uint8_t)v; }
static void w16(wr *w, int v) {
  w8(w, (v >> 8) & 0xff);
  w8(w, v & 0xff);
}
static void w32(wr *w, int64_t v) {
  for (int s = 24; s >= 0; s -= 8) w8(w, (int)((v >> s) & 0xff));
}
static void w64(wr *w, int64_t v) {
  w32(w, (int64_t)((uint64_t)v >> 32));
  w32(w, v & 0xffffffff);
}
static void wstr(wr *w, const char *s) {
  if (s == NULL) {
    w16(w, -1);
    return;
  }
  w16(w, (int)strlen(s));
  memcpy(w->b + w->n, s, strlen(s));
  w->n += strlen(s);
}
static void req_header(wr *w, int key, int ver, int corr) {
  w16(w, key);
  w16(w, ver);
  w32(w, corr);
  wstr(w, "test-client");
}
static int32_t rd32(const uint8_t *p) {
  return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
}

/* A Fetch v11 of dispatch-events partitions 3 and 7 at offsets 10 and 0. */
static void fetch_v(wr *w, int ver, int32_t max_wait, int32_t session_id, int32_t epoch) {
  req_header(w, DK_API_FETCH, ver, 99);
  w32(w, -1);       /* replica_id */
  w32(w, max_wait); /* max_wait_ms */
  w32(w, 1);        /* min_bytes */
  w32(w, 52428800); /* max_bytes */
  w8(w, 0);         /* isolation_level */
  if (ver >= 7) {
    w32(w, session_id);
    w32(w, epoch);
  }
  w32(w, 1);
  wstr(w, "dispatch-events");
  w32(w, 2);
  const int32_t parts[2] = {3, 7};
  const int64_t offs[2] = {10, 0};
  for (int i = 0; i < 2; i++) {
    w32(w, parts[i]);
    if (ver >= 9) w32(w, -1); /* current_leader_epoch */
    w64(w, offs[i]);
    if (ver >= 5) w64(w, -1); /* log_start_offset */
    w32(w, 1048576);
  }
  if (ver >= 7) w32(w, 0);    /* forgotten topics */
  if (ver >= 11) wstr(w, ""); /* rack_id */
}

/* One RecordBatch header (magic 2) with lastOffsetDelta = records - 1 and a body of pad bytes. */
static void batch(wr *w, int records, int magic) {
  const int pad = 40; /* stands for the records themselves */
  w64(w, 0);          /* baseOffset */
  w32(w, 49 + pad);   /* batchLength: from partitionLeaderEpoch to the end */
  w32(w, -1);         /* partitionLeaderEpoch */
  w8(w, magic);
  w32(w, 0);                                                      /* crc */
  w16(w, 0);                                                      /* attributes */
  w32(w, records - 1);                                            /* lastOffsetDelta */
  for (int i = 0; i < 8 + 8 + 8 + 2 + 4 + 4 + pad; i++) w8(w, 0); /* timestamps .. records */
}

/* A Produce v7 of dispatch-events partition 3 (2 batches: 5 + 2 records) and partition 7 (1). */
static void produce_v7(wr *w, int acks, int magic) {
  req_header(w, DK_API_PRODUCE, 7, 5);
  wstr(w, NULL); /* transactional_id */
  w16(w, acks);
  w32(w, 30000);
  w32(w, 1);
  wstr(w, "dispatch-events");
  w32(w, 2);
  w32(w, 3);
  wr b = {.n = 0};
  batch(&b, 5, magic);
  batch(&b, 2, magic);
  w32(w, (int64_t)b.n);
  memcpy(w->b + w->n, b.b, b.n);
  w->n += b.n;
  w32(w, 7);
  b.n = 0;
  batch(&b, 1, magic);
  w32(w, (int64_t)b.n);
  memcpy(w->b + w->n, b.b, b.n);
  w->n += b.n;
}

static void produce_response_v7(wr *w, int16_t err7) {
  w32(w, 5); /* correlation id */
  w32(w, 1);
  wstr(w, "dispatch-events");
  w32(w, 2);
  w32(w, 3);
  w16(w, 0);
  w64(w, 10); /* base offset */
  w64(w, -1);
  w64(w, 0);
  w32(w, 7);
  w16(w, err7);
  w64(w, err7 ? -1 : 0);
  w64(w, -1);
  w64(w, 0);
  w32(w, 0); /* throttle_time_ms */
}

/* ---- Fetch ---- */

static void test_fetch_v11_is_read_and_its_wait_rewritten(void **state) {
  (void)state;
  wr w = {.n = 0};
  fetch_v(&w, 11, 500, 0, -1);
  dk_req_hdr h;
  assert_true(dk_req_header(w.b, w.n, &h));
  assert_int_equal(h.api_key, DK_API_FETCH);
  assert_int_equal(h.api_version, 11);
  assert_int_equal(h.correlation_id, 99);
  dk_fetch f;
  dk_part parts[4];
  assert_true(dk_fetch_parse(w.b, w.n, &h, &f, parts, 4));
  assert_int_equal(f.max_wait_ms, 500);
  assert_false(f.incremental);
  assert_int_equal(f.nparts, 2);
  assert_int_equal(parts[0].topic_len, strlen("dispatch-events"));
  assert_memory_equal(parts[0].topic, "dispatch-events", parts[0].topic_len);
  assert_int_equal(parts[0].partition, 3);
  assert_int_equal(parts[0].offset, 10);
  assert_int_equal(parts[1].partition, 7);
  assert_int_equal(parts[1].offset, 0);
  dk_fetch_set_max_wait(w.b, &f, 0);
  assert_true(dk_fetch_parse(w.b, w.n, &h, &f, parts, 4));
  assert_int_equal(f.max_wait_ms, 0);
  assert_int_equal(parts[0].offset, 10); /* nothing else moved */
}

static void test_fetch_versions_4_to_11_and_no_other(void **state) {
  (void)state;
  for (int v = 4; v <= 11; v++) {
    wr w = {.n = 0};
    fetch_v(&w, v, 250, 0, -1);
    dk_req_hdr h;
    dk_fetch f;
    dk_part parts[4];
    assert_true(dk_req_header(w.b, w.n, &h));
    assert_true(dk_fetch_parse(w.b, w.n, &h, &f, parts, 4));
    assert_int_equal(f.max_wait_ms, 250);
    assert_int_equal(parts[1].partition, 7);
  }
  wr w = {.n = 0};
  fetch_v(&w, 11, 250, 0, -1);
  dk_req_hdr h;
  dk_fetch f;
  dk_part parts[4];
  assert_true(dk_req_header(w.b, w.n, &h));
  h.api_version = 12; /* flexible: not read */
  assert_false(dk_fetch_parse(w.b, w.n, &h, &f, parts, 4));
  h.api_version = 3;
  assert_false(dk_fetch_parse(w.b, w.n, &h, &f, parts, 4));
}

static void test_fetch_incremental_session_is_never_held(void **state) {
  (void)state;
  wr w = {.n = 0};
  fetch_v(&w, 11, 500, 1234, 3);
  dk_req_hdr h;
  dk_fetch f;
  dk_part parts[4];
  assert_true(dk_req_header(w.b, w.n, &h));
  assert_true(dk_fetch_parse(w.b, w.n, &h, &f, parts, 4));
  assert_true(f.incremental);
  dk_offsets *t = dk_offsets_new();
  assert_non_null(t);
  assert_true(dk_offsets_produced(t, "dispatch-events", 15, 3, 0, 10));
  assert_false(dk_fetch_should_hold(t, &f, parts, 4));
  dk_offsets_free(t);
}

/* ---- the table and the decision ---- */

static void test_hold_only_when_every_partition_is_at_its_end(void **state) {
  (void)state;
  wr w = {.n = 0};
  fetch_v(&w, 11, 500, 0, -1); /* partition 3 at 10, partition 7 at 0 */
  dk_req_hdr h;
  dk_fetch f;
  dk_part parts[4];
  assert_true(dk_req_header(w.b, w.n, &h));
  assert_true(dk_fetch_parse(w.b, w.n, &h, &f, parts, 4));
  dk_offsets *t = dk_offsets_new();
  assert_non_null(t);
  /* The table knows nothing of partition 3 yet: a fetch at 10 is beyond its end (the consumer
   * read faster than the front saw the acknowledgement): held, nothing known to read. */
  assert_true(dk_fetch_should_hold(t, &f, parts, 4));
  assert_true(dk_offsets_produced(t, "dispatch-events", 15, 3, 0, 9));
  assert_true(dk_fetch_should_hold(t, &f, parts, 4));
  assert_true(dk_offsets_produced(t, "dispatch-events", 15, 3, 9, 2));
  assert_false(dk_fetch_should_hold(t, &f, parts, 4)); /* offset 10 exists now */
  f.nparts = 2;
  parts[0].offset = 11;
  assert_true(dk_fetch_should_hold(t, &f, parts, 4));
  parts[0].offset = 10;
  dk_offsets_free(t);
  t = dk_offsets_new();
  assert_non_null(t);
  assert_true(dk_offsets_produced(t, "dispatch-events", 15, 3, 0, 10));
  assert_int_equal(dk_offsets_end(t, "dispatch-events", 15, 3), 10);
  assert_true(dk_fetch_should_hold(t, &f, parts, 4));
  /* A produce to partition 7: there is something to read now. */
  assert_true(dk_offsets_produced(t, "dispatch-events", 15, 7, 0, 1));
  assert_false(dk_fetch_should_hold(t, &f, parts, 4));
  /* An old acknowledgement never moves an end back. */
  assert_false(dk_offsets_produced(t, "dispatch-events", 15, 7, 0, 1));
  assert_false(dk_offsets_produced(t, "dispatch-events", 15, 3, 2, 3));
  assert_int_equal(dk_offsets_end(t, "dispatch-events", 15, 3), 10);
  assert_int_equal(dk_offsets_check(t), 0);
  dk_offsets_free(t);
}

static void test_no_hold_without_wait_too_many_partitions_or_trust(void **state) {
  (void)state;
  dk_offsets *t = dk_offsets_new();
  assert_non_null(t);
  assert_true(dk_offsets_produced(t, "dispatch-events", 15, 3, 0, 10));
  dk_part parts[2] = {{"dispatch-events", 15, 3, 10}, {"dispatch-events", 15, 7, 0}};
  dk_fetch f = {.max_wait_ms = 500, .nparts = 2};
  assert_true(dk_fetch_should_hold(t, &f, parts, 2));
  assert_false(dk_fetch_should_hold(t, &f, parts, 1)); /* not all partitions were read */
  f.max_wait_ms = 0;
  assert_false(dk_fetch_should_hold(t, &f, parts, 2));
  f.max_wait_ms = 500;
  f.nparts = 0;
  assert_false(dk_fetch_should_hold(t, &f, parts, 2));
  f.nparts = 2;
  assert_true(dk_offsets_trusted(t));
  dk_offsets_distrust(t);
  assert_false(dk_offsets_trusted(t));
  assert_false(dk_fetch_should_hold(t, &f, parts, 2));
  dk_offsets_free(t);
  dk_offsets_free(NULL);
}

static void test_table_refuses_nonsense(void **state) {
  (void)state;
  dk_offsets *t = dk_offsets_new();
  assert_non_null(t);
  assert_false(dk_offsets_produced(t, "x", 1, -1, 0, 1));
  assert_false(dk_offsets_produced(t, "x", 1, 70000, 0, 1));
  assert_false(dk_offsets_produced(t, "x", 1, 0, -5, 1));
  assert_false(dk_offsets_produced(t, "x", 1, 0, 0, -1));
  assert_int_equal(dk_offsets_end(t, "x", 1, 0), 0);
  assert_int_equal(dk_offsets_end(t, "never", 5, 2), 0);
  assert_true(dk_offsets_produced(t, "a", 1, 63, 100, 5));
  assert_int_equal(dk_offsets_end(t, "a", 1, 63), 105);
  assert_int_equal(dk_offsets_end(t, "a", 1, 62), 0);
  assert_int_equal(dk_offsets_end(t, "a", 1, 64), 0);
  assert_int_equal(dk_offsets_check(t), 0);
  dk_offsets_free(t);
}

/* ---- Produce ---- */

static void test_produce_records_per_partition(void **state) {
  (void)state;
  wr w = {.n = 0};
  produce_v7(&w, -1, 2);
  dk_req_hdr h;
  assert_true(dk_req_header(w.b, w.n, &h));
  int16_t acks = 0;
  dk_part parts[4];
  assert_int_equal(dk_produce_parse(w.b, w.n, &h, &acks, parts, 4), 2);
  assert_int_equal(acks, -1);
  assert_int_equal(parts[0].partition, 3);
  assert_int_equal(parts[0].offset, 7); /* 5 + 2 records in two batches */
  assert_int_equal(parts[1].partition, 7);
  assert_int_equal(parts[1].offset, 1);
  /* Only the count when cap is smaller. */
  assert_int_equal(dk_produce_parse(w.b, w.n, &h, &acks, parts, 1), 2);

  wr z = {.n = 0};
  produce_v7(&z, 0, 2);
  assert_true(dk_req_header(z.b, z.n, &h));
  assert_int_equal(dk_produce_parse(z.b, z.n, &h, &acks, parts, 4), 2);
  assert_int_equal(acks, 0);
}

static void test_produce_of_old_message_format_is_not_read(void **state) {
  (void)state;
  wr w = {.n = 0};
  produce_v7(&w, -1, 1);
  dk_req_hdr h;
  int16_t acks;
  dk_part parts[4];
  assert_true(dk_req_header(w.b, w.n, &h));
  assert_int_equal(dk_produce_parse(w.b, w.n, &h, &acks, parts, 4), -1);
  produce_v7(&w, -1, 2);
  assert_true(dk_req_header(w.b, w.n, &h));
  h.api_version = 9; /* flexible */
  assert_int_equal(dk_produce_parse(w.b, w.n, &h, &acks, parts, 4), -1);
}

static void test_produce_response_base_offsets_and_errors(void **state) {
  (void)state;
  wr w = {.n = 0};
  produce_response_v7(&w, 0);
  dk_part parts[4];
  assert_int_equal(dk_produce_response_parse(w.b, w.n, 7, parts, 4), 2);
  assert_int_equal(parts[0].partition, 3);
  assert_int_equal(parts[0].offset, 10);
  assert_int_equal(parts[1].partition, 7);
  assert_int_equal(parts[1].offset, 0);
  wr e = {.n = 0};
  produce_response_v7(&e, 6 /* NOT_LEADER_OR_FOLLOWER */);
  assert_int_equal(dk_produce_response_parse(e.b, e.n, 7, parts, 4), 2);
  assert_int_equal(parts[1].offset, -1);
  assert_int_equal(dk_produce_response_parse(w.b, w.n, 9, parts, 4), -1);
}

/* ---- answers rewritten in place ---- */

static void test_metadata_ports_point_at_the_front(void **state) {
  (void)state;
  for (int v = 0; v <= 8; v++) {
    wr w = {.n = 0};
    w32(&w, 1); /* correlation id */
    if (v >= 3) w32(&w, 0);
    w32(&w, 3);
    const int32_t ports[3] = {40001, 40002, 49999};
    size_t at[3];
    for (int b = 0; b < 3; b++) {
      w32(&w, b + 1);
      wstr(&w, "127.0.0.1");
      at[b] = w.n;
      w32(&w, ports[b]);
      if (v >= 1) wstr(&w, NULL);
    }
    w32(&w, 0); /* topics etc.: not read */
    const int32_t from[2] = {40001, 40002}, to[2] = {50001, 50002};
    assert_int_equal(dk_rewrite_ports(w.b, w.n, DK_API_METADATA, (int16_t)v, from, to, 2), 2);
    assert_int_equal(rd32(w.b + at[0]), 50001);
    assert_int_equal(rd32(w.b + at[1]), 50002);
    assert_int_equal(rd32(w.b + at[2]), 49999); /* not ours: left alone */
  }
  uint8_t junk[8] = {0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff};
  const int32_t from[1] = {1}, to[1] = {2};
  assert_int_equal(dk_rewrite_ports(junk, sizeof junk, DK_API_METADATA, 0, from, to, 1), -1);
  assert_int_equal(dk_rewrite_ports(junk, sizeof junk, DK_API_METADATA, 9, from, to, 1), -1);
  assert_int_equal(dk_rewrite_ports(junk, sizeof junk, DK_API_FETCH, 0, from, to, 1), -1);
}

static void test_find_coordinator_port_points_at_the_front(void **state) {
  (void)state;
  for (int v = 0; v <= 2; v++) {
    wr w = {.n = 0};
    w32(&w, 1);
    if (v >= 1) w32(&w, 0);
    w16(&w, 0);
    if (v >= 1) wstr(&w, NULL);
    w32(&w, 2);
    wstr(&w, "127.0.0.1");
    size_t at = w.n;
    w32(&w, 40002);
    const int32_t from[2] = {40001, 40002}, to[2] = {50001, 50002};
    assert_int_equal(dk_rewrite_ports(w.b, w.n, DK_API_FIND_COORDINATOR, (int16_t)v, from, to, 2),
                     1);
    assert_int_equal(rd32(w.b + at), 50002);
  }
}

static void test_api_versions_are_clamped_to_what_is_read(void **state) {
  (void)state;
  wr w = {.n = 0};
  w32(&w, 1);    /* correlation id */
  w16(&w, 0);    /* error */
  w8(&w, 5 + 1); /* compact array of 5 */
  const int keys[5][3] = {{DK_API_PRODUCE, 0, 9},
                          {DK_API_FETCH, 0, 13},
                          {DK_API_METADATA, 0, 12},
                          {DK_API_FIND_COORDINATOR, 0, 4},
                          {19 /* CreateTopics */, 0, 7}};
  size_t at[5];
  for (int k = 0; k < 5; k++) {
    w16(&w, keys[k][0]);
    w16(&w, keys[k][1]);
    at[k] = w.n;
    w16(&w, keys[k][2]);
    w8(&w, 0); /* no tagged fields */
  }
  w32(&w, 0);
  w8(&w, 0);
  assert_true(dk_clamp_api_versions(w.b, w.n, 3));
  assert_int_equal((w.b[at[0]] << 8) | w.b[at[0] + 1], DK_PRODUCE_MAX_VERSION);
  assert_int_equal((w.b[at[1]] << 8) | w.b[at[1] + 1], DK_FETCH_MAX_VERSION);
  assert_int_equal((w.b[at[2]] << 8) | w.b[at[2] + 1], DK_METADATA_MAX_VERSION);
  assert_int_equal((w.b[at[3]] << 8) | w.b[at[3] + 1], DK_FIND_COORDINATOR_MAX_VERSION);
  assert_int_equal((w.b[at[4]] << 8) | w.b[at[4] + 1], 7);

  /* v0 layout, and an error answer left untouched. */
  wr o = {.n = 0};
  w32(&o, 1);
  w16(&o, 0);
  w32(&o, 1);
  w16(&o, DK_API_FETCH);
  w16(&o, 0);
  size_t a0 = o.n;
  w16(&o, 11);
  assert_true(dk_clamp_api_versions(o.b, o.n, 0));
  assert_int_equal((o.b[a0] << 8) | o.b[a0 + 1], 11);
  wr e = {.n = 0};
  w32(&e, 1);
  w16(&e, 35 /* UNSUPPORTED_VERSION */);
  w32(&e, 1);
  w16(&e, DK_API_FETCH);
  w16(&e, 0);
  size_t a1 = e.n;
  w16(&e, 13);
  assert_false(dk_clamp_api_versions(e.b, e.n, 3));
  assert_int_equal((e.b[a1] << 8) | e.b[a1 + 1], 13);
}

/* ---- bounds ---- */

static void test_every_prefix_is_refused_or_read_in_bounds(void **state) {
  (void)state;
  wr f = {.n = 0}, p = {.n = 0}, r = {.n = 0};
  fetch_v(&f, 11, 500, 0, -1);
  produce_v7(&p, -1, 2);
  produce_response_v7(&r, 0);
  dk_part parts[4];
  for (size_t n = 0; n < f.n; n++) {
    uint8_t *cut = malloc(n ? n : 1); /* exact size: ASan sees any read past it */
    memcpy(cut, f.b, n);
    dk_req_hdr h;
    dk_fetch fe;
    if (dk_req_header(cut, n, &h)) {
      /* the last field (rack_id) is not read: only prefixes missing more must fail */
      bool ok = dk_fetch_parse(cut, n, &h, &fe, parts, 4);
      if (n + 2 + 4 < f.n) assert_false(ok);
    }
    free(cut);
  }
  for (size_t n = 0; n < p.n; n++) {
    uint8_t *cut = malloc(n ? n : 1);
    memcpy(cut, p.b, n);
    dk_req_hdr h;
    int16_t acks;
    if (dk_req_header(cut, n, &h))
      assert_int_equal(dk_produce_parse(cut, n, &h, &acks, parts, 4), -1);
    free(cut);
  }
  for (size_t n = 0; n + 4 < r.n; n++) { /* the trailing throttle time is not read */
    uint8_t *cut = malloc(n ? n : 1);
    memcpy(cut, r.b, n);
    assert_int_equal(dk_produce_response_parse(cut, n, 7, parts, 4), -1);
    free(cut);
  }
}

static void test_random_bytes_never_crash(void **state) {
  (void)state;
  unsigned seed = 7;
  dk_part parts[8];
  const int32_t from[1] = {1}, to[1] = {2};
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)(rand_r(&seed) % 200);
    uint8_t *b = malloc(n ? n : 1);
    for (size_t k = 0; k < n; k++)
      b[k] = (uint8_t)(rand_r(&seed) % 4 == 0 ? 0xff : rand_r(&seed) % 4);
    dk_req_hdr h;
    if (dk_req_header(b, n, &h)) {
      dk_fetch fe;
      int16_t acks;
      h.api_key = DK_API_FETCH;
      h.api_version = (int16_t)(4 + i % 8);
      (void)dk_fetch_parse(b, n, &h, &fe, parts, 8);
      h.api_key = DK_API_PRODUCE;
      h.api_version = (int16_t)(3 + i % 6);
      (void)dk_produce_parse(b, n, &h, &acks, parts, 8);
    }
    (void)dk_produce_response_parse(b, n, (int16_t)(3 + i % 6), parts, 8);
    (void)dk_rewrite_ports(b, n, i % 2 ? DK_API_METADATA : DK_API_FIND_COORDINATOR,
                           (int16_t)(i % 3), from, to, 1);
    (void)dk_clamp_api_versions(b, n, (int16_t)(i % 4));
    free(b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fetch_v11_is_read_and_its_wait_rewritten),
      cmocka_unit_test(test_fetch_versions_4_to_11_and_no_other),
      cmocka_unit_test(test_fetch_incremental_session_is_never_held),
      cmocka_unit_test(test_hold_only_when_every_partition_is_at_its_end),
      cmocka_unit_test(test_no_hold_without_wait_too_many_partitions_or_trust),
      cmocka_unit_test(test_table_refuses_nonsense),
      cmocka_unit_test(test_produce_records_per_partition),
      cmocka_unit_test(test_produce_of_old_message_format_is_not_read),
      cmocka_unit_test(test_produce_response_base_offsets_and_errors),
      cmocka_unit_test(test_metadata_ports_point_at_the_front),
      cmocka_unit_test(test_find_coordinator_port_points_at_the_front),
      cmocka_unit_test(test_api_versions_are_clamped_to_what_is_read),
      cmocka_unit_test(test_every_prefix_is_refused_or_read_in_bounds),
      cmocka_unit_test(test_random_bytes_never_crash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
