// Package admin holds what an administrator does to users and policies
// (R15–R21): require or remove a user's two-step verification, unlock,
// disable, mail recovery codes, require it of a population, choose the
// allowed methods, sign everyone out. The command line and the admin
// console both call it, so a change is made, and audited, the same way
// from either. Each change is one transaction with its audit event.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

// Actor is who makes a change, as the audit log records it: an admin's
// user id and the request's address and agent, or "cli".
type Actor struct {
	ID, IP, UserAgent string
}

// CLI is the actor of the command line.
var CLI = Actor{ID: "cli"}

// Service makes the changes against one store.
type Service struct {
	Store store.Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Notify, when set, is told of each change's event once it is
	// committed: the provider mails the user a security notice.
	Notify func(store.AuditEvent)
}

var (
	// ErrContactsEnforced refuses to remove a contact's two-step
	// verification while every contact must have it (R20, seed 003):
	// the contact gets recovery codes by email instead.
	ErrContactsEnforced = errors.New("two-step verification is required of every contact, so it cannot be removed for one (R20): send them recovery codes instead")
	// ErrNotMailed: the mail server refused or could not be reached;
	// nothing changed.
	ErrNotMailed = errors.New("the recovery codes could not be mailed")
	// ErrNoFactor: recovery codes would never be asked of this user.
	ErrNoFactor = errors.New("the user has no two-step verification method, so recovery codes would not be asked for")
)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// change runs fn and appends its audit event in one transaction.
func (s *Service) change(ctx context.Context, a Actor, e func(ctx context.Context) (store.AuditEvent, error)) error {
	var ev store.AuditEvent
	err := s.Store.InTx(ctx, func(ctx context.Context) (err error) {
		if ev, err = e(ctx); err != nil {
			return err
		}
		ev = s.stamp(a, ev)
		return s.Store.AppendAudit(ctx, ev)
	})
	if err == nil && s.Notify != nil {
		s.Notify(ev)
	}
	return err
}

// audit appends ev as made by a, now.
func (s *Service) audit(ctx context.Context, a Actor, ev store.AuditEvent) error {
	return s.Store.AppendAudit(ctx, s.stamp(a, ev))
}

// stamp is ev as made by a, now.
func (s *Service) stamp(a Actor, ev store.AuditEvent) store.AuditEvent {
	ev.Time, ev.ActorID, ev.IP, ev.UserAgent = s.now(), a.ID, a.IP, a.UserAgent
	return ev
}

// jsonDetail is an audit event's detail object.
func jsonDetail(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// RequireUserMFA sets the per-user requirement (R15). Switched on for a
// user without a second factor, it signs them out (R16): they set one up
// at their next sign-in, and signedOut says so.
func (s *Service) RequireUserMFA(ctx context.Context, a Actor, u store.User, on bool) (signedOut bool, err error) {
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		signedOut = false // a run again (InTx retries) decides anew
		if err := s.Store.SetUserMFARequired(ctx, u.ID, on, s.now()); err != nil {
			return store.AuditEvent{}, err
		}
		if on && !u.MFARequired {
			fs, err := s.Store.ListFactors(ctx, u.ID)
			if err != nil {
				return store.AuditEvent{}, err
			}
			if !slices.ContainsFunc(fs, func(f store.Factor) bool { return f.Confirmed }) {
				if err := s.Store.SignOutUser(ctx, u.ID); err != nil {
					return store.AuditEvent{}, err
				}
				signedOut = true
			}
		}
		return store.AuditEvent{Type: "policy.user_mfa", UserID: u.ID, Detail: fmt.Sprintf(`{"required":%t}`, on)}, nil
	})
	return signedOut, err
}

// ResetMFA removes a user's second factors (R19: a lost phone or key):
// every factor, pending ones included, the recovery codes, the second
// factor's lock and any sign-in or key registration in progress. The
// user is signed out everywhere and their tokens revoked, since those
// were won with the removed factors.
func (s *Service) ResetMFA(ctx context.Context, a Actor, u store.User) (removed int64, err error) {
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		if err := s.contactsEnforced(ctx, u); err != nil {
			return store.AuditEvent{}, err
		}
		if removed, err = s.Store.DeleteFactors(ctx, u.ID); err != nil {
			return store.AuditEvent{}, err
		}
		for _, step := range []func() error{
			func() error { return s.Store.DeleteRecoveryCodes(ctx, u.ID) },
			func() error { return s.Store.ResetThrottle(ctx, store.FactorCounter(u.ID)) },
			func() error { return s.Store.SignOutUser(ctx, u.ID) },
		} {
			if err := step(); err != nil {
				return store.AuditEvent{}, err
			}
		}
		return store.AuditEvent{Type: "mfa.reset", UserID: u.ID, Detail: jsonDetail(map[string]any{"removed": removed})}, nil
	})
	return removed, err
}

