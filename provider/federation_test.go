package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/federation"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// fedEnv is a Twofold that signs users in through another Twofold: a
// real OpenID Connect provider on loopback (127.0.0.1, while the
// downstream is on localhost, so the two keep their cookies apart).
type fedEnv struct {
	*mfaEnv
	up     *providertest.Env
	upUser store.User
}

func newFedEnv(t *testing.T, dialect string, tune func(*federation.Upstream)) *fedEnv {
	t.Helper()
	up := providertest.Start(t, dialect, providertest.Options{})
	upUser := up.User(t, "fed@example.com", password, store.PopulationAgent)
	id, secret := up.Client(t, clients.Spec{Name: "Downstream", RedirectURIs: []string{"http://localhost:1/placeholder"},
		FirstParty: true, Scopes: []string{"openid", "email"}})
	u := federation.Upstream{ID: "corp", Name: "Corp SSO", Issuer: up.URL, ClientID: id, ClientSecret: secret,
		Population: store.PopulationAgent, TrustEmail: true}
	if tune != nil {
		tune(&u)
	}
	down := startMFAEnv(t, dialect, providertest.Options{Localhost: true, Upstreams: []federation.Upstream{u}})
	_, _, err := up.Clients.Update(context.Background(), id, func(s *clients.Spec) {
		s.RedirectURIs = []string{down.URL + "/login/federated/callback"}
	})
	require.NoError(t, err)
	return &fedEnv{mfaEnv: down, up: up, upUser: upUser}
}

// toUpstream starts a sign-in at the downstream and presses "Sign in
// with Corp SSO": it returns the upstream's login page.
func (e *fedEnv) toUpstream(t *testing.T, b *providertest.Browser, authURL string) providertest.Page {
	t.Helper()
	page, done := b.Follow(b.Get(authURL), redirectURI)
	require.Empty(t, done)
	require.Contains(t, page.Body, "Sign in with Corp SSO")
	res := b.Post(e.URL+"/login/federated", page.Hidden())
	require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
	require.True(t, strings.HasPrefix(res.Location(), e.up.URL+"/authorize?"), res.Location())
	page, _ = b.Follow(res, "")
	require.True(t, strings.HasPrefix(page.Request.URL.String(), e.up.URL+"/login"), page.Request.URL.String())
	return page
}

// upstreamPassword signs in at the upstream's login page and follows the
// redirects back through the downstream, stopping at the relying party
// or at the first page that is not a redirect.
func (e *fedEnv) upstreamPassword(t *testing.T, b *providertest.Browser, login providertest.Page, email string) (providertest.Page, string) {
	t.Helper()
	form := login.Hidden()
	form.Set("email", email)
	form.Set("password", password)
	return b.Follow(b.Post(e.up.URL+"/login", form), redirectURI)
}

