/*
 * dispatch_codec.h: the pure mapping between the dispatch core and Meridian's Kafka
 * payloads (services/proto): a consumed command or ping becomes a call on the shard, a
 * core output becomes a DispatchEvent, a trip snapshot becomes the DispatchEvent the
 * gateway reads from Redis for resync, and that stored event becomes a dsp_trip_restore
 * after a restart.
 *
 * No I/O and no clock: meridian-dispatch (main.c, dispatch_io.c) does the Kafka and Redis
 * calls around these. Unit-tested in tests/dispatch/test_dispatch_codec.c.
 */
#ifndef DSP_DISPATCH_CODEC_H
#define DSP_DISPATCH_CODEC_H

#include "dispatch.h"
#include "mrd/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest trip id suffix dspc_trip_suffix writes, with its NUL. */
#define DSPC_SUFFIX_MAX 32

/* The trip id suffix of a request: base 36 of the gateway's receive time ts_ms and of the
 * command's offset in its partition, "<ts36>-<offset36>". The same message consumed again
 * gives the same suffix, and a new Kafka log (offsets from 0 again) gives new times. */
void dspc_trip_suffix(int64_t ts_ms, int64_t offset, char out[DSPC_SUFFIX_MAX]);

/* Feed one command to the shard at now_ms (offset: its place in the partition, for the
 * trip id of a request). A command for another shard or with an unknown kind is ignored
 * (returns DSP_EINVAL, no output). Otherwise returns the core's rc (a refusal has queued
 * its reply). */
int dspc_apply_command(dsp_shard *s, uint32_t shard, const mrd_command *c, int64_t offset,
                       int64_t now_ms);

/* Feed one ping. Returns the core's rc (DSP_ESTALE for an old ping). */
int dspc_apply_location(dsp_shard *s, const mrd_driver_location *m, int64_t now_ms);

/* The DispatchEvent of a core event (every field the schema asks for its type). */
void dspc_event_to_proto(const dsp_event *e, mrd_dispatch_event *out);

/* The COMMAND_REJECTED event of a core reply: ref is the command's own (the core keeps
 * at most 64 bytes of it; NULL: the core's copy). trip_id is dropped when it does not
 * have a trip id's shape (a made-up id from a client). */
void dspc_reply_to_proto(const dsp_reply *r, const char *ref, uint32_t shard, uint64_t epoch,
                         int64_t now_ms, mrd_dispatch_event *out);

/* Complete ev (the trip's latest event, as produced) with what the snapshot knows, so the
 * stored event alone describes the trip: status and seq after the event, rider, request,
 * pickup, drop-off, the current driver, the live offer and its expiry, the ETA. */
void dspc_snapshot_merge(const dsp_snapshot *p, mrd_dispatch_event *ev);

/* True when a snapshot's status is live (a trip to restore after a restart). */
bool dspc_status_live(mrd_trip_status st);

/* The restore record of a stored snapshot event; its strings point into ev. Returns 0, or
 * DSP_EINVAL when ev is not a live trip's snapshot. */
int dspc_restore_from_proto(const mrd_dispatch_event *ev, dsp_trip_restore *out);

#ifdef __cplusplus
}
#endif
#endif /* DSP_DISPATCH_CODEC_H */
