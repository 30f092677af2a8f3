-- +goose Up
-- The second factor's hard cap (failures in a row across lock periods)
-- is a column of the account's counter instead of a key of its own: one
-- statement fewer per code (issue 7). The counts kept under the old keys
-- (mfa:cap:<user>) move to the account's key (mfa:user:<user>); a count
-- past the cap stays past it.
ALTER TABLE throttles ADD COLUMN streak INTEGER NOT NULL DEFAULT 0;
INSERT INTO throttles (key, failures, window_start, streak)
    SELECT 'mfa:user:' || substr(key, 9), 0, window_start, failures FROM throttles WHERE key LIKE 'mfa:cap:%'
    ON CONFLICT (key) DO UPDATE SET streak = excluded.streak;
DELETE FROM throttles WHERE key LIKE 'mfa:cap:%';

-- +goose Down
-- A count past the cap locks its old key again at its next attempt. An
-- old key written meanwhile (a release rolled out next to this one) keeps
-- the higher count.
INSERT INTO throttles (key, failures, window_start)
    SELECT 'mfa:cap:' || substr(key, 10), streak, window_start FROM throttles WHERE key LIKE 'mfa:user:%' AND streak > 0
    ON CONFLICT (key) DO UPDATE SET failures = GREATEST(throttles.failures, excluded.failures);
ALTER TABLE throttles DROP COLUMN streak;
