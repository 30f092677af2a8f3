package provider

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
	"github.com/realclientip/realclientip-go"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/federation"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/templates"
)

// Config holds the provider's settings.
type Config struct {
	// Issuer is the issuer URL, with no trailing slash.
	Issuer string
	// Lifespans; zero values take the defaults below.
	AuthorizeCodeLifespan time.Duration
	AccessTokenLifespan   time.Duration
	IDTokenLifespan       time.Duration
	RefreshTokenLifespan  time.Duration
	LoginFlowLifespan     time.Duration
	SessionLifespan       time.Duration
	// SessionIdle ends a session unused for that long.
	SessionIdle time.Duration
	// IDTokenAlg is the default ID token algorithm: RS256 or ES256.
	IDTokenAlg string
	// NoPasswordless turns off "Sign in with a passkey".
	NoPasswordless bool
	// NoAddressThrottle turns off the per-client-address limit.
	NoAddressThrottle bool
	// SMSDailyLimit caps the texts the whole server sends a day (default
	// 1000); SMSAllowedPrefixes, when set, are the only number prefixes
	// (such as "+44") codes are texted to.
	SMSDailyLimit      int
	SMSAllowedPrefixes []string
	// TrustedProxies are the reverse proxies in front of Twofold: from a
	// peer in these ranges the client's address is read from
	// X-Forwarded-For (for the address limit and the audit log).
	TrustedProxies []net.IPNet
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.AuthorizeCodeLifespan, time.Minute)
	def(&c.AccessTokenLifespan, 15*time.Minute)
	def(&c.IDTokenLifespan, 15*time.Minute)
	def(&c.RefreshTokenLifespan, 30*24*time.Hour)
	def(&c.LoginFlowLifespan, 15*time.Minute)
	def(&c.SessionLifespan, 12*time.Hour)
	def(&c.SessionIdle, 30*time.Minute)
	if c.SMSDailyLimit == 0 {
		c.SMSDailyLimit = 1000
	}
	if c.IDTokenAlg == "" {
		c.IDTokenAlg = RS256
	}
}

// KeyRetention is how long a retired key stays published: as long as
// anything it signed may live, plus clock skew.
func (c Config) KeyRetention() time.Duration {
	c.setDefaults()
	return max(c.IDTokenLifespan, c.AccessTokenLifespan) + 5*time.Minute
}

// Options are the provider's dependencies.
type Options struct {
	Config   Config
	Store    store.Store
	Accounts *accounts.Service
	// SecretsKey is the 32-byte key from configuration: it seals signing
	// keys and derives fosite's HMAC secret and the CSRF key.
	SecretsKey []byte
	// ClientSecrets hashes and compares client secrets; nil means the
	// clients package's hasher under SecretsKey.
	ClientSecrets *clients.SecretHasher
	// Mailer sends email codes (R08); nil leaves them out.
	Mailer Mailer
	// Texter sends codes by SMS (R09); nil leaves them out.
	Texter Texter
	// Upstreams are the providers users may sign in through (R03).
	Upstreams []federation.Upstream
	Logger    *slog.Logger
	Now       func() time.Time
}

// Provider serves the OpenID Connect endpoints.
type Provider struct {
	cfg      Config
	issuer   *url.URL
	store    store.Store
	accounts *accounts.Service
	keys     *KeySet
	oauth    fosite.OAuth2Provider
	fstore   *fositeStore
	fosite   *fosite.Config
	pages    *templates.Set
	box      *secrets.Box
	recovery *mfa.RecoveryHasher
	registry *clients.Registry // the admin console's client registrations
	codes    *mfa.CodeHasher
	mailer   Mailer    // nil when no mail server is configured
	texter   Texter    // nil when no SMS gateway is configured
	notifier *Notifier // security notices, and mail sent after its request
	// upstreams are the federation connectors by id, in upstreamOrder.
	upstreams     map[string]*federation.Connector
	upstreamOrder []string
	webauthn      *webauthn.WebAuthn // nil when the issuer's host is an IP
	csrfKey       []byte
	logger        *slog.Logger
	now           func() time.Time
	// forwarded reads the client's address past the trusted proxies.
	forwarded realclientip.RightmostTrustedRangeStrategy
	// policyCache holds the populations' MFA policies (policies.go).
	policyCache policyCache

	discovery []byte
	// crossOrigin guards the hosted pages' forms (ownForm).
	crossOrigin *http.CrossOriginProtection
}

// derive makes a purpose-bound key from the secrets key, so one secret
// never serves two uses.
func derive(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("twofold " + purpose + " v1"))
	return m.Sum(nil)
}

