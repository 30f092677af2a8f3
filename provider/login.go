package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/store"
)

type loginPage struct {
	Flow, CSRF, ClientName, Email, Population, Error string
}

// handleLoginPage shows the password step of a flow.
func (p *Provider) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("flow")
	f, err := p.loadFlow(r, id, store.FlowPassword)
	if err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "This sign-in link has expired", "Start again from the application you were signing in to.", "")
		return
	}
	form, _ := url.ParseQuery(f.AuthorizeForm)
	p.renderLogin(w, r, http.StatusOK, f, loginPage{Email: form.Get("login_hint")})
}

func (p *Provider) renderLogin(w http.ResponseWriter, r *http.Request, status int, f store.LoginFlow, page loginPage) {
	page.Flow = f.ID
	page.CSRF = p.csrfToken("login", f.ID)
	if c, err := p.store.GetClient(r.Context(), f.ClientID); err == nil {
		page.ClientName = c.Name
	}
	if err := p.pages.Render(w, status, "login.html", page); err != nil {
		p.logger.ErrorContext(r.Context(), "render login", "err", err)
	}
}

// badCredentials is the one message for every failed password step: an
// unknown email, a wrong password and a disabled account look alike.
const badCredentials = "Wrong email or password."

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
		p.errorPage(w, r, http.StatusBadRequest, "This sign-in link has expired", "Start again from the application you were signing in to.", "")
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
	user, err := p.authenticate(ctx, pop, email, r.PostForm.Get("password"))
	if err != nil {
		if !errors.Is(err, accounts.ErrBadCredentials) {
			p.logger.ErrorContext(ctx, "authenticate", "err", err)
		}
		p.audit(ctx, r, store.AuditEvent{Type: "login.failure", UserID: user.ID, ClientID: f.ClientID, Detail: `{"step":"password"}`})
		page.Error = badCredentials
		p.renderLogin(w, r, http.StatusUnauthorized, f, page)
		return
	}

	now := p.now().UTC()
	// A new session id at every sign-in: a cookie planted before login
	// never becomes an authenticated session (session fixation).
	cookie := randomToken()
	sess := store.Session{
		ID: sessionID(cookie), UserID: user.ID, AMR: store.Strings{"pwd"}, ACR: ACRPassword,
		AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(p.cfg.SessionLifespan),
	}
	next := store.FlowDone
	if p.flowNeedsConsent(ctx, f, user.ID) {
		next = store.FlowConsent
	}
	from := f.State
	f.State, f.UserID, f.SessionID, f.Methods, f.AuthTime = next, user.ID, sess.ID, sess.AMR, &now
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		if old := p.cookie(r, sessionCookie); old != "" {
			if err := p.store.DeleteSession(ctx, sessionID(old)); err != nil {
				return err
			}
		}
		if err := p.store.CreateSession(ctx, sess); err != nil {
			return err
		}
		return p.store.UpdateLoginFlow(ctx, f, from)
	})
	if err != nil {
		// ErrConflict: the same form was submitted twice; only one counts.
		p.logger.InfoContext(ctx, "login step refused", "err", err)
		p.errorPage(w, r, http.StatusConflict, "This sign-in link has expired", "Start again from the application you were signing in to.", "")
		return
	}
	p.setCookie(w, sessionCookie, cookie, p.cfg.SessionLifespan)
	p.audit(ctx, r, store.AuditEvent{Type: "login.success", UserID: user.ID, ClientID: f.ClientID, Detail: `{"amr":["pwd"]}`})
	p.continueFlow(w, r, f, sess, user)
}

// authenticate checks a password. Without a population the account is
// looked up among agents, then contacts; either way exactly one password
// hash is computed, so timing does not tell whether an account exists.
func (p *Provider) authenticate(ctx context.Context, pop store.Population, email, password string) (store.User, error) {
	if pop == "" {
		pop = store.PopulationAgent
		if key, err := accounts.NormalizeEmail(email); err == nil {
			if _, err := p.store.GetUserByEmail(ctx, store.PopulationAgent, key); errors.Is(err, store.ErrNotFound) {
				pop = store.PopulationContact
			}
		}
	}
	return p.accounts.Authenticate(ctx, pop, email, password)
}

func (p *Provider) flowNeedsConsent(ctx context.Context, f store.LoginFlow, userID string) bool {
	ar, err := p.resumeForm(f)
	if err != nil {
		return true
	}
	c, err := p.store.GetClient(ctx, f.ClientID)
	if err != nil || c.FirstParty {
		return err != nil
	}
	if slices.Contains(promptValues(ar), "consent") {
		return true
	}
	granted, err := p.store.GetConsent(ctx, userID, c.ID)
	if err != nil {
		return true
	}
	for _, s := range fosite.RemoveEmpty(strings.Split(ar.Get("scope"), " ")) {
		if !slices.Contains(granted.Scopes, s) {
			return true
		}
	}
	return false
}

func (p *Provider) resumeForm(f store.LoginFlow) (url.Values, error) {
	return url.ParseQuery(f.AuthorizeForm)
}

// continueFlow sends the browser to the flow's next step, or completes
// the authorization request when the flow is done.
func (p *Provider) continueFlow(w http.ResponseWriter, r *http.Request, f store.LoginFlow, sess store.Session, user store.User) {
	switch f.State {
	case store.FlowConsent:
		http.Redirect(w, r, "/consent?flow="+url.QueryEscape(f.ID), http.StatusSeeOther)
	case store.FlowDone:
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

// audit records an event with the request's address and user agent.
func (p *Provider) audit(ctx context.Context, r *http.Request, e store.AuditEvent) {
	e.Time = p.now()
	e.IP = clientIP(r)
	e.UserAgent = r.UserAgent()
	if len(e.UserAgent) > 512 {
		e.UserAgent = e.UserAgent[:512]
	}
	if err := p.store.AppendAudit(ctx, e); err != nil {
		p.logger.ErrorContext(ctx, "audit", "type", e.Type, "err", err)
	}
}

// clientIP is the peer address; X-Forwarded-For is not trusted until a
// trusted-proxy list exists.
func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}
