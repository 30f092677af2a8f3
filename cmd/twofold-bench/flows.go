package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twofold-idp/twofold/mfa"
)

// target is the server under test, as the bench's clients see it.
type target struct {
	base string
	fx   *Fixture
	hc   *http.Client // keeps connections; does not follow redirects
	// steps[i] is the last TOTP step used by fx.TOTP[i]: a code is never
	// sent twice, nor one older than the last.
	steps []atomic.Int64
	// stalls counts waits for a fresh TOTP step.
	stalls atomic.Int64
}

func newTarget(base string, fx *Fixture, maxConns int) *target {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns * 2,
		MaxIdleConnsPerHost: maxConns * 2,
		IdleConnTimeout:     90 * time.Second,
	}
	t := &target{base: strings.TrimRight(base, "/"), fx: fx, steps: make([]atomic.Int64, len(fx.TOTP))}
	t.hc = &http.Client{Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return t
}

// stepsFile keeps the TOTP steps used between runs of the tool, so a run
// started within 30 s of the last one does not replay a code.
func stepsFile(fixture string) string { return fixture + ".steps" }

func (t *target) loadSteps(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var m map[string]int64
	if json.Unmarshal(b, &m) != nil {
		return
	}
	for i, u := range t.fx.TOTP {
		t.steps[i].Store(m[u.Email])
	}
}

func (t *target) saveSteps(path string) error {
	m := map[string]int64{}
	for i, u := range t.fx.TOTP {
		if s := t.steps[i].Load(); s > 0 {
			m[u.Email] = s
		}
	}
	b, _ := json.Marshal(m)
	return os.WriteFile(path, b, 0o600)
}

// httpError is an unexpected answer.
func httpError(what string, resp *http.Response, body []byte) error {
	return fmt.Errorf("%s: %s: %.200s", what, resp.Status, strings.TrimSpace(string(body)))
}

// do sends a request and reads the whole body.
func do(hc *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func (t *target) get(ctx context.Context, path string, want int) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
	resp, body, err := do(t.hc, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, httpError("GET "+path, resp, body)
	}
	return body, nil
}

// postForm posts to the server with HTTP basic client authentication.
func (t *target) postForm(ctx context.Context, path string, c Client, form url.Values) (*http.Response, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.ID != "" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	return do(t.hc, req)
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	TokenType    string `json:"token_type"`
}

func (t *target) token(ctx context.Context, c Client, form url.Values, wantID bool) (tokenResponse, error) {
	var tr tokenResponse
	resp, body, err := t.postForm(ctx, "/token", c, form)
	if err != nil {
		return tr, err
	}
	if resp.StatusCode != http.StatusOK {
		return tr, httpError("POST /token "+form.Get("grant_type"), resp, body)
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return tr, fmt.Errorf("token response: %w", err)
	}
	if tr.AccessToken == "" || (wantID && tr.IDToken == "") {
		return tr, fmt.Errorf("token response without the expected tokens: %.200s", body)
	}
	return tr, nil
}

func (t *target) clientCredentials(ctx context.Context) (string, error) {
	tr, err := t.token(ctx, t.fx.Service, url.Values{"grant_type": {"client_credentials"}}, false)
	return tr.AccessToken, err
}

// prepareJWT measures client_credentials for a client with JWT access
// tokens; a fixture from before they existed is sent back to setup, and
// an opaque answer is an error (the bench would measure the wrong thing).
func prepareJWT(es256 bool) func(ctx context.Context, t *target, vus int, lim limits) (func(ctx context.Context, vu int) error, error) {
	return func(_ context.Context, t *target, _ int, _ limits) (func(ctx context.Context, vu int) error, error) {
		c := t.fx.ServiceJWTRS256
		if es256 {
			c = t.fx.ServiceJWTES256
		}
		if c.ID == "" {
			return nil, fmt.Errorf("the fixture has no JWT access token clients: run setup again")
		}
		form := url.Values{"grant_type": {"client_credentials"}}
		return func(ctx context.Context, _ int) error {
			tr, err := t.token(ctx, c, form, false)
			if err == nil && strings.Count(tr.AccessToken, ".") != 2 {
				err = fmt.Errorf("client %s got an access token that is not a JWT: %.40s", c.ID, tr.AccessToken)
			}
			return err
		}, nil
	}
}

// hiddenInput matches the hosted pages' hidden fields (html/template output).
var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

