package provider_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// clock is the provider's clock in these tests: real time plus an offset
// the test moves (TOTP steps, throttle locks).
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// mfaEnv is a provider with a movable clock, a user and a first-party RP.
type mfaEnv struct {
	*providertest.Env
	clock *clock
	rp    *rp
	user  store.User
}

func newMFAEnv(t *testing.T, dialect string) *mfaEnv { return newMFAEnvWith(t, dialect, nil) }

// newMFAEnvWith is newMFAEnv with the provider's configuration changed.
func newMFAEnvWith(t *testing.T, dialect string, config func(*provider.Config)) *mfaEnv {
	return startMFAEnv(t, dialect, providertest.Options{Config: config})
}

// startMFAEnv is newMFAEnv with the test provider's options (its clock
// is set here).
func startMFAEnv(t *testing.T, dialect string, o providertest.Options) *mfaEnv {
	// The clock starts three hours back and only moves forward toward
	// real time: fosite checks auth_time against the real clock, and
	// each TOTP code in a test needs a new time step.
	c := &clock{off: -3 * time.Hour}
	o.Now = c.Now
	env := providertest.Start(t, dialect, o)
	u := env.User(t, "ada@example.com", password, store.PopulationAgent)
	return &mfaEnv{Env: env, clock: c, rp: newRP(t, env, clients.Spec{FirstParty: true}), user: u}
}

// addTOTP and addCodes seed factors (see providertest).
func (e *mfaEnv) addTOTP(t *testing.T, userID string) string { return e.AddTOTP(t, userID) }

func (e *mfaEnv) addCodes(t *testing.T, userID string) []string { return e.AddRecoveryCodes(t, userID) }

// code is the TOTP code at the provider's current time; the clock then
// moves a step on so the next code is a new one.
func (e *mfaEnv) code(t *testing.T, secret string) string {
	t.Helper()
	c, err := mfa.TOTPCode(secret, e.clock.Now())
	require.NoError(t, err)
	e.clock.Advance(30 * time.Second)
	return c
}

// toSecondStep signs in with the password and returns the page that
// follows (the second-factor or enrolment page).
func (e *mfaEnv) toSecondStep(t *testing.T, b *providertest.Browser, authURL, email string) providertest.Page {
	t.Helper()
	p, done := b.Follow(b.Get(authURL), redirectURI)
	require.Empty(t, done, "signed in without a password step")
	require.Contains(t, p.Request.URL.Path, "/login", p.Body)
	form := p.Hidden()
	form.Set("email", email)
	form.Set("password", password)
	res := b.Post(e.URL+"/login", form)
	if isSecondFactor(res) {
		require.Equal(t, http.StatusOK, res.StatusCode)
		return res // the password POST answers with the second step's page
	}
	require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
	next, done := b.Follow(res, redirectURI)
	require.Empty(t, done, "a code was issued after the password alone")
	return next
}

// isSecondFactor says whether p is the second step's page, whether it
// answered the password's POST or a GET of /login/2fa.
func isSecondFactor(p providertest.Page) bool {
	return strings.Contains(p.Body, `action="/login/2fa"`)
}

// submitCode posts a code on the second-factor page.
func (e *mfaEnv) submitCode(b *providertest.Browser, page providertest.Page, method, code string) providertest.Page {
	form := page.Hidden()
	form.Del("action") // the email page's send button
	form.Set("method", method)
	form.Set("code", code)
	return b.Post(e.URL+"/login/2fa", form)
}

func (e *mfaEnv) authURL(opts ...oauth2.AuthCodeOption) (string, string) {
	verifier := oauth2.GenerateVerifier()
	opts = append(opts, oauth2.S256ChallengeOption(verifier), oidcNonce("n-mfa-1234"))
	return e.rp.conf.AuthCodeURL("st-mfa-1234", opts...), verifier
}

// tokensFrom exchanges the code of a callback URL.
func (e *mfaEnv) tokensFrom(t *testing.T, cb, verifier string) idClaims {
	t.Helper()
	q := mustQuery(t, cb)
	require.NotEmpty(t, q.Get("code"), cb)
	_, idt := e.rp.exchange(t, q.Get("code"), verifier)
	return claimsOf(t, idt)
}

func sessionCount(t *testing.T, e *mfaEnv, b *providertest.Browser) int {
	u, _ := url.Parse(e.URL)
	n := 0
	for _, c := range b.Jar.Cookies(u) {
		if strings.HasSuffix(c.Name, "twofold_session") {
			n++
		}
	}
	return n
}

// race brings n browsers to the second-factor step, then has them all
// post at once: browser i posts method and code(i) to bases[i%len(bases)].
// It returns how many answers had each status.
func (e *mfaEnv) race(t *testing.T, n int, bases []string, method string, code func(i int) string) map[int]int {
	t.Helper()
	authURL, _ := e.authURL()
	pages := make([]providertest.Page, n)
	browsers := make([]*providertest.Browser, n)
	for i := range n {
		browsers[i] = providertest.NewBrowser(t)
		pages[i] = e.toSecondStep(t, browsers[i], authURL, "ada@example.com")
	}
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := pages[i].Hidden()
			form.Set("method", method)
			form.Set("code", code(i))
			resp, err := browsers[i].PostForm(bases[i%len(bases)]+"/login/2fa", form)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return statuses
}

// TestR01_NoTokenCodeOrSessionBeforeSecondFactor: after the password of a
// user with a second factor there is no session and no code, and no later
// step can be reached without the factor.
func TestR01_NoTokenCodeOrSessionBeforeSecondFactor(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			secret := e.addTOTP(t, e.user.ID)
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			require.True(t, isSecondFactor(page))
			assert.Zero(t, sessionCount(t, e, b), "no SSO session cookie yet")
			flowID := page.Hidden().Get("flow")

			// Every shortcut is refused.
			p := b.Get(e.rp.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			assert.Equal(t, "login_required", mustQuery(t, p.Location()).Get("error"), "no session exists")
			for _, step := range []string{"/consent", "/login/recovery-codes", "/login/enrol", "/login"} {
				res := b.Post(e.URL+step, url.Values{"flow": {flowID}, "csrf": {page.Hidden().Get("csrf")}, "decision": {"allow"}, "saved": {"yes"},
					"email": {"ada@example.com"}, "password": {password}})
				assert.Contains(t, []int{400, 403}, res.StatusCode, "POST %s on a flow waiting for the second factor", step)
				assert.NotContains(t, res.Header.Get("Location"), "code=")
			}
			tampered := page.Hidden()
			tampered.Set("flow", flowID+"x")
			tampered.Set("code", e.code(t, secret))
			assert.Equal(t, http.StatusForbidden, b.Post(e.URL+"/login/2fa", tampered).StatusCode, "a tampered flow id fails the CSRF binding")
			noCSRF := page.Hidden()
			noCSRF.Del("csrf")
			noCSRF.Set("code", e.code(t, secret))
			assert.Equal(t, http.StatusForbidden, b.Post(e.URL+"/login/2fa", noCSRF).StatusCode)
			// Another browser cannot drive this flow.
			other := e.submitCode(providertest.NewBrowser(t), page, "totp", e.code(t, secret))
			assert.Equal(t, http.StatusBadRequest, other.StatusCode)

			res := e.submitCode(b, page, "totp", e.code(t, secret))
			cb := b.Finish(res, redirectURI)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"pwd", "otp", "mfa"}, c.Amr)
			assert.Equal(t, 1, sessionCount(t, e, b))
		})
	}
}

