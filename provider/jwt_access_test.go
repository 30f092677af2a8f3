package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// accessLifespan is not the default, so exp-iat proves the setting is used.
const accessLifespan = 7 * time.Minute

func startJWTEnv(t *testing.T, dialect string) *providertest.Env {
	return providertest.Start(t, dialect, providertest.Options{
		Config: func(c *provider.Config) { c.AccessTokenLifespan = accessLifespan },
	})
}

// tokenJSON is a token endpoint answer.
type tokenJSON struct {
	AccessToken string  `json:"access_token"`
	TokenType   string  `json:"token_type"`
	ExpiresIn   float64 `json:"expires_in"`
	Scope       string  `json:"scope"`
}

func clientCredentials(t *testing.T, env *providertest.Env, id, secret, scope string) tokenJSON {
	t.Helper()
	code, body := tokenRequest(t, env.URL, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, id, secret)
	require.Equal(t, http.StatusOK, code, body)
	var tok tokenJSON
	require.NoError(t, json.Unmarshal([]byte(body), &tok))
	return tok
}

// verifyJWT checks token against the published JWKS with go-jose v4
// (not the provider's own code) and returns its header and claims.
func verifyJWT(t *testing.T, env *providertest.Env, token string) (map[string]any, map[string]any) {
	t.Helper()
	resp, body := do(t, newReq(t, "GET", env.URL+"/jwks", nil, ""))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal([]byte(body), &set))
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	require.NoError(t, err)
	require.Len(t, jws.Signatures, 1)
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	require.Len(t, keys, 1, "the kid names one published key")
	assert.Equal(t, keys[0].Algorithm, jws.Signatures[0].Header.Algorithm)
	payload, err := jws.Verify(keys[0].Key)
	require.NoError(t, err, "the signature verifies against /jwks")
	var claims map[string]any
	require.NoError(t, json.Unmarshal(payload, &claims))
	return header(t, token), claims
}

func keysOf(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	f, ok := v.(float64)
	require.True(t, ok, "%v is a number", v)
	return int64(f)
}

// TestJWTAccessTokens: client_credentials for JWT clients of each
// algorithm gives an RFC 9068 token that verifies against /jwks with the
// client's algorithm and the active key, introspects until revoked; an
// opaque client still gets an opaque token.
func TestJWTAccessTokens(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env := startJWTEnv(t, dialect)
			// A resource server introspects with its own credentials.
			rsID, rsSecret := env.Client(t, clients.Spec{Name: "Resource server", GrantTypes: []string{clients.GrantClientCredentials}})

			for _, alg := range []string{provider.RS256, provider.ES256} {
				t.Run(alg, func(t *testing.T) {
					id, secret := env.Client(t, clients.Spec{Name: "API " + alg, GrantTypes: []string{clients.GrantClientCredentials},
						IDTokenAlg: alg, AccessTokenFormat: store.AccessTokenJWT})
					before := time.Now().Unix()
					tok := clientCredentials(t, env, id, secret, "profile email")
					after := time.Now().Unix()
					require.Equal(t, 2, strings.Count(tok.AccessToken, "."), "a JWT: %s", tok.AccessToken)
					assert.InDelta(t, accessLifespan.Seconds(), tok.ExpiresIn, 2)

					h, c := verifyJWT(t, env, tok.AccessToken)
					active, err := env.Provider.Keys().Active(ctx, alg)
					require.NoError(t, err)
					assert.Equal(t, map[string]any{"typ": "at+jwt", "alg": alg, "kid": active.KID()}, h,
						"typ at+jwt, the client's algorithm, the active key; nothing else")

					assert.Equal(t, []string{"aud", "client_id", "exp", "iat", "iss", "jti", "scope", "sub"}, keysOf(c),
						"a client's own token: no user claims, nothing private")
					assert.Equal(t, env.URL, c["iss"])
					assert.Equal(t, id, c["sub"], "client_credentials: the client is the subject")
					assert.Equal(t, id, c["client_id"])
					assert.Equal(t, []any{id}, c["aud"], "no audience granted: the client itself")
					assert.Equal(t, "profile email", c["scope"], "one space-separated string")
					assert.Regexp(t, `^[0-9a-f-]{36}$`, c["jti"])
					iat, exp := num(t, c["iat"]), num(t, c["exp"])
					assert.GreaterOrEqual(t, iat, before)
					assert.LessOrEqual(t, iat, after)
					assert.Equal(t, int64(accessLifespan.Seconds()), exp-iat)

					// A second token is another token.
					_, c2 := verifyJWT(t, env, clientCredentials(t, env, id, secret, "profile").AccessToken)
					assert.NotEqual(t, c["jti"], c2["jti"])
					assert.Equal(t, "profile", c2["scope"])

					intro := introspect(t, env, rsID, rsSecret, tok.AccessToken)
					assert.Equal(t, true, intro["active"], intro)
					assert.Equal(t, id, intro["client_id"])
					assert.Equal(t, id, intro["sub"])
					assert.Equal(t, "profile email", intro["scope"])
					assert.Equal(t, exp, num(t, intro["exp"]), "the stored token expires with the JWT")

					rev := newReq(t, "POST", env.URL+"/revoke", url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}, "")
					rev.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
					resp, body := do(t, rev)
					require.Equal(t, http.StatusOK, resp.StatusCode, body)
					intro = introspect(t, env, rsID, rsSecret, tok.AccessToken)
					assert.Equal(t, map[string]any{"active": false}, intro, "revoked, though its signature still verifies")
				})
			}

			t.Run("opaque client", func(t *testing.T) {
				id, secret := env.Client(t, clients.Spec{Name: "Opaque API", GrantTypes: []string{clients.GrantClientCredentials}, IDTokenAlg: provider.ES256})
				tok := clientCredentials(t, env, id, secret, "profile")
				assert.True(t, strings.HasPrefix(tok.AccessToken, "ory_at_"), tok.AccessToken)
				assert.Equal(t, 1, strings.Count(tok.AccessToken, "."), "an HMAC token, not a JWT")
				intro := introspect(t, env, rsID, rsSecret, tok.AccessToken)
				assert.Equal(t, true, intro["active"])
			})
		})
	}
}

