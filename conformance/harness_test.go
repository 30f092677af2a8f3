package conformance_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math"
	"math/big"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/conformance"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
)

const (
	password = "correct horse battery staple"
	// The relying party's callback: https, as the suite's is. The browser
	// stops at the redirect, so nothing needs to listen there.
	rpCallback  = "https://rp.conformance.test/callback"
	rpLoggedOut = "https://rp.conformance.test/logged-out"
	skew        = 5 * 60 // seconds of clock skew the suite allows
)

// ---- the result table ----------------------------------------------------

var recorded struct {
	sync.Mutex
	results []conformance.Result
}

func record(r conformance.Result) {
	recorded.Lock()
	defer recorded.Unlock()
	recorded.results = append(recorded.results, r)
}

// TestMain runs the tests, then writes the result table when
// TWOFOLD_CONFORMANCE_REPORT names a file (a relative path is taken from
// the package directory, where go test runs the binary).
func TestMain(m *testing.M) {
	code := m.Run()
	if path := os.Getenv(conformance.EnvReport); path != "" {
		recorded.Lock()
		rep := &conformance.Report{SuiteCommit: conformance.SuiteCommit, Results: recorded.results}
		rep.Results = rep.Sorted()
		recorded.Unlock()
		if err := rep.WriteFile(path); err != nil {
			fmt.Fprintln(os.Stderr, "conformance: write results:", err)
			code = 1
		} else {
			fmt.Fprintf(os.Stderr, "conformance: %d results written to %s\n", len(rep.Results), path)
		}
	}
	os.Exit(code)
}

// ---- one provider per database -------------------------------------------

// site is a running provider and the static clients the suite is
// configured with: client1 (client_secret_basic), a client_secret_post
// client, and client2 for the refresh token binding check.
type site struct {
	t          *testing.T
	dialect    string
	env        *providertest.Env
	op         *oidc.Provider
	client1    *rpClient
	clientPost *rpClient
	client2    *rpClient
	users      atomic.Int64
}

type rpClient struct {
	id, secret string
	style      oauth2.AuthStyle
}

func startSite(t *testing.T, dialect string) *site {
	t.Helper()
	env := providertest.Start(t, dialect, providertest.Options{TLS: true})
	s := &site{t: t, dialect: dialect, env: env}
	op, err := oidc.NewProvider(oidc.ClientContext(context.Background(), env.HTTPClient), env.URL)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	s.op = op
	s.client1 = s.newClient(t, "Conformance client 1", clients.AuthClientSecretBasic)
	s.clientPost = s.newClient(t, "Conformance client_secret_post", clients.AuthClientSecretPost)
	s.client2 = s.newClient(t, "Conformance client 2", clients.AuthClientSecretBasic)
	return s
}

// cleanup runs f when the database's test ends.
func (s *site) cleanup(f func()) { s.t.Cleanup(f) }

// newClient registers a third-party client (the consent page shows once
// per user and scope set), with Twofold's defaults otherwise, but for
// PKCE: the OpenID Foundation's Basic OP plan sends none, so its clients
// are registered as confidential apps that cannot (PKCEOptional).
func (s *site) newClient(t *testing.T, name, method string) *rpClient {
	id, secret := s.env.Client(t, clients.Spec{
		Name: name, RedirectURIs: []string{rpCallback}, PostLogoutRedirectURIs: []string{rpLoggedOut},
		TokenEndpointAuthMethod: method, PKCEOptional: true,
	})
	c := &rpClient{id: id, secret: secret, style: oauth2.AuthStyleInHeader}
	if method == clients.AuthClientSecretPost {
		c.style = oauth2.AuthStyleInParams
	}
	return c
}

// runPlan runs every module of plan on s, each as a parallel subtest
// named with the module's testName, so the suite's real waits overlap.
func runPlan(t *testing.T, s *site, plan conformance.Plan, impl map[string]func(*mod)) {
	t.Helper()
	for name := range impl {
		if !slices.ContainsFunc(plan.Modules, func(m conformance.Module) bool { return m.Name == name }) {
			t.Errorf("module %q is implemented but not in %s", name, plan.Name)
		}
	}
	for _, md := range plan.Modules {
		f := impl[md.Name]
		t.Run(md.Name, func(t *testing.T) {
			t.Parallel()
			m := s.begin(t, plan, md)
			if f == nil {
				m.Fatalf("no implementation of %s in this package", md.Name)
			}
			f(m)
		})
	}
}

