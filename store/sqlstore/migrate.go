package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/twofold-idp/twofold/migrations"
)

// ErrSchemaBehind and ErrSchemaAhead tell why CheckSchema refused a database.
var (
	ErrSchemaBehind = errors.New("database schema is not up to date")
	ErrSchemaAhead  = errors.New("database schema is newer than this binary")
)

func (s *Store) migrator() (*goose.Provider, error) {
	fsys, err := migrations.FS(s.dialect)
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if s.dialect == "postgres" {
		dialect = goose.DialectPostgres
		// Two replicas starting at once must not both migrate.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, s.db.DB, fsys, opts...)
}

// Migrate applies every pending migration and returns the versions applied.
func (s *Store) Migrate(ctx context.Context) ([]int64, error) {
	if _, err := s.checkNotAhead(ctx); err != nil {
		return nil, err
	}
	p, err := s.migrator()
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", s.dialect, err)
	}
	var applied []int64
	for _, r := range res {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// MigrationStatus is one migration and whether it is applied.
type MigrationStatus struct {
	Version int64
	Name    string
	Applied bool
}

// Status lists the binary's migrations and which are applied.
func (s *Store) Status(ctx context.Context) ([]MigrationStatus, error) {
	p, err := s.migrator()
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, m := range st {
		out = append(out, MigrationStatus{Version: m.Source.Version, Name: m.Source.Path, Applied: m.State == goose.StateApplied})
	}
	return out, nil
}

// SchemaVersions returns the database's schema version (0 when nothing is
// applied) and the newest version this binary knows.
func (s *Store) SchemaVersions(ctx context.Context) (current, known int64, err error) {
	p, err := s.migrator()
	if err != nil {
		return 0, 0, err
	}
	for _, src := range p.ListSources() {
		known = max(known, src.Version)
	}
	exists, err := s.versionTableExists(ctx)
	if err != nil || !exists {
		return 0, known, err
	}
	if err := s.db.GetContext(ctx, &current, "SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied"); err != nil {
		return 0, known, fmt.Errorf("read schema version: %w", err)
	}
	return current, known, nil
}

func (s *Store) versionTableExists(ctx context.Context) (bool, error) {
	var n int
	var err error
	if s.dialect == "postgres" {
		err = s.db.GetContext(ctx, &n, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'goose_db_version'")
	} else {
		err = s.db.GetContext(ctx, &n, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'")
	}
	if err != nil {
		return false, fmt.Errorf("look for the schema version table: %w", err)
	}
	return n > 0, nil
}

func (s *Store) checkNotAhead(ctx context.Context) (int64, error) {
	current, known, err := s.SchemaVersions(ctx)
	if err != nil {
		return 0, err
	}
	if current > known {
		return current, fmt.Errorf("%w: the database is at version %d, this binary knows up to %d; run a newer twofold", ErrSchemaAhead, current, known)
	}
	return current, nil
}

// CheckSchema refuses a database that is not migrated to exactly the
// binary's newest version, saying what to run.
func (s *Store) CheckSchema(ctx context.Context) error {
	current, err := s.checkNotAhead(ctx)
	if err != nil {
		return err
	}
	_, known, _ := s.SchemaVersions(ctx)
	if current < known {
		return fmt.Errorf("%w: the database is at version %d, this binary needs %d; run `twofold migrate up` (or `twofold serve --dev`, which migrates)", ErrSchemaBehind, current, known)
	}
	return nil
}