// TestR02_JWTAccessTokensCodeFlow: a JWT client's user token says who signed
// in and how, as the ID token does; userinfo and introspection accept it;
// a forged or altered one, or one revoked, is refused; refresh issues
// another JWT.
func TestR02_JWTAccessTokensCodeFlow(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env := startJWTEnv(t, dialect)
			user := env.User(t, "ada@example.com", password, store.PopulationAgent)
			r := newRP(t, env, clients.Spec{FirstParty: true, IDTokenAlg: provider.ES256, AccessTokenFormat: store.AccessTokenJWT}, oidc.ES256)
			b := providertest.NewBrowser(t)
			tok, idt, _ := r.login(t, b, "ada@example.com")
			id := claimsOf(t, idt)

			h, c := verifyJWT(t, env, tok.AccessToken)
			assert.Equal(t, "at+jwt", h["typ"])
			assert.Equal(t, "ES256", h["alg"])
			assert.Equal(t, []string{"acr", "amr", "aud", "auth_time", "client_id", "exp", "iat", "iss", "jti", "scope", "sub"}, keysOf(c),
				"no rat, sid, nonce, email or other session data")
			assert.Equal(t, user.ID, c["sub"])
			assert.Equal(t, r.conf.ClientID, c["client_id"])
			assert.Equal(t, []any{r.conf.ClientID}, c["aud"])
			assert.Equal(t, "openid profile email offline_access", c["scope"])
			assert.Equal(t, id.AuthTime, num(t, c["auth_time"]), "auth_time as in the ID token")
			assert.Equal(t, id.Acr, c["acr"])
			assert.Equal(t, []any{"pwd"}, c["amr"])
			assert.Equal(t, int64(accessLifespan.Seconds()), num(t, c["exp"])-num(t, c["iat"]))
			require.NoError(t, idt.VerifyAccessToken(tok.AccessToken), "at_hash is over the JWT")

			ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			require.NoError(t, err, "userinfo accepts the JWT")
			assert.Equal(t, user.ID, ui.Subject)
			assert.Equal(t, "ada@example.com", ui.Email)
			intro := introspect(t, env, r.conf.ClientID, r.conf.ClientSecret, tok.AccessToken)
			assert.Equal(t, true, intro["active"])
			assert.Equal(t, user.ID, intro["sub"])

			refused := func(t *testing.T, token, why string) {
				t.Helper()
				resp, _ := do(t, newReq(t, "GET", env.URL+"/userinfo", nil, "Bearer "+token))
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "userinfo: %s", why)
				assert.Equal(t, map[string]any{"active": false}, introspect(t, env, r.conf.ClientID, r.conf.ClientSecret, token), "introspection: %s", why)
			}
			parts := strings.Split(tok.AccessToken, ".")
			for _, tc := range []struct{ why, token string }{
				{"claims changed under the stored signature", parts[0] + "." + withSubject(t, parts[1], "someone-else") + "." + parts[2]},
				{"a flipped byte in the signature", parts[0] + "." + parts[1] + "." + flipByte(t, parts[2])},
				{"signed by another key with our kid", resign(t, parts[0], parts[1])},
				{"unsigned", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."},
			} {
				refused(t, tc.token, tc.why)
			}

			// An access token never passes for an ID token (RFC 9068 §4):
			// not as a logout hint, not as an authorization hint.
			resp, body := do(t, newReq(t, "GET", env.URL+"/logout?"+url.Values{"id_token_hint": {tok.AccessToken}}.Encode(), nil, ""))
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "logout with an access token as hint: %s", body)
			p := b.Get(r.conf.AuthCodeURL("st-at-hint-1", oauth2.SetAuthURLParam("prompt", "none"),
				oauth2.SetAuthURLParam("id_token_hint", tok.AccessToken), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			aq := mustQuery(t, p.Location())
			assert.Empty(t, aq.Get("code"), "no code for an access token as id_token_hint")
			assert.NotEmpty(t, aq.Get("error"))
			// …and the ID token still works as a hint (the session is live).
			p = b.Get(r.conf.AuthCodeURL("st-id-hint-1", oauth2.SetAuthURLParam("prompt", "none"),
				oauth2.SetAuthURLParam("id_token_hint", tok.Extra("id_token").(string)), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			assert.NotEmpty(t, mustQuery(t, p.Location()).Get("code"), p.Location())
			// Nor does an ID token pass for an access token.
			resp, _ = do(t, newReq(t, "GET", env.URL+"/userinfo", nil, "Bearer "+tok.Extra("id_token").(string)))
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

			// A key rotation does not end tokens signed before it.
			_, err = env.Provider.Keys().Rotate(ctx, provider.ES256)
			require.NoError(t, err)
			resp, _ = do(t, newReq(t, "GET", env.URL+"/userinfo", nil, "Bearer "+tok.AccessToken))
			assert.Equal(t, http.StatusOK, resp.StatusCode, "signed by the retired key")

			// Refresh: a new JWT (new key), the same user and sign-in; the
			// old access token goes with the rotation.
			time.Sleep(1100 * time.Millisecond)
			tok2, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			require.NoError(t, err)
			h2, c2 := verifyJWT(t, env, tok2.AccessToken)
			assert.NotEqual(t, h["kid"], h2["kid"], "signed with the new active key")
			assert.Equal(t, user.ID, c2["sub"])
			assert.Equal(t, c["auth_time"], c2["auth_time"], "refresh does not re-authenticate")
			assert.Equal(t, c["amr"], c2["amr"])
			assert.Greater(t, num(t, c2["iat"]), num(t, c["iat"]))
			refused(t, tok.AccessToken, "the access token of a rotated refresh token")
			ui, err = r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok2))
			require.NoError(t, err)
			assert.Equal(t, user.ID, ui.Subject)

			rev := newReq(t, "POST", env.URL+"/revoke", url.Values{"token": {tok2.AccessToken}}, "")
			rev.SetBasicAuth(url.QueryEscape(r.conf.ClientID), url.QueryEscape(r.conf.ClientSecret))
			resp, body = do(t, rev)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			refused(t, tok2.AccessToken, "revoked")
		})
	}
}