// ---- one module run ------------------------------------------------------

// mod is one module run: a fresh browser, a user of its own (so consent
// and sessions never leak between modules running in parallel), and what
// the module recorded.
type mod struct {
	t      *testing.T
	s      *site
	b      *providertest.Browser
	email  string
	user   store.User
	ctx    context.Context // carries http, for go-oidc and x/oauth2
	http   *http.Client
	tape   *tape
	disc   map[string]any
	jwks   jose.JSONWebKeySet
	issuer string

	mu       sync.Mutex
	warnings []string
	failures []string
	note     string
	na       string
}

func (s *site) begin(t *testing.T, plan conformance.Plan, md conformance.Module) *mod {
	n := s.users.Add(1)
	tp := &tape{base: s.env.HTTPClient.Transport}
	hc := &http.Client{Transport: tp, Timeout: 30 * time.Second}
	m := &mod{
		t: t, s: s, b: providertest.NewBrowserFor(t, s.env), email: fmt.Sprintf("user%d@conformance.test", n),
		ctx: oidc.ClientContext(context.Background(), hc), http: hc, tape: tp, issuer: s.env.URL,
	}
	start := time.Now()
	t.Cleanup(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		r := conformance.Result{Plan: plan.Name, Database: s.dialect, Module: md.Name, Status: conformance.Pass,
			Reason: m.note, Warnings: m.warnings, Failures: m.failures, Seconds: math.Round(time.Since(start).Seconds()*10) / 10}
		switch {
		case t.Failed():
			r.Status = conformance.Fail
		case m.na != "":
			r.Status, r.Reason = conformance.NotApplicable, m.na
		}
		record(r)
	})
	m.user = s.env.User(t, m.email, password, store.PopulationAgent)
	m.setup()
	return m
}

// Errorf records a failure and marks the module failed.
func (m *mod) Errorf(format string, args ...any) {
	m.t.Helper()
	msg := fmt.Sprintf(format, args...)
	m.mu.Lock()
	m.failures = append(m.failures, msg)
	m.mu.Unlock()
	m.t.Error(msg)
}

// Fatalf records a failure and ends the module.
func (m *mod) Fatalf(format string, args ...any) {
	m.t.Helper()
	m.Errorf(format, args...)
	m.t.FailNow()
}

// Warnf records what the suite reports as a WARNING: the module passes.
func (m *mod) Warnf(format string, args ...any) {
	m.t.Helper()
	msg := fmt.Sprintf(format, args...)
	m.mu.Lock()
	m.warnings = append(m.warnings, msg)
	m.mu.Unlock()
	m.t.Log("WARNING: " + msg)
}

// Notef attaches a note to the module's result.
func (m *mod) Notef(format string, args ...any) {
	m.note = fmt.Sprintf(format, args...)
	m.t.Log("note: " + m.note)
}

// NotApplicable records that the module does not apply, and why. The
// subtest passes (it is not skipped) and the reason goes to the report.
func (m *mod) NotApplicable(format string, args ...any) {
	m.t.Helper()
	m.na = fmt.Sprintf(format, args...)
	m.t.Log("not applicable: " + m.na)
}

func (m *mod) check(ok bool, format string, args ...any) bool {
	m.t.Helper()
	if !ok {
		m.Errorf(format, args...)
	}
	return ok
}

// ---- setup: discovery and JWKS (AbstractOIDCCServerTest.configure) -------

func (m *mod) setup() {
	m.t.Helper()
	status, hdr, body := m.get(m.issuer + "/.well-known/openid-configuration")
	if status != 200 {
		m.Fatalf("discovery: HTTP %d", status)
	}
	if !isJSON(hdr) {
		m.Errorf("discovery: Content-Type %q is not application/json", hdr.Get("Content-Type"))
	}
	if err := json.Unmarshal(body, &m.disc); err != nil {
		m.Fatalf("discovery: %v", err)
	}
	// CheckServerConfiguration.
	if m.discString("issuer") != m.issuer {
		m.Errorf("discovery: issuer %q, fetched from %q", m.discString("issuer"), m.issuer)
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri"} {
		if m.discString(k) == "" {
			m.Fatalf("discovery: no %s", k)
		}
	}
	m.jwks = m.fetchJWKS()
}

