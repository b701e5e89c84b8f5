-- Feed sources: what a dealership's feed URL last answered, for conditional requests
-- (If-None-Match / If-Modified-Since) and to skip a feed whose body did not change.
-- Written only after a run of that body succeeded, so a failed run is retried in full.
CREATE TABLE feed_sources (
    dealership_id   bigint PRIMARY KEY REFERENCES dealerships(id) ON DELETE CASCADE,
    url             text NOT NULL,
    etag            text,
    last_modified   text,
    body_sha256     text,
    body_bytes      bigint,
    last_job_id     bigint,
    fetched_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The fast path loads a dealer's active source hashes in one index-only pass.
CREATE INDEX vehicles_dealer_source_hash ON vehicles (dealership_id) INCLUDE (source_hash)
    WHERE status = 'active' AND source_hash IS NOT NULL;