// TestR03_FederatedSignIn: a user signs in through the upstream; the
// account is made at the first sign-in from the upstream's (trusted)
// address and found again by the upstream's subject. The local second
// factor is skipped by default, even where policy requires one, and the
// tokens say so: amr "fed", the federated acr.
func TestR03_FederatedSignIn(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newFedEnv(t, dialect, nil)
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			_, cb := e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
			require.NotEmpty(t, cb)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"fed"}, c.Amr)
			assert.Equal(t, provider.ACRFederated, c.Acr)

			user, err := e.Store.GetFederatedUser(ctx, "corp", e.upUser.ID)
			require.NoError(t, err)
			assert.Equal(t, c.Sub, user.ID)
			assert.Equal(t, "fed@example.com", user.Email)
			assert.Equal(t, store.PopulationAgent, user.Population)

			// Bypass (R03): a local factor and a population policy are not
			// asked after the upstream.
			secret := e.AddTOTP(t, user.ID)
			require.NoError(t, e.Store.SetMFARequirement(ctx, store.PopulationAgent, true, nil, time.Now()))
			e.Provider.ExpirePolicies()
			b2 := providertest.NewBrowser(t)
			authURL, verifier = e.authURL()
			_, cb = e.upstreamPassword(t, b2, e.toUpstream(t, b2, authURL), "fed@example.com")
			require.NotEmpty(t, cb, "no local second step")
			c = e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"fed"}, c.Amr)
			assert.Equal(t, user.ID, c.Sub, "found by the upstream's subject")
			users, err := e.Store.ListUsers(ctx, store.UserFilter{})
			require.NoError(t, err)
			assert.Len(t, users, 2, "ada and the one federated account")

			// The session stands for the policy too: the next authorize
			// needs nothing more.
			authURL, _ = e.authURL()
			_, cb = b2.Follow(b2.Get(authURL), redirectURI)
			require.NotEmpty(t, cb, "the federated session is enough for the policy")

			// A client that asks for two factors gets the local one.
			authURL, verifier = e.authURL(oauth2.SetAuthURLParam("acr_values", provider.ACRMFA))
			page, done := b2.Follow(b2.Get(authURL), redirectURI)
			require.Empty(t, done, "step-up")
			require.True(t, isSecondFactor(page), page.Body)
			cb = b2.Finish(e.submitCode(b2, page, "totp", e.code(t, secret)), redirectURI)
			c = e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"fed", "otp", "mfa"}, c.Amr)
			assert.Equal(t, provider.ACRMFA, c.Acr)

			events, err := e.Store.ListAudit(ctx, store.AuditFilter{UserID: user.ID, Limit: 50})
			require.NoError(t, err)
			assert.Contains(t, auditTypes(events), "user.created")
			assert.Contains(t, auditTypes(events), "login.success")
		})
	}
}

// TestR03_AccountsAreNeverLinkedByEmail: an upstream identity whose
// address is an existing account's signs nobody in (security.md S23);
// one whose address the upstream did not verify makes no account.
func TestR03_AccountsAreNeverLinkedByEmail(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newFedEnv(t, dialect, nil)
			e.up.User(t, "ada@example.com", password, store.PopulationAgent) // ada is a local account downstream
			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL()
			page, cb := e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "ada@example.com")
			assert.Empty(t, cb, "no code")
			assert.Equal(t, http.StatusConflict, page.StatusCode, page.Body)
			assert.Contains(t, page.Body, "exists already")
			ada, err := e.Store.GetUserByEmail(ctx, store.PopulationAgent, "ada@example.com")
			require.NoError(t, err)
			assert.Equal(t, e.user.ID, ada.ID)
			assert.Zero(t, sessionCount(t, e.mfaEnv, b))

			unverified := newFedEnv(t, dialect, func(u *federation.Upstream) { u.TrustEmail = false })
			b = providertest.NewBrowser(t)
			authURL, _ = unverified.authURL()
			page, cb = unverified.upstreamPassword(t, b, unverified.toUpstream(t, b, authURL), "fed@example.com")
			assert.Empty(t, cb)
			assert.Equal(t, http.StatusForbidden, page.StatusCode, page.Body)
			assert.Contains(t, page.Body, "did not confirm your email address")
			_, err = unverified.Store.GetFederatedUser(ctx, "corp", unverified.upUser.ID)
			assert.ErrorIs(t, err, store.ErrNotFound)

			// allowed_domains: other addresses get no account.
			closed := newFedEnv(t, dialect, func(u *federation.Upstream) { u.AllowedDomains = []string{"corp.example"} })
			b = providertest.NewBrowser(t)
			authURL, _ = closed.authURL()
			page, cb = closed.upstreamPassword(t, b, closed.toUpstream(t, b, authURL), "fed@example.com")
			assert.Empty(t, cb)
			assert.Equal(t, http.StatusForbidden, page.StatusCode, page.Body)
			assert.Contains(t, page.Body, "not made here")
			_, err = closed.Store.GetFederatedUser(ctx, "corp", closed.upUser.ID)
			assert.ErrorIs(t, err, store.ErrNotFound)
		})
	}
}

