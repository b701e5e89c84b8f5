-- Feed sources: what a stored body's result depended on besides its bytes (the mapping in
-- use, ingest.feed.PIPELINE_VERSION, the format; a hash). A fetched feed is "unchanged"
-- only when this fingerprint is the current one too: otherwise no If-None-Match or
-- If-Modified-Since is sent and the body hash is not compared. Sources recorded before this
-- migration have none, so each dealer's next feed run processes its body once.
-- From now on the validators are also cleared as soon as a run starts processing a body,
-- and written again only when that run succeeds (ingest.feed_job.run_job).
ALTER TABLE feed_sources ADD COLUMN IF NOT EXISTS fingerprint text;
