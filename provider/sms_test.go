package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/sms/smstest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

var textedCode = regexp.MustCompile(`^(\d{6}) is your `)

// TestR09_SMSCodes: codes by text message are off until an admin allows
// them; a user attaches their own phone by entering a code texted to it;
// at sign-in a texted code is a second factor (amr sms, mfa). A number an
// admin attached and nobody confirmed has the SMS step say whom to ask.
// The gateway is a fake at Twilio's documented HTTP contract.
func TestR09_SMSCodes(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			gw := smstest.Start(t)
			texter, err := sms.New(sms.Config{AccountSID: gw.AccountSID, AuthToken: gw.AuthToken, From: "+15005550006", BaseURL: gw.URL}, nil)
			require.NoError(t, err)
			e := startMFAEnv(t, dialect, providertest.Options{Texter: texter})
			b := providertest.NewBrowser(t)
			p := accountPage(t, e, b, "ada@example.com")
			require.Contains(t, p.Body, "Account security")
			assert.NotContains(t, p.Body, "Add a phone", "off by default (R09)")
			csrf := accountCSRF(t, p)
			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"+447700900123"}})
			assert.Equal(t, http.StatusForbidden, p.StatusCode)

			require.NoError(t, e.Store.SetMFAMethods(ctx, store.PopulationAgent, store.Strings{mfa.MethodTOTP, mfa.MethodSMS}, time.Now()))
			e.Provider.ExpirePolicies()
			p = b.Get(e.URL + "/account/security")
			require.Contains(t, p.Body, "Add a phone")

			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"0770"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Contains(t, p.Body, "country code")
			assert.Zero(t, gw.Requests(), "a bad number is not sent")

			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"+44 7700 900123"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, "Check your phone")
			msgs := gw.Wait(t, 1)
			assert.Equal(t, "+447700900123", msgs[0].To)
			assert.Equal(t, "+15005550006", msgs[0].From)
			code := textedCode.FindStringSubmatch(msgs[0].Body)
			require.Len(t, code, 2, msgs[0].Body)

			confirm := url.Values{"csrf": {csrf}, "action": {"confirm-sms"}, "phone": {"+447700900123"}, "code": {other(code[1])}}
			p = b.Post(e.URL+"/account/security", confirm)
			assert.Equal(t, http.StatusUnauthorized, p.StatusCode)
			confirm.Set("phone", "+447700900999")
			confirm.Set("code", code[1])
			p = b.Post(e.URL+"/account/security", confirm)
			assert.Equal(t, http.StatusUnauthorized, p.StatusCode, "the code is bound to the number it went to")
			confirm.Set("phone", "+447700900123")
			p = b.Post(e.URL+"/account/security", confirm)
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, "I have saved these codes")
			fs, err := e.confirmed(t)
			require.NoError(t, err)
			require.Len(t, fs, 1)
			assert.Equal(t, store.FactorSMS, fs[0].Kind)
			assert.Equal(t, "+447700900123", fs[0].Phone)
			p, _ = b.Follow(b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"saved-codes"}}), "")
			assert.Contains(t, p.Body, "••••23 ✓ confirmed", "read-only, marked confirmed (R09)")
			assert.NotContains(t, p.Body, "Add a phone", "one phone: remove it to use another")

			// Sign-in with a texted code.
			b2 := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			page := e.toSecondStep(t, b2, authURL, "ada@example.com")
			require.Contains(t, page.Body, "Text me a code", page.Body)
			assert.Contains(t, page.Body, "••••23", "the number, masked")
			form := page.Hidden()
			form.Set("action", "send-sms")
			sent := b2.Post(e.URL+"/login/2fa", form)
			require.Equal(t, http.StatusOK, sent.StatusCode, sent.Body)
			msgs = gw.Wait(t, 2)
			code = textedCode.FindStringSubmatch(msgs[1].Body)
			require.Len(t, code, 2)
			cb := b2.Finish(e.submitCode(b2, sent, "sms", code[1]), redirectURI)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"pwd", "sms", "mfa"}, c.Amr)
			assert.Equal(t, provider.ACRMFA, c.Acr)

			// A number an admin attached, not confirmed: the step says
			// whom to ask, and nothing is texted.
			bo := e.User(t, "bo@example.com", password, store.PopulationAgent)
			e.AddTOTP(t, bo.ID)
			require.NoError(t, e.Store.CreateFactor(ctx, store.Factor{ID: "bo-phone", UserID: bo.ID, Kind: store.FactorSMS,
				Name: "Phone", Phone: "+447700900456", CreatedAt: time.Now()}))
			b3 := providertest.NewBrowser(t)
			page = e.toSecondStep(t, b3, authURL, "bo@example.com")
			flow := page.Hidden().Get("flow")
			smsPage := b3.Get(e.URL + "/login/2fa?flow=" + url.QueryEscape(flow) + "&method=sms")
			assert.Contains(t, smsPage.Body, "Contact your administrator")
			form = smsPage.Hidden()
			form.Set("action", "send-sms")
			assert.Equal(t, http.StatusForbidden, b3.Post(e.URL+"/login/2fa", form).StatusCode)
			assert.Len(t, gw.Messages(), 2, "nothing texted to an unconfirmed number")
		})
	}
}

