package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/migrations"
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
			fsys, err := migrations.FS(dialect)
			require.NoError(t, err)
			gd := goose.DialectSQLite3
			if dialect == "postgres" {
				gd = goose.DialectPostgres
			}
			g, err := goose.NewProvider(gd, s.DB().DB, fsys)
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
