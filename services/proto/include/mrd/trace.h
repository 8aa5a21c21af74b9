/*
 * trace.h: the trace of one ride request through its hops, gateway receive -> produced ->
 * dispatch consumed -> matched -> event produced -> gateway consumed -> sent, with ids
 * after the W3C trace-context convention (https://www.w3.org/TR/trace-context/), so that
 * an operator's tracing tools can join in later.
 *
 * Pure functions: parsing and formatting `traceparent`, making a root or a child span from
 * random bytes the caller supplies, and turning the stamps of a trace into per-hop
 * durations. No clock, no randomness, no I/O: the gateway and dispatch take the time and
 * the random bytes and carry the trace in their Kafka payloads (mrd/proto.h,
 * schemas/kafka/README.md "Trace"). Not a tracing client: nothing is exported anywhere.
 */
#ifndef MRD_TRACE_H
#define MRD_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MRD_TRACE_VERSION 1u   /* the Trace message's format version (field 1) */
#define MRD_TRACEPARENT_LEN 55 /* characters of a version-00 traceparent, without NUL */

/* A parsed traceparent: version-format-version 00 (the one this code writes). */
typedef struct mrd_traceparent {
  uint8_t trace_id[16]; /* never all zero */
  uint8_t parent_id[8]; /* the span of the writer; never all zero */
  uint8_t flags;        /* bit 0: sampled */
} mrd_traceparent;

/* Parse s as a traceparent. Follows the W3C rules: lower-case hex only; version "ff" is
 * invalid; version "00" is exactly 55 characters; a higher version is read by its first 55
 * characters when they are followed by the end or by '-' (and is then handled as 00);
 * trace-id and parent-id of all zeros are invalid. Returns true and fills *out, or false
 * (*out untouched). */
bool mrd_traceparent_parse(const char *s, mrd_traceparent *out);

/* Write tp as a version-00 traceparent into buf (cap bytes, NUL included: at least
 * MRD_TRACEPARENT_LEN + 1). Returns the length (55), or -1 when cap is too small or tp has
 * an all-zero id. */
int mrd_traceparent_format(const mrd_traceparent *tp, char *buf, size_t cap);

/* A new root: trace-id from random[0..15], parent-id from random[16..23] (24 bytes), the
 * sampled flag set. An all-zero id (a 2^-64 event, or a broken source) gets its last byte
 * set to 1 so the result is always valid. */
void mrd_traceparent_root(const uint8_t random[24], mrd_traceparent *out);

/* A child span of parent: the same trace-id and flags, parent-id from random[0..7] (made
 * non-zero as above). */
void mrd_traceparent_child(const mrd_traceparent *parent, const uint8_t random[8],
                           mrd_traceparent *out);

/* The stamps of a trace, Unix microseconds of the wall clock of the process that took
 * them (one host, or hosts kept in sync by NTP/PTP: the Kafka hops are differences of two
 * processes' clocks). The first five travel in the Kafka payloads; the gateway adds the
 * last two when the answer reaches it and goes out. 0 = not taken. */
typedef enum mrd_trace_stamp {
  MRD_STAMP_GATEWAY_RECEIVED = 0,
  MRD_STAMP_GATEWAY_PRODUCED,
  MRD_STAMP_DISPATCH_CONSUMED,
  MRD_STAMP_DISPATCH_MATCHED,
  MRD_STAMP_DISPATCH_PRODUCED,
  MRD_STAMP_GATEWAY_CONSUMED,
  MRD_STAMP_GATEWAY_SENT,
  MRD_STAMP_COUNT
} mrd_trace_stamp;

#define MRD_STAMP_WIRE_COUNT 5 /* stamps carried in Kafka payloads: the first five */

/* The hops: from stamp i to stamp i + 1. */
typedef enum mrd_trace_hop {
  MRD_HOP_GATEWAY_IN = 0, /* received -> produced: parse, limits, Redis, routing, encode */
  MRD_HOP_COMMANDS_KAFKA, /* produced -> dispatch consumed: dispatch-commands */
  MRD_HOP_DISPATCH_MATCH, /* consumed -> matched: the core (index, routing, claim) */
  MRD_HOP_DISPATCH_OUT,   /* matched -> event produced: the rest of dispatch's batch */
  MRD_HOP_EVENTS_KAFKA,   /* event produced -> gateway consumed: dispatch-events */
  MRD_HOP_GATEWAY_OUT,    /* gateway consumed -> sent: decode, format, the loop's writable turn */
  MRD_HOP_COUNT
} mrd_trace_hop;

/* The name of a hop (`gateway_in`, `commands_kafka`, `dispatch_match`, `dispatch_out`,
 * `events_kafka`, `gateway_out`), the metric label and the key of the loadgen's `hops_ms`;
 * "none" for others. Static storage. */
const char *mrd_trace_hop_name(mrd_trace_hop hop);

/* A trace as the services carry it. present == false: no trace (every other field 0). */
typedef struct mrd_trace {
  bool present;
  mrd_traceparent tp;
  int64_t stamp_us[MRD_STAMP_COUNT]; /* 0 = not taken; else >= 1 */
} mrd_trace;

/* The invariant of a trace: absent and all zero, or a valid traceparent (non-zero ids),
 * stamps >= 0, and the stamps taken form a prefix of the hop order (no stamp after a
 * missing one). Stamps need not be ordered in time (clocks of two processes). */
bool mrd_trace_check(const mrd_trace *t);

/* Results of mrd_trace_hops_ms. */
enum {
  MRD_TRACE_OK = 0,
  MRD_TRACE_EABSENT = -1,     /* no trace, or it fails mrd_trace_check */
  MRD_TRACE_EINCOMPLETE = -2, /* a stamp is missing */
  MRD_TRACE_ESKEW = -3        /* a stamp is earlier than the one before it by more than
                                 skew_us: clocks out of step */
};

/* The duration of every hop of a complete trace (all MRD_STAMP_COUNT stamps), in ms, into
 * hops_ms[MRD_HOP_COUNT], and received -> sent into *total_ms (may be NULL). A hop that is
 * negative by at most skew_us (clocks of two processes a little apart) counts as 0; by
 * more, the trace is refused (MRD_TRACE_ESKEW) and nothing is written. Returns MRD_TRACE_OK
 * or an error above. The hops always add up to *total_ms when no hop was clamped. */
int mrd_trace_hops_ms(const mrd_trace *t, int64_t skew_us, double hops_ms[MRD_HOP_COUNT],
                      double *total_ms);

#ifdef __cplusplus
}
#endif
#endif /* MRD_TRACE_H */
