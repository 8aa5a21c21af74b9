/*
 * hungarian.h: optimal assignment of rows to columns on a cost matrix (the Hungarian
 * algorithm, Kuhn-Munkres with potentials, O(n^2 m)), used by dispatch's batched mode to
 * give each waiting request one driver so that the total pickup ETA is least.
 *
 * A pure function: no clock, no allocation hooks beyond malloc, no state between calls.
 * It is not a matcher: which rows and columns go in, and what happens with the result,
 * is matcher.c's business. Forbidden pairs (a driver who cannot reach a pickup) are
 * written as +INFINITY; the result never uses one.
 */
#ifndef DSP_HUNGARIAN_H
#define DSP_HUNGARIAN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest rows or cols accepted (the work grows as n^2 m; 1024 is ~1e9 steps). */
#define DSP_HUNGARIAN_MAX 1024

/* Assign rows to columns of the row-major rows x cols matrix cost (cost[r * cols + c]).
 * Every entry is a finite value >= 0, or +INFINITY for a pair that must not be used.
 * The result maximises the number of rows that get a column (each column used at most
 * once, never through an INFINITY pair) and, among those assignments, minimises the sum
 * of the costs used. row_to_col[r] receives the column of row r, or -1 for none.
 * *total (may be NULL) receives that sum.
 * Returns 0; -1 with nothing written when an argument is invalid (NULL, a size of 0 or
 * above DSP_HUNGARIAN_MAX, a negative or NaN cost) or memory runs out. */
int dsp_hungarian(const double *cost, size_t rows, size_t cols, int *row_to_col, double *total);

#ifdef __cplusplus
}
#endif
#endif /* DSP_HUNGARIAN_H */
