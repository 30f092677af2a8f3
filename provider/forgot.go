package provider

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/store"
)

// A forgotten password (with a mail server): from the login page the
// user asks for a code by email, then chooses a new password with it,
// and the sign-in goes on with that password and, where they have one,
// their second factor. A reset makes no session (S22, ASVS 6.4.3). The
// answers are the same whether or not an account uses the address, and
// the mail goes out after the answer (S21: no enumeration by message,
// status or timing). The code is bound to this browser's sign-in.

func resetPurpose(flowID string) string { return "reset:" + flowID }

func resetKey(userID string) string { return "reset:" + userID }

var (
	// resetRule bounds wrong codes per account, as factorRule does a
	// second factor's.
	resetRule = store.Limit{Max: 5, Window: 15 * time.Minute, Lock: 15 * time.Minute}
	// forgotAddressRule bounds the codes asked for from one address.
	forgotAddressRule = store.Limit{Max: 10, Window: time.Hour, Lock: time.Hour}
)

const (
	resetSent  = "If an account uses that address, we emailed it a 6-digit code. It works once, for 10 minutes."
	resetWrong = "That code didn't work. Check the latest email, or ask for a new code."
)

type forgotPage struct {
	Flow, CSRF, Email, Population, Notice, Error string
	Sent                                         bool // the code's form
	MinLength                                    int
}

func (p *Provider) renderForgot(w http.ResponseWriter, r *http.Request, status int, page forgotPage) {
	page.CSRF, page.MinLength = p.csrfToken("forgot", page.Flow), p.accounts.MinPasswordLen
	w.Header().Set("Cache-Control", "no-store")
	p.render(w, r, status, "forgot.html", page)
}

// handleForgotPage asks for the address to send a code to.
func (p *Provider) handleForgotPage(w http.ResponseWriter, r *http.Request) {
	if p.mailer == nil {
		http.NotFound(w, r)
		return
	}
	f, err := p.loadFlow(r, r.URL.Query().Get("flow"), store.FlowPassword)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	p.renderForgot(w, r, http.StatusOK, forgotPage{Flow: f.ID})
}

// handleForgotSubmit sends a code (action send) or checks one and sets
// the new password (action reset).
func (p *Provider) handleForgotSubmit(w http.ResponseWriter, r *http.Request) {
	if p.mailer == nil {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		p.expired(w, r)
		return
	}
	id := r.PostForm.Get("flow")
	if !p.checkCSRF("forgot", id, r.PostForm.Get("csrf")) {
		p.errorPage(w, r, http.StatusForbidden, "This form has expired", "Reload the page and try again.", "csrf")
		return
	}
	f, err := p.loadFlow(r, id, store.FlowPassword)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	page := forgotPage{Flow: f.ID, Email: strings.TrimSpace(r.PostForm.Get("email")), Population: r.PostForm.Get("population"), Sent: true}
	if pop := store.Population(page.Population); pop != "" && !pop.Valid() {
		page.Population = ""
	}
	switch r.PostForm.Get("action") {
	case "send":
		p.sendResetCode(w, r, f, page)
	case "reset":
		p.resetPassword(w, r, f, page)
	default:
		p.errorPage(w, r, http.StatusBadRequest, "Unknown change", "Reload the page and try again.", "")
	}
}

func (p *Provider) sendResetCode(w http.ResponseWriter, r *http.Request, f store.LoginFlow, page forgotPage) {
	ctx := r.Context()
	if !p.cfg.NoAddressThrottle {
		th, err := p.store.Attempt(ctx, "forgot:"+p.addressKey(r), forgotAddressRule, p.now())
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
			return
		}
		if !th.Allowed {
			page.Sent, page.Error = false, fmt.Sprintf("Too many requests from your network. Try again after %s UTC.", th.RetryAt.UTC().Format("15:04"))
			p.renderForgot(w, r, http.StatusTooManyRequests, page)
			return
		}
	}
	if user, ok := p.resetUser(ctx, store.Population(page.Population), page.Email); ok {
		// After the answer: its time must not tell that the account
		// exists. The send's own limits (the resend countdown, 3 per 15
		// minutes and 10 a day per account) still hold.
		rc := r.Clone(context.WithoutCancel(ctx)) // for the audit's address, after the request
		p.notifier.later(func() {
			ctx, cancel := context.WithTimeout(rc.Context(), time.Minute)
			defer cancel()
			ch := mailTo(user)
			ch.reset = true
			if err := p.sendCode(ctx, user, resetPurpose(f.ID), ch); err != nil {
				p.logger.InfoContext(ctx, "password reset code not sent", "user", user.ID, "err", err)
				return
			}
			p.audit(ctx, rc, store.AuditEvent{Type: "password.reset_requested", UserID: user.ID, ClientID: f.ClientID})
		})
	}
	page.Notice = resetSent
	p.renderForgot(w, r, http.StatusOK, page)
}

