package main

import (
	"fmt"
	"log/slog"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/twofold-idp/twofold/admin"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store"
)

func (a *app) keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage token-signing keys"}
	var alg string
	rotate := &cobra.Command{
		Use:   "rotate [--alg RS256|ES256]",
		Short: "Make a new active signing key; the previous one stays published until its tokens expire",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(provider.Algs, alg) {
				return usageError{fmt.Errorf("--alg %q: want RS256 or ES256", alg)}
			}
			return a.withKeys(cmd, func(s store.Store, ks *provider.KeySet) error {
				kid, err := adminOf(s).RotateSigningKey(cmd.Context(), admin.CLI, ks, alg)
				if kid != "" {
					fmt.Fprintf(a.stdout, "new active %s key %s\n", alg, kid)
				}
				return err
			})
		},
	}
	rotate.Flags().StringVar(&alg, "alg", provider.RS256, "algorithm of the key to rotate")
	list := &cobra.Command{
		Use:   "list",
		Short: "List signing keys (public facts only)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
				keys, err := s.ListSigningKeys(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tRETIRED")
				for _, k := range keys {
					state, retired := "retired", ""
					if k.Active {
						state = "active"
					}
					if k.RetiredAt != nil {
						retired = k.RetiredAt.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, state, k.CreatedAt.UTC().Format(time.RFC3339), retired)
				}
				return tw.Flush()
			})
		},
	}
	cmd.AddCommand(rotate, list)
	return cmd
}

// withKeys opens the store and the key set (creating first keys if none).
func (a *app) withKeys(cmd *cobra.Command, fn func(store.Store, *provider.KeySet) error) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	key, err := secretsKey(cfg, false, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	box, err := secrets.New(key)
	if err != nil {
		return err
	}
	return a.withStore(cmd.Context(), func(cfg Config, s store.Store) error {
		ks, err := provider.NewKeySet(cmd.Context(), s, box, providerConfig(cfg).KeyRetention(), time.Now)
		if err != nil {
			return err
		}
		return fn(s, ks)
	})
}
