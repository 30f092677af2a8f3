package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twofold-idp/twofold/store"
)

// SetUserMFARequired sets the per-user enforcement flag.
func (s *Store) SetUserMFARequired(ctx context.Context, id string, required bool, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE users SET mfa_required = ?, updated_at = ? WHERE id = ?`, required, at.UTC(), id)
	if err == nil {
		err = one(res)
	}
	return wrap(err, "set mfa required")
}

const factorColumns = `id, user_id, kind, name, secret_enc, last_step, credential_id, credential, sign_count, confirmed, created_at, last_used_at, phone`

// CreateFactor stores a factor.
func (s *Store) CreateFactor(ctx context.Context, f store.Factor) error {
	_, err := s.exec(ctx, `INSERT INTO mfa_factors (`+factorColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.UserID, f.Kind, f.Name, f.SecretEnc, f.LastStep, f.CredentialID, f.Credential, f.SignCount,
		f.Confirmed, f.CreatedAt.UTC(), utcPtr(f.LastUsedAt), f.Phone)
	return wrap(err, "create factor")
}

// GetFactor finds a factor by id.
func (s *Store) GetFactor(ctx context.Context, id string) (store.Factor, error) {
	var f store.Factor
	err := s.get(ctx, &f, `SELECT `+factorColumns+` FROM mfa_factors WHERE id = ?`, id)
	return f, wrap(err, "get factor")
}

// ListFactors lists a user's factors, oldest first.
func (s *Store) ListFactors(ctx context.Context, userID string) ([]store.Factor, error) {
	fs := []store.Factor{}
	err := s.sel(ctx, &fs, `SELECT `+factorColumns+` FROM mfa_factors WHERE user_id = ? ORDER BY created_at, id`, userID)
	return fs, wrap(err, "list factors")
}

// ListFactorsAndCodes is one statement whatever the user has: the count
// of codes is its one row, joined to the user's factors if any (a
// sign-in's password step reads both, with or without factors).
func (s *Store) ListFactorsAndCodes(ctx context.Context, userID string) ([]store.Factor, int, error) {
	// store.Factor's fields, nullable: the count's row without a factor
	// has NULL in every factor column. A new factor column goes here too.
	var rows []struct {
		ID           sql.NullString `db:"id"`
		UserID       sql.NullString `db:"user_id"`
		Kind         sql.NullString `db:"kind"`
		Name         sql.NullString `db:"name"`
		SecretEnc    []byte         `db:"secret_enc"`
		LastStep     sql.NullInt64  `db:"last_step"`
		CredentialID []byte         `db:"credential_id"`
		Credential   sql.NullString `db:"credential"`
		SignCount    sql.NullInt64  `db:"sign_count"`
		Confirmed    sql.NullBool   `db:"confirmed"`
		CreatedAt    sql.NullTime   `db:"created_at"`
		LastUsedAt   *time.Time     `db:"last_used_at"`
		Phone        sql.NullString `db:"phone"`
		Codes        int            `db:"codes"`
	}
	err := s.sel(ctx, &rows, `SELECT `+qualified("f", factorColumns)+`, c.codes
		FROM (SELECT COUNT(*) AS codes FROM recovery_codes WHERE user_id = ? AND used_at IS NULL) c
		LEFT JOIN mfa_factors f ON f.user_id = ? ORDER BY f.created_at, f.id`, userID, userID)
	if err != nil {
		return nil, 0, wrap(err, "list factors and codes")
	}
	if len(rows) == 0 {
		return nil, 0, wrap(errors.New("no row"), "list factors and codes")
	}
	fs := []store.Factor{}
	for _, r := range rows {
		if !r.ID.Valid {
			continue // the count's row without a factor
		}
		fs = append(fs, store.Factor{
			ID: r.ID.String, UserID: r.UserID.String, Kind: r.Kind.String, Name: r.Name.String,
			SecretEnc: r.SecretEnc, LastStep: r.LastStep.Int64, CredentialID: r.CredentialID,
			Credential: r.Credential.String, SignCount: r.SignCount.Int64, Confirmed: r.Confirmed.Bool,
			CreatedAt: r.CreatedAt.Time, LastUsedAt: r.LastUsedAt, Phone: r.Phone.String,
		})
	}
	return fs, rows[0].Codes, nil
}

// ConfirmFactor marks a factor confirmed.
func (s *Store) ConfirmFactor(ctx context.Context, id string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE mfa_factors SET confirmed = ?, last_used_at = ? WHERE id = ?`, true, at.UTC(), id)
	if err == nil {
		err = one(res)
	}
	return wrap(err, "confirm factor")
}

