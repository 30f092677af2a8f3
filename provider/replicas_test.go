package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestTwoReplicasOnePostgres: two provider processes on one database
// behave as one. A code from the first is redeemed at the second, and the
// second refreshes the first's token.
func TestTwoReplicasOnePostgres(t *testing.T) {
	ctx := context.Background()
	a := providertest.Start(t, "postgres", providertest.Options{})
	bEnv := providertest.Start(t, "postgres", providertest.Options{DatabaseURL: a.DBURL, Key: a.Key, Issuer: a.URL})
	a.User(t, "ada@example.com", password, store.PopulationAgent)
	r := newRP(t, a, clients.Spec{FirstParty: true})
	atB := r.conf
	atB.Endpoint.TokenURL = bEnv.ServerURL() + "/token"

	browser := providertest.NewBrowser(t)
	code, verifier := r.code(t, browser)
	tok, err := atB.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	require.NoError(t, err, "a code issued by A is redeemed at B")
	_, err = r.verifier.Verify(ctx, tok.Extra("id_token").(string))
	require.NoError(t, err, "B signs with the keys A created")

	// B refreshes a token A issued; A then refuses the used one.
	code, verifier = r.code(t, browser)
	tokA, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	tokB, err := atB.TokenSource(ctx, &oauth2.Token{RefreshToken: tokA.RefreshToken}).Token()
	require.NoError(t, err)
	assert.NotEqual(t, tokA.RefreshToken, tokB.RefreshToken)
	_, err = r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tokA.RefreshToken}).Token()
	requireOAuthError(t, err, "invalid_grant")

	// B's userinfo answers for A's token, and the login flow itself can
	// hop between replicas: authorize at A, sign in at B.
	b2 := providertest.NewBrowser(t)
	p, _ := b2.Follow(b2.Get(r.conf.AuthCodeURL("st-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), redirectURI)
	form := p.Hidden()
	form.Set("email", "ada@example.com")
	form.Set("password", password)
	res := b2.Post(bEnv.ServerURL()+"/login", form)
	require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
	assert.NotEmpty(t, mustQuery(t, res.Location()).Get("code"))
}

// replicas starts a provider on dialect and, on PostgreSQL, a second
// replica on its database; it returns the first and both base URLs.
func replicas(t *testing.T, dialect string) (*providertest.Env, []string) {
	t.Helper()
	env := providertest.Start(t, dialect, providertest.Options{})
	urls := []string{env.URL}
	if dialect == "postgres" {
		other := providertest.Start(t, dialect, providertest.Options{DatabaseURL: env.DBURL, Key: env.Key, Issuer: env.URL})
		urls = append(urls, other.ServerURL())
	}
	return env, urls
}

// raceTokens posts form to the token endpoint n times at once, spread
// over urls, and counts the successes, the invalid_grant refusals and
// anything else (logged).
func raceTokens(t *testing.T, urls []string, n int, form url.Values, r *rp) (wins, grants, other int32) {
	t.Helper()
	var w, g, o atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := tokenRequest(t, urls[i%len(urls)], form, r.conf.ClientID, r.conf.ClientSecret)
			switch {
			case status == 200:
				w.Add(1)
			case status == 400 && json.Valid([]byte(body)) && strings.Contains(body, `"invalid_grant"`):
				g.Add(1)
			default:
				o.Add(1)
				t.Logf("unexpected answer %d: %s", status, body)
			}
		}()
	}
	wg.Wait()
	return w.Load(), g.Load(), o.Load()
}

// TestConcurrentCodeExchange: of many simultaneous redemptions of one code
// (spread over two replicas when PostgreSQL is there), exactly one wins
// and none is a server error.
func TestConcurrentCodeExchange(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env, urls := replicas(t, dialect)
			env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true})
			code, verifier := r.code(t, providertest.NewBrowser(t))
			wins, grants, other := raceTokens(t, urls, 10,
				url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}, r)
			assert.EqualValues(t, 1, wins, "exactly one exchange succeeds")
			assert.EqualValues(t, 9, grants, "the others get invalid_grant")
			assert.Zero(t, other, "never a server error")
		})
	}
}

// TestConcurrentRefresh (security.md §3.2): of many simultaneous
// refreshes of one refresh token (over two replicas when PostgreSQL is
// there), at most one gets a new pair and none is a server error. One
// that reads the token after the winner spent it is read as reuse and
// revokes the whole family, the winner's pair too (the README says so);
// one that loses the race to spend it is refused alone.
func TestConcurrentRefresh(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env, urls := replicas(t, dialect)
			env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true})
			tok, _, _ := r.login(t, providertest.NewBrowser(t), "ada@example.com")
			wins, grants, other := raceTokens(t, urls, 10, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, r)
			assert.LessOrEqual(t, wins, int32(1), "at most one new pair")
			assert.Equal(t, int32(10), wins+grants, "the others get invalid_grant")
			assert.Zero(t, other, "never a server error")
		})
	}
}

