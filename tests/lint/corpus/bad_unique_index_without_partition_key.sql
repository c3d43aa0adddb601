CREATE TABLE readings (
    sensor      text NOT NULL,
    taken_at    timestamptz NOT NULL,
    value       double precision
) PARTITION BY RANGE (taken_at);

CREATE UNIQUE INDEX readings_sensor_key ON readings (sensor);
