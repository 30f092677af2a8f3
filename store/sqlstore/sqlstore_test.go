package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
	"github.com/twofold-idp/twofold/store/storetest"
)

// TestStore runs the conformance suite on each database.
func TestStore(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Logf("store suite on %s", dialect)
			storetest.Run(t, func(t *testing.T) store.Store { return sqltest.Open(t, dialect) })
		})
	}
}

func TestSchemaChecks(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			s := sqltest.OpenURL(t, sqltest.URL(t, dialect), false)

			err := s.CheckSchema(ctx)
			require.ErrorIs(t, err, sqlstore.ErrSchemaBehind, "an empty database is refused")
			assert.Contains(t, err.Error(), "twofold migrate up")

			applied, err := s.Migrate(ctx)
			require.NoError(t, err)
			assert.NotEmpty(t, applied)
			require.NoError(t, s.CheckSchema(ctx))

			again, err := s.Migrate(ctx)
			require.NoError(t, err)
			assert.Empty(t, again, "migrating twice applies nothing")

			st, err := s.Status(ctx)
			require.NoError(t, err)
			for _, m := range st {
				assert.True(t, m.Applied, m.Name)
			}

			// A newer binary has migrated this database further.
			_, err = s.DB().ExecContext(ctx, s.DB().Rebind("INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)"), 99999, true)
			require.NoError(t, err)
			err = s.CheckSchema(ctx)
			require.ErrorIs(t, err, sqlstore.ErrSchemaAhead)
			_, err = s.Migrate(ctx)
			require.ErrorIs(t, err, sqlstore.ErrSchemaAhead, "an older binary never migrates a newer schema")
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url, dialect, err string
	}{
		{url: "sqlite:twofold.db", dialect: "sqlite"},
		{url: "sqlite:///var/lib/twofold.db", dialect: "sqlite"},
		{url: "postgres://u@localhost:5432/db?sslmode=disable", dialect: "postgres"},
		{url: "postgresql://u:p@db/twofold", dialect: "postgres"},
		{url: "sqlite:", err: "file path"},
		{url: "mysql://localhost/db", err: "must start with"},
		{url: "twofold.db", err: "must start with"},
		{url: "postgres://", err: "needs a host"},
		{url: "postgres://localhost", err: "database name"},
		{url: "postgres://u:secret@local host/db", err: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			dialect, _, err := sqlstore.ParseURL(tc.url)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.False(t, strings.Contains(err.Error(), "secret"), "no password in errors")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.dialect, dialect)
		})
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	_, err := sqlstore.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to postgres database")
}

// TestDeleteExpiredInBatches: more expired rows than one batch are all
// deleted, in several statements, and live rows stay.
func TestDeleteExpiredInBatches(t *testing.T) {
	defer sqlstore.SetDeleteBatch(7)()
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			s := sqltest.Open(t, dialect)
			for i := range 26 {
				exp := now.Add(-time.Minute)
				if i%9 == 0 {
					exp = now.Add(time.Minute) // 3 live rows: 0, 9, 18
				}
				require.NoError(t, s.CreateOAuth2Request(ctx, store.OAuth2Request{
					Kind: store.KindAccessToken, Signature: fmt.Sprintf("sig-%02d", i), RequestID: fmt.Sprintf("req-%02d", i),
					ClientID: "app", Active: true, RequestedAt: now.Add(-time.Hour), ExpiresAt: exp, Data: "{}",
				}))
			}
			n, err := s.DeleteExpired(ctx, now)
			require.NoError(t, err)
			assert.EqualValues(t, 23, n, "three full batches of 7 and one of 2")
			var left int
			require.NoError(t, s.DB().GetContext(ctx, &left, "SELECT COUNT(*) FROM oauth2_requests"))
			assert.Equal(t, 3, left)
			n, err = s.DeleteExpired(ctx, now)
			require.NoError(t, err)
			assert.Zero(t, n)
		})
	}
}

