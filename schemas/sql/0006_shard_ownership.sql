-- 0006_shard_ownership: prompt shard-map epochs and shard leases (docs/shards.md).
--
-- 1. Every insert into shard_map notifies channel 'shard_map' with the row's epoch as the
--    payload. Notifications go out when the inserting transaction commits (so a listener
--    that reads the map then finds the new rows), and PostgreSQL folds identical ones of a
--    transaction into one: a new epoch of any number of ranges is one notification.
--    Gateways and dispatch LISTEN on the channel and still re-read max(epoch) now and then
--    (a listener that was reconnecting when the notification went out misses it).
CREATE FUNCTION shard_map_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('shard_map', NEW.epoch::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER shard_map_notify AFTER INSERT ON shard_map
  FOR EACH ROW EXECUTE FUNCTION shard_map_notify();

-- 2. Shard leases: a dispatch process consumes shard k's partitions only while it holds
--    the lease of shard k. One row per shard, kept forever: `generation` only grows (every
--    acquisition adds one), so it is the fencing token stamped on claims and events.
--    Acquire: insert, or take over the row when expires_at <= now(), generation + 1.
--    Renew: extend expires_at WHERE generation is still the holder's (compare-and-set: a
--    holder whose row was taken over renews nothing and steps down). Release (SIGTERM):
--    expires_at = now(). Times are the database's clock, the only one every process shares.
--    A lease is alive while expires_at > now().
CREATE TABLE shard_leases (
  shard        integer     PRIMARY KEY CHECK (shard >= 0 AND shard < 64),
  generation   bigint      NOT NULL CHECK (generation > 0),
  holder_host  text        NOT NULL,
  holder_pid   integer     NOT NULL,
  since        timestamptz NOT NULL, -- when this generation was acquired
  renewed_at   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL
);

-- 3. The highest lease generation of each shard whose events meridian-trips has recorded:
--    events of a lower generation (a fenced holder's late events) are not recorded. Kept
--    here so that the rule survives a restart of meridian-trips.
CREATE TABLE dispatch_generations (
  shard       integer     PRIMARY KEY CHECK (shard >= 0 AND shard < 64),
  generation  bigint      NOT NULL CHECK (generation > 0),
  seen_at     timestamptz NOT NULL DEFAULT now()
);

-- Which holder made each recorded event (0: made before leases existed).
ALTER TABLE trip_events ADD COLUMN generation bigint NOT NULL DEFAULT 0;