func hidden(body []byte) url.Values {
	v := url.Values{}
	for _, m := range hiddenInput.FindAllSubmatch(body, -1) {
		v.Set(string(m[1]), html.UnescapeString(string(m[2])))
	}
	return v
}

// browser is one sign-in: a fresh cookie jar (no SSO session), sharing
// the target's connections.
type browser struct {
	t  *target
	hc *http.Client
}

func (t *target) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, hc: &http.Client{Transport: t.hc.Transport, Jar: jar, Timeout: t.hc.Timeout, CheckRedirect: t.hc.CheckRedirect}}
}

func (b *browser) send(ctx context.Context, method, u string, form url.Values) (*http.Response, []byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return do(b.hc, req)
}

// totpUser picks a TOTP user of this virtual user's share (every vus-th,
// from vu) whose last step is before the current one, and reserves the
// current step for it. With none free it waits for the next step when
// that comes before the deadline, else ends the loop (errDone).
func (t *target) totpUser(ctx context.Context, vu, vus int, next *int) (int, int64, error) {
	n := len(t.fx.TOTP)
	if vu >= n {
		return 0, 0, fmt.Errorf("virtual user %d has no TOTP user: run setup with more than %d --totp-users", vu, n)
	}
	share := (n - vu + vus - 1) / vus // users vu, vu+vus, vu+2·vus…
	for {
		step := mfa.Step(time.Now())
		for range share {
			i := vu + *next*vus
			*next = (*next + 1) % share
			if last := t.steps[i].Load(); last < step && t.steps[i].CompareAndSwap(last, step) {
				return i, step, nil
			}
		}
		// Every user of this share has signed in during this step.
		wake := time.Unix((step+1)*30, 0).Add(50 * time.Millisecond)
		if d := deadlineOf(ctx); !d.IsZero() && wake.After(d) {
			return 0, 0, errDone
		}
		t.stalls.Add(1)
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(time.Until(wake)):
		}
	}
}

