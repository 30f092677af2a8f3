package provider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

const (
	password    = "correct horse battery"
	redirectURI = "http://localhost:9999/cb"
	logoutURI   = "http://localhost:9999/bye"
)

// rp is a relying party built from independent libraries: x/oauth2 for
// the protocol, go-oidc for discovery and ID token verification.
type rp struct {
	env      *providertest.Env
	conf     oauth2.Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

func newRP(t *testing.T, env *providertest.Env, spec clients.Spec, algs ...string) *rp {
	t.Helper()
	if spec.Name == "" {
		spec.Name = "Test RP"
	}
	if spec.RedirectURIs == nil {
		spec.RedirectURIs = []string{redirectURI}
	}
	if spec.PostLogoutRedirectURIs == nil {
		spec.PostLogoutRedirectURIs = []string{logoutURI}
	}
	id, secret := env.Client(t, spec)
	ctx := context.Background()
	p, err := oidc.NewProvider(ctx, env.URL)
	require.NoError(t, err)
	if len(algs) == 0 {
		algs = []string{oidc.RS256}
	}
	return &rp{
		env: env, provider: p,
		conf: oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: endpoint(p, spec), RedirectURL: redirectURI,
			Scopes: scopes(spec)},
		verifier: p.Verifier(&oidc.Config{ClientID: id, SupportedSigningAlgs: algs}),
	}
}

// login runs the code flow with PKCE through the browser and returns the
// tokens and the verified ID token.
func (r *rp) login(t *testing.T, b *providertest.Browser, email string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken, string) {
	t.Helper()
	state, nonce, verifier := randString(), randString(), oauth2.GenerateVerifier()
	opts = append(opts, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	cb := b.SignIn(r.conf.AuthCodeURL(state, opts...), email, password, redirectURI)
	q := mustQuery(t, cb)
	require.Equal(t, state, q.Get("state"), "state echoed")
	require.Equal(t, r.env.URL, q.Get("iss"), "RFC 9207 iss")
	require.NotEmpty(t, q.Get("code"), cb)
	tok, idt := r.exchange(t, q.Get("code"), verifier)
	require.Equal(t, nonce, idt.Nonce, "nonce echoed")
	return tok, idt, q.Get("code")
}

func (r *rp) exchange(t *testing.T, code, verifier string) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	ctx := context.Background()
	tok, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	raw, ok := tok.Extra("id_token").(string)
	require.True(t, ok, "an ID token")
	idt, err := r.verifier.Verify(ctx, raw)
	require.NoError(t, err)
	return tok, idt
}

// endpoint pins the client authentication style the client registered,
// so x/oauth2 does not retry another style and hide the first error.
func endpoint(p *oidc.Provider, spec clients.Spec) oauth2.Endpoint {
	e := p.Endpoint()
	e.AuthStyle = oauth2.AuthStyleInHeader
	if spec.TokenEndpointAuthMethod == "client_secret_post" || spec.Public {
		e.AuthStyle = oauth2.AuthStyleInParams
	}
	return e
}

func scopes(spec clients.Spec) []string {
	if spec.Scopes != nil {
		return spec.Scopes
	}
	return []string{oidc.ScopeOpenID, "profile", "email", "offline_access"}
}

func randString() string {
	return base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))[:20] + "x"
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Query()
}

// idClaims are the claims go-oidc does not check itself.
type idClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      any      `json:"aud"`
	Azp      string   `json:"azp"`
	AuthTime int64    `json:"auth_time"`
	Iat      int64    `json:"iat"`
	Exp      int64    `json:"exp"`
	AtHash   string   `json:"at_hash"`
	Sid      string   `json:"sid"`
	Acr      string   `json:"acr"`
	Amr      []string `json:"amr"`
	Rat      any      `json:"rat"`
	Email    string   `json:"email"`
}

func claimsOf(t *testing.T, idt *oidc.IDToken) idClaims {
	var c idClaims
	require.NoError(t, idt.Claims(&c))
	return c
}

func header(t *testing.T, raw string) map[string]any {
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	require.NoError(t, err)
	var h map[string]any
	require.NoError(t, json.Unmarshal(b, &h))
	return h
}

