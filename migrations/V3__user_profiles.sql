CREATE TABLE user_profiles (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    display_name text CHECK (length(display_name) <= 100),
    bio          text,
    avatar_url   text,
    preferences  jsonb NOT NULL DEFAULT '{}',
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Containment queries on preferences (preferences @> '{"theme": "dark"}').
CREATE INDEX user_profiles_preferences_idx ON user_profiles USING gin (preferences jsonb_path_ops);
-- Profile cards read the name without touching the heap: a covering index.
CREATE INDEX user_profiles_user_display_idx ON user_profiles (user_id) INCLUDE (display_name, avatar_url);

CREATE TRIGGER user_profiles_set_updated_at
    BEFORE UPDATE ON user_profiles
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
