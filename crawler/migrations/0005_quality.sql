-- Quality: which version of the scoring rules scored each vehicle (rescore finds the stale),
-- and an index on each active vehicle's first photo (the same photo reused across vehicles).

ALTER TABLE vehicles ADD COLUMN IF NOT EXISTS rules_version smallint;
CREATE INDEX IF NOT EXISTS vehicles_rules_version ON vehicles (rules_version);
CREATE INDEX IF NOT EXISTS vehicles_hero_photo ON vehicles ((image_urls[1]))
    WHERE status = 'active';
CREATE INDEX IF NOT EXISTS vehicles_market ON vehicles (lower(make), lower(model), year)
    WHERE status = 'active' AND price IS NOT NULL;