// login runs the hosted sign-in of the code flow with PKCE: authorize,
// the password page, the authenticator-app page when totp is set, the
// code exchange at the token endpoint and a userinfo call. It returns the
// token response.
func (t *target) login(ctx context.Context, rp Client, email, totpSecret string, scope string, totpStep int64) (tokenResponse, error) {
	var none tokenResponse
	b := t.newBrowser()
	verifier := randomHex(32)
	sum := sha256.Sum256([]byte(verifier))
	state, nonce := randomHex(8), randomHex(8)
	q := url.Values{
		"response_type": {"code"}, "client_id": {rp.ID}, "redirect_uri": {t.fx.RedirectURI},
		"scope": {scope}, "state": {state}, "nonce": {nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	loc := t.base + "/authorize?" + q.Encode()
	method, form := http.MethodGet, url.Values(nil)
	sawPassword, sawTOTP := false, false
	for hop := 0; ; hop++ {
		if hop > 12 {
			return none, fmt.Errorf("sign-in did not reach the relying party after %d hops", hop)
		}
		resp, body, err := b.send(ctx, method, loc, form)
		if err != nil {
			return none, err
		}
		page := resp.Request.URL
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			next, err := resp.Location()
			if err != nil {
				return none, err
			}
			loc, method, form = next.String(), http.MethodGet, nil
			if strings.HasPrefix(loc, t.fx.RedirectURI) {
				return t.redeem(ctx, rp, next.Query(), state, verifier, totpSecret != "", sawTOTP)
			}
			continue
		case resp.StatusCode != http.StatusOK:
			return none, httpError(method+" "+page.Path, resp, body)
		case method == http.MethodGet && page.Path == "/login" && !sawPassword:
			sawPassword = true
			form = hidden(body)
			form.Set("email", email)
			form.Set("password", t.fx.Password)
		case bytes.Contains(body, []byte(`action="/login/2fa"`)) && totpSecret != "" && !sawTOTP:
			// The password's POST answers with this page (or a GET of
			// /login/2fa serves it).
			page = page.ResolveReference(&url.URL{Path: "/login/2fa"})
			sawTOTP = true
			form = hidden(body)
			code, err := mfa.TOTPCode(totpSecret, time.Unix(totpStep*30, 0))
			if err != nil {
				return none, err
			}
			form.Set("method", "totp")
			form.Set("code", code)
		default:
			// Never submit anything twice: a second password or code
			// could count as a failure and lock the account.
			return none, fmt.Errorf("unexpected page %s: %.200s", page.Path, body)
		}
		loc, method = page.ResolveReference(&url.URL{Path: page.Path}).String(), http.MethodPost
	}
}

// redeem exchanges the code and calls userinfo with the access token.
func (t *target) redeem(ctx context.Context, rp Client, cb url.Values, state, verifier string, wantTOTP, sawTOTP bool) (tokenResponse, error) {
	var none tokenResponse
	if cb.Get("error") != "" {
		return none, fmt.Errorf("authorization error: %s: %s", cb.Get("error"), cb.Get("error_description"))
	}
	if cb.Get("state") != state || cb.Get("code") == "" {
		return none, fmt.Errorf("bad callback: %v", cb)
	}
	if wantTOTP && !sawTOTP {
		return none, fmt.Errorf("signed in without the second factor")
	}
	tr, err := t.token(ctx, rp, url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")},
		"redirect_uri": {t.fx.RedirectURI}, "code_verifier": {verifier}}, true)
	if err != nil {
		return none, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	resp, body, err := do(t.hc, req)
	if err != nil {
		return none, err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"sub"`) {
		return none, httpError("GET /userinfo", resp, body)
	}
	return tr, nil
}

// flow is one measured operation, with untimed preparation per run.
type flow struct {
	name  string
	what  string
	bound string // which machine bound limits it
	// prepare runs before the clock starts (tokens to introspect or
	// revoke, refresh tokens from a first sign-in).
	prepare func(ctx context.Context, t *target, vus int, lim limits) (func(ctx context.Context, vu int) error, error)
}

// Bound names.
const (
	boundHTTP     = "http"   // bare net/http handler, same load generator
	boundArgon2   = "argon2" // argon2id verifications/s
	boundInsert   = "insert" // durable single-row inserts/s of the server's database
	boundRS256    = "rs256"
	boundES256    = "es256"
	boundInsertCC = "insert+http"
	boundCCRS256  = "rs256+insert+http"
	boundCCES256  = "es256+insert+http"
)

// perVU runs fn once per virtual user, in parallel (preparation).
func perVU(vus int, fn func(vu int) error) error {
	errs := make([]error, vus)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for vu := range vus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[vu] = fn(vu)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func allFlows() []flow {
	simple := func(path string) func(ctx context.Context, t *target, vus int, lim limits) (func(ctx context.Context, vu int) error, error) {
		return func(_ context.Context, t *target, _ int, _ limits) (func(ctx context.Context, vu int) error, error) {
			return func(ctx context.Context, _ int) error {
				_, err := t.get(ctx, path, http.StatusOK)
				return err
			}, nil
		}
	}
	return []flow{
		{name: "discovery", what: "GET /.well-known/openid-configuration", bound: boundHTTP, prepare: simple("/.well-known/openid-configuration")},
		{name: "jwks", what: "GET /jwks", bound: boundHTTP, prepare: simple("/jwks")},
		{name: "client_credentials", what: "POST /token client_credentials, opaque access token", bound: boundInsertCC,
			prepare: func(_ context.Context, t *target, _ int, _ limits) (func(ctx context.Context, vu int) error, error) {
				return func(ctx context.Context, _ int) error { _, err := t.clientCredentials(ctx); return err }, nil
			}},
		{name: "client_credentials_jwt_rs256", what: "POST /token client_credentials, JWT access token (RS256)", bound: boundCCRS256, prepare: prepareJWT(false)},
		{name: "client_credentials_jwt_es256", what: "POST /token client_credentials, JWT access token (ES256)", bound: boundCCES256, prepare: prepareJWT(true)},
		{name: "introspect", what: "POST /introspect of an active opaque token", bound: boundHTTP, prepare: prepareIntrospect},
		{name: "revoke", what: "POST /revoke of a fresh opaque token (tokens issued before the clock starts)", bound: boundInsert, prepare: prepareRevoke},
		{name: "refresh", what: "POST /token refresh_token (rotated) + RS256 ID token", bound: boundRS256, prepare: prepareRefresh(false)},
		{name: "refresh_es256", what: "POST /token refresh_token (rotated) + ES256 ID token", bound: boundES256, prepare: prepareRefresh(true)},
		{name: "login", what: "authorize → password → code → token → userinfo", bound: boundArgon2, prepare: prepareLogin(false)},
		{name: "login_totp", what: "authorize → password → TOTP → code → token → userinfo", bound: boundArgon2, prepare: prepareLogin(true)},
	}
}

func prepareIntrospect(ctx context.Context, t *target, vus int, _ limits) (func(ctx context.Context, vu int) error, error) {
	toks := make([]string, vus)
	if err := perVU(vus, func(vu int) (err error) { toks[vu], err = t.clientCredentials(ctx); return err }); err != nil {
		return nil, err
	}
	return func(ctx context.Context, vu int) error {
		resp, body, err := t.postForm(ctx, "/introspect", t.fx.Service, url.Values{"token": {toks[vu]}})
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"active":true`) {
			return httpError("POST /introspect", resp, body)
		}
		return nil
	}, nil
}