// TestR03_LocalMFAAndTrustedMFA: with local_mfa the user presents their
// local factor after the upstream (the bypass off); with trust_mfa an
// upstream's own "mfa" is kept, at the federated acr, and without it
// dropped.
func TestR03_LocalMFAAndTrustedMFA(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newFedEnv(t, dialect, func(u *federation.Upstream) { u.LocalMFA = true })
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			_, cb := e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
			require.NotEmpty(t, cb, "no local factor yet, none required: signed in")
			user, err := e.Store.GetFederatedUser(ctx, "corp", e.upUser.ID)
			require.NoError(t, err)
			secret := e.AddTOTP(t, user.ID)

			b = providertest.NewBrowser(t)
			authURL, verifier = e.authURL()
			page, cb := e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
			require.Empty(t, cb, "the local factor is asked")
			require.True(t, isSecondFactor(page), page.Body)
			assert.Zero(t, sessionCount(t, e.mfaEnv, b))
			cb = b.Finish(e.submitCode(b, page, "totp", e.code(t, secret)), redirectURI)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"fed", "otp", "mfa"}, c.Amr)
			assert.Equal(t, provider.ACRMFA, c.Acr)

			// The upstream's user signs in there with two factors.
			for _, trust := range []bool{true, false} {
				e := newFedEnv(t, dialect, func(u *federation.Upstream) { u.TrustMFA = trust })
				upSecret := e.up.AddTOTP(t, e.upUser.ID)
				b := providertest.NewBrowser(t)
				authURL, verifier := e.authURL()
				page, cb := e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
				require.Empty(t, cb)
				require.True(t, strings.Contains(page.Body, `action="/login/2fa"`), page.Body)
				code, err := mfa.TOTPCode(upSecret, time.Now())
				require.NoError(t, err)
				form := page.Hidden()
				form.Del("action")
				form.Set("method", "totp")
				form.Set("code", code)
				cb = b.Finish(b.Post(e.up.URL+"/login/2fa", form), redirectURI)
				c := e.tokensFrom(t, cb, verifier)
				if trust {
					assert.Equal(t, []string{"fed", "mfa"}, c.Amr, "the trusted upstream's word")
				} else {
					assert.Equal(t, []string{"fed"}, c.Amr, "an untrusted upstream's mfa is not repeated")
				}
				assert.Equal(t, provider.ACRFederated, c.Acr, "never the local MFA acr")
			}
		})
	}
}

// TestR03_CallbackStateIsBoundAndUsedOnce: a callback with another state,
// from another browser, or replayed signs nobody in.
func TestR03_CallbackStateIsBoundAndUsedOnce(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newFedEnv(t, dialect, nil)
			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL()
			login := e.toUpstream(t, b, authURL)
			form := login.Hidden()
			form.Set("email", "fed@example.com")
			form.Set("password", password)
			// Stop at the downstream's callback to hold its URL.
			res, callback := b.Follow(b.Post(e.up.URL+"/login", form), e.URL+"/login/federated/callback")
			require.NotEmpty(t, callback, res.Body)
			q := mustQuery(t, callback)

			tampered := strings.Replace(callback, "state="+url.QueryEscape(q.Get("state")), "state=forged", 1)
			assert.Equal(t, http.StatusBadRequest, providertest.NewBrowser(t).Get(callback).StatusCode, "another browser")
			p := b.Get(tampered)
			assert.Equal(t, http.StatusBadRequest, p.StatusCode, "another state")
			assert.Zero(t, sessionCount(t, e.mfaEnv, b))

			// The forged try cleared the browser's request: even the
			// right callback now fails (start again), and so does a replay.
			p = b.Get(callback)
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Zero(t, sessionCount(t, e.mfaEnv, b))

			// A callback replayed with the browser's cookies as they were
			// before it: the flow has moved on and the state is spent.
			b2 := providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			login = e.toUpstream(t, b2, authURL)
			form = login.Hidden()
			form.Set("email", "fed@example.com")
			form.Set("password", password)
			res, callback = b2.Follow(b2.Post(e.up.URL+"/login", form), e.URL+"/login/federated/callback")
			require.NotEmpty(t, callback, res.Body)
			down, _ := url.Parse(e.URL)
			before := b2.Jar.Cookies(down)
			_, cb := b2.Follow(b2.Get(callback), redirectURI)
			require.NotEmpty(t, cb, "the first use signs in")
			b3 := providertest.NewBrowser(t)
			b3.Jar.SetCookies(down, before)
			p = b3.Get(callback)
			assert.Equal(t, http.StatusBadRequest, p.StatusCode, "replayed")
			assert.Zero(t, sessionCount(t, e.mfaEnv, b3))
		})
	}
}

