package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestMigrationAccessTokenFormat upgrades a database holding a client
// from version 1: the client keeps opaque access tokens. Then down and up
// again, as an operator rolling back a release would.
func TestMigrationAccessTokenFormat(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			s := sqltest.OpenURL(t, sqltest.URL(t, dialect), false)
			g, err := s.Migrator()
			require.NoError(t, err)

			_, err = g.UpTo(ctx, 1)
			require.NoError(t, err)
			// A client as release 1 wrote it, without the column.
			_, err = s.DB().ExecContext(ctx, s.DB().Rebind(`INSERT INTO clients (id, name, token_endpoint_auth_method, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?)`), "old", "Old", "client_secret_basic", time.Now().UTC(), time.Now().UTC())
			require.NoError(t, err)

			_, err = s.Migrate(ctx)
			require.NoError(t, err)
			require.NoError(t, s.CheckSchema(ctx))
			c, err := s.GetClient(ctx, "old")
			require.NoError(t, err)
			assert.Equal(t, store.AccessTokenOpaque, c.AccessTokenFormat)

			_, err = g.DownTo(ctx, 1)
			require.NoError(t, err)
			var n int
			require.NoError(t, s.DB().GetContext(ctx, &n, "SELECT COUNT(*) FROM clients WHERE id = 'old'"), "the client survives the down migration")
			assert.Equal(t, 1, n)
			_, err = s.Migrate(ctx)
			require.NoError(t, err)
			c, err = s.GetClient(ctx, "old")
			require.NoError(t, err)
			assert.Equal(t, store.AccessTokenOpaque, c.AccessTokenFormat)
		})
	}
}

// TestMigrationThrottleStreak upgrades a database from version 3, where
// the second factor's hard cap was a key of its own: the counts move to
// the account's key, and an account past the cap stays shut. Down again,
// the old keys come back.
func TestMigrationThrottleStreak(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			s := sqltest.OpenURL(t, sqltest.URL(t, dialect), false)
			g, err := s.Migrator()
			require.NoError(t, err)
			_, err = g.UpTo(ctx, 3)
			require.NoError(t, err)

			now := time.Now().UTC()
			far := now.Add(100 * 365 * 24 * time.Hour)
			for _, r := range []struct {
				key      string
				failures int
				locked   *time.Time
			}{
				{"mfa:user:capped", 4, nil},
				{"mfa:cap:capped", 101, &far}, // past the cap of 100
				{"mfa:cap:near", 60, nil},     // its account key was reset by time alone: no row
				{"pwd:someone", 3, nil},
			} {
				_, err := s.DB().ExecContext(ctx, s.DB().Rebind(`INSERT INTO throttles (key, failures, window_start, locked_until) VALUES (?, ?, ?, ?)`),
					r.key, r.failures, now, r.locked)
				require.NoError(t, err)
			}

			_, err = s.Migrate(ctx)
			require.NoError(t, err)
			var left int
			require.NoError(t, s.DB().GetContext(ctx, &left, "SELECT COUNT(*) FROM throttles WHERE key LIKE 'mfa:cap:%'"))
			assert.Zero(t, left, "the old keys are gone")
			rule := store.Limit{Max: 10, Lock: 15 * time.Minute, Cap: 100}
			th, err := s.Attempt(ctx, "mfa:user:capped", rule, now)
			require.NoError(t, err)
			assert.True(t, th.Capped, "past the cap before, past it after")
			assert.Equal(t, 5, th.Failures, "the account's own count is kept")
			th, err = s.Attempt(ctx, "mfa:user:near", rule, now)
			require.NoError(t, err)
			assert.True(t, th.Allowed)
			var streak int
			require.NoError(t, s.DB().GetContext(ctx, &streak, "SELECT streak FROM throttles WHERE key = 'mfa:user:near'"))
			assert.Equal(t, 61, streak, "60 before, and this one")
			th, err = s.Attempt(ctx, "pwd:someone", store.Limit{Max: 10, Lock: time.Minute}, now)
			require.NoError(t, err)
			assert.Equal(t, 4, th.Failures, "other keys are untouched")

			// An old release, rolled out beside this one, wrote its key
			// again meanwhile: the down migration keeps the higher count.
			_, err = s.DB().ExecContext(ctx, s.DB().Rebind(`INSERT INTO throttles (key, failures, window_start) VALUES (?, ?, ?)`), "mfa:cap:near", 70, now)
			require.NoError(t, err)
			_, err = g.DownTo(ctx, 3)
			require.NoError(t, err)
			var back []struct {
				Key      string `db:"key"`
				Failures int    `db:"failures"`
			}
			require.NoError(t, s.DB().SelectContext(ctx, &back, "SELECT key, failures FROM throttles WHERE key LIKE 'mfa:cap:%' ORDER BY key"))
			require.Len(t, back, 2)
			assert.Equal(t, "mfa:cap:capped", back[0].Key)
			assert.Equal(t, 101, back[0].Failures, "still past the old cap key's limit of 100")
			assert.Equal(t, "mfa:cap:near", back[1].Key)
			assert.Equal(t, 70, back[1].Failures)
			_, err = s.Migrate(ctx)
			require.NoError(t, err)
		})
	}
}
