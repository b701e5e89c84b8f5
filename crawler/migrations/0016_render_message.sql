-- The id of the job's message when it went to a render queue (jobs/queues.py), else NULL.
-- `queue` keeps the job's own queue (a release without render queues re-sends and runs it
-- there); a job waits on the render queue beside it while this equals `message_id`, so a
-- message sent since (by any release) ends that wait. The reaper sends such a job back to its
-- own queue once no worker with Chromium has taken that render queue for a while
-- (jobs/reaper.py), and the API says what it waits for. Nullable, no default: no rewrite.
ALTER TABLE jobs ADD COLUMN render_message_id text;
