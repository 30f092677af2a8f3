package provider

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/federation"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

// federatedCallback is where upstreams send the browser back (R03).
const federatedCallback = "/login/federated/callback"

// fedCookie carries the upstream sign-in a browser is in: sealed, bound
// to its flow, used once.
const fedCookie = "twofold_federation"

// fedRequest is what the callback needs of the request it answers.
type fedRequest struct {
	Flow, Upstream, State, Nonce, Verifier string
	Expires                                time.Time
	// Reauth: the user must sign in again upstream (prompt=login,
	// max_age, a re-authentication), no earlier than Started.
	Reauth  bool
	Started time.Time
}

type upstreamButton struct{ ID, Name string }

// bypasses tells whether a sign-in through upstream skips the local
// second factor (R03): the upstream's setting now, not when it signed in.
func (p *Provider) bypasses(upstream string) bool {
	c := p.upstreams[upstream]
	return c != nil && !c.Upstream.LocalMFA
}

// upstreamButtons are the login page's "Sign in with …" buttons.
func (p *Provider) upstreamButtons() []upstreamButton {
	out := make([]upstreamButton, 0, len(p.upstreamOrder))
	for _, id := range p.upstreamOrder {
		out = append(out, upstreamButton{ID: id, Name: p.upstreams[id].Upstream.Name})
	}
	return out
}

// handleFederatedStart sends the browser of a flow at its password step
// to an upstream provider, with a fresh state, nonce and PKCE verifier.
func (p *Provider) handleFederatedStart(w http.ResponseWriter, r *http.Request) {
	f, ok := p.passwordStep(w, r)
	if !ok {
		return
	}
	c := p.upstreams[r.PostForm.Get("upstream")]
	if c == nil {
		p.errorPage(w, r, http.StatusBadRequest, "Unknown sign-in service", "Go back and choose another way to sign in.", "")
		return
	}
	now := p.now()
	fr := fedRequest{Flow: f.ID, Upstream: c.Upstream.ID, State: randomToken(), Nonce: randomToken(),
		Verifier: oauth2.GenerateVerifier(), Expires: now.Add(10 * time.Minute), Started: now}
	// A sign-in that must be fresh here must be fresh upstream: the
	// session's auth_time will be the upstream's.
	form, _ := url.ParseQuery(f.AuthorizeForm)
	var opts []oauth2.AuthCodeOption
	if f.UserID != "" || slices.Contains(promptValues(form), "login") || form.Has("max_age") {
		fr.Reauth = true
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	}
	to, err := c.AuthURL(r.Context(), fr.State, fr.Nonce, fr.Verifier, opts...)
	if err != nil {
		p.logger.ErrorContext(r.Context(), "upstream unreachable", "upstream", c.Upstream.ID, "err", err)
		p.errorPage(w, r, http.StatusBadGateway, c.Upstream.Name+" cannot be reached", "Try again in a minute, or sign in with your password.", "")
		return
	}
	data, _ := json.Marshal(fr)
	p.setCookie(w, fedCookie, base64.RawURLEncoding.EncodeToString(p.box.Seal(data, "federation:"+f.ID)), 10*time.Minute)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// handleFederatedCallback finishes an upstream sign-in: the state must
// be this browser's and unused, the code's ID token must verify with
// the nonce sent. The account is the one linked to the upstream's
// subject; a first sign-in creates it from a verified email address,
// unless an account has that address already (no linking by email:
// security.md S23). Federated sign-ins skip the local second factor
// unless the upstream is set to ask, or the client asks for two factors
// (R03, R23); the tokens say "fed".
func (p *Provider) handleFederatedCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	flowID := p.cookie(r, flowCookie)
	sealed, _ := base64.RawURLEncoding.DecodeString(p.cookie(r, fedCookie))
	p.clearCookie(w, fedCookie)
	var fr fedRequest
	data, err := p.box.Open(sealed, "federation:"+flowID)
	if err != nil || json.Unmarshal(data, &fr) != nil || !p.now().Before(fr.Expires) ||
		subtle.ConstantTimeCompare([]byte(fr.State), []byte(r.URL.Query().Get("state"))) != 1 {
		p.expired(w, r)
		return
	}
	f, err := p.loadFlow(r, fr.Flow, store.FlowPassword)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	c := p.upstreams[fr.Upstream]
	if c == nil {
		p.expired(w, r)
		return
	}
	// The state answers once, even if the flow were sent back to it.
	if err := p.store.UseJTI(ctx, "federation:"+fr.State, fr.Expires, p.now()); err != nil {
		p.expired(w, r)
		return
	}
	up := c.Upstream
	fail := func(status int, msg string, err error) {
		p.logger.InfoContext(ctx, "federated sign-in refused", "upstream", up.ID, "err", err)
		p.audit(ctx, r, store.AuditEvent{Type: "login.failure", ClientID: f.ClientID, Detail: jsonObject("upstream", up.ID)})
		p.errorPage(w, r, status, "Sign-in through "+up.Name+" failed", msg, "")
	}
	// RFC 9207: an upstream that names itself must be the one asked
	// (every upstream shares this callback: a mix-up defence).
	iss := r.URL.Query().Get("iss")
	if (iss != "" && iss != up.Issuer) || (iss == "" && c.IssInCallback(ctx)) {
		fail(http.StatusBadRequest, "Start again from the application.", errors.New("callback iss is missing or another issuer's: "+iss))
		return
	}
	if e := r.URL.Query().Get("error"); e != "" {
		fail(http.StatusUnauthorized, "The sign-in at "+up.Name+" was cancelled or refused. Start again from the application.", errors.New(e))
		return
	}
	id, err := c.Exchange(ctx, r.URL.Query().Get("code"), fr.Verifier, fr.Nonce)
	if err != nil {
		fail(http.StatusUnauthorized, "Start again from the application.", err)
		return
	}
	user, err := p.federatedUser(ctx, r, up, id)
	switch {
	case errors.Is(err, errNoAccount):
		fail(http.StatusConflict, "An account with this email address exists already. Sign in with your password; "+
			"an administrator can tell you more.", err)
		return
	case errors.Is(err, errNotAllowed):
		fail(http.StatusForbidden, "Accounts are not made here for addresses like yours. Ask your administrator.", err)
		return
	case errors.Is(err, errUnverified):
		fail(http.StatusForbidden, up.Name+" did not confirm your email address, so no account can be made for you.", err)
		return
	case err != nil:
		p.logger.ErrorContext(ctx, "federated user", "err", err)
		p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
		return
	}
	if user.Disabled || (f.UserID != "" && f.UserID != user.ID) {
		fail(http.StatusForbidden, "This account cannot sign in here.", errors.New("disabled, or re-authentication by another user"))
		return
	}
	// Upstream clocks differ: allow a minute of skew either way.
	if fr.Reauth && id.AuthTime.Before(fr.Started.Add(-time.Minute)) {
		fail(http.StatusUnauthorized, up.Name+" did not ask you to sign in again. Start again from the application.",
			errors.New("upstream auth_time before the re-authentication was asked"))
		return
	}
	methods := []string{mfa.AMRFederated}
	if up.TrustMFA && slices.Contains(id.AMR, mfa.AMRMFA) {
		methods = append(methods, mfa.AMRMFA)
	}
	at := id.AuthTime.UTC()
	if now := p.now().UTC(); at.After(now) {
		at = now // never later than this server's clock
	}
	f.UserID, f.AuthTime, f.Methods, f.Upstream = user.ID, &at, store.Strings(methods), up.ID
	if amr, _ := mfa.Claims(methods); mfa.IsMFA(amr) {
		p.establish(w, r, f, user, methods)
		return
	}
	asked := p.mfaAsked(ctx, f)
	if asked {
		// The client asks for two factors: a local one, never one set up
		// right after the upstream alone (R23; cf. Keycloak CVE-2023-3597).
		factors, err := p.confirmedFactors(ctx, user.ID)
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
			return
		}
		if !slices.ContainsFunc(factors, func(fa store.Factor) bool { return fa.Kind != store.FactorEmail }) {
			p.unmet(w, r, f, "The user signed in through "+up.ID+" and has no local second factor.")
			return
		}
	}
	if up.LocalMFA || asked {
		// The local second step, as after a password (enrolment too,
		// when the population's policy needs it and the upstream does
		// not skip it).
		p.afterFirstStep(w, r, f, user, "login.federated_ok")
		return
	}
	p.establish(w, r, f, user, methods)
}