// DeleteFactor removes a user's factor.
func (s *Store) DeleteFactor(ctx context.Context, userID, id string) error {
	res, err := s.exec(ctx, `DELETE FROM mfa_factors WHERE user_id = ? AND id = ?`, userID, id)
	if err == nil {
		err = one(res)
	}
	return wrap(err, "delete factor")
}

// DeleteFactors removes every factor of a user in one statement.
func (s *Store) DeleteFactors(ctx context.Context, userID string) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM mfa_factors WHERE user_id = ?`, userID)
	if err != nil {
		return 0, wrap(err, "delete factors")
	}
	n, err := res.RowsAffected()
	return n, wrap(err, "delete factors")
}

// DeleteUnconfirmedFactors drops abandoned enrolments.
func (s *Store) DeleteUnconfirmedFactors(ctx context.Context, userID string) error {
	_, err := s.exec(ctx, `DELETE FROM mfa_factors WHERE user_id = ? AND confirmed = ?`, userID, false)
	return wrap(err, "delete unconfirmed factors")
}

// UseTOTPStep advances the replay guard with one conditional UPDATE.
func (s *Store) UseTOTPStep(ctx context.Context, id string, step int64, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE mfa_factors SET last_step = ?, last_used_at = ? WHERE id = ? AND last_step < ?`, step, at.UTC(), id, step)
	if err == nil {
		err = one(res)
	}
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := s.GetFactor(ctx, id); gerr == nil {
			err = store.ErrConflict
		}
	}
	return wrap(err, "use totp step")
}

// TouchFactor sets a factor's last use.
func (s *Store) TouchFactor(ctx context.Context, id string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE mfa_factors SET last_used_at = ? WHERE id = ?`, at.UTC(), id)
	if err == nil {
		err = one(res)
	}
	return wrap(err, "touch factor")
}

// ReplaceRecoveryCodes voids the old set and stores the new one.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte, mailed bool, at time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return wrap(err, "void recovery codes")
		}
		for _, h := range hashes {
			if _, err := s.exec(ctx, `INSERT INTO recovery_codes (user_id, code_hash, created_at, mailed) VALUES (?, ?, ?, ?)`, userID, h, at.UTC(), mailed); err != nil {
				return wrap(err, "store recovery code")
			}
		}
		return nil
	})
}

// UseRecoveryCode spends a code with a conditional UPDATE.
func (s *Store) UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) (bool, error) {
	var mailed bool
	err := s.get(ctx, &mailed, `UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL RETURNING mailed`,
		at.UTC(), userID, hash)
	return mailed, wrap(err, "use recovery code")
}

// CountRecoveryCodes counts unused codes.
func (s *Store) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.get(ctx, &n, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`, userID)
	return n, wrap(err, "count recovery codes")
}

