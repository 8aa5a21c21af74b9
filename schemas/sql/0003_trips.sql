-- 0003_trips: the durable trip record (written by meridian-trips from dispatch-events).
CREATE TABLE trips (
  trip_id        text PRIMARY KEY,
  request_id     text NOT NULL UNIQUE,
  rider_id       text NOT NULL,
  driver_id      text,
  status         text NOT NULL CHECK (status IN ('requested','offered','matched','arrived',
                                                  'started','completed','cancelled','no_driver')),
  shard          integer NOT NULL,
  epoch          bigint NOT NULL,
  pickup         geography(Point, 4326) NOT NULL,
  dropoff        geography(Point, 4326) NOT NULL,
  route          geography(LineString, 4326),
  pickup_eta_s   integer,
  trip_eta_s     integer,
  fare_estimate_cents integer,
  reason         text,
  last_seq       integer NOT NULL DEFAULT 0,
  requested_at   timestamptz NOT NULL,
  offered_at     timestamptz,
  matched_at     timestamptz,
  arrived_at     timestamptz,
  started_at     timestamptz,
  completed_at   timestamptz,
  cancelled_at   timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trips_pickup_gix ON trips USING gist (pickup);
CREATE INDEX trips_driver_idx ON trips (driver_id, requested_at);
CREATE INDEX trips_status_idx ON trips (status) WHERE status NOT IN ('completed','cancelled','no_driver');

-- Append-only log of every trip and offer transition; (trip_id, seq) makes replays no-ops.
CREATE TABLE trip_events (
  trip_id     text NOT NULL,
  seq         integer NOT NULL CHECK (seq > 0),
  type        text NOT NULL,
  driver_id   text,
  shard       integer NOT NULL,
  epoch       bigint NOT NULL,
  at          timestamptz NOT NULL,
  payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (trip_id, seq)
);
CREATE INDEX trip_events_driver_idx ON trip_events (driver_id, at);
