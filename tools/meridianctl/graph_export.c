/*
 * graph_export.c: reading osm2pgrouting's tables into a libgeo graph, and `graph export`:
 * calibrate, contract, index, and write the snapshot services map. Arc travel time is
 * length / speed, the speed being the way's maxspeed in its direction (osm2pgrouting fills
 * it from the OSM tag or its car profile's class default) or, when missing, the class
 * default below; a negative cost in a direction means one-way (closed).
 */
#define _POSIX_C_SOURCE 200809L
#include "graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "geo/ch.h"
#include "geo/snap.h"
#include "geo/snapshot.h"
#include "mrd/clock.h"
#include "mrd/hash.h"

/* km/h when a way has no maxspeed: osm2pgrouting's car profile values. */
static double default_speed_kmh(geo_road_class c) {
  switch (c) {
  case GEO_ROAD_MOTORWAY:
  case GEO_ROAD_MOTORWAY_LINK: return 130;
  case GEO_ROAD_TRUNK:
  case GEO_ROAD_TRUNK_LINK: return 110;
  case GEO_ROAD_PRIMARY:
  case GEO_ROAD_PRIMARY_LINK:
  case GEO_ROAD_SECONDARY:
  case GEO_ROAD_SECONDARY_LINK:
  case GEO_ROAD_TERTIARY:
  case GEO_ROAD_TERTIARY_LINK:
  case GEO_ROAD_UNCLASSIFIED: return 90;
  case GEO_ROAD_LIVING_STREET: return 20;
  default: return 50;
  }
}

/* Parse "LINESTRING(x y,x y,...)" into pts (lat/lng); returns the count or -1. */
static long parse_linestring(const char *s, geo_latlng **pts, size_t *cap) {
  const char *p = strchr(s, '(');
  if (p == NULL) return -1;
  p++;
  long n = 0;
  while (*p && *p != ')') {
    char *end;
    double x = strtod(p, &end);
    if (end == p) return -1;
    p = end;
    double y = strtod(p, &end);
    if (end == p) return -1;
    p = end;
    if ((size_t)n == *cap) {
      size_t nc = *cap ? *cap * 2 : 64;
      geo_latlng *np = realloc(*pts, nc * sizeof *np);
      if (np == NULL) return -1;
      *pts = np;
      *cap = nc;
    }
    (*pts)[n++] = (geo_latlng){y, x};
    while (*p == ',' || *p == ' ') p++;
  }
  return n;
}

static uint32_t time_ms(double length_m, double speed_kmh) {
  double ms = length_m / (speed_kmh / 3.6) * 1000.0;
  return ms >= 2e9 ? 2000000000u : (uint32_t)llround(ms);
}

