-- squawk-ignore require-concurent-index-creation -- the typo leaves the rule active
CREATE INDEX users_name_idx ON users (name);
