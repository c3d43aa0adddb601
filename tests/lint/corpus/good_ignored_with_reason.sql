-- squawk-ignore-file partitioned-table-not-in-policy -- partitions are created by the archive job
CREATE TABLE archived_events (
    id          bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- squawk-ignore require-concurrent-index-creation -- orders is written once a day, by a batch job
CREATE INDEX orders_user_idx ON orders (user_id);
