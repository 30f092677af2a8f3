package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
)

func newClient(id, name string) store.Client {
	return store.Client{
		ID: id, Name: name,
		SecretHash:              []byte{0x00, 0x01, 0xfe, 0xff, 'h', 'm', 'a', 'c'},
		RedirectURIs:            store.Strings{"https://app.example.com/callback"},
		GrantTypes:              store.Strings{"authorization_code"},
		Scopes:                  store.Strings{"openid"},
		TokenEndpointAuthMethod: "client_secret_basic",
		IDTokenAlg:              "RS256",
		AccessTokenFormat:       store.AccessTokenOpaque,
		CreatedAt:               base, UpdatedAt: base,
	}
}

// sameTime asserts two instants are equal, whatever their location.
func sameTime(t *testing.T, want, got time.Time, what string) {
	t.Helper()
	assert.True(t, want.Equal(got), "%s: got %v, want %v", what, got, want)
}

func testClientCreateGet(t *testing.T, s store.Store) {
	c := store.Client{
		ID:                      "app",
		Name:                    "The App",
		SecretHash:              []byte{0x00, 0x10, 0x80, 0xff, 0x7f, 0x00},
		Public:                  false,
		FirstParty:              true,
		RequireMFA:              true,
		PKCEOptional:            true,
		RedirectURIs:            store.Strings{"https://app.example.com/cb", "http://127.0.0.1:8080/cb?x=1&y=\"2\""},
		PostLogoutRedirectURIs:  store.Strings{"https://app.example.com/bye"},
		GrantTypes:              store.Strings{"authorization_code", "refresh_token", "client_credentials"},
		Scopes:                  store.Strings{"openid", "profile", "email", "offline_access"},
		TokenEndpointAuthMethod: "private_key_jwt",
		JWKS:                    `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}`,
		JWKSURI:                 "https://app.example.com/jwks.json",
		IDTokenAlg:              "ES256",
		AccessTokenFormat:       store.AccessTokenJWT,
		CreatedAt:               base,
		UpdatedAt:               base.Add(90 * time.Minute),
	}
	require.NoError(t, s.CreateClient(ctx, c))

	got, err := s.GetClient(ctx, "app")
	require.NoError(t, err)
	assert.Equal(t, c.ID, got.ID)
	assert.Equal(t, c.Name, got.Name)
	assert.Equal(t, c.SecretHash, got.SecretHash)
	assert.False(t, got.Public)
	assert.True(t, got.FirstParty)
	assert.True(t, got.RequireMFA)
	assert.True(t, got.PKCEOptional)
	assert.Equal(t, c.RedirectURIs, got.RedirectURIs)
	assert.Equal(t, c.PostLogoutRedirectURIs, got.PostLogoutRedirectURIs)
	assert.Equal(t, c.GrantTypes, got.GrantTypes)
	assert.Equal(t, c.Scopes, got.Scopes)
	assert.Equal(t, c.TokenEndpointAuthMethod, got.TokenEndpointAuthMethod)
	assert.Equal(t, c.JWKS, got.JWKS)
	assert.Equal(t, c.JWKSURI, got.JWKSURI)
	assert.Equal(t, "ES256", got.IDTokenAlg)
	assert.Equal(t, store.AccessTokenJWT, got.AccessTokenFormat)
	sameTime(t, c.CreatedAt, got.CreatedAt, "created_at")
	sameTime(t, c.UpdatedAt, got.UpdatedAt, "updated_at")

	// A public client: no secret, empty lists, the other booleans.
	pub := store.Client{
		ID: "spa", Name: "SPA", Public: true,
		TokenEndpointAuthMethod: "none", IDTokenAlg: "RS256",
		CreatedAt: base, UpdatedAt: base,
	}
	require.NoError(t, s.CreateClient(ctx, pub))
	got, err = s.GetClient(ctx, "spa")
	require.NoError(t, err)
	assert.Nil(t, got.SecretHash, "no secret (NULL) reads back as nil")
	assert.True(t, got.Public)
	assert.False(t, got.FirstParty)
	assert.False(t, got.RequireMFA)
	assert.False(t, got.PKCEOptional)
	assert.NotNil(t, got.RedirectURIs)
	assert.Empty(t, got.RedirectURIs)
	assert.Empty(t, got.PostLogoutRedirectURIs)
	assert.Empty(t, got.GrantTypes)
	assert.Empty(t, got.Scopes)
	assert.Equal(t, "none", got.TokenEndpointAuthMethod)
	assert.Empty(t, got.JWKS)
	assert.Empty(t, got.JWKSURI)
	assert.Equal(t, "RS256", got.IDTokenAlg)
	assert.Equal(t, store.AccessTokenOpaque, got.AccessTokenFormat, "an unset format is stored as opaque")

	_, err = s.GetClient(ctx, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)

	// The store keeps only the formats Twofold knows.
	bad := newClient("bad", "Bad")
	bad.AccessTokenFormat = "JWT"
	require.Error(t, s.CreateClient(ctx, bad))
	_, err = s.GetClient(ctx, "bad")
	require.ErrorIs(t, err, store.ErrNotFound, "a refused client is not written")
}

