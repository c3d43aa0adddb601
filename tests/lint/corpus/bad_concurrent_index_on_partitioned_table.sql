-- pgm:no-transaction
-- A concurrent build is refused on a partitioned table: PostgreSQL builds
-- concurrently only on a table that holds rows itself.
CREATE TABLE IF NOT EXISTS readings (
    sensor      text NOT NULL,
    taken_at    timestamptz NOT NULL,
    value       double precision
) PARTITION BY RANGE (taken_at);

CREATE INDEX CONCURRENTLY IF NOT EXISTS readings_sensor_idx ON readings (sensor);
