package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

func TestClientsCommands(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			keyText := secrets.GenerateKey()
			env := append(migratedDB(t, dialect), "TWOFOLD_SECRETS_KEY="+keyText)
			key, err := secrets.ParseKey(keyText)
			require.NoError(t, err)
			hasher := clients.NewSecretHasher(key)

			create := func(args ...string) result {
				return twofold(t, env, "", append([]string{"clients", "create", "--output", "json"}, args...)...)
			}
			listJSON := func() []clientJSON {
				t.Helper()
				r := twofold(t, env, "", "clients", "list", "--output", "json")
				require.Equal(t, 0, r.code, r.stderr)
				var out []clientJSON
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
				return out
			}
			// noSecret asserts out shows neither the secret nor its stored hash.
			noSecret := func(out, secret string) {
				t.Helper()
				hash, err := hasher.Hash(context.Background(), []byte(secret))
				require.NoError(t, err)
				assert.NotContains(t, out, secret)
				for _, enc := range []string{hex.EncodeToString(hash), base64.StdEncoding.EncodeToString(hash), base64.RawURLEncoding.EncodeToString(hash)} {
					assert.NotContains(t, out, enc)
				}
				assert.NotContains(t, out, "client_secret\"")
				assert.NotContains(t, out, "secret_hash")
			}

			r := create("--name", "Helpdesk", "--redirect-uri", "https://app.example.com/cb",
				"--redirect-uri", "http://localhost:3000/cb", "--post-logout-redirect-uri", "https://app.example.com/", "--first-party")
			require.Equal(t, 0, r.code, r.stderr)
			var creds map[string]string
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &creds))
			assert.Len(t, creds, 2, "exactly client_id and client_secret: %s", r.stdout)
			id, secret := creds["client_id"], creds["client_secret"]
			assert.Regexp(t, `^tf_[0-9a-f]{24}$`, id)
			assert.GreaterOrEqual(t, len(secret), 43)

			// The secret is stored only as its HMAC, and that HMAC checks it.
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			stored, err := s.GetClient(context.Background(), id)
			require.NoError(t, err)
			assert.NoError(t, hasher.Compare(context.Background(), stored.SecretHash, []byte(secret)))
			events, err := s.ListAudit(context.Background(), store.AuditFilter{})
			require.NoError(t, err)
			require.NotEmpty(t, events)
			assert.Equal(t, "client.created", events[0].Type)
			assert.Equal(t, id, events[0].ClientID)
			assert.Equal(t, "cli", events[0].ActorID)
			assert.NotContains(t, events[0].Detail, secret)

			t.Run("text output is two lines", func(t *testing.T) {
				r := twofold(t, env, "", "clients", "create", "--name", "Reports", "--redirect-uri", "https://reports.example.com/cb")
				require.Equal(t, 0, r.code, r.stderr)
				lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
				require.Len(t, lines, 2, r.stdout)
				assert.True(t, strings.HasPrefix(lines[0], "client_id: tf_"), lines[0])
				assert.True(t, strings.HasPrefix(lines[1], "client_secret: "), lines[1])
			})

			t.Run("list and show never print the secret", func(t *testing.T) {
				for _, args := range [][]string{
					{"clients", "list"}, {"clients", "list", "--output", "json"},
					{"clients", "show", id}, {"clients", "show", id, "--output", "json"},
				} {
					r := twofold(t, env, "", args...)
					require.Equal(t, 0, r.code, r.stderr)
					assert.Contains(t, r.stdout, id)
					noSecret(r.stdout, secret)
				}
				r := twofold(t, env, "", "clients", "show", id, "--output", "json")
				var c clientJSON
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &c))
				assert.Equal(t, "Helpdesk", c.Name)
				assert.True(t, c.HasSecret)
				assert.True(t, c.FirstParty)
				assert.Equal(t, []string{"authorization_code", "refresh_token"}, c.GrantTypes)
				assert.Equal(t, "client_secret_basic", c.TokenEndpointAuthMethod)
				assert.Equal(t, "opaque", c.AccessTokenFormat, "opaque access tokens by default")
				r = twofold(t, env, "", "clients", "show", id)
				assert.Regexp(t, `access token format\s+opaque`, r.stdout)
			})

			before := len(listJSON())
			bad := []struct {
				name     string
				args     []string
				code     int
				contains string
			}{
				{"http redirect", []string{"--name", "x", "--redirect-uri", "http://app.example.com/cb"}, exitFailed, "redirect_uris"},
				{"fragment", []string{"--name", "x", "--redirect-uri", "https://app.example.com/cb#f"}, exitFailed, "fragment"},
				{"custom scheme", []string{"--name", "x", "--redirect-uri", "myapp://cb"}, exitFailed, `scheme "myapp" is not allowed`},
				{"password grant", []string{"--name", "x", "--redirect-uri", "https://app.example.com/cb", "--grant-type", "password"}, exitFailed, `grant_types: "password" is not supported`},
				{"unknown scope", []string{"--name", "x", "--redirect-uri", "https://app.example.com/cb", "--scope", "admin"}, exitFailed, "scopes"},
				{"no redirect", []string{"--name", "x"}, exitFailed, "at least one redirect URI"},
				{"private jwks file missing", []string{"--name", "x", "--token-endpoint-auth-method", "private_key_jwt", "--jwks", "@/nonexistent/jwks.json", "--redirect-uri", "https://app.example.com/cb"}, exitFailed, "read --jwks file"},
				{"access token format", []string{"--name", "x", "--grant-type", "client_credentials", "--access-token-format", "jws"}, exitFailed, `access_token_format: "jws" is not supported (want opaque or jwt)`},
				{"missing name", []string{"--redirect-uri", "https://app.example.com/cb"}, exitUsage, "--name is required"},
				{"bad output", []string{"--name", "x", "--output", "yaml"}, exitUsage, "--output"},
			}
			for _, tc := range bad {
				t.Run(tc.name, func(t *testing.T) {
					r := create(tc.args...)
					assert.Equal(t, tc.code, r.code, r.stderr)
					assert.Contains(t, r.stderr, tc.contains)
					assert.Empty(t, r.stdout)
				})
			}
			assert.Len(t, listJSON(), before, "refused registrations write nothing")

			t.Run("public client gets no secret", func(t *testing.T) {
				r := create("--name", "SPA", "--public", "--redirect-uri", "http://127.0.0.1:8080/cb")
				require.Equal(t, 0, r.code, r.stderr)
				var creds map[string]string
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &creds))
				assert.NotEmpty(t, creds["client_id"])
				assert.NotContains(t, creds, "client_secret")
				r = twofold(t, env, "", "clients", "rotate-secret", creds["client_id"])
				assert.Equal(t, exitFailed, r.code)
				assert.Contains(t, r.stderr, "no secret to rotate")
			})

			t.Run("private_key_jwt with a jwks file", func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "jwks.json")
				jwks := `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}`
				require.NoError(t, os.WriteFile(path, []byte(jwks), 0o600))
				r := create("--name", "Batch", "--grant-type", "client_credentials", "--token-endpoint-auth-method", "private_key_jwt", "--jwks", "@"+path)
				require.Equal(t, 0, r.code, r.stderr)
				assert.NotContains(t, r.stdout, "client_secret")
			})

			t.Run("jwt access tokens", func(t *testing.T) {
				r := create("--name", "API", "--grant-type", "client_credentials", "--id-token-alg", "ES256", "--access-token-format", "jwt")
				require.Equal(t, 0, r.code, r.stderr)
				var creds map[string]string
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &creds))
				r = twofold(t, env, "", "clients", "show", creds["client_id"], "--output", "json")
				require.Equal(t, 0, r.code, r.stderr)
				var c clientJSON
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &c))
				assert.Equal(t, "jwt", c.AccessTokenFormat)
				assert.Equal(t, "ES256", c.IDTokenAlg)
				r = twofold(t, env, "", "clients", "show", creds["client_id"])
				assert.Regexp(t, `access token format\s+jwt`, r.stdout)
				stored, err := s.GetClient(context.Background(), creds["client_id"])
				require.NoError(t, err)
				assert.Equal(t, store.AccessTokenJWT, stored.AccessTokenFormat)
				events, err := s.ListAudit(context.Background(), store.AuditFilter{})
				require.NoError(t, err)
				assert.Contains(t, events[0].Detail, `"access_token_format":"jwt"`)
			})

			t.Run("rotate-secret", func(t *testing.T) {
				r := twofold(t, env, "", "clients", "rotate-secret", id, "--output", "json")
				require.Equal(t, 0, r.code, r.stderr)
				var creds map[string]string
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &creds))
				assert.Equal(t, id, creds["client_id"])
				fresh := creds["client_secret"]
				assert.GreaterOrEqual(t, len(fresh), 43)
				assert.NotEqual(t, secret, fresh)
				stored, err := s.GetClient(context.Background(), id)
				require.NoError(t, err)
				assert.NoError(t, hasher.Compare(context.Background(), stored.SecretHash, []byte(fresh)))
				assert.Error(t, hasher.Compare(context.Background(), stored.SecretHash, []byte(secret)), "the old secret stops working")
				events, err := s.ListAudit(context.Background(), store.AuditFilter{})
				require.NoError(t, err)
				assert.Equal(t, "client.secret_rotated", events[0].Type)
			})

			t.Run("delete", func(t *testing.T) {
				r := twofold(t, env, "", "clients", "delete", id)
				require.Equal(t, 0, r.code, r.stderr)
				r = twofold(t, env, "", "clients", "show", id)
				assert.Equal(t, exitFailed, r.code)
				assert.Contains(t, r.stderr, "no client")
				r = twofold(t, env, "", "clients", "delete", id)
				assert.Equal(t, exitFailed, r.code)
				assert.Contains(t, r.stderr, "no client")
				events, err := s.ListAudit(context.Background(), store.AuditFilter{})
				require.NoError(t, err)
				assert.Equal(t, "client.deleted", events[0].Type)
				assert.Equal(t, id, events[0].ClientID)
			})

			t.Run("missing secrets key", func(t *testing.T) {
				noKey := env[:1] // only the database URL; no key file exists beside it
				r := twofold(t, noKey, "", "clients", "create", "--name", "x", "--redirect-uri", "https://app.example.com/cb")
				assert.Equal(t, exitUsage, r.code, r.stderr)
				assert.Contains(t, r.stderr, "secrets_key: must be set")
				r = twofold(t, noKey, "", "clients", "list")
				assert.Equal(t, 0, r.code, "listing needs no key: %s", r.stderr)
			})
		})
	}
}

