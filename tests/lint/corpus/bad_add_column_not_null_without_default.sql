-- users has rows: PostgreSQL refuses a NOT NULL column without a default.
ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;
