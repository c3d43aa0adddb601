-- The key is created_at, the primary key is id alone: PostgreSQL refuses it.
CREATE TABLE readings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor      text NOT NULL,
    taken_at    timestamptz NOT NULL,
    value       double precision
) PARTITION BY RANGE (taken_at);
