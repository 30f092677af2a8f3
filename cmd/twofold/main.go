// Command twofold is the Twofold identity provider: one binary that serves
// the provider and administers it.
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2 // bad flags or bad configuration
)

// app carries what every command reads: the process's environment and
// streams, so tests run commands in-process.
type app struct {
	environ    []string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	configPath string
}

// usageError marks a mistake in how the command was called.
type usageError struct{ error }

func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{environ: environ, stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, "twofold: invalid configuration:")
		for _, p := range ce.Problems {
			fmt.Fprintln(stderr, p)
		}
		return exitUsage
	}
	fmt.Fprintln(stderr, "twofold:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailed
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "twofold",
		Short:         "Twofold: an OpenID Connect provider with built-in multi-factor authentication",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "YAML configuration file (TWOFOLD_* environment variables override it)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.serveCmd(), a.migrateCmd(), a.usersCmd(), a.clientsCmd(), a.keysCmd(), a.policyCmd(), a.auditCmd(), a.versionCmd())
	return root
}

// exactArgs is cobra.ExactArgs with a usage exit status.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func (a *app) config() (Config, error) {
	return LoadConfig(a.configPath, a.environ)
}
