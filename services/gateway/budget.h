/*
 * budget.h: what one user, one address and the whole gateway may spend, shared by all the
 * connections concerned (issue 13 item 4). Three pieces, all pure (time is an argument,
 * no sockets), used by ws_server.c:
 *
 *  - gw_budgets: one budget per (role, user), shared by every connection of that user: a
 *    message bucket (locations for a driver, everything for a rider), a control bucket
 *    (a driver's other messages), a byte bucket that every byte the user's connections
 *    send is charged to (pings, pongs and close frames included, so a ping flood drains
 *    it like any other flood) and the flood policy. A budget outlives its connections
 *    until its buckets would be full again, so reconnecting buys nothing.
 *  - gw_iprate: new connections per client address per second (token bucket per address).
 *  - gw_admit: the decision at the upgrade: 503 when the gateway holds its cap of
 *    connections, 429 when the address opens connections too fast, else admitted.
 *
 * Each table is a hash table with chaining; entries are swept when they no longer matter.
 * Not thread-safe (the event loop only).
 */
#ifndef MRD_GATEWAY_BUDGET_H
#define MRD_GATEWAY_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway.h"
#include "ratelimit.h"

/* The limits of one role. */
typedef struct gw_budget_limits {
  double msg_rate, msg_burst;         /* per second, tokens */
  double control_rate, control_burst; /* drivers only (ignored for riders) */
  double bytes_rate, bytes_burst;     /* received bytes per second, burst bytes */
  uint32_t flood_warnings;            /* rate-limit hits tolerated per window */
  int64_t flood_window_ms;
} gw_budget_limits;

/* One user's budget. */
typedef struct gw_budget {
  gw_role role;
  char user[MRD_ID_MAX + 1];
  gw_bucket msgs;    /* locations (driver) or every message (rider) */
  gw_bucket control; /* a driver's messages other than location */
  gw_bucket bytes;   /* every received byte, control frames included; may go into debt */
  gw_flood flood;
  int refs; /* connections holding it */
  struct gw_budget *next;
} gw_budget;

typedef struct gw_budgets gw_budgets;

/* A table with the limits of each role (indexed by gw_role, copied). NULL when out of
 * memory. */
gw_budgets *gw_budgets_new(const gw_budget_limits limits[2]);
/* Free the table and every budget in it; NULL is a no-op. */
void gw_budgets_free(gw_budgets *t);

/* The budget of (role, user), created with full buckets at now_ms when there is none;
 * its refs go up by one. Returns a pointer valid until its release and the sweep that
 * follows, or NULL when out of memory or user is not an id. */
gw_budget *gw_budgets_acquire(gw_budgets *t, gw_role role, const char *user, int64_t now_ms);

/* Give back a budget acquired before (refs go down by one; the budget stays in the table
 * until a sweep finds it unneeded). */
void gw_budgets_release(gw_budgets *t, gw_budget *b);

/* True when an unreferenced budget is indistinguishable from a new one at now_ms: every
 * bucket full again and no flood window open. */
bool gw_budget_idle(const gw_budget *b, int64_t now_ms);

/* What to do with a user's connections after bytes were charged to his byte budget. */
typedef enum gw_rx_verdict {
  GW_RX_OK = 0, /* within budget: read on (resume a paused connection) */
  GW_RX_PAUSE,  /* in debt: stop reading until the bucket is out of debt */
  GW_RX_CLOSE   /* in debt by more than a whole burst: a flood, close with 1008 */
} gw_rx_verdict;

/* Charge bytes received (by the kernel, control frames included) to b's byte bucket at
 * now_ms and say what to do. bytes = 0 only refills and re-evaluates. */
gw_rx_verdict gw_budget_rx_charge(gw_budget *b, uint64_t bytes, int64_t now_ms);

/* Free every unreferenced idle budget. Returns how many were freed. */
size_t gw_budgets_sweep(gw_budgets *t, int64_t now_ms);

/* Budgets held (referenced or not). */
size_t gw_budgets_count(const gw_budgets *t);

/* Check the invariants (counts agree, every budget in its bucket of the table, refs >= 0,
 * no duplicate key). Returns true when they hold (for tests). */
bool gw_budgets_check(const gw_budgets *t);

typedef struct gw_iprate gw_iprate;

#define GW_IP_MAX 63 /* bytes of a textual client address */

/* New connections per address: rate_per_s (> 0) with burst. NULL when out of memory. */
gw_iprate *gw_iprate_new(double rate_per_s, double burst);
/* Free; NULL is a no-op. */
void gw_iprate_free(gw_iprate *t);
/* One connection attempt from ip at now_ms: true (and a token taken) when allowed. An
 * address that cannot be stored (out of memory) is allowed; longer addresses are cut. */
bool gw_iprate_allow(gw_iprate *t, const char *ip, int64_t now_ms);
/* Free the addresses whose bucket is full again. Returns how many. */
size_t gw_iprate_sweep(gw_iprate *t, int64_t now_ms);
/* Addresses held. Test API (no service calls it): tests/gateway/test_gateway_budget.c. */
size_t gw_iprate_count(const gw_iprate *t);

/* The verdict at the upgrade. */
typedef enum gw_admit_verdict {
  GW_ADMIT_OK = 0,
  GW_ADMIT_FULL = 503,   /* open_conns >= max_conns: the gateway is at its cap */
  GW_ADMIT_IP_RATE = 429 /* this address opens connections too fast */
} gw_admit_verdict;

/* Decide on a new connection from ip at now_ms with open_conns open and a cap of
 * max_conns (0 = no cap). The cap is checked first and costs the address nothing; an
 * admitted attempt takes a token from the address's bucket. */
gw_admit_verdict gw_admit(gw_iprate *t, const char *ip, int open_conns, int max_conns,
                          int64_t now_ms);

#endif /* MRD_GATEWAY_BUDGET_H */