// New composes fosite and loads (or creates) the signing keys.
func New(ctx context.Context, o Options) (*Provider, error) {
	o.Config.setDefaults()
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	issuer, err := url.Parse(o.Config.Issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if o.ClientSecrets == nil {
		o.ClientSecrets = clients.NewSecretHasher(o.SecretsKey)
	}
	box, err := secrets.New(o.SecretsKey)
	if err != nil {
		return nil, err
	}
	keys, err := NewKeySet(ctx, o.Store, box, o.Config.KeyRetention(), o.Now)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	pages, err := templates.Parse()
	if err != nil {
		return nil, err
	}
	wa, err := mfa.NewWebAuthn(o.Config.Issuer, "Twofold")
	if errors.Is(err, mfa.ErrNoRPID) {
		o.Logger.Warn(err.Error(), "issuer", o.Config.Issuer)
	} else if err != nil {
		return nil, err
	}
	p := &Provider{
		cfg: o.Config, issuer: issuer, store: o.Store, accounts: o.Accounts, keys: keys,
		pages: pages, csrfKey: derive(o.SecretsKey, "csrf"), logger: o.Logger, now: o.Now,
		box: box, recovery: mfa.NewRecoveryHasher(o.SecretsKey), webauthn: wa,
		codes: mfa.NewCodeHasher(o.SecretsKey), mailer: o.Mailer, texter: o.Texter,
		registry:  &clients.Registry{Store: o.Store, Hasher: o.ClientSecrets, Now: o.Now},
		upstreams: map[string]*federation.Connector{},
		notifier:  NewNotifier(o.Store, o.Mailer, o.Config.Issuer, o.Logger),
	}
	p.crossOrigin = http.NewCrossOriginProtection()
	p.crossOrigin.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.errorPage(w, r, http.StatusForbidden, "This form came from another site",
			"Twofold takes forms only from its own pages. Go back to the application and start again.", "")
	}))
	upstreamClient := &http.Client{Timeout: 10 * time.Second}
	for _, up := range o.Upstreams {
		if _, dup := p.upstreams[up.ID]; dup {
			return nil, fmt.Errorf("upstream %q: listed twice", up.ID)
		}
		p.upstreams[up.ID] = federation.NewConnector(up, o.Config.Issuer+federatedCallback, upstreamClient)
		p.upstreamOrder = append(p.upstreamOrder, up.ID)
	}
	if p.forwarded, err = realclientip.NewRightmostTrustedRangeStrategy("X-Forwarded-For", o.Config.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}

	fc := &fosite.Config{
		IDTokenIssuer:                  o.Config.Issuer,
		AccessTokenIssuer:              o.Config.Issuer,
		TokenURL:                       o.Config.Issuer + "/token",
		AuthorizeCodeLifespan:          o.Config.AuthorizeCodeLifespan,
		AccessTokenLifespan:            o.Config.AccessTokenLifespan,
		IDTokenLifespan:                o.Config.IDTokenLifespan,
		RefreshTokenLifespan:           o.Config.RefreshTokenLifespan,
		GlobalSecret:                   derive(o.SecretsKey, "fosite global secret"),
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		ClientSecretsHasher:            o.ClientSecrets,
		SendDebugMessagesToClients:     false,
		RefreshTokenScopes:             []string{"offline_access"},
		AllowedPromptValues:            []string{"none", "login", "consent"},
		MinParameterEntropy:            fosite.MinParameterEntropy,
		JWKSFetcherStrategy:            fosite.NewDefaultJWKSFetcherStrategy(),
		ClientAuthenticationStrategy:   nil,
		JWTScopeClaimKey:               jwt.JWTScopeFieldString, // JWT access tokens: "scope" as a string (RFC 9068 §2.2.3), not a "scp" list
	}
	p.fosite = fc
	hmacs := compose.NewOAuth2HMACStrategy(fc)
	fstore := &fositeStore{store: o.Store, now: o.Now, codeSignature: hmacs.AuthorizeCodeSignature}
	p.fstore = fstore
	signer := &tokenSigner{keys: keys, defaultAlg: o.Config.IDTokenAlg}
	strategy := &compose.CommonStrategy{
		CoreStrategy:               newAccessTokens(fc, signer, hmacs),
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{Signer: signer, Config: fc},
		Signer:                     signer,
	}
	// Only what Twofold needs. Never ComposeAllEnabled: it turns on the
	// resource-owner password grant, which issues tokens on a password
	// alone (no second factor), and the implicit and hybrid flows.
	p.oauth = compose.Compose(fc, fstore, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2TokenIntrospectionFactory,
	)
	skipQuickly(fc)
	if p.discovery, err = p.buildDiscovery(); err != nil {
		return nil, err
	}
	return p, nil
}

