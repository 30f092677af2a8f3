package provider_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestPromptAndMaxAge covers prompt=none, prompt=login, max_age and
// id_token_hint inside an existing SSO session.
func TestPromptAndMaxAge(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env := providertest.Start(t, dialect, providertest.Options{})
			env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true})
			b := providertest.NewBrowser(t)

			// Not signed in: prompt=none answers login_required with state.
			longState := strings.Repeat("s", 128)
			p := b.Get(r.conf.AuthCodeURL(longState, oauth2.SetAuthURLParam("prompt", "none"), noPKCE()))
			q := mustQuery(t, p.Location())
			assert.Equal(t, "login_required", q.Get("error"))
			assert.Equal(t, longState, q.Get("state"))

			_, first, _ := r.login(t, b, "ada@example.com")
			c1 := claimsOf(t, first)

			// Signed in: prompt=none and id_token_hint succeed silently.
			silent := func(opts ...oauth2.AuthCodeOption) idClaims {
				t.Helper()
				verifier := oauth2.GenerateVerifier()
				opts = append(opts, oauth2.S256ChallengeOption(verifier), oidcNonce("n-silent-1"))
				p := b.Get(r.conf.AuthCodeURL("st-silent-1", opts...))
				require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
				q := mustQuery(t, p.Location())
				require.NotEmpty(t, q.Get("code"), p.Location())
				_, idt := r.exchange(t, q.Get("code"), verifier)
				return claimsOf(t, idt)
			}
			c2 := silent(oauth2.SetAuthURLParam("prompt", "none"))
			assert.Equal(t, c1.Sub, c2.Sub)
			assert.Equal(t, c1.AuthTime, c2.AuthTime, "same session, same auth_time")
			c3 := silent(oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("id_token_hint", rawIDToken(t, r, b)))
			assert.Equal(t, c1.Sub, c3.Sub)
			c4 := silent(oauth2.SetAuthURLParam("max_age", "10000"))
			assert.Equal(t, c1.AuthTime, c4.AuthTime, "max_age not reached: no new sign-in")
			// A max_age that is not a number of seconds is an error, not
			// an absent max_age (fosite reads it as 0, "none").
			for _, bad := range []string{"-1", "+5", "1e3", "ten"} {
				p := b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("max_age", bad), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
				q := mustQuery(t, p.Location())
				assert.Equal(t, "invalid_request", q.Get("error"), "max_age=%s", bad)
				assert.Empty(t, q.Get("code"))
			}
			// So is a claims parameter whose essential acr cannot be read.
			for _, bad := range []string{`{"id_token":{"acr":{"essential":"yes","value":"urn:twofold:acr:mfa"}}}`, `{"id_token":`} {
				p := b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("claims", bad), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
				q := mustQuery(t, p.Location())
				assert.Equal(t, "invalid_request", q.Get("error"), "claims=%s", bad)
				assert.Empty(t, q.Get("code"))
			}

			// prompt=login and an elapsed max_age ask for the password again
			// inside the session and give a later auth_time.
			time.Sleep(1100 * time.Millisecond)
			_, again, _ := r.login(t, b, "ada@example.com", oauth2.SetAuthURLParam("prompt", "login"))
			c5 := claimsOf(t, again)
			assert.Greater(t, c5.AuthTime, c1.AuthTime)
			time.Sleep(1100 * time.Millisecond)
			_, aged, _ := r.login(t, b, "ada@example.com", oauth2.SetAuthURLParam("max_age", "1"))
			assert.Greater(t, claimsOf(t, aged).AuthTime, c5.AuthTime)

			// max_age=1 with prompt=none after the wait cannot be met silently.
			time.Sleep(1100 * time.Millisecond)
			p = b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("max_age", "1"), noPKCE()))
			assert.Equal(t, "login_required", mustQuery(t, p.Location()).Get("error"))

			// An id_token_hint for another user with prompt=none is refused.
			env.User(t, "bo@example.com", password, store.PopulationAgent)
			b2 := providertest.NewBrowser(t)
			r.login(t, b2, "bo@example.com")
			p = b2.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"),
				oauth2.SetAuthURLParam("id_token_hint", rawIDToken(t, r, b)), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			assert.Equal(t, "login_required", mustQuery(t, p.Location()).Get("error"))
		})
	}
}

