-- +goose Up
-- The first schema: accounts and audit are used now; the other tables are
-- laid out for the features that follow (clients, factors, login flows,
-- sessions, OAuth 2.0 state, keys, policies, throttling).
CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    email                TEXT NOT NULL,
    email_key            TEXT NOT NULL,
    population           TEXT NOT NULL CHECK (population IN ('agent', 'contact')),
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'contact')),
    password_hash        TEXT NOT NULL,
    password_must_change INTEGER NOT NULL DEFAULT 0,
    mfa_required         INTEGER NOT NULL DEFAULT 0,
    disabled             INTEGER NOT NULL DEFAULT 0,
    created_at           DATETIME NOT NULL,
    updated_at           DATETIME NOT NULL,
    UNIQUE (population, email_key)
);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         DATETIME NOT NULL,
    type       TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    actor_id   TEXT NOT NULL DEFAULT '',
    client_id  TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_user_at ON audit_events (user_id, at);
CREATE INDEX audit_events_at ON audit_events (at);

CREATE TABLE clients (
    id                         TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    secret_hash                BLOB,
    public                     INTEGER NOT NULL DEFAULT 0,
    first_party                INTEGER NOT NULL DEFAULT 0,
    require_mfa                INTEGER NOT NULL DEFAULT 0,
    redirect_uris              TEXT NOT NULL DEFAULT '[]',
    post_logout_redirect_uris  TEXT NOT NULL DEFAULT '[]',
    grant_types                TEXT NOT NULL DEFAULT '[]',
    scopes                     TEXT NOT NULL DEFAULT '[]',
    token_endpoint_auth_method TEXT NOT NULL,
    jwks                       TEXT NOT NULL DEFAULT '',
    jwks_uri                   TEXT NOT NULL DEFAULT '',
    id_token_alg               TEXT NOT NULL DEFAULT 'RS256',
    created_at                 DATETIME NOT NULL,
    updated_at                 DATETIME NOT NULL
);

CREATE TABLE mfa_factors (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('totp', 'webauthn', 'email', 'sms')),
    name          TEXT NOT NULL DEFAULT '',
    secret_enc    BLOB,                       -- TOTP secret, AES-GCM under the secrets key
    last_step     INTEGER NOT NULL DEFAULT 0, -- last accepted TOTP time step (replay guard)
    credential_id BLOB UNIQUE,                -- WebAuthn
    credential    TEXT NOT NULL DEFAULT '',   -- WebAuthn credential as JSON
    sign_count    INTEGER NOT NULL DEFAULT 0,
    phone         TEXT NOT NULL DEFAULT '',
    confirmed     INTEGER NOT NULL DEFAULT 0,
    created_at    DATETIME NOT NULL,
    last_used_at  DATETIME
);
CREATE INDEX mfa_factors_user ON mfa_factors (user_id);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BLOB NOT NULL,
    created_at DATETIME NOT NULL,
    used_at    DATETIME,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE login_flows (
    id             TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    user_id        TEXT NOT NULL DEFAULT '',
    session_id     TEXT NOT NULL DEFAULT '',
    client_id      TEXT NOT NULL,
    authorize_form TEXT NOT NULL,            -- the original authorize parameters
    methods        TEXT NOT NULL DEFAULT '[]',
    failures       INTEGER NOT NULL DEFAULT 0,
    auth_time      DATETIME,
    created_at     DATETIME NOT NULL,
    expires_at     DATETIME NOT NULL
);
CREATE INDEX login_flows_expires ON login_flows (expires_at);

CREATE TABLE sso_sessions (
    id         TEXT PRIMARY KEY,             -- hash of the cookie value
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr        TEXT NOT NULL DEFAULT '[]',
    acr        TEXT NOT NULL DEFAULT '',
    auth_time  DATETIME NOT NULL,
    created_at DATETIME NOT NULL,
    last_seen  DATETIME NOT NULL,          -- for the idle timeout
    expires_at DATETIME NOT NULL
);
CREATE INDEX sso_sessions_user ON sso_sessions (user_id);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL DEFAULT '[]',
    granted_at DATETIME NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- All fosite state: authorize codes, access and refresh tokens, PKCE and
-- OIDC sessions, one row per signature.
CREATE TABLE oauth2_requests (
    kind         TEXT NOT NULL,
    signature    TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    subject      TEXT NOT NULL DEFAULT '',
    active       INTEGER NOT NULL DEFAULT 1,
    requested_at DATETIME NOT NULL,
    expires_at   DATETIME NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (kind, signature)
);
-- Families are revoked by (kind, request_id).
CREATE INDEX oauth2_requests_request ON oauth2_requests (request_id, kind);
CREATE INDEX oauth2_requests_expires ON oauth2_requests (expires_at);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_key_enc BLOB NOT NULL,
    active          INTEGER NOT NULL DEFAULT 0,
    created_at      DATETIME NOT NULL,
    retired_at      DATETIME
);

CREATE TABLE mfa_policies (
    population  TEXT PRIMARY KEY CHECK (population IN ('agent', 'contact')),
    required    INTEGER NOT NULL DEFAULT 0,
    grace_until DATETIME,
    methods     TEXT NOT NULL DEFAULT '[]',
    updated_at  DATETIME NOT NULL
);

CREATE TABLE throttles (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    window_start DATETIME NOT NULL,
    locked_until DATETIME
);

CREATE TABLE webauthn_sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL DEFAULT '',
    data       TEXT NOT NULL,
    expires_at DATETIME NOT NULL
);

-- private_key_jwt client assertions already used (replay guard).
CREATE TABLE jwt_assertions (
    jti        TEXT PRIMARY KEY,
    expires_at DATETIME NOT NULL
);

-- +goose Down
DROP TABLE jwt_assertions;
DROP TABLE webauthn_sessions;
DROP TABLE throttles;
DROP TABLE mfa_policies;
DROP TABLE signing_keys;
DROP TABLE oauth2_requests;
DROP TABLE consents;
DROP TABLE sso_sessions;
DROP TABLE login_flows;
DROP TABLE recovery_codes;
DROP TABLE mfa_factors;
DROP TABLE clients;
DROP TABLE audit_events;
DROP TABLE users;
