package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/realclientip/realclientip-go"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

type loginPage struct {
	Flow, CSRF, ClientName, Email, Population, Error, Notice string
	// CanReset links to a forgotten password's page (a mail server is
	// configured).
	CanReset bool
	// Passkey is set when passwordless sign-in is on.
	Passkey *keyOptions
	// Upstreams are the providers to sign in through (R03).
	Upstreams []upstreamButton
}

// handleLoginPage shows the password step of a flow.
func (p *Provider) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("flow")
	f, err := p.loadFlow(r, id, store.FlowPassword)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	form, _ := url.ParseQuery(f.AuthorizeForm)
	page := loginPage{Email: form.Get("login_hint")}
	if f.UserID != "" {
		if u, err := p.store.GetUser(r.Context(), f.UserID); err == nil {
			page.Email, page.Population = u.Email, string(u.Population)
		}
	}
	p.renderLogin(w, r, http.StatusOK, f, page)
}

func (p *Provider) renderLogin(w http.ResponseWriter, r *http.Request, status int, f store.LoginFlow, page loginPage) {
	page.Flow = f.ID
	page.CSRF = p.csrfToken("login", f.ID)
	page.Upstreams = p.upstreamButtons()
	page.CanReset = p.mailer != nil
	if !p.cfg.NoPasswordless && p.webauthn != nil {
		if k, err := p.beginPasskey(f.ID); err == nil {
			page.Passkey = &k
		}
	}
	if c, err := p.client(r.Context(), f.ClientID); err == nil {
		page.ClientName = c.Name
	}
	if err := p.pages.Render(w, status, "login.html", page); err != nil {
		p.logger.ErrorContext(r.Context(), "render login", "err", err)
	}
}

// badCredentials is the one message for every failed password step: an
// unknown email, a wrong password and a disabled account look alike.
const badCredentials = "Wrong email or password."

// passwordCappedMessage answers a password sign-in past PasswordCap. It
// is the same for any address typed, an account's or not.
func (p *Provider) passwordCappedMessage() string {
	if p.mailer != nil {
		return "Too many failed sign-ins: signing in with a password is locked for this address. Choose a new password with \"Forgot your password?\", or ask your administrator to unlock it."
	}
	return "Too many failed sign-ins: signing in with a password is locked for this address. Ask your administrator to unlock it."
}

// handleLoginSubmit checks the password and moves the flow forward.
func (p *Provider) handleLoginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "This request is not valid", "The form could not be read.", "")
		return
	}
	id := r.PostForm.Get("flow")
	if !p.checkCSRF("login", id, r.PostForm.Get("csrf")) {
		p.errorPage(w, r, http.StatusForbidden, "This form has expired", "Reload the sign-in page and try again.", "csrf")
		return
	}
	f, err := p.loadFlow(r, id, store.FlowPassword)
	if err != nil {
		// The password step's answer reloaded (or posted twice): the
		// password was right, and this browser's flow waits for its
		// second step. This must stay before any counting or checking.
		if errors.Is(err, errFlow) && p.showWaitingSecondStep(w, r, id) {
			return
		}
		p.flowFailed(w, r, err)
		return
	}
	email := strings.TrimSpace(r.PostForm.Get("email"))
	pop := store.Population(r.PostForm.Get("population"))
	page := loginPage{Email: email, Population: string(pop)}
	if pop != "" && !pop.Valid() {
		page.Error = badCredentials
		p.renderLogin(w, r, http.StatusBadRequest, f, page)
		return
	}
	// The password counter is keyed by what was typed, so an unknown
	// email is throttled exactly like a real one.
	key, _ := accounts.NormalizeEmail(email)
	throttleKey := passwordKey(key) // one counter per address, whatever population was picked
	th, _, err := p.attempt(ctx, r, throttleKey, passwordRule)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
		return
	}
	if th.Capped {
		p.audit(ctx, r, store.AuditEvent{Type: "login.throttled", ClientID: f.ClientID, Detail: `{"scope":"cap"}`})
		page.Error = p.passwordCappedMessage()
		p.renderLogin(w, r, http.StatusTooManyRequests, f, page)
		return
	}
	if !th.Allowed {
		p.audit(ctx, r, store.AuditEvent{Type: "login.throttled", ClientID: f.ClientID, Detail: jsonObject("retry_at", th.RetryAt.UTC())})
		page.Error = fmt.Sprintf("Too many failed sign-ins. Try again after %s UTC.", th.RetryAt.UTC().Format("15:04"))
		p.renderLogin(w, r, http.StatusTooManyRequests, f, page)
		return
	}
	user, err := p.authenticate(ctx, pop, email, r.PostForm.Get("password"))
	if err == nil && f.UserID != "" && user.ID != f.UserID {
		err = accounts.ErrBadCredentials // a re-authentication is for one user only
	}
	if err != nil {
		if !errors.Is(err, accounts.ErrBadCredentials) {
			p.logger.ErrorContext(ctx, "authenticate", "err", err)
		}
		p.audit(ctx, r, store.AuditEvent{Type: "login.failure", UserID: user.ID, ClientID: f.ClientID, Detail: `{"step":"password"}`})
		page.Error = badCredentials
		p.renderLogin(w, r, http.StatusUnauthorized, f, page)
		return
	}
	// Only failures count against an address: this attempt is taken back.
	_ = p.store.Success(ctx, p.refundKey(r), throttleKey)

	now := p.now().UTC()
	f.UserID, f.Methods, f.AuthTime = user.ID, store.Strings{mfa.AMRPassword}, &now
	p.afterFirstStep(w, r, f, user, "login.password_ok")
}