geo_graph *mctl_graph_from_pg(PGconn *c, mctl_cost cost, geo_graph_stats *stats) {
  geo_graph *g = NULL;
  geo_graph_builder *b = NULL;
  PGresult *rv = NULL, *rw = NULL;
  geo_latlng *pts = NULL;
  size_t cap = 0;
  int64_t *ids = NULL;
  if (geo_graph_builder_new(&b) != GEO_OK) goto fail;
  rv = PQexec(c, "SELECT id, ST_Y(the_geom), ST_X(the_geom) FROM ways_vertices_pgr ORDER BY id");
  if (PQresultStatus(rv) != PGRES_TUPLES_OK) {
    fprintf(stderr, "meridianctl graph: reading ways_vertices_pgr: %s", PQerrorMessage(c));
    goto fail;
  }
  int nv = PQntuples(rv);
  ids = malloc(((size_t)nv + 1) * sizeof *ids);
  if (ids == NULL) goto fail;
  for (int i = 0; i < nv; i++) {
    ids[i] = atoll(PQgetvalue(rv, i, 0));
    geo_latlng p = {atof(PQgetvalue(rv, i, 1)), atof(PQgetvalue(rv, i, 2))};
    if (geo_graph_builder_add_node(b, ids[i], p, NULL) != GEO_OK) {
      fprintf(stderr, "meridianctl graph: vertex %lld has a bad position\n", (long long)ids[i]);
      goto fail;
    }
  }
  rw = PQexec(c,
              "SELECT w.gid, w.source, w.target, w.length_m, w.cost_s, w.reverse_cost_s, "
              "w.maxspeed_forward, w.maxspeed_backward, coalesce(c.tag_value, ''), "
              "ST_AsText(w.the_geom) FROM ways w LEFT JOIN configuration c ON c.tag_id = w.tag_id "
              "ORDER BY w.gid");
  if (PQresultStatus(rw) != PGRES_TUPLES_OK) {
    fprintf(stderr, "meridianctl graph: reading ways: %s", PQerrorMessage(c));
    goto fail;
  }
  int nw = PQntuples(rw);
  long skipped = 0;
  for (int i = 0; i < nw; i++) {
    int64_t src = atoll(PQgetvalue(rw, i, 1)), dst = atoll(PQgetvalue(rw, i, 2));
    /* vertices are sorted by id: binary search */
    long lo = 0, hi = nv;
    uint32_t iv[2];
    int64_t want[2] = {src, dst};
    bool found = true;
    for (int k = 0; k < 2; k++) {
      lo = 0, hi = nv;
      while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (ids[mid] < want[k])
          lo = mid + 1;
        else
          hi = mid;
      }
      if (lo == nv || ids[lo] != want[k]) found = false;
      iv[k] = (uint32_t)lo;
    }
    double len = atof(PQgetvalue(rw, i, 3));
    double cost_s = atof(PQgetvalue(rw, i, 4)), rcost_s = atof(PQgetvalue(rw, i, 5));
    double vf = atof(PQgetvalue(rw, i, 6)), vb = atof(PQgetvalue(rw, i, 7));
    geo_road_class cls = geo_road_class_from_name(PQgetvalue(rw, i, 8));
    long np = parse_linestring(PQgetvalue(rw, i, 9), &pts, &cap);
    if (!found || np < 2 || !isfinite(len) || len < 0) {
      skipped++;
      continue;
    }
    if (!(vf > 0)) vf = default_speed_kmh(cls);
    if (!(vb > 0)) vb = default_speed_kmh(cls);
    uint32_t fwd = GEO_TIME_NONE, bwd = GEO_TIME_NONE;
    if (cost_s >= 0) fwd = cost == MCTL_COST_TIME ? time_ms(len, vf) : (uint32_t)llround(len * 10);
    if (rcost_s >= 0) bwd = cost == MCTL_COST_TIME ? time_ms(len, vb) : (uint32_t)llround(len * 10);
    if (fwd == GEO_TIME_NONE && bwd == GEO_TIME_NONE) {
      skipped++;
      continue;
    }
    geo_graph_road r = {iv[0],   iv[1],         fwd, bwd, len, cls, atoll(PQgetvalue(rw, i, 0)),
                        pts + 1, (size_t)np - 2};
    if (geo_graph_builder_add_road(b, &r) != GEO_OK) {
      skipped++;
      continue;
    }
  }
  if (skipped) fprintf(stderr, "graph: skipped %ld malformed or closed ways\n", skipped);
  geo_graph_build_opts o = {true, true};
  geo_err e = geo_graph_builder_build(b, &o, &g, stats);
  if (e != GEO_OK) {
    fprintf(stderr, "meridianctl graph: building the graph: %s\n", geo_strerror(e));
    g = NULL;
  }
fail:
  PQclear(rv);
  PQclear(rw);
  free(pts);
  free(ids);
  geo_graph_builder_free(b);
  return g;
}

/* What the snapshot was made from: the import and the whole calibration text. */
static uint64_t source_tag(PGconn *c, const char *cal_text) {
  char *sum = mctl_graph_meta_get(c, "source_checksum"),
       *at = mctl_graph_meta_get(c, "imported_at");
  char buf[1024];
  snprintf(buf, sizeof buf, "%s|%s|", sum ? sum : "", at ? at : "");
  free(sum);
  free(at);
  uint64_t h = mrd_fnv1a64_str(MRD_FNV1A64_SEED, buf),
           cal = mrd_fnv1a64_str(MRD_FNV1A64_SEED, cal_text);
  return h ^ (cal * 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2));
}