func (s *Service) contactsEnforced(ctx context.Context, u store.User) error {
	if u.Population != store.PopulationContact {
		return nil
	}
	ps, err := s.Store.ListMFAPolicies(ctx)
	if err != nil {
		return err
	}
	if mfa.NewPolicies(ps)[store.PopulationContact].Required {
		return ErrContactsEnforced
	}
	return nil
}

// Unlock clears a user's password lock, second-factor lock and the hard
// cap past which only an admin unlocks.
func (s *Service) Unlock(ctx context.Context, a Actor, u store.User) error {
	return s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		err := s.Store.ResetThrottle(ctx, store.PasswordCounter(u.EmailKey), store.FactorCounter(u.ID))
		return store.AuditEvent{Type: "user.unlocked", UserID: u.ID}, err
	})
}

// SetDisabled disables an account, which signs it out everywhere and
// revokes its tokens, or enables it again.
func (s *Service) SetDisabled(ctx context.Context, a Actor, u store.User, disabled bool) error {
	return s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		typ := "user.enabled"
		if disabled {
			typ = "user.disabled"
		}
		if err := s.Store.SetUserDisabled(ctx, u.ID, disabled, s.now()); err != nil {
			return store.AuditEvent{}, err
		}
		if disabled {
			if err := s.Store.DeleteUserSessions(ctx, u.ID); err != nil {
				return store.AuditEvent{}, err
			}
			if err := s.Store.DeleteSubjectTokens(ctx, u.ID); err != nil {
				return store.AuditEvent{}, err
			}
		}
		return store.AuditEvent{Type: typ, UserID: u.ID}, nil
	})
}

// Deauthorize signs every user out (R21) but keep (an admin's own
// account; "" keeps none): sessions and sign-ins in progress end, codes
// and tokens are revoked. Tokens clients got for themselves stay.
func (s *Service) Deauthorize(ctx context.Context, a Actor, keep string) (sessions, tokens int64, err error) {
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		var err error
		if sessions, tokens, err = s.Store.SignOutAll(ctx, keep); err != nil {
			return store.AuditEvent{}, err
		}
		return store.AuditEvent{Type: "users.deauthorized",
			Detail: jsonDetail(map[string]any{"sessions": sessions, "token_rows": tokens, "except": keep})}, nil
	})
	return sessions, tokens, err
}

// PolicyChange is what SetPopulationMFA did: whether it was required
// before, and, when it was switched on, the sessions and token rows of
// the population's users without a second factor that it ended (R16).
type PolicyChange struct {
	Was              bool
	Sessions, Tokens int64
}

// SetPopulationMFA requires two-step verification of every user of pop,
// with an optional grace period (R15, R17), or stops requiring it.
// Switching it on signs out the users without a second factor (R16);
// switching it on again while it is on does not.
func (s *Service) SetPopulationMFA(ctx context.Context, a Actor, pop store.Population, require bool, grace *time.Time) (c PolicyChange, err error) {
	if !pop.Valid() {
		return c, fmt.Errorf("population %q: want agent or contact", pop)
	}
	if !require {
		grace = nil
	}
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		ps, err := s.Store.ListMFAPolicies(ctx)
		if err != nil {
			return store.AuditEvent{}, err
		}
		c.Was = mfa.NewPolicies(ps)[pop].Required
		if err := s.Store.SetMFARequirement(ctx, pop, require, grace, s.now()); err != nil {
			return store.AuditEvent{}, err
		}
		if require && !c.Was {
			if c.Sessions, c.Tokens, err = s.Store.SignOutWithoutFactors(ctx, pop); err != nil {
				return store.AuditEvent{}, err
			}
		}
		return store.AuditEvent{Type: "policy.population_mfa", Detail: jsonDetail(map[string]any{
			"population": pop, "required": require, "grace_until": grace,
			"signed_out_sessions": c.Sessions, "revoked_token_rows": c.Tokens})}, nil
	})
	return c, err
}

// ParseMethods reads a list of methods (R10), lower-cased and without
// repeats. The default choice (every kind but sms) comes back as nil,
// kept as no list, so that a kind added later is allowed too.
func ParseMethods(in []string) (store.Strings, error) {
	var methods store.Strings
	for _, m := range in {
		m = strings.ToLower(strings.TrimSpace(m))
		switch {
		case !slices.Contains(mfa.SetupMethods, m):
			return nil, fmt.Errorf("method %q: want %s", m, strings.Join(mfa.SetupMethods, " or "))
		case !slices.Contains(methods, m):
			methods = append(methods, m)
		}
	}
	if len(methods) == 0 {
		return nil, errors.New("allow at least one method")
	}
	if len(methods) == len(mfa.DefaultMethods) && !slices.Contains(methods, mfa.MethodSMS) {
		return nil, nil
	}
	return methods, nil
}

