// Package sqlstore is the store.Store implementation on sqlx, serving
// PostgreSQL (github.com/lib/pq) and SQLite (modernc.org/sqlite, no cgo).
// Queries are written once with ? placeholders and rebound per driver; the
// dialect files hold only what differs: opening, error mapping.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/twofold-idp/twofold/store"
)

// Store is the SQL-backed store.Store.
type Store struct {
	db      *sqlx.DB
	dialect string // "sqlite" or "postgres"
	stmts   stmtCache
	batch   batcher[store.OAuth2Request] // token rows (batch.go)
	audits  batcher[store.AuditEvent]
}

var _ store.Store = (*Store)(nil)

// Open connects to a database URL: "postgres://…" (or "postgresql://…") or
// "sqlite:PATH". It does not migrate; see Migrate and CheckSchema.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	dialect, dsn, err := ParseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	var db *sqlx.DB
	cacheOff := false
	switch dialect {
	case "sqlite":
		db, err = openSQLite(dsn)
	default:
		if dsn, cacheOff, err = takeStatementCache(dsn); err != nil {
			return nil, err
		}
		db, err = openPostgres(dsn)
	}
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, dialect: dialect}
	s.batch.one, s.batch.many = s.insertOAuth2Request, s.insertOAuth2Requests
	s.audits.one, s.audits.many = s.insertAuditEvent, s.insertAuditEvents
	s.stmts.off = cacheOff
	if err := s.Ping(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	return s, nil
}

// ParseURL splits a Twofold database URL into its dialect and the driver's
// DSN, refusing anything else with a message that says what is accepted.
func ParseURL(databaseURL string) (dialect, dsn string, err error) {
	switch {
	case strings.HasPrefix(databaseURL, "sqlite:"):
		path := strings.TrimPrefix(databaseURL, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return "", "", errors.New("sqlite URL needs a file path, as in sqlite:twofold.db")
		}
		return "sqlite", path, nil
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		u, err := url.Parse(databaseURL)
		if err != nil {
			return "", "", fmt.Errorf("malformed PostgreSQL URL: %v", redactURLError(err))
		}
		if u.Host == "" {
			return "", "", errors.New("PostgreSQL URL needs a host, as in postgres://user@host:5432/db")
		}
		if strings.TrimPrefix(u.Path, "/") == "" {
			return "", "", errors.New("PostgreSQL URL needs a database name, as in postgres://user@host:5432/db")
		}
		return "postgres", databaseURL, nil
	}
	return "", "", errors.New(`database URL must start with "postgres://", "postgresql://" or "sqlite:"`)
}

// redactURLError drops the URL (which may hold a password) from a parse error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// DB exposes the pool for migrations and for tests.
func (s *Store) DB() *sqlx.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error {
	s.stmts.close()
	return s.db.Close()
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

type txKey struct{}

// querier is what both *sqlx.DB and *sqlx.Tx offer.
type querier interface {
	sqlx.ExtContext
	GetContext(ctx context.Context, dest any, query string, args ...any) error
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
}

// q returns the transaction carried by ctx, else the pool: every query goes
// through it so that a call made inside InTx joins the transaction.
func (s *Store) q(ctx context.Context) querier {
	if tx, ok := ctx.Value(txKey{}).(*sqlx.Tx); ok {
		return tx
	}
	return s.db
}

// InTx runs fn in one transaction. Nested calls join the outer one.
//
// A transaction PostgreSQL aborts for a deadlock or a serialization
// failure (two sign-outs, refreshes and revocations of one user's tokens
// taking row locks in different orders) is run again from the start, up
// to txAttempts times, instead of failing its request (security.md
// §3.11): fn must only do database work, which the rollback undoes.
// A transaction joined from an outer one is retried by its owner.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := ctx.Value(txKey{}).(*sqlx.Tx); ok {
		return fn(ctx)
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = s.inTx(ctx, fn)
		if err == nil || attempt == txAttempts || !errors.Is(err, store.ErrRetry) {
			return err
		}
		// A short random wait, so that the two do not collide again.
		select {
		case <-time.After(time.Duration(attempt) * time.Duration(1+mathrand.IntN(10)) * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// txAttempts bounds InTx's runs of one transaction.
const txAttempts = 3

// inTx is one run of InTx's transaction.
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(context.WithValue(ctx, txKey{}, tx)); err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", s.mapErr(err))
	}
	return nil
}

// ownedTx marks the context of the BeginTx call that owns the transaction.
type ownedTx struct{ tx *sqlx.Tx }

// BeginTx starts a transaction carried by the returned context.
func (s *Store) BeginTx(ctx context.Context) (context.Context, error) {
	if _, ok := ctx.Value(txKey{}).(*sqlx.Tx); ok {
		return ctx, nil // join the outer transaction
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return ctx, fmt.Errorf("begin transaction: %w", err)
	}
	ctx = context.WithValue(ctx, txKey{}, tx)
	return context.WithValue(ctx, ownedTx{}, ownedTx{tx}), nil
}

// CommitTx commits the transaction BeginTx started on ctx.
func (s *Store) CommitTx(ctx context.Context) error {
	o, ok := ctx.Value(ownedTx{}).(ownedTx)
	if !ok || o.tx != ctx.Value(txKey{}) {
		return nil // joined: the owner commits
	}
	if err := o.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", s.mapErr(err))
	}
	return nil
}