// TestBatchedTokenRows: on PostgreSQL, token rows created while the
// flushers are busy are committed together, in one transaction (one
// xmin); a duplicate among them fails alone and the rest still land.
func TestBatchedTokenRows(t *testing.T) {
	ctx := context.Background()
	s := sqltest.Open(t, "postgres")
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	row := func(sig string) store.OAuth2Request {
		return store.OAuth2Request{Kind: store.KindAccessToken, Signature: sig, RequestID: "req-" + sig, ClientID: "app",
			Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Data: "{}"}
	}
	require.NoError(t, s.CreateOAuth2Request(ctx, row("taken")))

	create := func(sigs []string) []error {
		return inOneBatch(t, s, len(sigs), func(i int) error { return s.CreateOAuth2Request(ctx, row(sigs[i])) })
	}
	transactions := func(prefix string) (n int) {
		require.NoError(t, s.DB().GetContext(ctx, &n,
			`SELECT COUNT(DISTINCT xmin::text) FROM oauth2_requests WHERE signature LIKE $1`, prefix+"%"))
		return n
	}

	var sigs []string
	for i := range 20 {
		sigs = append(sigs, fmt.Sprintf("a-%02d", i))
	}
	for i, err := range create(sigs) {
		require.NoError(t, err, sigs[i])
	}
	assert.Equal(t, 1, transactions("a-"), "twenty rows, one transaction")

	sigs = sigs[:0]
	for i := range 10 {
		sigs = append(sigs, fmt.Sprintf("b-%02d", i))
	}
	sigs = append(sigs, "taken")
	errs := create(sigs)
	for i, err := range errs[:10] {
		require.NoError(t, err, sigs[i])
	}
	require.ErrorIs(t, errs[10], store.ErrAlreadyExists)
	assert.Equal(t, 10, transactions("b-"), "after the batch failed, each row on its own")
	got, err := s.GetOAuth2Request(ctx, store.KindAccessToken, "taken")
	require.NoError(t, err)
	assert.Equal(t, "req-taken", got.RequestID, "the duplicate changed nothing")
}

// inOneBatch runs n token-row writers at once while the flushers are
// held, so that all of them are queued for one batch, then lets it go.
func inOneBatch(t *testing.T, s *sqlstore.Store, n int, write func(i int) error) []error {
	t.Helper()
	release := s.HoldBatches()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = write(i) }()
	}
	require.Eventually(t, func() bool { return s.BatchQueued() == n }, 10*time.Second, time.Millisecond)
	release()
	wg.Wait()
	return errs
}