// TestRefreshRacesRevocation (security.md §3.2): a client refreshing a
// token while (another instance of) it revokes the same token, and an
// admin signing the user out meanwhile, never gets a server error; after
// the dust settles no token of the family works.
func TestRefreshRacesRevocation(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env, urls := replicas(t, dialect)
			u := env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true})
			for round := range 5 {
				tok, _, _ := r.login(t, providertest.NewBrowser(t), "ada@example.com")
				var wg sync.WaitGroup
				var errs atomic.Int32
				for i := range 9 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						base := urls[i%len(urls)]
						var status int
						var body string
						switch i % 3 {
						case 0:
							status, body = tokenRequest(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}},
								r.conf.ClientID, r.conf.ClientSecret)
						case 1:
							req := newReq(t, "POST", base+"/revoke", url.Values{"token": {tok.RefreshToken}}, "")
							req.SetBasicAuth(url.QueryEscape(r.conf.ClientID), url.QueryEscape(r.conf.ClientSecret))
							resp, b := do(t, req)
							status, body = resp.StatusCode, b
						default:
							if err := env.Store.SignOutUser(context.Background(), u.ID); err != nil {
								status, body = 500, err.Error()
							}
						}
						if status >= 500 {
							errs.Add(1)
							t.Logf("round %d, request %d: %d %s", round, i, status, body)
						}
					}()
				}
				wg.Wait()
				assert.Zero(t, errs.Load(), "round %d: never a server error", round)
				status, _ := tokenRequest(t, env.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}},
					r.conf.ClientID, r.conf.ClientSecret)
				assert.Equal(t, http.StatusBadRequest, status, "round %d: the revoked token is dead", round)
			}
		})
	}
}

// TestExchangeRacesSignOut: a code exchanged, or a refresh token
// refreshed, while an admin signs its user out either fails or gives
// tokens that the sign-out revoked: no token outlives a sign-out that
// finished after it was issued. (On PostgreSQL a DELETE begun while the
// exchange ran would not see its new rows: the two lock the user.)
func TestExchangeRacesSignOut(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env := providertest.Start(t, dialect, providertest.Options{})
			u := env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true})
			survived := 0
			for round := range 40 {
				form := url.Values{"grant_type": {"refresh_token"}}
				if round%2 == 0 {
					code, verifier := r.code(t, providertest.NewBrowser(t))
					form = url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
				} else {
					tok, _, _ := r.login(t, providertest.NewBrowser(t), "ada@example.com")
					form.Set("refresh_token", tok.RefreshToken)
				}
				var status int
				var body string
				var wg sync.WaitGroup
				wg.Add(2)
				go func() {
					defer wg.Done()
					status, body = tokenRequest(t, env.URL, form, r.conf.ClientID, r.conf.ClientSecret)
				}()
				go func() {
					defer wg.Done()
					assert.NoError(t, env.Store.SignOutUser(context.Background(), u.ID))
				}()
				wg.Wait()
				require.Less(t, status, 500, "round %d: %s", round, body)
				if status != http.StatusOK {
					continue
				}
				var pair struct {
					AccessToken string `json:"access_token"`
				}
				require.NoError(t, json.Unmarshal([]byte(body), &pair))
				if introspect(t, env, r.conf.ClientID, r.conf.ClientSecret, pair.AccessToken)["active"] == true {
					survived++
				}
			}
			assert.Zero(t, survived, "tokens that outlived the sign-out")

			// A code whose sign-in ended after its row was written (a
			// sign-out between the session and the code's row cannot
			// remove the row) is refused.
			code, verifier := r.code(t, providertest.NewBrowser(t))
			require.NoError(t, env.Store.DeleteUserSessions(context.Background(), u.ID))
			status, body := tokenRequest(t, env.URL, url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {redirectURI}, "code_verifier": {verifier}}, r.conf.ClientID, r.conf.ClientSecret)
			assert.Equal(t, http.StatusBadRequest, status, body)
			assert.Contains(t, body, "The sign-in this code came from has ended.")
		})
	}
}

// TestSignInRacesSignOut: a sign-in finishing its second step while an
// admin signs the user out either fails or leaves a session the
// sign-out ended: no session outlives a sign-out that finished after it
// was made.
func TestSignInRacesSignOut(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			secret := e.addTOTP(t, e.user.ID)
			authURL, _ := e.authURL()
			survived := 0
			for round := range 20 {
				b := providertest.NewBrowser(t)
				page := e.toSecondStep(t, b, authURL, "ada@example.com")
				code := e.code(t, secret)
				var wg sync.WaitGroup
				wg.Add(2)
				var status int
				go func() {
					defer wg.Done()
					status = e.submitCode(b, page, "totp", code).StatusCode
				}()
				go func() {
					defer wg.Done()
					assert.NoError(t, e.Store.SignOutUser(context.Background(), e.user.ID))
				}()
				wg.Wait()
				require.Less(t, status, 500, "round %d", round)
				if status == http.StatusSeeOther && signedIn(t, e, b) {
					survived++
				}
			}
			assert.Zero(t, survived, "sessions that outlived the sign-out")
		})
	}
}

