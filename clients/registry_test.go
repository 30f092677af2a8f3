package clients

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

func testRegistry(t *testing.T, dialect string) *Registry {
	t.Helper()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return &Registry{Store: sqltest.Open(t, dialect), Hasher: NewSecretHasher(testKey()), Now: func() time.Time { return now }}
}

func TestRegistryCreate(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			r := testRegistry(t, dialect)

			c, secret, err := r.Create(ctx, Spec{
				Name: "Helpdesk", RedirectURIs: []string{"https://app.example.com/cb"},
				PostLogoutRedirectURIs: []string{"https://app.example.com/"}, FirstParty: true, RequireMFA: true,
			})
			require.NoError(t, err)
			assert.Len(t, secret, 43)

			got, err := r.Get(ctx, c.ID)
			require.NoError(t, err)
			assert.Equal(t, "Helpdesk", got.Name)
			assert.True(t, got.FirstParty)
			assert.True(t, got.RequireMFA)
			assert.Equal(t, store.Strings{"authorization_code", "refresh_token"}, got.GrantTypes)
			assert.Equal(t, store.Strings{"https://app.example.com/"}, got.PostLogoutRedirectURIs)
			assert.Equal(t, AuthClientSecretBasic, got.TokenEndpointAuthMethod)
			assert.Equal(t, "RS256", got.IDTokenAlg)
			assert.Equal(t, store.AccessTokenOpaque, got.AccessTokenFormat, "opaque by default")
			assert.NotContains(t, string(got.SecretHash), secret, "the secret is not stored")
			want, err := r.Hasher.Hash(ctx, []byte(secret))
			require.NoError(t, err)
			assert.Equal(t, want, got.SecretHash, "only its HMAC is")
			assert.NoError(t, r.Hasher.Compare(ctx, got.SecretHash, []byte(secret)))
			assert.ErrorIs(t, r.Hasher.Compare(ctx, got.SecretHash, []byte(GenerateSecret())), ErrSecretMismatch)

			pub, secret, err := r.Create(ctx, Spec{Name: "SPA", Public: true, RedirectURIs: []string{"http://localhost:3000/cb"}})
			require.NoError(t, err)
			assert.Empty(t, secret, "public clients get no secret")
			assert.Empty(t, pub.SecretHash)

			svc, _, err := r.Create(ctx, Spec{Name: "API", GrantTypes: []string{GrantClientCredentials}, IDTokenAlg: "ES256", AccessTokenFormat: "jwt"})
			require.NoError(t, err)
			got, err = r.Get(ctx, svc.ID)
			require.NoError(t, err)
			assert.Equal(t, store.AccessTokenJWT, got.AccessTokenFormat)
			assert.Equal(t, "ES256", got.IDTokenAlg)

			for _, bad := range []Spec{
				{Name: "bad", RedirectURIs: []string{"myapp://cb"}},
				{Name: "bad format", GrantTypes: []string{GrantClientCredentials}, AccessTokenFormat: "jws"},
			} {
				_, _, err = r.Create(ctx, bad)
				var ve *ValidationError
				require.ErrorAs(t, err, &ve)
			}
			list, err := r.List(ctx)
			require.NoError(t, err)
			assert.Len(t, list, 3, "a refused registration writes nothing")
		})
	}
}

func TestRegistryRotateSecret(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			r := testRegistry(t, dialect)
			c, old, err := r.Create(ctx, Spec{Name: "batch", GrantTypes: []string{GrantClientCredentials}, TokenEndpointAuthMethod: AuthClientSecretPost})
			require.NoError(t, err)

			fresh, err := r.RotateSecret(ctx, c.ID)
			require.NoError(t, err)
			assert.NotEqual(t, old, fresh)
			got, err := r.Get(ctx, c.ID)
			require.NoError(t, err)
			assert.NoError(t, r.Hasher.Compare(ctx, got.SecretHash, []byte(fresh)))
			assert.ErrorIs(t, r.Hasher.Compare(ctx, got.SecretHash, []byte(old)), ErrSecretMismatch, "the old secret stops matching")

			pub, _, err := r.Create(ctx, Spec{Name: "SPA", Public: true, RedirectURIs: []string{"http://[::1]/cb"}})
			require.NoError(t, err)
			_, err = r.RotateSecret(ctx, pub.ID)
			assert.ErrorIs(t, err, ErrNoSecret)

			_, err = r.RotateSecret(ctx, "tf_000000000000000000000000")
			assert.ErrorIs(t, err, store.ErrNotFound)
		})
	}
}

func TestRegistryDelete(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			r := testRegistry(t, dialect)
			c, _, err := r.Create(ctx, Spec{Name: "x", RedirectURIs: []string{"https://app.example.com/cb"}})
			require.NoError(t, err)
			require.NoError(t, r.Delete(ctx, c.ID))
			_, err = r.Get(ctx, c.ID)
			assert.ErrorIs(t, err, store.ErrNotFound)
			assert.True(t, errors.Is(r.Delete(ctx, c.ID), store.ErrNotFound))
		})
	}
}
