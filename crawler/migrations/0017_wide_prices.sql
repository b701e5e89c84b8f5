-- Prices in currencies of small units: a ceiling per currency (pipelines/amounts.py) lets a
-- price reach 10^12 (15.5 billion dong is a $600k car), past numeric(12, 2)'s 10^10, which
-- failed the whole batch (numeric field overflow). Widening a numeric's precision at the
-- same scale changes no stored value: PostgreSQL neither rewrites the table nor rebuilds
-- an index (none holds these columns); it takes the table's lock for a moment.
ALTER TABLE vehicles ALTER COLUMN price TYPE numeric(16, 2),
                     ALTER COLUMN msrp TYPE numeric(16, 2);