// rawIDToken gets a fresh ID token for the browser's current session.
func rawIDToken(t *testing.T, r *rp, b *providertest.Browser) string {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	p := b.Get(r.conf.AuthCodeURL("st-hint-123", oauth2.S256ChallengeOption(verifier), oidcNonce("n-hint-123")))
	tok, _ := r.exchange(t, mustQuery(t, p.Location()).Get("code"), verifier)
	return tok.Extra("id_token").(string)
}

// TestConsent: third-party clients ask once per scope set, remember it,
// and a denial reaches the client as access_denied.
func TestConsent(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	env.User(t, "ada@example.com", password, store.PopulationAgent)
	r := newRP(t, env, clients.Spec{}) // third party
	b := providertest.NewBrowser(t)

	// Sign in; the consent page appears; deny.
	p, _ := b.Follow(b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), redirectURI)
	form := p.Hidden()
	form.Set("email", "ada@example.com")
	form.Set("password", password)
	p, _ = b.Follow(b.Post(env.URL+"/login", form), redirectURI)
	require.Contains(t, p.Request.URL.Path, "/consent")
	assert.Contains(t, p.Body, "Test RP")
	form = p.Hidden()
	form.Set("decision", "deny")
	deny := b.Post(env.URL+"/consent", form)
	q := mustQuery(t, deny.Location())
	assert.Equal(t, "access_denied", q.Get("error"))
	assert.Equal(t, "st-12345678", q.Get("state"))

	// prompt=none without consent: consent_required.
	p = b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	assert.Equal(t, "consent_required", mustQuery(t, p.Location()).Get("error"))

	// Allow once; the next request goes through without asking.
	r.login(t, b, "ada@example.com")
	p = b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	assert.NotEmpty(t, mustQuery(t, p.Location()).Get("code"), "consent remembered")
	// prompt=consent asks again.
	p, _ = b.Follow(b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "consent"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), redirectURI)
	assert.Contains(t, p.Request.URL.Path, "/consent")
}