// TestBatchedCodeGroups (PostgreSQL): one caller's rows (such as a code
// and its PKCE challenge) share a batch with other callers' and
// are never split: when the batch fails, each group is retried whole, in
// a transaction of its own, and the group with the bad row leaves none.
func TestBatchedCodeGroups(t *testing.T) {
	ctx := context.Background()
	s := sqltest.Open(t, "postgres")
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	group := func(sig string) []store.OAuth2Request {
		var rows []store.OAuth2Request
		for _, kind := range []string{store.KindAuthorizeCode, store.KindPKCE, store.KindOIDC} {
			rows = append(rows, store.OAuth2Request{Kind: kind, Signature: sig, RequestID: "req-" + sig, ClientID: "app",
				Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Minute), Data: "{}"})
		}
		return rows
	}
	require.NoError(t, s.CreateOAuth2Request(ctx, group("taken")[2]))
	transactions := func(sig string) (n int) {
		require.NoError(t, s.DB().GetContext(ctx, &n,
			`SELECT COUNT(DISTINCT xmin::text) FROM oauth2_requests WHERE signature = $1`, sig))
		return n
	}
	rowsOf := func(sig string) (n int) {
		require.NoError(t, s.DB().GetContext(ctx, &n, `SELECT COUNT(*) FROM oauth2_requests WHERE signature = $1`, sig))
		return n
	}

	create := func(sigs []string) []error {
		return inOneBatch(t, s, len(sigs), func(i int) error { return s.CreateOAuth2Requests(ctx, group(sigs[i])) })
	}

	for i, err := range create([]string{"a-0", "a-1", "a-2"}) {
		require.NoError(t, err, i)
	}
	var one int
	require.NoError(t, s.DB().GetContext(ctx, &one,
		`SELECT COUNT(DISTINCT xmin::text) FROM oauth2_requests WHERE signature LIKE 'a-%'`))
	assert.Equal(t, 1, one, "three groups, nine rows, one transaction")

	sigs := []string{"c-0", "c-1", "c-2", "taken"}
	errs := create(sigs)
	for i, sig := range sigs[:3] {
		require.NoError(t, errs[i], sig)
		assert.Equal(t, 3, rowsOf(sig), sig)
		assert.Equal(t, 1, transactions(sig), "%s: a group is written in one transaction", sig)
	}
	require.ErrorIs(t, errs[3], store.ErrAlreadyExists)
	assert.Equal(t, 1, rowsOf("taken"), "the group with the bad row left none of its rows")

	var all int
	require.NoError(t, s.DB().GetContext(ctx, &all,
		`SELECT COUNT(DISTINCT xmin::text) FROM oauth2_requests WHERE signature LIKE 'c-%'`))
	assert.Equal(t, 3, all, "after the batch failed, each group on its own")
}

// TestBatchedAuditEvents (PostgreSQL): events appended while the
// flushers are busy land in one transaction, whole and in the order they
// were queued.
func TestBatchedAuditEvents(t *testing.T) {
	ctx := context.Background()
	s := sqltest.Open(t, "postgres")
	now := time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC)
	const n = 20
	release := s.HoldAuditBatches()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		require.Eventually(t, func() bool { return s.AuditQueued() == i }, 10*time.Second, time.Millisecond)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.AppendAudit(ctx, store.AuditEvent{Time: now.Add(time.Duration(i) * time.Microsecond), Type: "factor.failure",
				UserID: fmt.Sprintf("u%02d", i), ActorID: "admin", ClientID: "app", IP: "192.0.2.1", UserAgent: `Mozilla/5.0 "quoted", {braced} ünïcode`,
				Detail: fmt.Sprintf(`{"i":%d,"s":"a,b{c}"}`, i)})
		}()
	}
	require.Eventually(t, func() bool { return s.AuditQueued() == n }, 10*time.Second, time.Millisecond)
	release()
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, i)
	}
	var txs int
	require.NoError(t, s.DB().GetContext(ctx, &txs, `SELECT COUNT(DISTINCT xmin::text) FROM audit_events`))
	assert.Equal(t, 1, txs, "twenty events, one transaction")

	events, err := s.ListAudit(ctx, store.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, events, n)
	for j, e := range events { // newest first
		i := n - 1 - j
		assert.Equal(t, fmt.Sprintf("u%02d", i), e.UserID)
		assert.True(t, now.Add(time.Duration(i)*time.Microsecond).Equal(e.Time), "%v", e.Time)
		assert.Equal(t, "factor.failure", e.Type)
		assert.Equal(t, "admin", e.ActorID)
		assert.Equal(t, "app", e.ClientID)
		assert.Equal(t, "192.0.2.1", e.IP)
		assert.Equal(t, `Mozilla/5.0 "quoted", {braced} ünïcode`, e.UserAgent)
		assert.JSONEq(t, fmt.Sprintf(`{"i":%d,"s":"a,b{c}"}`, i), e.Detail)
		if j > 0 {
			assert.Less(t, e.ID, events[j-1].ID, "ids follow the queue's order")
		}
	}
}

