-- The schema every corpus file is written against: live tables that hold rows.
CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL,
    name       text
);
INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada');

CREATE TABLE orders (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL,
    total      numeric NOT NULL
);

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at timestamptz NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}'
) PARTITION BY RANGE (occurred_at);
