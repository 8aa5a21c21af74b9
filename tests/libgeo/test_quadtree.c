/* test_quadtree.c: the QuadTree of moving points against a linear scan (kNN, radius, box,
 * with filters, ties, duplicates, cell borders, the antimeridian and the poles, before and
 * after long random sequences of moves and removes), its invariants, moves that stay in a
 * leaf allocating nothing, many points on one spot, and out-of-memory at every allocation.
 * Random tests print their seed; SEED= replays. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "geo/geometry.h"
#include "geo/quadtree.h"
#include "testutil.h"

/* ---- the model: a plain array, searched by scanning -------------------------------- */

typedef struct model {
  uint64_t *id;
  geo_latlng *pos;
  geo_qt_payload *pl;
  size_t n, cap;
  size_t *by_lat; /* indices sorted by latitude, rebuilt before each query batch */
} model;

static double quantize(double deg) { return (double)lround(deg * 1e7) / 1e7; }

static void model_init(model *m, size_t cap) {
  m->id = malloc(cap * sizeof *m->id);
  m->pos = malloc(cap * sizeof *m->pos);
  m->pl = malloc(cap * sizeof *m->pl);
  m->by_lat = malloc(cap * sizeof *m->by_lat);
  m->n = 0;
  m->cap = cap;
}

static void model_free(model *m) {
  free(m->id);
  free(m->pos);
  free(m->pl);
  free(m->by_lat);
}

static geo_qt_payload payload_of(uint64_t id) {
  /* ts over the whole documented range [-2^55, 2^55), negative too. */
  (void)id;
  int64_t ts = (int64_t)tu_below(UINT64_C(1) << 56) - (INT64_C(1) << 55);
  return (geo_qt_payload){(uint8_t)(tu_next() % 256), ts};
}

static model *g_sort_model;
static int cmp_lat(const void *a, const void *b) {
  double x = g_sort_model->pos[*(const size_t *)a].lat,
         y = g_sort_model->pos[*(const size_t *)b].lat;
  return x < y ? -1 : x > y;
}

static void model_sort(model *m) {
  for (size_t i = 0; i < m->n; i++) m->by_lat[i] = i;
  g_sort_model = m;
  qsort(m->by_lat, m->n, sizeof *m->by_lat, cmp_lat);
}

static size_t lower_lat(const model *m, double lat) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (m->pos[m->by_lat[mid]].lat < lat)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static bool avail_filter(const geo_qt_point *p, void *ud) {
  (void)ud;
  return p->payload.state % 4 == 1;
}

static bool hit_less(const geo_qt_hit *a, const geo_qt_hit *b) {
  return a->dist_m < b->dist_m || (a->dist_m == b->dist_m && a->point.id < b->point.id);
}

/* Linear scan kNN: every point is considered; the latitude sweep only orders the scan
 * (a point dlat away is at least R*dlat away), it never decides a result by itself. */
static size_t model_knn(const model *m, geo_latlng q, size_t k, double max_d, bool avail,
                        geo_qt_hit *out) {
  size_t n = 0;
  size_t up = lower_lat(m, q.lat), down = up; /* take the nearer in latitude each time */
  const double mpd = GEO_EARTH_RADIUS_M * M_PI / 180.0;
  for (;;) {
    bool can_up = up<m->n, can_down = down> 0;
    if (!can_up && !can_down) break;
    size_t idx;
    if (can_up &&
        (!can_down || m->pos[m->by_lat[up]].lat - q.lat <= q.lat - m->pos[m->by_lat[down - 1]].lat))
      idx = m->by_lat[up++];
    else
      idx = m->by_lat[--down];
    double bound = fabs(m->pos[idx].lat - q.lat) * mpd * (1 - 1e-9) - 1e-3;
    double worst = n == k ? out[k - 1].dist_m : max_d;
    if (bound > worst) break; /* every remaining point is at least this far */
    if (avail && m->pl[idx].state % 4 != 1) continue;
    geo_qt_hit h = {{m->id[idx], m->pos[idx], m->pl[idx]}, geo_haversine_m(q, m->pos[idx])};
    if (h.dist_m > max_d) continue;
    if (n == k && !hit_less(&h, &out[k - 1])) continue;
    size_t j = n < k ? n++ : k - 1;
    while (j > 0 && hit_less(&h, &out[j - 1])) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = h;
  }
  return n;
}