// afterFirstStep decides the step after a correct password. R01, R11: the
// password is only the first step. A user with a second factor always
// presents it; one without gets enrolment when policy, the client or the
// request demands two factors (R22).
//
// event is the audit event of a first step that leads on to another:
// login.password_ok, or login.federated_ok after an upstream (R03).
func (p *Provider) afterFirstStep(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User, event string) {
	ctx := r.Context()
	if p.notConsoleUser(w, r, f, user) {
		return
	}
	all, codes, err := p.store.ListFactorsAndCodes(ctx, user.ID)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
		return
	}
	hasFactor := slices.ContainsFunc(all, func(fa store.Factor) bool { return fa.Confirmed })
	switch {
	case user.PasswordMustChange && !hasFactor && slices.Contains(f.Methods, mfa.AMRPassword):
		// A one-time password (a new account's): a new one first. A
		// user with a second factor (an admin's reset) presents it
		// before choosing one (S22, afterSecondStep); one who came
		// through an upstream used no password here.
		p.audit(ctx, r, store.AuditEvent{Type: event, UserID: user.ID, ClientID: f.ClientID})
		p.advance(w, r, f, store.FlowPasswordChange)
	case hasFactor:
		p.audit(ctx, r, store.AuditEvent{Type: event, UserID: user.ID, ClientID: f.ClientID})
		f, err = p.move(ctx, f, store.FlowSecondFactor)
		switch {
		case errors.Is(err, store.ErrConflict):
			// The same form posted twice (a double click): the first
			// moved the flow on; show where it went.
			if !p.showWaitingSecondStep(w, r, f.ID) {
				p.expired(w, r)
			}
			return
		case errors.Is(err, store.ErrNotFound):
			p.expired(w, r)
			return
		case err != nil:
			p.logger.ErrorContext(ctx, "move login flow", "err", err)
			p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
			return
		}
		// The second step's page is this POST's answer, as Keycloak's
		// is: a redirect to it would cost the browser a round trip, and
		// the server a request and two reads (issue 7). Reloading it
		// posts the password form again, which shows this page again
		// (handleLoginSubmit).
		p.showSecondFactor(w, r, http.StatusOK, f, p.offered(ctx, f, all, codes), "", "")
	case p.mfaNeeded(ctx, f, user) || !p.deferral(ctx, user).IsZero():
		// Needed now, or required by the population's policy within its
		// grace period (R17): then the setup page lets it be put off.
		p.audit(ctx, r, store.AuditEvent{Type: event, UserID: user.ID, ClientID: f.ClientID})
		p.advance(w, r, f, store.FlowEnrol)
	default:
		p.establish(w, r, f, user, f.Methods)
	}
}

