-- Who changed what, kept for a year; partitioned by month so old months are
-- detached and dropped whole instead of deleted row by row.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    actor_id    uuid,
    action      text NOT NULL CHECK (action IN ('insert', 'update', 'delete', 'login')),
    target_table text NOT NULL,
    target_id   text,
    changes     jsonb,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, occurred_at DESC);
