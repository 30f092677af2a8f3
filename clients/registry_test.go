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

func TestRegistryUpdate(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			r := testRegistry(t, dialect)
			c, secret, err := r.Create(ctx, Spec{Name: "Helpdesk", RedirectURIs: []string{"https://app.example.com/cb"}})
			require.NoError(t, err)
			later := time.Date(2025, 3, 2, 9, 0, 0, 0, time.UTC)
			r.Now = func() time.Time { return later }

			got, changes, err := r.Update(ctx, c.ID, func(s *Spec) {
				s.Name = "Help desk"
				s.RedirectURIs = []string{"https://app.example.com/cb", "https://app.example.com/cb2"}
				s.TokenEndpointAuthMethod = AuthClientSecretPost // shares the secret: allowed
				s.RequireMFA, s.AccessTokenFormat = true, store.AccessTokenJWT
				s.PKCEOptional = true
			})
			require.NoError(t, err)
			assert.Equal(t, map[string]any{
				"client_name":                map[string]any{"from": "Helpdesk", "to": "Help desk"},
				"redirect_uris":              map[string]any{"from": []string{"https://app.example.com/cb"}, "to": []string{"https://app.example.com/cb", "https://app.example.com/cb2"}},
				"token_endpoint_auth_method": map[string]any{"from": AuthClientSecretBasic, "to": AuthClientSecretPost},
				"require_mfa":                map[string]any{"from": false, "to": true},
				"pkce_optional":              map[string]any{"from": false, "to": true},
				"access_token_format":        map[string]any{"from": store.AccessTokenOpaque, "to": store.AccessTokenJWT},
			}, changes, "exactly what changed, old and new")
			stored, err := r.Get(ctx, c.ID)
			require.NoError(t, err)
			assert.True(t, got.UpdatedAt.Equal(stored.UpdatedAt) && got.CreatedAt.Equal(stored.CreatedAt))
			got.CreatedAt, got.UpdatedAt = stored.CreatedAt, stored.UpdatedAt
			assert.Equal(t, stored, got, "Update returns what it stored")
			assert.Equal(t, "Help desk", stored.Name)
			assert.Equal(t, store.Strings{"https://app.example.com/cb", "https://app.example.com/cb2"}, stored.RedirectURIs)
			assert.Equal(t, AuthClientSecretPost, stored.TokenEndpointAuthMethod)
			assert.True(t, stored.RequireMFA)
			assert.True(t, stored.PKCEOptional)
			assert.Equal(t, store.AccessTokenJWT, stored.AccessTokenFormat)
			assert.Equal(t, store.Strings{"authorization_code", "refresh_token"}, stored.GrantTypes, "what was not edited stays")
			assert.True(t, later.Equal(stored.UpdatedAt))
			assert.True(t, c.CreatedAt.Equal(stored.CreatedAt))
			assert.NoError(t, r.Hasher.Compare(ctx, stored.SecretHash, []byte(secret)), "the secret still works")

			// Refused edits change nothing.
			for _, tc := range []struct {
				name string
				edit func(*Spec)
				want error
			}{
				{"bad redirect URI", func(s *Spec) { s.RedirectURIs = []string{"http://evil.example.com/cb"} }, nil},
				{"no name", func(s *Spec) { s.Name = " " }, nil},
				{"to public", func(s *Spec) { s.Public, s.TokenEndpointAuthMethod = true, AuthNone }, ErrAuthChange},
				{"to private_key_jwt", func(s *Spec) {
					s.TokenEndpointAuthMethod, s.JWKSURI = AuthPrivateKeyJWT, "https://app.example.com/jwks"
				}, ErrAuthChange},
			} {
				t.Run(tc.name, func(t *testing.T) {
					_, _, err := r.Update(ctx, c.ID, tc.edit)
					require.Error(t, err)
					if tc.want != nil {
						assert.ErrorIs(t, err, tc.want)
					} else {
						var ve *ValidationError
						assert.ErrorAs(t, err, &ve)
					}
					after, err := r.Get(ctx, c.ID)
					require.NoError(t, err)
					assert.Equal(t, stored, after)
				})
			}

			// The same values again: no change, nothing written.
			same, changes, err := r.Update(ctx, c.ID, func(s *Spec) { s.Name = "Help desk" })
			require.NoError(t, err)
			assert.Empty(t, changes)
			assert.True(t, stored.UpdatedAt.Equal(same.UpdatedAt))

			// An update that read the client before another wrote it
			// loses, rather than undo the other's change.
			_, _, err = r.Update(ctx, c.ID, func(s *Spec) {
				_, _, err := r.Update(ctx, c.ID, func(s *Spec) { s.RequireMFA = false }) // the other admin, in between
				require.NoError(t, err)
				s.Name = "Late"
			})
			require.ErrorIs(t, err, store.ErrConflict)
			after, err := r.Get(ctx, c.ID)
			require.NoError(t, err)
			assert.False(t, after.RequireMFA, "the other update stays")
			assert.Equal(t, "Help desk", after.Name, "the late one is refused")

			// An edit made on a page read before the last update is
			// refused; one made on the current version is taken.
			_, _, err = r.UpdateSeen(ctx, c.ID, stored.UpdatedAt, func(s *Spec) { s.Name = "Stale page" })
			require.ErrorIs(t, err, store.ErrConflict)
			after, err = r.Get(ctx, c.ID)
			require.NoError(t, err)
			assert.Equal(t, "Help desk", after.Name, "the stale edit changed nothing")
			got, _, err = r.UpdateSeen(ctx, c.ID, after.UpdatedAt, func(s *Spec) { s.Name = "Fresh page" })
			require.NoError(t, err)
			assert.Equal(t, "Fresh page", got.Name)

			_, _, err = r.Update(ctx, "tf_missing", func(*Spec) {})
			assert.ErrorIs(t, err, store.ErrNotFound)
		})
	}
}
