/*
 * ws.h: the load generator's socket layer: every simulated driver and rider is one
 * libwebsockets client connection on one lws context, served by one thread's event loop
 * (no thread per connection; epoll by default). It implements the simulation's lg_io (open, send,
 * close), feeds it what arrives, and ticks it on a timer. It knows no message but the frames.
 */
#ifndef LG_WS_H
#define LG_WS_H

#include <stddef.h>
#include <stdint.h>

#include "sim.h"

/* Where to connect and how to authenticate. */
typedef struct lg_ws_opts {
  const char *host; /* "127.0.0.1" */
  int port;
  const char *base_path; /* "" or a prefix before /v1/... */
  const char *jwt_secret;
  int max_connecting;     /* handshakes in flight at once */
  int tick_ms;            /* simulation tick */
  int progress;           /* print a progress line on stderr every second */
  const char *event_loop; /* "epoll" (libev under lws; NULL means it) or "poll" (lws's own:
                             every wake-up polls every socket) */
  double keepalive_s;     /* WebSocket ping on a connection silent this long, hang up at twice
                             it (0 means 5 s) */
} lg_ws_opts;

/* Parse "ws://host:port[/prefix]" into host (hostcap bytes), *port and prefix. Returns 0 or
 * -1 for anything else (wss:// is not supported). */
int lg_ws_parse_url(const char *url, char *host, size_t hostcap, int *port, char *prefix,
                    size_t prefixcap);

/* Run the replay made by make_sim (called once the socket layer can give it an lg_io) to
 * its end. Returns 0, or -1 with a reason in err (lws context, or make_sim failed). *out_sim
 * receives the simulation, which the caller frees. volatile flag: set to stop early. */
int lg_ws_run(const lg_ws_opts *o, size_t drivers, size_t max_riders,
              lg_sim *(*make_sim)(void *ud, const lg_io *io, char *err, size_t errcap), void *ud,
              volatile int *stop_flag, lg_sim **out_sim, char *err, size_t errcap);

/* Monotonic wall clock in µs, and the Unix time in ms. */
int64_t lg_now_us(void);
int64_t lg_epoch_ms(void);

#endif /* LG_WS_H */
