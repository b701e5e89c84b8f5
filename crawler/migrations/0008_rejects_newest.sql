-- `forecourt rejects` lists a dealer's rejects newest job first, and within a job newest
-- first: a backward scan of this index that stops at --limit, where (dealership_id,
-- job_id) alone had to sort every reject of the dealer (a broken million-row feed leaves a
-- million). Look-ups by dealer and job, the old index's work, use this one too.
CREATE INDEX IF NOT EXISTS rejects_dealer_job_id ON rejects (dealership_id, job_id, id);
DROP INDEX IF EXISTS rejects_dealer_job;