// TestR02_AMRAndACRForEachMethod: the relying party's view, through
// go-oidc, of each way to sign in.
func TestR02_AMRAndACRForEachMethod(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			// Password only.
			_, idt, _ := e.rp.login(t, providertest.NewBrowser(t), "ada@example.com")
			c := claimsOf(t, idt)
			assert.Equal(t, []string{"pwd"}, c.Amr)
			assert.Equal(t, provider.ACRPassword, c.Acr)

			secret := e.addTOTP(t, e.user.ID)
			codes := e.addCodes(t, e.user.ID)
			for _, tc := range []struct {
				method, code string
				amr          []string
			}{
				{"totp", e.code(t, secret), []string{"pwd", "otp", "mfa"}},
				{"recovery", codes[3], []string{"pwd", "rc", "mfa"}},
			} {
				b := providertest.NewBrowser(t)
				authURL, verifier := e.authURL()
				page := e.toSecondStep(t, b, authURL, "ada@example.com")
				cb := b.Finish(e.submitCode(b, page, tc.method, tc.code), redirectURI)
				tok, idt := e.rp.exchange(t, mustQuery(t, cb).Get("code"), verifier)
				c := claimsOf(t, idt)
				assert.Equal(t, tc.amr, c.Amr, tc.method)
				assert.Equal(t, provider.ACRMFA, c.Acr, tc.method)
				// Introspection says the same to a resource server.
				intro := introspect(t, e.Env, e.rp.conf.ClientID, e.rp.conf.ClientSecret, tok.AccessToken)
				assert.Equal(t, true, intro["active"], tc.method)
				assert.ElementsMatch(t, tc.amr, intro["amr"], tc.method)
				assert.Equal(t, provider.ACRMFA, intro["acr"], tc.method)
				assert.Equal(t, float64(c.AuthTime), intro["auth_time"], tc.method)
			}
			// Discovery advertises exactly these acr values.
			assert.Contains(t, providertest.NewBrowser(t).Get(e.URL+"/.well-known/openid-configuration").Body,
				`"acr_values_supported":["urn:twofold:acr:pwd","urn:twofold:acr:mfa"]`)
		})
	}
}

// TestR11_PasswordAnswersWithSecondStep: the password's POST answers
// with the second step's page itself (no redirect); posting the form
// again, as a browser's reload does, shows that page again without a
// second password check or a session; the page's own address still
// serves it, and its code completes the sign-in.
func TestR11_PasswordAnswersWithSecondStep(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			secret := e.addTOTP(t, e.user.ID)
			e.AddRecoveryCodes(t, e.user.ID)
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			login, _ := b.Follow(b.Get(authURL), redirectURI)
			form := login.Hidden()
			form.Set("email", "ada@example.com")
			form.Set("password", password)
			page := b.Post(e.URL+"/login", form)
			require.Equal(t, http.StatusOK, page.StatusCode, page.Body)
			require.True(t, isSecondFactor(page), page.Body)
			assert.Contains(t, page.Body, `method=recovery`, "the other ways are offered")
			flow := page.Hidden().Get("flow")
			assert.Equal(t, form.Get("flow"), flow)
			assert.Zero(t, sessionCount(t, e, b), "no session before the second step")

			// A reload posts the password form again: the same page,
			// whatever the password field holds, and nothing counted:
			// more reloads than the password limit allows tries.
			form.Set("password", "")
			var again providertest.Page
			for range provider.PasswordLimit + 2 {
				again = b.Post(e.URL+"/login", form)
				require.Equal(t, http.StatusOK, again.StatusCode, again.Body)
				require.True(t, isSecondFactor(again))
			}
			assert.Equal(t, flow, again.Hidden().Get("flow"))
			assert.Zero(t, sessionCount(t, e, b))
			// Another browser cannot use the flow this way.
			other := providertest.NewBrowser(t)
			assert.Equal(t, http.StatusBadRequest, other.Post(e.URL+"/login", form).StatusCode)
			// Its address serves it too.
			got := b.Get(e.URL + "/login/2fa?flow=" + flow)
			require.True(t, isSecondFactor(got))

			cb := b.Finish(e.submitCode(b, again, "totp", e.code(t, secret)), redirectURI)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"pwd", "otp", "mfa"}, c.Amr)
			events, err := e.Store.ListAudit(context.Background(), store.AuditFilter{UserID: e.user.ID})
			require.NoError(t, err)
			n := 0
			for _, ev := range events {
				if ev.Type == "login.password_ok" {
					n++
				}
			}
			assert.Equal(t, 1, n, "one password check, audited once")

			// The password form posted twice at once (a double click):
			// both answers are the second step's page.
			b2 := providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			login, _ = b2.Follow(b2.Get(authURL), redirectURI)
			form = login.Hidden()
			form.Set("email", "ada@example.com")
			form.Set("password", password)
			pages := make([]providertest.Page, 2)
			var wg sync.WaitGroup
			for i := range pages {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pages[i] = b2.Post(e.URL+"/login", form)
				}()
			}
			wg.Wait()
			for _, pg := range pages {
				assert.Equal(t, http.StatusOK, pg.StatusCode, pg.Body)
				assert.True(t, isSecondFactor(pg), pg.Body)
			}
		})
	}
}

// TestR05_TOTPCodes: wrong, expired, reused and foreign codes are refused.
func TestR05_TOTPCodes(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			secret := e.addTOTP(t, e.user.ID)
			bo := e.User(t, "bo@example.com", password, store.PopulationAgent)
			boSecret := e.addTOTP(t, bo.ID)

			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			old, _ := mfa.TOTPCode(secret, e.clock.Now().Add(-90*time.Second))
			foreign, _ := mfa.TOTPCode(boSecret, e.clock.Now())
			cur, _ := mfa.TOTPCode(secret, e.clock.Now())
			wrong := fmt.Sprintf("%06d", (atoi(cur)+1)%1000000)
			for _, bad := range []string{wrong, old, foreign, cur + "0"} {
				if bad == cur {
					continue
				}
				res := e.submitCode(b, page, "totp", bad)
				assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "code %q", bad)
				assert.Contains(t, res.Body, "That code didn&#39;t work")
			}
			good := e.code(t, secret)
			cb := b.Finish(e.submitCode(b, page, "totp", good), redirectURI)
			e.tokensFrom(t, cb, verifier)

			// The same code in a new sign-in, even within its window: refused.
			e.clock.Advance(-30 * time.Second)
			b2 := providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			page = e.toSecondStep(t, b2, authURL, "ada@example.com")
			res := e.submitCode(b2, page, "totp", good)
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "a used code is never accepted again")
			events, err := e.Store.ListAudit(context.Background(), store.AuditFilter{UserID: e.user.ID})
			require.NoError(t, err)
			assert.Contains(t, auditTypes(events), "factor.replay")
		})
	}
}

func atoi(s string) int {
	n := 0
	fmt.Sscanf(s, "%d", &n)
	return n
}

func auditTypes(events []store.AuditEvent) []string {
	var out []string
	for _, ev := range events {
		out = append(out, ev.Type)
	}
	return out
}

