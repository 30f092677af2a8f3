package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/twofold-idp/twofold/store/sqlstore"
)

// openStore opens the configured database. With mustExist, an SQLite file
// that is not there is an error rather than a new empty database, so a
// mistyped path or a command run in the wrong folder writes nothing.
func openStore(ctx context.Context, cfg Config, mustExist bool) (*sqlstore.Store, error) {
	dialect, path, err := sqlstore.ParseURL(cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if dialect == "sqlite" && mustExist {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no database at %s: run `twofold migrate up` or `twofold serve --dev` first", path)
		}
	}
	return sqlstore.Open(ctx, cfg.DatabaseURL)
}

// openMigrated opens the database and refuses one whose schema does not
// match this binary.
func openMigrated(ctx context.Context, cfg Config) (*sqlstore.Store, error) {
	s, err := openStore(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	if err := s.CheckSchema(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
