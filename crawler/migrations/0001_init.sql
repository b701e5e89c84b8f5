-- forecourt schema, version 1: dealerships, vehicles, events, jobs, rejects.

CREATE TABLE dealerships (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name            text NOT NULL,
    website_url     text,
    platform        text,
    feed_url        text,
    feed_format     text,
    feed_mapping    jsonb,
    schedule_cron   text,
    schedule_tz     text NOT NULL DEFAULT 'UTC',
    schedule_interval_s integer,
    paused          boolean NOT NULL DEFAULT false,
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    webhook_url     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dealership_id   bigint NOT NULL REFERENCES dealerships(id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('crawl', 'feed')),
    trigger         text NOT NULL CHECK (trigger IN ('schedule', 'operator', 'api', 'retry', 'demo')),
    state           text NOT NULL DEFAULT 'queued' CHECK (state IN
                      ('queued', 'running', 'succeeded', 'partial', 'failed', 'blocked', 'cancelled', 'dead')),
    phase           text,
    attempts        integer NOT NULL DEFAULT 0,
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,
    counters        jsonb NOT NULL DEFAULT '{}'::jsonb,
    verdict         text CHECK (verdict IN ('healthy', 'degraded', 'failed')),
    report          jsonb,
    error           text,
    error_kind      text,
    errors          jsonb NOT NULL DEFAULT '[]'::jsonb,
    worker          text,
    message_id      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    heartbeat_at    timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_dealer_created ON jobs (dealership_id, id DESC);
CREATE INDEX jobs_state ON jobs (state) WHERE state IN ('queued', 'running', 'dead');
-- One queued or running job per dealership, enforced by the database itself.
CREATE UNIQUE INDEX jobs_one_active_per_dealer ON jobs (dealership_id)
    WHERE state IN ('queued', 'running');

CREATE TABLE vehicles (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dealership_id   bigint NOT NULL REFERENCES dealerships(id) ON DELETE CASCADE,
    vin             text NOT NULL,
    stock_number    text,
    condition       text CHECK (condition IN ('new', 'used', 'certified')),
    year            smallint,
    make            text,
    model           text,
    trim            text,
    body_style      text,
    exterior_color  text,
    interior_color  text,
    transmission    text,
    drivetrain      text,
    fuel_type       text,
    engine          text,
    mileage         integer,
    price           numeric(12, 2),
    msrp            numeric(12, 2),
    currency        text NOT NULL DEFAULT 'USD',
    availability    text,
    url             text,
    image_urls      text[] NOT NULL DEFAULT '{}',
    description     text,
    vin_decoded     jsonb,
    vin_placeholder boolean NOT NULL DEFAULT false,
    quality_score   smallint,
    quality_flags   text[] NOT NULL DEFAULT '{}',
    source          text,
    source_hash     text,
    content_hash    text NOT NULL,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    removed_at      timestamptz,
    last_job_id     bigint,
    UNIQUE (dealership_id, vin)
);
CREATE INDEX vehicles_vin ON vehicles (vin);
CREATE INDEX vehicles_dealer_status ON vehicles (dealership_id, status);

CREATE TABLE vehicle_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dealership_id   bigint NOT NULL REFERENCES dealerships(id) ON DELETE CASCADE,
    vin             text NOT NULL,
    job_id          bigint,
    kind            text NOT NULL CHECK (kind IN ('added', 'price_changed', 'removed', 'relisted', 'status_changed')),
    old_value       jsonb,
    new_value       jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vehicle_events_dealer_vin ON vehicle_events (dealership_id, vin, id);
CREATE INDEX vehicle_events_job ON vehicle_events (job_id);

CREATE TABLE rejects (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          bigint,
    dealership_id   bigint NOT NULL REFERENCES dealerships(id) ON DELETE CASCADE,
    source          text,
    reasons         text[] NOT NULL,
    payload         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejects_dealer_job ON rejects (dealership_id, job_id);

-- VINs each run saw, so a healthy complete run can mark the rest removed with one anti-join
-- without writing unchanged vehicles. Rows are deleted when the run is settled.
CREATE UNLOGGED TABLE run_seen (
    job_id          bigint NOT NULL,
    vin             text NOT NULL,
    PRIMARY KEY (job_id, vin)
);
