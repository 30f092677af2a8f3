package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/twofold-idp/twofold/admin"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

func (a *app) policyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Rules for a whole population: two-step verification for every agent or every contact, and its methods"}
	cmd.AddCommand(a.policyShowCmd(), a.policyMFACmd(), a.policyMethodsCmd())
	return cmd
}

// policyJSON is a population's policy as show prints it.
type policyJSON struct {
	Population string     `json:"population"`
	RequireMFA bool       `json:"require_mfa"`
	GraceUntil *time.Time `json:"grace_until,omitempty"`
	// Methods are the kinds of second factor its users may set up.
	Methods   []string   `json:"methods"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func (a *app) policyShowCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "show", Short: "Show each population's two-step verification policy", Args: exactArgs(0)}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			ps, err := s.ListMFAPolicies(cmd.Context())
			if err != nil {
				return err
			}
			byPop := mfa.NewPolicies(ps)
			var out []policyJSON
			for _, pop := range []store.Population{store.PopulationAgent, store.PopulationContact} {
				p, ok := byPop[pop]
				j := policyJSON{Population: string(pop), RequireMFA: p.Required, GraceUntil: p.GraceUntil, Methods: admin.Shown(p.Methods)}
				if ok {
					t := p.UpdatedAt.UTC()
					j.UpdatedAt = &t
				}
				out = append(out, j)
			}
			if *output == "json" {
				return writeJSON(a.stdout, out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "POPULATION\tTWO-STEP VERIFICATION\tSETUP MAY BE PUT OFF UNTIL\tMETHODS")
			for _, j := range out {
				req, grace := "optional", "-"
				if j.RequireMFA {
					req = "required"
					if j.GraceUntil != nil {
						grace = j.GraceUntil.UTC().Format(time.RFC3339)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", j.Population, req, grace, strings.Join(j.Methods, ","))
			}
			return tw.Flush()
		})
	}
	return cmd
}

// policyMFACmd sets a population's policy (R15). Switching it on signs
// out that population's users who have no second factor (R16): at their
// next sign-in they set one up before they get any token, or put it off
// until --grace-until (R17).
func (a *app) policyMFACmd() *cobra.Command {
	var population, graceUntil string
	var require, off bool
	cmd := &cobra.Command{
		Use:   "mfa --population agent|contact (--require [--grace-until DATE] | --off)",
		Short: "Require two-step verification for every agent or every contact",
		Long: `Require two-step verification for every user of a population (R15), or stop
requiring it. Switching it on signs out that population's users who have no
second factor and revokes their codes and refresh tokens (R16): at their next
sign-in they set one up. With --grace-until they may put the setup off until
that date (R17): YYYY-MM-DD (the start of that day, UTC) or an RFC 3339 time.
A refresh token won with the password alone stops working once the setup is
required of its user; a JWT access token already handed out stays valid
offline until it expires. Users with a factor can no longer turn it off
(R18). Running servers see a change within 5 seconds.`,
		Args: exactArgs(0),
	}
	f := cmd.Flags()
	f.StringVar(&population, "population", "", "agent or contact (required)")
	f.BoolVar(&require, "require", false, "require a second factor")
	f.BoolVar(&off, "off", false, "stop requiring one")
	f.StringVar(&graceUntil, "grace-until", "", "with --require: the date until which users may put the setup off")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		pop := store.Population(population)
		switch {
		case !pop.Valid():
			return usageError{fmt.Errorf("--population %q: want agent or contact", population)}
		case require == off:
			return usageError{errors.New("give --require or --off")}
		case off && graceUntil != "":
			return usageError{errors.New("--grace-until goes with --require")}
		}
		var grace *time.Time
		if graceUntil != "" {
			t, err := parseDate(graceUntil)
			if err != nil {
				return usageError{fmt.Errorf("--grace-until: %w", err)}
			}
			if !t.After(time.Now()) {
				return usageError{fmt.Errorf("--grace-until %s is not in the future", t.Format(time.RFC3339))}
			}
			grace = &t
		}
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			c, err := adminOf(s).SetPopulationMFA(cmd.Context(), admin.CLI, pop, require, grace)
			if err != nil {
				return err
			}
			switch {
			case off:
				fmt.Fprintf(a.stdout, "two-step verification is no longer required of every %s\n", pop)
			default:
				fmt.Fprintf(a.stdout, "two-step verification is now required of every %s", pop)
				if grace != nil {
					fmt.Fprintf(a.stdout, "; the setup may be put off until %s", grace.UTC().Format(time.RFC3339))
				}
				if !c.Was {
					fmt.Fprintf(a.stdout, "; %d session(s) of %ss without a second factor ended", c.Sessions, pop)
				}
				fmt.Fprintln(a.stdout)
			}
			return nil
		})
	}
	return cmd
}

// policyMethodsCmd sets which kinds of second factor a population may set
// up (R10). Allowing a method requires nothing: that is policy mfa.
func (a *app) policyMethodsCmd() *cobra.Command {
	var population string
	var allow []string
	var all bool
	cmd := &cobra.Command{
		Use:   "methods [--population agent|contact] (--allow METHOD[,METHOD] | --all)",
		Short: "Choose the kinds of second factor users may set up",
		Long: `Choose which kinds of second factor users may set up (R10): totp (an
authenticator app), webauthn (a security key or passkey), email (codes
sent to the account's address, where a mail server is configured) and sms
(codes by text message, where an SMS gateway is configured; off until
listed here, R09). --all is the default: every kind but sms. Without
--population the choice is for agents and contacts alike. Allowing a method
does not require two-step verification (see policy mfa). A factor set up
before its kind was taken off the list still signs its user in, until they
replace it; recovery codes are always allowed. Running servers see a change
within 5 seconds.`,
		Args: exactArgs(0),
	}
	f := cmd.Flags()
	f.StringVar(&population, "population", "", "agent or contact (default: both)")
	f.StringSliceVar(&allow, "allow", nil, "the methods allowed: "+strings.Join(mfa.SetupMethods, ", "))
	f.BoolVar(&all, "all", false, "the default: every method but sms")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		pops := []store.Population{store.PopulationAgent, store.PopulationContact}
		if population != "" {
			pop := store.Population(population)
			if !pop.Valid() {
				return usageError{fmt.Errorf("--population %q: want agent or contact", population)}
			}
			pops = []store.Population{pop}
		}
		if all == (len(allow) > 0) {
			return usageError{errors.New("give --allow with at least one method, or --all")}
		}
		var methods store.Strings // --all: the defaults
		if !all {
			var err error
			if methods, err = admin.ParseMethods(allow); err != nil {
				return usageError{fmt.Errorf("--allow: %w", err)}
			}
		}
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			err := adminOf(s).SetMethods(cmd.Context(), admin.CLI, pops, methods)
			if err != nil {
				return err
			}
			for _, pop := range pops {
				fmt.Fprintf(a.stdout, "%ss may set up: %s\n", pop, strings.Join(admin.Shown(methods), ", "))
			}
			if !slices.Contains(admin.Shown(methods), mfa.MethodTOTP) {
				fmt.Fprintln(a.stderr, "note: security keys need an issuer with a host name (not an IP address) and email codes a mail server (email.smtp_addr); where a server has neither, these users can set nothing up")
			}
			return nil
		})
	}
	return cmd
}

// parseDate reads YYYY-MM-DD (the start of that day, UTC) or RFC 3339.
func parseDate(v string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither YYYY-MM-DD nor an RFC 3339 time", v)
	}
	return t.UTC(), nil
}
