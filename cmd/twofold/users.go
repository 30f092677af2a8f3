package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/admin"
	"github.com/twofold-idp/twofold/mail"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/store"
)

func (cfg Config) accounts(s store.Store) *accounts.Service {
	return &accounts.Service{
		Store: s,
		Hasher: accounts.Hasher{Params: accounts.Argon2Params{
			MemoryKiB:   cfg.Password.Argon2MemoryKiB,
			Iterations:  cfg.Password.Argon2Iterations,
			Parallelism: cfg.Password.Argon2Parallelism,
		}},
		MinPasswordLen: cfg.Password.MinLength,
		BlockGuessable: cfg.Password.BlockGuessable,
	}
}

// userJSON is the public view of an account: never the password hash.
type userJSON struct {
	ID                 string    `json:"id"`
	Email              string    `json:"email"`
	Population         string    `json:"population"`
	Role               string    `json:"role"`
	Disabled           bool      `json:"disabled"`
	MFARequired        bool      `json:"mfa_required"`
	PasswordMustChange bool      `json:"password_must_change"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

func toJSON(u store.User) userJSON {
	return userJSON{
		ID: u.ID, Email: u.Email, Population: string(u.Population), Role: string(u.Role),
		Disabled: u.Disabled, MFARequired: u.MFARequired, PasswordMustChange: u.PasswordMustChange,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
	}
}

// outputFlag adds --output text|json to cmd.
func outputFlag(cmd *cobra.Command) *string {
	return cmd.Flags().StringP("output", "o", "text", "output format: text or json")
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return usageError{fmt.Errorf("--output %q: want text or json", o)}
	}
	return nil
}

func (a *app) printUsers(output string, users []store.User) error {
	if output == "json" {
		out := make([]userJSON, len(users))
		for i, u := range users {
			out[i] = toJSON(u)
		}
		return writeJSON(a.stdout, out)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tPOPULATION\tROLE\tSTATUS\tCREATED")
	for _, u := range users {
		status := "active"
		if u.Disabled {
			status = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Email, u.Population, u.Role, status, u.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// withStore loads the configuration and opens the migrated database.
func (a *app) withStore(ctx context.Context, fn func(cfg Config, s store.Store) error) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	s, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(cfg, s)
}

// adminOf is the admin actions on s, shared with the admin console.
func adminOf(s store.Store) *admin.Service { return &admin.Service{Store: s} }

// notifying is adminOf(s) that tells users of its changes by email (a
// reset of their factors or password, an admin's phone change) as the
// console does, when a mail server is configured. Its events wait in a
// queue: send mails them once the caller's transaction has committed,
// and returns when they are sent.
func (a *app) notifying(cfg Config, s store.Store) (svc *admin.Service, restart, send func()) {
	svc = adminOf(s)
	if cfg.Email.SMTPAddr == "" {
		return svc, func() {}, func() {}
	}
	logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sender, err := mail.New(cfg.Email.mail())
	if err != nil {
		logger.Warn("no security notice will be mailed", "err", err)
		return svc, func() {}, func() {}
	}
	n := provider.NewNotifier(s, sender, cfg.Issuer, logger)
	var queued []store.AuditEvent
	svc.Notify = func(e store.AuditEvent) { queued = append(queued, e) }
	// restart empties the queue: a transaction run again (InTx retries
	// a deadlock) queues its notices again.
	restart = func() { queued = nil }
	return svc, restart, func() {
		for _, e := range queued {
			n.Notify(e)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Drain(ctx)
	}
}

func (a *app) usersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage user accounts"}
	cmd.AddCommand(a.usersCreateCmd(), a.usersListCmd(), a.usersShowCmd(), a.usersDisableCmd(), a.usersRequireMFACmd(), a.usersUnlockCmd(), a.usersResetMFACmd(), a.usersResetPasswordCmd(), a.usersSendRecoveryCodesCmd(), a.usersPhoneCmd(), a.usersDeauthorizeCmd())
	return cmd
}

func (a *app) usersCreateCmd() *cobra.Command {
	var email, population, role string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "create --email EMAIL --population agent|contact [--role ROLE] [--password-stdin]",
		Short: "Create an account; the password is read from stdin or a no-echo prompt",
		Args:  exactArgs(0),
	}
	output := outputFlag(cmd)
	cmd.Flags().StringVar(&email, "email", "", "email address (unique per population, case-insensitive)")
	cmd.Flags().StringVar(&population, "population", "", "agent or contact")
	cmd.Flags().StringVar(&role, "role", "", "admin, supervisor, agent or contact (default: agent for agents, contact for contacts)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		if email == "" || population == "" {
			return usageError{errors.New("--email and --population are required")}
		}
		password, err := a.readPassword(passwordStdin)
		if err != nil {
			return err
		}
		return a.withStore(cmd.Context(), func(cfg Config, s store.Store) error {
			u, err := adminOf(s).CreateUser(cmd.Context(), admin.CLI, cfg.accounts(s), accounts.NewUser{
				Email: email, Population: store.Population(population), Role: store.Role(role), Password: password,
			})
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(a.stdout, toJSON(u))
			}
			fmt.Fprintf(a.stdout, "created %s %s (%s), id %s\n", u.Population, u.Email, u.Role, u.ID)
			return nil
		})
	}
	return cmd
}

// readPassword reads the new password from stdin, or prompts twice
// without echo when stdin is a terminal. Never from a flag: flags end up
// in shell history and process listings.
func (a *app) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageError{errors.New("no password: pipe it in with --password-stdin, or run in a terminal to be prompted")}
	}
	fmt.Fprint(a.stderr, "Password: ")
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(a.stderr, "Repeat password: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(p1) != string(p2) {
		return "", errors.New("the passwords do not match")
	}
	return string(p1), nil
}

func (a *app) usersListCmd() *cobra.Command {
	var population string
	cmd := &cobra.Command{Use: "list", Short: "List accounts", Args: exactArgs(0)}
	output := outputFlag(cmd)
	cmd.Flags().StringVar(&population, "population", "", "only agent or contact")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		if population != "" && !store.Population(population).Valid() {
			return usageError{accounts.ErrInvalidPopulation}
		}
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			users, err := s.ListUsers(cmd.Context(), store.UserFilter{Population: store.Population(population)})
			if err != nil {
				return err
			}
			return a.printUsers(*output, users)
		})
	}
	return cmd
}

// findUser resolves an id or an email; an email present in both
// populations needs --population.
func findUser(ctx context.Context, s store.Store, ref, population string) (store.User, error) {
	if u, err := s.GetUser(ctx, ref); err == nil {
		return u, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.User{}, err
	}
	key, err := accounts.NormalizeEmail(ref)
	if err != nil {
		return store.User{}, fmt.Errorf("no user with id %q", ref)
	}
	pops := []store.Population{store.PopulationAgent, store.PopulationContact}
	if population != "" {
		pops = []store.Population{store.Population(population)}
	}
	var found []store.User
	for _, p := range pops {
		u, err := s.GetUserByEmail(ctx, p, key)
		if err == nil {
			found = append(found, u)
		} else if !errors.Is(err, store.ErrNotFound) {
			return store.User{}, err
		}
	}
	switch len(found) {
	case 0:
		return store.User{}, fmt.Errorf("no user %q", ref)
	case 1:
		return found[0], nil
	}
	return store.User{}, usageError{fmt.Errorf("%q is both an agent and a contact: add --population", ref)}
}

func (a *app) usersShowCmd() *cobra.Command {
	var population string
	cmd := &cobra.Command{Use: "show ID|EMAIL", Short: "Show one account", Args: exactArgs(1)}
	output := outputFlag(cmd)
	cmd.Flags().StringVar(&population, "population", "", "agent or contact, when the email is in both")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			u, err := findUser(cmd.Context(), s, args[0], population)
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(a.stdout, toJSON(u))
			}
			j := toJSON(u)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "id\t%s\nemail\t%s\npopulation\t%s\nrole\t%s\ndisabled\t%t\nmfa required\t%t\ncreated\t%s\nupdated\t%s\n",
				j.ID, j.Email, j.Population, j.Role, j.Disabled, j.MFARequired, j.CreatedAt.Format(time.RFC3339), j.UpdatedAt.Format(time.RFC3339))
			return tw.Flush()
		})
	}
	return cmd
}

// userChangeCmd builds a verb that finds one user by id or email and
// changes it in one transaction with its audit event; change returns the
// line to print.
func (a *app) userChangeCmd(use, short string, change func(ctx context.Context, s store.Store, svc *admin.Service, u store.User) (string, error)) *cobra.Command {
	var population string
	cmd := &cobra.Command{Use: use, Short: short, Args: exactArgs(1)}
	cmd.Flags().StringVar(&population, "population", "", "agent or contact, when the email is in both")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withStore(cmd.Context(), func(cfg Config, s store.Store) error {
			ctx := cmd.Context()
			u, err := findUser(ctx, s, args[0], population)
			if err != nil {
				return err
			}
			// One transaction: the admin package's changes join it, and
			// the phone command's steps need it. Notices go once it commits.
			svc, restart, send := a.notifying(cfg, s)
			var msg string
			err = s.InTx(ctx, func(ctx context.Context) error {
				restart()
				msg, err = change(ctx, s, svc, u)
				return err
			})
			if err != nil {
				return err
			}
			send()
			fmt.Fprintln(a.stdout, msg)
			return nil
		})
	}
	return cmd
}

func (a *app) usersDisableCmd() *cobra.Command {
	var enable bool
	cmd := a.userChangeCmd("disable ID|EMAIL", "Disable an account (it can no longer sign in)", func(ctx context.Context, s store.Store, svc *admin.Service, u store.User) (string, error) {
		// Disabled means signed out everywhere, tokens included.
		err := svc.SetDisabled(ctx, admin.CLI, u, !enable)
		if enable {
			return "enabled " + u.Email, err
		}
		return "disabled " + u.Email, err
	})
	cmd.Flags().BoolVar(&enable, "enable", false, "re-enable the account instead")
	return cmd
}

// usersRequireMFACmd sets the per-user enforcement flag (R15): the user
// must present, or at the next sign-in set up, a second factor.
func (a *app) usersRequireMFACmd() *cobra.Command {
	var off bool
	cmd := a.userChangeCmd("require-mfa ID|EMAIL [--off]", "Require two-step verification for one user", func(ctx context.Context, s store.Store, svc *admin.Service, u store.User) (string, error) {
		// R16: switched on for a user without a second factor, it signs
		// them out; they set one up at their next sign-in.
		signedOut, err := svc.RequireUserMFA(ctx, admin.CLI, u, !off)
		state := "now required"
		if off {
			state = "no longer required"
		}
		msg := fmt.Sprintf("two-step verification is %s for %s", state, u.Email)
		if signedOut {
			msg += "; they had no second factor and are signed out"
		}
		return msg, err
	})
	cmd.Flags().BoolVar(&off, "off", false, "stop requiring it")
	return cmd
}

// usersUnlockCmd clears a user's sign-in locks: the password lock, the
// second-factor lock and the hard cap past which only an admin unlocks.
func (a *app) usersUnlockCmd() *cobra.Command {
	return a.userChangeCmd("unlock ID|EMAIL", "Clear a user's password and second-factor locks", func(ctx context.Context, s store.Store, svc *admin.Service, u store.User) (string, error) {
		return "unlocked " + u.Email, svc.Unlock(ctx, admin.CLI, u)
	})
}

// usersResetMFACmd removes a user's second factors (R19: a lost phone or
// key): every authenticator app, security key, passkey and email codes,
// pending ones included, the recovery codes, the second factor's lock and any sign-in
// or key registration in progress. The user is signed out everywhere and
// their tokens revoked, since those were won with the removed factors.
// They set a method up again from the account page, or at their next
// sign-in when one is required of them (R22).
func (a *app) usersResetMFACmd() *cobra.Command {
	cmd := a.userChangeCmd("reset-mfa ID|EMAIL", "Remove a user's two-step verification methods (a lost phone or key) and sign them out",
		func(ctx context.Context, s store.Store, svc *admin.Service, u store.User) (string, error) {
			n, err := svc.ResetMFA(ctx, admin.CLI, u)
			if errors.Is(err, admin.ErrContactsEnforced) {
				return "", fmt.Errorf("two-step verification is required of every contact, so it cannot be removed for %s (R20): "+
					"send them recovery codes instead: twofold users send-recovery-codes %s", u.Email, u.Email)
			}
			return fmt.Sprintf("removed %d two-step verification method(s) and the recovery codes of %s; signed out everywhere", n, u.Email), err
		})
	cmd.Long = `Remove a user's two-step verification (R19: a lost phone or key): every
authenticator app, security key, passkey and email codes, pending ones included, the
recovery codes, the second factor's lock, and any sign-in in progress. The
user is signed out everywhere and their codes, access and refresh tokens
are revoked; a JWT access token already handed out stays valid where it
is checked offline until it expires. They set a method up again from the
account page, or at their next sign-in when one is required of them.`
	return cmd
}

// usersResetPasswordCmd gives a user who forgot their password a new,
// generated one-time password, printed once; they choose their own at
// their next sign-in, after their second factor. Not userChangeCmd: the
// hash is made before the transaction.
func (a *app) usersResetPasswordCmd() *cobra.Command {
	var population string
	cmd := &cobra.Command{
		Use:   "reset-password ID|EMAIL",
		Short: "Give a user a new one-time password (printed once) and sign them out",
		Long: `Give a user who forgot their password a new one-time password, generated
and printed once (an admin never chooses it). They replace it at their next
sign-in, which still asks their second factor. Their sessions, sign-ins in
progress and tokens end, and their password lock is cleared.`,
		Args: exactArgs(1),
	}
	cmd.Flags().StringVar(&population, "population", "", "agent or contact, when the email is in both")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withStore(cmd.Context(), func(cfg Config, s store.Store) error {
			u, err := findUser(cmd.Context(), s, args[0], population)
			if err != nil {
				return err
			}
			svc, _, send := a.notifying(cfg, s)
			password, err := svc.ResetPassword(cmd.Context(), admin.CLI, cfg.accounts(s), u)
			if err != nil {
				return err
			}
			send()
			fmt.Fprintf(a.stdout, "one-time password for %s (shown once; they choose their own at their next sign-in):\n%s\n", u.Email, password)
			return nil
		})
	}
	return cmd
}

// usersPhoneCmd attaches, confirms or detaches a user's phone for codes
// by SMS (R09): admins manage any user's number, users only their own
// (on the account page). A number attached without --confirmed makes the
// user's SMS step say "contact your administrator" until an admin
// confirms it. Replacing or detaching a confirmed number signs the user
// out, as any change of factor does.
func (a *app) usersPhoneCmd() *cobra.Command {
	var set string
	var confirmed, confirm, detach bool
	cmd := a.userChangeCmd("phone ID|EMAIL (--set NUMBER [--confirmed] | --confirm | --detach)",
		"Attach, confirm or detach a user's phone for codes by SMS",
		func(ctx context.Context, s store.Store, svc *admin.Service, u store.User) (string, error) {
			switch {
			case confirm:
				number, err := svc.ConfirmPhone(ctx, admin.CLI, u)
				if errors.Is(err, admin.ErrNoPhone) {
					return "", fmt.Errorf("%s has no phone: attach one with --set", u.Email)
				}
				return "confirmed " + sms.Mask(number) + " for " + u.Email, err
			case detach:
				number, err := svc.DetachPhone(ctx, admin.CLI, u)
				if errors.Is(err, admin.ErrNoPhone) {
					return "", fmt.Errorf("%s has no phone", u.Email)
				}
				return "detached " + sms.Mask(number) + " from " + u.Email, err
			}
			state := "not confirmed: their SMS step asks them to contact you until you run --confirm"
			if confirmed {
				state = "confirmed"
			}
			return fmt.Sprintf("attached %s to %s (%s)", sms.Mask(set), u.Email, state), svc.SetPhone(ctx, admin.CLI, u, set, confirmed)
		})
	cmd.Flags().StringVar(&set, "set", "", "the number, E.164 (+ and the country code)")
	cmd.Flags().BoolVar(&confirmed, "confirmed", false, "with --set: the number is known to be the user's")
	cmd.Flags().BoolVar(&confirm, "confirm", false, "confirm the attached number for the user")
	cmd.Flags().BoolVar(&detach, "detach", false, "remove the user's phone")
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		n := 0
		for _, b := range []bool{set != "", confirm, detach} {
			if b {
				n++
			}
		}
		if n != 1 {
			return usageError{errors.New("give exactly one of --set NUMBER, --confirm or --detach")}
		}
		if confirmed && set == "" {
			return usageError{errors.New("--confirmed goes with --set")}
		}
		if set != "" && !sms.ValidE164(set) {
			return usageError{fmt.Errorf("--set %q: want an E.164 number, + and the country code, as in +447700900123", set)}
		}
		return run(cmd, args)
	}
	cmd.Long = `Attach, confirm or detach a user's phone for codes by SMS (R09). Users attach
and detach their own number on their account page, confirmed by a code
texted to it; here an admin manages anyone's. A number attached without
--confirmed is shown to the user as "not confirmed: contact your
administrator" until --confirm. Replacing or detaching a confirmed number
signs the user out everywhere. Codes by SMS must also be allowed
(policy methods --allow …,sms) and the gateway configured (sms.*).`
	return cmd
}

// usersSendRecoveryCodesCmd mails a user a new set of recovery codes
// (R20): the way back for a contact who lost their phone while every
// contact must have two-step verification. They sign in with one, then
// set up a new method and remove the lost one (R13).
func (a *app) usersSendRecoveryCodesCmd() *cobra.Command {
	var population string
	cmd := &cobra.Command{
		Use:   "send-recovery-codes ID|EMAIL",
		Short: "Email a user a new set of recovery codes (the old set stops working)",
		Long: `Email a user a new set of recovery codes (R20): the set they had stops
working, and their second factor's lock is cleared. They sign in with one of
the codes, then set up a new method and remove the lost one. Use it where
two-step verification must not be removed (it is required of every contact);
elsewhere reset-mfa also works. Needs the mail server of email.smtp_addr.
The codes are written to nobody but the user's address.`,
		Args: exactArgs(1),
	}
	cmd.Flags().StringVar(&population, "population", "", "agent or contact, when the email is in both")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withStore(cmd.Context(), func(cfg Config, s store.Store) error {
			ctx := cmd.Context()
			if cfg.Email.SMTPAddr == "" {
				return usageError{errors.New("email.smtp_addr is not set: Twofold has no mail server to send the codes with")}
			}
			sender, err := mail.New(cfg.Email.mail())
			if err != nil {
				return usageError{err}
			}
			key, err := secretsKey(cfg, false, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			u, err := findUser(ctx, s, args[0], population)
			if err != nil {
				return err
			}
			n, err := adminOf(s).SendRecoveryCodes(ctx, admin.CLI, u, sender, mfa.NewRecoveryHasher(key), cfg.Issuer)
			if errors.Is(err, admin.ErrNoFactor) {
				return fmt.Errorf("%s has no two-step verification method: recovery codes would not be asked for", u.Email)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "sent %d new recovery codes to %s; the old ones no longer work\n", n, u.Email)
			return nil
		})
	}
	return cmd
}

