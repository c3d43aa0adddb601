-- The catalogue, partitioned by quarter of listing.
CREATE TABLE products (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    sku         text NOT NULL,
    name        text NOT NULL,
    -- squawk-ignore prefer-bigint-over-int -- a price in cents stays far below 2^31 (21 million)
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    attributes  jsonb NOT NULL DEFAULT '{}',
    listed_on   date NOT NULL DEFAULT current_date,
    PRIMARY KEY (id, listed_on),
    UNIQUE (sku, listed_on)
) PARTITION BY RANGE (listed_on);

CREATE INDEX products_attributes_idx ON products USING gin (attributes);
