-- users is live by now: build the index without blocking writes. CREATE INDEX
-- CONCURRENTLY cannot run inside a transaction, so pgm runs this file
-- statement by statement and journals its progress.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_last_login_idx ON users (last_login_at DESC NULLS LAST);