func TestBinaryParameters(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?binary_parameters=yes&sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db?binary_parameters=yes"},
		{"postgres://u@h/db?binary_parameters=no", "postgres://u@h/db?binary_parameters=no"},
		{"host=h dbname=db", "host=h dbname=db binary_parameters=yes"},
	} {
		assert.Equal(t, c.want, sqlstore.WithBinaryParameters(c.in), c.in)
	}
}

// TestPreparedStatementsInBusyTransactions: with more transactions open
// than the pool has connections, a query seen for the first time inside
// one must not wait for a free connection to be prepared (it would wait
// forever: every connection is held by a transaction waiting the same way).
//
// PostgreSQL only: SQLite runs one (IMMEDIATE) transaction at a time, so
// four can never be open together, and its pool is not bounded.
func TestPreparedStatementsInBusyTransactions(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		if dialect == "sqlite" {
			continue
		}
		t.Run(dialect, func(t *testing.T) {
			s := sqltest.Open(t, dialect)
			s.DB().SetMaxOpenConns(4)
			// Four queries none of the four transactions has seen: each
			// would want a pool connection of its own to be prepared.
			queries := []func(ctx context.Context) error{
				func(ctx context.Context) error {
					_, err := s.GetUserByEmail(ctx, store.PopulationAgent, "nobody@example.com")
					return err
				},
				func(ctx context.Context) error { _, err := s.GetUser(ctx, "nobody"); return err },
				func(ctx context.Context) error { _, err := s.GetClient(ctx, "nobody"); return err },
				func(ctx context.Context) error { _, err := s.GetLoginFlow(ctx, "nobody"); return err },
			}
			var ready, done sync.WaitGroup
			ready.Add(len(queries))
			errs := make(chan error, len(queries))
			for _, query := range queries {
				done.Add(1)
				go func() {
					defer done.Done()
					// A generous bound that only a deadlock reaches: were the
					// statements prepared here, on the pool, all four would
					// wait for a connection until this deadline and fail.
					ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					errs <- s.InTx(ctx, func(ctx context.Context) error {
						ready.Done()
						ready.Wait() // all four connections are now held
						if err := query(ctx); !errors.Is(err, store.ErrNotFound) {
							return fmt.Errorf("want not found, got %v", err)
						}
						return nil
					})
				}()
			}
			done.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			// Outside a transaction the same query runs prepared.
			_, err := s.GetUserByEmail(ctx, store.PopulationAgent, "nobody@example.com")
			require.ErrorIs(t, err, store.ErrNotFound)
		})
	}
}