// Shown is a list of methods as stored (nil meaning the defaults),
// spelled out.
func Shown(methods store.Strings) []string {
	if len(methods) == 0 {
		return mfa.DefaultMethods
	}
	return methods
}

// SetMethods chooses the kinds of second factor pops may set up (R10);
// methods as ParseMethods returns them.
func (s *Service) SetMethods(ctx context.Context, a Actor, pops []store.Population, methods store.Strings) error {
	for _, pop := range pops {
		if !pop.Valid() {
			return fmt.Errorf("population %q: want agent or contact", pop)
		}
	}
	return s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		for _, pop := range pops {
			if err := s.Store.SetMFAMethods(ctx, pop, methods, s.now()); err != nil {
				return store.AuditEvent{}, err
			}
		}
		return store.AuditEvent{Type: "policy.methods", Detail: jsonDetail(map[string]any{"populations": pops, "methods": Shown(methods)})}, nil
	})
}

// Mailer sends one message (the mail package's Sender).
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// SendRecoveryCodes mails u a new set of recovery codes (R20): the old
// set stops working and the second factor's lock is cleared. The mail
// goes first, so a refused mail changes nothing; sending inside the
// transaction would hold SQLite's write lock for the SMTP exchange. A
// store failure after the mail leaves the old codes working and says so.
func (s *Service) SendRecoveryCodes(ctx context.Context, a Actor, u store.User, m Mailer, h *mfa.RecoveryHasher, issuer string) (int, error) {
	factors, err := s.Store.ListFactors(ctx, u.ID)
	if err != nil {
		return 0, err
	}
	if !slices.ContainsFunc(factors, func(f store.Factor) bool { return f.Confirmed }) {
		return 0, ErrNoFactor
	}
	codes := mfa.NewRecoveryCodes()
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		hashes[i], _ = h.Hash(c)
	}
	if err := m.Send(ctx, u.Email, "Your new recovery codes", RecoveryMail(issuer, codes)); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotMailed, err)
	}
	// Mailed: store them even if the caller gives up now (a browser
	// closed), or the codes in the user's mailbox would never work.
	err = s.change(context.WithoutCancel(ctx), a, func(ctx context.Context) (store.AuditEvent, error) {
		if err := s.Store.ReplaceRecoveryCodes(ctx, u.ID, hashes, true, s.now()); err != nil {
			return store.AuditEvent{}, err
		}
		if err := s.Store.ResetThrottle(ctx, store.FactorCounter(u.ID)); err != nil {
			return store.AuditEvent{}, err
		}
		return store.AuditEvent{Type: "recovery_codes.sent", UserID: u.ID}, nil
	})
	if err != nil {
		return 0, fmt.Errorf("the codes were mailed but not stored, so they do not work; send them again: %w", err)
	}
	return len(codes), nil
}

// RecoveryMail is the message that carries a new set of codes.
func RecoveryMail(issuer string, codes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Your administrator sent you new recovery codes for %s.\n\n", issuer)
	b.WriteString("Sign in with your password and one of these codes (each works once), then\n")
	b.WriteString("set up a new method on your account page and remove the lost one:\n\n")
	for _, c := range codes {
		b.WriteString("    " + c + "\n")
	}
	b.WriteString("\nYour earlier recovery codes no longer work. If you did not ask for this, tell your administrator.\n")
	return b.String()
}

// CreateUser makes an account (R04): with n.MustChange its password is a
// one-time one, changed at the first sign-in.
func (s *Service) CreateUser(ctx context.Context, a Actor, acc *accounts.Service, n accounts.NewUser) (u store.User, err error) {
	// Hashed before the transaction, which then holds no lock for it.
	if u, err = acc.NewAccount(n); err != nil {
		return store.User{}, err
	}
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		if err := acc.Insert(ctx, u); err != nil {
			return store.AuditEvent{}, err
		}
		return store.AuditEvent{Type: "user.created", UserID: u.ID}, nil
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// ResetPassword gives u a new one-time password, generated (an admin
// never chooses a user's password, ASVS 6.4.6) and returned to be handed
// over once. The user replaces it at their next sign-in, which still asks
// their second factor (S22). Their sessions, sign-ins in progress and
// tokens end, and the password's lock is cleared.
func (s *Service) ResetPassword(ctx context.Context, a Actor, acc *accounts.Service, u store.User) (password string, err error) {
	password = accounts.GeneratePassword()
	hash, err := acc.Hasher.Hash(password) // before the transaction, which then holds no lock for it
	if err != nil {
		return "", err
	}
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		return store.AuditEvent{Type: "password.reset", UserID: u.ID}, acc.ReplacePassword(ctx, u, hash, true)
	})
	if err != nil {
		return "", err
	}
	return password, nil
}