// RecoveryCodesMailed tells whether the user's set was mailed: every code
// of a set carries the mark, used or not.
func (s *Store) RecoveryCodesMailed(ctx context.Context, userID string) (bool, error) {
	var n int
	err := s.get(ctx, &n, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND mailed`, userID)
	return n > 0, wrap(err, "recovery codes mailed")
}

// DeleteRecoveryCodes removes every code of a user.
func (s *Store) DeleteRecoveryCodes(ctx context.Context, userID string) error {
	_, err := s.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID)
	return wrap(err, "delete recovery codes")
}

// Attempt counts one attempt in a single UPSERT (no transaction: the row
// lock of INSERT … ON CONFLICT makes concurrent counts exact). A count
// whose lock has expired, or an unlocked count older than the window,
// starts again at 1. Under a cap, the streak counts the allowed attempts
// since the last reset, across lock periods; the first attempt past the cap sets
// it to cap+1, which keeps the key shut. Issue 7: the former
// delete-then-upsert transaction cost four statements and a commit per
// attempt, and the cap a key (and a statement) of its own.
func (s *Store) Attempt(ctx context.Context, key string, lim store.Limit, now time.Time) (store.Throttle, error) {
	ths, err := s.Attempts(ctx, now, store.Try{Key: key, Limit: lim})
	if err != nil {
		return store.Throttle{}, err
	}
	return ths[0], nil
}

// Attempts makes each try in turn until one is refused. On PostgreSQL
// every try is one UPSERT in a chain of common table expressions, each
// inserting only when the one before it returned an allowed row, so a
// sign-in step's two counts (the address, the account) cost one round
// trip instead of two; SQLite is local and runs them one by one.
//
// The chain holds each row's lock until the statement ends, taking them
// in the tries' order: the address's, then the account's. Success takes
// the same two in the same order, so the two cannot deadlock.
func (s *Store) Attempts(ctx context.Context, now time.Time, tries ...store.Try) ([]store.Throttle, error) {
	now = now.UTC()
	if len(tries) == 0 {
		return nil, nil
	}
	for i, t := range tries {
		if slices.ContainsFunc(tries[:i], func(o store.Try) bool { return o.Key == t.Key }) {
			// PostgreSQL's one statement cannot upsert a row twice.
			return nil, fmt.Errorf("throttle attempts: key %q twice", t.Key)
		}
	}
	if s.dialect != "postgres" || len(tries) == 1 {
		var out []store.Throttle
		for _, t := range tries {
			query, args := attemptSQL(t, now, "", store.Limit{})
			var row throttleRow
			if err := s.get(ctx, &row, query+` RETURNING failures, locked_until, streak`, args...); err != nil {
				return nil, wrap(err, "throttle attempt")
			}
			th, err := s.settle(ctx, t, row, now)
			if err != nil {
				return nil, err
			}
			if out = append(out, th); !th.Allowed {
				break
			}
		}
		return out, nil
	}
	var (
		b    strings.Builder
		args []any
	)
	b.WriteString("WITH ")
	for i, t := range tries {
		if i > 0 {
			b.WriteString(", ")
		}
		prev := ""
		if i > 0 {
			prev = fmt.Sprintf("t%d", i-1)
		}
		query, a := attemptSQL(t, now, prev, tries[max(i-1, 0)].Limit)
		fmt.Fprintf(&b, "t%d AS (%s RETURNING %d AS i, failures, locked_until, streak)", i, query, i)
		args = append(args, a...)
	}
	for i := range tries {
		if i > 0 {
			b.WriteString(" UNION ALL")
		}
		fmt.Fprintf(&b, " SELECT i, failures, locked_until, streak FROM t%d", i)
	}
	var rows []throttleRow
	if err := s.sel(ctx, &rows, b.String(), args...); err != nil {
		return nil, wrap(err, "throttle attempts")
	}
	slices.SortFunc(rows, func(a, b throttleRow) int { return a.I - b.I })
	var out []store.Throttle
	for i, row := range rows {
		if row.I != i {
			return nil, fmt.Errorf("throttle attempts: try %d missing", i)
		}
		th, err := s.settle(ctx, tries[i], row, now)
		if err != nil {
			return nil, err
		}
		if out = append(out, th); !th.Allowed {
			break
		}
	}
	if len(out) < len(tries) && (len(out) == 0 || out[len(out)-1].Allowed) {
		return nil, fmt.Errorf("throttle attempts: %d of %d tries counted", len(out), len(tries))
	}
	return out, nil
}

type throttleRow struct {
	I           int        `db:"i"`
	Failures    int        `db:"failures"`
	LockedUntil *time.Time `db:"locked_until"`
	Streak      int        `db:"streak"`
}

// attemptSQL is one try's UPSERT, without its RETURNING. With prev (a
// CTE of Attempts, counted under prevLim) the row is inserted only when
// prev's returned row was allowed: the same test as settle's.
func attemptSQL(t store.Try, now time.Time, prev string, prevLim store.Limit) (string, []any) {
	lim := t.Limit
	// With no window, a cutoff that no row can be at or before.
	cutoff := time.Unix(0, 0).UTC()
	if lim.Window > 0 {
		cutoff = now.Add(-lim.Window)
	}
	const fresh = `((throttles.locked_until IS NOT NULL AND throttles.locked_until <= ?)
		OR (throttles.locked_until IS NULL AND throttles.window_start <= ?))`
	// capped: the streak has reached the cap. refused: locked now, or
	// this attempt goes past Max.
	const capped = `(? > 0 AND throttles.streak >= ?)`
	const refused = `((throttles.locked_until IS NOT NULL AND throttles.locked_until > ?)
		OR (NOT ` + fresh + ` AND throttles.failures + 1 > ?))`
	var query string
	var args []any
	if prev == "" {
		query = `INSERT INTO throttles (key, failures, window_start, streak) VALUES (?, 1, ?, ?)`
		args = []any{t.Key, now, firstStreak(lim)}
	} else {
		query = `INSERT INTO throttles (key, failures, window_start, streak) SELECT ?, 1, ?, ? FROM ` + prev + `
			WHERE ` + prev + `.locked_until IS NULL AND ` + prev + `.failures <= ? AND NOT (? > 0 AND ` + prev + `.streak > ?)`
		args = []any{t.Key, now, firstStreak(lim), prevLim.Max, prevLim.Cap, prevLim.Cap}
	}
	query += `
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN ` + fresh + ` THEN 1 ELSE throttles.failures + 1 END,
			window_start = CASE WHEN ` + fresh + ` THEN excluded.window_start ELSE throttles.window_start END,
			locked_until = CASE WHEN ` + fresh + ` THEN NULL ELSE throttles.locked_until END,
			streak = CASE WHEN ? = 0 THEN 0 WHEN ` + capped + ` THEN ? + 1 WHEN ` + refused + ` THEN throttles.streak ELSE throttles.streak + 1 END`
	args = append(args,
		now, cutoff, now, cutoff, now, cutoff,
		lim.Cap, lim.Cap, lim.Cap, lim.Cap, now, now, cutoff, lim.Max)
	return query, args
}

// settle reads a try's counted row: refused when capped, locked, or
// past Max, in which case it sets the lock.
func (s *Store) settle(ctx context.Context, t store.Try, row throttleRow, now time.Time) (store.Throttle, error) {
	lim := t.Limit
	out := store.Throttle{Failures: row.Failures}
	switch {
	case lim.Cap > 0 && row.Streak > lim.Cap:
		out.Capped = true
	case row.LockedUntil != nil:
		out.RetryAt = *row.LockedUntil
	case row.Failures > lim.Max:
		out.RetryAt = now.Add(lim.Lock)
		// Concurrent attempts past the limit may each set it: any one
		// of their (near-equal) times will do.
		// "failures > Max": a reset and a fresh count between the two
		// statements must not be locked.
		if _, err := s.exec(ctx, `UPDATE throttles SET locked_until = ? WHERE key = ? AND locked_until IS NULL AND failures > ?`, out.RetryAt, t.Key, lim.Max); err != nil {
			return store.Throttle{}, wrap(err, "throttle attempt")
		}
	default:
		out.Allowed = true
	}
	return out, nil
}

// firstStreak is a new key's streak: 1 when it has a cap and its first
// attempt is allowed.
func firstStreak(lim store.Limit) int {
	if lim.Cap == 0 || lim.Max < 1 {
		return 0
	}
	return 1
}

// ResetThrottle clears keys after a success, in one statement.
func (s *Store) ResetThrottle(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	_, err := s.exec(ctx, `DELETE FROM throttles WHERE key IN (?`+strings.Repeat(", ?", len(keys)-1)+`)`, args...)
	return wrap(err, "reset throttle")
}

// GetFactorByCredential finds a WebAuthn factor by credential id.
func (s *Store) GetFactorByCredential(ctx context.Context, credentialID []byte) (store.Factor, error) {
	var f store.Factor
	err := s.get(ctx, &f, `SELECT `+factorColumns+` FROM mfa_factors WHERE credential_id = ?`, credentialID)
	return f, wrap(err, "get factor by credential")
}

// UpdateWebAuthnCredential is conditional on the counter moving forward.
func (s *Store) UpdateWebAuthnCredential(ctx context.Context, id, credential string, signCount int64, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE mfa_factors SET credential = ?, sign_count = ?, last_used_at = ?
		WHERE id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`, credential, signCount, at.UTC(), id, signCount, signCount)
	if err == nil {
		err = one(res)
	}
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := s.GetFactor(ctx, id); gerr == nil {
			err = store.ErrConflict
		}
	}
	return wrap(err, "update webauthn credential")
}