// revokePool is how many tokens revoke prepares when no count is given.
var revokePool = 2000

func prepareRevoke(ctx context.Context, t *target, vus int, lim limits) (func(ctx context.Context, vu int) error, error) {
	total := int64(revokePool)
	if lim.Count > 0 {
		total = lim.Count
	}
	per := int((total + int64(vus) - 1) / int64(vus))
	pools := make([][]string, vus)
	if err := perVU(vus, func(vu int) error {
		for range per {
			tok, err := t.clientCredentials(ctx)
			if err != nil {
				return err
			}
			pools[vu] = append(pools[vu], tok)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return func(ctx context.Context, vu int) error {
		if len(pools[vu]) == 0 {
			return errDone
		}
		tok := pools[vu][0]
		pools[vu] = pools[vu][1:]
		resp, body, err := t.postForm(ctx, "/revoke", t.fx.Service, url.Values{"token": {tok}, "token_type_hint": {"access_token"}})
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return httpError("POST /revoke", resp, body)
		}
		return nil
	}, nil
}

func prepareRefresh(es256 bool) func(ctx context.Context, t *target, vus int, lim limits) (func(ctx context.Context, vu int) error, error) {
	return func(ctx context.Context, t *target, vus int, _ limits) (func(ctx context.Context, vu int) error, error) {
		rp := t.fx.RP
		if es256 {
			rp = t.fx.RPES256
		}
		if len(t.fx.Users) < vus {
			return nil, fmt.Errorf("refresh needs a password user per virtual user: %d users for %d", len(t.fx.Users), vus)
		}
		refresh := make([]string, vus)
		err := perVU(vus, func(vu int) error {
			tr, err := t.login(ctx, rp, t.fx.Users[vu].Email, "", "openid profile email offline_access", 0)
			if err == nil && tr.RefreshToken == "" {
				err = fmt.Errorf("no refresh token")
			}
			refresh[vu] = tr.RefreshToken
			return err
		})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, vu int) error {
			tr, err := t.token(ctx, rp, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh[vu]}}, true)
			if err != nil {
				return err
			}
			if tr.RefreshToken == "" {
				return fmt.Errorf("refresh: no new refresh token")
			}
			refresh[vu] = tr.RefreshToken
			return nil
		}, nil
	}
}

func prepareLogin(totp bool) func(ctx context.Context, t *target, vus int, lim limits) (func(ctx context.Context, vu int) error, error) {
	return func(_ context.Context, t *target, vus int, _ limits) (func(ctx context.Context, vu int) error, error) {
		next := make([]int, vus)
		if !totp {
			if len(t.fx.Users) == 0 {
				return nil, fmt.Errorf("no password users in the fixture")
			}
			return func(ctx context.Context, vu int) error {
				u := t.fx.Users[(vu+next[vu]*vus)%len(t.fx.Users)]
				next[vu]++
				_, err := t.login(ctx, t.fx.RP, u.Email, "", "openid profile email", 0)
				return err
			}, nil
		}
		if len(t.fx.TOTP) < vus {
			return nil, fmt.Errorf("login_totp needs at least one TOTP user per virtual user: %d for %d", len(t.fx.TOTP), vus)
		}
		return func(ctx context.Context, vu int) error {
			i, step, err := t.totpUser(ctx, vu, vus, &next[vu])
			if err != nil {
				return err
			}
			u := t.fx.TOTP[i]
			_, err = t.login(ctx, t.fx.RP, u.Email, u.TOTPSecret, "openid profile email", step)
			return err
		}, nil
	}
}