// TestR01_CodeFlowWithGoOIDC runs the whole code flow with independent
// client libraries on each database, then refresh, userinfo,
// client_credentials, introspection, revocation and logout.
func TestR01_CodeFlowWithGoOIDC(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			env := providertest.Start(t, dialect, providertest.Options{})
			user := env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true})
			b := providertest.NewBrowser(t)

			before := time.Now().Add(-time.Second)
			tok, idt, _ := r.login(t, b, "ada@example.com")
			raw := tok.Extra("id_token").(string)
			c := claimsOf(t, idt)

			// go-oidc checked signature, iss, aud and exp; check the rest.
			assert.Equal(t, env.URL, c.Iss)
			assert.Equal(t, user.ID, c.Sub, "sub is the stable opaque user id")
			assert.Equal(t, r.conf.ClientID, c.Azp)
			assert.GreaterOrEqual(t, c.AuthTime, before.Unix(), "auth_time is the real sign-in time")
			assert.LessOrEqual(t, c.AuthTime, time.Now().Unix())
			assert.NotEmpty(t, c.Sid)
			assert.Equal(t, []string{"pwd"}, c.Amr, "R02: password only")
			assert.Equal(t, provider.ACRPassword, c.Acr)
			assert.Nil(t, c.Rat, "no non-standard rat claim")
			assert.Empty(t, c.Email, "scope claims go to userinfo, not the ID token")
			require.NotEmpty(t, c.AtHash)
			require.NoError(t, idt.VerifyAccessToken(tok.AccessToken), "at_hash matches")
			h := header(t, raw)
			assert.Equal(t, "RS256", h["alg"])
			assert.NotEmpty(t, h["kid"])
			assert.NotEmpty(t, tok.RefreshToken, "offline_access was requested and allowed")

			// userinfo: GET with the bearer header; sub equal to the ID token's.
			ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			require.NoError(t, err)
			assert.Equal(t, c.Sub, ui.Subject)
			assert.Equal(t, "ada@example.com", ui.Email)
			// POST with the header, and POST with access_token in the body.
			for _, req := range []*http.Request{
				newReq(t, "POST", env.URL+"/userinfo", nil, "Bearer "+tok.AccessToken),
				newReq(t, "POST", env.URL+"/userinfo", url.Values{"access_token": {tok.AccessToken}}, ""),
			} {
				resp, body := do(t, req)
				assert.Equal(t, 200, resp.StatusCode, body)
				assert.Contains(t, body, `"sub":"`+user.ID+`"`)
			}

			// Refresh: a new refresh token each time; the ID token keeps
			// sub and auth_time and has a new iat.
			time.Sleep(1100 * time.Millisecond)
			tok2, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			require.NoError(t, err)
			assert.NotEqual(t, tok.RefreshToken, tok2.RefreshToken, "rotated")
			idt2, err := r.verifier.Verify(ctx, tok2.Extra("id_token").(string))
			require.NoError(t, err)
			c2 := claimsOf(t, idt2)
			assert.Equal(t, c.Sub, c2.Sub)
			assert.Equal(t, c.AuthTime, c2.AuthTime, "refresh does not re-authenticate")
			assert.Equal(t, c.Amr, c2.Amr)
			assert.Greater(t, c2.Iat, c.Iat)

			// The old access token died with the rotation.
			resp, _ := do(t, newReq(t, "GET", env.URL+"/userinfo", nil, "Bearer "+tok.AccessToken))
			assert.Equal(t, 401, resp.StatusCode)

			// Reusing the old refresh token revokes the whole family.
			_, err = r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			requireOAuthError(t, err, "invalid_grant")
			_, err = r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token()
			requireOAuthError(t, err, "invalid_grant")
			resp, _ = do(t, newReq(t, "GET", env.URL+"/userinfo", nil, "Bearer "+tok2.AccessToken))
			assert.Equal(t, 401, resp.StatusCode, "the family's access token is revoked too")

			// client_credentials, then introspection and revocation.
			svcID, svcSecret := env.Client(t, clients.Spec{Name: "Service", GrantTypes: []string{"client_credentials"}})
			cc := clientcredentials.Config{ClientID: svcID, ClientSecret: svcSecret, TokenURL: env.URL + "/token"}
			ctok, err := cc.Token(ctx)
			require.NoError(t, err)
			intro := introspect(t, env, r.conf.ClientID, r.conf.ClientSecret, ctok.AccessToken)
			assert.Equal(t, true, intro["active"])
			assert.Equal(t, svcID, intro["client_id"])
			for _, k := range []string{"amr", "acr", "auth_time"} {
				assert.NotContains(t, intro, k, "no user signed in for a client's own token")
			}
			resp, _ = do(t, newReq(t, "GET", env.URL+"/userinfo", nil, "Bearer "+ctok.AccessToken))
			assert.Equal(t, 403, resp.StatusCode, "a client token is not a user's")

			rev := newReq(t, "POST", env.URL+"/revoke", url.Values{"token": {ctok.AccessToken}}, "")
			rev.SetBasicAuth(url.QueryEscape(svcID), url.QueryEscape(svcSecret))
			resp, body := do(t, rev)
			assert.Equal(t, 200, resp.StatusCode, body)
			intro = introspect(t, env, r.conf.ClientID, r.conf.ClientSecret, ctok.AccessToken)
			assert.Equal(t, false, intro["active"])

			// A fresh login, then RP-initiated logout ends the SSO session.
			tok3, idt3, _ := r.login(t, b, "ada@example.com")
			_ = idt3
			lo := b.Get(env.URL + "/logout?" + url.Values{
				"id_token_hint":            {tok3.Extra("id_token").(string)},
				"post_logout_redirect_uri": {logoutURI},
				"state":                    {"bye-state"},
			}.Encode())
			require.Equal(t, http.StatusSeeOther, lo.StatusCode, lo.Body)
			assert.Equal(t, logoutURI+"?state=bye-state", lo.Location())
			page := b.Get(r.conf.AuthCodeURL("s1234567890", oauth2.SetAuthURLParam("prompt", "none"), noPKCE()))
			q := mustQuery(t, page.Location())
			assert.Equal(t, "login_required", q.Get("error"), "the SSO session is over")
			assert.Equal(t, "s1234567890", q.Get("state"))
		})
	}
}

