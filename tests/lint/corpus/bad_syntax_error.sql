ALTER TABLE users ADD COLUMN nickname text;
CREATE TABEL nicknames (name text);