// Keys exposes the key set (for `twofold keys rotate` and tests).
func (p *Provider) Keys() *KeySet { return p.keys }

// Mounter is what the HTTP shell offers: a pattern-based mux.
type Mounter interface {
	Handle(pattern string, h http.Handler)
	HandleFunc(pattern string, h http.HandlerFunc)
}

// Mount registers every route. The hosted pages' forms go through
// ownForm; the protocol endpoints that relying parties post to from
// their own sites (authorize, token, revoke, introspect, userinfo,
// logout) do not.
func (p *Provider) Mount(m Mounter) {
	m.HandleFunc("GET /.well-known/openid-configuration", p.handleDiscovery)
	m.HandleFunc("GET /jwks", p.handleJWKS)
	m.HandleFunc("GET /authorize", p.handleAuthorize)
	m.HandleFunc("POST /authorize", p.handleAuthorize)
	m.HandleFunc("POST /token", p.handleToken)
	m.HandleFunc("GET /userinfo", p.handleUserinfo)
	m.HandleFunc("POST /userinfo", p.handleUserinfo)
	m.HandleFunc("POST /revoke", p.handleRevoke)
	m.HandleFunc("POST /introspect", p.handleIntrospect)
	m.HandleFunc("GET /logout", p.handleLogout)
	m.HandleFunc("POST /logout", p.handleLogout)
	m.HandleFunc("GET /login", p.handleLoginPage)
	m.HandleFunc("POST /login", p.ownForm(p.handleLoginSubmit))
	m.HandleFunc("POST /login/passkey", p.ownForm(p.handlePasskeySubmit))
	m.HandleFunc("POST /login/federated", p.ownForm(p.handleFederatedStart))
	m.HandleFunc("GET "+federatedCallback, p.handleFederatedCallback)
	m.HandleFunc("GET /login/password", p.handleNewPasswordPage)
	m.HandleFunc("POST /login/password", p.ownForm(p.handleNewPasswordSubmit))
	m.HandleFunc("GET /login/2fa", p.handleSecondFactorPage)
	m.HandleFunc("POST /login/2fa", p.ownForm(p.handleSecondFactorSubmit))
	m.HandleFunc("GET /login/enrol", p.handleEnrolPage)
	m.HandleFunc("POST /login/enrol", p.ownForm(p.handleEnrolSubmit))
	m.HandleFunc("GET /login/recovery-codes", p.handleFlowCodesPage)
	m.HandleFunc("POST /login/recovery-codes", p.ownForm(p.handleFlowCodesSubmit))
	m.HandleFunc("GET /password/forgot", p.handleForgotPage)
	m.HandleFunc("POST /password/forgot", p.ownForm(p.handleForgotSubmit))
	m.HandleFunc("GET /account/security", p.handleAccountPage)
	m.HandleFunc("POST /account/security", p.ownForm(p.handleAccountSubmit))
	m.HandleFunc("GET "+consolePath, p.handleConsole)
	m.HandleFunc("POST "+consolePath, p.ownForm(p.handleConsoleSubmit))
	m.HandleFunc("GET "+consolePath+"/audit", p.handleConsoleAudit)
	m.HandleFunc("GET "+consolePath+"/users/{id}", p.handleConsoleUser)
	m.HandleFunc("GET "+consolePath+"/clients/{id}", p.handleConsoleClient)
	m.HandleFunc("POST "+consolePath+"/clients/{id}", p.ownForm(p.handleConsoleClientSubmit))
	m.HandleFunc("POST "+consolePath+"/users/{id}", p.ownForm(p.handleConsoleUserSubmit))
	m.HandleFunc("GET /consent", p.handleConsentPage)
	m.HandleFunc("POST /consent", p.ownForm(p.handleConsentSubmit))
	m.Handle("GET /static/", templates.Static())
}

// ownForm refuses a form a browser says was sent from another site
// (Sec-Fetch-Site, else Origin), before h reads it: net/http's
// CrossOriginProtection, behind the forms' CSRF tokens (security.md
// §3.5). A request without those headers is not a browser's and passes
// on to the token check.
func (p *Provider) ownForm(h http.HandlerFunc) http.HandlerFunc {
	return p.crossOrigin.Handler(h).ServeHTTP
}

// CleanExpired deletes expired codes, tokens, flows and sessions every
// interval until ctx ends: indexes on expires_at keep it cheap.
func (p *Provider) CleanExpired(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := p.store.DeleteExpired(ctx, p.now())
			if err != nil {
				p.logger.Warn("clean expired rows", "err", err)
			} else if n > 0 {
				p.logger.Info("cleaned expired rows", "rows", n)
			}
		}
	}
}
