// Command twofold-bench measures a running Twofold over HTTP and this
// machine's bounds for the same work (issue 7).
//
//	twofold-bench setup  --database-url URL --out bench.json   create its own users and clients
//	twofold-bench run    --url http://localhost:8080 --fixture bench.json [--server-pid PID]
//	twofold-bench bounds                                        only the machine's bounds
//	twofold-bench grow   --database-url URL --users N --tokens M seed big tables (growth run)
//	twofold-bench clean  --database-url URL --expire N        time the expiry clean-up on them
//
// It never sends a wrong password or a replayed TOTP code: Twofold locks an
// account after 10 failures, and a benchmark must not trip it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	if os.Getenv(bareEnv) != "" {
		os.Exit(serveBare())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errFailed marks a run that completed but saw errors: exit status 1
// without repeating a message already printed.
var errFailed = errors.New("the run saw errors")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "twofold-bench",
		Short:         "Load tool and machine bounds for Twofold",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.AddCommand(setupCmd(stdout), runCmd(stdout), boundsCmd(stdout), growCmd(stdout), cleanCmd(stdout))
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errFailed):
		fmt.Fprintln(stderr, "twofold-bench:", err)
		return 1
	}
	fmt.Fprintln(stderr, "twofold-bench:", err)
	return 1
}
