// Package migrations holds the SQL schema of each database, embedded in the
// binary and applied by goose (one numbered file per change, same numbers in
// both dialects).
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// FS returns the migrations of one dialect: "sqlite" or "postgres".
func FS(dialect string) (fs.FS, error) {
	return fs.Sub(files, dialect)
}
