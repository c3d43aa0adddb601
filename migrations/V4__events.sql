-- Product analytics events, partitioned by month on created_at. The partitions
-- themselves are made and retired by `pgm partitions maintain` (partman.toml).
-- A primary key on a partitioned table must include the partition key.
CREATE TABLE events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    user_id    uuid,
    event_type text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

-- Time-ordered inserts make BRIN small and good for range scans.
CREATE INDEX events_created_at_brin ON events USING brin (created_at);
CREATE INDEX events_user_created_idx ON events (user_id, created_at DESC);