// fetchJWKS fetches jwks_uri and checks it is a valid set of public keys,
// each with a kid, no two with the same (ValidateServerJWKs,
// CheckForKeyIdInServerJWKs, OIDCC-10.1).
func (m *mod) fetchJWKS() jose.JSONWebKeySet {
	m.t.Helper()
	status, hdr, body := m.get(m.discString("jwks_uri"))
	if status != 200 {
		m.Fatalf("jwks_uri: HTTP %d", status)
	}
	if !isJSON(hdr) {
		m.Errorf("jwks_uri: Content-Type %q is not application/json", hdr.Get("Content-Type"))
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		m.Fatalf("jwks_uri: %v", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		m.Fatalf("jwks_uri: not a valid JWK set: %v", err)
	}
	if len(set.Keys) == 0 {
		m.Fatalf("jwks_uri: no keys")
	}
	kids := map[string]bool{}
	for i, k := range raw.Keys {
		kid, _ := k["kid"].(string)
		if kid == "" {
			m.Errorf("jwks_uri: key %d has no kid (OIDCC-10.1)", i)
		} else if kids[kid] {
			m.Errorf("jwks_uri: kid %q is used twice", kid)
		}
		kids[kid] = true
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				m.Errorf("jwks_uri: key %q publishes private or symmetric member %q", kid, private)
			}
		}
	}
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() {
			m.Errorf("jwks_uri: key %q is not a valid public key", k.KeyID)
		}
	}
	return set
}

func (m *mod) discString(k string) string {
	s, _ := m.disc[k].(string)
	return s
}

func (m *mod) discStrings(k string) ([]string, bool) {
	v, ok := m.disc[k]
	if !ok {
		return nil, false
	}
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out, true
}

// ---- HTTP -----------------------------------------------------------------

// tape records the last response a client saw, so checks can read the
// status, headers and body behind x/oauth2 and go-oidc.
type tape struct {
	base http.RoundTripper
	mu   sync.Mutex
	last taped
}

type taped struct {
	status int
	header http.Header
	body   []byte
}

func (tp *tape) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tp.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	tp.mu.Lock()
	tp.last = taped{status: resp.StatusCode, header: resp.Header.Clone(), body: body}
	tp.mu.Unlock()
	return resp, nil
}

func (tp *tape) lastResponse() taped {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.last
}

func (m *mod) get(u string) (int, http.Header, []byte) {
	m.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		m.Fatalf("GET %s: %v", u, err)
	}
	return m.do(req)
}

func (m *mod) do(req *http.Request) (int, http.Header, []byte) {
	m.t.Helper()
	resp, err := m.http.Do(req)
	if err != nil {
		m.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func isJSON(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// ---- authorization requests ----------------------------------------------

// randomString returns n characters of [A-Za-z0-9], like the suite's
// CreateRandomStateValue/CreateRandomNonceValue (10 characters).
func randomString(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		x, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err)
		}
		b[i] = alphabet[x.Int64()]
	}
	return string(b)
}

// params is the suite's default authorization request for client c:
// response_type=code, scope=openid, a 10-character state and nonce.
func (m *mod) params(c *rpClient) url.Values {
	return url.Values{
		"client_id": {c.id}, "redirect_uri": {rpCallback}, "response_type": {"code"}, "scope": {"openid"},
		"state": {randomString(10)}, "nonce": {randomString(10)},
	}
}

func (m *mod) authURL(params url.Values) string {
	return m.discString("authorization_endpoint") + "?" + params.Encode()
}

// atClient reports whether a URL is the client's callback (any query).
func atClient(u string) bool {
	return u == rpCallback || strings.HasPrefix(u, rpCallback+"?") || strings.HasPrefix(u, rpCallback+"#")
}

// follow follows the provider's redirects from p until a page, or the
// redirect to the relying party, whose URL it returns.
func (m *mod) follow(p providertest.Page) (providertest.Page, string) {
	m.t.Helper()
	page, cb := m.followAll(p)
	if cb != "" && !atClient(cb) {
		m.Fatalf("redirected to %s, which is not the registered callback", cb)
	}
	return page, cb
}

// followAll follows redirects within the provider and stops at the first
// one that leaves it, returning that target.
func (m *mod) followAll(p providertest.Page) (providertest.Page, string) {
	m.t.Helper()
	for i := 0; i < 10 && p.StatusCode >= 300 && p.StatusCode < 400; i++ {
		loc := p.Location()
		if !strings.HasPrefix(loc, m.issuer+"/") {
			return p, loc
		}
		p = m.b.Get(loc)
	}
	return p, ""
}

