-- A table created in the same transaction is empty and unseen: a plain index is fine.
CREATE TABLE coupons (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL
);
CREATE INDEX coupons_code_idx ON coupons (code);
