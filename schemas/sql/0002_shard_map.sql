-- 0002_shard_map: the geohash-range shard map (DESIGN §2).
-- A map is a sorted list of [range_start, range_end) -> shard under one epoch; the current
-- map is the highest epoch. Ranges compare as strings (a Z-order curve); '' is the start of
-- the world and '~' (after 'z') its end. Ranges of one epoch must tile the world.
CREATE TABLE shard_map (
  epoch        bigint  NOT NULL CHECK (epoch > 0),
  range_start  text    NOT NULL,
  range_end    text    NOT NULL,
  shard        integer NOT NULL CHECK (shard >= 0 AND shard < 64),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (epoch, range_start),
  CHECK (range_start < range_end)
);

-- Epoch 1: two shards splitting Manhattan at the dr5r / dr72 geohash border (lat 40.7813,
-- near West 79th Street). Shard 0 holds everything before 'dr72', shard 1 the rest.
INSERT INTO shard_map (epoch, range_start, range_end, shard) VALUES
  (1, '',     'dr72', 0),
  (1, 'dr72', '~',    1);