typedef struct collect {
  geo_qt_hit *hits;
  size_t n, cap;
} collect;

static bool collect_visit(const geo_qt_hit *h, void *ud) {
  collect *c = ud;
  if (c->n == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    c->hits = realloc(c->hits, c->cap * sizeof *c->hits);
  }
  c->hits[c->n++] = *h;
  return true;
}

static int cmp_hit_id(const void *a, const void *b) {
  uint64_t x = ((const geo_qt_hit *)a)->point.id, y = ((const geo_qt_hit *)b)->point.id;
  return x < y ? -1 : x > y;
}

static void model_radius(const model *m, geo_latlng c, double r, bool avail, collect *out) {
  const double mpd = GEO_EARTH_RADIUS_M * M_PI / 180.0;
  double dlat = r / mpd * (1 + 1e-9) + 1e-7;
  for (size_t j = lower_lat(m, c.lat - dlat); j < m->n; j++) {
    size_t i = m->by_lat[j];
    if (m->pos[i].lat > c.lat + dlat) break;
    if (avail && m->pl[i].state % 4 != 1) continue;
    geo_qt_hit h = {{m->id[i], m->pos[i], m->pl[i]}, geo_haversine_m(c, m->pos[i])};
    if (h.dist_m <= r) collect_visit(&h, out);
  }
}

static void model_box(const model *m, geo_bbox b, bool avail, collect *out) {
  for (size_t j = lower_lat(m, b.min_lat); j < m->n; j++) {
    size_t i = m->by_lat[j];
    if (m->pos[i].lat > b.max_lat) break;
    if (avail && m->pl[i].state % 4 != 1) continue;
    if (!geo_bbox_contains(b, m->pos[i])) continue;
    geo_qt_hit h = {{m->id[i], m->pos[i], m->pl[i]}, 0};
    collect_visit(&h, out);
  }
}

static void assert_same_hit(const geo_qt_hit *a, const geo_qt_hit *b) {
  assert_int_equal(a->point.id, b->point.id);
  assert_true(a->dist_m == b->dist_m);
  assert_true(a->point.pos.lat == b->point.pos.lat && a->point.pos.lng == b->point.pos.lng);
  assert_int_equal(a->point.payload.state, b->point.payload.state);
  assert_int_equal(a->point.payload.ts_ms, b->point.payload.ts_ms);
}

/* ---- workload generation ------------------------------------------------------------ */

typedef enum { CITY, GLOBE } region;

static geo_latlng random_pos(const model *m, region reg) {
  double kind = tu_uniform(0, 1);
  if (m->n > 0 && kind < 0.08) return m->pos[tu_below(m->n)]; /* a duplicate */
  if (reg == GLOBE) {
    if (kind < 0.15) { /* poles and antimeridian */
      double lat = tu_uniform(0, 1) < 0.5 ? tu_uniform(85, 90) : tu_uniform(-90, -85);
      if (tu_below(10) == 0) lat = lat > 0 ? 90.0 : -90.0;
      return (geo_latlng){lat, tu_uniform(-180, 180)};
    }
    if (kind < 0.3) {
      double lng = tu_uniform(0, 1) < 0.5 ? tu_uniform(179, 180) : tu_uniform(-180, -179);
      if (tu_below(10) == 0) lng = tu_below(2) ? 180.0 : -180.0;
      return (geo_latlng){tu_uniform(-60, 60), lng};
    }
    if (kind < 0.4) /* on dyadic cell borders of the world grid */
      return (geo_latlng){-90.0 + 180.0 * (double)tu_below(257) / 256.0,
                          -180.0 + 360.0 * (double)tu_below(513) / 512.0};
    return (geo_latlng){tu_uniform(-90, 90), tu_uniform(-180, 180)};
  }
  if (kind < 0.25) { /* clusters: 40 hot spots */
    uint64_t c = tu_below(40);
    double clat = 40.70 + 0.004 * (double)(c % 8), clng = -74.00 + 0.005 * (double)(c / 8);
    return (geo_latlng){clat + tu_uniform(-3e-4, 3e-4), clng + tu_uniform(-3e-4, 3e-4)};
  }
  if (kind < 0.35) /* a grid of 1e-3 degree lines: shared coordinates, cell borders */
    return (geo_latlng){40.70 + 1e-3 * (double)tu_below(180),
                        -74.02 + 1e-3 * (double)tu_below(110)};
  return (geo_latlng){tu_uniform(40.70, 40.88), tu_uniform(-74.02, -73.91)};
}