func testClientDuplicate(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateClient(ctx, newClient("app", "First")))
	err := s.CreateClient(ctx, newClient("app", "Second"))
	require.ErrorIs(t, err, store.ErrAlreadyExists)

	got, err := s.GetClient(ctx, "app")
	require.NoError(t, err)
	assert.Equal(t, "First", got.Name, "a refused insert changes nothing")

	// Names are not unique.
	require.NoError(t, s.CreateClient(ctx, newClient("app2", "First")))
}

func testClientList(t *testing.T, s store.Store) {
	clients, err := s.ListClients(ctx)
	require.NoError(t, err)
	assert.Empty(t, clients)
	assert.NotNil(t, clients, "an empty list is [] not nil, for JSON output")

	// Ordered by name, then id.
	require.NoError(t, s.CreateClient(ctx, newClient("b", "zeta")))
	require.NoError(t, s.CreateClient(ctx, newClient("c", "alpha")))
	require.NoError(t, s.CreateClient(ctx, newClient("a", "alpha")))
	require.NoError(t, s.CreateClient(ctx, newClient("d", "mu")))

	clients, err = s.ListClients(ctx)
	require.NoError(t, err)
	require.Len(t, clients, 4)
	assert.Equal(t, []string{"a", "c", "d", "b"}, clientIDs(clients))
	assert.Equal(t, store.Strings{"https://app.example.com/callback"}, clients[0].RedirectURIs, "listed clients are complete")
	assert.Equal(t, store.AccessTokenOpaque, clients[0].AccessTokenFormat)
	assert.Equal(t, newClient("", "").SecretHash, clients[0].SecretHash)
}

func clientIDs(cs []store.Client) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func testClientUpdateSecret(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateClient(ctx, newClient("app", "App")))
	require.NoError(t, s.CreateClient(ctx, newClient("other", "Other")))

	later := base.Add(24 * time.Hour)
	newHash := []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01}
	require.NoError(t, s.UpdateClientSecret(ctx, "app", newHash, later))

	got, err := s.GetClient(ctx, "app")
	require.NoError(t, err)
	assert.Equal(t, newHash, got.SecretHash)
	sameTime(t, later, got.UpdatedAt, "updated_at")
	sameTime(t, base, got.CreatedAt, "created_at is not touched")
	assert.Equal(t, "App", got.Name)
	assert.Equal(t, store.Strings{"https://app.example.com/callback"}, got.RedirectURIs)

	other, err := s.GetClient(ctx, "other")
	require.NoError(t, err)
	assert.Equal(t, newClient("", "").SecretHash, other.SecretHash, "only the named client changes")
	sameTime(t, base, other.UpdatedAt, "other updated_at")

	// Clearing the secret.
	require.NoError(t, s.UpdateClientSecret(ctx, "app", nil, later.Add(time.Second)))
	got, err = s.GetClient(ctx, "app")
	require.NoError(t, err)
	assert.Nil(t, got.SecretHash, "a cleared secret reads back as nil")

	require.ErrorIs(t, s.UpdateClientSecret(ctx, "missing", newHash, later), store.ErrNotFound)
}

