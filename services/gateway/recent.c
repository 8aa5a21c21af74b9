/* recent.c: the latest event of each user, kept a short while (recent.h). A hash table with
 * chaining on (role, user); each put sweeps the expired entries of its own bucket and of the
 * next SWEEP_BUCKETS buckets in turn, so a table that keeps receiving events drops every
 * expired entry within BUCKETS / SWEEP_BUCKETS puts. */
#include "recent.h"

#include <stdlib.h>
#include <string.h>

#include "mrd/hash.h"

#define BUCKETS 4096
#define SWEEP_BUCKETS 2

typedef struct entry {
  struct entry *next;
  gw_role role;
  char user[MRD_ID_MAX + 1];
  int64_t at_ms; /* when it was consumed */
  mrd_dispatch_event ev;
} entry;

struct gw_recent {
  entry *bucket[BUCKETS];
  size_t len, cap, sweep_next;
  int64_t keep_ms;
};

static size_t bucket_of(gw_role role, const char *user) {
  return (size_t)(mrd_fnv1a64_str(MRD_FNV1A64_SEED ^ (uint64_t)role, user) % BUCKETS);
}

gw_recent *gw_recent_new(size_t cap, int64_t keep_ms) {
  if (cap == 0 || keep_ms <= 0) return NULL;
  gw_recent *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->cap = cap;
  r->keep_ms = keep_ms;
  return r;
}

void gw_recent_free(gw_recent *r) {
  if (!r) return;
  for (size_t b = 0; b < BUCKETS; b++)
    for (entry *e = r->bucket[b], *next; e; e = next) {
      next = e->next;
      free(e);
    }
  free(r);
}

static void sweep(gw_recent *r, size_t b, int64_t now_ms) {
  for (entry **pp = &r->bucket[b]; *pp;) {
    entry *e = *pp;
    if (now_ms - e->at_ms > r->keep_ms) {
      *pp = e->next;
      free(e);
      r->len--;
    } else {
      pp = &e->next;
    }
  }
}

static entry *find(const gw_recent *r, gw_role role, const char *user) {
  for (entry *e = r->bucket[bucket_of(role, user)]; e; e = e->next)
    if (e->role == role && strcmp(e->user, user) == 0) return e;
  return NULL;
}

int gw_recent_put(gw_recent *r, gw_role role, const char *user, const mrd_dispatch_event *ev,
                  int64_t now_ms) {
  if (!r || !user || !ev || strlen(user) > MRD_ID_MAX) return -1;
  size_t b = bucket_of(role, user);
  sweep(r, b, now_ms);
  for (int k = 0; k < SWEEP_BUCKETS; k++) {
    sweep(r, r->sweep_next, now_ms);
    r->sweep_next = (r->sweep_next + 1) % BUCKETS;
  }
  entry *e = find(r, role, user);
  if (e) {
    if (strcmp(e->ev.trip_id, ev->trip_id) == 0 && e->ev.seq > ev->seq) return 0; /* late */
  } else {
    if (r->len >= r->cap) return -1;
    e = calloc(1, sizeof *e);
    if (!e) return -1;
    e->role = role;
    memcpy(e->user, user, strlen(user) + 1);
    e->next = r->bucket[b];
    r->bucket[b] = e;
    r->len++;
  }
  e->at_ms = now_ms;
  e->ev = *ev;
  return 0;
}

const mrd_dispatch_event *gw_recent_pick(const gw_recent *r, gw_role role, const char *user,
                                         const mrd_dispatch_event *snap, int64_t now_ms) {
  const entry *e = r && user ? find(r, role, user) : NULL;
  if (!e || now_ms - e->at_ms > r->keep_ms) return snap;
  if (!snap) return &e->ev;
  if (strcmp(e->ev.trip_id, snap->trip_id) == 0) return e->ev.seq > snap->seq ? &e->ev : snap;
  return e->ev.ts_ms > snap->ts_ms ? &e->ev : snap;
}

size_t gw_recent_len(const gw_recent *r) { return r ? r->len : 0; }