static geo_latlng jitter(geo_latlng p, double max_m) {
  geo_latlng d = geo_destination(p, tu_uniform(0, 360), tu_uniform(0, max_m));
  if (!geo_latlng_is_valid(d)) return p;
  return d;
}

static void do_upsert(geo_quadtree *qt, model *m, size_t i, geo_latlng p) {
  geo_qt_payload pl = payload_of(m->id[i]);
  assert_int_equal(geo_quadtree_upsert(qt, m->id[i], p, pl), GEO_OK);
  m->pos[i] = (geo_latlng){quantize(p.lat), quantize(p.lng)};
  m->pl[i] = pl;
}

static void model_remove(model *m, size_t i) {
  m->n--;
  m->id[i] = m->id[m->n];
  m->pos[i] = m->pos[m->n];
  m->pl[i] = m->pl[m->n];
}

static void verify_contents(const geo_quadtree *qt, const model *m) {
  assert_int_equal(geo_quadtree_check(qt), GEO_OK);
  assert_int_equal(geo_quadtree_count(qt), m->n);
  for (size_t i = 0; i < m->n; i++) {
    geo_qt_point p;
    assert_int_equal(geo_quadtree_get(qt, m->id[i], &p), GEO_OK);
    assert_true(p.pos.lat == m->pos[i].lat && p.pos.lng == m->pos[i].lng);
    assert_int_equal(p.payload.state, m->pl[i].state);
    assert_int_equal(p.payload.ts_ms, m->pl[i].ts_ms);
  }
}

static geo_latlng query_point(const model *m, region reg) {
  if (m->n > 0 && tu_below(4) == 0) return m->pos[tu_below(m->n)]; /* exactly on a point */
  return random_pos(m, reg);
}

