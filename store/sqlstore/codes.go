package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/twofold-idp/twofold/store"
)

const codeColumns = `user_id, purpose, code_hash, sends, sent_at, expires_at`

// GetOneTimeCode returns the code of a user and purpose.
func (s *Store) GetOneTimeCode(ctx context.Context, userID, purpose string) (store.OneTimeCode, error) {
	var c store.OneTimeCode
	err := s.get(ctx, &c, `SELECT `+codeColumns+` FROM one_time_codes WHERE user_id = ? AND purpose = ?`, userID, purpose)
	return c, wrap(err, "get one-time code")
}

// PutOneTimeCode inserts the first code of a purpose, or replaces the
// one whose send count the caller read: a conditional write either way,
// so two racing sends cannot both go out.
func (s *Store) PutOneTimeCode(ctx context.Context, c store.OneTimeCode, prevSends int) error {
	var res sql.Result
	var err error
	if prevSends == 0 {
		res, err = s.exec(ctx, `INSERT INTO one_time_codes (`+codeColumns+`) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id, purpose) DO NOTHING`,
			c.UserID, c.Purpose, c.Hash, c.Sends, c.SentAt.UTC(), c.ExpiresAt.UTC())
	} else {
		res, err = s.exec(ctx, `UPDATE one_time_codes SET code_hash = ?, sends = ?, sent_at = ?, expires_at = ?
			WHERE user_id = ? AND purpose = ? AND sends = ?`,
			c.Hash, c.Sends, c.SentAt.UTC(), c.ExpiresAt.UTC(), c.UserID, c.Purpose, prevSends)
	}
	if err == nil {
		err = one(res)
	}
	if errors.Is(err, store.ErrNotFound) {
		err = store.ErrConflict
	}
	return wrap(err, "put one-time code")
}

// UseOneTimeCode spends a code by deleting it: the row count decides.
func (s *Store) UseOneTimeCode(ctx context.Context, userID, purpose string, hash []byte, now time.Time) error {
	res, err := s.exec(ctx, `DELETE FROM one_time_codes WHERE user_id = ? AND purpose = ? AND code_hash = ? AND expires_at > ?`,
		userID, purpose, hash, now.UTC())
	if err == nil {
		err = one(res)
	}
	return wrap(err, "use one-time code")
}

// DeleteOneTimeCode removes the code of a user and purpose.
func (s *Store) DeleteOneTimeCode(ctx context.Context, userID, purpose string) error {
	_, err := s.exec(ctx, `DELETE FROM one_time_codes WHERE user_id = ? AND purpose = ?`, userID, purpose)
	return wrap(err, "delete one-time code")
}
