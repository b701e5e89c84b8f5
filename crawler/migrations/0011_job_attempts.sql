-- Each attempt of a job is its own: it is timed from its own start and counted with its own
-- counters. `started_at` stays the job's first start (the API and CLI show it);
-- `attempt_started_at` is the current attempt's, set on every claim, and the running totals
-- behind /metrics (migration 0009) time an attempt with it. Before this a retry was timed
-- from the first attempt's start (its backoff and the backlog it waited behind counted as
-- run time), and an attempt that ended before reporting progress was counted with the
-- counters the previous attempt left (its vehicles counted again); claims now reset the
-- counters (crawler.db.jobs.claim), so a job's counters are its latest attempt's.
ALTER TABLE jobs ADD COLUMN attempt_started_at timestamptz;
UPDATE jobs SET attempt_started_at = started_at WHERE started_at IS NOT NULL;

CREATE OR REPLACE FUNCTION jobs_count_finished() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := coalesce(NEW.attempt_started_at, NEW.started_at);
BEGIN
    INSERT INTO job_totals AS t (kind, state, le, finished, duration_sum, upserted, rejected)
    VALUES (NEW.kind, NEW.state, job_duration_le(started, NEW.finished_at), 1,
            coalesce(extract(epoch FROM NEW.finished_at - started)::float8, 0),
            job_counter(NEW.counters, 'upserted'), job_counter(NEW.counters, 'rejected'))
    ON CONFLICT (kind, state, le) DO UPDATE
       SET finished = t.finished + 1, duration_sum = t.duration_sum + EXCLUDED.duration_sum,
           upserted = t.upserted + EXCLUDED.upserted, rejected = t.rejected + EXCLUDED.rejected;
    RETURN NULL;
END $$;
