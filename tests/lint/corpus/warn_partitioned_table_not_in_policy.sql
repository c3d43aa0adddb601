-- Well formed, but no policy entry creates its partitions.
CREATE TABLE page_views (
    id        bigint GENERATED ALWAYS AS IDENTITY,
    viewed_at timestamptz NOT NULL,
    path      text NOT NULL,
    PRIMARY KEY (id, viewed_at)
) PARTITION BY RANGE (viewed_at);
