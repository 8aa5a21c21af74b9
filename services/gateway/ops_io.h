/*
 * ops_io.h: the hooks by which the gateway's lws side (ws_server.c) and Kafka side
 * (kafka_io.c) hand the ops stream its work: /v1/ops connections, dispatch events, the
 * road graph over HTTP and the page's static files. ops_io.c implements them on top of the
 * pure ops.c; docs/protocol.md "Ops stream" is the contract.
 */
#ifndef MRD_GATEWAY_OPS_IO_H
#define MRD_GATEWAY_OPS_IO_H

#include "server.h"

typedef struct gw_ops_io gw_ops_io;

/* Build the city state, read the configuration, load the road graph, seed the live trips
 * from Redis. After the shard map, Redis and Kafka, before gw_ws_start's context. 0 or
 * MRD_ENOMEM. */
int gw_ops_io_start(gw_server *s);
/* Start the stream's timer on the loop (after the lws context exists). 0, or MRD_ESTATE
 * when gw_ops_io_start has not run. */
int gw_ops_io_timers(gw_server *s);
/* The /ops static mount (the page's files), or NULL. */
const struct lws_http_mount *gw_ops_io_mount(gw_server *s);
void gw_ops_io_stop(gw_server *s);

/* A dispatch event (every replica reads them all). */
void gw_ops_io_event(gw_server *s, const mrd_dispatch_event *ev);

/* Is this upgrade request for /v1/ops? */
bool gw_ops_io_is_ops(struct lws *wsi);
/* Before the upgrade: 0 (and the token's sub in user and its exp in exp_s, either of which
 * may be NULL), or the HTTP status to answer: 401 bad token, 403 not an ops token, 503 too
 * many ops connections. */
int gw_ops_io_filter(gw_server *s, struct lws *wsi, char *user, int64_t *exp_s);
/* A new ops connection (user already in c->user): 0, or MRD_EFULL (as many ops connections
 * as allowed) or MRD_ENOMEM, and the caller closes it. */
int gw_ops_io_open(gw_server *s, gw_conn *c);
/* The open ops connections (borrowed, valid until the next open or close): their number. */
int gw_ops_io_conns(gw_server *s, gw_conn *const **conns);
/* A complete message from an ops client (in c->rx); -1 closes. */
int gw_ops_io_receive(gw_server *s, gw_conn *c);
/* The connection is gone (before its queue is freed). */
void gw_ops_io_close(gw_server *s, gw_conn *c);

/* HTTP GET path: 0 with *answered saying whether the path is the ops stream's, and then the
 * answer (body malloc'd, taken by the caller); MRD_ENOMEM. */
int gw_ops_io_http(gw_server *s, const char *path, bool *answered, unsigned *status,
                   const char **type, char **body, size_t *len);

#endif /* MRD_GATEWAY_OPS_IO_H */
