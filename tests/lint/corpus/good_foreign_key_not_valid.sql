-- NOT VALID takes a brief lock; VALIDATE CONSTRAINT goes in a later migration.
ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