// TestSessionsAndCSRF covers security.md §3.4 and §3.5: cookie flags,
// a new session id at each sign-in, CSRF and flow binding, and one
// message for every failed sign-in.
func TestSessionsAndCSRF(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	env.User(t, "ada@example.com", password, store.PopulationAgent)
	off := env.User(t, "off@example.com", password, store.PopulationAgent)
	require.NoError(t, env.Store.SetUserDisabled(context.Background(), off.ID, true, time.Now()))
	r := newRP(t, env, clients.Spec{FirstParty: true})

	startLogin := func(b *providertest.Browser) providertest.Page {
		p, _ := b.Follow(b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), redirectURI)
		require.Contains(t, p.Request.URL.Path, "/login")
		return p
	}

	t.Run("cookie flags", func(t *testing.T) {
		b := providertest.NewBrowser(t)
		resp := b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		c := resp.Header.Get("Set-Cookie")
		assert.Contains(t, c, "HttpOnly")
		assert.Contains(t, c, "SameSite=Lax")
		assert.Contains(t, c, "Path=/")
		assert.NotContains(t, c, "Domain=")
		assert.Equal(t, "no-store", b.Get(resp.Location()).Header.Get("Cache-Control"), "pages are not cached")
	})
	t.Run("https cookies are __Host- and Secure", func(t *testing.T) {
		secure := providertest.Start(t, "sqlite", providertest.Options{Issuer: "https://idp.example.com"})
		id, _ := secure.Client(t, clients.Spec{Name: "x", RedirectURIs: []string{"https://app.example.com/cb"}, FirstParty: true})
		resp := providertest.NewBrowser(t).Get(secure.ServerURL() + "/authorize?" + withChallenge(url.Values{
			"client_id": {id}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"},
			"redirect_uri": {"https://app.example.com/cb"}}).Encode())
		c := resp.Header.Get("Set-Cookie")
		assert.True(t, strings.HasPrefix(c, "__Host-twofold_flow="), c)
		assert.Contains(t, c, "Secure")
	})
	t.Run("session fixation", func(t *testing.T) {
		b := providertest.NewBrowser(t)
		u, _ := url.Parse(env.URL)
		b.Jar.SetCookies(u, []*http.Cookie{{Name: "twofold_session", Value: "planted-by-attacker", Path: "/"}})
		r.login(t, b, "ada@example.com")
		for _, c := range b.Jar.Cookies(u) {
			if c.Name == "twofold_session" {
				assert.NotEqual(t, "planted-by-attacker", c.Value, "a new session id at sign-in")
			}
		}
		first := sessionCookie(b, u)
		r.login(t, b, "ada@example.com", oauth2.SetAuthURLParam("prompt", "login"))
		assert.NotEqual(t, first, sessionCookie(b, u), "and again at re-authentication")
		_, err := env.Store.GetSession(context.Background(), hashHex(first))
		assert.ErrorIs(t, err, store.ErrNotFound, "the old session is gone")
	})
	t.Run("csrf", func(t *testing.T) {
		b := providertest.NewBrowser(t)
		p := startLogin(b)
		for _, csrf := range []string{"", "wrong", p.Hidden().Get("csrf") + "x"} {
			form := p.Hidden()
			form.Set("csrf", csrf)
			form.Set("email", "ada@example.com")
			form.Set("password", password)
			res := b.Post(env.URL+"/login", form)
			assert.Equal(t, http.StatusForbidden, res.StatusCode)
			assert.Empty(t, res.Header.Get("Set-Cookie"), "no session")
		}
		// A token from one flow does not work for another.
		b2 := providertest.NewBrowser(t)
		p2 := startLogin(b2)
		form := p2.Hidden()
		form.Set("csrf", p.Hidden().Get("csrf"))
		form.Set("email", "ada@example.com")
		form.Set("password", password)
		assert.Equal(t, http.StatusForbidden, b2.Post(env.URL+"/login", form).StatusCode)
	})
	t.Run("flow bound to its browser", func(t *testing.T) {
		victim := providertest.NewBrowser(t)
		p := startLogin(victim)
		form := p.Hidden()
		form.Set("email", "ada@example.com")
		form.Set("password", password)
		// Another browser submits the victim's flow and csrf: refused.
		res := providertest.NewBrowser(t).Post(env.URL+"/login", form)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode)
		assert.Empty(t, res.Header.Get("Location"))
	})
	t.Run("replayed login form", func(t *testing.T) {
		b := providertest.NewBrowser(t)
		p := startLogin(b)
		form := p.Hidden()
		form.Set("email", "ada@example.com")
		form.Set("password", password)
		b.Finish(b.Post(env.URL+"/login", form), redirectURI)
		res := b.Post(env.URL+"/login", form)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, "the flow is done: a replay issues nothing")
		assert.Empty(t, res.Header.Get("Location"))
	})
	t.Run("no account enumeration", func(t *testing.T) {
		var bodies []string
		for _, email := range []string{"ada@example.com", "nobody@example.com", "off@example.com", "not-an-email"} {
			b := providertest.NewBrowser(t)
			p := startLogin(b)
			form := p.Hidden()
			form.Set("email", email)
			form.Set("password", "wrong password!")
			if email == "off@example.com" {
				form.Set("password", password) // right password, disabled account
			}
			res := b.Post(env.URL+"/login", form)
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode, email)
			body := strings.ReplaceAll(res.Body, p.Hidden().Get("flow"), "")
			body = strings.ReplaceAll(body, p.Hidden().Get("csrf"), "")
			body = strings.ReplaceAll(body, `value="`+email+`"`, "")
			bodies = append(bodies, body)
		}
		for _, b := range bodies[1:] {
			assert.Equal(t, bodies[0], b, "the same page for every failure")
		}
		assert.Contains(t, bodies[0], "Wrong email or password.")
	})
	t.Run("login_hint prefills the email", func(t *testing.T) {
		b := providertest.NewBrowser(t)
		p, _ := b.Follow(b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("login_hint", "ada@example.com"), oauth2.SetAuthURLParam("ui_locales", "se"),
			oauth2.SetAuthURLParam("display", "popup"), oauth2.SetAuthURLParam("extra", "foobar"))), redirectURI)
		assert.Contains(t, p.Body, `value="ada@example.com"`)
	})
	t.Run("disabled user's session ends", func(t *testing.T) {
		bo := env.User(t, "bo@example.com", password, store.PopulationAgent)
		b := providertest.NewBrowser(t)
		r.login(t, b, "bo@example.com")
		require.NoError(t, env.Store.SetUserDisabled(context.Background(), bo.ID, true, time.Now()))
		p := b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		assert.Equal(t, "login_required", mustQuery(t, p.Location()).Get("error"))
	})
}