// interact takes the browser from the authorization endpoint's answer to
// the callback, signing in and consenting when asked. shown is the first
// page the user saw ("" when the provider answered without any UI).
func (m *mod) interact(start providertest.Page) (callback, shown string) {
	m.t.Helper()
	page, cb := m.follow(start)
	if cb != "" {
		return cb, ""
	}
	shown = page.Request.URL.Path
	if shown != "/login" && shown != "/consent" {
		m.Fatalf("expected the sign-in page or a redirect to the client, got %s (HTTP %d): %.300s", page.Request.URL, page.StatusCode, page.Body)
	}
	return m.b.SignInFrom(page, m.email, password, rpCallback), shown
}

// callbackQuery parses the authorization response. The code flow answers
// in the query; nothing may come in the fragment.
func (m *mod) callbackQuery(cb string) url.Values {
	m.t.Helper()
	u, err := url.Parse(cb)
	if err != nil {
		m.Fatalf("callback %q: %v", cb, err)
	}
	if u.Fragment != "" {
		m.Errorf("the code flow answered in the fragment: %q", u.Fragment)
	}
	return u.Query()
}

// expectCode applies the suite's callback checks to a successful answer
// and returns the code: state echoed exactly, iss (RFC 9207) equal to the
// issuer when present, and a code of at least 128 bits with at least 96
// bits of Shannon entropy.
func (m *mod) expectCode(q url.Values, state string) string {
	m.t.Helper()
	if e := q.Get("error"); e != "" {
		m.Fatalf("authorization endpoint answered error=%s error_description=%q", e, q.Get("error_description"))
	}
	m.checkState(q, state)
	m.checkIss(q)
	code := q.Get("code")
	if code == "" {
		m.Fatalf("no code in the authorization response: %v", q)
	}
	m.check(len(code)*8 >= 128, "authorization code is %d bits long, below 128 (EnsureMinimumAuthorizationCodeLength)", len(code)*8)
	m.check(shannonBits(code) >= 96, "authorization code has %.1f bits of entropy, below 96 (EnsureMinimumAuthorizationCodeEntropy)", shannonBits(code))
	return code
}

func (m *mod) checkState(q url.Values, state string) {
	m.t.Helper()
	_, has := q["state"]
	switch {
	case state == "" && has:
		m.Errorf("state %q returned though none was sent", q.Get("state"))
	case state != "" && q.Get("state") != state:
		m.Errorf("state not echoed exactly: sent %q, got %q", state, q.Get("state"))
	}
}

func (m *mod) checkIss(q url.Values) {
	m.t.Helper()
	if _, ok := q["iss"]; ok && q.Get("iss") != m.issuer {
		m.Errorf("iss in the authorization response is %q, not the issuer %q (RFC 9207)", q.Get("iss"), m.issuer)
	}
}

// errorParams are the only parameters an error response may carry
// (CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint).
var errorParams = []string{"error", "error_description", "error_uri", "state", "session_state", "iss"}

// expectErrorRedirect checks an error sent back to the client: one of
// allowed, state echoed, no code, only the allowed parameters, RFC 6749
// character sets. It returns the error.
func (m *mod) expectErrorRedirect(cb, state string, allowed ...string) string {
	m.t.Helper()
	q := m.callbackQuery(cb)
	e := q.Get("error")
	if e == "" {
		m.Fatalf("expected an error (%s) at the client, got %s", strings.Join(allowed, " or "), cb)
	}
	m.check(slices.Contains(allowed, e), "error=%s (%q), want %s", e, q.Get("error_description"), strings.Join(allowed, " or "))
	m.checkState(q, state)
	m.checkIss(q)
	m.check(!q.Has("code"), "an error response carries a code")
	m.checkErrorFields(q)
	return e
}

func (m *mod) checkErrorFields(q url.Values) {
	m.t.Helper()
	for k := range q {
		m.check(slices.Contains(errorParams, k), "unexpected parameter %q in the error response (only %s are allowed)", k, strings.Join(errorParams, ", "))
	}
	m.check(charset(q.Get("error"), nqschar), "error %q has characters outside RFC 6749's set", q.Get("error"))
	m.check(charset(q.Get("error_description"), nqschar), "error_description %q has characters outside RFC 6749's set", q.Get("error_description"))
	m.check(charset(q.Get("error_uri"), uriChar), "error_uri %q has characters outside RFC 6749's set", q.Get("error_uri"))
}