// TestR03_R23_FederatedRules: the rules a federated sign-in follows
// beyond the happy path: a client asking for MFA from a user with no
// local factor gets unmet_authentication_requirements; with local_mfa
// a population's policy that comes into force later steps the session
// up; prompt=login is passed upstream; a disabled account and another
// user's re-authentication are refused.
func TestR03_R23_FederatedRules(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newFedEnv(t, dialect, func(u *federation.Upstream) { u.LocalMFA = true })
			e.up.User(t, "other@example.com", password, store.PopulationAgent)

			// acr_values asks for MFA; the user has no local factor.
			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL(oauth2.SetAuthURLParam("acr_values", provider.ACRMFA))
			page, cb := e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
			require.NotEmpty(t, cb, page.Body)
			q := mustQuery(t, cb)
			assert.Equal(t, "unmet_authentication_requirements", q.Get("error"))
			assert.Empty(t, q.Get("code"))

			// Signed in without a factor, then the policy applies: with
			// local_mfa the session is stepped up like a password one.
			b = providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			_, cb = e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
			require.NotEmpty(t, cb)
			require.NoError(t, e.Store.SetMFARequirement(ctx, store.PopulationAgent, true, nil, time.Now()))
			e.Provider.ExpirePolicies()
			authURL, _ = e.authURL()
			page, cb = b.Follow(b.Get(authURL), redirectURI)
			assert.Empty(t, cb, "no code: the policy now needs a second step")
			assert.Contains(t, page.Request.URL.Path, "/login", page.Body)
			require.NoError(t, e.Store.SetMFARequirement(ctx, store.PopulationAgent, false, nil, time.Now()))
			e.Provider.ExpirePolicies()

			// prompt=login: the upstream is asked to sign the user in
			// again, and its login page shows although it has a session.
			authURL, _ = e.authURL(oauth2.SetAuthURLParam("prompt", "login"))
			login, done := b.Follow(b.Get(authURL), redirectURI)
			require.Empty(t, done)
			res := b.Post(e.URL+"/login/federated", login.Hidden())
			require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
			assert.Equal(t, "login", mustQuery(t, res.Location()).Get("prompt"))
			upLogin, _ := b.Follow(res, "")
			assert.True(t, strings.HasPrefix(upLogin.Request.URL.String(), e.up.URL+"/login"), "the upstream asks again: %s", upLogin.Request.URL)

			// Re-authentication on the account page by another upstream
			// user is refused.
			b = providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			_, cb = e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
			require.NotEmpty(t, cb)
			acct := b.Get(e.URL + "/account/security")
			reauth, _ := b.Follow(b.Post(e.URL+"/account/security", url.Values{"csrf": {accountCSRF(t, acct)}, "action": {"reauth"}}), "")
			require.Contains(t, reauth.Body, "Sign in with Corp SSO", reauth.Body)
			res = b.Post(e.URL+"/login/federated", reauth.Hidden())
			upLogin, _ = b.Follow(res, "")
			page, _ = e.upstreamPassword(t, b, upLogin, "other@example.com")
			assert.Equal(t, http.StatusForbidden, page.StatusCode, page.Body)

			// A disabled account cannot sign in through its upstream.
			user, err := e.Store.GetFederatedUser(ctx, "corp", e.upUser.ID)
			require.NoError(t, err)
			require.NoError(t, e.Store.SetUserDisabled(ctx, user.ID, true, time.Now()))
			b = providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			page, cb = e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
			assert.Empty(t, cb)
			assert.Equal(t, http.StatusForbidden, page.StatusCode, page.Body)
		})
	}
}

