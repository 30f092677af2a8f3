-- +goose Up
-- A user's codes and tokens are revoked together (factor change, sign out
-- everywhere, disabled account): without this index that DELETE reads the
-- whole table, seconds at 10^7 rows (issue 7's growth run).
CREATE INDEX oauth2_requests_subject ON oauth2_requests (subject);

-- +goose Down
DROP INDEX oauth2_requests_subject;