// TestPrivateKeyJWT: a client authenticates with a signed assertion
// (RFC 7523) against its registered JWKS; a replayed assertion and one
// signed by another key are refused.
func TestPrivateKeyJWT(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pub, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	require.NoError(t, err)
	id, _ := env.Client(t, clients.Spec{Name: "pkjwt", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: string(pub)})

	assertion := func(k *ecdsa.PrivateKey, jti string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		require.NoError(t, err)
		now := time.Now()
		s, err := josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: id, Subject: id, Audience: josejwt.Audience{env.URL + "/token"},
			ID: jti, IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
		require.NoError(t, err)
		return s
	}
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {id},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	}
	a1 := assertion(key, "jti-1")
	status, body := tokenRequest(t, env.URL, form(a1), "", "")
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, "access_token")

	status, body = tokenRequest(t, env.URL, form(a1), "", "")
	assert.Equal(t, 401, status, "a replayed assertion is refused: %s", body)
	assert.Contains(t, body, "invalid_client")

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	status, body = tokenRequest(t, env.URL, form(assertion(other, "jti-2")), "", "")
	assert.Equal(t, 401, status, body)
	assert.NotContains(t, body, "access_token")

	// A client's jti cannot use up a passkey ceremony's one-time id:
	// the two share the store's table under different prefixes.
	ceremony := fmt.Sprintf("passkey-ceremony:%d", time.Now().UnixNano())
	status, body = tokenRequest(t, env.URL, form(assertion(key, ceremony)), "", "")
	require.Equal(t, 200, status, body)
	require.NoError(t, env.Store.UseJTI(context.Background(), ceremony, time.Now().Add(time.Minute), time.Now()),
		"the ceremony's id is still unused")
}

// TestLogoutRefusals: RP-initiated logout redirects only to a registered
// URI on a valid hint; everything else is a page that redirects nowhere.
func TestLogoutRefusals(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	env.User(t, "ada@example.com", password, store.PopulationAgent)
	r := newRP(t, env, clients.Spec{FirstParty: true})
	b := providertest.NewBrowser(t)
	tok, _, _ := r.login(t, b, "ada@example.com")
	hint := tok.Extra("id_token").(string)
	parts := strings.Split(hint, ".")
	forged := parts[0] + "." + parts[1] + "." + "AAAA" + parts[2][4:]
	noneAlg := "eyJhbGciOiJub25lIn0." + parts[1] + "."
	tests := []struct {
		name   string
		params url.Values
	}{
		{"unregistered post_logout_redirect_uri", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example/bye"}}},
		{"query added to the registered URI", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {logoutURI + "?x=1"}}},
		{"tampered hint signature", url.Values{"id_token_hint": {forged}, "post_logout_redirect_uri": {logoutURI}}},
		{"alg none hint", url.Values{"id_token_hint": {noneAlg}, "post_logout_redirect_uri": {logoutURI}}},
		{"hint for another client", url.Values{"id_token_hint": {hint}, "client_id": {"tf_other"}, "post_logout_redirect_uri": {logoutURI}}},
		{"redirect without a client", url.Values{"post_logout_redirect_uri": {logoutURI}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := b.Get(env.URL + "/logout?" + tc.params.Encode())
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Empty(t, p.Header.Get("Location"))
		})
	}
	// Still signed in after all of that.
	q := mustQuery(t, b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))).Location())
	require.NotEmpty(t, q.Get("code"), "no refused request ended the session")

	// No hint: a confirmation page; only the confirmed POST signs out.
	p := b.Get(env.URL + "/logout")
	require.Equal(t, http.StatusOK, p.StatusCode)
	assert.Contains(t, p.Body, "Sign out?")
	bad := p.Hidden()
	bad.Set("csrf", "forged")
	b.Post(env.URL+"/logout", bad)
	q = mustQuery(t, b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))).Location())
	require.NotEmpty(t, q.Get("code"), "a forged confirmation does nothing")
	u, _ := url.Parse(env.URL)
	var old *http.Cookie
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == "twofold_session" {
			old = c
		}
	}
	require.NotNil(t, old)
	done := b.Post(env.URL+"/logout", p.Hidden())
	assert.Contains(t, done.Body, "signed out")
	// Replaying the old cookie does not bring the session back.
	b.Jar.SetCookies(u, []*http.Cookie{{Name: old.Name, Value: old.Value, Path: "/"}})
	q = mustQuery(t, b.Get(r.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))).Location())
	assert.Equal(t, "login_required", q.Get("error"))
}
