/*
 * recent.h: the latest event each user was sent, kept a short while, for the snapshot an app
 * gets when it connects.
 *
 * An app that connects is shown its trip's state from Redis (trip:snap, written by dispatch
 * after the event's delivery report). Between an event's delivery (the gateway can consume
 * it) and dispatch's Redis write there is a window: an app that connects in it reads the
 * state before the event from Redis, and the event itself went by before the app was
 * registered. After a gateway restart a thousand apps reconnect at once and some always fall
 * in it: the chaos replay's riders who stayed connected and never learned their trip had
 * completed. So the gateway keeps, per (role, user), the latest event it consumed for him
 * (keep_ms, 30 s), and on connection shows whichever of it and the Redis snapshot is newer:
 * for the same trip the higher seq, for different trips the later dispatch timestamp.
 *
 * Pure (time is an argument), bounded (cap entries; expired ones are swept a few buckets
 * per put), not thread-safe (the event loop only).
 */
#ifndef MRD_GATEWAY_RECENT_H
#define MRD_GATEWAY_RECENT_H

#include <stddef.h>
#include <stdint.h>

#include "gateway.h"
#include "mrd/proto.h"

typedef struct gw_recent gw_recent;

/* A table of at most cap entries kept keep_ms each; NULL when out of memory or cap or
 * keep_ms is not positive. */
gw_recent *gw_recent_new(size_t cap, int64_t keep_ms);
void gw_recent_free(gw_recent *r);

/* ev was consumed at now_ms for (role, user): kept as his latest unless the one kept is of
 * the same trip with a higher seq (a late duplicate). Returns 0, or -1 when the table is
 * full of live entries (nothing kept: that user's connection falls back on Redis alone). */
int gw_recent_put(gw_recent *r, gw_role role, const char *user, const mrd_dispatch_event *ev,
                  int64_t now_ms);

/* What to show (role, user) on connection: snap (Redis' state; NULL when none) or the event
 * kept for him if it is live (not older than keep_ms) and newer. NULL when neither. */
const mrd_dispatch_event *gw_recent_pick(const gw_recent *r, gw_role role, const char *user,
                                         const mrd_dispatch_event *snap, int64_t now_ms);

/* Entries held (live or not yet swept). */
size_t gw_recent_len(const gw_recent *r);

#endif /* MRD_GATEWAY_RECENT_H */
