/*
 * snapshot.h: the binary graph snapshot that `meridianctl graph export` writes and services
 * map into memory. One file holds a geo_graph: nodes, forward and reverse CSR, arc times,
 * lengths, classes, twins and shapes, the calibration, and when present its contraction
 * hierarchy and the R-tree of its segments. The format (docs/routing.md) is little-endian,
 * versioned (GEO_SNAPSHOT_VERSION) and checksummed (CRC-32 of the whole file, its checksum field
 * read as 0); opening checks the checksum and then every offset, index and count, so a truncated,
 * corrupt or foreign file is refused with GEO_EFORMAT, never a crash.
 *
 * This is libgeo's only file I/O; it uses POSIX open/mmap.
 */
#ifndef GEO_SNAPSHOT_H
#define GEO_SNAPSHOT_H

#include "geo/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GEO_SNAPSHOT_VERSION 2u /* 2: day-of-week factors in the calibration */

/* Write g (with its hierarchy and R-tree, when built) to path: written to "path.tmp" then
 * renamed, so readers never see a half-written file. Errors: GEO_EINVAL, GEO_ENOMEM,
 * GEO_EIO (errno tells why). */
GEO_EXPORT geo_err geo_snapshot_write(const geo_graph *g, const char *path);

/* Map the snapshot at path read-only and check it; *out is a read-only graph that owns the
 * mapping (geo_graph_free unmaps it). Errors: GEO_EINVAL, GEO_EIO (cannot open or map),
 * GEO_EFORMAT (truncated, corrupt, wrong magic or version), GEO_ENOMEM. */
GEO_EXPORT geo_err geo_snapshot_load(const char *path, geo_graph **out);

/* The same over a snapshot already in memory (8-byte aligned, len bytes); no copy: buf must
 * outlive the graph. For tests and fuzzing. Errors as geo_snapshot_load. */
GEO_EXPORT geo_err geo_snapshot_open_buffer(const void *buf, size_t len, geo_graph **out);

/* CRC-32 (IEEE 802.3, the zlib one) of len bytes, continuing from crc (0 to start). */
GEO_EXPORT uint32_t geo_crc32(uint32_t crc, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* GEO_SNAPSHOT_H */