// newSMSEnv is an mfaEnv with a fake Twilio and codes by SMS allowed
// for agents.
func newSMSEnv(t *testing.T, dialect string, config func(*provider.Config)) (*mfaEnv, *smstest.Server) {
	t.Helper()
	gw := smstest.Start(t)
	texter, err := sms.New(sms.Config{AccountSID: gw.AccountSID, AuthToken: gw.AuthToken, From: "+15005550006", BaseURL: gw.URL}, nil)
	require.NoError(t, err)
	e := startMFAEnv(t, dialect, providertest.Options{Texter: texter, Config: config})
	require.NoError(t, e.Store.SetMFAMethods(context.Background(), store.PopulationAgent, store.Strings{mfa.MethodTOTP, mfa.MethodSMS}, time.Now()))
	e.Provider.ExpirePolicies()
	return e, gw
}

// accountPage opens the account page in b, signing in as email with
// the password alone, and returns it.
func accountPage(t *testing.T, e *mfaEnv, b *providertest.Browser, email string) providertest.Page {
	t.Helper()
	p, _ := b.Follow(b.Get(e.URL+"/account/security"), "")
	form := p.Hidden()
	form.Set("email", email)
	form.Set("password", password)
	p, _ = b.Follow(b.Post(e.URL+"/login", form), "")
	return p
}

