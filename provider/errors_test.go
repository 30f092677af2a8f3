package provider_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// code runs the browser part of the flow and returns a fresh code and its
// PKCE verifier.
func (r *rp) code(t *testing.T, b *providertest.Browser) (string, string) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	cb := b.SignIn(r.conf.AuthCodeURL("state-123456", oidcNonce("n-123456"), oauth2.S256ChallengeOption(verifier)),
		"ada@example.com", password, redirectURI)
	return mustQuery(t, cb).Get("code"), verifier
}

func oidcNonce(n string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("nonce", n) }

// tokenRequest posts a raw token request and returns status and body.
func tokenRequest(t *testing.T, base string, form url.Values, id, secret string) (int, string) {
	req := newReq(t, "POST", base+"/token", form, "")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, body := do(t, req)
	return resp.StatusCode, body
}

// TestBadInput table-tests what the token and authorization endpoints
// must refuse, each with the right OAuth error and nothing issued.
func TestBadInput(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env := providertest.Start(t, dialect, providertest.Options{Config: func(c *provider.Config) {
				c.AuthorizeCodeLifespan = 2 * time.Second
			}})
			env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true})
			other := newRP(t, env, clients.Spec{FirstParty: true})
			b := providertest.NewBrowser(t)
			ctx := context.Background()

			authorizeTests := []struct {
				name   string
				params url.Values
				// redirect: the error goes back to the client with state;
				// otherwise a page, and nobody is redirected.
				redirect bool
				err      string
			}{
				{"missing response_type", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {redirectURI}, "scope": {"openid"}, "state": {"st-12345678"}}, true, "unsupported_response_type"},
				{"implicit response_type", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {redirectURI}, "response_type": {"id_token"}, "scope": {"openid"}, "state": {"st-12345678"}, "nonce": {"n-12345678"}}, true, "unsupported_response_type"},
				{"hybrid response_type", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {redirectURI}, "response_type": {"code id_token"}, "scope": {"openid"}, "state": {"st-12345678"}, "nonce": {"n-12345678"}}, true, "unsupported_response_type"},
				{"unknown scope", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid admin"}, "state": {"st-12345678"}}, true, "invalid_scope"},
				{"plain PKCE", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"plain"}}, true, "invalid_request"},
				{"fragment response mode", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"}, "response_mode": {"fragment"}}, true, "unsupported_response_mode"},
				{"request object", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"}, "request": {"eyJhbGciOiJub25lIn0.e30."}}, true, "request_not_supported"},
				{"request_uri", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"}, "request_uri": {"https://rp.example/req"}}, true, "request_uri_not_supported"},
				{"request object with a bad redirect_uri", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {"https://evil.example/cb"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"}, "request": {"eyJhbGciOiJub25lIn0.e30."}}, false, "invalid_request"},
				{"unknown client", url.Values{"client_id": {"tf_nobody"}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"}}, false, "invalid_client"},
				{"unregistered redirect_uri", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {"https://evil.example/cb"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"}}, false, "invalid_request"},
				{"redirect_uri with suffix", url.Values{"client_id": {r.conf.ClientID}, "redirect_uri": {redirectURI + "/x"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"}}, false, "invalid_request"},
				{"missing client_id", url.Values{"redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"}}, false, "invalid_client"},
			}
			for _, tc := range authorizeTests {
				t.Run("authorize "+tc.name, func(t *testing.T) {
					p := providertest.NewBrowser(t).Get(env.URL + "/authorize?" + tc.params.Encode())
					if tc.redirect {
						require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
						loc := p.Location()
						require.True(t, strings.HasPrefix(loc, redirectURI+"?") || strings.HasPrefix(loc, redirectURI+"#"), loc)
						q := mustQuery(t, strings.Replace(loc, "#", "?", 1))
						assert.Equal(t, tc.err, q.Get("error"))
						assert.Equal(t, "st-12345678", q.Get("state"))
						assert.Equal(t, env.URL, q.Get("iss"), "RFC 9207: iss on errors too")
						assert.Empty(t, q.Get("code"))
						for k := range q {
							assert.Contains(t, []string{"error", "error_description", "error_hint", "state", "iss", "error_uri"}, k, "only the allowed error parameters")
						}
						return
					}
					assert.Equal(t, http.StatusBadRequest, p.StatusCode)
					assert.Empty(t, p.Header.Get("Location"), "never redirected")
					assert.Contains(t, p.Header.Get("Content-Type"), "text/html", "a page for the user")
					assert.Contains(t, p.Body, tc.err)
				})
			}

			t.Run("authorize request object in a multipart POST", func(t *testing.T) {
				var body bytes.Buffer
				mw := multipart.NewWriter(&body)
				for k, v := range map[string]string{"client_id": r.conf.ClientID, "redirect_uri": redirectURI, "response_type": "code",
					"scope": "openid", "state": "st-12345678", "request": "eyJhbGciOiJub25lIn0.e30."} {
					require.NoError(t, mw.WriteField(k, v))
				}
				require.NoError(t, mw.Close())
				req, err := http.NewRequest("POST", env.URL+"/authorize", &body)
				require.NoError(t, err)
				req.Header.Set("Content-Type", mw.FormDataContentType())
				resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusSeeOther, resp.StatusCode)
				q := mustQuery(t, resp.Header.Get("Location"))
				assert.Equal(t, "request_not_supported", q.Get("error"))
				assert.Empty(t, q.Get("code"))
			})

			t.Run("code used twice", func(t *testing.T) {
				code, verifier := r.code(t, b)
				tok, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
				require.NoError(t, err)
				_, err = r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
				requireOAuthError(t, err, "invalid_grant")
				resp, _ := do(t, newReq(t, "GET", env.URL+"/userinfo", nil, "Bearer "+tok.AccessToken))
				assert.Equal(t, 401, resp.StatusCode, "tokens issued from a reused code stop working")
				_, err = r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
				requireOAuthError(t, err, "invalid_grant")
			})
			t.Run("wrong PKCE verifier", func(t *testing.T) {
				code, _ := r.code(t, b)
				_, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
				requireOAuthError(t, err, "invalid_grant")
			})
			t.Run("missing PKCE verifier", func(t *testing.T) {
				code, _ := r.code(t, b)
				_, err := r.conf.Exchange(ctx, code)
				requireOAuthError(t, err, "invalid_grant")
			})
			t.Run("verifier without a challenge", func(t *testing.T) {
				// authentik CVE-2023-48228: a verifier must not be accepted
				// for a code that was issued without a challenge.
				cb := b.SignIn(r.conf.AuthCodeURL("state-123456", oidcNonce("n-123456")), "ada@example.com", password, redirectURI)
				_, err := r.conf.Exchange(ctx, mustQuery(t, cb).Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
				requireOAuthError(t, err, "invalid_grant")
			})
			t.Run("short verifier", func(t *testing.T) {
				code, _ := r.code(t, b)
				_, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption("too-short"))
				requireOAuthError(t, err, "invalid_grant")
			})
			t.Run("expired code", func(t *testing.T) {
				code, verifier := r.code(t, b)
				time.Sleep(2500 * time.Millisecond)
				_, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
				requireOAuthError(t, err, "invalid_grant")
			})
			t.Run("code of another client", func(t *testing.T) {
				code, verifier := r.code(t, b)
				_, err := other.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
				requireOAuthError(t, err, "invalid_grant")
			})
			t.Run("wrong client secret", func(t *testing.T) {
				code, verifier := r.code(t, b)
				status, body := tokenRequest(t, env.URL, url.Values{"grant_type": {"authorization_code"}, "code": {code},
					"redirect_uri": {redirectURI}, "code_verifier": {verifier}}, r.conf.ClientID, "wrong-secret")
				assert.Equal(t, 401, status)
				assert.Contains(t, body, `"invalid_client"`)
				// The code was not spent by the failed attempt.
				_, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
				require.NoError(t, err)
			})
			t.Run("another client's refresh token", func(t *testing.T) {
				tok, _, _ := r.login(t, b, "ada@example.com")
				_, err := other.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
				requireOAuthError(t, err, "invalid_grant")
				_, err = r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
				require.NoError(t, err, "the owner can still use it")
			})
			tokenTests := []struct {
				name   string
				form   url.Values
				status int
				err    string
			}{
				{"password grant", url.Values{"grant_type": {"password"}, "username": {"ada@example.com"}, "password": {password}}, 400, "unsupported_grant_type"},
				{"implicit grant", url.Values{"grant_type": {"implicit"}}, 400, "unsupported_grant_type"},
				{"unknown grant", url.Values{"grant_type": {"urn:x"}}, 400, "unsupported_grant_type"},
				{"no grant", url.Values{}, 400, "invalid_request"},
				{"unknown code", url.Values{"grant_type": {"authorization_code"}, "code": {"ory_ac_x.y"}, "redirect_uri": {redirectURI}}, 400, "invalid_grant"},
				{"unknown refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_x.y"}}, 400, "invalid_grant"},
				{"client_credentials not registered", url.Values{"grant_type": {"client_credentials"}}, 400, "unauthorized_client"},
			}
			for _, tc := range tokenTests {
				t.Run("token "+tc.name, func(t *testing.T) {
					status, body := tokenRequest(t, env.URL, tc.form, r.conf.ClientID, r.conf.ClientSecret)
					assert.Equal(t, tc.status, status, body)
					assert.Contains(t, body, `"error":"`+tc.err+`"`)
					assert.NotContains(t, body, "access_token")
				})
			}
			t.Run("malformed token requests", func(t *testing.T) {
				for _, req := range []*http.Request{
					rawReq(t, env.URL+"/token", "application/json", `{"grant_type":"client_credentials"}`),
					rawReq(t, env.URL+"/token", "application/x-www-form-urlencoded", "grant_type=%zz"),
					rawReq(t, env.URL+"/introspect", "application/json", `{"token":"x"}`),
				} {
					req.SetBasicAuth(url.QueryEscape(r.conf.ClientID), url.QueryEscape(r.conf.ClientSecret))
					resp, body := do(t, req)
					assert.GreaterOrEqual(t, resp.StatusCode, 400, body)
					assert.Less(t, resp.StatusCode, 500, body)
					assert.Contains(t, body, `"error"`)
					assert.NotContains(t, body, "access_token")
				}
			})
			t.Run("public client without PKCE", func(t *testing.T) {
				pub := newRP(t, env, clients.Spec{Public: true, FirstParty: true, GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}})
				p := providertest.NewBrowser(t).Get(pub.conf.AuthCodeURL("st-12345678"))
				q := mustQuery(t, p.Location())
				assert.Equal(t, "invalid_request", q.Get("error"))
				assert.Contains(t, q.Get("error_description"), "PKCE")
			})
			// security.md §3.6, RFC 9700 §2.1.1: a confidential client
			// must use PKCE too, unless registered as an old app that
			// cannot; that one signs in and exchanges its code without.
			t.Run("confidential client without PKCE", func(t *testing.T) {
				p := providertest.NewBrowser(t).Get(r.conf.AuthCodeURL("st-12345678"))
				q := mustQuery(t, p.Location())
				assert.Equal(t, "invalid_request", q.Get("error"))
				assert.Contains(t, q.Get("error_description"), "PKCE is required")
				assert.Equal(t, "st-12345678", q.Get("state"))
			})
			t.Run("confidential client registered with PKCE optional", func(t *testing.T) {
				old := newRP(t, env, clients.Spec{Name: "Old app", FirstParty: true, PKCEOptional: true})
				cb := providertest.NewBrowser(t).SignIn(old.conf.AuthCodeURL("st-12345678", oidcNonce("n-old-12345")), "ada@example.com", password, redirectURI)
				code := mustQuery(t, cb).Get("code")
				require.NotEmpty(t, code, cb)
				tok, err := old.conf.Exchange(context.Background(), code)
				require.NoError(t, err)
				assert.NotEmpty(t, tok.AccessToken)
				// It may still use PKCE, and then the verifier is checked.
				b := providertest.NewBrowser(t)
				verifier := oauth2.GenerateVerifier()
				cb = b.SignIn(old.conf.AuthCodeURL("st-12345678", oauth2.S256ChallengeOption(verifier)), "ada@example.com", password, redirectURI)
				_, err = old.conf.Exchange(context.Background(), mustQuery(t, cb).Get("code"))
				requireOAuthError(t, err, "invalid_grant")
			})
		})
	}
}

func rawReq(t *testing.T, u, contentType, body string) *http.Request {
	req, err := http.NewRequest("POST", u, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	return req
}
