// Package providertest runs a real Twofold provider for tests: a fresh
// database (SQLite file or PostgreSQL schema), the full HTTP stack on a
// loopback port, and helpers to register clients, create users and drive
// the hosted pages like a browser (cookie jar, forms, no JavaScript).
package providertest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/federation"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/server"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// Env is one running provider.
type Env struct {
	URL      string // the issuer
	Store    *sqlstore.Store
	Provider *provider.Provider
	Accounts *accounts.Service
	Clients  *clients.Registry
	Key      []byte
	DBURL    string
	Server   *httptest.Server
	// HTTPClient reaches the server: over TLS it trusts the test
	// certificate; over plain http it is a default client.
	HTTPClient *http.Client
	// CACertPEM is the test CA's certificate in PEM, for clients outside
	// Go; nil without TLS.
	CACertPEM []byte
	// Now is the provider's clock (Options.Now), for seeded rows.
	Now func() time.Time
}

// Options tune Start.
type Options struct {
	// DatabaseURL reuses a database (a second replica); empty makes one.
	DatabaseURL string
	// Key is the secrets key; replicas of one database share it.
	Key []byte
	// Issuer overrides the issuer (a second replica keeps the first's).
	Issuer string
	Config func(*provider.Config)
	// Now is the provider's clock (throttles, TOTP); default time.Now.
	Now func() time.Time
	// Localhost names the issuer http://localhost:PORT instead of the
	// IP: WebAuthn needs a domain as relying party id.
	Localhost bool
	// TLS serves over https on loopback with a certificate (for
	// 127.0.0.1, ::1 and localhost) from a CA generated at test time, so
	// the issuer is https://127.0.0.1:PORT and the provider's cookies are
	// __Host- and Secure. Use Env.HTTPClient, NewBrowserFor, or
	// Env.CAFile (for Node) to trust the CA.
	TLS bool
	// Mailer sends email codes; nil leaves them out.
	Mailer provider.Mailer
	// Upstreams are providers to sign in through (R03).
	Upstreams []federation.Upstream
	// Texter sends codes by SMS; nil leaves them out.
	Texter provider.Texter
	// Log receives the provider's and the server's log at debug level,
	// as `serve --log-level debug` writes it; nil logs only under -v.
	Log io.Writer
}