// expectErrorPage is the machine version of the suite's REVIEW step: the
// user sees an HTML error page (HTTP 400) and nobody is redirected.
func (m *mod) expectErrorPage(page providertest.Page, cb string) {
	m.t.Helper()
	if cb != "" {
		m.Fatalf("expected an error page, but the browser was sent to the client: %s", cb)
	}
	m.check(page.StatusCode == http.StatusBadRequest, "error page: HTTP %d, want 400", page.StatusCode)
	m.check(page.Header.Get("Location") == "", "error page has a Location header: %s", page.Header.Get("Location"))
	m.check(strings.HasPrefix(page.Header.Get("Content-Type"), "text/html"), "error page: Content-Type %q, want text/html", page.Header.Get("Content-Type"))
}

// ---- the code flow ---------------------------------------------------------

// flow is one completed code flow.
type flow struct {
	client   *rpClient
	params   url.Values
	shown    string // first page the user saw; "" for none
	code     string
	tokens   tokenResponse
	idToken  string
	claims   map[string]any
	header   map[string]any
	userinfo map[string]any
}

type flowOpts struct {
	silent   bool   // prompt=none and the like: no page may be shown
	verifier string // PKCE code_verifier
}

// happy runs the code flow for c with the default request edited by edit.
func (m *mod) happy(c *rpClient, edit func(url.Values)) *flow {
	m.t.Helper()
	p := m.params(c)
	if edit != nil {
		edit(p)
	}
	return m.complete(c, p, m.b.Get(m.authURL(p)), flowOpts{})
}

// silent runs a flow that must complete without showing the user anything.
func (m *mod) silent(c *rpClient, edit func(url.Values)) *flow {
	m.t.Helper()
	p := m.params(c)
	if edit != nil {
		edit(p)
	}
	return m.complete(c, p, m.b.Get(m.authURL(p)), flowOpts{silent: true})
}

// complete takes the authorization endpoint's answer to tokens, checking
// what the suite checks on the way: callback, token response, ID token,
// and a userinfo call with the access token.
func (m *mod) complete(c *rpClient, params url.Values, start providertest.Page, o flowOpts) *flow {
	m.t.Helper()
	f := &flow{client: c, params: params}
	var cb string
	if o.silent {
		page, to := m.follow(start)
		if to == "" {
			m.Fatalf("expected a silent answer, but the provider showed %s (HTTP %d)", page.Request.URL.Path, page.StatusCode)
		}
		cb = to
	} else {
		cb, f.shown = m.interact(start)
	}
	f.code = m.expectCode(m.callbackQuery(cb), params.Get("state"))
	var opts []oauth2.AuthCodeOption
	if o.verifier != "" {
		opts = append(opts, oauth2.VerifierOption(o.verifier))
	}
	f.tokens = m.exchange(c, f.code, opts...)
	if f.tokens.status != 200 {
		m.Fatalf("token endpoint: HTTP %d: %s", f.tokens.status, f.tokens.body)
	}
	f.idToken = f.tokens.idToken
	if f.idToken == "" {
		m.Fatalf("token endpoint: no id_token")
	}
	nonce := params.Get("nonce")
	f.header, f.claims = m.checkIDToken(c, f.idToken, idTokenExpect{nonce: &nonce, accessToken: f.tokens.accessToken, code: f.code})
	f.userinfo = m.userinfo("get", f.tokens.accessToken, f.claims["sub"])
	return f
}

func (m *mod) oauthConfig(c *rpClient) *oauth2.Config {
	return &oauth2.Config{
		ClientID: c.id, ClientSecret: c.secret, RedirectURL: rpCallback,
		Endpoint: oauth2.Endpoint{AuthURL: m.discString("authorization_endpoint"), TokenURL: m.discString("token_endpoint"), AuthStyle: c.style},
	}
}

// tokenResponse is what the token endpoint answered, as x/oauth2 parsed
// it and as it came on the wire.
type tokenResponse struct {
	status       int
	header       http.Header
	body         []byte
	json         map[string]any
	err          error
	accessToken  string
	refreshToken string
	idToken      string
}

// exchange redeems a code with x/oauth2 and, on success, applies the
// suite's token endpoint checks. A refused request is returned for the
// caller to judge.
func (m *mod) exchange(c *rpClient, code string, opts ...oauth2.AuthCodeOption) tokenResponse {
	m.t.Helper()
	tok, err := m.oauthConfig(c).Exchange(m.ctx, code, opts...)
	return m.tokenResult(tok, err)
}

