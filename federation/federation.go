// Package federation signs users in through upstream OpenID Connect
// providers (R03): a company's SSO or a social login. It is the relying
// party half: discovery, the authorization code flow with PKCE and a
// nonce, and verification of the upstream's ID token (go-oidc).
package federation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/store"
)

// Upstream is one provider users may sign in through.
type Upstream struct {
	// ID names the upstream in URLs and in the accounts it links; it
	// must not change once users signed in through it.
	ID           string
	Name         string // on the button: "Sign in with Name"
	Issuer       string
	ClientID     string
	ClientSecret string
	// Population is where accounts first signed in through this
	// upstream are created.
	Population store.Population
	// LocalMFA turns the bypass off (R03): a user who has a second factor
	// here presents it after the upstream, as after a password.
	LocalMFA bool
	// TrustMFA takes the upstream's word for "mfa" in its amr; without
	// it a federated sign-in never claims more than "fed".
	TrustMFA bool
	// TrustEmail treats the upstream's email addresses as verified (a
	// company SSO whose addresses are its own), as Keycloak's "Trust
	// Email" does; otherwise a first sign-in needs email_verified.
	TrustEmail bool
	// AllowedDomains, when set, are the only email domains a first
	// sign-in makes an account for (a social login open to anyone).
	AllowedDomains []string
}

// MayCreate tells whether a first sign-in with email may make an
// account: any address, or one in AllowedDomains.
func (u Upstream) MayCreate(email string) bool {
	if len(u.AllowedDomains) == 0 {
		return true
	}
	_, domain, ok := strings.Cut(email, "@")
	return ok && slices.ContainsFunc(u.AllowedDomains, func(d string) bool { return strings.EqualFold(d, domain) })
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate returns every problem, each naming its field.
func (u Upstream) Validate() []string {
	var p []string
	if !idPattern.MatchString(u.ID) {
		p = append(p, fmt.Sprintf("id: %q must be set, letters, digits, '-' and '_' only", u.ID))
	}
	if u.Name == "" {
		p = append(p, "name: must be set")
	}
	if v, err := url.Parse(u.Issuer); err != nil || v.Host == "" || (v.Scheme != "https" && !(v.Scheme == "http" && loopback(v.Hostname()))) {
		p = append(p, fmt.Sprintf("issuer: %q must be an absolute https URL (http only on loopback)", u.Issuer))
	}
	if u.ClientID == "" {
		p = append(p, "client_id: must be set")
	}
	if !u.Population.Valid() {
		p = append(p, fmt.Sprintf("population: %q must be agent or contact", u.Population))
	}
	return p
}

// loopback reports whether host is this machine: tokens to anywhere else
// travel over TLS.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Identity is what a verified upstream ID token says of its user.
type Identity struct {
	Subject       string
	Email         string
	EmailVerified bool
	// AMR is the upstream's own amr claim, as it sent it.
	AMR []string
	// AuthTime is when the upstream authenticated the user: its
	// auth_time, or the token's issue time when it sent none.
	AuthTime time.Time
}

// Connector runs the flow against one upstream. Discovery happens at
// the first sign-in and is kept; a failed one is tried again next time.
type Connector struct {
	Upstream Upstream
	redirect string
	client   *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
}

// NewConnector makes a connector whose callback is redirectURL; client
// (nil for http.DefaultClient) makes the calls to the upstream.
func NewConnector(up Upstream, redirectURL string, client *http.Client) *Connector {
	if client == nil {
		client = http.DefaultClient
	}
	return &Connector{Upstream: up, redirect: redirectURL, client: client}
}

// discover returns the upstream's metadata, fetched once. The lock is
// not held over the network: while an upstream is down, each sign-in
// waits for its own try, not for everyone else's.
func (c *Connector) discover(ctx context.Context) (*oidc.Provider, error) {
	c.mu.Lock()
	p := c.provider
	c.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, c.client), c.Upstream.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover upstream %s: %w", c.Upstream.ID, err)
	}
	c.mu.Lock()
	c.provider = p
	c.mu.Unlock()
	return p, nil
}

func (c *Connector) config(p *oidc.Provider) oauth2.Config {
	return oauth2.Config{ClientID: c.Upstream.ClientID, ClientSecret: c.Upstream.ClientSecret,
		Endpoint: p.Endpoint(), RedirectURL: c.redirect, Scopes: []string{oidc.ScopeOpenID, "email"}}
}

// AuthURL is where the browser goes to sign in upstream: state, nonce
// and the PKCE verifier are the caller's, kept for the callback; opts
// add parameters (prompt=login to sign in again).
func (c *Connector) AuthURL(ctx context.Context, state, nonce, verifier string, opts ...oauth2.AuthCodeOption) (string, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return "", err
	}
	conf := c.config(p)
	opts = append([]oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}, opts...)
	return conf.AuthCodeURL(state, opts...), nil
}

// IssInCallback tells whether the upstream says it names itself in its
// answers (RFC 9207's authorization_response_iss_parameter_supported):
// then an answer without iss is refused.
func (c *Connector) IssInCallback(ctx context.Context) bool {
	p, err := c.discover(ctx)
	if err != nil {
		return false
	}
	var meta struct {
		Iss bool `json:"authorization_response_iss_parameter_supported"`
	}
	return p.Claims(&meta) == nil && meta.Iss
}

// ErrRefused is an upstream answer that signs nobody in: an error from
// the upstream, a token that does not verify, a nonce that differs.
var ErrRefused = errors.New("federation: the upstream sign-in was refused")

// Exchange trades the callback's code for the upstream's ID token and
// verifies it: signature, issuer, audience, expiry, and nonce.
func (c *Connector) Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	conf := c.config(p)
	ctx = oidc.ClientContext(ctx, c.client)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: code exchange: %v", ErrRefused, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, fmt.Errorf("%w: no ID token", ErrRefused)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: c.Upstream.ClientID}).Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	var claims struct {
		Nonce         string   `json:"nonce"`
		Email         string   `json:"email"`
		EmailVerified bool     `json:"email_verified"`
		AMR           []string `json:"amr"`
		AuthTime      int64    `json:"auth_time"`
	}
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %v", ErrRefused, err)
	}
	if claims.Nonce == "" || claims.Nonce != nonce {
		return Identity{}, fmt.Errorf("%w: nonce differs", ErrRefused)
	}
	if idt.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no subject", ErrRefused) // go-oidc lets it through
	}
	id := Identity{Subject: idt.Subject, Email: claims.Email, EmailVerified: claims.EmailVerified, AMR: slices.Clone(claims.AMR),
		AuthTime: idt.IssuedAt}
	if claims.AuthTime > 0 {
		id.AuthTime = time.Unix(claims.AuthTime, 0)
	}
	if id.Email == "" {
		// Many providers put the address in userinfo only.
		info, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return Identity{}, fmt.Errorf("%w: userinfo: %v", ErrRefused, err)
		}
		if info.Subject != id.Subject {
			return Identity{}, fmt.Errorf("%w: userinfo is another subject's", ErrRefused)
		}
		id.Email, id.EmailVerified = info.Email, info.EmailVerified
	}
	id.EmailVerified = id.EmailVerified || c.Upstream.TrustEmail
	return id, nil
}