// TestR05_EnrolFromAccountPage: QR, text secret and otpauth URI, on only
// after a correct code (R05), then recovery codes (R07); the secret is
// encrypted at rest and never served on a GET.
func TestR05_EnrolFromAccountPage(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			b := providertest.NewBrowser(t)
			// Not signed in: the account page starts a sign-in that returns to it.
			p, _ := b.Follow(b.Get(e.URL+"/account/security"), "")
			require.Contains(t, p.Request.URL.Path, "/login")
			form := p.Hidden()
			form.Set("email", "ada@example.com")
			form.Set("password", password)
			p, _ = b.Follow(b.Post(e.URL+"/login", form), "")
			require.Contains(t, p.Request.URL.Path, "/account/security", p.Body)
			assert.Contains(t, p.Body, "Two-step verification: off")
			csrf := accountCSRF(t, p)

			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-totp"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, `src="data:image/png;base64,`)
			secret := regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(p.Body)
			require.Len(t, secret, 2, "the secret as text")
			assert.Contains(t, p.Body, "otpauth://totp/")
			assert.NotContains(t, b.Get(e.URL+"/account/security").Body, secret[1], "GET never shows the secret")

			// At rest the secret is sealed.
			factors, err := e.Store.ListFactors(context.Background(), e.user.ID)
			require.NoError(t, err)
			require.Len(t, factors, 1)
			assert.False(t, factors[0].Confirmed, "not on before a code")
			assert.NotContains(t, string(factors[0].SecretEnc), secret[1])

			// A wrong code: still off.
			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-totp"}, "code": {"000000"}})
			assert.Equal(t, http.StatusUnauthorized, p.StatusCode)
			n, _ := e.Store.CountRecoveryCodes(context.Background(), e.user.ID)
			assert.Zero(t, n)

			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-totp"}, "code": {e.code(t, secret[1])}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			codes := regexp.MustCompile(`<li><code>([0-9a-z-]{29})</code></li>`).FindAllStringSubmatch(p.Body, -1)
			assert.Len(t, codes, 15, "recovery codes after the first method")
			assert.Contains(t, p.Body, `download="twofold-recovery-codes.txt"`)
			assert.Contains(t, p.Body, "I have saved these codes")
			p, _ = b.Follow(b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"saved-codes"}}), "")
			assert.Contains(t, p.Body, "Two-step verification: on")
			assert.Contains(t, p.Body, "Recovery codes left: <strong>15</strong>")

			// The next sign-in asks for the code.
			authURL, _ := e.authURL(oauth2.SetAuthURLParam("prompt", "login"))
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			assert.True(t, isSecondFactor(page))
		})
	}
}

var accountCSRFRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func accountCSRF(t *testing.T, p providertest.Page) string {
	m := accountCSRFRe.FindStringSubmatch(p.Body)
	require.Len(t, m, 2, p.Body)
	return m[1]
}

// TestR07_RecoveryCodesSingleUse: a code works once; 50 concurrent uses
// of one code let exactly one sign-in through; a new set voids the old.
func TestR07_RecoveryCodesSingleUse(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			e.addTOTP(t, e.user.ID)
			codes := e.addCodes(t, e.user.ID)

			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			b.Finish(e.submitCode(b, page, "recovery", strings.ToUpper(codes[0])), redirectURI)

			b2 := providertest.NewBrowser(t)
			page = e.toSecondStep(t, b2, authURL, "ada@example.com")
			assert.Equal(t, http.StatusUnauthorized, e.submitCode(b2, page, "recovery", codes[0]).StatusCode, "used once only")

			// 50 sign-ins race one code.
			got := e.race(t, 50, []string{e.URL}, "recovery", func(int) string { return codes[1] })
			assert.Equal(t, 1, got[http.StatusSeeOther], "exactly one of 50 concurrent uses succeeds: %v", got)
			left, _ := e.Store.CountRecoveryCodes(context.Background(), e.user.ID)
			assert.Equal(t, 13, left)
		})
	}
}

// TestR11_R12_OrderAndTryAnotherWay: password first, then the second
// factor; the authenticator app is offered before recovery codes, which
// "try another way" lists.
func TestR11_R12_OrderAndTryAnotherWay(t *testing.T) {
	e := newMFAEnv(t, "sqlite")
	e.addTOTP(t, e.user.ID)
	e.addCodes(t, e.user.ID)
	b := providertest.NewBrowser(t)
	first, _ := b.Follow(b.Get(e.rp.conf.AuthCodeURL("st-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), redirectURI)
	assert.Contains(t, first.Body, `name="password"`, "R11: email and password first")
	assert.NotContains(t, first.Body, `name="code"`)
	authURL, _ := e.authURL()
	page := e.toSecondStep(t, b, authURL, "ada@example.com")
	assert.Contains(t, page.Body, "authenticator app", "R12: the app is offered first (no security key yet)")
	assert.Equal(t, "totp", page.Hidden().Get("method"))
	assert.Contains(t, page.Body, "Try another way")
	assert.Contains(t, page.Body, "A recovery code")
	other := b.Get(e.URL + "/login/2fa?flow=" + page.Hidden().Get("flow") + "&method=recovery")
	assert.Equal(t, "recovery", other.Hidden().Get("method"))
	assert.Contains(t, other.Body, "Authenticator app", "and back again")
}

// signInAccount signs b in and returns the account page.
func (e *mfaEnv) signInAccount(t *testing.T, b *providertest.Browser, secret string) providertest.Page {
	t.Helper()
	p, _ := b.Follow(b.Get(e.URL+"/account/security"), "")
	if strings.Contains(p.Request.URL.Path, "/account/security") {
		return p
	}
	form := p.Hidden()
	form.Set("email", "ada@example.com")
	form.Set("password", password)
	p, _ = b.Follow(b.Post(e.URL+"/login", form), "")
	if isSecondFactor(p) {
		p, _ = b.Follow(e.submitCode(b, p, "totp", e.code(t, secret)), "")
	}
	require.Contains(t, p.Request.URL.Path, "/account/security", p.Body)
	return p
}

// TestR13_RecoveryCodeThenRemoveLostMethod.
func TestR13_RecoveryCodeThenRemoveLostMethod(t *testing.T) {
	e := newMFAEnv(t, "sqlite")
	e.addTOTP(t, e.user.ID)
	codes := e.addCodes(t, e.user.ID)
	b := providertest.NewBrowser(t)
	p, _ := b.Follow(b.Get(e.URL+"/account/security"), "")
	form := p.Hidden()
	form.Set("email", "ada@example.com")
	form.Set("password", password)
	p, _ = b.Follow(b.Post(e.URL+"/login", form), "")
	p, _ = b.Follow(e.submitCode(b, p, "recovery", codes[5]), "")
	require.Contains(t, p.Request.URL.Path, "/account/security")
	factors, _ := e.Store.ListFactors(context.Background(), e.user.ID)
	require.Len(t, factors, 1)
	res := b.Post(e.URL+"/account/security", url.Values{"csrf": {accountCSRF(t, p)}, "action": {"remove-factor"}, "factor": {factors[0].ID}})
	assert.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
	factors, _ = e.Store.ListFactors(context.Background(), e.user.ID)
	assert.Empty(t, factors, "the lost phone is removed")
	events, _ := e.Store.ListAudit(context.Background(), store.AuditFilter{UserID: e.user.ID})
	assert.Subset(t, auditTypes(events), []string{"recovery_code.used", "factor.removed", "login.success"})
}

// TestR14_R18_OptionalUnlessRequired: 2FA is optional by default and can
// be removed; when required it cannot be turned off; changes need a
// recent sign-in.
func TestR14_R18_OptionalUnlessRequired(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newMFAEnv(t, dialect)
			_, idt, _ := e.rp.login(t, providertest.NewBrowser(t), "ada@example.com")
			assert.Equal(t, []string{"pwd"}, claimsOf(t, idt).Amr, "R14: optional by default")

			secret := e.addTOTP(t, e.user.ID)
			e.addCodes(t, e.user.ID)
			require.NoError(t, e.Store.SetUserMFARequired(ctx, e.user.ID, true, time.Now()))
			b := providertest.NewBrowser(t)
			p := e.signInAccount(t, b, secret)
			csrf := accountCSRF(t, p)
			assert.NotContains(t, p.Body, "Turn off two-step verification", "no off switch when required")
			factors, _ := e.Store.ListFactors(ctx, e.user.ID)
			for _, action := range []url.Values{
				{"action": {"disable"}},
				{"action": {"remove-factor"}, "factor": {factors[0].ID}},
			} {
				action.Set("csrf", csrf)
				res := b.Post(e.URL+"/account/security", action)
				assert.Equal(t, http.StatusForbidden, res.StatusCode, action.Get("action"))
				assert.Contains(t, res.Body, "Your administrator requires two-step verification")
			}
			left, _ := e.Store.ListFactors(ctx, e.user.ID)
			assert.Len(t, left, 1, "nothing removed")

			// Not required any more: allowed, but only with a recent sign-in.
			require.NoError(t, e.Store.SetUserMFARequired(ctx, e.user.ID, false, time.Now()))
			e.clock.Advance(provider.RecentAuth + time.Minute)
			res := b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"disable"}})
			assert.Contains(t, res.Body, "sign in again before changing")
			left, _ = e.Store.ListFactors(ctx, e.user.ID)
			assert.Len(t, left, 1, "a stale session changes nothing")
			res = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"regenerate-codes"}})
			assert.Contains(t, res.Body, "sign in again before changing", "new codes need a recent sign-in too")

			// Re-authenticate (password and code), then turn 2FA off.
			re := b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"reauth"}})
			p, _ = b.Follow(re, "")
			require.Contains(t, p.Request.URL.Path, "/login")
			assert.Contains(t, p.Body, `value="ada@example.com"`)
			form := p.Hidden()
			form.Set("email", "ada@example.com")
			form.Set("password", password)
			p, _ = b.Follow(b.Post(e.URL+"/login", form), "")
			p, _ = b.Follow(e.submitCode(b, p, "totp", e.code(t, secret)), "")
			require.Contains(t, p.Request.URL.Path, "/account/security")
			res = b.Post(e.URL+"/account/security", url.Values{"csrf": {accountCSRF(t, p)}, "action": {"disable"}})
			assert.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
			left, _ = e.Store.ListFactors(ctx, e.user.ID)
			assert.Empty(t, left)
			n, _ := e.Store.CountRecoveryCodes(ctx, e.user.ID)
			assert.Zero(t, n)
		})
	}
}

// TestR22_EnrolmentDuringLogin: 2FA required and no method: the sign-in
// shows the setup and continues after it.
func TestR22_EnrolmentDuringLogin(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newMFAEnv(t, dialect)
			require.NoError(t, e.Store.SetUserMFARequired(ctx, e.user.ID, true, time.Now()))
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol")
			assert.NotContains(t, page.Body, "otpauth://", "the GET shows no secret")
			assert.Zero(t, sessionCount(t, e, b))

			start := page.Hidden()
			start.Set("action", "start-totp")
			p := b.Post(e.URL+"/login/enrol", start)
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			secret := regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(p.Body)
			require.Len(t, secret, 2)
			assert.Contains(t, p.Body, `src="data:image/png;base64,`)

			confirm := p.Hidden()
			confirm.Set("code", e.code(t, secret[1]))
			p = b.Post(e.URL+"/login/enrol", confirm)
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, "I have saved these codes")
			firstSet := regexp.MustCompile(`<li><code>([0-9a-z-]{29})</code></li>`).FindAllStringSubmatch(p.Body, -1)
			require.Len(t, firstSet, 15)
			assert.Zero(t, sessionCount(t, e, b), "no session until the codes are confirmed")

			// Continuing without the confirmation shows a new set; the first
			// set no longer works.
			noTick := p.Hidden()
			p = b.Post(e.URL+"/login/recovery-codes", noTick)
			assert.Contains(t, p.Body, "These are new codes")
			h := mfa.NewRecoveryHasher(e.Key)
			hash, _ := h.Hash(firstSet[0][1])
			_, err := e.Store.UseRecoveryCode(ctx, e.user.ID, hash, time.Now())
			assert.Error(t, err, "the first set is void")

			tick := p.Hidden()
			tick.Set("saved", "yes")
			// A factor set up after the password alone proves nothing yet
			// (security.md §3.3): the new app's next code is asked for.
			next, done := b.Follow(b.Post(e.URL+"/login/recovery-codes", tick), redirectURI)
			require.Empty(t, done, "no code before the new factor is presented")
			require.True(t, isSecondFactor(next))
			assert.Zero(t, sessionCount(t, e, b))
			cb := b.Finish(e.submitCode(b, next, "totp", e.code(t, secret[1])), redirectURI)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"pwd", "otp", "mfa"}, c.Amr)
			assert.Equal(t, provider.ACRMFA, c.Acr)

			// Another required user cancels: the client is told honestly.
			e.User(t, "cy@example.com", password, store.PopulationAgent)
			cy, _ := e.Store.GetUserByEmail(ctx, store.PopulationAgent, "cy@example.com")
			require.NoError(t, e.Store.SetUserMFARequired(ctx, cy.ID, true, time.Now()))
			b2 := providertest.NewBrowser(t)
			page = e.toSecondStep(t, b2, authURL, "cy@example.com")
			cancel := page.Hidden()
			cancel.Set("action", "cancel")
			res := b2.Post(e.URL+"/login/enrol", cancel)
			q := mustQuery(t, res.Location())
			assert.Equal(t, "unmet_authentication_requirements", q.Get("error"))
			assert.Equal(t, "st-mfa-1234", q.Get("state"))
			assert.Empty(t, q.Get("code"))
		})
	}
}

