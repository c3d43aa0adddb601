ALTER TABLE users ADD COLUMN last_seen_at timestamptz;
CREATE INDEX CONCURRENTLY users_last_seen_idx ON users (last_seen_at);