// notConsoleUser ends a sign-in for the admin console by anyone but an
// admin, with no session made: after the password, before a second
// step is asked, and before a passkey's or an upstream's sign-in makes a
// session (establish). True when it did (the answer is written).
func (p *Provider) notConsoleUser(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User) bool {
	if !consoleFlow(f) || user.Role == store.RoleAdmin {
		return false
	}
	_ = p.store.DeleteLoginFlow(r.Context(), f.ID)
	p.clearCookie(w, flowCookie)
	p.audit(r.Context(), r, store.AuditEvent{Type: "console.refused", UserID: user.ID})
	p.errorPage(w, r, http.StatusForbidden, "Administrators only", "Your account cannot open the admin console.", "")
	return true
}

// showWaitingSecondStep shows the second step's page when this
// browser's flow id waits there; false when it does not.
func (p *Provider) showWaitingSecondStep(w http.ResponseWriter, r *http.Request, id string) bool {
	f, err := p.loadFlow(r, id, store.FlowSecondFactor)
	if err != nil {
		return false
	}
	p.renderSecondFactor(w, r, http.StatusOK, f, "", "")
	return true
}

type passwordPage struct {
	Flow, CSRF, Error string
}

// handleNewPasswordPage asks for a new password in place of a one-time one.
func (p *Provider) handleNewPasswordPage(w http.ResponseWriter, r *http.Request) {
	f, err := p.loadFlow(r, r.URL.Query().Get("flow"), store.FlowPasswordChange)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "new_password.html", passwordPage{Flow: f.ID, CSRF: p.csrfToken("pwchange", f.ID)})
}

// handleNewPasswordSubmit replaces a one-time password, then goes on.
func (p *Provider) handleNewPasswordSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.ParseForm() == nil && p.checkCSRF("pwchange", r.PostForm.Get("flow"), r.PostForm.Get("csrf")) &&
		p.showWaitingSecondStep(w, r, r.PostForm.Get("flow")) {
		// Its answer reloaded: the new password is set, and this
		// browser's flow waits for its second step (as after the
		// password form, handleLoginSubmit).
		return
	}
	f, user, ok := p.flowStep(w, r, "pwchange", store.FlowPasswordChange, false)
	if !ok {
		return
	}
	page := passwordPage{Flow: f.ID, CSRF: p.csrfToken("pwchange", f.ID)}
	pw := r.PostForm.Get("password")
	if page.Error = p.newPasswordProblem(r.PostForm, user.Email); page.Error != "" {
		p.render(w, r, http.StatusBadRequest, "new_password.html", page)
		return
	}
	if ok, _, _ := p.accounts.Hasher.Verify(pw, user.PasswordHash); ok {
		page.Error = "Choose a password other than the one-time password."
		p.render(w, r, http.StatusBadRequest, "new_password.html", page)
		return
	}
	hash, err := p.accounts.Hasher.Hash(pw)
	if err == nil {
		// Only from the one-time password this sign-in proved: an
		// admin's reset that commits meanwhile wins.
		err = p.store.ChangeUserPassword(ctx, user.ID, user.PasswordHash, hash, false, p.now())
	}
	if errors.Is(err, store.ErrConflict) {
		_ = p.store.DeleteLoginFlow(ctx, f.ID)
		p.errorPage(w, r, http.StatusConflict, "Your account changed meanwhile", "Your password was not changed. Start again from the application.", "")
		return
	}
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
		return
	}
	p.audit(ctx, r, store.AuditEvent{Type: "password.changed", UserID: user.ID, ActorID: user.ID, ClientID: f.ClientID})
	user.PasswordMustChange = false
	if len(f.Methods) > 1 {
		// The second step came first (afterSecondStep): done.
		p.establish(w, r, f, user, f.Methods)
		return
	}
	p.afterFirstStep(w, r, f, user, "login.password_ok")
}

