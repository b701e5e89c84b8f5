-- forecourt:no-transaction
-- Public ids (0019) for the jobs written before it, then unique and required. Outside a
-- transaction, so running jobs keep writing: the fill is one UPDATE of the jobs table
-- (kept small by retention; it holds each row's lock until it commits), the index is
-- built CONCURRENTLY, and SET NOT NULL scans the table once under its lock. Every
-- statement is safe to run again.
UPDATE jobs SET public_id = gen_random_uuid() WHERE public_id IS NULL;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS jobs_public_id ON jobs (public_id);
ALTER TABLE jobs ALTER COLUMN public_id SET NOT NULL;
