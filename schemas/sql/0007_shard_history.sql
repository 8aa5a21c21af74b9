-- 0007_shard_history: who wrote each shard-map epoch, and the state of the rebalancing run
-- under way (docs/shards.md). Written by `meridianctl shards apply|move`, each new epoch in
-- one transaction with its shard_map rows; read by `shards history` and `shards show`.
CREATE TABLE shard_epochs (
  epoch       bigint      PRIMARY KEY CHECK (epoch > 0),
  created_at  timestamptz NOT NULL DEFAULT now(),
  command     text        NOT NULL,  -- the command line that wrote it, or the migration
  run_id      bigint                 -- shard_runs.id of the run it belongs to
);
INSERT INTO shard_epochs (epoch, created_at, command)
  SELECT epoch, min(created_at), 'migration 0002_shard_map' FROM shard_map GROUP BY epoch;

-- One row per `shards apply` or `shards move`. At most one is 'running' (the unique index):
-- that is the move lock's durable half; the other half is a session advisory lock held by
-- the live CLI, so a 'running' row whose lock is free was left by a killed CLI. The next
-- `apply` of the same file (same plan_hash) resumes it; `shards show` explains it.
CREATE TABLE shard_runs (
  id          bigserial   PRIMARY KEY,
  command     text        NOT NULL,
  plan_file   text,                  -- apply: the file, and the FNV-1a 64 hash of its contents
  plan_hash   text,
  steps       integer     NOT NULL CHECK (steps >= 0),
  done        integer     NOT NULL DEFAULT 0 CHECK (done >= 0),
  state       text        NOT NULL CHECK (state IN ('running', 'done', 'failed')),
  step        jsonb,                 -- the step under way: {"start","end","from","to","epoch"}
  host        text        NOT NULL,
  pid         integer     NOT NULL,
  started_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  message     text                   -- why it failed, or its summary
);
CREATE UNIQUE INDEX shard_runs_one_running ON shard_runs ((true)) WHERE state = 'running';