// newPasswordProblem says what is wrong with a form's new password (its
// "password" and "repeat" fields), or "": the same rules on every page
// that sets one (ASVS 6.3.3 / S21).
func (p *Provider) newPasswordProblem(form url.Values, email string) string {
	pw := form.Get("password")
	if pw != form.Get("repeat") {
		return "The two new passwords are not the same."
	}
	if err := p.accounts.CheckPassword(pw, email); err != nil {
		return strings.ToUpper(err.Error()[:1]) + err.Error()[1:] + "."
	}
	return ""
}

// afterSecondStep ends a sign-in whose second step is done. A one-time
// password still to replace (an admin's reset) is replaced now, after the
// second factor and never before it (S22: whoever holds the one-time
// password alone cannot choose the account's password); then the session
// is made.
func (p *Provider) afterSecondStep(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User, methods []string) {
	if user.PasswordMustChange && slices.Contains(methods, mfa.AMRPassword) {
		f.Methods = store.Strings(methods)
		p.advance(w, r, f, store.FlowPasswordChange)
		return
	}
	p.establish(w, r, f, user, methods)
}

// authenticate checks a password. Without a population the account is
// looked up among agents, then contacts; either way exactly one password
// hash is computed, so timing does not tell whether an account exists.
func (p *Provider) authenticate(ctx context.Context, pop store.Population, email, password string) (store.User, error) {
	return p.accounts.Authenticate(ctx, pop, email, password) // the store looks agents up first
}

// continueFlow sends the browser to the flow's next step, or completes
// the authorization request when the flow is done.
func (p *Provider) continueFlow(w http.ResponseWriter, r *http.Request, f store.LoginFlow, sess store.Session, user store.User) {
	switch f.State {
	case store.FlowConsent:
		http.Redirect(w, r, "/consent?flow="+url.QueryEscape(f.ID), http.StatusSeeOther)
	case store.FlowDone:
		if f.ClientID == "" {
			// A sign-in for the account page or the admin console:
			// back there.
			_ = p.store.DeleteLoginFlow(r.Context(), f.ID)
			p.clearCookie(w, flowCookie)
			to := "/account/security?notice=reauthed"
			if consoleFlow(f) {
				to = consolePath
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		ar, err := p.resume(r, f)
		if err != nil {
			p.authorizeError(w, r, ar, err)
			return
		}
		_ = p.store.DeleteLoginFlow(r.Context(), f.ID)
		p.finish(w, r, ar, sess, user, f.CreatedAt)
	default:
		p.errorPage(w, r, http.StatusBadRequest, "This sign-in link has expired", "Start again from the application you were signing in to.", "")
	}
}

// userAgent is the request's User-Agent as the audit log keeps it: at
// most 512 bytes.
func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return ua
}

// audit records an event with the request's address and user agent.
func (p *Provider) audit(ctx context.Context, r *http.Request, e store.AuditEvent) {
	e.Time = p.now()
	e.IP = p.ClientIP(r)
	e.UserAgent = userAgent(r)
	if err := p.store.AppendAudit(ctx, e); err != nil {
		p.logger.ErrorContext(ctx, "audit", "type", e.Type, "err", err)
	}
	p.notifier.Notify(e)
}

// ClientIP is the address a request came from: the TCP peer, or, when
// the peer is one of the trusted proxies, the rightmost X-Forwarded-For
// address that is not a trusted proxy. A client can put anything in the
// header it sends; only what the trusted proxies appended counts.
func (p *Provider) ClientIP(r *http.Request) string {
	peer := realclientip.RemoteAddrStrategy{}.ClientIP(nil, r.RemoteAddr)
	if peer == "" { // not host:port (a test request, say)
		peer = strings.Trim(r.RemoteAddr, "[]")
	}
	if len(p.cfg.TrustedProxies) == 0 || !inRanges(peer, p.cfg.TrustedProxies) {
		return peer
	}
	if ip := p.forwarded.ClientIP(r.Header, r.RemoteAddr); ip != "" {
		return ip
	}
	return peer // no address, or a malformed one, past the proxies
}

func inRanges(addr string, ranges []net.IPNet) bool {
	ip, err := realclientip.ParseIPAddr(addr)
	if err != nil {
		return false
	}
	for _, n := range ranges {
		if n.Contains(ip.IP) {
			return true
		}
	}
	return false
}
