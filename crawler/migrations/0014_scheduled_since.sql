-- When a dealership's current schedule started: it was resumed after a pause, given a
-- schedule while it had none, or given another one (cron line, interval or timezone). The
-- scheduler runs a dealer from its next slot after such a change (missed slots skipped), so
-- its inventory promise restarts then too: it is stale only once its first deadline from
-- that moment passes (jobs/freshness.py), not the instant an operator acts. NULL: on
-- schedule since it was added (created_at), as every dealership is when this applies.
ALTER TABLE dealerships ADD COLUMN scheduled_since timestamptz;

-- Set here, whatever path pauses, resumes or schedules a dealer (CLI, API, a script).
CREATE FUNCTION dealerships_scheduled_since() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT NEW.paused
       AND (NEW.schedule_cron IS NOT NULL OR NEW.schedule_interval_s IS NOT NULL)
       AND (OLD.paused
            OR NEW.schedule_cron IS DISTINCT FROM OLD.schedule_cron
            OR NEW.schedule_interval_s IS DISTINCT FROM OLD.schedule_interval_s
            OR NEW.schedule_tz IS DISTINCT FROM OLD.schedule_tz) THEN
        NEW.scheduled_since := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER dealerships_scheduled_since
    BEFORE UPDATE OF paused, schedule_cron, schedule_interval_s, schedule_tz ON dealerships
    FOR EACH ROW EXECUTE FUNCTION dealerships_scheduled_since();
