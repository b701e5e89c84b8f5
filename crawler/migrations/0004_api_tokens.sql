-- forecourt schema, version 4: API tokens, and job change notifications for the HTTP API.

-- Bearer tokens. The token itself is shown once at creation and never stored: only the
-- SHA-256 of the whole token (high-entropy random secret, so a fast hash is right), looked up
-- by its public prefix and compared in constant time. A dealer token has a dealership; an
-- operator token has none.
CREATE TABLE api_tokens (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prefix          text NOT NULL UNIQUE,
    secret_hash     bytea NOT NULL,
    role            text NOT NULL CHECK (role IN ('dealer', 'operator')),
    dealership_id   bigint REFERENCES dealerships(id) ON DELETE CASCADE,
    label           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    CHECK ((role = 'dealer') = (dealership_id IS NOT NULL))
);

-- API processes cache token records; a change that matters (revocation, deletion, also by
-- cascade from its dealership; not last_used_at) tells them to drop it at once.
CREATE FUNCTION api_tokens_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('forecourt_tokens', OLD.prefix);
    RETURN NULL;
END $$;
CREATE TRIGGER api_tokens_notify_delete AFTER DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_tokens_notify();
CREATE TRIGGER api_tokens_notify_update AFTER UPDATE ON api_tokens
    FOR EACH ROW WHEN ((OLD.prefix, OLD.secret_hash, OLD.role, OLD.dealership_id, OLD.revoked_at)
                       IS DISTINCT FROM
                       (NEW.prefix, NEW.secret_hash, NEW.role, NEW.dealership_id, NEW.revoked_at))
    EXECUTE FUNCTION api_tokens_notify();

-- A job's version (its updated_at) must move on every change, even from a writer that
-- forgets to set it, so pollers comparing versions or ETags never miss one.
CREATE FUNCTION jobs_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_touch BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_touch();

-- Every change to a job wakes the API processes' listeners (one LISTEN connection per
-- process), which fetch the job once for all the requests waiting on it.
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('forecourt_jobs', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify AFTER UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_notify();

-- The API lists a dealership's jobs newest first, filtered by state.
CREATE INDEX jobs_dealer_state_id ON jobs (dealership_id, state, id DESC);
