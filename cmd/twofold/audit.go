package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/twofold-idp/twofold/store"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log"}
	var user, typ string
	var limit int
	list := &cobra.Command{Use: "list [--user ID|EMAIL] [--type TYPE] [--limit N]", Short: "List security events, newest first", Args: exactArgs(0)}
	output := outputFlag(list)
	list.Flags().StringVar(&user, "user", "", "only this user's events (id or email)")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many events")
	list.Flags().StringVar(&typ, "type", "", `only events of this type, or of the types starting with it when it ends in "." (client.)`)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		if limit < 1 {
			return usageError{fmt.Errorf("--limit must be at least 1")}
		}
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			f := store.AuditFilter{Limit: limit, Type: typ}
			if user != "" {
				u, err := findUser(cmd.Context(), s, user, "")
				if err != nil {
					return err
				}
				f.UserID = u.ID
			}
			events, err := s.ListAudit(cmd.Context(), f)
			if err != nil {
				return err
			}
			if *output == "json" {
				type eventJSON struct {
					Time      time.Time `json:"time"`
					Type      string    `json:"type"`
					UserID    string    `json:"user_id,omitempty"`
					ActorID   string    `json:"actor_id,omitempty"`
					ClientID  string    `json:"client_id,omitempty"`
					IP        string    `json:"ip,omitempty"`
					UserAgent string    `json:"user_agent,omitempty"`
					Detail    string    `json:"detail"`
				}
				out := make([]eventJSON, len(events))
				for i, e := range events {
					out[i] = eventJSON{e.Time.UTC(), e.Type, e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent, e.Detail}
				}
				return writeJSON(a.stdout, out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tTYPE\tUSER\tCLIENT\tIP\tDETAIL")
			for _, e := range events {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Type, e.UserID, e.ClientID, e.IP, e.Detail)
			}
			return tw.Flush()
		})
	}
	cmd.AddCommand(list)
	return cmd
}
