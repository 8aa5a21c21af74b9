/*
 * test_graph_model.c: the ETA model text of `meridianctl graph` (graph_model.c): format
 * then parse gives the same model; comments and any whitespace are accepted; malformed or
 * out-of-range entries are refused; arcs take the factor of the geohash cell of their
 * midpoint, and the calibrated graph's arc times are (raw x class + per-arc cost) x cell.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h> /* after the headers it needs */

#include "geo/geohash.h"
#include "graph.h"

static void test_format_then_parse_gives_the_same_model(void **state) {
  (void)state;
  mctl_eta_model *m = calloc(1, sizeof *m), *back = calloc(1, sizeof *back);
  mctl_model_identity(m);
  m->cal.class_factor[GEO_ROAD_PRIMARY] = 3.25;
  m->cal.hour_factor[1][17] = 1.375;
  m->cal.day_factor[1] = 1.125;
  m->cal.arc_penalty_ms = 1500.5;
  m->cal.trip_base_ms = 13000;
  m->cell_precision = 6;
  m->n_cells = 2;
  strcpy(m->cell[0], "dr5ru7");
  m->cell_factor[0] = 1.25;
  strcpy(m->cell[1], "dr72h8");
  m->cell_factor[1] = 0.875;
  char *text = mctl_model_format(m, "two lines\nof header");
  assert_non_null(text);
  assert_non_null(strstr(text, "# two lines\n# of header\n"));
  assert_true(mctl_model_parse(text, back));
  assert_memory_equal(&m->cal, &back->cal, sizeof m->cal);
  assert_int_equal(back->cell_precision, 6);
  assert_int_equal(back->n_cells, 2);
  assert_string_equal(back->cell[1], "dr72h8");
  assert_true(back->cell_factor[1] == 0.875);
  free(text);
  /* entries may be separated by any whitespace; unlisted entries stay identity */
  assert_true(mctl_model_parse(
      "# c\nclass.primary=2\t day.0=0.9   cell_precision=5 cell.DR5RU=1.5\n", back));
  assert_true(back->cal.class_factor[GEO_ROAD_PRIMARY] == 2 &&
              back->cal.class_factor[GEO_ROAD_RESIDENTIAL] == 1);
  assert_true(back->cal.day_factor[0] == 0.9 && back->cal.hour_factor[0][3] == 1);
  assert_string_equal(back->cell[0], "dr5ru");
  free(m);
  free(back);
}

