-- When a message for the job was last sent. The reaper re-sends a queued job's lost message
-- by it (crawler.db.jobs.stale_queued), so a re-send under the same message id need not
-- touch updated_at: a waiting job's version and ETag hold still.
ALTER TABLE jobs ADD COLUMN message_sent_at timestamptz;

-- A job's version moves on every change (migration 0004), but a re-send of the same message
-- (only message_sent_at moves) is no change a client sees.
CREATE OR REPLACE FUNCTION jobs_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        IF NEW.message_sent_at IS DISTINCT FROM OLD.message_sent_at
           AND to_jsonb(NEW) - 'message_sent_at' = to_jsonb(OLD) - 'message_sent_at' THEN
            RETURN NEW;
        END IF;
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;
