// Package demo is a small relying party built into `twofold serve --dev`:
// /demo signs in through the provider with the authorization code flow
// and PKCE (a public client, so no secret to keep), and shows the ID
// token's claims. It talks to the provider over HTTP like any other
// relying party, with golang.org/x/oauth2 and go-oidc.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// ClientID is the demo client's fixed id.
const ClientID = "twofold-demo"

// Handler serves /demo and /demo/callback.
type Handler struct {
	Issuer string
	Logger *slog.Logger

	mu       sync.Mutex
	provider *oidc.Provider
}

func (h *Handler) config() (*oauth2.Config, *oidc.Provider, error) {
	// Discovery is fetched on first use, when the server is listening.
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.provider == nil {
		p, err := oidc.NewProvider(oidc.ClientContext(context.Background(), &http.Client{Timeout: 10 * time.Second}), h.Issuer)
		if err != nil {
			return nil, nil, err
		}
		h.provider = p
	}
	return &oauth2.Config{
		ClientID: ClientID, Endpoint: h.provider.Endpoint(),
		RedirectURL: h.Issuer + "/demo/callback",
		Scopes:      []string{oidc.ScopeOpenID, "profile", "email"},
	}, h.provider, nil
}

// Mount registers the routes.
func (h *Handler) Mount(m interface {
	HandleFunc(pattern string, h http.HandlerFunc)
}) {
	m.HandleFunc("GET /demo", h.start)
	m.HandleFunc("GET /demo/callback", h.callback)
}

type flowCookie struct {
	State, Nonce, Verifier string
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *Handler) start(w http.ResponseWriter, r *http.Request) {
	cfg, _, err := h.config()
	if err != nil {
		h.fail(w, "discovery failed", err)
		return
	}
	fc := flowCookie{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier()}
	b, _ := json.Marshal(fc)
	http.SetCookie(w, &http.Cookie{Name: "twofold_demo", Value: base64.RawURLEncoding.EncodeToString(b),
		Path: "/demo", MaxAge: 600, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, cfg.AuthCodeURL(fc.State, oidc.Nonce(fc.Nonce), oauth2.S256ChallengeOption(fc.Verifier)), http.StatusSeeOther)
}

func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	cfg, prov, err := h.config()
	if err != nil {
		h.fail(w, "discovery failed", err)
		return
	}
	c, err := r.Cookie("twofold_demo")
	var fc flowCookie
	if err == nil {
		if b, derr := base64.RawURLEncoding.DecodeString(c.Value); derr == nil {
			err = json.Unmarshal(b, &fc)
		} else {
			err = derr
		}
	}
	q := r.URL.Query()
	if err != nil || fc.State == "" || q.Get("state") != fc.State {
		h.fail(w, "state mismatch: start again at /demo", err)
		return
	}
	if e := q.Get("error"); e != "" {
		h.fail(w, "the provider answered "+e+": "+q.Get("error_description"), nil)
		return
	}
	tok, err := cfg.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(fc.Verifier))
	if err != nil {
		h.fail(w, "code exchange failed", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := prov.Verifier(&oidc.Config{ClientID: ClientID}).Verify(r.Context(), raw)
	if err != nil || idt.Nonce != fc.Nonce {
		h.fail(w, "ID token rejected", err)
		return
	}
	var claims map[string]any
	_ = idt.Claims(&claims)
	pretty, _ := json.MarshalIndent(claims, "", "  ")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = page.Execute(w, map[string]any{"Claims": string(pretty), "Issuer": h.Issuer, "IDToken": raw})
}

func (h *Handler) fail(w http.ResponseWriter, msg string, err error) {
	if h.Logger != nil {
		h.Logger.Warn("demo relying party", "msg", msg, "err", err)
	}
	http.Error(w, "Demo: "+msg, http.StatusBadGateway)
}

var page = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Twofold demo</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main class="card"><p class="brand">Twofold demo app</p>
<h1>Signed in</h1><p class="muted">The ID token's claims, verified with go-oidc:</p>
<pre>{{.Claims}}</pre>
<form method="get" action="{{.Issuer}}/logout">
<input type="hidden" name="id_token_hint" value="{{.IDToken}}">
<input type="hidden" name="post_logout_redirect_uri" value="{{.Issuer}}/demo">
<button type="submit">Sign out</button></form>
</main></body></html>`))
