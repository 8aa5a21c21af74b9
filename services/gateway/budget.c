/*
 * budget.c: per-user budgets, per-address connection rates and the admission decision of
 * budget.h. Both tables hash their key with FNV-1a into a fixed number of chains (a few
 * thousand users per gateway: chains stay short) and never rehash.
 */
#define _POSIX_C_SOURCE 200809L
#include "budget.h"
#include "mrd/hash.h"

#include <stdlib.h>
#include <string.h>

#define BUDGET_CHAINS 4096
#define IP_CHAINS 1024

struct gw_budgets {
  gw_budget_limits limits[2];
  gw_budget *chain[BUDGET_CHAINS];
  size_t count;
};

static size_t budget_chain(gw_role role, const char *user) {
  return (size_t)(mrd_fnv1a64_str(MRD_FNV1A64_SEED ^ (uint64_t)role, user) % BUDGET_CHAINS);
}

gw_budgets *gw_budgets_new(const gw_budget_limits limits[2]) {
  gw_budgets *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->limits[0] = limits[0];
  t->limits[1] = limits[1];
  return t;
}

void gw_budgets_free(gw_budgets *t) {
  if (!t) return;
  for (size_t i = 0; i < BUDGET_CHAINS; i++) {
    gw_budget *b = t->chain[i];
    while (b) {
      gw_budget *next = b->next;
      free(b);
      b = next;
    }
  }
  free(t);
}

gw_budget *gw_budgets_acquire(gw_budgets *t, gw_role role, const char *user, int64_t now_ms) {
  if (!mrd_id_valid(user) || (role != GW_ROLE_DRIVER && role != GW_ROLE_RIDER)) return NULL;
  size_t c = budget_chain(role, user);
  for (gw_budget *b = t->chain[c]; b; b = b->next) {
    if (b->role == role && strcmp(b->user, user) == 0) {
      b->refs++;
      return b;
    }
  }
  gw_budget *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  const gw_budget_limits *l = &t->limits[role];
  b->role = role;
  memcpy(b->user, user, strlen(user) + 1);
  gw_bucket_init(&b->msgs, l->msg_rate, l->msg_burst, now_ms);
  gw_bucket_init(&b->control, l->control_rate, l->control_burst, now_ms);
  gw_bucket_init(&b->bytes, l->bytes_rate, l->bytes_burst, now_ms);
  gw_flood_init(&b->flood, l->flood_warnings, l->flood_window_ms);
  b->refs = 1;
  b->next = t->chain[c];
  t->chain[c] = b;
  t->count++;
  return b;
}

void gw_budgets_release(gw_budgets *t, gw_budget *b) {
  (void)t;
  if (b && b->refs > 0) b->refs--;
}

static bool bucket_full(const gw_bucket *b, int64_t now_ms) {
  return gw_bucket_level(b, now_ms) >= b->burst;
}

bool gw_budget_idle(const gw_budget *b, int64_t now_ms) {
  bool flood_open = b->flood.hits > 0 && now_ms - b->flood.window_start_ms < b->flood.window_ms;
  return b->refs == 0 && !flood_open && bucket_full(&b->msgs, now_ms) &&
         bucket_full(&b->control, now_ms) && bucket_full(&b->bytes, now_ms);
}

gw_rx_verdict gw_budget_rx_charge(gw_budget *b, uint64_t bytes, int64_t now_ms) {
  double left = gw_bucket_charge(&b->bytes, (double)bytes, now_ms);
  if (left >= 0) return GW_RX_OK;
  return left < -b->bytes.burst ? GW_RX_CLOSE : GW_RX_PAUSE;
}

size_t gw_budgets_sweep(gw_budgets *t, int64_t now_ms) {
  size_t freed = 0;
  for (size_t i = 0; i < BUDGET_CHAINS; i++) {
    gw_budget **pp = &t->chain[i];
    while (*pp) {
      gw_budget *b = *pp;
      if (gw_budget_idle(b, now_ms)) {
        *pp = b->next;
        free(b);
        t->count--;
        freed++;
      } else {
        pp = &b->next;
      }
    }
  }
  return freed;
}

size_t gw_budgets_count(const gw_budgets *t) { return t->count; }

bool gw_budgets_check(const gw_budgets *t) {
  size_t n = 0;
  for (size_t i = 0; i < BUDGET_CHAINS; i++) {
    for (const gw_budget *b = t->chain[i]; b; b = b->next) {
      n++;
      if (b->refs < 0 || budget_chain(b->role, b->user) != i) return false;
      for (const gw_budget *o = b->next; o; o = o->next)
        if (o->role == b->role && strcmp(o->user, b->user) == 0) return false;
    }
  }
  return n == t->count;
}

/* ---- addresses ---------------------------------------------------------------------- */

typedef struct ip_entry {
  char ip[GW_IP_MAX + 1];
  gw_bucket bucket;
  struct ip_entry *next;
} ip_entry;

struct gw_iprate {
  double rate_per_s, burst;
  ip_entry *chain[IP_CHAINS];
  size_t count;
};

gw_iprate *gw_iprate_new(double rate_per_s, double burst) {
  gw_iprate *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->rate_per_s = rate_per_s;
  t->burst = burst;
  return t;
}

void gw_iprate_free(gw_iprate *t) {
  if (!t) return;
  for (size_t i = 0; i < IP_CHAINS; i++) {
    ip_entry *e = t->chain[i];
    while (e) {
      ip_entry *next = e->next;
      free(e);
      e = next;
    }
  }
  free(t);
}

bool gw_iprate_allow(gw_iprate *t, const char *ip, int64_t now_ms) {
  char key[GW_IP_MAX + 1];
  size_t n = strnlen(ip, GW_IP_MAX);
  memcpy(key, ip, n);
  key[n] = '\0';
  size_t c = (size_t)(mrd_fnv1a64_str(MRD_FNV1A64_SEED, key) % IP_CHAINS);
  ip_entry *e = t->chain[c];
  while (e && strcmp(e->ip, key) != 0) e = e->next;
  if (!e) {
    e = calloc(1, sizeof *e);
    if (!e) return true; /* cannot count it: let it through rather than refuse everyone */
    memcpy(e->ip, key, n + 1);
    gw_bucket_init(&e->bucket, t->rate_per_s, t->burst, now_ms);
    e->next = t->chain[c];
    t->chain[c] = e;
    t->count++;
  }
  return gw_bucket_take(&e->bucket, now_ms);
}

size_t gw_iprate_sweep(gw_iprate *t, int64_t now_ms) {
  size_t freed = 0;
  for (size_t i = 0; i < IP_CHAINS; i++) {
    ip_entry **pp = &t->chain[i];
    while (*pp) {
      ip_entry *e = *pp;
      if (bucket_full(&e->bucket, now_ms)) {
        *pp = e->next;
        free(e);
        t->count--;
        freed++;
      } else {
        pp = &e->next;
      }
    }
  }
  return freed;
}

size_t gw_iprate_count(const gw_iprate *t) { return t->count; }

gw_admit_verdict gw_admit(gw_iprate *t, const char *ip, int open_conns, int max_conns,
                          int64_t now_ms) {
  if (max_conns > 0 && open_conns >= max_conns) return GW_ADMIT_FULL;
  if (t && !gw_iprate_allow(t, ip, now_ms)) return GW_ADMIT_IP_RATE;
  return GW_ADMIT_OK;
}