// TestR23_StepUp: a client that asks for MFA gets it. Inside a password
// session the user is asked for the second factor only, and the new
// tokens say so.
func TestR23_StepUp(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			b := providertest.NewBrowser(t)
			_, idt, _ := e.rp.login(t, b, "ada@example.com") // password only: no factor yet
			first := claimsOf(t, idt)
			require.Equal(t, []string{"pwd"}, first.Amr)
			secret := e.addTOTP(t, e.user.ID) // enrolled later, e.g. on the account page

			// prompt=none cannot step up.
			p := b.Get(e.rp.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"),
				oauth2.SetAuthURLParam("acr_values", provider.ACRMFA), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			assert.Equal(t, "interaction_required", mustQuery(t, p.Location()).Get("error"))

			// acr_values asking for MFA: straight to the second factor.
			e.clock.Advance(time.Minute)
			authURL, verifier := e.authURL(oauth2.SetAuthURLParam("acr_values", provider.ACRMFA))
			page, done := b.Follow(b.Get(authURL), redirectURI)
			require.Empty(t, done)
			require.True(t, isSecondFactor(page), "no password asked")
			cb := b.Finish(e.submitCode(b, page, "totp", e.code(t, secret)), redirectURI)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, provider.ACRMFA, c.Acr)
			assert.Equal(t, []string{"pwd", "otp", "mfa"}, c.Amr)
			assert.Equal(t, first.Sub, c.Sub)
			assert.Greater(t, c.AuthTime, first.AuthTime)

			// An essential acr claim, and a client registered as requiring
			// MFA, both get it; the session now satisfies them silently.
			authURL, verifier = e.authURL(oauth2.SetAuthURLParam("claims", `{"id_token":{"acr":{"essential":true,"values":["`+provider.ACRMFA+`"]}}}`),
				oauth2.SetAuthURLParam("prompt", "none"))
			c = e.tokensFrom(t, b.Get(authURL).Location(), verifier)
			assert.Equal(t, provider.ACRMFA, c.Acr)
			strict := newRP(t, e.Env, clients.Spec{FirstParty: true, RequireMFA: true})
			_, sidt, _ := strict.login(t, b, "ada@example.com")
			assert.Equal(t, provider.ACRMFA, claimsOf(t, sidt).Acr)

			// An essential acr the session cannot meet is refused, not
			// silently downgraded.
			authURL, _ = e.authURL(oauth2.SetAuthURLParam("claims", `{"id_token":{"acr":{"essential":true,"values":["`+provider.ACRPhishingResistant+`"]}}}`),
				oauth2.SetAuthURLParam("prompt", "none"))
			assert.Equal(t, "unmet_authentication_requirements", mustQuery(t, b.Get(authURL).Location()).Get("error"))

			// A password-only user and a client requiring MFA: enrolment,
			// or unmet_authentication_requirements when refused.
			e.User(t, "bo@example.com", password, store.PopulationAgent)
			b2 := providertest.NewBrowser(t)
			v2 := oauth2.GenerateVerifier()
			page = e.toSecondStep(t, b2, strict.conf.AuthCodeURL("st-strict-12", oauth2.S256ChallengeOption(v2)), "bo@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol")
			cancel := page.Hidden()
			cancel.Set("action", "cancel")
			q := mustQuery(t, b2.Post(e.URL+"/login/enrol", cancel).Location())
			assert.Equal(t, "unmet_authentication_requirements", q.Get("error"))
		})
	}
}

