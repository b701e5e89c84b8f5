-- Jobs get a public id: a random UUID the HTTP API names them by (ids, replayed_as,
-- Location, cursors). The job number (jobs.id) is one sequence over every dealership, so a
-- dealer's consecutive numbers told it how many jobs the others ran, and when. Inside, jobs
-- are still their numbers (ordering, workers, logs, the CLI).
--
-- Only catalogue changes here, under a brief lock: a column without a default (no rewrite),
-- then its default for new rows, set apart so existing rows are not rewritten under the
-- lock (a volatile default given with ADD COLUMN fills every row there and then).
-- 0020 fills existing rows and builds the unique index outside a transaction.
ALTER TABLE jobs ADD COLUMN public_id uuid;
ALTER TABLE jobs ALTER COLUMN public_id SET DEFAULT gen_random_uuid();

-- Filling a job's public id is no change a client sees (as a re-send, migration 0012): its
-- version (updated_at) and ETag hold, so 0020 wakes no poller and reorders no job by
-- updated_at. Nothing else ever changes a public id.
CREATE OR REPLACE FUNCTION jobs_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        IF (NEW.message_sent_at IS DISTINCT FROM OLD.message_sent_at
            OR NEW.public_id IS DISTINCT FROM OLD.public_id)
           AND to_jsonb(NEW) - 'message_sent_at' - 'public_id'
               = to_jsonb(OLD) - 'message_sent_at' - 'public_id' THEN
            RETURN NEW;
        END IF;
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;
