-- forecourt schema, version 3: what the job queue needs beside the job records of 0001.

-- Cancellation of a running job is a request: the worker that runs it sees this and stops
-- its crawl child; the job is settled by that worker (or by the reaper if the worker died).
ALTER TABLE jobs ADD COLUMN cancel_requested_at timestamptz;
-- Which queue the job's message went to ('priority' or 'scheduled') and when a retry is due.
ALTER TABLE jobs ADD COLUMN queue text;
ALTER TABLE jobs ADD COLUMN retry_at timestamptz;
-- Dead letters: a dead job stays a job record; replaying or purging takes it off the list.
ALTER TABLE jobs ADD COLUMN replayed_as bigint;
ALTER TABLE jobs ADD COLUMN dlq_cleared_at timestamptz;
CREATE INDEX jobs_dead_letters ON jobs (dealership_id, id)
    WHERE state = 'dead' AND dlq_cleared_at IS NULL;

-- The scheduler's state per dealership: when it runs next, and how it has been failing.
CREATE TABLE schedule_state (
    dealership_id   bigint PRIMARY KEY REFERENCES dealerships(id) ON DELETE CASCADE,
    next_run_at     timestamptz,
    last_run_at     timestamptz,
    last_job_id     bigint,
    failures        integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedule_state_due ON schedule_state (next_run_at);