func testClientUpdate(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateClient(ctx, newClient("app", "App")))
	require.NoError(t, s.CreateClient(ctx, newClient("other", "Other")))

	later := base.Add(time.Hour)
	c := newClient("app", "App, renamed")
	c.SecretHash, c.Public, c.CreatedAt = nil, true, later // never written by UpdateClient
	c.FirstParty, c.RequireMFA, c.PKCEOptional = true, true, true
	c.RedirectURIs = store.Strings{"https://app.example.com/a", "https://app.example.com/b?x=1"}
	c.PostLogoutRedirectURIs = store.Strings{"https://app.example.com/bye"}
	c.GrantTypes = store.Strings{"authorization_code", "refresh_token"}
	c.Scopes = store.Strings{"openid", "email"}
	c.TokenEndpointAuthMethod = "client_secret_post"
	c.IDTokenAlg, c.AccessTokenFormat = "ES256", store.AccessTokenJWT
	c.UpdatedAt = later
	require.NoError(t, s.UpdateClient(ctx, c, base))

	got, err := s.GetClient(ctx, "app")
	require.NoError(t, err)
	assert.Equal(t, "App, renamed", got.Name)
	assert.True(t, got.FirstParty)
	assert.True(t, got.RequireMFA)
	assert.True(t, got.PKCEOptional)
	assert.Equal(t, c.RedirectURIs, got.RedirectURIs)
	assert.Equal(t, c.PostLogoutRedirectURIs, got.PostLogoutRedirectURIs)
	assert.Equal(t, c.GrantTypes, got.GrantTypes)
	assert.Equal(t, c.Scopes, got.Scopes)
	assert.Equal(t, "client_secret_post", got.TokenEndpointAuthMethod)
	assert.Equal(t, "ES256", got.IDTokenAlg)
	assert.Equal(t, store.AccessTokenJWT, got.AccessTokenFormat)
	sameTime(t, later, got.UpdatedAt, "updated_at")
	sameTime(t, base, got.CreatedAt, "created_at is not touched")
	assert.Equal(t, newClient("", "").SecretHash, got.SecretHash, "the secret is not touched")
	assert.False(t, got.Public, "public is not touched")

	other, err := s.GetClient(ctx, "other")
	require.NoError(t, err)
	assert.Equal(t, "Other", other.Name, "only the named client changes")
	sameTime(t, base, other.UpdatedAt, "other updated_at")

	// An update from a stale read (since: before the one above) is a
	// conflict and changes nothing.
	stale := c
	stale.Name, stale.UpdatedAt = "Stale", later.Add(time.Hour)
	require.ErrorIs(t, s.UpdateClient(ctx, stale, base), store.ErrConflict)
	got, err = s.GetClient(ctx, "app")
	require.NoError(t, err)
	assert.Equal(t, "App, renamed", got.Name)
	sameTime(t, later, got.UpdatedAt, "updated_at after a refused update")
	// Reading what is stored and writing it back works (the stored time
	// compares equal to itself on both databases).
	stale.Name = "Fresh"
	require.NoError(t, s.UpdateClient(ctx, stale, got.UpdatedAt))

	c.ID = "missing"
	require.ErrorIs(t, s.UpdateClient(ctx, c, base), store.ErrNotFound)
}

func newOAuth2Request(kind, sig, requestID, clientID string) store.OAuth2Request {
	return store.OAuth2Request{
		Kind: kind, Signature: sig, RequestID: requestID, ClientID: clientID,
		Subject: "u1", Active: true,
		RequestedAt: base, ExpiresAt: base.Add(time.Hour),
		Data: `{"form":{"scope":["openid"]}}`,
	}
}

func testClientDelete(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateClient(ctx, newClient("app", "App")))
	require.NoError(t, s.CreateClient(ctx, newClient("other", "Other")))
	for _, r := range []store.OAuth2Request{
		newOAuth2Request(store.KindAuthorizeCode, "sig-code", "req1", "app"),
		newOAuth2Request(store.KindAccessToken, "sig-access", "req1", "app"),
		newOAuth2Request(store.KindRefreshToken, "sig-refresh", "req1", "app"),
		newOAuth2Request(store.KindAccessToken, "sig-other", "req2", "other"),
	} {
		require.NoError(t, s.CreateOAuth2Request(ctx, r))
	}

	// Revoking the client's tokens leaves the client; deleting it
	// removes whatever tokens it got since.
	n, err := s.DeleteClientTokens(ctx, "app")
	require.NoError(t, err)
	assert.EqualValues(t, 3, n)
	_, err = s.GetClient(ctx, "app")
	require.NoError(t, err, "the client stays")
	_, err = s.GetOAuth2Request(ctx, store.KindAccessToken, "sig-access")
	require.ErrorIs(t, err, store.ErrNotFound)
	n, err = s.DeleteClientTokens(ctx, "app")
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left")
	require.NoError(t, s.CreateOAuth2Request(ctx, newOAuth2Request(store.KindAccessToken, "sig-access", "req3", "app")))

	require.NoError(t, s.DeleteClient(ctx, "app"))

	_, err = s.GetClient(ctx, "app")
	require.ErrorIs(t, err, store.ErrNotFound)
	for _, r := range []struct{ kind, sig string }{
		{store.KindAuthorizeCode, "sig-code"},
		{store.KindAccessToken, "sig-access"},
		{store.KindRefreshToken, "sig-refresh"},
	} {
		_, err := s.GetOAuth2Request(ctx, r.kind, r.sig)
		require.ErrorIs(t, err, store.ErrNotFound, "%s %s of the deleted client", r.kind, r.sig)
	}

	other, err := s.GetOAuth2Request(ctx, store.KindAccessToken, "sig-other")
	require.NoError(t, err, "another client's token stays")
	assert.Equal(t, "other", other.ClientID)
	assert.True(t, other.Active)
	clients, err := s.ListClients(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"other"}, clientIDs(clients))

	require.ErrorIs(t, s.DeleteClient(ctx, "app"), store.ErrNotFound, "deleting twice")
	require.ErrorIs(t, s.DeleteClient(ctx, "missing"), store.ErrNotFound)
	_, err = s.GetOAuth2Request(ctx, store.KindAccessToken, "sig-other")
	require.NoError(t, err)
}