// TestR25_Throttling: wrong second-factor codes end the sign-in after
// FlowFactorLimit; across sign-ins the account locks after
// AccountFactorLimit until AccountFactorLock has passed; passwords lock
// after PasswordLimit for PasswordLock.
func TestR25_Throttling(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			secret := e.addTOTP(t, e.user.ID)
			authURL, verifier := e.authURL()

			b := providertest.NewBrowser(t)
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			for i := range provider.FlowFactorLimit {
				assert.Equal(t, http.StatusUnauthorized, e.submitCode(b, page, "totp", "000000").StatusCode, "try %d", i+1)
			}
			res := e.submitCode(b, page, "totp", e.code(t, secret))
			assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the flow ends, even with the right code")
			assert.Contains(t, res.Body, "enter your password again")

			// Five more wrong codes in a second sign-in reach the account limit.
			b2 := providertest.NewBrowser(t)
			page = e.toSecondStep(t, b2, authURL, "ada@example.com")
			for range provider.AccountFactorLimit - provider.FlowFactorLimit {
				e.submitCode(b2, page, "totp", "000000")
			}
			b3 := providertest.NewBrowser(t)
			page = e.toSecondStep(t, b3, authURL, "ada@example.com")
			res = e.submitCode(b3, page, "totp", e.code(t, secret))
			assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
			assert.Contains(t, res.Body, "Try again after")

			// After the documented wait the right code works again.
			e.clock.Advance(provider.AccountFactorLock)
			b4 := providertest.NewBrowser(t)
			page = e.toSecondStep(t, b4, authURL, "ada@example.com")
			e.tokensFrom(t, b4.Finish(e.submitCode(b4, page, "totp", e.code(t, secret)), redirectURI), verifier)

			// Passwords: PasswordLimit failures lock the account key, the
			// right password included, unknown emails alike.
			for _, email := range []string{"ada@example.com", "nobody@example.com"} {
				var last providertest.Page
				for range provider.PasswordLimit + 1 {
					bb := providertest.NewBrowser(t)
					p, _ := bb.Follow(bb.Get(authURL), redirectURI)
					form := p.Hidden()
					form.Set("email", email)
					form.Set("password", "not the password")
					last = bb.Post(e.URL+"/login", form)
				}
				assert.Equal(t, http.StatusTooManyRequests, last.StatusCode, email)
				assert.Contains(t, last.Body, "Too many failed sign-ins")
			}
			bb := providertest.NewBrowser(t)
			p, _ := bb.Follow(bb.Get(authURL), redirectURI)
			form := p.Hidden()
			form.Set("email", "ada@example.com")
			form.Set("password", password)
			assert.Equal(t, http.StatusTooManyRequests, bb.Post(e.URL+"/login", form).StatusCode, "locked even for the right password")
			e.clock.Advance(provider.PasswordLock)
			bb = providertest.NewBrowser(t)
			p, _ = bb.Follow(bb.Get(authURL), redirectURI)
			form = p.Hidden()
			form.Set("email", "ada@example.com")
			form.Set("password", password)
			open := bb.Post(e.URL+"/login", form)
			assert.Equal(t, http.StatusOK, open.StatusCode, "open again after the wait")
			assert.True(t, isSecondFactor(open), "open again after the wait")

			events, _ := e.Store.ListAudit(context.Background(), store.AuditFilter{})
			assert.Contains(t, auditTypes(events), "factor.throttled")
			assert.Contains(t, auditTypes(events), "login.throttled")
			for _, ev := range events {
				if ev.Type == "factor.failure" {
					assert.Equal(t, "127.0.0.1", ev.IP)
					assert.NotEmpty(t, ev.UserAgent)
					assert.Equal(t, e.rp.conf.ClientID, ev.ClientID)
					break
				}
			}
		})
	}
}

// TestTOTPReplayAcrossReplicas: one TOTP code sent by 30 concurrent
// sign-ins spread over two replicas lets exactly one through.
func TestTOTPReplayAcrossReplicas(t *testing.T) {
	c := &clock{off: -3 * time.Hour}
	a := providertest.Start(t, "postgres", providertest.Options{Now: c.Now})
	bEnv := providertest.Start(t, "postgres", providertest.Options{DatabaseURL: a.DBURL, Key: a.Key, Issuer: a.URL, Now: c.Now})
	e := &mfaEnv{Env: a, clock: c, user: a.User(t, "ada@example.com", password, store.PopulationAgent)}
	e.rp = newRP(t, a, clients.Spec{FirstParty: true})
	secret := e.addTOTP(t, e.user.ID)
	code, err := mfa.TOTPCode(secret, c.Now())
	require.NoError(t, err)
	// The flow cookie is for 127.0.0.1, so replica B gets it too.
	got := e.race(t, 30, []string{a.ServerURL(), bEnv.ServerURL()}, "totp", func(int) string { return code })
	assert.Equal(t, 1, got[http.StatusSeeOther], "a TOTP code is accepted once across replicas: %v", got)
}

// TestTOTPClockSkewAcrossReplicas (security.md §3.11): replica B's clock
// runs 45 s ahead of A's. Each still accepts a code of its own step ±1
// and no other, and the step one replica accepted is spent on the other:
// neither it nor an older step works again.
func TestTOTPClockSkewAcrossReplicas(t *testing.T) {
	c := &clock{off: -3 * time.Hour}
	ahead := func() time.Time { return c.Now().Add(45 * time.Second) }
	a := providertest.Start(t, "postgres", providertest.Options{Now: c.Now})
	bEnv := providertest.Start(t, "postgres", providertest.Options{DatabaseURL: a.DBURL, Key: a.Key, Issuer: a.URL, Now: ahead})
	e := &mfaEnv{Env: a, clock: c, user: a.User(t, "ada@example.com", password, store.PopulationAgent)}
	e.rp = newRP(t, a, clients.Spec{FirstParty: true})
	secret := e.addTOTP(t, e.user.ID)
	authURL, _ := e.authURL()
	codeAt := func(at time.Time) string {
		code, err := mfa.TOTPCode(secret, at)
		require.NoError(t, err)
		return code
	}
	// submit signs in afresh and posts code to the second step of base.
	submit := func(base, code string) int {
		t.Helper()
		b := providertest.NewBrowser(t)
		page := e.toSecondStep(t, b, authURL, "ada@example.com")
		form := page.Hidden()
		form.Set("method", "totp")
		form.Set("code", code)
		return b.Post(base+"/login/2fa", form).StatusCode
	}
	// Start a second into a step, so that no step ends during the test:
	// A is then at step s and B at s+1, 16 s into it.
	t0 := c.Now()
	c.Advance(30*time.Second - t0.Sub(t0.Truncate(30*time.Second)) + time.Second)
	now := c.Now()
	require.Equal(t, http.StatusSeeOther, submit(a.ServerURL(), codeAt(now)), "A accepts its own step")
	assert.Equal(t, http.StatusUnauthorized, submit(bEnv.ServerURL(), codeAt(now)), "the step A accepted is spent on B")
	assert.Equal(t, http.StatusUnauthorized, submit(bEnv.ServerURL(), codeAt(ahead().Add(60*time.Second))), "B takes no step past its own +1")
	next := codeAt(now.Add(30 * time.Second))
	require.Equal(t, http.StatusSeeOther, submit(bEnv.ServerURL(), next), "B accepts A's next step, its own")
	assert.Equal(t, http.StatusUnauthorized, submit(a.ServerURL(), next), "which is then spent on A")
	assert.Equal(t, http.StatusUnauthorized, submit(a.ServerURL(), codeAt(now.Add(-30*time.Second))), "and so is a step never used, within A's window but older")
	assert.Equal(t, http.StatusSeeOther, submit(bEnv.ServerURL(), codeAt(ahead().Add(30*time.Second))), "B accepts its own +1 step")
}

