package provider_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// newKeyEnv is an mfaEnv on http://localhost:PORT: WebAuthn needs a
// domain as its relying party id.
func newKeyEnv(t *testing.T, dialect string, cfg func(*provider.Config)) *mfaEnv {
	c := &clock{off: -3 * time.Hour}
	env := providertest.Start(t, dialect, providertest.Options{Now: c.Now, Localhost: true, Config: cfg})
	u := env.User(t, "ada@example.com", password, store.PopulationAgent)
	return &mfaEnv{Env: env, clock: c, rp: newRP(t, env, clients.Spec{FirstParty: true}), user: u}
}

func (e *mfaEnv) softKey(t *testing.T) *softKey {
	u, _ := url.Parse(e.URL)
	return newSoftKey(t, u.Scheme+"://"+u.Host, u.Hostname())
}

// registerKey adds key to the signed-in browser's account.
func (e *mfaEnv) registerKey(t *testing.T, b *providertest.Browser, account providertest.Page, key *softKey, name string) providertest.Page {
	t.Helper()
	csrf := accountCSRF(t, account)
	p := b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-webauthn"}, "name": {name}})
	require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
	kp := parseKeyPage(t, p.Body)
	return b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"finish-webauthn"},
		"ceremony": {kp.Ceremony}, "credential": {key.create(t, kp)}})
}

// keyStep answers the second-factor page with key.
func (e *mfaEnv) keyStep(t *testing.T, b *providertest.Browser, page providertest.Page, key *softKey) providertest.Page {
	t.Helper()
	require.Equal(t, "webauthn", page.Hidden().Get("method"), "R12: the security key is offered first")
	kp := parseKeyPage(t, page.Body)
	form := page.Hidden()
	form.Set("credential", key.get(t, kp))
	return b.Post(e.URL+"/login/2fa", form)
}

// TestR06_SecurityKeys: register keys with names, sign in with one as
// the second factor, list and remove them.
func TestR06_SecurityKeys(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newKeyEnv(t, dialect, nil)
			b := providertest.NewBrowser(t)
			account := e.signInAccount(t, b, "")
			yubi := e.softKey(t)
			p := e.registerKey(t, b, account, yubi, "YubiKey 5")
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, "I have saved these codes", "the first method brings recovery codes")
			second := e.softKey(t)
			p = e.registerKey(t, b, account, second, "Backup key")
			assert.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			// The same key cannot be registered twice.
			assert.Equal(t, http.StatusBadRequest, e.registerKey(t, b, account, yubi, "Again").StatusCode)

			page := b.Get(e.URL + "/account/security")
			assert.Contains(t, page.Body, "YubiKey 5")
			assert.Contains(t, page.Body, "Backup key")
			assert.Contains(t, page.Body, "last used")

			secret := e.addTOTP(t, e.user.ID)
			_ = secret
			authURL, verifier := e.authURL()
			b2 := providertest.NewBrowser(t)
			step := e.toSecondStep(t, b2, authURL, "ada@example.com")
			assert.Contains(t, step.Body, "Try another way")
			assert.Contains(t, step.Body, "Authenticator app")
			res := e.keyStep(t, b2, step, yubi)
			c := e.tokensFrom(t, b2.Finish(res, redirectURI), verifier)
			assert.Equal(t, []string{"pwd", "hwk", "user", "mfa"}, c.Amr)
			assert.Equal(t, provider.ACRPhishingResistant, c.Acr)
			assert.Contains(t, b.Get(e.URL+"/.well-known/openid-configuration").Body, provider.ACRPhishingResistant)

			// Remove the second key from the account page.
			factors, _ := e.Store.ListFactors(ctx, e.user.ID)
			var backupID string
			for _, f := range factors {
				if f.Name == "Backup key" {
					backupID = f.ID
				}
			}
			require.NotEmpty(t, backupID)
			res = b.Post(e.URL+"/account/security", url.Values{"csrf": {accountCSRF(t, page)}, "action": {"remove-factor"}, "factor": {backupID}})
			assert.Equal(t, http.StatusSeeOther, res.StatusCode)
			assert.NotContains(t, b.Get(e.URL+"/account/security").Body, "Backup key")
		})
	}
}

