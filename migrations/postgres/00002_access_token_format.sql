-- +goose Up
-- JWT access tokens (RFC 9068), chosen per client; existing clients keep
-- opaque tokens.
ALTER TABLE clients ADD COLUMN access_token_format TEXT NOT NULL DEFAULT 'opaque'
    CHECK (access_token_format IN ('opaque', 'jwt'));

-- +goose Down
ALTER TABLE clients DROP COLUMN access_token_format;
