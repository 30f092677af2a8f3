package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

// cleanCmd runs the server's expiry clean-up once, timed, after marking
// some of the growth run's rows expired: it shows what the job costs on
// big tables, and a run of client_credentials alongside shows whether it
// holds up sign-ins and token issuance (it deletes in short batches).
func cleanCmd(stdout io.Writer) *cobra.Command {
	var databaseURL, clientID string
	var expire int
	cmd := &cobra.Command{
		Use:   "clean --database-url URL [--expire N]",
		Short: "Mark N growth rows expired, then run the expiry clean-up once and time it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return clean(cmd.Context(), stdout, databaseURL, clientID, expire)
		},
	}
	cmd.Flags().StringVar(&databaseURL, "database-url", envOr("TWOFOLD_DATABASE_URL", "sqlite:twofold.db"), "the server's database")
	cmd.Flags().IntVar(&expire, "expire", 0, "growth rows (from grow) to mark expired first")
	cmd.Flags().StringVar(&clientID, "client-id", "twofold-bench-growth", "the growth rows' client_id")
	return cmd
}

func clean(ctx context.Context, out io.Writer, databaseURL, clientID string, expire int) error {
	s, err := openMigrated(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer s.Close()
	past := time.Now().Add(-time.Hour).UTC()
	if expire > 0 {
		row := "rowid"
		if s.Dialect() == "postgres" {
			row = "ctid"
		}
		db := s.DB()
		t0 := time.Now()
		res, err := db.ExecContext(ctx, db.Rebind(`UPDATE oauth2_requests SET expires_at = ? WHERE `+row+` IN
			(SELECT `+row+` FROM oauth2_requests WHERE client_id = ? AND expires_at > ? LIMIT ?)`), past, clientID, past, expire)
		if err != nil {
			return fmt.Errorf("mark rows expired: %w", err)
		}
		n, _ := res.RowsAffected()
		fmt.Fprintf(out, "marked %d rows expired in %s\n", n, time.Since(t0).Round(time.Millisecond))
	}
	t0 := time.Now()
	n, err := s.DeleteExpired(ctx, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "clean-up deleted %d expired rows in %s\n", n, time.Since(t0).Round(time.Millisecond))
	return nil
}