static void run_queries(const geo_quadtree *qt, model *m, region reg, int nq) {
  model_sort(m);
  static const size_t ks[] = {1, 2, 5, 10, 16, 17, 50}; /* 16 | 17: see SCAN_K */
  geo_qt_hit got[64], want[64];
  collect a = {0}, b = {0};
  for (int t = 0; t < nq; t++) {
    geo_latlng q = query_point(m, reg);
    bool avail = tu_below(2) == 0;
    int kind = (int)tu_below(3);
    if (kind == 0) {
      size_t k = ks[tu_below(7)];
      double max_d = tu_below(4) == 0 ? tu_uniform(0, reg == CITY ? 300 : 500000) : INFINITY;
      size_t n;
      assert_int_equal(
          geo_quadtree_knn(qt, q, k, max_d, avail ? avail_filter : NULL, NULL, got, &n), GEO_OK);
      size_t wn = model_knn(m, q, k, max_d, avail, want);
      assert_int_equal(n, wn);
      for (size_t i = 0; i < n; i++) assert_same_hit(&got[i], &want[i]);
    } else if (kind == 1) {
      double r = reg == CITY ? tu_uniform(0, 400) : tu_uniform(0, 800000);
      if (m->n && tu_below(5) == 0) r = geo_haversine_m(q, m->pos[tu_below(m->n)]); /* border */
      if (reg == CITY && r > 3000) r = 3000;
      a.n = b.n = 0;
      size_t nv;
      assert_int_equal(geo_quadtree_within_radius(qt, q, r, avail ? avail_filter : NULL, NULL,
                                                  collect_visit, &a, &nv),
                       GEO_OK);
      model_radius(m, q, r, avail, &b);
      assert_int_equal(nv, a.n);
      assert_int_equal(a.n, b.n);
      if (a.n) qsort(a.hits, a.n, sizeof *a.hits, cmp_hit_id);
      if (b.n) qsort(b.hits, b.n, sizeof *b.hits, cmp_hit_id);
      for (size_t i = 0; i < a.n; i++) assert_same_hit(&a.hits[i], &b.hits[i]);
    } else {
      double h = reg == CITY ? tu_uniform(0, 0.004) : tu_uniform(0, 6);
      double w = reg == CITY ? tu_uniform(0, 0.004) : tu_uniform(0, 6);
      geo_bbox box = {q.lat - h, q.lng - w, q.lat + h, q.lng + w};
      if (m->n && tu_below(3) == 0) { /* edges exactly on stored coordinates */
        box.max_lat = m->pos[tu_below(m->n)].lat;
        box.min_lat = box.max_lat - h;
      }
      if (box.min_lat < -90) box.min_lat = -90;
      if (box.max_lat > 90) box.max_lat = 90;
      if (box.min_lng < -180) box.min_lng += 360; /* crosses the antimeridian */
      if (box.max_lng > 180) box.max_lng -= 360;
      a.n = b.n = 0;
      size_t nv;
      assert_int_equal(geo_quadtree_within_box(qt, box, avail ? avail_filter : NULL, NULL,
                                               collect_visit, &a, &nv),
                       GEO_OK);
      model_box(m, box, avail, &b);
      assert_int_equal(a.n, b.n);
      if (a.n) qsort(a.hits, a.n, sizeof *a.hits, cmp_hit_id);
      if (b.n) qsort(b.hits, b.n, sizeof *b.hits, cmp_hit_id);
      for (size_t i = 0; i < a.n; i++) assert_same_hit(&a.hits[i], &b.hits[i]);
    }
  }
  free(a.hits);
  free(b.hits);
}

/* Random moves (mostly small, as pings), jumps, removes and re-inserts. */
static void churn(geo_quadtree *qt, model *m, region reg, int ops, uint64_t *next_id) {
  for (int t = 0; t < ops; t++) {
    uint64_t r = tu_below(100);
    if (m->n == 0 || r < 5) {
      if (m->n == m->cap) continue;
      size_t i = m->n++;
      m->id[i] = (*next_id)++;
      do_upsert(qt, m, i, random_pos(m, reg));
    } else if (r < 12) {
      size_t i = tu_below(m->n);
      assert_int_equal(geo_quadtree_remove(qt, m->id[i]), GEO_OK);
      assert_int_equal(geo_quadtree_remove(qt, m->id[i]), GEO_ENOTFOUND);
      model_remove(m, i);
    } else if (r < 20) {
      size_t i = tu_below(m->n);
      do_upsert(qt, m, i, random_pos(m, reg));
    } else {
      size_t i = tu_below(m->n);
      do_upsert(qt, m, i, jitter(m->pos[i], 50));
    }
  }
}

static void scenario(region reg, size_t npoints, int nq1, int ops, int nq2, const char *name) {
  tu_seed(name);
  geo_quadtree *qt;
  assert_int_equal(geo_quadtree_new(&qt), GEO_OK);
  model m;
  model_init(&m, npoints + (size_t)ops);
  uint64_t next_id = 1;
  for (size_t i = 0; i < npoints; i++) {
    m.id[m.n] = tu_below(3) ? next_id : next_id * UINT64_C(0x9E3779B97F4A7C15); /* sparse ids too */
    next_id++;
    m.n++;
    do_upsert(qt, &m, m.n - 1, random_pos(&m, reg));
  }
  verify_contents(qt, &m);
  run_queries(qt, &m, reg, nq1);
  churn(qt, &m, reg, ops, &next_id);
  verify_contents(qt, &m);
  run_queries(qt, &m, reg, nq2);
  /* Remove most, so leaves merge back, then query again. */
  while (m.n > npoints / 20) {
    size_t i = tu_below(m.n);
    assert_int_equal(geo_quadtree_remove(qt, m.id[i]), GEO_OK);
    model_remove(&m, i);
  }
  verify_contents(qt, &m);
  run_queries(qt, &m, reg, nq2 / 4);
  geo_quadtree_free(qt);
  model_free(&m);
}