// usersDeauthorizeCmd signs every user out (R21): their sessions end and
// their codes and tokens are revoked, so each must sign in again; tokens
// clients got for themselves stay. --except spares one account, the
// admin's own; --all spares none.
func (a *app) usersDeauthorizeCmd() *cobra.Command {
	var except, population string
	var all bool
	cmd := &cobra.Command{
		Use:   "deauthorize --except ID|EMAIL | --all",
		Short: "Sign every user out: end their sessions and revoke their tokens",
		Long: `Sign every user out (R21): their sessions and sign-ins in progress end and
their codes, access and refresh tokens are revoked, so each signs in again.
--except keeps one account (yours); --all keeps none. Tokens clients got
for themselves (client_credentials) stay. A JWT access token already
handed out stays valid where it is checked offline until it expires;
/userinfo and /introspect refuse it at once.`,
		Args: exactArgs(0),
	}
	cmd.Flags().StringVar(&except, "except", "", "the account to keep signed in (yours)")
	cmd.Flags().BoolVar(&all, "all", false, "sign out every user, none kept")
	cmd.Flags().StringVar(&population, "population", "", "agent or contact, when the --except email is in both")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		switch {
		case (except == "") == !all:
			return usageError{errors.New("give --except ID|EMAIL (the account to keep signed in) or --all")}
		case population != "" && except == "":
			return usageError{errors.New("--population goes with --except")}
		}
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			ctx := cmd.Context()
			var keep store.User
			if except != "" {
				var err error
				if keep, err = findUser(ctx, s, except, population); err != nil {
					return err
				}
			}
			sessions, tokens, err := adminOf(s).Deauthorize(ctx, admin.CLI, keep.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Users have been successfully deauthorized: %d session(s) ended, %d stored code and token row(s) revoked", sessions, tokens)
			if keep.ID != "" {
				fmt.Fprintf(a.stdout, " (%s kept)", keep.Email)
			}
			fmt.Fprintln(a.stdout)
			return nil
		})
	}
	return cmd
}
