/*
 * hungarian.c: the Hungarian algorithm with row/column potentials (the shortest
 * augmenting path form, O(n^2 m) for n <= m), after the classic formulation in
 * e-maxx / cp-algorithms "Hungarian algorithm for solving the assignment problem".
 *
 * Forbidden pairs: +INFINITY is replaced by a cost BIG larger than any sum of finite costs
 * an assignment can have, so that the optimum first uses as few forbidden pairs as
 * possible (= assigns as many rows as possible) and then has the least finite total;
 * rows that end on a forbidden pair are reported unassigned. A wide matrix is solved as
 * is; a tall one (rows > cols) is solved transposed.
 */
#include "hungarian.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

int dsp_hungarian(const double *cost, size_t rows, size_t cols, int *row_to_col, double *total) {
  if (!cost || !row_to_col || rows == 0 || cols == 0 || rows > DSP_HUNGARIAN_MAX ||
      cols > DSP_HUNGARIAN_MAX)
    return -1;
  double max_finite = 0;
  for (size_t i = 0; i < rows * cols; i++) {
    double c = cost[i];
    if (isnan(c) || c < 0) return -1;
    if (isfinite(c) && c > max_finite) max_finite = c;
  }
  bool transposed = rows > cols;
  size_t n = transposed ? cols : rows; /* n <= m */
  size_t m = transposed ? rows : cols;
  double big = (max_finite + 1.0) * ((double)n + 1.0);

  /* 1-indexed arrays as in the textbook form; a[i][j] for i in 1..n, j in 1..m. */
  double *a = malloc(sizeof *a * n * m);
  double *u = calloc(n + 1, sizeof *u);
  double *v = calloc(m + 1, sizeof *v);
  double *minv = malloc(sizeof *minv * (m + 1));
  size_t *p = calloc(m + 1, sizeof *p);
  size_t *way = calloc(m + 1, sizeof *way);
  bool *used = malloc(sizeof *used * (m + 1));
  int rc = -1;
  if (!a || !u || !v || !minv || !p || !way || !used) goto fail;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < m; j++) {
      double c = transposed ? cost[j * cols + i] : cost[i * cols + j];
      a[i * m + j] = isfinite(c) ? c : big;
    }

  for (size_t i = 1; i <= n; i++) {
    p[0] = i;
    size_t j0 = 0;
    for (size_t j = 0; j <= m; j++) {
      minv[j] = INFINITY;
      used[j] = false;
    }
    do {
      used[j0] = true;
      size_t i0 = p[j0], j1 = 0;
      double delta = INFINITY;
      for (size_t j = 1; j <= m; j++) {
        if (used[j]) continue;
        double cur = a[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (size_t j = 0; j <= m; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      size_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }

  for (size_t r = 0; r < rows; r++) row_to_col[r] = -1;
  double sum = 0;
  for (size_t j = 1; j <= m; j++) {
    if (p[j] == 0) continue;
    size_t i = p[j] - 1, c = j - 1; /* row i of the solved matrix, column c */
    size_t r = transposed ? c : i, col = transposed ? i : c;
    double cst = cost[r * cols + col];
    if (!isfinite(cst)) continue;
    row_to_col[r] = (int)col;
    sum += cst;
  }
  if (total) *total = sum;
  rc = 0;
fail:
  free(a);
  free(u);
  free(v);
  free(minv);
  free(p);
  free(way);
  free(used);
  return rc;
}
