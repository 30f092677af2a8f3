-- +goose Up
-- Codes sent by email (R08): the HMAC of the code, never the code, one
-- live code per user and purpose (a sign-in, or a setup on the account
-- page). sends counts the codes sent for the purpose: each resend waits
-- 30 s longer than the one before.
CREATE TABLE one_time_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    code_hash  BLOB NOT NULL,
    sends      INTEGER NOT NULL,
    sent_at    DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    PRIMARY KEY (user_id, purpose)
);
CREATE INDEX one_time_codes_expires_at ON one_time_codes (expires_at);
-- A user has email codes or not: two set-ups finishing at once make one.
CREATE UNIQUE INDEX mfa_factors_one_email ON mfa_factors (user_id) WHERE kind = 'email';
-- One phone per user for codes by SMS (R09): a new number replaces it.
CREATE UNIQUE INDEX mfa_factors_one_sms ON mfa_factors (user_id) WHERE kind = 'sms';
-- Recovery codes an admin mailed (R20) rest on the mailbox: a sign-in
-- with one is worth an email code, not a second factor.
ALTER TABLE recovery_codes ADD COLUMN mailed INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE recovery_codes DROP COLUMN mailed;
DROP INDEX mfa_factors_one_sms;
DROP INDEX mfa_factors_one_email;
DROP TABLE one_time_codes;
