-- Runs outside a transaction; pgm resumes an interrupted build, so no
-- IF NOT EXISTS is needed.
CREATE INDEX CONCURRENTLY users_email_idx ON users (email);
