-- 0008_request_key_and_service_role: a request_id belongs to its rider, and the services'
-- least-privilege role (docs/security.md).
--
-- 1. request_id is client-made: two riders may both send "1". The trip record's last line
--    of idempotency is therefore (rider_id, request_id), not request_id alone (which would
--    refuse the second rider's trip and park its events in dispatch-events-dlq).
ALTER TABLE trips DROP CONSTRAINT IF EXISTS trips_request_id_key;
ALTER TABLE trips ADD CONSTRAINT trips_rider_request_key UNIQUE (rider_id, request_id);

-- 2. meridian_app: the role meridian-gateway, meridian-dispatch and meridian-trips connect
--    as. Not a superuser, owns nothing, cannot create or alter anything, never deletes:
--      shard_map                       SELECT                  (gateway, dispatch)
--      trips, trip_events              SELECT, INSERT, UPDATE  (trips)
--    and, when the shard-ownership migrations made them: shard_leases and
--    dispatch_generations SELECT, INSERT, UPDATE (dispatch, trips), shard_epochs and
--    shard_runs SELECT. Made NOLOGIN here (no password lives in the tree): the deployment
--    gives it LOGIN and its password (scripts/stack from .run/secrets; k8s from a Secret):
--      ALTER ROLE meridian_app LOGIN PASSWORD '...';
--    Migrations and the graph import keep running as the database owner (MERIDIAN_PG_ADMIN_DSN).
--    A later migration that adds a table a service reads or writes grants it here too.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'meridian_app') THEN
    CREATE ROLE meridian_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO meridian_app', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO meridian_app;
GRANT SELECT ON shard_map TO meridian_app;
GRANT SELECT, INSERT, UPDATE ON trips, trip_events TO meridian_app;
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['shard_leases', 'dispatch_generations'] LOOP
    IF to_regclass('public.' || t) IS NOT NULL THEN
      EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO meridian_app', t);
    END IF;
  END LOOP;
  FOREACH t IN ARRAY ARRAY['shard_epochs', 'shard_runs'] LOOP
    IF to_regclass('public.' || t) IS NOT NULL THEN
      EXECUTE format('GRANT SELECT ON %I TO meridian_app', t);
    END IF;
  END LOOP;
END
$$;
