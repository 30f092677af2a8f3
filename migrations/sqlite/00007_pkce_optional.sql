-- +goose Up
-- PKCE is required of every client that uses the code flow (RFC 9700
-- §2.1.1, security.md §3.6) unless its registration says it is optional:
-- an old confidential client that cannot send code_challenge. Existing
-- clients require it too.
ALTER TABLE clients ADD COLUMN pkce_optional INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE clients DROP COLUMN pkce_optional;
