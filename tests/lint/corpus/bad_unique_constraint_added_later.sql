-- events is partitioned by occurred_at (in an earlier migration).
ALTER TABLE events ADD CONSTRAINT events_id_key UNIQUE (id);
