-- A key that is an expression cannot be part of any unique constraint.
CREATE TABLE readings (
    sensor      text NOT NULL,
    taken_at    timestamptz NOT NULL,
    PRIMARY KEY (sensor, taken_at)
) PARTITION BY LIST (lower(sensor));