func TestStatementCacheParameter(t *testing.T) {
	for _, c := range []struct {
		in, want string
		off      bool
		err      bool
	}{
		{"postgres://u@h/db?sslmode=disable", "postgres://u@h/db?sslmode=disable", false, false},
		{"postgres://u@h/db?statement_cache=off&sslmode=disable", "postgres://u@h/db?sslmode=disable", true, false},
		{"postgres://u@h/db?statement_cache=on", "postgres://u@h/db", false, false},
		{"postgres://u@h/db?statement_cache=no", "", false, true},
	} {
		got, off, err := sqlstore.TakeStatementCache(c.in)
		if c.err {
			assert.Error(t, err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		assert.Equal(t, c.want, got, c.in)
		assert.Equal(t, c.off, off, c.in)
	}
}

// TestStatementCacheOff: with statement_cache=off nothing is prepared and
// every query still works.
func TestStatementCacheOff(t *testing.T) {
	ctx := context.Background()
	url := sqltest.URL(t, "postgres")
	for _, c := range []struct {
		url      string
		prepared bool
	}{{url, true}, {url + "&statement_cache=off", false}} {
		s, err := sqlstore.Open(ctx, c.url)
		require.NoError(t, err)
		_, err = s.Migrate(ctx)
		require.NoError(t, err)
		_, err = s.GetUserByEmail(ctx, store.PopulationAgent, "nobody@example.com")
		require.ErrorIs(t, err, store.ErrNotFound)
		assert.Equal(t, c.prepared, s.Prepared() > 0, c.url)
		require.NoError(t, s.Close())
	}
}

// TestInTxRetriesDeadlock: two transactions that lock two users in
// opposite orders deadlock on PostgreSQL, which aborts one; InTx runs
// that one again, and both go through (security.md §3.11: a
// serialization failure is retried, never a 500).
func TestInTxRetriesDeadlock(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		if dialect == "sqlite" {
			continue // one writer at a time: no deadlock to make
		}
		t.Run(dialect, func(t *testing.T) {
			s := sqltest.Open(t, dialect)
			now := time.Now().UTC()
			for _, id := range []string{"a", "b"} {
				require.NoError(t, s.CreateUser(ctx, store.User{ID: id, Email: id + "@example.com", EmailKey: id + "@example.com",
					Population: store.PopulationAgent, Role: store.RoleAgent, PasswordHash: "x", CreatedAt: now, UpdatedAt: now}))
			}
			// Each locks its first user, waits until the other has too,
			// then asks for the other's: a deadlock, on the first run only.
			var locked sync.WaitGroup
			locked.Add(2)
			runs := [2]int{}
			var mu sync.Mutex
			cross := func(i int, first, second string) error {
				return s.InTx(ctx, func(ctx context.Context) error {
					mu.Lock()
					runs[i]++
					run := runs[i]
					mu.Unlock()
					if err := s.SetUserDisabled(ctx, first, false, now); err != nil {
						return err
					}
					if run == 1 {
						locked.Done()
						locked.Wait()
					}
					return s.SetUserDisabled(ctx, second, false, now)
				})
			}
			errs := make(chan error, 2)
			go func() { errs <- cross(0, "a", "b") }()
			go func() { errs <- cross(1, "b", "a") }()
			require.NoError(t, <-errs)
			require.NoError(t, <-errs)
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, 3, runs[0]+runs[1], "one of the two ran again: %v", runs)
		})
	}
}

// TestLockUserHoldsOffSignOut: a sign-out of a user waits for a
// transaction that locked the user, and then removes the session that
// transaction made (without the lock, the sign-out's DELETE would not
// see the new row and the session would outlive it).
func TestLockUserHoldsOffSignOut(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		if dialect == "sqlite" {
			continue // one writer at a time: a sign-out cannot run inside another transaction
		}
		t.Run(dialect, func(t *testing.T) {
			s := sqltest.Open(t, dialect)
			now := time.Now().UTC()
			require.NoError(t, s.CreateUser(ctx, store.User{ID: "u1", Email: "u1@example.com", EmailKey: "u1@example.com",
				Population: store.PopulationAgent, Role: store.RoleAgent, PasswordHash: "x", CreatedAt: now, UpdatedAt: now}))
			locked := make(chan struct{})
			signedOut := make(chan error, 1)
			go func() {
				<-locked
				signedOut <- s.SignOutUser(ctx, "u1")
			}()
			require.NoError(t, s.InTx(ctx, func(ctx context.Context) error {
				if err := s.LockUser(ctx, "u1"); err != nil {
					return err
				}
				close(locked)
				// Go on once the sign-out waits for the lock.
				deadline := time.Now().Add(10 * time.Second)
				for {
					var waiting int
					require.NoError(t, s.DB().GetContext(context.Background(), &waiting,
						`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))
					if waiting > 0 {
						break
					}
					require.True(t, time.Now().Before(deadline), "the sign-out never waited for the lock")
					time.Sleep(5 * time.Millisecond)
				}
				return s.CreateSession(ctx, store.Session{ID: "s1", UserID: "u1", AMR: store.Strings{"pwd"}, ACR: "urn:twofold:acr:pwd",
					AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
			}))
			require.NoError(t, <-signedOut)
			_, err := s.GetSession(ctx, "s1")
			assert.ErrorIs(t, err, store.ErrNotFound, "the sign-out removed the session made under the lock")
		})
	}
}
