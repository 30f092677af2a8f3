package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twofold-idp/twofold/store"
)

// securityNotices are the audit events an account's owner is told of by email,
// when a mail server is configured: a change to how they sign in (S20:
// "factor change needs an existing factor plus notification"), a reused
// authenticator code (S9), too many wrong codes after the password
// (§3.1.3), and an admin's reset of their factors or
// password (security.md §3.8). Someone who took over a session or a
// password learns nothing from the notice that they did not know.
var securityNotices = map[string]string{
	"password.changed":          "Your password was changed.",
	"password.reset_by_email":   "Your password was reset with a code sent to this address.",
	"password.reset":            "An administrator reset your password to a one-time password.",
	"factor.enrolled":           "A new way to sign in was added to your account: %s.",
	"factor.removed":            "A way to sign in was removed from your account.",
	"mfa.disabled":              "Two-step verification was turned off for your account.",
	"mfa.reset":                 "An administrator removed your two-step verification methods.",
	"recovery_codes.generated":  "New recovery codes were made for your account. The old ones no longer work.",
	"factor.replay":             "An authenticator code that had already been used was entered after your password, and refused.",
	"factor.counter_regression": "A security key answered with a signature counter that did not move forward, and was refused. The key may have been copied.",
	"phone.attached":            "An administrator set the phone number for your codes by text message.",
	"phone.confirmed":           "An administrator confirmed the phone number for your codes by text message.",
	"phone.detached":            "An administrator removed the phone number for your codes by text message.",
	// security.md §3.1.3: a lock on the second step "plus notification".
	// Only someone who got past the password reaches it.
	"factor.throttled": "Too many wrong codes were entered after your password, so signing in was stopped for a while. Whoever entered them knew your password: if it was not you, change it now.",
}

// noticeRule caps the notices of one kind to one user: a thief replaying
// codes cannot bomb the owner's mailbox (one mail says enough).
var noticeRule = store.Limit{Max: 3, Window: time.Hour, Lock: time.Hour}

// methodNames name a method in a notice, from an event's detail.
var methodNames = map[string]string{
	"totp": "an authenticator app", "webauthn": "a security key or passkey",
	"email": "codes by email", "sms": "codes by text message",
}

// Notifier mails users the security notices of their events. The CLI
// makes one for its admin changes; the provider has its own.
type Notifier struct {
	store  store.Store
	mailer Mailer // nil: no notices
	issuer string
	logger *slog.Logger

	mu       sync.Mutex
	draining bool           // Drain has begun: mail is sent at once
	wg       sync.WaitGroup // mail still being sent (Drain)
}

// NewNotifier mails through m (nil sends nothing); issuer is the
// provider's URL, for the account page's address.
func NewNotifier(s store.Store, m Mailer, issuer string, logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{store: s, mailer: m, issuer: issuer, logger: logger}
}

// later runs f after the request that asked for it was answered, so
// that a slow mail server holds no answer up and Drain can wait for it.
//
// Once Drain has begun, f runs at once instead: a request still being
// answered at shutdown sends its mail itself, and no WaitGroup.Add
// races Drain's Wait.
func (n *Notifier) later(f func()) {
	n.mu.Lock()
	if n.draining {
		n.mu.Unlock()
		f()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// Drain waits, at most until ctx ends, for mail still being sent after
// its request was answered.
func (n *Notifier) Drain(ctx context.Context) {
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.logger.Warn("stopped with mail still being sent", "err", ctx.Err())
	}
}

// Drain waits for the provider's mail still being sent (Notifier.Drain).
func (p *Provider) Drain(ctx context.Context) { p.notifier.Drain(ctx) }

// Notify mails e's user a notice of it, if e is one of
// securityNotices, after the request.
func (n *Notifier) Notify(e store.AuditEvent) {
	text, ok := securityNotices[e.Type]
	if !ok || n.mailer == nil || e.UserID == "" {
		return
	}
	var d struct {
		Method  string
		Removed *int64
	}
	_ = json.Unmarshal([]byte(e.Detail), &d)
	if d.Removed != nil && *d.Removed == 0 {
		return // an admin's reset of a user who had no method: nothing to tell
	}
	if strings.Contains(text, "%s") {
		name := methodNames[d.Method]
		if name == "" {
			name = "a second factor"
		}
		text = fmt.Sprintf(text, name)
	}
	n.later(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if th, err := n.store.Attempt(ctx, "notice:"+e.Type+":"+e.UserID, noticeRule, time.Now()); err == nil && !th.Allowed {
			return
		}
		user, err := n.store.GetUser(ctx, e.UserID)
		if err != nil || user.Email == "" {
			n.logger.WarnContext(ctx, "security notice not sent", "event", e.Type, "user", e.UserID, "err", err)
			return
		}
		if err := n.mailer.Send(ctx, user.Email, "Twofold security notice", n.body(text, user, e)); err != nil {
			n.logger.WarnContext(ctx, "security notice not sent", "event", e.Type, "user", e.UserID, "err", err)
		}
	})
}

func (n *Notifier) body(text string, user store.User, e store.AuditEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nAccount: %s\nWhen: %s UTC\n", text, user.Email, e.Time.UTC().Format("2006-01-02 15:04"))
	// The address, not the browser's own words (a thief writes those),
	// and never an admin's: the change was theirs, not the user's.
	if e.IP != "" && (e.ActorID == "" || e.ActorID == e.UserID) {
		fmt.Fprintf(&b, "From: %s\n", e.IP)
	}
	if strings.HasPrefix(text, "An administrator") {
		b.WriteString("\nIf you did not ask your administrator for this, tell them.\n")
	} else {
		fmt.Fprintf(&b, "\nIf this was you, there is nothing to do. If it was not, someone may know your password: "+
			"change it at %s/account/security and tell your administrator.\n", n.issuer)
	}
	return b.String()
}