// RollbackTx rolls back the transaction BeginTx started on ctx.
func (s *Store) RollbackTx(ctx context.Context) error {
	o, ok := ctx.Value(ownedTx{}).(ownedTx)
	if !ok || o.tx != ctx.Value(txKey{}) {
		return nil
	}
	if err := o.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := s.stmt(ctx, query); st != nil {
		res, err := st.ExecContext(ctx, args...)
		return res, s.mapErr(err)
	}
	res, err := s.q(ctx).ExecContext(ctx, s.db.Rebind(query), args...)
	return res, s.mapErr(err)
}

func (s *Store) get(ctx context.Context, dest any, query string, args ...any) error {
	var err error
	if st := s.stmt(ctx, query); st != nil {
		err = st.GetContext(ctx, dest, args...)
	} else {
		err = s.q(ctx).GetContext(ctx, dest, s.db.Rebind(query), args...)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return s.mapErr(err)
}

func (s *Store) sel(ctx context.Context, dest any, query string, args ...any) error {
	if st := s.stmt(ctx, query); st != nil {
		return s.mapErr(st.SelectContext(ctx, dest, args...))
	}
	return s.mapErr(s.q(ctx).SelectContext(ctx, dest, s.db.Rebind(query), args...))
}

// stmt returns the query prepared once for the pool (database/sql then
// prepares it on each connection the first time it runs there), bound to
// the context's transaction if any; nil when the cache is full, and the
// caller runs the query unprepared. Issue 7's profiles: parsing every
// statement again was 12 % of the token endpoint's CPU on SQLite, and
// PostgreSQL parsed and planned each INSERT anew.
func (s *Store) stmt(ctx context.Context, query string) *sqlx.Stmt {
	tx, inTx := ctx.Value(txKey{}).(*sqlx.Tx)
	st := s.stmts.get(query)
	if st == nil {
		// Claim first: a full cache, a disabled one, or another caller
		// already preparing it means this call runs unprepared.
		if !s.stmts.claim(query) {
			return nil
		}
		if inTx {
			// Preparing takes a pool connection; with every connection
			// held by a transaction waiting here, that would never come.
			// Prepare in the background and run this one unprepared.
			go s.prepare(context.Background(), query)
			return nil
		}
		if st = s.prepare(ctx, query); st == nil {
			return nil
		}
	}
	if inTx {
		return tx.StmtxContext(ctx, st)
	}
	return st
}

func (s *Store) prepare(ctx context.Context, query string) *sqlx.Stmt {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := s.db.PreparexContext(ctx, s.db.Rebind(query))
	if err != nil {
		s.stmts.unclaim(query)
		return nil // the unprepared path reports the error
	}
	return s.stmts.put(query, st)
}

// mapErr turns a unique-constraint violation into store.ErrAlreadyExists.
func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if isUniqueViolation(err) {
		return fmt.Errorf("%w: %v", store.ErrAlreadyExists, err)
	}
	if isRetryable(err) {
		return fmt.Errorf("%w: %w", store.ErrRetry, err)
	}
	return err
}

// isUniqueViolation recognises both drivers' unique-constraint errors.
func isUniqueViolation(err error) bool {
	return isPostgresUnique(err) || isSQLiteUnique(err)
}

// one checks that an UPDATE or DELETE touched exactly one row.
func one(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// qualified qualifies each of columns with table.
func qualified(table, columns string) string {
	return eachColumn(columns, func(c string) string { return table + "." + c })
}

// aliased qualifies each of columns with table and names it "table.column",
// for sqlx to fill a struct field tagged table.
func aliased(table, columns string) string {
	return eachColumn(columns, func(c string) string { return fmt.Sprintf(`%s.%s AS "%s.%s"`, table, c, table, c) })
}

// eachColumn rewrites each of a comma-separated list of columns.
func eachColumn(columns string, rewrite func(string) string) string {
	cs := strings.Split(columns, ",")
	for i, c := range cs {
		cs[i] = rewrite(strings.TrimSpace(c))
	}
	return strings.Join(cs, ", ")
}

// count is how many rows a statement's result touched.
func count(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
