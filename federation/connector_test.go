package federation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
)

// fakeUpstream is an OpenID Connect provider whose answers a test
// writes: the checks Exchange makes are each made to fail in turn.
type fakeUpstream struct {
	*httptest.Server
	key      *ecdsa.PrivateKey
	claims   map[string]any // the next ID token's claims
	userinfo map[string]any
	// sign, when set, makes the ID token instead of the upstream's key.
	sign func(payload []byte) string
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	f := &fakeUpstream{key: key}
	mux := http.NewServeMux()
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": f.URL, "authorization_endpoint": f.URL + "/authorize", "token_endpoint": f.URL + "/token",
			"jwks_uri": f.URL + "/jwks", "userinfo_endpoint": f.URL + "/userinfo", "id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if f.sign != nil {
			payload, _ := json.Marshal(f.claims)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": f.sign(payload)})
			return
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		payload, _ := json.Marshal(f.claims)
		sig, err := signer.Sign(payload)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		raw, _ := sig.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": raw})
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.userinfo)
	})
	return f
}

// TestR03_ExchangeVerifies: an ID token is taken only when its
// signature, issuer, audience, expiry, nonce and subject hold, and an
// address from userinfo only when userinfo is about the same subject.
func TestR03_ExchangeVerifies(t *testing.T) {
	f := newFakeUpstream(t)
	c := NewConnector(Upstream{ID: "fake", Name: "Fake", Issuer: f.URL, ClientID: "twofold", ClientSecret: "s",
		Population: store.PopulationContact}, "http://localhost/cb", f.Client())
	now := time.Now()
	good := func() map[string]any {
		return map[string]any{"iss": f.URL, "aud": "twofold", "sub": "u-1", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
			"nonce": "n-1", "email": "a@example.com", "email_verified": true, "auth_time": now.Add(-time.Minute).Unix(), "amr": []string{"pwd"}}
	}
	f.claims = good()
	id, err := c.Exchange(context.Background(), "code", "verifier", "n-1")
	require.NoError(t, err)
	assert.Equal(t, Identity{Subject: "u-1", Email: "a@example.com", EmailVerified: true, AMR: []string{"pwd"},
		AuthTime: time.Unix(now.Add(-time.Minute).Unix(), 0)}, id)

	for name, edit := range map[string]func(map[string]any){
		"another issuer":   func(c map[string]any) { c["iss"] = "https://evil.example.com" },
		"another audience": func(c map[string]any) { c["aud"] = "someone-else" },
		"expired":          func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() },
		"another nonce":    func(c map[string]any) { c["nonce"] = "n-2" },
		"no nonce":         func(c map[string]any) { delete(c, "nonce") },
		"no subject":       func(c map[string]any) { c["sub"] = "" },
	} {
		f.claims = good()
		edit(f.claims)
		_, err := c.Exchange(context.Background(), "code", "verifier", "n-1")
		assert.True(t, errors.Is(err, ErrRefused), "%s: %v", name, err)
	}

	// S23: the signature is always checked, with the upstream's own keys
	// and algorithm.
	b64 := base64.RawURLEncoding.EncodeToString
	jws := func(key any, alg jose.SignatureAlgorithm, kid string) func([]byte) string {
		return func(payload []byte) string {
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
			require.NoError(t, err)
			sig, err := signer.Sign(payload)
			require.NoError(t, err)
			raw, err := sig.CompactSerialize()
			require.NoError(t, err)
			return raw
		}
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for name, sign := range map[string]func([]byte) string{
		"another key":       jws(other, jose.ES256, "k1"),
		"another key's kid": jws(other, jose.ES256, "k2"),
		"an unknown kid":    jws(f.key, jose.ES256, "k2"),
		"alg none":          func(p []byte) string { return b64([]byte(`{"alg":"none","kid":"k1"}`)) + "." + b64(p) + "." },
		"a cut signature": func(p []byte) string {
			s := jws(f.key, jose.ES256, "k1")(p)
			return s[:len(s)-10]
		},
		"HS256, client secret": func(p []byte) string {
			in := b64([]byte(`{"alg":"HS256","kid":"k1"}`)) + "." + b64(p)
			m := hmac.New(sha256.New, []byte("s"))
			m.Write([]byte(in))
			return in + "." + b64(m.Sum(nil))
		},
	} {
		f.claims, f.sign = good(), sign
		_, err := c.Exchange(context.Background(), "code", "verifier", "n-1")
		assert.True(t, errors.Is(err, ErrRefused), "%s: %v", name, err)
	}
	f.sign = nil

	// The address from userinfo, which must be about the same user.
	f.claims = good()
	delete(f.claims, "email")
	delete(f.claims, "email_verified")
	f.userinfo = map[string]any{"sub": "u-1", "email": "b@example.com", "email_verified": true}
	id, err = c.Exchange(context.Background(), "code", "verifier", "n-1")
	require.NoError(t, err)
	assert.Equal(t, "b@example.com", id.Email)
	f.userinfo = map[string]any{"sub": "u-2", "email": "b@example.com", "email_verified": true}
	_, err = c.Exchange(context.Background(), "code", "verifier", "n-1")
	assert.ErrorIs(t, err, ErrRefused, "userinfo about another subject")

	// trust_email makes an unverified address count.
	f.claims = good()
	f.claims["email_verified"] = false
	id, err = c.Exchange(context.Background(), "code", "verifier", "n-1")
	require.NoError(t, err)
	assert.False(t, id.EmailVerified)
	c.Upstream.TrustEmail = true
	id, err = c.Exchange(context.Background(), "code", "verifier", "n-1")
	require.NoError(t, err)
	assert.True(t, id.EmailVerified)

	// AuthURL carries state, nonce, the PKCE challenge and extra options.
	to, err := c.AuthURL(context.Background(), "st", "n-1", "verifier")
	require.NoError(t, err)
	u, err := url.Parse(to)
	require.NoError(t, err)
	q := u.Query()
	assert.Equal(t, "st", q.Get("state"))
	assert.Equal(t, "n-1", q.Get("nonce"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.NotEmpty(t, q.Get("code_challenge"))
	assert.Equal(t, "http://localhost/cb", q.Get("redirect_uri"))
}