// TestR25_ParallelGuessesAreBounded: 30 wrong codes sent at once, one per
// sign-in, are not all evaluated: the account counter is reserved before
// the check, so at most AccountFactorLimit of them are (security.md §3.1
// item 7; Keycloak CVE-2024-4629).
func TestR25_ParallelGuessesAreBounded(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			e.addTOTP(t, e.user.ID)
			const n = 30
			got := e.race(t, n, []string{e.URL}, "totp", func(i int) string { return fmt.Sprintf("%06d", i) })
			events, err := e.Store.ListAudit(context.Background(), store.AuditFilter{UserID: e.user.ID, Limit: 1000})
			require.NoError(t, err)
			evaluated := 0
			for _, ev := range events {
				if ev.Type == "factor.failure" || ev.Type == "factor.success" {
					evaluated++
				}
			}
			assert.LessOrEqual(t, evaluated, provider.AccountFactorLimit, "no more codes checked than the limit")
			assert.GreaterOrEqual(t, got[http.StatusTooManyRequests], n-provider.AccountFactorLimit)
		})
	}
}

// TestR23_StepUpWithoutFactorAsksPassword: a session cookie alone cannot
// enrol a factor: when step-up finds no factor, the password comes first.
func TestR23_StepUpWithoutFactorAsksPassword(t *testing.T) {
	e := newMFAEnv(t, "sqlite")
	b := providertest.NewBrowser(t)
	e.rp.login(t, b, "ada@example.com") // a password session, no factor
	authURL, _ := e.authURL(oauth2.SetAuthURLParam("acr_values", provider.ACRMFA))
	p, done := b.Follow(b.Get(authURL), redirectURI)
	require.Empty(t, done)
	assert.Contains(t, p.Body, `name="password"`, "the password is asked again before enrolment")
	assert.Contains(t, p.Body, `value="ada@example.com"`)
	// Only that user may complete it.
	e.User(t, "bo@example.com", password, store.PopulationAgent)
	form := p.Hidden()
	form.Set("email", "bo@example.com")
	form.Set("password", password)
	assert.Equal(t, http.StatusUnauthorized, b.Post(e.URL+"/login", form).StatusCode)
	form.Set("email", "ada@example.com")
	next, _ := b.Follow(b.Post(e.URL+"/login", form), redirectURI)
	assert.Contains(t, next.Request.URL.Path, "/login/enrol")
}

// TestFactorChangesSignOutElsewhere: removing a factor ends the user's
// other sessions and revokes their refresh tokens; a disabled user's
// refresh token stops at once.
func TestFactorChangesSignOutElsewhere(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t, "sqlite")
	secret := e.addTOTP(t, e.user.ID)
	e.addTOTP(t, e.user.ID) // a second app, so one can be removed
	b := providertest.NewBrowser(t)
	authURL, verifier := e.authURL()
	page := e.toSecondStep(t, b, authURL, "ada@example.com")
	cb := b.Finish(e.submitCode(b, page, "totp", e.code(t, secret)), redirectURI)
	tok, err := e.rp.conf.Exchange(ctx, mustQuery(t, cb).Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)

	other := providertest.NewBrowser(t)
	account := e.signInAccount(t, other, secret)
	factors, _ := e.confirmed(t)
	res := other.Post(e.URL+"/account/security", url.Values{"csrf": {accountCSRF(t, account)}, "action": {"remove-factor"}, "factor": {factors[1].ID}})
	require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)

	_, err = e.rp.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	requireOAuthError(t, err, "invalid_grant")
	p := b.Get(e.rp.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	assert.Equal(t, "login_required", mustQuery(t, p.Location()).Get("error"), "the other browser is signed out")
	assert.Contains(t, other.Get(e.URL+"/account/security").Body, "Account security", "this browser stays signed in")

	// A disabled user's refresh token stops at once.
	authURL, verifier = e.authURL(oauth2.SetAuthURLParam("prompt", "login"))
	page = e.toSecondStep(t, b, authURL, "ada@example.com")
	cb = b.Finish(e.submitCode(b, page, "totp", e.code(t, secret)), redirectURI)
	tok, err = e.rp.conf.Exchange(ctx, mustQuery(t, cb).Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	require.NoError(t, e.Store.SetUserDisabled(ctx, e.user.ID, true, time.Now()))
	_, err = e.rp.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	requireOAuthError(t, err, "invalid_grant")
}

func (e *mfaEnv) confirmed(t *testing.T) ([]store.Factor, error) {
	return e.Store.ListFactors(context.Background(), e.user.ID)
}

// TestR25_EnrolmentThrottling: wrong codes while confirming a new app
// during sign-in count in the flow like the second step's; starting the
// setup again does not.
func TestR25_EnrolmentThrottling(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			require.NoError(t, e.Store.SetUserMFARequired(context.Background(), e.user.ID, true, time.Now()))
			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol")
			var p providertest.Page
			for range provider.FlowFactorLimit + 2 {
				start := page.Hidden()
				start.Set("action", "start-totp")
				p = b.Post(e.URL+"/login/enrol", start)
				require.Equal(t, http.StatusOK, p.StatusCode, "starting again is not an attempt")
			}
			secret := regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(p.Body)
			require.Len(t, secret, 2)
			for i := range provider.FlowFactorLimit {
				wrong := p.Hidden()
				wrong.Set("code", "000000")
				res := b.Post(e.URL+"/login/enrol", wrong)
				require.NotEqual(t, http.StatusTooManyRequests, res.StatusCode, "try %d", i+1)
				assert.NotContains(t, res.Body, "I have saved these codes")
			}
			right := p.Hidden()
			right.Set("code", e.code(t, secret[1]))
			res := b.Post(e.URL+"/login/enrol", right)
			assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the flow ends, even with the right code")
			assert.Contains(t, res.Body, "enter your password again")
			factors, err := e.Store.ListFactors(context.Background(), e.user.ID)
			require.NoError(t, err)
			assert.False(t, slices.ContainsFunc(factors, func(f store.Factor) bool { return f.Confirmed }), "nothing was enrolled")

			// The tries spent on the setup are not taken from the next
			// step: a setup confirmed at the last try still leaves the
			// new factor's step all of its own.
			b2 := providertest.NewBrowser(t)
			page = e.toSecondStep(t, b2, authURL, "ada@example.com")
			start := page.Hidden()
			start.Set("action", "start-totp")
			p = b2.Post(e.URL+"/login/enrol", start)
			secret = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(p.Body)
			require.Len(t, secret, 2)
			for range provider.FlowFactorLimit - 1 {
				wrong := p.Hidden()
				wrong.Set("code", "000000")
				b2.Post(e.URL+"/login/enrol", wrong)
			}
			right = p.Hidden()
			right.Set("code", e.code(t, secret[1]))
			p = b2.Post(e.URL+"/login/enrol", right)
			require.Contains(t, p.Body, "I have saved these codes")
			tick := p.Hidden()
			tick.Set("saved", "yes")
			next, _ := b2.Follow(b2.Post(e.URL+"/login/recovery-codes", tick), redirectURI)
			require.True(t, isSecondFactor(next))
			for i := range provider.FlowFactorLimit - 1 {
				assert.Equal(t, http.StatusUnauthorized, e.submitCode(b2, next, "totp", "000000").StatusCode, "try %d", i+1)
			}
			e.clock.Advance(30 * time.Second) // the setup used this step's code
			res = e.submitCode(b2, next, "totp", e.code(t, secret[1]))
			assert.Equal(t, http.StatusSeeOther, res.StatusCode, "the fifth try of the new step is still allowed: %s", res.Body)
		})
	}
}