static void test_quadtree_matches_linear_scan_in_a_city_before_and_after_churn(void **state) {
  (void)state;
  scenario(CITY, 100000, 5000, 300000, 5000, "city"); /* 11,250 queries on 10^5 points */
}

static void test_quadtree_matches_linear_scan_on_the_globe_poles_and_antimeridian(void **state) {
  (void)state;
  scenario(GLOBE, 20000, 1000, 40000, 1000, "globe");
}

/* Searches and inserts start at the deepest node that holds every point (the entry), not at
 * the root: the population moves from city to city (filled, half moved on, the rest removed),
 * and searches anywhere stay exact and the structure valid at every step. */
static void test_quadtree_follows_its_population_from_city_to_city(void **state) {
  (void)state;
  tu_seed("migrate");
  static const geo_latlng cities[] = {
      {40.75, -73.98}, {35.68, 139.77}, {-33.87, 151.21}, {64.15, -21.94}, {40.75, -73.98}};
  geo_quadtree *qt;
  assert_int_equal(geo_quadtree_new(&qt), GEO_OK);
  model m;
  model_init(&m, 8000);
  uint64_t next_id = 1;
  for (size_t c = 0; c + 1 < sizeof cities / sizeof *cities; c++) {
    for (int i = 0; i < 2000; i++) {
      m.id[m.n] = next_id++;
      m.n++;
      do_upsert(qt, &m, m.n - 1, jitter(cities[c], 3000));
    }
    verify_contents(qt, &m);
    run_queries(qt, &m, GLOBE, 150);
    for (size_t i = 0; i < m.n; i += 2) /* half of everyone moves on to the next city */
      do_upsert(qt, &m, i, jitter(cities[c + 1], 3000));
    verify_contents(qt, &m);
    run_queries(qt, &m, CITY, 150);
    for (size_t i = m.n; i-- > 0;) /* the rest leave */
      if (geo_haversine_m(m.pos[i], cities[c + 1]) > 10000) {
        assert_int_equal(geo_quadtree_remove(qt, m.id[i]), GEO_OK);
        model_remove(&m, i);
      }
    verify_contents(qt, &m);
    run_queries(qt, &m, GLOBE, 150);
  }
  while (m.n > 0) { /* empty, then one point far away */
    assert_int_equal(geo_quadtree_remove(qt, m.id[m.n - 1]), GEO_OK);
    model_remove(&m, m.n - 1);
  }
  verify_contents(qt, &m);
  m.id[0] = next_id;
  m.n = 1;
  do_upsert(qt, &m, 0, (geo_latlng){-45.0, 170.0});
  verify_contents(qt, &m);
  run_queries(qt, &m, GLOBE, 50);
  geo_quadtree_free(qt);
  model_free(&m);
}

/* Positions are stored in 1e-7 degree units, rounded half away from zero (lround): what get
 * returns for halfway values, their neighbours one ulp either side, and the extremes. */
static void test_quadtree_rounds_positions_half_away_from_zero(void **state) {
  (void)state;
  tu_seed("rounding");
  geo_quadtree *qt;
  assert_int_equal(geo_quadtree_new(&qt), GEO_OK);
  for (uint64_t id = 0; id < 30000; id++) {
    double units = (double)((int64_t)tu_below(1800000001) - 900000000) + (id % 3 ? 0.5 : 0.0);
    double lat = units / 1e7, lng = lat * 2;
    if (id % 3 == 2) lat = nextafter(lat, id % 2 ? 100.0 : -100.0);
    if (id < 8) {
      static const double edge[] = {90,         -90,         0,           -0.0,
                                    0.00000005, -0.00000005, 89.99999995, -89.99999995};
      lat = edge[id];
      lng = lat * 2;
    }
    assert_int_equal(geo_quadtree_upsert(qt, id, (geo_latlng){lat, lng}, (geo_qt_payload){0, 0}),
                     GEO_OK);
    geo_qt_point p;
    assert_int_equal(geo_quadtree_get(qt, id, &p), GEO_OK);
    assert_true(p.pos.lat == quantize(lat));
    assert_true(p.pos.lng == quantize(lng));
  }
  assert_int_equal(geo_quadtree_check(qt), GEO_OK);
  geo_quadtree_free(qt);
}