// Start runs a provider on a fresh database of dialect.
func Start(t testing.TB, dialect string, o Options) *Env {
	t.Helper()
	ctx := context.Background()
	if o.DatabaseURL == "" {
		o.DatabaseURL = sqltest.URL(t, dialect)
	}
	if o.Key == nil {
		k, err := secrets.ParseKey(secrets.GenerateKey())
		if err != nil {
			t.Fatal(err)
		}
		o.Key = k
	}
	s := sqltest.OpenURL(t, o.DatabaseURL, true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := o.Issuer
	if issuer == "" {
		scheme := "http://"
		if o.TLS {
			scheme = "https://"
		}
		issuer = scheme + ln.Addr().String()
		if o.Localhost {
			issuer = scheme + "localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
		}
	}
	acc := &accounts.Service{Store: s, Hasher: accounts.Hasher{Params: accounts.Argon2Params{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}}, MinPasswordLen: 12, BlockGuessable: true}
	cfg := provider.Config{Issuer: issuer}
	if o.Config != nil {
		o.Config(&cfg)
	}
	hasher := clients.NewSecretHasher(o.Key)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch {
	case o.Log != nil:
		if logger, err = server.NewLogger(o.Log, "debug", "text"); err != nil {
			t.Fatal(err)
		}
	case testing.Verbose():
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := provider.New(ctx, provider.Options{Config: cfg, Store: s, Accounts: acc, SecretsKey: o.Key, ClientSecrets: hasher, Logger: logger, Now: o.Now, Mailer: o.Mailer, Texter: o.Texter, Upstreams: o.Upstreams})
	if err != nil {
		t.Fatalf("provider: %v", err)
	}
	srv := server.New(server.Options{Logger: logger, Ready: s.Ping, ClientIP: p.ClientIP})
	p.Mount(srv)
	ts := httptest.NewUnstartedServer(srv)
	ts.Listener.Close()
	ts.Listener = ln
	env := &Env{URL: issuer, Store: s, Provider: p, Accounts: acc, Key: o.Key, DBURL: o.DatabaseURL, Server: ts,
		Clients: &clients.Registry{Store: s, Hasher: hasher}, Now: o.Now}
	if env.Now == nil {
		env.Now = time.Now
	}
	if o.TLS {
		// A CA generated for this test signs the server's certificate.
		ca := newTestCA(t)
		ts.TLS = &tls.Config{Certificates: []tls.Certificate{ca.server}, MinVersion: tls.VersionTLS12}
		ts.StartTLS()
		env.HTTPClient = ca.client()
		env.CACertPEM = ca.pem
	} else {
		ts.Start()
		env.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	t.Cleanup(ts.Close)
	return env
}

// CAFile writes the test certificate to a file in a temporary directory
// and returns its path (for NODE_EXTRA_CA_CERTS and the like). It fails
// the test when the provider does not serve TLS.
func (e *Env) CAFile(t testing.TB) string {
	t.Helper()
	if e.CACertPEM == nil {
		t.Fatal("providertest: CAFile needs Options.TLS")
	}
	path := filepath.Join(t.TempDir(), "twofold-test-ca.pem")
	if err := os.WriteFile(path, e.CACertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ServerURL is where this replica listens (the issuer may name another).
func (e *Env) ServerURL() string { return e.Server.URL }

// User creates an account.
func (e *Env) User(t testing.TB, email, password string, pop store.Population) store.User {
	t.Helper()
	u, err := e.Accounts.CreateUser(context.Background(), accounts.NewUser{Email: email, Population: pop, Password: password})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	return u
}

// Client registers a client and returns its id and secret.
func (e *Env) Client(t testing.TB, spec clients.Spec) (string, string) {
	t.Helper()
	c, secret, err := e.Clients.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	return c.ID, secret
}

// Browser is a cookie-keeping HTTP client that does not follow
// redirects, so each hop can be inspected.
type Browser struct {
	*http.Client
	t testing.TB
}

// NewBrowser returns a fresh browser with an empty cookie jar, for a
// provider served over plain http.
func NewBrowser(t testing.TB) *Browser {
	return newBrowser(t, nil)
}

// NewBrowserFor returns a fresh browser with an empty cookie jar that
// reaches env's server: over TLS it trusts the test certificate.
func NewBrowserFor(t testing.TB, env *Env) *Browser {
	var rt http.RoundTripper
	if env.HTTPClient != nil {
		rt = env.HTTPClient.Transport
	}
	return newBrowser(t, rt)
}

func newBrowser(t testing.TB, rt http.RoundTripper) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, Client: &http.Client{
		Transport: rt, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Page is a fetched response with its body read.
type Page struct {
	*http.Response
	Body string
}

// Get fetches a URL.
func (b *Browser) Get(u string) Page {
	b.t.Helper()
	resp, err := b.Client.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	return read(b.t, resp)
}

// Post submits a form.
func (b *Browser) Post(u string, form url.Values) Page {
	b.t.Helper()
	resp, err := b.Client.PostForm(u, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	return read(b.t, resp)
}

func read(t testing.TB, resp *http.Response) Page {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Page{Response: resp, Body: string(body)}
}

// Location resolves a redirect's target.
func (p Page) Location() string {
	loc, err := p.Response.Location()
	if err != nil {
		return ""
	}
	return loc.String()
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// Hidden returns a page's hidden form fields.
func (p Page) Hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(p.Body, -1) {
		v.Set(m[1], htmlUnescape(m[2]))
	}
	return v
}

func htmlUnescape(s string) string {
	r := strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">", "&#61;", "=")
	return r.Replace(s)
}

// Follow follows redirects from p until a page that is not a redirect,
// or one whose target starts with stopAt (the relying party), returning
// the last page and, if stopped, the target URL.
func (b *Browser) Follow(p Page, stopAt string) (Page, string) {
	b.t.Helper()
	for i := 0; i < 10 && p.StatusCode >= 300 && p.StatusCode < 400; i++ {
		loc := p.Location()
		if stopAt != "" && strings.HasPrefix(loc, stopAt) {
			return p, loc
		}
		p = b.Get(loc)
	}
	return p, ""
}

// SignIn drives the password step: from an authorize URL to the redirect
// back to the relying party (prefix redirectPrefix), consenting if asked.
// It returns the callback URL.
func (b *Browser) SignIn(authorizeURL, email, password, redirectPrefix string) string {
	b.t.Helper()
	return b.SignInFrom(b.Get(authorizeURL), email, password, redirectPrefix)
}

// SignInFrom is SignIn from an authorization endpoint's answer already
// fetched (a form POST to /authorize, say).
func (b *Browser) SignInFrom(res Page, email, password, redirectPrefix string) string {
	b.t.Helper()
	page, done := b.Follow(res, redirectPrefix)
	if done != "" {
		return done
	}
	if strings.Contains(page.Request.URL.Path, "/consent") {
		return b.Finish(page, redirectPrefix)
	}
	if !strings.Contains(page.Request.URL.Path, "/login") {
		b.t.Fatalf("expected the login page, got %s (%d): %.300s", page.Request.URL, page.StatusCode, page.Body)
	}
	form := page.Hidden()
	form.Set("email", email)
	form.Set("password", password)
	loginURL := page.Request.URL.ResolveReference(&url.URL{Path: "/login"}).String()
	return b.Finish(b.Post(loginURL, form), redirectPrefix)
}

// Finish follows redirects, approving a consent page if one appears, until
// the redirect to the relying party; it returns that URL.
func (b *Browser) Finish(res Page, redirectPrefix string) string {
	b.t.Helper()
	res, done := b.Follow(res, redirectPrefix)
	if done != "" {
		return done
	}
	if res.Request.Method == http.MethodGet && strings.Contains(res.Request.URL.Path, "/consent") {
		form := res.Hidden()
		form.Set("decision", "allow")
		res, done = b.Follow(b.Post(res.Request.URL.ResolveReference(&url.URL{Path: "/consent"}).String(), form), redirectPrefix)
		if done != "" {
			return done
		}
	}
	b.t.Fatalf("did not return to the relying party: %s (%d): %.500s", res.Request.URL, res.StatusCode, res.Body)
	return ""
}
