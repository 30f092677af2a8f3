package sqlstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/twofold-idp/twofold/store"
)

const oauth2Columns = `kind, signature, request_id, client_id, subject, active, requested_at, expires_at, data`

// CreateOAuth2Request stores one code, token or session. On PostgreSQL,
// outside a transaction, rows created at the same time are committed
// together (batch.go).
func (s *Store) CreateOAuth2Request(ctx context.Context, r store.OAuth2Request) error {
	if _, inTx := ctx.Value(txKey{}).(*sqlx.Tx); s.dialect == "postgres" && !inTx {
		return s.batch.add(ctx, r)
	}
	return s.insertOAuth2Request(ctx, r)
}

// CreateOAuth2Requests writes rows in one statement, so all land or none
// do. On PostgreSQL, outside a transaction, they may share their commit
// with other requests' rows, never split from each other.
func (s *Store) CreateOAuth2Requests(ctx context.Context, rows []store.OAuth2Request) error {
	switch len(rows) {
	case 0:
		return nil
	case 1:
		return s.CreateOAuth2Request(ctx, rows[0])
	}
	_, inTx := ctx.Value(txKey{}).(*sqlx.Tx)
	switch {
	case s.dialect == "postgres" && !inTx:
		return s.batch.add(ctx, rows...)
	case s.dialect == "postgres":
		return s.insertOAuth2Requests(ctx, rows)
	}
	// SQLite: one INSERT with a VALUES row each.
	var q strings.Builder
	q.WriteString(`INSERT INTO oauth2_requests (` + oauth2Columns + `) VALUES `)
	args := make([]any, 0, 9*len(rows))
	for i, r := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, r.Kind, r.Signature, r.RequestID, r.ClientID, r.Subject, r.Active, r.RequestedAt.UTC(), r.ExpiresAt.UTC(), r.Data)
	}
	_, err := s.exec(ctx, q.String(), args...)
	return wrap(err, "create "+rows[0].Kind+" rows")
}

func (s *Store) insertOAuth2Request(ctx context.Context, r store.OAuth2Request) error {
	_, err := s.exec(ctx, `INSERT INTO oauth2_requests (`+oauth2Columns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Kind, r.Signature, r.RequestID, r.ClientID, r.Subject, r.Active, r.RequestedAt.UTC(), r.ExpiresAt.UTC(), r.Data)
	return wrap(err, "create "+r.Kind)
}

// GetOAuth2Request returns the row, active or not.
func (s *Store) GetOAuth2Request(ctx context.Context, kind, signature string) (store.OAuth2Request, error) {
	var r store.OAuth2Request
	err := s.get(ctx, &r, `SELECT `+oauth2Columns+` FROM oauth2_requests WHERE kind = ? AND signature = ?`, kind, signature)
	return r, wrap(err, "get "+kind)
}

// DeactivateOAuth2Request flips active to false in one conditional
// UPDATE: of two concurrent callers exactly one affects the row.
//
// On PostgreSQL the statement first takes a share lock on the row's user
// (none for a client's own token): a code exchange or refresh issues its
// tokens in the same transaction, and a sign-out of the user (signOut)
// waits for it, then removes them.
func (s *Store) DeactivateOAuth2Request(ctx context.Context, kind, signature string) error {
	query := `UPDATE oauth2_requests SET active = ? WHERE kind = ? AND signature = ? AND active = ?`
	args := []any{false, kind, signature, true}
	if s.dialect == "postgres" {
		// The count makes the locking subquery run (once, before any
		// row is updated); it is never negative.
		query = `WITH u AS (SELECT 1 FROM users WHERE id = (SELECT subject FROM oauth2_requests WHERE kind = ? AND signature = ?) FOR SHARE)
			` + query + ` AND (SELECT count(*) FROM u) >= 0`
		args = append([]any{kind, signature}, args...)
	}
	res, err := s.exec(ctx, query, args...)
	if err == nil {
		err = one(res)
	}
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := s.GetOAuth2Request(ctx, kind, signature); gerr == nil {
			err = store.ErrConflict
		}
	}
	return wrap(err, "deactivate "+kind)
}