static void test_quadtree_knn_with_k_larger_than_count_returns_all_sorted(void **state) {
  (void)state;
  geo_quadtree *qt;
  assert_int_equal(geo_quadtree_new(&qt), GEO_OK);
  geo_latlng q = {40.75, -73.98};
  for (uint64_t id = 10; id > 0; id--)
    assert_int_equal(geo_quadtree_upsert(qt, id,
                                         (geo_latlng){40.75 + 1e-4 * (double)(id % 5), -73.98},
                                         (geo_qt_payload){1, 0}),
                     GEO_OK);
  geo_qt_hit out[100];
  size_t n;
  assert_int_equal(geo_quadtree_knn(qt, q, 100, INFINITY, NULL, NULL, out, &n), GEO_OK);
  assert_int_equal(n, 10);
  /* ids 5 and 10 are at the query (distance 0), tie broken by the lower id. */
  assert_int_equal(out[0].point.id, 5);
  assert_int_equal(out[1].point.id, 10);
  assert_true(out[0].dist_m == 0.0);
  for (size_t i = 1; i < n; i++) assert_false(hit_less(&out[i], &out[i - 1]));
  assert_int_equal(geo_quadtree_knn(qt, q, 0, INFINITY, NULL, NULL, out, &n), GEO_OK);
  assert_int_equal(n, 0);
  geo_quadtree_free(qt);
}

static void test_quadtree_many_points_on_one_spot_stay_bounded_and_searchable(void **state) {
  (void)state;
  geo_quadtree *qt;
  assert_int_equal(geo_quadtree_new(&qt), GEO_OK);
  geo_latlng spot = {40.7580, -73.9855};
  for (uint64_t id = 1; id <= 20000; id++)
    assert_int_equal(geo_quadtree_upsert(qt, id, spot, (geo_qt_payload){(uint8_t)(id % 2), 0}),
                     GEO_OK);
  assert_int_equal(geo_quadtree_check(qt), GEO_OK);
  geo_qt_hit out[5];
  size_t n;
  assert_int_equal(geo_quadtree_knn(qt, spot, 5, INFINITY, avail_filter, NULL, out, &n), GEO_OK);
  assert_int_equal(n, 5);
  for (size_t i = 0; i < 5; i++) assert_int_equal(out[i].point.id, 2 * i + 1); /* odd = state 1 */
  collect c = {0};
  size_t nv;
  assert_int_equal(geo_quadtree_within_radius(qt, spot, 0.0, NULL, NULL, collect_visit, &c, &nv),
                   GEO_OK);
  assert_int_equal(nv, 20000);
  free(c.hits);
  for (uint64_t id = 1; id <= 20000; id++) assert_int_equal(geo_quadtree_remove(qt, id), GEO_OK);
  assert_int_equal(geo_quadtree_count(qt), 0);
  assert_int_equal(geo_quadtree_check(qt), GEO_OK);
  geo_quadtree_free(qt);
}