// TestR06_KeyBadInput: each crafted assertion is refused and issues
// nothing: an unregistered credential, a wrong origin, a wrong RP id, a
// replayed challenge, another user's credential, a counter regression.
func TestR06_KeyBadInput(t *testing.T) {
	ctx := context.Background()
	e := newKeyEnv(t, "sqlite", nil)
	b := providertest.NewBrowser(t)
	key := e.softKey(t)
	require.Equal(t, http.StatusOK, e.registerKey(t, b, e.signInAccount(t, b, ""), key, "Ada's key").StatusCode)

	e.User(t, "bo@example.com", password, store.PopulationAgent)
	boKey := e.softKey(t)
	bb := providertest.NewBrowser(t)
	boAccount := signInAs(t, e, bb, "bo@example.com")
	require.Equal(t, http.StatusOK, e.registerKey(t, bb, boAccount, boKey, "Bo's key").StatusCode)

	authURL, _ := e.authURL()
	refused := func(name string, mutate func(k *softKey) *softKey) {
		t.Run(name, func(t *testing.T) {
			br := providertest.NewBrowser(t)
			step := e.toSecondStep(t, br, authURL, "ada@example.com")
			res := e.keyStep(t, br, step, mutate(key))
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode, res.Body)
			assert.Empty(t, res.Header.Get("Location"))
			assert.Zero(t, sessionCount(t, e, br))
		})
	}
	refused("unregistered credential", func(k *softKey) *softKey { return e.softKey(t) })
	refused("wrong origin", func(k *softKey) *softKey { c := *k; c.origin = "http://evil.example"; return &c })
	refused("wrong RP id", func(k *softKey) *softKey { c := *k; c.rpID = "evil.example"; return &c })
	refused("another user's credential", func(k *softKey) *softKey { return boKey })

	t.Run("replayed challenge", func(t *testing.T) {
		br := providertest.NewBrowser(t)
		step := e.toSecondStep(t, br, authURL, "ada@example.com")
		kp := parseKeyPage(t, step.Body)
		form := step.Hidden()
		form.Set("credential", key.get(t, kp))
		ok := br.Post(e.URL+"/login/2fa", form)
		require.Equal(t, http.StatusSeeOther, ok.StatusCode, ok.Body)
		// The same answer again, in a new sign-in that names the old ceremony.
		br2 := providertest.NewBrowser(t)
		step2 := e.toSecondStep(t, br2, authURL, "ada@example.com")
		replay := step2.Hidden()
		replay.Set("ceremony", kp.Ceremony)
		replay.Set("credential", form.Get("credential"))
		res := br2.Post(e.URL+"/login/2fa", replay)
		assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
	})
	t.Run("counter regression", func(t *testing.T) {
		clone := *key
		clone.count = 1 // a cloned key starts from an old counter
		br := providertest.NewBrowser(t)
		step := e.toSecondStep(t, br, authURL, "ada@example.com")
		res := e.keyStep(t, br, step, &clone)
		assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
		events, _ := e.Store.ListAudit(ctx, store.AuditFilter{UserID: e.user.ID})
		assert.Contains(t, auditTypes(events), "factor.counter_regression")
	})
}

func signInAs(t *testing.T, e *mfaEnv, b *providertest.Browser, email string) providertest.Page {
	p, _ := b.Follow(b.Get(e.URL+"/account/security"), "")
	form := p.Hidden()
	form.Set("email", email)
	form.Set("password", password)
	p, _ = b.Follow(b.Post(e.URL+"/login", form), "")
	require.Contains(t, p.Request.URL.Path, "/account/security")
	return p
}