// DeleteOAuth2Request removes one row; a missing row is not an error.
func (s *Store) DeleteOAuth2Request(ctx context.Context, kind, signature string) error {
	_, err := s.exec(ctx, `DELETE FROM oauth2_requests WHERE kind = ? AND signature = ?`, kind, signature)
	return wrap(err, "delete "+kind)
}

// TakeOAuth2Request deletes a row and returns it, in one statement.
func (s *Store) TakeOAuth2Request(ctx context.Context, kind, signature string) (store.OAuth2Request, error) {
	var r store.OAuth2Request
	err := s.get(ctx, &r, `DELETE FROM oauth2_requests WHERE kind = ? AND signature = ? RETURNING `+oauth2Columns, kind, signature)
	return r, wrap(err, "take "+kind)
}

// DeactivateOAuth2Requests marks a whole family inactive.
func (s *Store) DeactivateOAuth2Requests(ctx context.Context, kind, requestID string) error {
	_, err := s.exec(ctx, `UPDATE oauth2_requests SET active = ? WHERE kind = ? AND request_id = ?`, false, kind, requestID)
	return wrap(err, "deactivate "+kind+" family")
}

// DeleteOAuth2Requests removes a whole family.
func (s *Store) DeleteOAuth2Requests(ctx context.Context, kind, requestID string) error {
	_, err := s.exec(ctx, `DELETE FROM oauth2_requests WHERE kind = ? AND request_id = ?`, kind, requestID)
	return wrap(err, "delete "+kind+" family")
}

// deleteBatch bounds each clean-up statement: after an outage or with
// long-lived refresh tokens millions of rows may expire together, and one
// DELETE of them all would hold a long write transaction (SQLite: the
// only writer; PostgreSQL: a huge WAL burst) while sign-ins wait.
var deleteBatch = 5000

// DeleteExpired is the clean-up job's one call. It deletes in batches,
// each its own short transaction, until a batch deletes nothing (a short
// batch is no proof: rows may move or go under concurrent writers).
func (s *Store) DeleteExpired(ctx context.Context, t time.Time) (int64, error) {
	// rowid (SQLite) and ctid (PostgreSQL) address a row whatever the
	// table's key.
	row := "rowid"
	if s.dialect == "postgres" {
		row = "ctid"
	}
	var total int64
	for _, table := range []string{"oauth2_requests", "login_flows", "sso_sessions", "jwt_assertions", "webauthn_sessions", "one_time_codes"} {
		for {
			res, err := s.exec(ctx, `DELETE FROM `+table+` WHERE `+row+` IN (SELECT `+row+` FROM `+table+
				` WHERE expires_at < ? LIMIT `+strconv.Itoa(deleteBatch)+`)`, t.UTC())
			if err != nil {
				return total, wrap(err, "delete expired "+table)
			}
			n, _ := res.RowsAffected()
			total += n
			if n == 0 {
				break
			}
			if err := ctx.Err(); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// UseJTI records a client assertion id; a live duplicate is ErrAlreadyExists.
func (s *Store) UseJTI(ctx context.Context, jti string, exp, now time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.exec(ctx, `DELETE FROM jwt_assertions WHERE jti = ? AND expires_at < ?`, jti, now.UTC()); err != nil {
			return wrap(err, "use jti")
		}
		_, err := s.exec(ctx, `INSERT INTO jwt_assertions (jti, expires_at) VALUES (?, ?)`, jti, exp.UTC())
		return wrap(err, "use jti")
	})
}

// DeleteSubjectTokens removes a user's codes and tokens.
func (s *Store) DeleteSubjectTokens(ctx context.Context, subject string) error {
	_, err := s.exec(ctx, `DELETE FROM oauth2_requests WHERE subject = ?`, subject)
	return wrap(err, "delete subject tokens")
}
