-- +goose NO TRANSACTION
-- +goose Up
-- A user's codes and tokens are revoked together (factor change, sign out
-- everywhere, disabled account): without this index that DELETE reads the
-- whole table, seconds at 10^7 rows (issue 7's growth run). CONCURRENTLY:
-- token issuance goes on while a big table is indexed (outside a
-- transaction, so goose runs this migration without one).
CREATE INDEX CONCURRENTLY IF NOT EXISTS oauth2_requests_subject ON oauth2_requests (subject);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS oauth2_requests_subject;
