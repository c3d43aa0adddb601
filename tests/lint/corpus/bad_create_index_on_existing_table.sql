-- users is live: a plain CREATE INDEX blocks its writes for the whole build.
CREATE INDEX users_email_idx ON users (email);