var (
	errNoAccount  = errors.New("an account has this email already: no linking by email")
	errUnverified = errors.New("the upstream did not verify the email address")
	errNotAllowed = errors.New("the address's domain is not one this upstream makes accounts for")
)

// federatedUser is the account of an upstream identity, made at its
// first sign-in in the upstream's population.
func (p *Provider) federatedUser(ctx context.Context, r *http.Request, up federation.Upstream, id federation.Identity) (store.User, error) {
	u, err := p.store.GetFederatedUser(ctx, up.ID, id.Subject)
	if !errors.Is(err, store.ErrNotFound) {
		return u, err
	}
	if !id.EmailVerified {
		return store.User{}, errUnverified
	}
	if !up.MayCreate(id.Email) {
		return store.User{}, errNotAllowed
	}
	key, err := accounts.NormalizeEmail(id.Email)
	if err != nil {
		return store.User{}, errUnverified
	}
	// An unusable password: the account signs in through its upstream
	// (or gets a password from an admin).
	hash, err := p.accounts.Hasher.Hash(randomToken())
	if err != nil {
		return store.User{}, err
	}
	role := store.RoleContact
	if up.Population == store.PopulationAgent {
		role = store.RoleAgent
	}
	now := p.now().UTC()
	u = store.User{ID: accounts.NewID(), Email: id.Email, EmailKey: key, Population: up.Population, Role: role,
		PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	err = p.store.CreateFederatedUser(ctx, u, up.ID, id.Subject)
	if errors.Is(err, store.ErrAlreadyExists) {
		// The email is another account's, or a racing first sign-in of
		// the same identity made it: that one is found now.
		if got, gerr := p.store.GetFederatedUser(ctx, up.ID, id.Subject); gerr == nil {
			return got, nil
		}
		return store.User{}, errNoAccount
	}
	if err != nil {
		return store.User{}, err
	}
	p.audit(ctx, r, store.AuditEvent{Type: "user.created", UserID: u.ID, Detail: jsonObject("upstream", up.ID)})
	return u, nil
}