// TestClientsUpdate: only the flags given change, a repeatable flag
// replaces its list ("" empties it), the secret keeps working, the audit
// event says what changed from what, and a refused update (bad value,
// another way to authenticate, nothing to change, unknown client) changes
// nothing and audits nothing.
func TestClientsUpdate(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			keyText := secrets.GenerateKey()
			env := append(migratedDB(t, dialect), "TWOFOLD_SECRETS_KEY="+keyText)
			key, err := secrets.ParseKey(keyText)
			require.NoError(t, err)
			r := twofold(t, env, "", "clients", "create", "--output", "json", "--name", "Helpdesk",
				"--redirect-uri", "https://app.example.com/cb", "--post-logout-redirect-uri", "https://app.example.com/", "--first-party")
			require.Equal(t, 0, r.code, r.stderr)
			var creds map[string]string
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &creds))
			id, secret := creds["client_id"], creds["client_secret"]
			show := func() clientJSON { return showClient(t, env, id) }
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			audits := func() []store.AuditEvent {
				t.Helper()
				events, err := s.ListAudit(ctx, store.AuditFilter{})
				require.NoError(t, err)
				return events
			}
			before := show()

			r = twofold(t, env, "", "clients", "update", id, "--name", "Help desk", "--redirect-uri", "https://app.example.com/a",
				"--redirect-uri", "https://app.example.com/b", "--first-party=false", "--access-token-format", "jwt",
				"--post-logout-redirect-uri", "")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, "updated client "+id+" (access_token_format, client_name, first_party, post_logout_redirect_uris, redirect_uris)\n", r.stdout)
			after := show()
			assert.Equal(t, "Help desk", after.Name)
			assert.Equal(t, []string{"https://app.example.com/a", "https://app.example.com/b"}, after.RedirectURIs)
			assert.Empty(t, after.PostLogoutRedirectURIs, `"" empties a list`)
			assert.False(t, after.FirstParty)
			assert.Equal(t, "jwt", after.AccessTokenFormat)
			assert.Equal(t, before.Scopes, after.Scopes, "a flag not given keeps its value")
			assert.Equal(t, before.GrantTypes, after.GrantTypes)
			assert.Equal(t, before.CreatedAt, after.CreatedAt)

			stored, err := s.GetClient(ctx, id)
			require.NoError(t, err)
			assert.NoError(t, clients.NewSecretHasher(key).Compare(ctx, stored.SecretHash, []byte(secret)), "the secret still works")
			events := audits()
			assert.Equal(t, "client.updated", events[0].Type)
			assert.Equal(t, id, events[0].ClientID)
			assert.JSONEq(t, `{
				"client_name": {"from": "Helpdesk", "to": "Help desk"},
				"redirect_uris": {"from": ["https://app.example.com/cb"], "to": ["https://app.example.com/a", "https://app.example.com/b"]},
				"post_logout_redirect_uris": {"from": ["https://app.example.com/"], "to": null},
				"first_party": {"from": true, "to": false},
				"access_token_format": {"from": "opaque", "to": "jwt"}}`, events[0].Detail)
			nEvents := len(events)

			for _, tc := range []struct {
				name string
				args []string
				code int
				msg  string
			}{
				{"bad redirect URI", []string{id, "--redirect-uri", "http://evil.example.com/cb"}, exitFailed, "redirect_uris"},
				{"to another way to authenticate", []string{id, "--token-endpoint-auth-method", "private_key_jwt", "--jwks-uri", "https://app.example.com/jwks"}, exitFailed, "cannot change"},
				{"to none (public)", []string{id, "--token-endpoint-auth-method", "none"}, exitFailed, "cannot change"},
				{"nothing to change", []string{id}, exitUsage, "nothing to change"},
				{"a global flag is no change", []string{id, "--config", filepath.Join(t.TempDir(), "none.yaml")}, exitUsage, "nothing to change"},
				{"unknown client", []string{"tf_000000000000000000000000", "--name", "X"}, exitFailed, "no client"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := twofold(t, env, "", append([]string{"clients", "update"}, tc.args...)...)
					assert.Equal(t, tc.code, r.code, r.stderr)
					assert.Contains(t, r.stderr, tc.msg)
					assert.Equal(t, after, show(), "nothing changed")
					assert.Len(t, audits(), nEvents, "nothing audited")
				})
			}

			// The same values again: nothing written, nothing audited.
			r = twofold(t, env, "", "clients", "update", id, "--name", "Help desk")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "nothing changed")
			assert.Equal(t, after, show())
			assert.Len(t, audits(), nEvents)

			// JSON output is the client, as show prints it.
			r = twofold(t, env, "", "clients", "update", id, "--output", "json", "--token-endpoint-auth-method", "client_secret_post")
			require.Equal(t, 0, r.code, r.stderr)
			var got clientJSON
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
			assert.Equal(t, "client_secret_post", got.TokenEndpointAuthMethod)
			assert.Equal(t, show(), got)
		})
	}
}

