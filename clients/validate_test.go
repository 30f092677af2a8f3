package clients

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateRedirectURI(t *testing.T) {
	tests := []struct {
		uri  string
		want string // "" to accept, else part of the error
	}{
		{"https://app.example.com/cb", ""},
		{"https://app.example.com:8443/cb?tenant=a", ""},
		{"http://localhost:3000/cb", ""},
		{"http://LOCALHOST/cb", ""},
		{"http://127.0.0.1:8080/cb", ""},
		{"http://[::1]/cb", ""},
		{"http://app.example.com/cb", "http is only allowed on localhost"},
		{"http://127.0.0.2/cb", "http is only allowed on localhost"},
		{"http://localhost.example.com/cb", "http is only allowed on localhost"},
		{"https://app.example.com/cb#f", "fragment"},
		{"https://app.example.com/cb#", "fragment"},
		{"https://user@app.example.com/cb", "user info"},
		{"https://user:pw@app.example.com/cb", "user info"},
		{"https://*.example.com/cb", "wildcards"},
		{"https://app.example.com/*", "wildcards"},
		{"javascript:alert(1)", `scheme "javascript" is not allowed`},
		{"myapp://cb", `scheme "myapp" is not allowed`},
		{"com.example.app:/cb", `scheme "com.example.app" is not allowed`},
		{"/cb", "absolute"},
		{"app.example.com/cb", "absolute"},
		{"", "empty"},
		{"https:///cb", "host"},
		{"https:app.example.com/cb", "host"},
		{"https://app.example.com/c b", "spaces"},
		{"https://app.example.com/\tcb", "spaces"},
		{"https://app.example.com/" + strings.Repeat("a", MaxURILen), "longer than 2000"},
	}
	for _, tc := range tests {
		t.Run(tc.uri, func(t *testing.T) {
			err := ValidateRedirectURI(tc.uri)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestValidateDefaults(t *testing.T) {
	got, err := Validate(Spec{Name: "  Helpdesk  ", RedirectURIs: []string{"https://app.example.com/cb"}})
	require.NoError(t, err)
	assert.Equal(t, "Helpdesk", got.Name, "trimmed")
	assert.Equal(t, []string{GrantAuthorizationCode, GrantRefreshToken}, got.GrantTypes)
	assert.Equal(t, []string{"openid", "profile", "email", "offline_access"}, got.Scopes)
	assert.Equal(t, AuthClientSecretBasic, got.TokenEndpointAuthMethod)
	assert.Equal(t, "RS256", got.IDTokenAlg)
	assert.Equal(t, "opaque", got.AccessTokenFormat)

	got, err = Validate(Spec{Name: "SPA", Public: true, RedirectURIs: []string{"http://localhost:3000/cb"}})
	require.NoError(t, err)
	assert.Equal(t, AuthNone, got.TokenEndpointAuthMethod, "public clients default to none")

	got, err = Validate(Spec{Name: "batch", GrantTypes: []string{GrantClientCredentials}})
	require.NoError(t, err, "client_credentials needs no redirect URI")
	assert.Empty(t, got.RedirectURIs)
}

func TestValidateDoesNotAlias(t *testing.T) {
	uris := []string{"https://app.example.com/cb"}
	got, err := Validate(Spec{Name: "x", RedirectURIs: uris})
	require.NoError(t, err)
	got.RedirectURIs[0] = "changed"
	assert.Equal(t, "https://app.example.com/cb", uris[0])
}

func TestValidateRefuses(t *testing.T) {
	cb := []string{"https://app.example.com/cb"}
	publicJWKS, privateJWKS := testJWKS(t)
	tests := []struct {
		name  string
		spec  Spec
		field string
		want  string
	}{
		{"no name", Spec{RedirectURIs: cb}, "name", "required"},
		{"blank name", Spec{Name: "   ", RedirectURIs: cb}, "name", "required"},
		{"long name", Spec{Name: strings.Repeat("é", MaxNameLen+1), RedirectURIs: cb}, "name", "longer than 200"},
		{"control character in name", Spec{Name: "a\x1b[31mb", RedirectURIs: cb}, "name", "control characters"},
		{"password grant", Spec{Name: "x", RedirectURIs: cb, GrantTypes: []string{"password"}}, "grant_types", `"password" is not supported`},
		{"implicit grant", Spec{Name: "x", RedirectURIs: cb, GrantTypes: []string{"implicit"}}, "grant_types", `"implicit" is not supported`},
		{"unknown grant", Spec{Name: "x", RedirectURIs: cb, GrantTypes: []string{"urn:ietf:params:oauth:grant-type:device_code"}}, "grant_types", "not supported"},
		{"duplicate grant", Spec{Name: "x", RedirectURIs: cb, GrantTypes: []string{"authorization_code", "authorization_code"}}, "grant_types", "listed twice"},
		{"refresh without code", Spec{Name: "x", GrantTypes: []string{"client_credentials", "refresh_token"}}, "grant_types", "refresh_token needs authorization_code"},
		{"unknown scope", Spec{Name: "x", RedirectURIs: cb, Scopes: []string{"openid", "admin"}}, "scopes", `"admin" is not supported`},
		{"code without redirect", Spec{Name: "x"}, "redirect_uris", "at least one redirect URI"},
		{"bad redirect", Spec{Name: "x", RedirectURIs: []string{"http://app.example.com/cb"}}, "redirect_uris", "http is only allowed"},
		{"duplicate redirect", Spec{Name: "x", RedirectURIs: []string{cb[0], cb[0]}}, "redirect_uris", "listed twice"},
		{"bad post-logout", Spec{Name: "x", RedirectURIs: cb, PostLogoutRedirectURIs: []string{"myapp://bye"}}, "post_logout_redirect_uris", "not allowed"},
		{"unknown auth method", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: "client_secret_jwt"}, "token_endpoint_auth_method", "not supported"},
		{"public with secret", Spec{Name: "x", RedirectURIs: cb, Public: true, TokenEndpointAuthMethod: AuthClientSecretBasic}, "token_endpoint_auth_method", "public client"},
		{"none but confidential", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: AuthNone}, "token_endpoint_auth_method", "only for public clients"},
		{"public client credentials", Spec{Name: "x", Public: true, GrantTypes: []string{"client_credentials"}}, "grant_types", "cannot use client_credentials"},
		{"public without PKCE", Spec{Name: "x", RedirectURIs: cb, Public: true, PKCEOptional: true}, "pkce_optional", "public client must use PKCE"},
		{"PKCE optional without a code flow", Spec{Name: "x", GrantTypes: []string{"client_credentials"}, PKCEOptional: true}, "pkce_optional", "only the authorization_code grant"},
		{"jwks without private_key_jwt", Spec{Name: "x", RedirectURIs: cb, JWKS: publicJWKS}, "jwks", "only used with private_key_jwt"},
		{"private_key_jwt without keys", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: AuthPrivateKeyJWT}, "jwks", "needs jwks or jwks_uri"},
		{"private_key_jwt with both", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKS: publicJWKS, JWKSURI: "https://app.example.com/jwks"}, "jwks", "not both"},
		{"jwks not json", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKS: "{nope"}, "jwks", "not a JSON Web Key Set"},
		{"jwks empty", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKS: `{"keys":[]}`}, "jwks", "no keys"},
		{"jwks private key", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKS: privateJWKS}, "jwks", "private or symmetric"},
		{"jwks symmetric key", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKS: `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0"}]}`}, "jwks", "private or symmetric"},
		{"jwks_uri over http", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKSURI: "http://app.example.com/jwks"}, "jwks_uri", "https"},
		{"jwks_uri relative", Spec{Name: "x", RedirectURIs: cb, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKSURI: "/jwks"}, "jwks_uri", "https"},
		{"id token alg", Spec{Name: "x", RedirectURIs: cb, IDTokenAlg: "HS256"}, "id_token_alg", `"HS256" is not supported`},
		{"id token alg none", Spec{Name: "x", RedirectURIs: cb, IDTokenAlg: "none"}, "id_token_alg", "not supported"},
		{"access token format", Spec{Name: "x", RedirectURIs: cb, AccessTokenFormat: "jws"}, "access_token_format", `"jws" is not supported (want opaque or jwt)`},
		{"access token format upper case", Spec{Name: "x", RedirectURIs: cb, AccessTokenFormat: "JWT"}, "access_token_format", `"JWT" is not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(tc.spec)
			require.Error(t, err)
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, tc.field, ve.Field)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), tc.field+": ", "the message names the field")
		})
	}
}

func TestValidateAccessTokenFormat(t *testing.T) {
	for _, format := range []string{"opaque", "jwt"} {
		got, err := Validate(Spec{Name: "x", GrantTypes: []string{GrantClientCredentials}, IDTokenAlg: "ES256", AccessTokenFormat: format})
		require.NoError(t, err)
		assert.Equal(t, format, got.AccessTokenFormat)
		assert.Equal(t, "ES256", got.IDTokenAlg, "a JWT access token is signed with the client's algorithm")
	}
}

func TestValidatePrivateKeyJWT(t *testing.T) {
	publicJWKS, _ := testJWKS(t)
	for _, spec := range []Spec{
		{Name: "x", GrantTypes: []string{GrantClientCredentials}, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKS: publicJWKS},
		{Name: "x", GrantTypes: []string{GrantClientCredentials}, TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKSURI: "https://app.example.com/.well-known/jwks.json"},
	} {
		got, err := Validate(spec)
		require.NoError(t, err)
		assert.Equal(t, AuthPrivateKeyJWT, got.TokenEndpointAuthMethod)
	}
}

// testJWKS returns a key set holding one P-256 public key, and the same
// set with the private key.
func testJWKS(t *testing.T) (public, private string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	enc := func(key any) string {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
		require.NoError(t, err)
		return string(b)
	}
	return enc(&k.PublicKey), enc(k)
}
