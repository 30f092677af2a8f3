// Package sqltest gives tests a fresh, migrated database of each kind:
// a new SQLite file, or a new PostgreSQL schema when TWOFOLD_TEST_DATABASE_URL
// is set. With CI=true a missing PostgreSQL fails the test instead of
// skipping it, so CI can never pass without having run the PostgreSQL half.
package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/lib/pq" // the postgres driver for the schema admin connection

	"github.com/twofold-idp/twofold/store/sqlstore"
)

// EnvPostgres names the variable that points tests at a PostgreSQL database.
const EnvPostgres = "TWOFOLD_TEST_DATABASE_URL"

// Dialects lists the databases a test should run on: sqlite always, and
// postgres when configured (or required by CI).
func Dialects() []string { return []string{"sqlite", "postgres"} }

// URL returns a Twofold database URL for a fresh, empty database of the
// given dialect, removed when the test ends.
func URL(t testing.TB, dialect string) string {
	t.Helper()
	if dialect == "sqlite" {
		return "sqlite:" + filepath.Join(tempDir(t), "twofold.db")
	}
	return PostgresURL(t)
}

// tempDir is t.TempDir for a database file, removed at cleanup with a
// few retries: database/sql may still close a connection it opened in
// the background after the store's Close, and SQLite then deletes its
// -wal and -shm files under a RemoveAll in progress ("directory not
// empty"), which t.TempDir reports as a failure.
func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "twofold-test-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() {
		for i := 0; ; i++ {
			err := os.RemoveAll(dir)
			if err == nil {
				return
			}
			if i == 20 {
				t.Errorf("remove %s: %v", dir, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return dir
}

// PostgresURL creates a schema of its own in the test PostgreSQL database
// and returns a URL whose search_path points at it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs PostgreSQL: %s is not set", EnvPostgres)
		}
		t.Skipf("%s not set: skipping the PostgreSQL run", EnvPostgres)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgres, err)
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	defer admin.Close()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("PostgreSQL at %s is not usable: %v", u.Redacted(), err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open returns a fresh, migrated store of the given dialect, closed at cleanup.
func Open(t testing.TB, dialect string) *sqlstore.Store {
	t.Helper()
	return OpenURL(t, URL(t, dialect), true)
}

// OpenURL opens a store at url, migrating it when migrate is set.
func OpenURL(t testing.TB, databaseURL string, migrate bool) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, databaseURL)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if migrate {
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	return s
}