// TestPasskeySignIn: a discoverable, user-verified key signs in alone
// and counts as two factors; without user verification it is refused;
// admins can switch passwordless sign-in off.
func TestPasskeySignIn(t *testing.T) {
	e := newKeyEnv(t, "sqlite", nil)
	b := providertest.NewBrowser(t)
	passkey := e.softKey(t)
	passkey.be = true // synced
	require.Equal(t, http.StatusOK, e.registerKey(t, b, e.signInAccount(t, b, ""), passkey, "Phone").StatusCode)

	authURL, verifier := e.authURL()
	signIn := func(k *softKey) providertest.Page {
		br := providertest.NewBrowser(t)
		page, _ := br.Follow(br.Get(authURL), redirectURI)
		require.Contains(t, page.Body, "Sign in with a passkey")
		kp := parseKeyPage(t, page.Body)
		return e.passkeyPost(br, page, kp.Ceremony, k.get(t, kp))
	}
	res := signIn(passkey)
	require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
	cb := res.Location()
	require.True(t, strings.HasPrefix(cb, redirectURI), cb)
	c := e.tokensFrom(t, cb, verifier)
	assert.Equal(t, []string{"swk", "user", "mfa"}, c.Amr)
	assert.Equal(t, provider.ACRPhishingResistant, c.Acr)

	noUV := *passkey
	noUV.uv = false
	assert.Equal(t, http.StatusUnauthorized, signIn(&noUV).StatusCode, "a passkey without user verification is one factor: refused")

	off := newKeyEnv(t, "sqlite", func(c *provider.Config) { c.NoPasswordless = true })
	br := providertest.NewBrowser(t)
	u, _ := off.authURL()
	page, _ := br.Follow(br.Get(u), redirectURI)
	assert.NotContains(t, page.Body, "Sign in with a passkey")
	assert.Equal(t, http.StatusNotFound, br.Post(off.URL+"/login/passkey", page.Hidden()).StatusCode)
}

// TestPasskeyCeremonySealed: the login page's passkey ceremony is sealed
// into the page, not stored (no row per view); a ceremony is answered
// once (a refused answer uses it too), in its own sign-in, before it
// expires; a ceremony altered in one byte is refused. Each refusal has a
// control: the same step with a page's own, unused ceremony works.
func TestPasskeyCeremonySealed(t *testing.T) {
	e := newKeyEnv(t, "sqlite", nil)
	passkey := e.softKey(t)
	passkey.be = true
	b := providertest.NewBrowser(t)
	require.Equal(t, http.StatusOK, e.registerKey(t, b, e.signInAccount(t, b, ""), passkey, "Phone").StatusCode)
	authURL, _ := e.authURL()
	start := func() (*providertest.Browser, providertest.Page, keyPage) {
		br := providertest.NewBrowser(t)
		page, _ := br.Follow(br.Get(authURL), redirectURI)
		require.Contains(t, page.Body, "Sign in with a passkey")
		return br, page, parseKeyPage(t, page.Body)
	}
	stored := func() (n int) {
		require.NoError(t, e.Store.DB().GetContext(context.Background(), &n, `SELECT COUNT(*) FROM webauthn_sessions`))
		return n
	}
	signedIn := func(res providertest.Page) bool {
		return res.StatusCode == http.StatusSeeOther && strings.HasPrefix(res.Location(), redirectURI)
	}
	before := stored()
	for range 3 {
		start()
	}
	assert.Equal(t, before, stored(), "showing the login page writes no ceremony row")

	// Twice at once, in one sign-in: one answer signs in, the other is
	// refused before it is checked (one factor.success, no clone alarm).
	br, page, kp := start()
	answer := passkey.get(t, kp)
	results := make([]providertest.Page, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = e.passkeyPost(br, page, kp.Ceremony, answer) }()
	}
	wg.Wait()
	wins := 0
	for _, res := range results {
		if signedIn(res) {
			wins++
		}
	}
	assert.Equal(t, 1, wins, "exactly one of two identical answers signs in")
	events, err := e.Store.ListAudit(context.Background(), store.AuditFilter{UserID: e.user.ID})
	require.NoError(t, err)
	types := map[string]int{}
	for _, ev := range events {
		types[ev.Type]++
	}
	assert.Equal(t, 1, types["factor.success"], "one use of the key: %v", types)
	assert.Zero(t, types["factor.counter_regression"], "no false clone alarm: %v", types)

	// A ceremony is used by its first answer, even one refused: in the
	// same sign-in a good answer to it then fails, and a new page's works.
	br1, page1, kp1 := start()
	noUV := *passkey
	noUV.uv = false
	assert.Equal(t, http.StatusUnauthorized, e.passkeyPost(br1, page1, kp1.Ceremony, noUV.get(t, kp1)).StatusCode, "no user verification")
	assert.Equal(t, http.StatusUnauthorized, e.passkeyPost(br1, page1, kp1.Ceremony, passkey.get(t, kp1)).StatusCode,
		"the ceremony was used by the refused answer")
	page1, _ = br1.Follow(br1.Get(authURL), redirectURI)
	kp1 = parseKeyPage(t, page1.Body)
	assert.True(t, signedIn(e.passkeyPost(br1, page1, kp1.Ceremony, passkey.get(t, kp1))), "control: a new page's ceremony")

	// A fresh answer to that ceremony's challenge, in another sign-in;
	// then that sign-in's own ceremony.
	br2, page2, kp2 := start()
	assert.Equal(t, http.StatusUnauthorized, e.passkeyPost(br2, page2, kp.Ceremony, passkey.get(t, kp)).StatusCode,
		"a ceremony works only in the sign-in it was made for")
	assert.True(t, signedIn(e.passkeyPost(br2, page2, kp2.Ceremony, passkey.get(t, kp2))), "control: its own ceremony")

	// Altered in one byte (still base64url), then unaltered.
	br3, page3, kp3 := start()
	c := []byte(kp3.Ceremony)
	if i := len(c) / 2; c[i] == 'A' {
		c[i] = 'B'
	} else {
		c[i] = 'A'
	}
	assert.Equal(t, http.StatusUnauthorized, e.passkeyPost(br3, page3, string(c), passkey.get(t, kp3)).StatusCode, "an altered ceremony")
	assert.True(t, signedIn(e.passkeyPost(br3, page3, kp3.Ceremony, passkey.get(t, kp3))), "control: the unaltered one")

	// Expired; then a fresh page.
	br4, page4, kp4 := start()
	e.clock.Advance(5*time.Minute + time.Second)
	assert.Equal(t, http.StatusUnauthorized, e.passkeyPost(br4, page4, kp4.Ceremony, passkey.get(t, kp4)).StatusCode, "an expired ceremony")
	br5, page5, kp5 := start()
	assert.True(t, signedIn(e.passkeyPost(br5, page5, kp5.Ceremony, passkey.get(t, kp5))), "control: a fresh ceremony")
}

