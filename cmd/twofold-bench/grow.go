package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

// growCmd seeds the users and token tables by bulk INSERT … SELECT in
// the database itself (no round trip per row), for the growth run: the
// same flows measured again on big tables.
func growCmd(stdout io.Writer) *cobra.Command {
	var databaseURL, clientID string
	var users, tokens int
	cmd := &cobra.Command{
		Use:   "grow --database-url URL --users N --tokens M",
		Short: "Seed N users and M live token rows (growth run); never touches the bench's own rows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return grow(cmd.Context(), stdout, databaseURL, users, tokens, clientID)
		},
	}
	cmd.Flags().StringVar(&databaseURL, "database-url", envOr("TWOFOLD_DATABASE_URL", "sqlite:twofold.db"), "the server's database")
	cmd.Flags().IntVar(&users, "users", 100_000, "users to add (contacts that never sign in)")
	cmd.Flags().IntVar(&tokens, "tokens", 1_000_000, "access and refresh token rows to add, valid for a day")
	cmd.Flags().StringVar(&clientID, "client-id", "twofold-bench-growth", "client_id the rows name (no such client needs to exist)")
	return cmd
}

func grow(ctx context.Context, out io.Writer, databaseURL string, users, tokens int, clientID string) error {
	s, err := openMigrated(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer s.Close()
	db := s.DB()
	tag := randomHex(4)
	const chunk = 200_000
	var userSQL, tokenSQL string
	if s.Dialect() == "postgres" {
		userSQL = `INSERT INTO users (id, email, email_key, population, role, password_hash, created_at, updated_at)
			SELECT md5($1 || 'u' || g), 'grow-' || $1 || '-' || g || '@example.com', 'grow-' || $1 || '-' || g || '@example.com',
			       'contact', 'contact', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g', now(), now()
			FROM generate_series($2::int, $3::int) g`
		tokenSQL = `INSERT INTO oauth2_requests (kind, signature, request_id, client_id, subject, active, requested_at, expires_at, data)
			SELECT CASE WHEN g % 2 = 0 THEN 'access' ELSE 'refresh' END, md5($1 || 's' || g) || md5($1 || 't' || g), md5($1 || 'r' || (g / 2)),
			       $4, md5($1 || 'u' || (g % 100000)), true, now(), now() + interval '1 day', repeat('x', 600)
			FROM generate_series($2::int, $3::int) g`
	} else {
		userSQL = `INSERT INTO users (id, email, email_key, population, role, password_hash, created_at, updated_at)
			WITH RECURSIVE g(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM g WHERE n < ?)
			SELECT lower(hex(randomblob(16))), 'grow-' || ? || '-' || n || '@example.com', 'grow-' || ? || '-' || n || '@example.com',
			       'contact', 'contact', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g',
			       strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%f+00:00', 'now') FROM g`
		tokenSQL = `INSERT INTO oauth2_requests (kind, signature, request_id, client_id, subject, active, requested_at, expires_at, data)
			WITH RECURSIVE g(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM g WHERE n < ?)
			SELECT CASE WHEN n % 2 = 0 THEN 'access' ELSE 'refresh' END, lower(hex(randomblob(32))), lower(hex(randomblob(16))),
			       ?, lower(hex(randomblob(16))), 1, strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
			       strftime('%Y-%m-%d %H:%M:%f+00:00', 'now', '+1 day'), printf('%.600c', 'x') FROM g`
	}
	exec := func(what, q string, from, to int) error {
		var err error
		if s.Dialect() == "postgres" {
			if what == "users" {
				_, err = db.ExecContext(ctx, q, tag, from, to)
			} else {
				_, err = db.ExecContext(ctx, q, tag, from, to, clientID)
			}
		} else if what == "users" {
			_, err = db.ExecContext(ctx, q, from, to, tag, tag)
		} else {
			_, err = db.ExecContext(ctx, q, from, to, clientID)
		}
		return err
	}
	for _, step := range []struct {
		what string
		q    string
		n    int
	}{{"users", userSQL, users}, {"tokens", tokenSQL, tokens}} {
		t0 := time.Now()
		for from := 1; from <= step.n; from += chunk {
			if err := exec(step.what, step.q, from, min(from+chunk-1, step.n)); err != nil {
				return fmt.Errorf("seed %s: %w", step.what, err)
			}
		}
		fmt.Fprintf(out, "added %d %s in %s\n", step.n, step.what, time.Since(t0).Round(time.Millisecond))
	}
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		return err
	}
	var nu, nt int64
	_ = db.GetContext(ctx, &nu, "SELECT count(*) FROM users")
	_ = db.GetContext(ctx, &nt, "SELECT count(*) FROM oauth2_requests")
	fmt.Fprintf(out, "now %d users, %d oauth2_requests rows\n", nu, nt)
	return nil
}
