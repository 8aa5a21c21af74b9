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
  MCTL_COST_TIME,  /* travel time from length and maxspeed (or the class default) */
  MCTL_COST_LENGTH /* length in decimetres, for shortest-distance routes */
} mctl_cost;

/* Connect to dsn (or MERIDIAN_PG_DSN when NULL); prints the error and returns NULL on
 * failure. */
PGconn *mctl_graph_connect(const char *dsn);

/* Read `ways` and `ways_vertices_pgr` of conn into a graph (largest strongly connected
 * component), with arc costs per cost. Prints progress and errors on stderr; NULL on
 * failure. stats may be NULL. */
geo_graph *mctl_graph_from_pg(PGconn *conn, mctl_cost cost, geo_graph_stats *stats);

/* graph_meta: a key/value table (migration 0005_graph_meta) that import and calibrate
 * write. get returns a malloc'd string or NULL when absent (also when the table is);
 * set returns false (error printed) on failure; present says whether the table exists,
 * printing "run meridianctl db migrate" when it does not. */
char *mctl_graph_meta_get(PGconn *conn, const char *key);
bool mctl_graph_meta_set(PGconn *conn, const char *key, const char *value);
bool mctl_graph_meta_present(PGconn *conn);

/* The ETA model meridianctl fits and bakes into snapshots: libgeo's calibration (class
 * factors, per-arc cost, hour factors, trip base) and, for congestion that varies along
 * the map, a time factor per geohash cell (precision cell_precision, 0 = none) applied to
 * the arcs whose midpoint lies in the cell (1 for a cell not listed). */
#define MCTL_MAX_CELLS 4096
typedef struct mctl_eta_model {
  geo_graph_calibration cal;
  int cell_precision;
  size_t n_cells;
  char cell[MCTL_MAX_CELLS][13];      /* geohash strings */
  double cell_factor[MCTL_MAX_CELLS]; /* > 0 */
} mctl_eta_model;

/* A model with no calibration (identity, no cells). */
void mctl_model_identity(mctl_eta_model *m);

/* The model as text, one "key=value" per line ("class.primary=1.8", "hour.weekday.7=1.1",
 * "arc_penalty_ms=...", "trip_base_ms=...", "cell_precision=6", "cell.dr5ru7=1.2"), after
 * the '#' comment lines of header (may be NULL). Returns a malloc'd string (NULL when out
 * of memory). */
char *mctl_model_format(const mctl_eta_model *m, const char *header);

/* Parse a text of mctl_model_format ('#' starts a comment line; any whitespace separates
 * entries). Returns false on a malformed or out-of-range entry. */
bool mctl_model_parse(const char *text, mctl_eta_model *m);

/* The cell factor of every arc of g (g's arc count entries, malloc'd; NULL when out of
 * memory); all 1 without cells. */
double *mctl_model_arc_factors(const mctl_eta_model *m, const geo_graph *g);

/* The geohash (precision characters, into out of GEO_GEOHASH_BUF bytes) of the midpoint of
 * arc a's end nodes: the cell whose factor the arc takes. */
geo_err mctl_arc_cell(const geo_graph *g, uint32_t a, int precision, char *out);

/* The calibrated copy of raw (geo_graph_calibrated_arcs with the model's cell factors).
 * Returns a geo_err. */
geo_err mctl_model_apply(const mctl_eta_model *m, const geo_graph *raw, geo_graph **out);

/* The whole file at path as a NUL-terminated malloc'd string; NULL when unreadable or over
 * 16 MB. */
char *mctl_read_text(const char *path);

/* The calibrate and eta-report subverbs (graph_eta.c). */
int mctl_graph_calibrate(int argc, char **argv);
int mctl_graph_eta_report(int argc, char **argv);
/* The export subverb (graph_export.c). */
int mctl_graph_export(int argc, char **argv);

#endif