// TestR09_SMSRules: a texted sign-in code is bound to the number (an
// admin's swap voids it); wrong set-up codes lock the account's second
// step; a number the gateway refuses, or outside the allowed prefixes,
// is answered plainly and nothing waits for a code; without a gateway a
// phone is neither offered nor usable.
func TestR09_SMSRules(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e, gw := newSMSEnv(t, dialect, func(c *provider.Config) { c.SMSAllowedPrefixes = []string{"+44"} })
			b := providertest.NewBrowser(t)
			csrf := accountCSRF(t, accountPage(t, e, b, "ada@example.com"))

			p := b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"+15551234567"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Contains(t, p.Body, "cannot be texted to numbers in that country")
			gw.Fail(400, 21211, "The 'To' number +447700900111 is not a valid phone number.")
			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"+447700900111"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Contains(t, p.Body, "country code")
			assert.NotContains(t, p.Body, "Check your phone", "no code to wait for")
			assert.Empty(t, gw.Messages())

			// Wrong set-up codes count against the account.
			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"+447700900123"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			setup := textedCode.FindStringSubmatch(gw.Wait(t, 1)[0].Body)[1]
			locked := false
			for range provider.AccountFactorLimit + 1 {
				p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-sms"}, "phone": {"+447700900123"}, "code": {other(setup)}})
				locked = locked || p.StatusCode == http.StatusTooManyRequests
			}
			assert.True(t, locked)
			require.NoError(t, e.Store.ResetThrottle(ctx, provider.FactorLockKey(e.user)))
			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-sms"}, "phone": {"+447700900123"}, "code": {setup}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)

			// A sign-in code dies with the number it went to.
			b2 := providertest.NewBrowser(t)
			authURL, _ := e.authURL()
			page := e.toSecondStep(t, b2, authURL, "ada@example.com")
			form := page.Hidden()
			form.Set("action", "send-sms")
			sent := b2.Post(e.URL+"/login/2fa", form)
			require.Equal(t, http.StatusOK, sent.StatusCode, sent.Body)
			code := textedCode.FindStringSubmatch(gw.Wait(t, 2)[1].Body)[1]
			fs, err := e.confirmed(t)
			require.NoError(t, err)
			require.NoError(t, e.Store.DeleteFactor(ctx, e.user.ID, fs[0].ID))
			require.NoError(t, e.Store.CreateFactor(ctx, store.Factor{ID: "swapped", UserID: e.user.ID, Kind: store.FactorSMS,
				Name: "Phone", Phone: "+447700900999", Confirmed: true, CreatedAt: time.Now()}))
			res := e.submitCode(b2, sent, "sms", code)
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "a code for the old number")

			// No gateway: the phone is not offered, and a user with nothing
			// else is told so.
			plain := newMFAEnv(t, dialect)
			plain.addTOTP(t, plain.user.ID)
			require.NoError(t, plain.Store.CreateFactor(ctx, store.Factor{ID: "ph", UserID: plain.user.ID, Kind: store.FactorSMS,
				Name: "Phone", Phone: "+447700900123", Confirmed: true, CreatedAt: time.Now()}))
			authURL, _ = plain.authURL()
			page = plain.toSecondStep(t, providertest.NewBrowser(t), authURL, "ada@example.com")
			assert.NotContains(t, page.Body, "text message")
			bo := plain.User(t, "bo@example.com", password, store.PopulationAgent)
			require.NoError(t, plain.Store.CreateFactor(ctx, store.Factor{ID: "bo-ph", UserID: bo.ID, Kind: store.FactorSMS,
				Name: "Phone", Phone: "+447700900124", Confirmed: true, CreatedAt: time.Now()}))
			b3 := providertest.NewBrowser(t)
			p, done := b3.Follow(b3.Get(authURL), redirectURI)
			require.Empty(t, done)
			form = p.Hidden()
			form.Set("email", "bo@example.com")
			form.Set("password", password)
			res = b3.Post(plain.URL+"/login", form)
			assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
			assert.Contains(t, res.Body, "Contact your administrator")
		})
	}
}

