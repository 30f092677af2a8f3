package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twofold-idp/twofold/store"
)

const userColumns = `id, email, email_key, population, role, password_hash, password_must_change,
	mfa_required, disabled, created_at, updated_at`

// CreateUser inserts u; a taken (population, email_key) is ErrAlreadyExists.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.EmailKey, u.Population, u.Role, u.PasswordHash, u.PasswordMustChange,
		u.MFARequired, u.Disabled, u.CreatedAt.UTC(), u.UpdatedAt.UTC())
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// GetUser finds a user by id.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	var u store.User
	err := s.get(ctx, &u, `SELECT `+userColumns+` FROM users WHERE id = ?`, id)
	return u, wrap(err, "get user")
}

// GetUserByEmail finds a user by population and normalised email.
func (s *Store) GetUserByEmail(ctx context.Context, p store.Population, emailKey string) (store.User, error) {
	var u store.User
	var err error
	if p == "" {
		// Both populations in one probe of the (population, email_key)
		// index, the agent first whatever the collation.
		err = s.get(ctx, &u, `SELECT `+userColumns+` FROM users WHERE population IN (?, ?) AND email_key = ?
			ORDER BY CASE WHEN population = ? THEN 0 ELSE 1 END LIMIT 1`,
			store.PopulationAgent, store.PopulationContact, emailKey, store.PopulationAgent)
	} else {
		err = s.get(ctx, &u, `SELECT `+userColumns+` FROM users WHERE population = ? AND email_key = ?`, p, emailKey)
	}
	return u, wrap(err, "get user by email")
}

// ListUsers lists users ordered by population then email.
func (s *Store) ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, error) {
	query := `SELECT ` + userColumns + ` FROM users`
	var args []any
	if f.Population != "" {
		query += ` WHERE population = ?`
		args = append(args, f.Population)
	}
	query += ` ORDER BY population, email_key`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
		if f.Offset > 0 {
			query += ` OFFSET ?`
			args = append(args, f.Offset)
		}
	}
	users := []store.User{}
	err := s.sel(ctx, &users, query, args...)
	return users, wrap(err, "list users")
}

// CountUsers counts every account.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.get(ctx, &n, `SELECT COUNT(*) FROM users`)
	return n, wrap(err, "count users")
}

// UpdateUserPassword replaces a user's password hash.
func (s *Store) UpdateUserPassword(ctx context.Context, id, hash string, mustChange bool, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE users SET password_hash = ?, password_must_change = ?, updated_at = ? WHERE id = ?`,
		hash, mustChange, at.UTC(), id)
	if err == nil {
		err = one(res)
	}
	return wrap(err, "update password")
}

// LockUser takes a share lock on the user's row on PostgreSQL, which a
// sign-out's lock waits for (signOut); SQLite runs one writer at a time.
func (s *Store) LockUser(ctx context.Context, id string) error {
	if s.dialect != "postgres" {
		return nil
	}
	_, err := s.exec(ctx, `SELECT 1 FROM users WHERE id = ? FOR SHARE`, id)
	return wrap(err, "lock user")
}

// ChangeUserPassword replaces the hash only while it is still from.
func (s *Store) ChangeUserPassword(ctx context.Context, id, from, hash string, mustChange bool, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE users SET password_hash = ?, password_must_change = ?, updated_at = ? WHERE id = ? AND password_hash = ?`,
		hash, mustChange, at.UTC(), id, from)
	if err == nil {
		err = one(res)
	}
	if errors.Is(err, store.ErrNotFound) {
		err = store.ErrConflict
	}
	return wrap(err, "change password")
}

// SetUserDisabled disables or re-enables an account.
func (s *Store) SetUserDisabled(ctx context.Context, id string, disabled bool, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?`, disabled, at.UTC(), id)
	if err == nil {
		err = one(res)
	}
	return wrap(err, "set user disabled")
}

// wrap adds context while keeping the sentinel visible to errors.Is.
func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ListMFAPolicies returns every population's policy.
func (s *Store) ListMFAPolicies(ctx context.Context) ([]store.MFAPolicy, error) {
	ps := []store.MFAPolicy{}
	err := s.sel(ctx, &ps, `SELECT population, required, grace_until, methods, updated_at FROM mfa_policies ORDER BY population`)
	return ps, wrap(err, "list mfa policies")
}

// SetMFARequirement upserts a population's requirement columns only.
func (s *Store) SetMFARequirement(ctx context.Context, pop store.Population, required bool, graceUntil *time.Time, at time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO mfa_policies (population, required, grace_until, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (population) DO UPDATE SET required = excluded.required, grace_until = excluded.grace_until,
		updated_at = excluded.updated_at`, pop, required, utcPtr(graceUntil), at.UTC())
	return wrap(err, "set mfa requirement")
}

// SetMFAMethods upserts a population's methods column only.
func (s *Store) SetMFAMethods(ctx context.Context, pop store.Population, methods store.Strings, at time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO mfa_policies (population, methods, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (population) DO UPDATE SET methods = excluded.methods, updated_at = excluded.updated_at`,
		pop, methods, at.UTC())
	return wrap(err, "set mfa methods")
}
