-- +goose Up
-- Accounts signed in through an upstream OpenID Connect provider (R03),
-- keyed on the upstream and its subject, never on an email address
-- (security.md S23: a mutable email claim is no account key).
CREATE TABLE federated_identities (
    upstream   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (upstream, subject)
);
CREATE INDEX federated_identities_user ON federated_identities (user_id);
-- The upstream a sign-in and its session went through: whether it skips
-- the local second factor is that upstream's setting, read when asked.
ALTER TABLE login_flows ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
ALTER TABLE sso_sessions ADD COLUMN upstream TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sso_sessions DROP COLUMN upstream;
ALTER TABLE login_flows DROP COLUMN upstream;
DROP TABLE federated_identities;