func (m *mod) refresh(c *rpClient, refreshToken string) tokenResponse {
	m.t.Helper()
	tok, err := m.oauthConfig(c).TokenSource(m.ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	return m.tokenResult(tok, err)
}

func (m *mod) tokenResult(tok *oauth2.Token, err error) tokenResponse {
	m.t.Helper()
	last := m.tape.lastResponse()
	r := tokenResponse{status: last.status, header: last.header, body: last.body, err: err}
	_ = json.Unmarshal(last.body, &r.json)
	if err != nil {
		if last.status == 200 {
			m.Errorf("token endpoint answered 200 but x/oauth2 refused it: %v", err)
		}
		return r
	}
	r.accessToken, r.refreshToken = tok.AccessToken, tok.RefreshToken
	r.idToken, _ = tok.Extra("id_token").(string)
	m.checkTokenResponse(r)
	return r
}

// checkTokenResponse: JSON, a Bearer access token with enough entropy in
// RFC 6749's character set, a valid expires_in when present.
func (m *mod) checkTokenResponse(r tokenResponse) {
	m.t.Helper()
	m.check(isJSON(r.header), "token response Content-Type %q is not application/json", r.header.Get("Content-Type"))
	at, _ := r.json["access_token"].(string)
	if !m.check(at != "", "token response has no access_token") {
		return
	}
	tt, _ := r.json["token_type"].(string)
	m.check(strings.EqualFold(tt, "bearer"), "token_type %q, want Bearer", tt)
	m.check(charset(tt, nameChar) && tt != "", "token_type %q has characters outside RFC 6749's set", tt)
	m.check(charset(at, vschar), "access_token has characters outside RFC 6749's VSCHAR")
	m.check(shannonBits(at) >= 96, "access token has %.1f bits of entropy, below 96 (EnsureMinimumAccessTokenEntropy)", shannonBits(at))
	if rt, ok := r.json["refresh_token"].(string); ok {
		m.check(charset(rt, vschar) && rt != "", "refresh_token has characters outside RFC 6749's VSCHAR")
	}
	if v, ok := r.json["expires_in"]; ok {
		n, isNum := v.(float64)
		m.check(isNum && n > 0 && n == math.Trunc(n), "expires_in %v is not a positive integer (ValidateExpiresIn)", v)
	}
	if s, ok := r.json["scope"].(string); ok {
		m.check(charset(strings.ReplaceAll(s, " ", ""), uriChar), "scope %q has characters outside RFC 6749's set", s)
	}
}

// expectTokenError checks a refused token request: the status, JSON, the
// error code.
func (m *mod) expectTokenError(r tokenResponse, status int, code string) {
	m.t.Helper()
	m.check(r.status == status, "token endpoint: HTTP %d, want %d: %s", r.status, status, r.body)
	m.check(isJSON(r.header), "token error: Content-Type %q is not application/json", r.header.Get("Content-Type"))
	got, _ := r.json["error"].(string)
	m.check(got == code, "token error %q, want %q", got, code)
	m.check(r.json["access_token"] == nil, "an error response carries an access token")
}

// ---- ID token (ValidateIdToken, ValidateIdTokenNonce, ValidateIdTokenSignature[UsingKid]) ----

type idTokenExpect struct {
	// nonce is the nonce sent ("" for none: then the claim must be
	// absent); nil skips the check (a refreshed ID token).
	nonce       *string
	accessToken string // for at_hash
	code        string // for c_hash
}

// checkIDToken verifies an ID token with go-oidc (signature against the
// JWKS, iss, aud, exp) and makes the suite's further checks. It returns
// the header and claims.
func (m *mod) checkIDToken(c *rpClient, raw string, want idTokenExpect) (map[string]any, map[string]any) {
	m.t.Helper()
	algs, _ := m.discStrings("id_token_signing_alg_values_supported")
	algs = slices.DeleteFunc(slices.Clone(algs), func(a string) bool { return a == "none" })
	v := m.s.op.Verifier(&oidc.Config{ClientID: c.id, SupportedSigningAlgs: algs})
	if _, err := v.Verify(m.ctx, raw); err != nil {
		m.Errorf("go-oidc refused the ID token: %v", err)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		m.Fatalf("ID token is not a JWS compact serialisation")
	}
	header, claims := decodeSegment(parts[0]), decodeSegment(parts[1])
	if header == nil || claims == nil {
		m.Fatalf("ID token header or payload is not base64url JSON")
	}
	alg, _ := header["alg"].(string)
	m.check(alg != "" && alg != "none", "ID token alg %q: the code flow's ID tokens must be signed", alg)
	m.check(slices.Contains(algs, alg), "ID token alg %q is not in id_token_signing_alg_values_supported %v", alg, algs)
	m.checkSignatureByKid(raw, header)

	now := float64(time.Now().Unix())
	m.check(claims["iss"] == m.issuer, "iss %v, want %q", claims["iss"], m.issuer)
	switch aud := claims["aud"].(type) {
	case string:
		m.check(aud == c.id, "aud %q, want %q", aud, c.id)
	case []any:
		m.check(slices.Contains(aud, any(c.id)), "aud %v does not contain %q", aud, c.id)
	default:
		m.Errorf("aud %v is neither a string nor an array", claims["aud"])
	}
	if exp, ok := claims["exp"].(float64); m.check(ok, "exp missing or not a number") {
		m.check(exp+skew > now, "exp %v is in the past", exp)
		m.check(exp < now+50*365*86400, "exp %v is more than 50 years ahead", exp)
	}
	if iat, ok := claims["iat"].(float64); m.check(ok, "iat missing or not a number") {
		m.check(math.Abs(iat-now) <= skew, "iat %v is more than 5 minutes from now (%v)", iat, now)
	}
	if v, ok := claims["auth_time"]; ok {
		at, isNum := v.(float64)
		if m.check(isNum, "auth_time %v is not a number", v) {
			m.check(at >= now-365*86400, "auth_time %v is more than a year ago", at)
			m.check(at <= now+skew, "auth_time %v is in the future", at)
		}
	}
	if v, ok := claims["acr"]; ok {
		m.check(v != "", "acr is an empty string")
	}
	if want.nonce != nil {
		got, has := claims["nonce"]
		if *want.nonce == "" {
			m.check(!has, "nonce %v in the ID token though none was sent", got)
		} else {
			m.check(got == *want.nonce, "nonce %v, want %q", got, *want.nonce)
		}
	}
	sub, _ := claims["sub"].(string)
	m.check(sub != "", "sub missing or empty")
	m.checkClaimTypes("ID token", claims)
	if h, ok := claims["at_hash"].(string); ok && want.accessToken != "" {
		m.check(h == halfHash(alg, want.accessToken), "at_hash %q does not match the access token", h)
	}
	if h, ok := claims["c_hash"].(string); ok && want.code != "" {
		m.check(h == halfHash(alg, want.code), "c_hash %q does not match the code", h)
	}
	return header, claims
}

// checkSignatureByKid verifies the signature with the JWKS key the
// header's kid names (ValidateIdTokenSignatureUsingKid).
func (m *mod) checkSignatureByKid(raw string, header map[string]any) {
	m.t.Helper()
	kid, _ := header["kid"].(string)
	if kid == "" {
		return // not required when the JWKS has one key per algorithm
	}
	keys := m.jwks.Key(kid)
	if len(keys) == 0 {
		// A key rotated since setup: fetch the set again.
		m.jwks = m.fetchJWKS()
		keys = m.jwks.Key(kid)
	}
	if len(keys) != 1 {
		m.Errorf("ID token kid %q matches %d JWKS keys, want 1", kid, len(keys))
		return
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA})
	if err != nil {
		m.Errorf("ID token: %v", err)
		return
	}
	if _, err := jws.Verify(keys[0]); err != nil {
		m.Errorf("ID token signature does not verify with JWKS key %q: %v", kid, err)
	}
}