// CreateWebAuthnSession stores a ceremony.
func (s *Store) CreateWebAuthnSession(ctx context.Context, w store.WebAuthnSession) error {
	_, err := s.exec(ctx, `INSERT INTO webauthn_sessions (id, user_id, data, expires_at) VALUES (?, ?, ?, ?)`,
		w.ID, w.UserID, w.Data, w.ExpiresAt.UTC())
	return wrap(err, "create webauthn session")
}

// TakeWebAuthnSession deletes and returns a ceremony in one statement.
func (s *Store) TakeWebAuthnSession(ctx context.Context, id string) (store.WebAuthnSession, error) {
	var w store.WebAuthnSession
	err := s.get(ctx, &w, `DELETE FROM webauthn_sessions WHERE id = ? RETURNING id, user_id, data, expires_at`, id)
	return w, wrap(err, "take webauthn session")
}

// Success takes one attempt back from shared and clears keys. On
// PostgreSQL that is one statement (the refund in a WITH); SQLite has no
// data-modifying WITH, and its two statements share a transaction.
func (s *Store) Success(ctx context.Context, shared string, keys ...string) error {
	if shared == "" {
		return s.ResetThrottle(ctx, keys...)
	}
	const refund = `UPDATE throttles SET failures = failures - 1 WHERE key = ? AND failures > 0`
	if len(keys) == 0 {
		_, err := s.exec(ctx, refund, shared)
		return wrap(err, "refund throttle attempt")
	}
	args := make([]any, 0, len(keys)+1)
	for _, k := range keys {
		args = append(args, k)
	}
	in := `(?` + strings.Repeat(", ?", len(keys)-1) + `)`
	if s.dialect == "postgres" {
		// The DELETE's condition reads the refund, so the refund runs
		// (and locks the shared key's row) before the DELETE locks any
		// of keys': the order Attempts takes them in (no deadlock).
		_, err := s.exec(ctx, `WITH refunded AS (`+refund+` RETURNING key)
			DELETE FROM throttles WHERE key IN `+in+` AND (SELECT COUNT(*) FROM refunded) >= 0`, append([]any{shared}, args...)...)
		return wrap(err, "throttle success")
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.ResetThrottle(ctx, keys...); err != nil {
			return err
		}
		_, err := s.exec(ctx, refund, shared)
		return wrap(err, "refund throttle attempt")
	})
}
