package provider

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestJWTAccessTokenClockSkew: a JWT access token signed by a replica
// whose clock runs ahead (its iat, or nbf, up to clockSkew in this
// replica's future) is accepted; one further ahead, an expired one, a
// tampered one and an ID token are refused.
func TestJWTAccessTokenClockSkew(t *testing.T) {
	ctx := context.Background()
	key, err := secrets.ParseKey(secrets.GenerateKey())
	require.NoError(t, err)
	box, err := secrets.New(key)
	require.NoError(t, err)
	keys, err := NewKeySet(ctx, sqltest.Open(t, "sqlite"), box, time.Hour, time.Now)
	require.NoError(t, err)
	a := &accessTokens{jwt: &oauth2.DefaultJWTStrategy{Signer: &tokenSigner{keys: keys, defaultAlg: ES256, accessTokens: true}}}

	now := time.Now()
	sign := func(t *testing.T, typ string, claims jwt.MapClaims) string {
		t.Helper()
		s := &tokenSigner{keys: keys, defaultAlg: ES256}
		token, _, err := s.Generate(ctx, claims, &jwt.Headers{Extra: map[string]any{"typ": typ}})
		require.NoError(t, err)
		return token
	}
	at := func(iat, exp time.Time, extra ...any) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "https://id.example.com", "sub": "u1", "client_id": "c1", "iat": iat.Unix(), "exp": exp.Unix()}
		for i := 0; i+1 < len(extra); i += 2 {
			c[extra[i].(string)] = extra[i+1]
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"issued now", sign(t, "at+jwt", at(now, now.Add(time.Hour))), true},
		{"iat a second ahead (another replica's clock)", sign(t, "at+jwt", at(now.Add(time.Second), now.Add(time.Hour))), true},
		{"iat and nbf within the skew", sign(t, "at+jwt", at(now.Add(40*time.Second), now.Add(time.Hour), "nbf", now.Add(40*time.Second).Unix())), true},
		{"iat just inside the skew", sign(t, "at+jwt", at(now.Add(clockSkew-2*time.Second), now.Add(time.Hour))), true},
		{"iat just past the skew", sign(t, "at+jwt", at(now.Add(clockSkew+2*time.Second), now.Add(time.Hour))), false},
		{"iat past the skew", sign(t, "at+jwt", at(now.Add(clockSkew+time.Minute), now.Add(time.Hour))), false},
		{"nbf past the skew", sign(t, "at+jwt", at(now, now.Add(time.Hour), "nbf", now.Add(clockSkew+time.Minute).Unix())), false},
		{"expired", sign(t, "at+jwt", at(now.Add(-2*time.Hour), now.Add(-time.Hour))), false},
		{"expired and iat ahead", sign(t, "at+jwt", at(now.Add(time.Second), now.Add(-time.Second))), false},
		{"an ID token", sign(t, "JWT", at(now.Add(time.Second), now.Add(time.Hour))), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.ValidateAccessToken(ctx, nil, tc.token)
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
	t.Run("tampered", func(t *testing.T) {
		token := sign(t, "at+jwt", at(now.Add(time.Second), now.Add(time.Hour)))
		other := sign(t, "at+jwt", at(now.Add(time.Second), now.Add(2*time.Hour)))
		// other's header and payload with token's signature.
		forged := other[:strings.LastIndex(other, ".")] + token[strings.LastIndex(token, "."):]
		assert.Error(t, a.ValidateAccessToken(ctx, nil, forged))
	})
}
