-- A job cancelled while `queued` (waiting for its first attempt or for a retry) ended an
-- attempt that never ran: the running totals behind /metrics (migrations 0009, 0011) count
-- it with no duration and no vehicles or rejects. Before this, cancelling a job queued for
-- its retry counted attempt 1 again: timed from attempt 1's start through its backoff, with
-- attempt 1's counters (which a retry's claim resets only when it runs).
CREATE OR REPLACE FUNCTION jobs_count_finished() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := coalesce(NEW.attempt_started_at, NEW.started_at);
    counters jsonb := NEW.counters;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.state = 'queued' AND NEW.state = 'cancelled' THEN
            started := NULL;
            counters := '{}';
        END IF;
    END IF;
    INSERT INTO job_totals AS t (kind, state, le, finished, duration_sum, upserted, rejected)
    VALUES (NEW.kind, NEW.state, job_duration_le(started, NEW.finished_at), 1,
            coalesce(extract(epoch FROM NEW.finished_at - started)::float8, 0),
            job_counter(counters, 'upserted'), job_counter(counters, 'rejected'))
    ON CONFLICT (kind, state, le) DO UPDATE
       SET finished = t.finished + 1, duration_sum = t.duration_sum + EXCLUDED.duration_sum,
           upserted = t.upserted + EXCLUDED.upserted, rejected = t.rejected + EXCLUDED.rejected;
    RETURN NULL;
END $$;
