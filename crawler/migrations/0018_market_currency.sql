-- forecourt:no-transaction
-- Market medians are per currency (quality.score.market_key, RULES_VERSION 3): a run's
-- median of a model-year reads at most 1001 of its listings in that currency. With the old
-- key (lower(make), lower(model), year) a dealer pricing in a minority currency (CAD or EUR
-- in a mostly-USD market) read the whole range of each model-year it lists to find its
-- own currency's: the currency joins the key. Built CONCURRENTLY, so runs go on writing
-- while it builds; then the old index goes (concurrently too).
CREATE INDEX CONCURRENTLY IF NOT EXISTS vehicles_market_currency
    ON vehicles (lower(make), lower(model), year, currency) WHERE status = 'active';
DROP INDEX CONCURRENTLY IF EXISTS vehicles_market;