// resetUser is the account a reset is for: an enabled local one. An
// account that signs in through an upstream gets no password here: its
// upstream decides who it is.
func (p *Provider) resetUser(ctx context.Context, pop store.Population, email string) (store.User, bool) {
	key, err := accounts.NormalizeEmail(email)
	if err != nil {
		return store.User{}, false
	}
	u, err := p.store.GetUserByEmail(ctx, pop, key)
	if err != nil || u.Disabled {
		return store.User{}, false
	}
	if ups, err := p.store.FederatedUpstreams(ctx, u.ID); err != nil || len(ups) > 0 {
		return store.User{}, false
	}
	return u, true
}

func (p *Provider) resetPassword(w http.ResponseWriter, r *http.Request, f store.LoginFlow, page forgotPage) {
	ctx := r.Context()
	refuse := func(status int, msg string) {
		page.Error = msg
		p.renderForgot(w, r, status, page)
	}
	pw := r.PostForm.Get("password")
	// Measured against the address typed, whether or not an account
	// has it: the answer tells nothing about one (S21).
	if msg := p.newPasswordProblem(r.PostForm, r.PostForm.Get("email")); msg != "" {
		refuse(http.StatusBadRequest, msg)
		return
	}
	// Every try counts in the sign-in (FlowFactorLimit), whoever it is
	// for; a known account's also against its own limit.
	counted, err := p.store.AttemptLoginFlow(ctx, f.ID, store.FlowPassword)
	if err != nil {
		p.expired(w, r)
		return
	}
	if counted.Failures > FlowFactorLimit {
		_ = p.store.DeleteLoginFlow(ctx, f.ID)
		p.clearCookie(w, flowCookie)
		p.errorPage(w, r, http.StatusTooManyRequests, "Too many tries", "Start again from the application you were signing in to.", "")
		return
	}
	user, ok := p.resetUser(ctx, store.Population(page.Population), page.Email)
	if ok {
		th, err := p.store.Attempt(ctx, resetKey(user.ID), resetRule, p.now())
		ok = err == nil && th.Allowed
	}
	if !ok || p.useCode(ctx, user, resetPurpose(f.ID), r.PostForm.Get("code")) != nil {
		if user.ID != "" {
			p.audit(ctx, r, store.AuditEvent{Type: "password.reset_failed", UserID: user.ID, ClientID: f.ClientID})
		}
		refuse(http.StatusBadRequest, resetWrong)
		return
	}
	hash, err := p.accounts.Hasher.Hash(pw)
	if err == nil {
		err = p.store.InTx(ctx, func(ctx context.Context) error {
			if err := p.accounts.ReplacePassword(ctx, user, hash, false); err != nil {
				return err
			}
			return p.store.ResetThrottle(ctx, resetKey(user.ID))
		})
	}
	if err != nil {
		p.logger.ErrorContext(ctx, "reset password", "err", err)
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Your password was not changed. Please try again.", "server_error")
		return
	}
	p.audit(ctx, r, store.AuditEvent{Type: "password.reset_by_email", UserID: user.ID, ActorID: user.ID, ClientID: f.ClientID})
	// The sign-in goes on: the new password, then any second factor.
	p.renderLogin(w, r, http.StatusOK, f, loginPage{Email: user.Email, Population: page.Population,
		Notice: "Your password was changed, and you were signed out everywhere. Sign in with the new one."})
}
