/*
 * area.h: the service area, a set of polygons read from GeoJSON, and the point-in-polygon
 * test the gateway applies to driver positions and pickups.
 *
 * Accepts a Polygon, MultiPolygon, Feature, FeatureCollection or GeometryCollection (the
 * project's data/roads/manhattan-boundary.geojson is a GeometryCollection of one
 * MultiPolygon). Rings follow the even-odd rule inside each polygon, so holes work; a point
 * is inside the area when it is inside any polygon. Coordinates are planar lon/lat (fine
 * for a city; not for polygons spanning the antimeridian or a pole). Not a geometry library.
 */
#ifndef MRD_GATEWAY_AREA_H
#define MRD_GATEWAY_AREA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct gw_area gw_area;

/* Build an area from GeoJSON text (len bytes). Returns the area (free with gw_area_free),
 * or NULL with a one-line reason in err (errcap bytes) for bad JSON, an unsupported
 * geometry type, a ring of fewer than 4 positions, non-finite or out-of-range coordinates,
 * no polygon at all, or out of memory. */
gw_area *gw_area_from_geojson(const char *text, size_t len, char *err, size_t errcap);

/* gw_area_from_geojson on the contents of the file at path; err also covers I/O errors. */
gw_area *gw_area_load(const char *path, char *err, size_t errcap);

/* True when (lat, lon) is inside the area (points exactly on an edge may go either way). */
bool gw_area_contains(const gw_area *area, double lat, double lon);
/* The same answer from every edge of every ring (no latitude strips): the reference that
 * gw_area_contains is tested against. */
bool gw_area_contains_scan(const gw_area *area, double lat, double lon);

/* Number of polygons and of vertices in all rings (for the startup log line). */
size_t gw_area_polygon_count(const gw_area *area);
size_t gw_area_vertex_count(const gw_area *area);

/* Free an area; NULL is a no-op. */
void gw_area_free(gw_area *area);

#endif /* MRD_GATEWAY_AREA_H */