static void test_quadtree_move_within_leaf_allocates_nothing(void **state) {
  (void)state;
  tu_seed("move_within_leaf");
  tu_alloc_install(0, 0);
  geo_quadtree *qt;
  assert_int_equal(geo_quadtree_new(&qt), GEO_OK);
  for (uint64_t id = 1; id <= 5000; id++)
    assert_int_equal(geo_quadtree_upsert(
                         qt, id, (geo_latlng){tu_uniform(40.70, 40.88), tu_uniform(-74.02, -73.91)},
                         (geo_qt_payload){1, 0}),
                     GEO_OK);
  long calls = tu_a.calls;
  geo_qt_point p;
  assert_int_equal(geo_quadtree_get(qt, 77, &p), GEO_OK);
  for (int i = 0; i < 1000; i++) { /* centimetre moves stay in the leaf */
    geo_latlng np = {p.pos.lat + (i % 2 ? 1e-7 : -1e-7), p.pos.lng};
    assert_int_equal(geo_quadtree_upsert(qt, 77, np, (geo_qt_payload){2, i}), GEO_OK);
  }
  assert_int_equal(tu_a.calls, calls);
  geo_quadtree_free(qt);
  assert_int_equal(tu_a.live, 0);
  tu_alloc_restore();
}

static void test_quadtree_rejects_bad_arguments(void **state) {
  (void)state;
  geo_quadtree *qt;
  assert_int_equal(geo_quadtree_new(NULL), GEO_EINVAL);
  assert_int_equal(geo_quadtree_new(&qt), GEO_OK);
  geo_qt_payload pl = {0, 0};
  assert_int_equal(geo_quadtree_upsert(qt, 1, (geo_latlng){91, 0}, pl), GEO_EINVAL);
  assert_int_equal(geo_quadtree_upsert(qt, 1, (geo_latlng){NAN, 0}, pl), GEO_EINVAL);
  assert_int_equal(geo_quadtree_upsert(NULL, 1, (geo_latlng){0, 0}, pl), GEO_EINVAL);
  assert_int_equal(geo_quadtree_remove(qt, 1), GEO_ENOTFOUND);
  geo_qt_point p;
  assert_int_equal(geo_quadtree_get(qt, 1, &p), GEO_ENOTFOUND);
  assert_int_equal(geo_quadtree_set_payload(qt, 1, pl), GEO_ENOTFOUND);
  geo_qt_hit out[1];
  size_t n = 99;
  assert_int_equal(geo_quadtree_knn(qt, (geo_latlng){0, 0}, 1, -1, NULL, NULL, out, &n),
                   GEO_EINVAL);
  assert_int_equal(geo_quadtree_knn(qt, (geo_latlng){0, 200}, 1, 1, NULL, NULL, out, &n),
                   GEO_EINVAL);
  assert_int_equal(geo_quadtree_knn(qt, (geo_latlng){0, 0}, 1, INFINITY, NULL, NULL, out, &n),
                   GEO_OK);
  assert_int_equal(n, 0);
  assert_int_equal(geo_quadtree_within_radius(qt, (geo_latlng){0, 0}, NAN, NULL, NULL,
                                              collect_visit, NULL, NULL),
                   GEO_EINVAL);
  assert_int_equal(
      geo_quadtree_within_box(qt, (geo_bbox){1, 0, 0, 1}, NULL, NULL, collect_visit, NULL, NULL),
      GEO_EINVAL);
  assert_int_equal(
      geo_quadtree_upsert(qt, 1, (geo_latlng){1, 1}, (geo_qt_payload){0, INT64_C(1) << 55}),
      GEO_EINVAL);
  assert_int_equal(
      geo_quadtree_upsert(qt, 1, (geo_latlng){1, 1}, (geo_qt_payload){0, -(INT64_C(1) << 55) - 1}),
      GEO_EINVAL);
  assert_int_equal(geo_quadtree_upsert(qt, 1, (geo_latlng){1, 1}, pl), GEO_OK);
  assert_int_equal(geo_quadtree_set_payload(qt, 1, (geo_qt_payload){3, 42}), GEO_OK);
  assert_int_equal(geo_quadtree_get(qt, 1, &p), GEO_OK);
  assert_int_equal(p.payload.state, 3);
  assert_int_equal(p.payload.ts_ms, 42);
  geo_quadtree_free(qt);
  geo_quadtree_free(NULL);
}

/* One run of a fixed workload with call number fail_at failing; every operation either
 * succeeds or reports GEO_ENOMEM and changes nothing. */