func decodeSegment(seg string) map[string]any {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// halfHash is at_hash/c_hash: the left half of the hash the JWS alg
// names, base64url (OIDC Core 3.1.3.6, 3.3.2.11).
func halfHash(alg, value string) string {
	var h hash.Hash
	switch alg[len(alg)-3:] {
	case "384":
		h = sha512.New384()
	case "512":
		h = sha512.New()
	default:
		h = sha256.New()
	}
	h.Write([]byte(value))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// Standard claims and their JSON types (OIDC Core 2, 5.1), for the
// suite's "well-typed" checks.
var (
	stringClaims = []string{"iss", "sub", "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
		"profile", "picture", "website", "email", "gender", "birthdate", "zoneinfo", "locale", "phone_number",
		"nonce", "acr", "azp", "at_hash", "c_hash", "s_hash", "sid", "jti"}
	boolClaims   = []string{"email_verified", "phone_number_verified"}
	numberClaims = []string{"exp", "iat", "auth_time", "nbf", "updated_at"}
)

func (m *mod) checkClaimTypes(where string, claims map[string]any) {
	m.t.Helper()
	for k, v := range claims {
		switch {
		case slices.Contains(stringClaims, k):
			_, ok := v.(string)
			m.check(ok, "%s: %s %v is not a string", where, k, v)
		case slices.Contains(boolClaims, k):
			_, ok := v.(bool)
			m.check(ok, "%s: %s %v is not a boolean", where, k, v)
		case slices.Contains(numberClaims, k):
			_, ok := v.(float64)
			m.check(ok, "%s: %s %v is not a number", where, k, v)
		case k == "address":
			_, ok := v.(map[string]any)
			m.check(ok, "%s: address is not an object", where)
		case k == "amr":
			arr, ok := v.([]any)
			ok = ok && !slices.ContainsFunc(arr, func(x any) bool { _, s := x.(string); return !s })
			m.check(ok, "%s: amr %v is not an array of strings", where, v)
		}
	}
	if bd, ok := claims["birthdate"].(string); ok {
		_, e1 := time.Parse("2006-01-02", strings.Replace(bd, "0000-", "2000-", 1))
		_, e2 := time.Parse("2006", bd)
		m.check(e1 == nil || e2 == nil, "%s: birthdate %q is not YYYY-MM-DD or YYYY", where, bd)
	}
}

// ---- userinfo (AbstractOIDCCUserInfoTest) ----------------------------------

// userinfo calls the userinfo endpoint with the access token: "get" (GET,
// Bearer header), "post-header" or "post-body" (access_token in a form).
// It checks a 200 JSON answer whose sub is the ID token's, with
// well-typed claims, and returns the claims. For post-body a refusal is
// only a warning, as in the suite; then it returns nil.
func (m *mod) userinfo(how, accessToken string, sub any) map[string]any {
	m.t.Helper()
	status, hdr, body := m.userinfoCall(how, accessToken)
	if status != 200 {
		if how == "post-body" {
			m.Warnf("userinfo refused the access token in a POST body: HTTP %d", status)
			return nil
		}
		m.Fatalf("userinfo (%s): HTTP %d: %s", how, status, body)
	}
	m.check(isJSON(hdr), "userinfo: Content-Type %q, want application/json", hdr.Get("Content-Type"))
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil {
		m.Fatalf("userinfo: %v", err)
	}
	m.check(claims["sub"] != nil && claims["sub"] == sub, "userinfo sub %v, ID token sub %v", claims["sub"], sub)
	m.checkClaimTypes("userinfo", claims)
	return claims
}

func (m *mod) userinfoCall(how, accessToken string) (int, http.Header, []byte) {
	m.t.Helper()
	endpoint := m.discString("userinfo_endpoint")
	var req *http.Request
	var err error
	switch how {
	case "get":
		req, err = http.NewRequest(http.MethodGet, endpoint, nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+accessToken)
		}
	case "post-header":
		req, err = http.NewRequest(http.MethodPost, endpoint, nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+accessToken)
		}
	case "post-body":
		req, err = http.NewRequest(http.MethodPost, endpoint, strings.NewReader(url.Values{"access_token": {accessToken}}.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		m.Fatalf("userinfo request: %v", err)
	}
	return m.do(req)
}

// ---- character sets and entropy -------------------------------------------

type charClass func(r rune) bool

var (
	// NQSCHAR: error and error_description (RFC 6749 A.7, A.8).
	nqschar charClass = func(r rune) bool {
		return r == 0x20 || r == 0x21 || (r >= 0x23 && r <= 0x5b) || (r >= 0x5d && r <= 0x7e)
	}
	// error_uri (A.9) and scope-token (A.4).
	uriChar charClass = func(r rune) bool { return r == 0x21 || (r >= 0x23 && r <= 0x5b) || (r >= 0x5d && r <= 0x7e) }
	// VSCHAR: access_token, refresh_token (A.12, A.17).
	vschar charClass = func(r rune) bool { return r >= 0x20 && r <= 0x7e }
	// name-char: token_type (A.13).
	nameChar charClass = func(r rune) bool {
		return r == '-' || r == '.' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
	}
)

func charset(s string, ok charClass) bool {
	for _, r := range s {
		if !ok(r) {
			return false
		}
	}
	return true
}

// shannonBits estimates a string's entropy as the suite does: the Shannon
// entropy of its character distribution times its length.
func shannonBits(s string) float64 {
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	var h float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h * float64(n)
}