// TestClientsUpdateKeys: a private_key_jwt client's key set moves between
// jwks and jwks_uri (key rotation), one replacing the other; both at once
// is refused.
func TestClientsUpdateKeys(t *testing.T) {
	env := append(migratedDB(t, "sqlite"), "TWOFOLD_SECRETS_KEY="+secrets.GenerateKey())
	r := twofold(t, env, "", "clients", "create", "--output", "json", "--name", "Backend", "--grant-type", "client_credentials",
		"--token-endpoint-auth-method", "private_key_jwt", "--jwks-uri", "https://backend.example.com/jwks")
	require.Equal(t, 0, r.code, r.stderr)
	var creds map[string]string
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &creds))
	id := creds["client_id"]
	show := func() clientJSON { return showClient(t, env, id) }
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k2", Algorithm: "ES256", Use: "sig"}}})
	require.NoError(t, err)

	r = twofold(t, env, "", "clients", "update", id, "--jwks", string(set))
	require.Equal(t, 0, r.code, r.stderr)
	c := show()
	assert.JSONEq(t, string(set), c.JWKS)
	assert.Empty(t, c.JWKSURI, "jwks replaces jwks_uri")

	r = twofold(t, env, "", "clients", "update", id, "--jwks-uri", "https://backend.example.com/keys", "--jwks", string(set))
	assert.Equal(t, exitFailed, r.code, "both at once is refused")
	assert.Equal(t, c, show())

	r = twofold(t, env, "", "clients", "update", id, "--jwks-uri", "https://backend.example.com/keys")
	require.Equal(t, 0, r.code, r.stderr)
	c = show()
	assert.Equal(t, "https://backend.example.com/keys", c.JWKSURI)
	assert.Empty(t, c.JWKS, "jwks_uri replaces jwks")
}