func sessionCookie(b *providertest.Browser, u *url.URL) string {
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == "twofold_session" {
			return c.Value
		}
	}
	return ""
}

// TestRedirectURIVectors: against a registered https URI, every variant of
// security.md §3.6 gets an error page and no redirect (S24).
func TestRedirectURIVectors(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	registered := "https://app.example.com/cb"
	id, _ := env.Client(t, clients.Spec{Name: "x", RedirectURIs: []string{registered, "http://127.0.0.1/loop", "https://127.0.0.1/sec"}, FirstParty: true})
	vectors := []string{
		"https://APP.example.com/cb", "https://app.example.com/CB", "https://app.example.com/cb/",
		"https://app.example.com/cb?x=1", "https://app.example.com/cb#f", "https://app.example.com/cb/../evil",
		"https://app.example.com/cb/..%2Fevil", "https://app.example.com/cb%252f", "https://app.example.com/cb..;/",
		"https://app.example.com.evil.tld/cb", "https://app.example.com@evil.tld/cb", "http://app.example.com/cb",
		"https://app.example.com:8443/cb", "https://xn--pp-8ba.example.com/cb", "https://app.example.com/cb%09",
		"https://app.example.com/cb%0a", "https://app.example.com/cb%00", "javascript:alert(1)", "data:text/html,x",
		"http://127.0.0.1/other", "http://localhost/loop",
		// fosite's loopback rule takes these; the exact match does not.
		"http://u:p@127.0.0.1:5/loop", "http://127.0.0.1:5/lo%6Fp", "http://127.0.0.1:0/loop",
		"http://127.0.0.1:/loop", "http://127.0.0.1:5/sec",
	}
	for _, v := range vectors {
		t.Run(v, func(t *testing.T) {
			p := providertest.NewBrowser(t).Get(env.URL + "/authorize?" + url.Values{
				"client_id": {id}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"},
				"redirect_uri": {v}}.Encode())
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Empty(t, p.Header.Get("Location"))
		})
	}
	// The loopback exception of RFC 8252 §7.3: any port, exact path.
	p := providertest.NewBrowser(t).Get(env.URL + "/authorize?" + withChallenge(url.Values{
		"client_id": {id}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"},
		"redirect_uri": {"http://127.0.0.1:53117/loop"}}).Encode())
	assert.Equal(t, http.StatusSeeOther, p.StatusCode)
	assert.Contains(t, p.Location(), "/login?flow=")
}

// TestResponseModesAndPost: form_post answers with an auto-submitting
// form; the authorization request may itself be a form POST.
func TestResponseModesAndPost(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	env.User(t, "ada@example.com", password, store.PopulationAgent)
	r := newRP(t, env, clients.Spec{FirstParty: true})
	b := providertest.NewBrowser(t)
	r.login(t, b, "ada@example.com")

	verifier := oauth2.GenerateVerifier()
	p := b.Get(r.conf.AuthCodeURL("st-formpost", oauth2.SetAuthURLParam("response_mode", "form_post"), oauth2.S256ChallengeOption(verifier)))
	require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
	assert.Contains(t, p.Body, `action="`+redirectURI+`"`)
	assert.Contains(t, p.Body, `name="code"`)
	assert.Contains(t, p.Body, `value="st-formpost"`)
	assert.NotContains(t, p.Header.Get("Location"), "code=", "nothing in the query")

	u, _ := url.Parse(r.conf.AuthCodeURL("st-post-123", oauth2.S256ChallengeOption(verifier)))
	res := b.Post(env.URL+"/authorize", u.Query())
	require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
	assert.NotEmpty(t, mustQuery(t, res.Location()).Get("code"))
}

