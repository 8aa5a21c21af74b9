/*
 * dsp_geo_err.h: the one mapping of libgeo's geo_err (0 or a positive GEO_E*) to the dispatch
 * core's DSP_E* (0 or negative), for the dispatch code that calls libgeo: the driver index
 * (index_quadtree.c), the router (router_graph.c) and the fare quote (quote.c). Each maps a
 * libgeo result here, once, where the call is made (services/common/README.md, "Errors: one
 * convention per layer, mapped once at the boundary"). Not a general error facility.
 */
#ifndef DSP_GEO_ERR_H
#define DSP_GEO_ERR_H

#include "dispatch.h"
#include "geo/geo.h"

/* GEO_OK -> DSP_OK, GEO_ENOMEM -> DSP_ENOMEM, GEO_ENOTFOUND and GEO_EUNREACHABLE (no
 * road near, no route: a query that found nothing) -> DSP_ENOTFOUND, GEO_ERANGE ->
 * DSP_ERANGE; everything else (GEO_EINVAL; files and parsing, which are not the core's to
 * tell apart) -> DSP_EINVAL. */
static inline int dsp_err_of_geo(geo_err e) {
  switch (e) {
  case GEO_OK: return DSP_OK;
  case GEO_ENOMEM: return DSP_ENOMEM;
  case GEO_ENOTFOUND:
  case GEO_EUNREACHABLE: return DSP_ENOTFOUND;
  case GEO_ERANGE: return DSP_ERANGE;
  default: return DSP_EINVAL;
  }
}

#endif /* DSP_GEO_ERR_H */