// TestClientsUpdateRevokeTokens: --revoke-tokens removes every code and
// token row of the client, alone or with a change, and only its own; the
// client stays; both are audited.
func TestClientsUpdateRevokeTokens(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			env := append(migratedDB(t, dialect), "TWOFOLD_SECRETS_KEY="+secrets.GenerateKey())
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			create := func(name string) string {
				r := twofold(t, env, "", "clients", "create", "--output", "json", "--name", name, "--redirect-uri", "https://app.example.com/cb")
				require.Equal(t, 0, r.code, r.stderr)
				var creds map[string]string
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &creds))
				return creds["client_id"]
			}
			app, other := create("App"), create("Other")
			now := time.Now().UTC()
			token := func(sig, clientID string) {
				require.NoError(t, s.CreateOAuth2Request(ctx, store.OAuth2Request{Kind: store.KindRefreshToken, Signature: sig,
					RequestID: "req-" + sig, ClientID: clientID, Subject: "u1", Active: true, RequestedAt: now,
					ExpiresAt: now.Add(time.Hour), Data: `{}`}))
			}
			token("a1", app)
			token("a2", app)
			token("o1", other)
			has := func(sig string) bool {
				_, err := s.GetOAuth2Request(ctx, store.KindRefreshToken, sig)
				return err == nil
			}

			r := twofold(t, env, "", "clients", "update", app, "--revoke-tokens")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, "revoked 2 code and token row(s) of client "+app+"\n", r.stdout)
			assert.False(t, has("a1") || has("a2"), "the client's tokens are gone")
			assert.True(t, has("o1"), "another client's stay")
			assert.Equal(t, "App", showClient(t, env, app).Name, "the client stays")
			events, err := s.ListAudit(ctx, store.AuditFilter{Limit: 1})
			require.NoError(t, err)
			assert.Equal(t, "client.tokens_revoked", events[0].Type)
			assert.JSONEq(t, `{"token_rows":2}`, events[0].Detail)

			token("a3", app)
			r = twofold(t, env, "", "clients", "update", app, "--scope", "openid", "--revoke-tokens")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, "updated client "+app+" (scopes)\nrevoked 1 code and token row(s) of client "+app+"\n", r.stdout)
			assert.False(t, has("a3"))

			r = twofold(t, env, "", "clients", "update", "no-such-client", "--revoke-tokens")
			assert.Equal(t, exitFailed, r.code)
			assert.True(t, has("o1"))
		})
	}
}