// TestKeysRotateAndES256: ES256 on request; after a rotation the JWKS
// still publishes the old key and tokens signed with it still verify.
func TestKeysRotateAndES256(t *testing.T) {
	ctx := context.Background()
	env := providertest.Start(t, "sqlite", providertest.Options{})
	env.User(t, "ada@example.com", password, store.PopulationAgent)
	es := newRP(t, env, clients.Spec{FirstParty: true, IDTokenAlg: "ES256"}, oidc.ES256)
	b := providertest.NewBrowser(t)
	tok, _, _ := es.login(t, b, "ada@example.com")
	oldES := header(t, tok.Extra("id_token").(string))
	assert.Equal(t, "ES256", oldES["alg"])

	rs := newRP(t, env, clients.Spec{FirstParty: true})
	old, _, _ := rs.login(t, b, "ada@example.com")
	oldKid := header(t, old.Extra("id_token").(string))["kid"].(string)

	_, err := env.Provider.Keys().Rotate(ctx, provider.RS256)
	require.NoError(t, err)
	jwks := b.Get(env.URL + "/jwks").Body
	assert.Contains(t, jwks, oldKid, "the previous key stays published")

	fresh, _, _ := rs.login(t, b, "ada@example.com")
	newKid := header(t, fresh.Extra("id_token").(string))["kid"].(string)
	assert.NotEqual(t, oldKid, newKid, "new tokens use the new key")
	// A verifier that fetches the JWKS again checks both.
	p, err := oidc.NewProvider(ctx, env.URL)
	require.NoError(t, err)
	v := p.Verifier(&oidc.Config{ClientID: rs.conf.ClientID})
	_, err = v.Verify(ctx, old.Extra("id_token").(string))
	require.NoError(t, err)
	// An ID token hint signed with the retired key still works.
	q := mustQuery(t, b.Get(rs.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"),
		oauth2.SetAuthURLParam("id_token_hint", old.Extra("id_token").(string)), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))).Location())
	assert.NotEmpty(t, q.Get("code"), q.Get("error_description"))
}

func hashHex(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:])
}

// TestClaimsParameter: standard claims asked for by name land where the
// client asked, and scope claims stay out of the ID token.
func TestClaimsParameter(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	user := env.User(t, "ada@example.com", password, store.PopulationAgent)
	r := newRP(t, env, clients.Spec{FirstParty: true, Scopes: []string{"openid"}})
	b := providertest.NewBrowser(t)
	tok, idt, _ := r.login(t, b, "ada@example.com", oauth2.SetAuthURLParam("claims",
		`{"id_token":{"email":{"essential":true}},"userinfo":{"updated_at":null,"name":{"essential":true}}}`))
	c := claimsOf(t, idt)
	assert.Equal(t, "ada@example.com", c.Email, "asked for in the ID token")

	req := newReq(t, "GET", env.URL+"/userinfo", nil, "Bearer "+tok.AccessToken)
	resp, body := do(t, req)
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var ui map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &ui))
	assert.Equal(t, user.ID, ui["sub"])
	assert.Contains(t, ui, "updated_at", "asked for at userinfo")
	assert.NotContains(t, ui, "email", "the email scope was not granted and userinfo did not ask")
	assert.NotContains(t, ui, "name", "a claim the user does not have is left out")
}

