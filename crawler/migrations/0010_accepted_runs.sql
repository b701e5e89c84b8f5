-- `forecourt quality accept`: an operator accepts a complete run the gate judged degraded
-- (a dealer really sold a third of its stock, or moved half its inventory to another
-- rooftop) as the dealer's new baseline. The gate then compares runs with it and the
-- healthy runs after it, never with the older ones, so the next complete run is judged
-- healthy at the new level and removes what it does not see; without this a real drop
-- left every later run degraded, removing nothing, for ever.
ALTER TABLE jobs ADD COLUMN accepted_at timestamptz;
CREATE INDEX jobs_accepted ON jobs (dealership_id, kind, id) WHERE accepted_at IS NOT NULL;