// TestR03_StateUsedOnceAfterAnError: an upstream's error answer spends
// the state; replayed with the browser's cookies as they were, it is
// refused as used (the flow itself is still at its password step).
func TestR03_StateUsedOnceAfterAnError(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newFedEnv(t, dialect, nil)
			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL()
			page, done := b.Follow(b.Get(authURL), redirectURI)
			require.Empty(t, done)
			res := b.Post(e.URL+"/login/federated", page.Hidden())
			state := mustQuery(t, res.Location()).Get("state")
			require.NotEmpty(t, state)
			down, _ := url.Parse(e.URL)
			before := b.Jar.Cookies(down)
			callback := e.URL + "/login/federated/callback?error=access_denied&iss=" + url.QueryEscape(e.up.URL) + "&state=" + url.QueryEscape(state)
			p := b.Get(callback)
			assert.Equal(t, http.StatusUnauthorized, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, "cancelled or refused")

			b2 := providertest.NewBrowser(t)
			b2.Jar.SetCookies(down, before)
			p = b2.Get(callback)
			assert.Equal(t, http.StatusBadRequest, p.StatusCode, "the state answered once: %s", p.Body)

			// RFC 9207: a callback that names another issuer is refused.
			b3 := providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			page, _ = b3.Follow(b3.Get(authURL), redirectURI)
			res = b3.Post(e.URL+"/login/federated", page.Hidden())
			state = mustQuery(t, res.Location()).Get("state")
			p = b3.Get(e.URL + "/login/federated/callback?code=x&iss=" + url.QueryEscape("https://evil.example.com") + "&state=" + url.QueryEscape(state))
			assert.Equal(t, http.StatusBadRequest, p.StatusCode, p.Body)
			assert.Zero(t, sessionCount(t, e.mfaEnv, b3))

			// The upstream advertises RFC 9207: an answer without iss is
			// refused too.
			b4 := providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			page, _ = b4.Follow(b4.Get(authURL), redirectURI)
			res = b4.Post(e.URL+"/login/federated", page.Hidden())
			state = mustQuery(t, res.Location()).Get("state")
			p = b4.Get(e.URL + "/login/federated/callback?code=x&state=" + url.QueryEscape(state))
			assert.Equal(t, http.StatusBadRequest, p.StatusCode, p.Body)
		})
	}
}

// TestR03_UpstreamSignInLeavesOneTimePassword: an account an admin gave a
// one-time password signs in through its upstream without being asked
// to replace it (no password was used here), with or without a local
// second factor; the one-time password stays to be replaced.
func TestR03_UpstreamSignInLeavesOneTimePassword(t *testing.T) {
	ctx := context.Background()
	e := newFedEnv(t, "sqlite", func(u *federation.Upstream) { u.LocalMFA = true })
	b := providertest.NewBrowser(t)
	authURL, _ := e.authURL()
	_, cb := e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
	require.NotEmpty(t, cb)
	user, err := e.Store.GetFederatedUser(ctx, "corp", e.upUser.ID)
	require.NoError(t, err)
	require.NoError(t, e.Store.UpdateUserPassword(ctx, user.ID, user.PasswordHash, true, time.Now()))

	b = providertest.NewBrowser(t)
	authURL, _ = e.authURL()
	_, cb = e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
	assert.NotEmpty(t, cb, "no factor, none required: signed in, not sent to /login/password")

	secret := e.AddTOTP(t, user.ID)
	b = providertest.NewBrowser(t)
	authURL, _ = e.authURL()
	page, cb := e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
	require.Empty(t, cb)
	require.True(t, isSecondFactor(page), page.Body)
	cb = b.Finish(e.submitCode(b, page, "totp", e.code(t, secret)), redirectURI)
	assert.NotEmpty(t, cb, "after the local factor: signed in")
	after, err := e.Store.GetUser(ctx, user.ID)
	require.NoError(t, err)
	assert.True(t, after.PasswordMustChange, "the one-time password stays to be replaced")
}