// TestR25_CapOnAccountPage: an account past the hard cap cannot confirm
// a new app from the account page either, and is told that only an admin
// unlocks it (no time is shown); the admin's unlock opens it.
func TestR25_CapOnAccountPage(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t, "sqlite")
	b := providertest.NewBrowser(t)
	p := e.signInAccount(t, b, "")
	csrf := accountCSRF(t, p)
	var key string
	for _, k := range provider.LockKeys(e.user) {
		if strings.HasPrefix(k, "mfa:") {
			key = k
		}
	}
	require.NotEmpty(t, key)
	for range provider.AccountFactorCap + 1 { // wrong codes elsewhere, across locks
		_, err := e.Store.Attempt(ctx, key, store.Limit{Max: 1 << 20, Lock: time.Minute, Cap: provider.AccountFactorCap}, time.Now())
		require.NoError(t, err)
	}

	p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-totp"}})
	secret := regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(p.Body)
	require.Len(t, secret, 2, p.Body)
	p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-totp"}, "code": {e.code(t, secret[1])}})
	assert.Equal(t, http.StatusTooManyRequests, p.StatusCode)
	assert.Contains(t, p.Body, "Ask your administrator to unlock it")
	assert.NotContains(t, p.Body, "Try again after")

	require.NoError(t, e.Store.ResetThrottle(ctx, provider.LockKeys(e.user)...)) // `twofold users unlock`
	p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-totp"}, "code": {e.code(t, secret[1])}})
	assert.Equal(t, http.StatusOK, p.StatusCode, p.Body)
}

// TestR25_HardCap: past AccountFactorCap wrong codes in a row, waiting
// no longer helps: only an admin's unlock (the throttle keys reset, as
// `twofold users unlock` does) opens the second factor again.
func TestR25_HardCap(t *testing.T) {
	e := newMFAEnv(t, "sqlite")
	secret := e.addTOTP(t, e.user.ID)
	authURL, verifier := e.authURL()
	wrong := 0
	for wrong < provider.AccountFactorCap {
		b := providertest.NewBrowser(t)
		page := e.toSecondStep(t, b, authURL, "ada@example.com")
		for range provider.FlowFactorLimit {
			res := e.submitCode(b, page, "totp", "000000")
			require.Equal(t, http.StatusUnauthorized, res.StatusCode, "failure %d", wrong+1)
			wrong++
		}
		if wrong%provider.AccountFactorLimit == 0 {
			// The next try meets the lock; wait it out.
			b := providertest.NewBrowser(t)
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			require.Equal(t, http.StatusTooManyRequests, e.submitCode(b, page, "totp", "000000").StatusCode)
			e.clock.Advance(provider.AccountFactorLock)
		}
	}
	b := providertest.NewBrowser(t)
	page := e.toSecondStep(t, b, authURL, "ada@example.com")
	res := e.submitCode(b, page, "totp", e.code(t, secret))
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.Contains(t, res.Body, "Ask your administrator to unlock it")

	for _, key := range provider.LockKeys(e.user) {
		require.NoError(t, e.Store.ResetThrottle(context.Background(), key))
	}
	b = providertest.NewBrowser(t)
	page = e.toSecondStep(t, b, authURL, "ada@example.com")
	e.tokensFrom(t, b.Finish(e.submitCode(b, page, "totp", e.code(t, secret)), redirectURI), verifier)
}

// browserFrom is a browser whose connections come from ip, a loopback
// address: a client address of its own to the provider.
func browserFrom(t *testing.T, ip net.IP) *providertest.Browser {
	b := providertest.NewBrowser(t)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	b.Transport = &http.Transport{DialContext: dialer.DialContext}
	return b
}

// TestR25_PasswordHardCap (security.md S1, §3.1.1): 100 wrong passwords
// in a row for one account, from 50 client addresses and across lock
// periods, lock password sign-in for its address until an admin unlocks
// it or the password is reset: the 101st attempt fails even with the
// right password, a day later too. The same holds for an address no
// account uses.
func TestR25_PasswordHardCap(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newMFAEnv(t, dialect)
			authURL, _ := e.authURL()
			try := func(i int, email, pw string) providertest.Page {
				b := browserFrom(t, net.IPv4(127, 0, 1, byte(10+i%50))) // 50 client addresses
				page, _ := b.Follow(b.Get(authURL), redirectURI)
				form := page.Hidden()
				form.Set("email", email)
				form.Set("password", pw)
				return b.Post(e.URL+"/login", form)
			}
			capOut := func(email string) {
				t.Helper()
				for wrong, i := 0, 0; wrong < provider.PasswordCap; i++ {
					switch res := try(i, email, fmt.Sprintf("wrong password %d", i)); res.StatusCode {
					case http.StatusUnauthorized:
						wrong++
					case http.StatusTooManyRequests:
						require.Contains(t, res.Body, "Try again after", "locked, not capped, after %d", wrong)
						e.clock.Advance(provider.PasswordLock) // wait the lock out
					default:
						t.Fatalf("wrong password %d: %d %s", wrong, res.StatusCode, res.Body)
					}
				}
			}
			capOut("ada@example.com")
			res := try(0, "ada@example.com", password)
			assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the 101st attempt, with the right password")
			assert.Contains(t, res.Body, "signing in with a password is locked for this address")
			e.clock.Advance(24 * time.Hour)
			assert.Equal(t, http.StatusTooManyRequests, try(1, "ada@example.com", password).StatusCode, "a day later")

			// An address no account uses gets the same answer.
			capOut("nobody@example.com")
			unknown := try(2, "nobody@example.com", password)
			assert.Equal(t, http.StatusTooManyRequests, unknown.StatusCode)
			assert.Contains(t, unknown.Body, "signing in with a password is locked for this address")

			// An admin's unlock opens it again.
			require.NoError(t, e.Store.ResetThrottle(ctx, provider.LockKeys(e.user)...))
			assert.Equal(t, http.StatusSeeOther, try(3, "ada@example.com", password).StatusCode, "unlocked")

			// So does a new password (a reset by email code or by an admin).
			capOut("ada@example.com")
			require.Equal(t, http.StatusTooManyRequests, try(4, "ada@example.com", password).StatusCode)
			hash, err := e.Accounts.Hasher.Hash("a brand new passphrase")
			require.NoError(t, err)
			require.NoError(t, e.Accounts.ReplacePassword(ctx, e.user, hash, false))
			assert.Equal(t, http.StatusSeeOther, try(5, "ada@example.com", "a brand new passphrase").StatusCode, "reset")
		})
	}
}

