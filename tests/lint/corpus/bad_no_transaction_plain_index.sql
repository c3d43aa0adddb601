-- pgm:no-transaction
-- Outside a transaction each statement commits alone: a plain CREATE INDEX
-- still blocks writes, and a DROP without IF EXISTS fails when rerun.
CREATE INDEX users_name_idx ON users (name);
DROP INDEX CONCURRENTLY users_name_idx;