int mctl_graph_export(int argc, char **argv) {
  const char *out = NULL, *dsn = NULL, *factors = NULL;
  bool if_stale = false, no_cal = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
      out = argv[++i];
    else if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc)
      dsn = argv[++i];
    else if (strcmp(argv[i], "--factors") == 0 && i + 1 < argc)
      factors = argv[++i];
    else if (strcmp(argv[i], "--if-stale") == 0)
      if_stale = true;
    else if (strcmp(argv[i], "--no-calibration") == 0)
      no_cal = true;
    else {
      fprintf(stderr, "meridianctl graph export: unexpected argument %s\n", argv[i]);
      return 2;
    }
  }
  if (out == NULL) {
    fprintf(stderr, "meridianctl graph export: --out FILE is required\n");
    return 2;
  }
  PGconn *c = mctl_graph_connect(dsn);
  if (c == NULL) return 1;
  int rc = 1;
  geo_graph *raw = NULL, *g = NULL;
  char *cal_text = NULL;
  mctl_eta_model *model = malloc(sizeof *model);
  if (model == NULL) goto done;
  mctl_model_identity(model);
  if (factors) {
    cal_text = mctl_read_text(factors);
    if (cal_text == NULL) {
      fprintf(stderr, "meridianctl graph export: cannot read %s\n", factors);
      goto done;
    }
  } else if (!no_cal) {
    cal_text = mctl_graph_meta_get(c, "calibration");
  }
  if (cal_text && !mctl_model_parse(cal_text, model)) {
    fprintf(stderr, "meridianctl graph export: malformed calibration factors in %s\n",
            factors ? factors : "graph_meta");
    goto done;
  }
  uint64_t tag = source_tag(c, cal_text ? cal_text : "");
  if (if_stale) {
    geo_graph *old = NULL;
    if (geo_snapshot_load(out, &old) == GEO_OK) {
      bool same = geo_graph_source_tag(old) == tag;
      geo_graph_free(old);
      if (same) {
        fprintf(stderr, "graph export: %s is up to date\n", out);
        rc = 0;
        goto done;
      }
    }
  }
  double t0 = mrd_mono_s();
  fprintf(stderr, "graph export: reading ways from PostGIS\n");
  geo_graph_stats st;
  raw = mctl_graph_from_pg(c, MCTL_COST_TIME, &st);
  if (raw == NULL) {
    fprintf(stderr,
            "meridianctl graph export: no graph (run meridianctl graph import FILE first)\n");
    goto done;
  }
  fprintf(stderr,
          "graph export: largest strongly connected component: %u nodes, %u arcs "
          "(dropped %u nodes and %u arcs outside it)\n",
          st.nodes, st.arcs, st.dropped_nodes, st.dropped_arcs);
  if (mctl_model_apply(model, raw, &g) != GEO_OK) {
    fprintf(stderr, "meridianctl graph export: applying the calibration failed\n");
    goto done;
  }
  if (cal_text)
    fprintf(stderr, "graph export: calibration from %s applied (%zu area cells)\n",
            factors ? factors : "graph_meta", model->n_cells);
  else
    fprintf(stderr, "graph export: calibration: none (raw speeds)\n");
  double t1 = mrd_mono_s();
  geo_ch_stats cs;
  geo_err e = geo_ch_build(g, &cs);
  if (e != GEO_OK) {
    fprintf(stderr, "meridianctl graph export: contraction hierarchy: %s\n", geo_strerror(e));
    goto done;
  }
  double t2 = mrd_mono_s();
  fprintf(stderr,
          "graph export: contraction hierarchy: %u up + %u down edges, %u shortcuts (%.2f s)\n",
          cs.up_edges, cs.down_edges, cs.shortcuts, t2 - t1);
  e = geo_graph_build_rtree(g);
  if (e != GEO_OK) {
    fprintf(stderr, "meridianctl graph export: R-tree: %s\n", geo_strerror(e));
    goto done;
  }
  geo_graph_set_source_tag(g, tag);
  e = geo_snapshot_write(g, out);
  if (e != GEO_OK) {
    fprintf(stderr, "meridianctl graph export: writing %s: %s\n", out, geo_strerror(e));
    goto done;
  }
  struct stat sb;
  stat(out, &sb);
  fprintf(stderr, "graph export: wrote %s (%.1f MB) in %.2f s\n", out, sb.st_size / 1e6,
          mrd_mono_s() - t0);
  rc = 0;
done:
  free(model);
  free(cal_text);
  geo_graph_free(raw);
  geo_graph_free(g);
  PQfinish(c);
  return rc;
}
