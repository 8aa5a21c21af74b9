/*
 * longpoll.h: the pure core of devkafka's long-poll front (no I/O).
 *
 * librdkafka's mock cluster answers a Fetch that finds no data only after the consumer's
 * whole fetch.wait.max.ms, even when a producer writes to a fetched partition meanwhile
 * (rdkafka_mock_handlers.c says so). A real broker answers as soon as data arrives. devkafka
 * puts a small front (front.c) before each mock broker that restores the real behaviour: it
 * reads the Kafka frames that pass, learns each partition's end offset from the Produce
 * requests and their responses, holds a Fetch whose partitions are all at their end, and
 * lets it through when a produce reaches one of them (or at its MaxWait, then with MaxWait
 * rewritten to 0 so the mock answers at once). It also rewrites the broker ports in Metadata
 * and FindCoordinator responses so that clients keep talking to the front, and clamps the
 * API versions the mock offers to those this reader knows (all non-flexible).
 *
 * This file is the reading, the end-offset table and the hold decision; it is not a Kafka
 * implementation. Anything it cannot read is passed on untouched and, for a Produce, makes
 * the table untrusted (no Fetch is held from then on): the front can only ever fall back to
 * the mock's own behaviour, never lose or reorder a frame.
 */
#ifndef DEVKAFKA_LONGPOLL_H
#define DEVKAFKA_LONGPOLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kafka API keys this reader knows. */
enum {
  DK_API_PRODUCE = 0,
  DK_API_FETCH = 1,
  DK_API_METADATA = 3,
  DK_API_FIND_COORDINATOR = 10,
  DK_API_VERSIONS = 18
};

/* The highest version of each API the reader understands; ApiVersions answers are clamped
 * to these (dk_clamp_api_versions). Produce v9, Fetch v12, Metadata v9 and FindCoordinator
 * v3 are the first flexible versions. */
#define DK_PRODUCE_MAX_VERSION 8
#define DK_FETCH_MAX_VERSION 11
#define DK_METADATA_MAX_VERSION 8
#define DK_FIND_COORDINATOR_MAX_VERSION 2

/* The fixed part of a request header (after the 4-byte size). */
typedef struct dk_req_hdr {
  int16_t api_key, api_version;
  int32_t correlation_id;
  size_t body_off; /* where the body starts (request header v1: after client_id) */
} dk_req_hdr;

/* One fetched or produced partition; topic points into the frame (not NUL-terminated). */
typedef struct dk_part {
  const char *topic;
  size_t topic_len;
  int32_t partition;
  int64_t offset; /* Fetch: the fetch offset; Produce: records in the request */
} dk_part;

/* A parsed Fetch request. parts is owned by the caller (dk_fetch_parse fills up to cap). */
typedef struct dk_fetch {
  int32_t max_wait_ms;
  size_t max_wait_off; /* offset in the frame of MaxWait, for dk_fetch_set_max_wait */
  bool incremental;    /* a KIP-227 incremental session: never held */
  size_t nparts;
} dk_fetch;

/* The end-offset table. Topics and partitions appear as produced; a partition never
 * produced to (through the front) is at offset 0, as a fresh mock topic is. */
typedef struct dk_offsets dk_offsets;

/* Reads a request header from frame[0..n) (the frame without its size). false: too short. */
bool dk_req_header(const uint8_t *frame, size_t n, dk_req_hdr *h);

/* Reads a Fetch request body (v4..DK_FETCH_MAX_VERSION). Fills parts[0..min(cap, count)) and
 * out->nparts with the count. false: another version or a malformed body. */
bool dk_fetch_parse(const uint8_t *frame, size_t n, const dk_req_hdr *h, dk_fetch *out,
                    dk_part *parts, size_t cap);

/* Rewrites MaxWait in the frame (at f->max_wait_off) to ms. */
void dk_fetch_set_max_wait(uint8_t *frame, const dk_fetch *f, int32_t ms);

/* Reads a Produce request (v3..DK_PRODUCE_MAX_VERSION): acks and, per partition, the number of
 * records in its batches (magic 2). Returns the partition count (parts filled up to cap), or -1
 * for another version, another message format or a malformed body. */
long dk_produce_parse(const uint8_t *frame, size_t n, const dk_req_hdr *h, int16_t *acks,
                      dk_part *parts, size_t cap);

/* Reads a Produce response of the given version (frame: the response without its size, from
 * the correlation id on): per partition, the base offset given (offset) or -1 when the
 * partition's error code is not 0. Returns the partition count, or -1 when malformed. */
long dk_produce_response_parse(const uint8_t *frame, size_t n, int16_t version, dk_part *parts,
                               size_t cap);

/* Rewrites, in place, every broker port in a Metadata (v0..8) or FindCoordinator (v0..2)
 * response: a port found in from[0..nmap) becomes to[i]. Returns the ports rewritten, or -1 when
 * the response is malformed (the frame may then be partly rewritten: every rewrite is whole). */
int dk_rewrite_ports(uint8_t *frame, size_t n, int16_t api_key, int16_t version,
                     const int32_t *from, const int32_t *to, size_t nmap);

/* Clamps, in place, the MaxVersion of Produce, Fetch, Metadata and FindCoordinator in an
 * ApiVersions response (v0..3) to the DK_*_MAX_VERSION above. false when malformed. */
bool dk_clamp_api_versions(uint8_t *frame, size_t n, int16_t version);

/* The table: NULL when out of memory. _free(NULL) is a no-op. */
dk_offsets *dk_offsets_new(void);
void dk_offsets_free(dk_offsets *t);

/* The end offset known for a partition (0 when never produced to). */
int64_t dk_offsets_end(const dk_offsets *t, const char *topic, size_t topic_len, int32_t partition);

/* A produce to a partition was acknowledged: its end becomes base + records when that is
 * beyond what is known. Returns true when the end moved; false also when out of memory (then
 * the table is untrusted). */
bool dk_offsets_produced(dk_offsets *t, const char *topic, size_t topic_len, int32_t partition,
                         int64_t base, int64_t records);

/* Stop trusting the table (a produce that could not be read passed): dk_fetch_should_hold is
 * false from then on. */
void dk_offsets_distrust(dk_offsets *t);
/* Whether the table is still trusted. Test API (no tool calls it):
 * tests/devkafka/test_devkafka_longpoll.c. */
bool dk_offsets_trusted(const dk_offsets *t);

/* Whether to hold a Fetch: the table is trusted, it is not incremental, MaxWait > 0, every
 * partition fits in parts (nparts <= cap) and none has anything to read: each fetch offset is at
 * or beyond its known end. Beyond happens: a consumer can read a record (and fetch from the next
 * offset) before the front has seen the acknowledgement of its produce on another connection.
 * A fetch offset beyond the real end (out of range) is held too, and then answered by the
 * broker with its error at MaxWait. */
bool dk_fetch_should_hold(const dk_offsets *t, const dk_fetch *f, const dk_part *parts, size_t cap);

/* The table's invariant (every end >= 0, partitions within bounds): 0, or -1. Test API (no
 * tool calls it): tests/devkafka/test_devkafka_longpoll.c. */
int dk_offsets_check(const dk_offsets *t);

#endif
