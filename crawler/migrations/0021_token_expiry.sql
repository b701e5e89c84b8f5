-- API tokens may expire (`forecourt tokens create --expires-in 90d`): a token past its
-- expires_at answers exactly as an unknown one. NULL, every existing token's value, never
-- expires, as before. Adding a nullable column without a default rewrites nothing.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;

-- API processes cache token records: a change of expiry (an operator shortening one by
-- hand) must evict the cached record too, as a revocation does.
DROP TRIGGER api_tokens_notify_update ON api_tokens;
CREATE TRIGGER api_tokens_notify_update AFTER UPDATE ON api_tokens
    FOR EACH ROW WHEN ((OLD.prefix, OLD.secret_hash, OLD.role, OLD.dealership_id, OLD.revoked_at,
                        OLD.expires_at)
                       IS DISTINCT FROM
                       (NEW.prefix, NEW.secret_hash, NEW.role, NEW.dealership_id, NEW.revoked_at,
                        NEW.expires_at))
    EXECUTE FUNCTION api_tokens_notify();
