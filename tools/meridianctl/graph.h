/*
 * graph.h: the `meridianctl graph` verb (import, export, status, calibrate, eta-report) and
 * what its files share: reading the osm2pgrouting tables into a libgeo graph, and the
 * graph_meta table that records the import (source checksum) and the ETA calibration.
 * Not a library: these are the CLI's internals.
 */
#ifndef MCTL_GRAPH_H
#define MCTL_GRAPH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "geo/graph.h"

/* Entry point of `meridianctl graph ...`; argv[0] is "graph". Returns the exit code. */
int mctl_graph_main(int argc, char **argv);

/* What an arc costs when a graph is read from PostGIS. */
typedef enum mctl_cost {
  MCTL_COST_TIME,    /* travel time from length and maxspeed (or the class default) */
  MCTL_COST_LENGTH   /* length in decimetres, for shortest-distance routes */
} mctl_cost;

/* Connect to dsn (or MERIDIAN_PG_DSN when NULL); prints the error and returns NULL on
 * failure. */
PGconn *mctl_graph_connect(const char *dsn);

/* Read `ways` and `ways_vertices_pgr` of conn into a graph (largest strongly connected
 * component), with arc costs per cost. Prints progress and errors on stderr; NULL on
 * failure. stats may be NULL. */
geo_graph *mctl_graph_from_pg(PGconn *conn, mctl_cost cost, geo_graph_stats *stats);

/* graph_meta: a key/value table that import and calibrate write. get returns a malloc'd
 * string or NULL when absent; set returns false (error printed) on failure. */
char *mctl_graph_meta_get(PGconn *conn, const char *key);
bool mctl_graph_meta_set(PGconn *conn, const char *key, const char *value);
bool mctl_graph_meta_ensure(PGconn *conn);

/* Calibration as text ("class.primary=1.8 ... hour.0.7=1.1 ...") and back; parse returns
 * false on a malformed text. */
void mctl_calibration_format(const geo_graph_calibration *cal, char *buf, size_t cap);
bool mctl_calibration_parse(const char *text, geo_graph_calibration *cal);

/* 64-bit FNV-1a of a string, for the snapshot's source tag. */
uint64_t mctl_fnv64(const char *s);

/* The calibrate and eta-report subverbs (graph_eta.c). */
int mctl_graph_calibrate(int argc, char **argv);
int mctl_graph_eta_report(int argc, char **argv);
/* The export subverb (graph_export.c). */
int mctl_graph_export(int argc, char **argv);

#endif
