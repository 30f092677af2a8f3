package providertest_test

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"golang.org/x/oauth2"
)

// TestTLS: with Options.TLS the issuer is https on loopback, only clients
// that trust the test certificate get through, and a browser made with
// NewBrowserFor signs in with the __Host- cookies.
func TestTLS(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{TLS: true})
	if !strings.HasPrefix(env.URL, "https://127.0.0.1:") {
		t.Fatalf("issuer %q, want https://127.0.0.1:PORT", env.URL)
	}
	if _, err := http.Get(env.URL + "/healthz"); err == nil {
		t.Fatal("a client that does not trust the test certificate got through")
	}
	resp, err := env.HTTPClient.Get(env.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("discovery over TLS: HTTP %d", resp.StatusCode)
	}

	pemBytes, err := os.ReadFile(env.CAFile(t))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("CAFile does not hold a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || cert.Subject.CommonName != "Twofold test CA" {
		t.Fatalf("CAFile holds %q, not the CA generated for this test", cert.Subject.CommonName)
	}
	// The sign-in below goes over https trusting only that CA.

	env.User(t, "ada@example.com", "correct horse battery", store.PopulationAgent)
	redirect := "https://app.example.com/cb"
	id, _ := env.Client(t, clients.Spec{Name: "TLS RP", RedirectURIs: []string{redirect}})
	b := providertest.NewBrowserFor(t, env)
	cb := b.SignIn(env.URL+"/authorize?"+url.Values{
		"client_id": {id}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-12345678"},
		"redirect_uri": {redirect}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"}}.Encode(), "ada@example.com", "correct horse battery", redirect)
	if u, _ := url.Parse(cb); u == nil || u.Query().Get("code") == "" {
		t.Fatalf("no code in %q", cb)
	}
	u, _ := url.Parse(env.URL)
	var names []string
	for _, c := range b.Jar.Cookies(u) {
		names = append(names, c.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "__Host-twofold_session") {
		t.Fatalf("cookies %v: want __Host-twofold_session", names)
	}
}