// TestOneTimePasswordMustChange: an account made with a one-time
// password (the seeded admin) chooses its own before anything is issued.
func TestOneTimePasswordMustChange(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	_, err := env.Accounts.CreateUser(context.Background(), accounts.NewUser{Email: "admin@example.com",
		Population: store.PopulationAgent, Role: store.RoleAdmin, Password: "one-time-password-1", MustChange: true})
	require.NoError(t, err)
	r := newRP(t, env, clients.Spec{FirstParty: true})
	b := providertest.NewBrowser(t)
	p, _ := b.Follow(b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), redirectURI)
	form := p.Hidden()
	form.Set("email", "admin@example.com")
	form.Set("password", "one-time-password-1")
	p, done := b.Follow(b.Post(env.URL+"/login", form), redirectURI)
	require.Empty(t, done, "no code with a one-time password")
	require.Contains(t, p.Request.URL.Path, "/login/password")
	assert.Empty(t, sessionCookie(b, mustURL(t, env.URL)), "no session yet")

	for _, tc := range []struct{ pw, repeat, msg string }{
		{"a brand new password", "a different one!!", "not the same"},
		{"short", "short", "too short"},
		{"one-time-password-1", "one-time-password-1", "other than the one-time"},
	} {
		f := p.Hidden()
		f.Set("password", tc.pw)
		f.Set("repeat", tc.repeat)
		res := b.Post(env.URL+"/login/password", f)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode)
		assert.Contains(t, res.Body, tc.msg)
	}
	f := p.Hidden()
	f.Set("password", "a brand new password")
	f.Set("repeat", "a brand new password")
	cb := b.Finish(b.Post(env.URL+"/login/password", f), redirectURI)
	assert.NotEmpty(t, mustQuery(t, cb).Get("code"))
	u, err := env.Accounts.Authenticate(context.Background(), store.PopulationAgent, "admin@example.com", "a brand new password")
	require.NoError(t, err)
	assert.False(t, u.PasswordMustChange)
}

// TestOneTimePasswordAfterSecondStep: a user with a second factor who
// must replace a one-time password (an admin's reset) presents the
// second factor first: the one-time password alone never chooses the
// account's password (S22). The new password's form posted again (a
// reload) changes nothing.
func TestOneTimePasswordAfterSecondStep(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	u, err := env.Accounts.CreateUser(context.Background(), accounts.NewUser{Email: "ann@example.com",
		Population: store.PopulationAgent, Role: store.RoleAgent, Password: "one-time-password-1", MustChange: true})
	require.NoError(t, err)
	secret := env.AddTOTP(t, u.ID)
	r := newRP(t, env, clients.Spec{FirstParty: true})
	b := providertest.NewBrowser(t)
	p, _ := b.Follow(b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), redirectURI)
	form := p.Hidden()
	form.Set("email", "ann@example.com")
	form.Set("password", "one-time-password-1")
	p = b.Post(env.URL+"/login", form)
	require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
	require.Contains(t, p.Body, `action="/login/2fa"`, "the second factor first")
	// No way round it: the new password's page is not open yet.
	assert.Equal(t, http.StatusBadRequest, b.Get(env.URL+"/login/password?flow="+url.QueryEscape(p.Hidden().Get("flow"))).StatusCode)

	f := p.Hidden()
	f.Set("method", "totp")
	code, err := totp.GenerateCode(secret, time.Now())
	require.NoError(t, err)
	f.Set("code", code)
	p, _ = b.Follow(b.Post(env.URL+"/login/2fa", f), redirectURI)
	require.Contains(t, p.Request.URL.Path, "/login/password", p.Body)

	f = p.Hidden()
	f.Set("password", "a brand new password")
	f.Set("repeat", "a brand new password")
	cb := b.Finish(b.Post(env.URL+"/login/password", f), redirectURI)
	assert.NotEmpty(t, mustQuery(t, cb).Get("code"))
	changed, err := env.Accounts.Authenticate(context.Background(), store.PopulationAgent, "ann@example.com", "a brand new password")
	require.NoError(t, err)
	assert.False(t, changed.PasswordMustChange)

	f.Set("password", "yet another password")
	f.Set("repeat", "yet another password")
	again := b.Post(env.URL+"/login/password", f)
	assert.Equal(t, http.StatusBadRequest, again.StatusCode, again.Body)
	after, err := env.Store.GetUser(context.Background(), u.ID)
	require.NoError(t, err)
	assert.Equal(t, changed.PasswordHash, after.PasswordHash, "the reload changed nothing")
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}
