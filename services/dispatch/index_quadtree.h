/*
 * index_quadtree.h: the dispatch core's spatial index (dsp_index) on the libgeo QuadTree
 * of moving points. Each driver is a point keyed by his handle, with his state and the
 * server time of his latest ping as the point's payload, so the tree alone can answer
 * "available drivers near here" (nearby cars, ops views).
 *
 * An adapter only: it owns its tree and a result buffer, and does nothing else.
 */
#ifndef DSP_INDEX_QUADTREE_H
#define DSP_INDEX_QUADTREE_H

#include "dispatch.h"
#include "geo/quadtree.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsp_qt_index dsp_qt_index;

/* A new index with an empty QuadTree. Errors: DSP_EINVAL (NULL out), DSP_ENOMEM.
 * Free with dsp_qt_index_free. */
int dsp_qt_index_new(dsp_qt_index **out);
/* Free the index and its tree; NULL is a no-op. */
void dsp_qt_index_free(dsp_qt_index *ix);
/* The dsp_index interface backed by ix (ix must outlive the shard using it). */
dsp_index dsp_qt_index_iface(dsp_qt_index *ix);
/* Test API (no service calls it): the unit tests. */
/* The tree itself (borrowed): for read-only searches by the caller. */
const geo_quadtree *dsp_qt_index_tree(const dsp_qt_index *ix);

#ifdef __cplusplus
}
#endif
#endif /* DSP_INDEX_QUADTREE_H */