static void test_malformed_entries_are_refused(void **state) {
  (void)state;
  mctl_eta_model *m = calloc(1, sizeof *m);
  const char *bad[] = {
      "class.primary",         /* no value */
      "class.primary=abc",     /* not a number */
      "class.nosuchclass=1.2", /* unknown class */
      "class.primary=0",       /* factors are > 0 */
      "class.primary=-1",
      "hour.weekday.24=1.1",  /* hour out of range */
      "hour.sometimes.3=1.1", /* neither weekday nor weekend */
      "day.7=1.1",            /* day out of range */
      "day.x=1.1",
      "arc_penalty_ms=-5", /* costs are >= 0 */
      "cell_precision=13",
      "cell_precision=2.5",
      "cell_precision=6 cell.dr5ra=1.2", /* 'a' is not a geohash letter */
      "cell_precision=6 cell.dr5r=1.2",  /* a cell of another precision */
      "cell_precision=6 cell.dr5ru7=0",
      "mystery=1",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (mctl_model_parse(bad[i], m)) fail_msg("accepted: %s", bad[i]);
  free(m);
}

/* Two arcs: one in cell dr5ru7 (midtown), one far from it. */
static void test_arcs_take_their_cells_factor(void **state) {
  (void)state;
  geo_graph_builder *b = NULL;
  assert_int_equal(geo_graph_builder_new(&b), GEO_OK);
  geo_latlng pts[4] = {
      {40.7540, -73.9850}, {40.7545, -73.9840}, {40.8500, -73.9300}, {40.8510, -73.9290}};
  for (int i = 0; i < 4; i++)
    assert_int_equal(geo_graph_builder_add_node(b, i + 1, pts[i], NULL), GEO_OK);
  geo_graph_road r1 = {0, 1, 10000, 10000, 100, GEO_ROAD_PRIMARY, 1, NULL, 0};
  geo_graph_road r2 = {2, 3, 20000, GEO_TIME_NONE, 140, GEO_ROAD_RESIDENTIAL, 2, NULL, 0};
  assert_int_equal(geo_graph_builder_add_road(b, &r1), GEO_OK);
  assert_int_equal(geo_graph_builder_add_road(b, &r2), GEO_OK);
  geo_graph *g = NULL;
  geo_graph_build_opts o = {false, false};
  assert_int_equal(geo_graph_builder_build(b, &o, &g, NULL), GEO_OK);
  geo_graph_builder_free(b);
  char cell[GEO_GEOHASH_BUF];
  assert_int_equal(geo_latlng_to_geohash((geo_latlng){40.75425, -73.9845}, 6, cell), GEO_OK);
  mctl_eta_model *m = calloc(1, sizeof *m);
  char text[256];
  snprintf(text, sizeof text,
           "class.primary=2 class.residential=3 arc_penalty_ms=1000 cell_precision=6 cell.%s=1.5",
           cell);
  assert_true(mctl_model_parse(text, m));
  double *f = mctl_model_arc_factors(m, g);
  assert_non_null(f);
  geo_graph *c = NULL;
  assert_int_equal(mctl_model_apply(m, g, &c), GEO_OK);
  for (uint32_t a = 0; a < geo_graph_arc_count(g); a++) {
    char here[GEO_GEOHASH_BUF];
    assert_int_equal(mctl_arc_cell(g, a, 6, here), GEO_OK);
    bool in = strcmp(here, cell) == 0;
    assert_true(f[a] == (in ? 1.5 : 1.0));
    double cls = geo_graph_arc_class(g, a) == GEO_ROAD_PRIMARY ? 2 : 3;
    double want = (geo_graph_arc_time_ms(g, a) * cls + 1000) * f[a];
    assert_true(fabs(geo_graph_arc_time_ms(c, a) - want) <= 0.5);
  }
  /* both directions of the midtown road and the uptown one: 2 factors 1.5, one 1 */
  assert_int_equal(geo_graph_arc_count(g), 3);
  assert_true(f[0] * f[1] * f[2] == 1.5 * 1.5);
  free(f);
  geo_graph_free(c);
  geo_graph_free(g);
  free(m);
}

/* Found by fuzz_eta_model: factors too small or too fine for a fixed number of decimals
 * were written so that they could not be read back (5e-81 -> "0.0000", refused), or read
 * back as another value. Every value now round-trips exactly. */
static void test_format_round_trips_tiny_and_fine_factors(void **state) {
  (void)state;
  mctl_eta_model *m = calloc(1, sizeof *m), *back = calloc(1, sizeof *back);
  mctl_model_identity(m);
  m->cal.class_factor[GEO_ROAD_PRIMARY] = 1.0 / 3.0;
  m->cal.hour_factor[0][3] = 1e-9;
  m->cal.trip_base_ms = 0.05;
  m->cell_precision = 6;
  m->n_cells = 1;
  strcpy(m->cell[0], "dr5rsw");
  m->cell_factor[0] = 5.07e-81;
  char *text = mctl_model_format(m, NULL);
  assert_non_null(text);
  assert_non_null(strstr(text, "class.primary=0.3333333333333333\n"));
  assert_non_null(strstr(text, "day.0=1\n")); /* round values stay short */
  assert_true(mctl_model_parse(text, back));
  assert_memory_equal(&m->cal, &back->cal, sizeof m->cal);
  assert_true(back->cell_factor[0] == 5.07e-81);
  free(text);
  free(m);
  free(back);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_then_parse_gives_the_same_model),
      cmocka_unit_test(test_format_round_trips_tiny_and_fine_factors),
      cmocka_unit_test(test_malformed_entries_are_refused),
      cmocka_unit_test(test_arcs_take_their_cells_factor),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
