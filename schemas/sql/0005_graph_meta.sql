-- 0005_graph_meta: what the imported road graph was made from, and its ETA calibration.
-- Written by `meridianctl graph import` (source_file, source_checksum, imported_at, ways) and
-- `meridianctl graph calibrate` (calibration); read by `graph export --if-stale` and
-- `graph status`. The road tables themselves (ways, ways_vertices_pgr, configuration) are
-- osm2pgrouting's and are replaced as a whole by each import, so they are not migrations.
-- (0004 is left to the trips work on the dispatch branch.) IF NOT EXISTS adopts the table
-- that meridianctl created itself before this migration existed.
CREATE TABLE IF NOT EXISTS graph_meta (
  key        text PRIMARY KEY,
  value      text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