// TestR25_PerAddress: wrong passwords sprayed over many accounts from one
// client address are throttled as a whole; successes do not count.
func TestR25_PerAddress(t *testing.T) {
	e := newMFAEnv(t, "sqlite")
	authURL, _ := e.authURL()
	b := providertest.NewBrowser(t)
	page, _ := b.Follow(b.Get(authURL), redirectURI)
	form := page.Hidden()
	form.Set("password", "not the password")
	for i := range provider.AddressLimit {
		form.Set("email", fmt.Sprintf("user%d@example.com", i)) // a new account each time
		res := b.Post(e.URL+"/login", form)
		require.Equal(t, http.StatusUnauthorized, res.StatusCode, "try %d", i+1)
	}
	form.Set("email", "ada@example.com")
	form.Set("password", password)
	res := b.Post(e.URL+"/login", form)
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the address is locked, for every account")
	e.clock.Advance(provider.AddressLock)
	b = providertest.NewBrowser(t)
	page, _ = b.Follow(b.Get(authURL), redirectURI)
	form = page.Hidden()
	form.Set("email", "ada@example.com")
	form.Set("password", password)
	assert.Equal(t, http.StatusSeeOther, b.Post(e.URL+"/login", form).StatusCode, "open again after the lock")
}

// TestR25_PerAddressBehindProxy: behind a trusted reverse proxy (a real
// httputil.ReverseProxy that appends to X-Forwarded-For, as nginx's
// $proxy_add_x_forwarded_for does) the address limit counts each
// client's own address, not the proxy's; what a client writes into the
// header itself changes nothing, through the proxy or around it. The
// audit log records the client's address too. Each client connects from
// an address of its own on loopback (127.0.0.7, 127.0.0.8).
func TestR25_PerAddressBehindProxy(t *testing.T) {
	e := newMFAEnvWith(t, "sqlite", func(c *provider.Config) {
		c.TrustedProxies = []net.IPNet{{IP: net.IPv4(127, 0, 0, 1).To4(), Mask: net.CIDRMask(32, 32)}}
	})
	target, err := url.Parse(e.URL)
	require.NoError(t, err)
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Header["X-Forwarded-For"] = r.In.Header["X-Forwarded-For"]
		r.SetXForwarded() // appends the client's address
	}})
	t.Cleanup(proxy.Close)

	from := func(ip string) *providertest.Browser { return browserFrom(t, net.ParseIP(ip)) }
	start := func(b *providertest.Browser) url.Values {
		authURL, _ := e.authURL()
		page, _ := b.Follow(b.Get(authURL), redirectURI)
		return page.Hidden()
	}
	post := func(b *providertest.Browser, base string, form url.Values, forged string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if forged != "" {
			req.Header.Set("X-Forwarded-For", forged)
		}
		res, err := b.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}

	// Client A sprays wrong passwords through the proxy.
	a := from("127.0.0.7")
	form := start(a)
	form.Set("password", "not the password")
	for i := range provider.AddressLimit {
		form.Set("email", fmt.Sprintf("user%d@example.com", i))
		require.Equal(t, http.StatusUnauthorized, post(a, proxy.URL, form, ""), "try %d", i+1)
	}
	form.Set("email", "ada@example.com")
	form.Set("password", password)
	assert.Equal(t, http.StatusTooManyRequests, post(a, proxy.URL, form, ""), "A's address is locked")
	assert.Equal(t, http.StatusTooManyRequests, post(a, proxy.URL, form, "198.51.100.23"),
		"an address A prepends itself is not A's address")
	assert.Equal(t, http.StatusTooManyRequests, post(a, e.URL, form, "127.0.0.8"),
		"around the proxy, A's header is not trusted at all")

	// Client B, through the same proxy, is not locked out.
	b := from("127.0.0.8")
	form = start(b)
	form.Set("email", "ada@example.com")
	form.Set("password", password)
	assert.Equal(t, http.StatusSeeOther, post(b, proxy.URL, form, ""), "B has an address of its own")

	events, err := e.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 2 * provider.AddressLimit})
	require.NoError(t, err)
	byIP := map[string]int{}
	for _, ev := range events {
		byIP[ev.IP]++
	}
	assert.GreaterOrEqual(t, byIP["127.0.0.7"], provider.AddressLimit, "A's failures carry A's address: %v", byIP)
	assert.Positive(t, byIP["127.0.0.8"], "B's sign-in carries B's address: %v", byIP)
	assert.Zero(t, byIP["127.0.0.1"], "no event carries the proxy's address: %v", byIP)
	assert.Zero(t, byIP["198.51.100.23"], "no event carries a forged address: %v", byIP)
}

// TestSessionIdleTimeout: an SSO session unused for SessionIdle ends;
// used within it, it lives on (up to its absolute lifetime).
func TestSessionIdleTimeout(t *testing.T) {
	e := newMFAEnv(t, "sqlite")
	b := providertest.NewBrowser(t)
	e.rp.login(t, b, "ada@example.com")
	silent := func() string {
		p := b.Get(e.rp.conf.AuthCodeURL("st-12345678", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		q := mustQuery(t, p.Location())
		if q.Get("code") != "" {
			return "code"
		}
		return q.Get("error")
	}
	for range 3 {
		e.clock.Advance(20 * time.Minute) // used every 20 minutes: stays
		assert.Equal(t, "code", silent())
	}
	e.clock.Advance(31 * time.Minute)
	assert.Equal(t, "login_required", silent(), "idle for more than 30 minutes: signed out")
}

// TestR01_SecondStepCannotBeSkipped (security.md §3.3, ZITADEL
// CVE-2025-64103): the second step's form is refused, with no code and
// no session, for a flow still before the password, for a flow past its
// lifespan, for a flow already finished, and for a method that is not
// the user's or no method at all.
func TestR01_SecondStepCannotBeSkipped(t *testing.T) {
	e := newMFAEnv(t, "sqlite")
	secret := e.addTOTP(t, e.user.ID)
	refused := func(t *testing.T, b *providertest.Browser, res providertest.Page, status int, what string) {
		t.Helper()
		assert.Equal(t, status, res.StatusCode, "%s: %s", what, res.Body)
		assert.NotContains(t, res.Header.Get("Location"), "code=", what)
		assert.Zero(t, sessionCount(t, e, b), "%s: no session", what)
	}

	// Before the password: the login page's form cannot post a code.
	b := providertest.NewBrowser(t)
	authURL, _ := e.authURL()
	login, _ := b.Follow(b.Get(authURL), redirectURI)
	form := login.Hidden()
	form.Set("method", "totp")
	form.Set("code", e.code(t, secret))
	refused(t, b, b.Post(e.URL+"/login/2fa", form), http.StatusForbidden, "before the password")

	// Methods that are not the user's, or none.
	b = providertest.NewBrowser(t)
	page := e.toSecondStep(t, b, authURL, e.user.Email)
	for _, method := range []string{"bogus", "TOTP", "webauthn", "email", "sms"} {
		refused(t, b, e.submitCode(b, page, method, e.code(t, secret)), http.StatusUnauthorized, "method "+method)
	}

	// Past the flow's lifespan (15 minutes), even with the right code.
	b = providertest.NewBrowser(t)
	page = e.toSecondStep(t, b, authURL, e.user.Email)
	e.clock.Advance(16 * time.Minute)
	refused(t, b, e.submitCode(b, page, "totp", e.code(t, secret)), http.StatusBadRequest, "an expired flow")

	// Finished: the same form once more gives nothing more.
	b = providertest.NewBrowser(t)
	page = e.toSecondStep(t, b, authURL, e.user.Email)
	res := e.submitCode(b, page, "totp", e.code(t, secret))
	require.Contains(t, res.Location(), "code=", res.Body)
	again := e.submitCode(b, page, "totp", e.code(t, secret))
	assert.Equal(t, http.StatusBadRequest, again.StatusCode, again.Body)
	assert.NotContains(t, again.Header.Get("Location"), "code=")
}
