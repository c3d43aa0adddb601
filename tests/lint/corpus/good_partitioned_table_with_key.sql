CREATE TABLE readings (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    sensor      text NOT NULL,
    taken_at    timestamptz NOT NULL,
    value       double precision,
    PRIMARY KEY (id, taken_at),
    UNIQUE (sensor, taken_at)
) PARTITION BY RANGE (taken_at);

CREATE UNIQUE INDEX readings_sensor_time_idx ON readings (taken_at, sensor DESC);