static void oom_run(long fail_at, int fail_after, uint64_t seed) {
  tu_rng_state = seed;
  tu_alloc_install(fail_at, fail_after);
  geo_quadtree *qt = NULL;
  geo_err e = geo_quadtree_new(&qt);
  if (e != GEO_OK) {
    assert_int_equal(e, GEO_ENOMEM);
    assert_int_equal(tu_a.live, 0);
    tu_alloc_restore();
    return;
  }
  model m;
  tu_alloc_disarm(); /* the model's own arrays use libc directly, but keep it simple */
  model_init(&m, 2000);
  tu_a.fail_at = fail_at;
  uint64_t next = 1;
  for (int t = 0; t < 1500; t++) {
    uint64_t r = tu_below(100);
    geo_qt_payload pl = {(uint8_t)(t % 4), t};
    if (r < 45 || m.n == 0) {
      geo_latlng p = {40.75 + tu_uniform(-0.01, 0.01), -73.98 + tu_uniform(-0.01, 0.01)};
      e = geo_quadtree_upsert(qt, next, p, pl);
      if (e == GEO_OK) {
        m.id[m.n] = next;
        m.pos[m.n] = (geo_latlng){quantize(p.lat), quantize(p.lng)};
        m.pl[m.n++] = pl;
      } else {
        assert_int_equal(e, GEO_ENOMEM);
      }
      next++;
    } else if (r < 75) {
      size_t i = tu_below(m.n);
      geo_latlng p = {40.75 + tu_uniform(-0.01, 0.01), -73.98 + tu_uniform(-0.01, 0.01)};
      e = geo_quadtree_upsert(qt, m.id[i], p, pl);
      if (e == GEO_OK) {
        m.pos[i] = (geo_latlng){quantize(p.lat), quantize(p.lng)};
        m.pl[i] = pl;
      } else {
        assert_int_equal(e, GEO_ENOMEM);
      }
    } else {
      size_t i = tu_below(m.n);
      assert_int_equal(geo_quadtree_remove(qt, m.id[i]), GEO_OK);
      model_remove(&m, i);
    }
  }
  tu_alloc_disarm();
  verify_contents(qt, &m);
  /* Still usable: grows and searches normally once memory is back. */
  assert_int_equal(
      geo_quadtree_upsert(qt, next, (geo_latlng){40.75, -73.98}, (geo_qt_payload){1, 0}), GEO_OK);
  geo_qt_hit out[3];
  size_t n;
  assert_int_equal(
      geo_quadtree_knn(qt, (geo_latlng){40.75, -73.98}, 3, INFINITY, NULL, NULL, out, &n), GEO_OK);
  assert_int_equal(out[0].point.id, next);
  geo_quadtree_free(qt);
  model_free(&m);
  assert_int_equal(tu_a.live, 0);
  tu_alloc_restore();
}

static void test_quadtree_out_of_memory_at_every_allocation_leaves_it_valid(void **state) {
  (void)state;
  uint64_t seed = tu_seed("quadtree_oom");
  tu_alloc_install(0, 0);
  oom_run(0, 0, seed);
  long total = tu_a.calls;
  assert_true(total > 50);
  for (long n = 1; n <= total + 1; n++) {
    oom_run(n, 0, seed);
    oom_run(n, 1, seed);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quadtree_rejects_bad_arguments),
      cmocka_unit_test(test_quadtree_knn_with_k_larger_than_count_returns_all_sorted),
      cmocka_unit_test(test_quadtree_move_within_leaf_allocates_nothing),
      cmocka_unit_test(test_quadtree_many_points_on_one_spot_stay_bounded_and_searchable),
      cmocka_unit_test(test_quadtree_out_of_memory_at_every_allocation_leaves_it_valid),
      cmocka_unit_test(test_quadtree_matches_linear_scan_on_the_globe_poles_and_antimeridian),
      cmocka_unit_test(test_quadtree_follows_its_population_from_city_to_city),
      cmocka_unit_test(test_quadtree_rounds_positions_half_away_from_zero),
      cmocka_unit_test(test_quadtree_matches_linear_scan_in_a_city_before_and_after_churn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