// TestRefreshKeepsUserinfoClaims: claims asked for at userinfo with the
// claims parameter are still served for the tokens of a refresh.
func TestRefreshKeepsUserinfoClaims(t *testing.T) {
	ctx := context.Background()
	env := providertest.Start(t, "sqlite", providertest.Options{})
	env.User(t, "ada@example.com", password, store.PopulationAgent)
	r := newRP(t, env, clients.Spec{FirstParty: true, Scopes: []string{"openid", "offline_access"}})
	b := providertest.NewBrowser(t)
	tok, _, _ := r.login(t, b, "ada@example.com", oauth2.SetAuthURLParam("claims", `{"userinfo":{"updated_at":null}}`))
	hasUpdatedAt := func(at string) {
		t.Helper()
		resp, body := do(t, newReq(t, "GET", env.URL+"/userinfo", nil, "Bearer "+at))
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Contains(t, body, `"updated_at"`)
	}
	hasUpdatedAt(tok.AccessToken)
	tok2, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.NoError(t, err)
	hasUpdatedAt(tok2.AccessToken)
}

// withSubject returns a JWT payload segment with sub replaced.
func withSubject(t *testing.T, seg, sub string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(raw, &c))
	c["sub"] = sub
	out, err := json.Marshal(c)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(out)
}

// flipByte flips one bit of a byte in the middle of a base64url segment.
func flipByte(t *testing.T, seg string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0x01
	return base64.RawURLEncoding.EncodeToString(raw)
}

// resign signs the same header (alg, kid, typ) and payload with a key of
// the same kind that is not ours.
func resign(t *testing.T, headerSeg, payloadSeg string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(headerSeg)
	require.NoError(t, err)
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	require.NoError(t, json.Unmarshal(raw, &h))
	var key any
	if h.Alg == "ES256" {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	require.NoError(t, err)
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), h.Kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(h.Alg), Key: key}, opts)
	require.NoError(t, err)
	payload, err := base64.RawURLEncoding.DecodeString(payloadSeg)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	out, err := jws.CompactSerialize()
	require.NoError(t, err)
	return out
}
