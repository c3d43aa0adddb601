-- Trigram search for user names, and the shared helpers later migrations use.
-- pg_trgm is a trusted extension: managed services let the database owner create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Keeps updated_at honest whatever the application sends.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- An e-mail address, checked once here rather than in every table.
CREATE DOMAIN email_address AS text
    -- squawk-ignore ban-create-domain-with-constraint -- the rule is settled: should it change, a new domain replaces this one, never ALTER DOMAIN on live tables
    CHECK (VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' AND length(VALUE) <= 254);