// noPKCE is a PKCE challenge whose verifier the test throws away: for
// authorization requests that end before a code is exchanged.
func noPKCE() oauth2.AuthCodeOption { return oauth2.S256ChallengeOption(oauth2.GenerateVerifier()) }

// withChallenge adds such a challenge to hand-built query parameters.
func withChallenge(v url.Values) url.Values {
	v.Set("code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
	v.Set("code_challenge_method", "S256")
	return v
}

func newReq(t *testing.T, method, u string, form url.Values, auth string) *http.Request {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func introspect(t *testing.T, env *providertest.Env, id, secret, token string) map[string]any {
	req := newReq(t, "POST", env.URL+"/introspect", url.Values{"token": {token}}, "")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, body := do(t, req)
	require.Equal(t, 200, resp.StatusCode, body)
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	return out
}

func requireOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	require.Error(t, err)
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, code, re.ErrorCode, string(re.Body))
}

// TestTokenFamiliesTimeOrdered: a family's request id is a UUIDv7, given
// where the family starts (the authorization request, a client_credentials
// request) and kept by every row that follows (code, PKCE, OIDC session,
// access and refresh tokens, and the refresh's new pair), so that
// revoking a family still finds them all.
func TestTokenFamiliesTimeOrdered(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			env := providertest.Start(t, dialect, providertest.Options{})
			env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true})
			tok, _, _ := r.login(t, providertest.NewBrowser(t), "ada@example.com")
			_, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			require.NoError(t, err)
			svcID, svcSecret := env.Client(t, clients.Spec{Name: "Service", GrantTypes: []string{"client_credentials"}})
			cc := clientcredentials.Config{ClientID: svcID, ClientSecret: svcSecret, TokenURL: env.URL + "/token"}
			for range 2 {
				_, err := cc.Token(ctx)
				require.NoError(t, err)
			}

			var rows []struct {
				Kind      string `db:"kind"`
				RequestID string `db:"request_id"`
				ClientID  string `db:"client_id"`
			}
			require.NoError(t, env.Store.DB().SelectContext(ctx, &rows, `SELECT kind, request_id, client_id FROM oauth2_requests`))
			families := map[string]map[string]int{} // client -> request id -> rows
			for _, row := range rows {
				id, err := uuid.Parse(row.RequestID)
				require.NoError(t, err, row.RequestID)
				assert.EqualValues(t, 7, id.Version(), "%s row %s", row.Kind, row.RequestID)
				if families[row.ClientID] == nil {
					families[row.ClientID] = map[string]int{}
				}
				families[row.ClientID][row.RequestID]++
			}
			assert.Len(t, families[r.conf.ClientID], 1, "one sign-in, one family, refresh included: %v", rows)
			for _, n := range families[r.conf.ClientID] {
				assert.GreaterOrEqual(t, n, 4, "the code, both refresh tokens and the new access token")
			}
			assert.Len(t, families[svcID], 2, "each client_credentials token is a family of its own")
		})
	}
}

