package e2e

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider/providertest"
)

// relyingParty is a small web app that signs its users in through
// Twofold with x/oauth2 and go-oidc (code flow, PKCE, nonce) and shows
// the verified ID token's claims at /callback.
type relyingParty struct {
	URL string
}

func startRP(t *testing.T, env *providertest.Env) *relyingParty {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	id, secret := env.Client(t, clients.Spec{Name: "Help desk", FirstParty: true,
		RedirectURIs: []string{srv.URL + "/callback"}, Scopes: []string{"openid", "email"}})
	var (
		conf     *oauth2.Config
		verifier *oidc.IDTokenVerifier
		state    = "rp-state-1234"
		nonce    = "rp-nonce-1234"
		pkce     string
	)
	page := template.Must(template.New("").Parse(`<!doctype html><title>Help desk</title><h1>Signed in</h1><pre id="claims">{{.}}</pre>`))
	mux.HandleFunc("GET /start", func(w http.ResponseWriter, r *http.Request) {
		if conf == nil {
			p, err := oidc.NewProvider(r.Context(), env.URL)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			conf = &oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: p.Endpoint(),
				RedirectURL: srv.URL + "/callback", Scopes: []string{oidc.ScopeOpenID, "email"}}
			verifier = p.Verifier(&oidc.Config{ClientID: id, SupportedSigningAlgs: []string{oidc.RS256}})
		}
		pkce = oauth2.GenerateVerifier()
		http.Redirect(w, r, conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkce)), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("state") != state || q.Get("error") != "" {
			http.Error(w, "sign-in failed: "+q.Get("error")+" "+q.Get("error_description"), http.StatusBadRequest)
			return
		}
		tok, err := conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(pkce))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := verifier.Verify(r.Context(), raw)
		if err != nil || idt.Nonce != nonce {
			http.Error(w, "bad ID token", http.StatusBadGateway)
			return
		}
		var claims map[string]any
		_ = idt.Claims(&claims)
		b, _ := json.MarshalIndent(claims, "", "  ")
		_ = page.Execute(w, string(b))
	})
	return &relyingParty{URL: srv.URL}
}
