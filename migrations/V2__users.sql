CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         email_address NOT NULL,
    username      text UNIQUE CHECK (length(username) BETWEEN 3 AND 50),
    password_hash text NOT NULL,
    email_verified boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

-- Case-insensitive uniqueness: an expression index.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
-- Only verified addresses are looked up for login: a partial index.
CREATE INDEX users_verified_email_idx ON users (email) WHERE email_verified;
-- Fuzzy search on user names.
CREATE INDEX users_username_trgm_idx ON users USING gin (username gin_trgm_ops);

CREATE TRIGGER users_set_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