// TestCodeRows: an authorization leaves two rows under the code's
// signature, written in one statement: the code (which also holds its
// OpenID Connect session, nonce included) and its PKCE challenge; the
// code itself is stored nowhere. Redeeming it takes the PKCE row and
// keeps the used code (a second use is detected). A wrong code_verifier
// uses the PKCE row up too, as fosite intends. A session an earlier
// build kept in a row of its own, under the raw code, is still found.
func TestCodeRows(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			env := providertest.Start(t, dialect, providertest.Options{})
			env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true})
			db := env.Store.DB()
			type row struct {
				Kind      string `db:"kind"`
				Signature string `db:"signature"`
				Active    bool   `db:"active"`
				Data      string `db:"data"`
			}
			rowsOf := func(requestID string) map[string]row {
				var rows []row
				require.NoError(t, db.SelectContext(ctx, &rows,
					db.Rebind(`SELECT kind, signature, active, data FROM oauth2_requests WHERE request_id = ?`), requestID))
				out := map[string]row{}
				for _, x := range rows {
					out[x.Kind] = x
				}
				return out
			}
			requestID := func() (id string) {
				require.NoError(t, db.GetContext(ctx, &id,
					`SELECT request_id FROM oauth2_requests WHERE kind = 'code' ORDER BY requested_at DESC, request_id DESC LIMIT 1`))
				return id
			}

			code, verifier := r.code(t, providertest.NewBrowser(t))
			id := requestID()
			rows := rowsOf(id)
			require.Len(t, rows, 2, "the code (with its OpenID Connect session) and its PKCE challenge: %v", rows)
			sig := rows[store.KindAuthorizeCode].Signature
			for kind, x := range rows {
				assert.Equal(t, sig, x.Signature, "%s: every row under the code's signature", kind)
				assert.NotContains(t, x.Signature, code, kind)
				assert.NotContains(t, x.Data, code, kind)
				assert.True(t, x.Active, kind)
			}
			assert.Contains(t, rows[store.KindAuthorizeCode].Data, `"nonce":["n-123456"]`, "the session's nonce is kept with the code")
			var raw int
			require.NoError(t, db.GetContext(ctx, &raw,
				db.Rebind(`SELECT COUNT(*) FROM oauth2_requests WHERE signature = ? OR data LIKE ?`), code, "%"+code+"%"))
			assert.Zero(t, raw, "the code itself is stored nowhere")

			_, idt := r.exchange(t, code, verifier)
			require.NotNil(t, idt, "the OpenID Connect session was found: an ID token")
			assert.Equal(t, "n-123456", idt.Nonce)
			rows = rowsOf(id)
			assert.NotContains(t, rows, store.KindPKCE, "redeemed: the PKCE row is gone")
			require.Contains(t, rows, store.KindAuthorizeCode)
			assert.False(t, rows[store.KindAuthorizeCode].Active, "the used code stays, inactive")
			assert.Contains(t, rows, store.KindAccessToken)
			assert.Contains(t, rows, store.KindRefreshToken)
			_, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			requireOAuthError(t, err, "invalid_grant")

			// A wrong verifier fails the exchange and uses up the PKCE row:
			// the right one cannot follow it.
			code, verifier = r.code(t, providertest.NewBrowser(t))
			id = requestID()
			_, err = r.conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
			requireOAuthError(t, err, "invalid_grant")
			assert.NotContains(t, rowsOf(id), store.KindPKCE, "a failed exchange used the PKCE row up")
			_, err = r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			requireOAuthError(t, err, "invalid_grant")

			// The layout of an earlier build: the session in a row of its
			// own under the raw code, the code's row without it.
			code, verifier = r.code(t, providertest.NewBrowser(t))
			id = requestID()
			_, err = db.ExecContext(ctx, db.Rebind(`INSERT INTO oauth2_requests (kind, signature, request_id, client_id, subject, active, requested_at, expires_at, data)
				SELECT 'oidc', ?, request_id, client_id, subject, active, requested_at, expires_at, data FROM oauth2_requests WHERE kind = 'code' AND request_id = ?`), code, id)
			require.NoError(t, err)
			_, err = db.ExecContext(ctx, db.Rebind(`UPDATE oauth2_requests SET data = REPLACE(data, '"oidc":true', '"oidc":false') WHERE kind = 'code' AND request_id = ?`), id)
			require.NoError(t, err)
			require.NotContains(t, rowsOf(id)[store.KindAuthorizeCode].Data, `"oidc":true`)
			_, idt = r.exchange(t, code, verifier)
			require.NotNil(t, idt, "an ID token from the earlier build's session")
			assert.Equal(t, "n-123456", idt.Nonce)
			assert.NotContains(t, rowsOf(id), store.KindOIDC, "the earlier build's row is gone")
		})
	}
}