func (e *mfaEnv) passkeyPost(b *providertest.Browser, page providertest.Page, ceremony, credential string) providertest.Page {
	form := url.Values{"flow": {page.Hidden().Get("flow")}, "csrf": {page.Hidden().Get("csrf")},
		"ceremony": {ceremony}, "credential": {credential}}
	return b.Post(e.URL+"/login/passkey", form)
}

// TestR04_PasskeyAtConsoleNeedsAdmin: a passkey signs a non-admin in
// nowhere at the admin console: no session is made, as after a password.
func TestR04_PasskeyAtConsoleNeedsAdmin(t *testing.T) {
	e := newKeyEnv(t, "sqlite", nil)
	b := providertest.NewBrowser(t)
	passkey := e.softKey(t)
	passkey.be = true
	require.Equal(t, http.StatusOK, e.registerKey(t, b, e.signInAccount(t, b, ""), passkey, "Phone").StatusCode)

	br := providertest.NewBrowser(t)
	page, _ := br.Follow(br.Get(e.URL+"/admin"), "")
	require.Contains(t, page.Body, "Sign in with a passkey")
	kp := parseKeyPage(t, page.Body)
	res := e.passkeyPost(br, page, kp.Ceremony, passkey.get(t, kp))
	assert.Equal(t, http.StatusForbidden, res.StatusCode, res.Body)
	assert.Contains(t, res.Body, "Administrators only")
	assert.False(t, signedIn(t, e, br), "no session")
	events, err := e.Store.ListAudit(context.Background(), store.AuditFilter{Type: "console.refused"})
	require.NoError(t, err)
	require.Len(t, events, 1)
	assert.Equal(t, e.user.ID, events[0].UserID)
}

