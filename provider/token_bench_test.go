package provider_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// benchEnv starts a provider on dialect, skipping PostgreSQL when no test
// database is configured (benchmarks skip, never fail, for that).
func benchEnv(b *testing.B, dialect string) (*providertest.Env, http.Handler) {
	b.Helper()
	if dialect == "postgres" && os.Getenv(sqltest.EnvPostgres) == "" {
		b.Skipf("%s not set: skipping PostgreSQL", sqltest.EnvPostgres)
	}
	env := providertest.Start(b, dialect, providertest.Options{})
	return env, env.Server.Config.Handler
}

func serviceClient(b *testing.B, env *providertest.Env) (string, string) {
	return env.Client(b, clients.Spec{Name: "bench service", GrantTypes: []string{clients.GrantClientCredentials}})
}

func postForm(h http.Handler, path, id, secret string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// BenchmarkClientCredentials issues opaque access tokens through the real
// HTTP handler (middleware, fosite, client authentication, the store's
// durable insert), in-process: no network.
func BenchmarkClientCredentials(b *testing.B) {
	for _, dialect := range sqltest.Dialects() {
		b.Run(dialect, func(b *testing.B) {
			env, h := benchEnv(b, dialect)
			id, secret := serviceClient(b, env)
			benchTokens(b, "", h, id, secret, func(body string) bool { return strings.Contains(body, `"ory_at_`) })
		})
	}
}

// benchTokens runs client_credentials requests serially and with
// 8×GOMAXPROCS in flight (sub-benchmarks "NAME" or "serial", and
// "NAME/parallel"); ok checks the response body's token format.
func benchTokens(b *testing.B, name string, h http.Handler, id, secret string, ok func(body string) bool) {
	form := url.Values{"grant_type": {"client_credentials"}}
	serial, parallel := "serial", "parallel"
	if name != "" {
		serial, parallel = name, name+"/parallel"
	}
	b.Run(serial, func(b *testing.B) {
		for b.Loop() {
			if rec := postForm(h, "/token", id, secret, form); rec.Code != http.StatusOK || !ok(rec.Body.String()) {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
	b.Run(parallel, func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if rec := postForm(h, "/token", id, secret, form); rec.Code != http.StatusOK || !ok(rec.Body.String()) {
					b.Errorf("%d %s", rec.Code, rec.Body)
					return
				}
			}
		})
	})
}

// BenchmarkClientCredentialsJWT issues JWT access tokens (RFC 9068)
// through the same handler: BenchmarkClientCredentials plus one signature
// with the client's algorithm.
func BenchmarkClientCredentialsJWT(b *testing.B) {
	for _, dialect := range sqltest.Dialects() {
		b.Run(dialect, func(b *testing.B) {
			env, h := benchEnv(b, dialect)
			for _, alg := range []string{"RS256", "ES256"} {
				id, secret := env.Client(b, clients.Spec{Name: "bench service " + alg, GrantTypes: []string{clients.GrantClientCredentials},
					IDTokenAlg: alg, AccessTokenFormat: "jwt"})
				benchTokens(b, alg, h, id, secret, func(body string) bool { return !strings.Contains(body, `"ory_at_`) })
			}
		})
	}
}

// BenchmarkIntrospect introspects one active token: a client
// authentication and one read.
func BenchmarkIntrospect(b *testing.B) {
	for _, dialect := range sqltest.Dialects() {
		b.Run(dialect, func(b *testing.B) {
			env, h := benchEnv(b, dialect)
			id, secret := serviceClient(b, env)
			rec := postForm(h, "/token", id, secret, url.Values{"grant_type": {"client_credentials"}})
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &tok); err != nil || tok.AccessToken == "" {
				b.Fatalf("no token: %s", rec.Body)
			}
			for b.Loop() {
				rec := postForm(h, "/introspect", id, secret, url.Values{"token": {tok.AccessToken}})
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"active":true`) {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkDiscovery serves the pre-serialised discovery document.
func BenchmarkDiscovery(b *testing.B) {
	_, h := benchEnv(b, "sqlite")
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
