package sqlstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

func openPostgres(dsn string) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", withBinaryParameters(dsn))
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	return db, nil
}

// withBinaryParameters turns on lib/pq's binary_parameters unless the URL
// sets it: a statement with arguments then goes out as one
// Parse/Bind/Execute round trip instead of two (prepare, then execute),
// which halves the round trips of every query (issue 7's profile: the
// two-step exec was the largest share of the token endpoint's CPU).
func withBinaryParameters(dsn string) string {
	if strings.Contains(dsn, "binary_parameters") {
		return dsn
	}
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("binary_parameters", "yes")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " binary_parameters=yes"
}

// takeStatementCache removes Twofold's own statement_cache parameter from
// a PostgreSQL URL (lib/pq would pass it to the server as a setting) and
// reports whether it turns prepared statements off: behind PgBouncer in
// transaction mode before 1.21 (or without max_prepared_statements), a
// statement prepared on one server connection is missing on the next.
func takeStatementCache(dsn string) (string, bool, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return dsn, false, nil
	}
	q := u.Query()
	if !q.Has("statement_cache") {
		return dsn, false, nil
	}
	v := q.Get("statement_cache")
	if v != "on" && v != "off" {
		return "", false, fmt.Errorf("database_url: statement_cache=%q must be on or off", v)
	}
	q.Del("statement_cache")
	u.RawQuery = q.Encode()
	return u.String(), v == "off", nil
}

func isPostgresUnique(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "23505"
}

// isRetryable is PostgreSQL aborting a transaction that raced another:
// a deadlock (40P01) or a serialization failure (40001). Run again from
// the start, it goes through.
func isRetryable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