// TestR22_R09_PhoneSetUp: a user required to have a second factor sets a
// phone up on the sign-in's setup page and then presents it; a number an
// admin attached unconfirmed is confirmed by its owner with a texted code.
func TestR22_R09_PhoneSetUp(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e, gw := newSMSEnv(t, dialect, nil)
			require.NoError(t, e.Store.SetUserMFARequired(ctx, e.user.ID, true, time.Now()))
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol")
			require.Contains(t, page.Body, "Mobile number")
			start := page.Hidden()
			start.Set("action", "start-sms")
			start.Set("phone", "+447700900123")
			p := b.Post(e.URL+"/login/enrol", start)
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			confirm := p.Hidden()
			confirm.Set("action", "confirm-sms")
			confirm.Set("code", textedCode.FindStringSubmatch(gw.Wait(t, 1)[0].Body)[1])
			p = b.Post(e.URL+"/login/enrol", confirm)
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			require.Contains(t, p.Body, "I have saved these codes")
			tick := p.Hidden()
			tick.Set("saved", "yes")
			next, done := b.Follow(b.Post(e.URL+"/login/recovery-codes", tick), redirectURI)
			require.Empty(t, done, "the new phone is presented next")
			send := next.Hidden()
			send.Set("action", "send-sms")
			sent := b.Post(e.URL+"/login/2fa", send)
			require.Equal(t, http.StatusOK, sent.StatusCode, sent.Body)
			cb := b.Finish(e.submitCode(b, sent, "sms", textedCode.FindStringSubmatch(gw.Wait(t, 2)[1].Body)[1]), redirectURI)
			assert.Equal(t, []string{"pwd", "sms", "mfa"}, e.tokensFrom(t, cb, verifier).Amr)

			// An admin attached bo's number unconfirmed: bo confirms it.
			bo := e.User(t, "bo@example.com", password, store.PopulationAgent)
			require.NoError(t, e.Store.CreateFactor(ctx, store.Factor{ID: "bo-phone", UserID: bo.ID, Kind: store.FactorSMS,
				Name: "Phone", Phone: "+447700900456", CreatedAt: time.Now()}))
			b2 := providertest.NewBrowser(t)
			p = accountPage(t, e, b2, "bo@example.com")
			assert.Contains(t, p.Body, "not confirmed yet")
			require.Contains(t, p.Body, "Confirm this phone")
			csrf := accountCSRF(t, p)
			p = b2.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"+447700900456"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			code := textedCode.FindStringSubmatch(gw.Wait(t, 3)[2].Body)[1]
			p = b2.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-sms"}, "phone": {"+447700900456"}, "code": {code}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			f, err := e.Store.GetFactor(ctx, "bo-phone")
			require.NoError(t, err)
			assert.True(t, f.Confirmed, "the attached number, confirmed by its owner")

			// cy replaces the number an admin attached with one she
			// proves: the audit keeps both, masked.
			cy := e.User(t, "cy@example.com", password, store.PopulationAgent)
			require.NoError(t, e.Store.CreateFactor(ctx, store.Factor{ID: "cy-phone", UserID: cy.ID, Kind: store.FactorSMS,
				Name: "Phone", Phone: "+447700900457", CreatedAt: time.Now()}))
			b3 := providertest.NewBrowser(t)
			csrf = accountCSRF(t, accountPage(t, e, b3, "cy@example.com"))
			p = b3.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"+447700900458"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			code = textedCode.FindStringSubmatch(gw.Wait(t, 4)[3].Body)[1]
			p = b3.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-sms"}, "phone": {"+447700900458"}, "code": {code}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			events, err := e.Store.ListAudit(ctx, store.AuditFilter{UserID: cy.ID, Limit: 10})
			require.NoError(t, err)
			i := slices.IndexFunc(events, func(ev store.AuditEvent) bool { return ev.Type == "factor.enrolled" })
			require.GreaterOrEqual(t, i, 0)
			assert.JSONEq(t, `{"method":"sms","phone":"`+sms.Mask("+447700900458")+`","replaced":"`+sms.Mask("+447700900457")+`"}`, events[i].Detail)
			assert.NotContains(t, events[i].Detail, "900457", "numbers are masked")
		})
	}
}

// TestR09_ServerWideTextBudget: past sms.daily_limit the server texts
// nothing more that day, to any number from anyone (SMS pumping).
func TestR09_ServerWideTextBudget(t *testing.T) {
	e, gw := newSMSEnv(t, "sqlite", func(c *provider.Config) { c.SMSDailyLimit = 1 })
	b := providertest.NewBrowser(t)
	csrf := accountCSRF(t, accountPage(t, e, b, "ada@example.com"))
	p := b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"+447700900123"}})
	require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
	gw.Wait(t, 1)
	for _, after := range []time.Duration{0, 2 * time.Hour, 20 * time.Hour} {
		e.clock.Advance(after)
		b := providertest.NewBrowser(t) // a fresh sign-in: sessions end meanwhile
		csrf := accountCSRF(t, accountPage(t, e, b, "ada@example.com"))
		p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-sms"}, "phone": {"+447700900999"}})
		assert.Equal(t, http.StatusTooManyRequests, p.StatusCode, "after %s more", after)
	}
	assert.Len(t, gw.Messages(), 1)
}