// TestR06_KeyCeremonyVectors (security.md S32–S34): each answer a
// browser would not send, to a registration or to a sign-in, is
// refused and changes nothing; the same key, answering properly, then
// works, so each refusal is the fault's and not the set-up's.
func TestR06_KeyCeremonyVectors(t *testing.T) {
	ctx := context.Background()
	e := newKeyEnv(t, "sqlite", nil)
	b := providertest.NewBrowser(t)
	account := e.signInAccount(t, b, "")
	key := e.softKey(t)
	require.Equal(t, http.StatusOK, e.registerKey(t, b, account, key, "Ada's key").StatusCode)
	account = b.Get(e.URL + "/account/security")

	bo := e.User(t, "bo@example.com", password, store.PopulationAgent)
	boKey := e.softKey(t)
	bb := providertest.NewBrowser(t)
	require.Equal(t, http.StatusOK, e.registerKey(t, bb, signInAs(t, e, bb, "bo@example.com"), boKey, "Bo's key").StatusCode)

	factors := func(userID string) []store.Factor {
		fs, err := e.Store.ListFactors(ctx, userID)
		require.NoError(t, err)
		return fs
	}
	adaBefore, boBefore := factors(e.user.ID), factors(bo.ID)
	other := b64.EncodeToString(bytes.Repeat([]byte{7}, 32))

	t.Run("registration", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			fault func(k *softKey)
		}{
			{"type of a sign-in", func(k *softKey) { k.typ = "webauthn.get" }},
			{"another challenge", func(k *softKey) { k.challenge = other }},
			{"another origin", func(k *softKey) { k.origin = "http://evil.example" }},
			{"another RP id", func(k *softKey) { k.rpID = "evil.example" }},
			{"cross-origin from an unknown top origin", func(k *softKey) { k.topOrigin = "https://evil.example" }},
			{"user not present", func(k *softKey) { k.noUP = true }},
			{"backed up but not backup eligible", func(k *softKey) { k.bs = true }},
			{"an algorithm not offered", func(k *softKey) { k.alg = -65535 }},
			{"credential id over 1023 bytes", func(k *softKey) { k.id = bytes.Repeat([]byte{1}, 1024) }},
			{"another user's credential id", func(k *softKey) { k.id = boKey.id }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				k := e.softKey(t)
				tc.fault(k)
				res := e.registerKey(t, b, account, k, "Forged")
				assert.Equal(t, http.StatusBadRequest, res.StatusCode, res.Body)
				assert.Contains(t, res.Body, "The security key could not be registered.")
				assert.Equal(t, adaBefore, factors(e.user.ID), "no key added")
				assert.Equal(t, boBefore, factors(bo.ID), "the other user's key untouched")
			})
		}
		require.Equal(t, http.StatusSeeOther, e.registerKey(t, b, account, e.softKey(t), "Backup key").StatusCode, "a proper key registers")
		adaBefore = factors(e.user.ID)
	})

	t.Run("sign-in", func(t *testing.T) {
		authURL, _ := e.authURL()
		for _, tc := range []struct {
			name  string
			fault func(k *softKey)
		}{
			{"type of a registration", func(k *softKey) { k.typ = "webauthn.create" }},
			{"another challenge", func(k *softKey) { k.challenge = other }},
			{"cross-origin from an unknown top origin", func(k *softKey) { k.topOrigin = "https://evil.example" }},
			{"user not present", func(k *softKey) { k.noUP = true }},
			{"backed up but not backup eligible", func(k *softKey) { k.bs = true }},
			{"backup eligibility changed since registration", func(k *softKey) { k.be = true }},
			{"signature over other data", func(k *softKey) { k.badSig = true }},
			{"another user's handle", func(k *softKey) { k.handle = []byte(bo.ID) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// A lock from the earlier refusals is not what this one tests.
				require.NoError(t, e.Store.ResetThrottle(ctx, provider.FactorLockKey(e.user)))
				k := *key
				tc.fault(&k)
				br := providertest.NewBrowser(t)
				res := e.keyStep(t, br, e.toSecondStep(t, br, authURL, "ada@example.com"), &k)
				assert.Equal(t, http.StatusUnauthorized, res.StatusCode, res.Body)
				assert.Empty(t, res.Header.Get("Location"))
				assert.Zero(t, sessionCount(t, e, br))
				assert.Equal(t, adaBefore, factors(e.user.ID), "the stored counter and flags unchanged")
			})
		}
		require.NoError(t, e.Store.ResetThrottle(ctx, provider.FactorLockKey(e.user)))
		br := providertest.NewBrowser(t)
		res := e.keyStep(t, br, e.toSecondStep(t, br, authURL, "ada@example.com"), key)
		assert.Equal(t, http.StatusSeeOther, res.StatusCode, "the key itself signs in: %s", res.Body)
	})
}
