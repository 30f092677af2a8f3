package main

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/twofold-idp/twofold/accounts"
)

func maxProcs() int { return runtime.GOMAXPROCS(0) }

func boundsCmd(stdout io.Writer) *cobra.Command {
	var d time.Duration
	var conc, sqliteDir, pgURL string
	var p accounts.Argon2Params
	cmd := &cobra.Command{
		Use:   "bounds",
		Short: "Measure only this machine's bounds: signatures, argon2id, a bare HTTP handler, database inserts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			levels, err := parseInts(conc)
			if err != nil {
				return fmt.Errorf("--concurrency: %w", err)
			}
			m, err := measureCPUBounds(d, p)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "| bound (%d workers) | /s |\n|---|---:|\n", maxProcs())
			fmt.Fprintf(stdout, "| RS256-2048 sign | %.0f |\n| ES256 sign | %.0f |\n| argon2id verify m=%d KiB t=%d p=%d | %.1f |\n\n",
				m.RS256, m.ES256, p.MemoryKiB, p.Iterations, p.Parallelism, m.Argon2)
			fmt.Fprintln(stdout, "| VUs | bare net/http GET /s | SQLite inserts/s | PostgreSQL inserts/s |")
			fmt.Fprintln(stdout, "|---:|---:|---:|---:|")
			for _, c := range levels {
				h, err := bareHTTPRate(cmd.Context(), c, d)
				if err != nil {
					return err
				}
				url, cleanup, err := scratchSQLite(sqliteDir)
				if err != nil {
					return err
				}
				sq, err := insertRate(cmd.Context(), url, c, d)
				cleanup()
				if err != nil {
					return err
				}
				pg := "—"
				if pgURL != "" {
					v, err := insertRate(cmd.Context(), pgURL, c, d)
					if err != nil {
						return err
					}
					pg = fmt.Sprintf("%.0f", v)
				}
				fmt.Fprintf(stdout, "| %d | %.0f | %.0f | %s |\n", c, h, sq, pg)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&d, "duration", time.Second, "time per measurement")
	cmd.Flags().StringVar(&conc, "concurrency", "1,8,32,64", "levels for the HTTP and insert bounds")
	cmd.Flags().StringVar(&sqliteDir, "sqlite-dir", ".", "where the scratch SQLite file goes (the server's disk)")
	cmd.Flags().StringVar(&pgURL, "postgres-url", "", "PostgreSQL to measure inserts on (a scratch table, dropped after)")
	argonFlags(cmd, &p)
	return cmd
}
