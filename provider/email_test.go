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
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/mail"
	"github.com/twofold-idp/twofold/mail/mailtest"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// emailEnv is an mfaEnv whose provider sends email codes through a real
// SMTP exchange with an SMTP server of the test's own.
type emailEnv struct {
	*mfaEnv
	smtp *mailtest.Server
}

func newEmailEnv(t *testing.T, dialect string) *emailEnv {
	srv := mailtest.Start(t, mailtest.Options{})
	sender, err := mail.New(mail.Config{Addr: srv.Addr, From: "Twofold <no-reply@example.com>", TLS: mail.TLSNone})
	require.NoError(t, err)
	return &emailEnv{mfaEnv: startMFAEnv(t, dialect, providertest.Options{Mailer: sender}), smtp: srv}
}

// addEmailFactor gives ada confirmed codes by email.
func (e *emailEnv) addEmailFactor(t *testing.T) {
	t.Helper()
	require.NoError(t, e.Store.CreateFactor(context.Background(), store.Factor{ID: "email-1", UserID: e.user.ID,
		Kind: store.FactorEmail, Name: "Email codes", Confirmed: true, CreatedAt: time.Now()}))
}

var mailedCode = regexp.MustCompile(`(?m)^\s+(\d{6})$`)

// withoutNotices leaves out the security notices (notify.go), which
// other mails' counts do not expect.
func withoutNotices(msgs []mailtest.Message) []mailtest.Message {
	return slices.DeleteFunc(msgs, func(m mailtest.Message) bool { return m.Subject == "Twofold security notice" })
}

// mailsAbout waits for n messages with subject and returns them.
func mailsAbout(t *testing.T, srv *mailtest.Server, subject string, n int) []mailtest.Message {
	t.Helper()
	var got []mailtest.Message
	require.Eventually(t, func() bool {
		got = mailsWithSubject(srv.Messages(), subject)
		return len(got) >= n
	}, 10*time.Second, 10*time.Millisecond, "%d mails %q", n, subject)
	return got
}

// mailsWithSubject keeps the messages with subject.
func mailsWithSubject(msgs []mailtest.Message, subject string) []mailtest.Message {
	return slices.DeleteFunc(msgs, func(m mailtest.Message) bool { return m.Subject != subject })
}

// mailed waits for the n-th code mail and returns the code in it.
func (e *emailEnv) mailed(t *testing.T, n int) string {
	t.Helper()
	msgs := mailsAbout(t, e.smtp, "Your Twofold code", n)
	m := msgs[n-1]
	assert.Equal(t, []string{"ada@example.com"}, m.To)
	assert.Equal(t, "Your Twofold code", m.Subject)
	c := mailedCode.FindStringSubmatch(m.Body)
	require.Len(t, c, 2, m.Body)
	return c[1]
}

func sendEmail(b *providertest.Browser, e *emailEnv, page providertest.Page) providertest.Page {
	form := page.Hidden()
	form.Set("action", "send-email")
	return b.Post(e.URL+"/login/2fa", form)
}

// TestR08_EmailCodes: a user proves their address with a mailed code on
// the account page, then signs in with codes mailed to it; tokens say
// "email", and not "mfa" (security.md S12). A code works once, for its
// own sign-in, for 10 minutes; a resend waits 30 s more each time; sends
// are capped at 3 per 15 minutes per account; a refused send counts.
func TestR08_EmailCodes(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newEmailEnv(t, dialect)
			b := providertest.NewBrowser(t)
			p := accountPage(t, e.mfaEnv, b, "ada@example.com")
			require.Contains(t, p.Body, "Get codes by email")
			csrf := accountCSRF(t, p)

			// Set-up: the address is proved by a code sent to it.
			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-email"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, "a•••@example.com")
			setup := e.mailed(t, 1)
			again := b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-email"}})
			assert.Equal(t, http.StatusTooManyRequests, again.StatusCode)
			assert.Contains(t, again.Body, "in 30 seconds")
			assert.Len(t, withoutNotices(e.smtp.Messages()), 1, "no second mail within the countdown")

			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-email"}, "code": {other(setup)}})
			assert.Equal(t, http.StatusUnauthorized, p.StatusCode)
			fs, err := e.confirmed(t)
			require.NoError(t, err)
			assert.Empty(t, fs, "no factor for a wrong code")

			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-email"}, "code": {setup}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, "I have saved these codes", "recovery codes come with the first method (R07)")
			fs, err = e.confirmed(t)
			require.NoError(t, err)
			require.Len(t, fs, 1)
			assert.Equal(t, store.FactorEmail, fs[0].Kind)
			p = b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-email"}, "code": {setup}})
			assert.Equal(t, http.StatusUnauthorized, p.StatusCode, "a code works once")
			p, _ = b.Follow(b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"saved-codes"}}), "")
			assert.Contains(t, p.Body, "Two-step verification: on")
			assert.NotContains(t, p.Body, "Get codes by email", "set up once")

			// Sign-in, in a new 15-minute window: nothing is mailed until
			// the user asks.
			e.clock.Advance(15*time.Minute + time.Second)
			authURL, verifier := e.authURL(oauth2.SetAuthURLParam("prompt", "login"))
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			require.True(t, isSecondFactor(page), page.Body)
			assert.Contains(t, page.Body, "Email me a code")
			assert.Len(t, withoutNotices(e.smtp.Messages()), 1)
			sent := sendEmail(b, e, page)
			require.Equal(t, http.StatusOK, sent.StatusCode, sent.Body)
			first := e.mailed(t, 2)

			// A code is bound to its sign-in: one mailed for another
			// browser's sign-in does not work here.
			b2 := providertest.NewBrowser(t)
			page2 := e.toSecondStep(t, b2, authURL, "ada@example.com")
			require.Equal(t, http.StatusOK, sendEmail(b2, e, page2).StatusCode)
			if code2 := e.mailed(t, 3); code2 != first {
				res := e.submitCode(b, sent, "email", code2)
				assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "another sign-in's code")
			}

			// The countdown: 30 s, then 60 s more; a resend voids the
			// code before it.
			assert.Equal(t, http.StatusTooManyRequests, sendEmail(b, e, sent).StatusCode)
			e.clock.Advance(31 * time.Second)
			require.Equal(t, http.StatusOK, sendEmail(b, e, sent).StatusCode)
			second := e.mailed(t, 4)
			e.clock.Advance(31 * time.Second)
			res := sendEmail(b, e, sent)
			assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the second resend waits 60 s")
			assert.Regexp(t, `in (2[89]|30) seconds`, res.Body, "the rest of 60 s")
			if first != second {
				res = e.submitCode(b, sent, "email", first)
				assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "the code before a resend")
			}
			// The account's fourth send in 15 minutes is refused, whatever
			// the sign-in.
			e.clock.Advance(31 * time.Second)
			res = sendEmail(b, e, sent)
			assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "3 sends per 15 minutes")
			assert.Len(t, withoutNotices(e.smtp.Messages()), 4)

			cb := b.Finish(e.submitCode(b, sent, "email", second), redirectURI)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"pwd", "email"}, c.Amr, "a mailed code is no second factor")
			assert.Equal(t, provider.ACRPassword, c.Acr)
			fs, err = e.confirmed(t)
			require.NoError(t, err)
			require.Len(t, fs, 1)
			assert.NotNil(t, fs[0].LastUsedAt, "the account page shows its last use")

			// A mail server that refuses: an honest error; the send
			// counts (the countdown runs), and the next one works.
			e.clock.Advance(15*time.Minute + time.Second)
			b3 := providertest.NewBrowser(t)
			page = e.toSecondStep(t, b3, authURL, "ada@example.com")
			e.smtp.Reject(554)
			res = sendEmail(b3, e, page)
			assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
			assert.Contains(t, res.Body, "could not be sent")
			assert.Len(t, withoutNotices(e.smtp.Messages()), 4)
			assert.Equal(t, http.StatusTooManyRequests, sendEmail(b3, e, page).StatusCode)
			e.clock.Advance(31 * time.Second)
			require.Equal(t, http.StatusOK, sendEmail(b3, e, page).StatusCode)
			late := e.mailed(t, 5)

			// Expiry: a code older than 10 minutes is refused.
			e.clock.Advance(mfa.CodeLife + time.Second)
			res = e.submitCode(b3, page, "email", late)
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "an expired code")

			events, err := e.Store.ListAudit(ctx, store.AuditFilter{UserID: e.user.ID, Limit: 100})
			require.NoError(t, err)
			types := auditTypes(events)
			for _, want := range []string{"email_code.sent", "factor.enrolled", "factor.success", "factor.failure"} {
				assert.Contains(t, types, want)
			}
		})
	}
}

// other is a code that is not c.
func other(c string) string {
	if c == "000000" {
		return "111111"
	}
	return "000000"
}

// TestR23_R08_EmailIsNotMFA: a client or request that asks for two
// factors is not offered email codes; a user who has nothing else gets
// unmet_authentication_requirements, never a token. A posted email code
// is refused too.
func TestR23_R08_EmailIsNotMFA(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newEmailEnv(t, dialect)
			e.addEmailFactor(t)
			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL(oauth2.SetAuthURLParam("acr_values", provider.ACRMFA))
			p, done := b.Follow(b.Get(authURL), redirectURI)
			require.Empty(t, done)
			form := p.Hidden()
			form.Set("email", "ada@example.com")
			form.Set("password", password)
			res := b.Post(e.URL+"/login", form)
			require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
			q := mustQuery(t, res.Location())
			assert.Equal(t, "unmet_authentication_requirements", q.Get("error"))
			assert.Empty(t, q.Get("code"))
			assert.Empty(t, withoutNotices(e.smtp.Messages()))

			// With recovery codes, those are offered, and email is not
			// sent or accepted even when posted.
			e.AddRecoveryCodes(t, e.user.ID)
			b2 := providertest.NewBrowser(t)
			page := e.toSecondStep(t, b2, authURL, "ada@example.com")
			require.True(t, isSecondFactor(page))
			assert.NotContains(t, page.Body, "Email me a code")
			assert.NotContains(t, page.Body, "A code by email")
			assert.Equal(t, http.StatusBadRequest, sendEmail(b2, e, page).StatusCode, "a send posted anyway")
			assert.Empty(t, withoutNotices(e.smtp.Messages()))
		})
	}
}

// TestR25_EmailCodesThrottled: wrong email codes count like app codes:
// the sixth try of a sign-in ends it, and on the account page the
// account locks after ten.
func TestR25_EmailCodesThrottled(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newEmailEnv(t, dialect)
			e.addEmailFactor(t)
			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			sent := sendEmail(b, e, page)
			require.Equal(t, http.StatusOK, sent.StatusCode)
			code := e.mailed(t, 1)
			for range provider.FlowFactorLimit {
				assert.Equal(t, http.StatusUnauthorized, e.submitCode(b, sent, "email", other(code)).StatusCode)
			}
			res := e.submitCode(b, sent, "email", code)
			assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "past the sign-in's tries even the right code fails")
			assert.Contains(t, res.Body, "This sign-in has ended")

			// The account page's set-up counts against the account.
			_, err := e.Store.DeleteFactors(ctx, e.user.ID)
			require.NoError(t, err)
			e.clock.Advance(16 * time.Minute) // the lock the sign-in's tries left (if any) and the send window pass
			b2 := providertest.NewBrowser(t)
			p := accountPage(t, e.mfaEnv, b2, "ada@example.com")
			csrf := accountCSRF(t, p)
			require.Equal(t, http.StatusOK, b2.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"start-email"}}).StatusCode)
			setup := e.mailed(t, 2)
			locked := false
			for range provider.AccountFactorLimit + 1 {
				p = b2.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-email"}, "code": {other(setup)}})
				locked = locked || p.StatusCode == http.StatusTooManyRequests
			}
			assert.True(t, locked, "wrong set-up codes lock the account's second step")
			p = b2.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"confirm-email"}, "code": {setup}})
			assert.Equal(t, http.StatusTooManyRequests, p.StatusCode, "locked: even the right code waits")
			fs, err := e.confirmed(t)
			require.NoError(t, err)
			assert.Empty(t, fs)

			// The sign-in's setup page counts its tries in the flow.
			e.clock.Advance(16 * time.Minute)
			require.NoError(t, e.Store.ResetThrottle(ctx, provider.FactorLockKey(e.user)))
			require.NoError(t, e.Store.SetUserMFARequired(ctx, e.user.ID, true, time.Now()))
			b3 := providertest.NewBrowser(t)
			page = e.toSecondStep(t, b3, authURL, "ada@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol")
			start := page.Hidden()
			start.Set("action", "start-email")
			p = b3.Post(e.URL+"/login/enrol", start)
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			enrol := e.mailed(t, 3)
			confirm := p.Hidden()
			confirm.Set("action", "confirm-email")
			for range provider.FlowFactorLimit {
				confirm.Set("code", other(enrol))
				assert.Equal(t, http.StatusUnauthorized, b3.Post(e.URL+"/login/enrol", confirm).StatusCode)
			}
			confirm.Set("code", enrol)
			p = b3.Post(e.URL+"/login/enrol", confirm)
			assert.Equal(t, http.StatusTooManyRequests, p.StatusCode)
			assert.Contains(t, p.Body, "This sign-in has ended")
			fs, err = e.confirmed(t)
			require.NoError(t, err)
			assert.Empty(t, fs)
		})
	}
}

// TestR25_EmailSendsPerDay (security.md §3.1.4): past the 15-minute
// cap, an account gets at most 10 codes by email a day, whatever the
// sign-in; the 11th send is refused and delivers nothing, and a day
// later codes are sent again.
func TestR25_EmailSendsPerDay(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newEmailEnv(t, dialect)
			e.addEmailFactor(t)
			authURL, _ := e.authURL()
			send := func() providertest.Page {
				b := providertest.NewBrowser(t)
				return sendEmail(b, e, e.toSecondStep(t, b, authURL, "ada@example.com"))
			}
			for i := 1; i <= 10; i++ {
				e.clock.Advance(16 * time.Minute) // past the 15-minute cap each time
				require.Equal(t, http.StatusOK, send().StatusCode, "send %d", i)
				e.mailed(t, i)
			}
			e.clock.Advance(16 * time.Minute)
			res := send()
			assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the 11th send in a day")
			assert.Contains(t, res.Body, "You can ask for a new one in")
			time.Sleep(100 * time.Millisecond) // a stray mail would have arrived by now
			assert.Len(t, mailsWithSubject(e.smtp.Messages(), "Your Twofold code"), 10, "nothing delivered")

			e.clock.Advance(24 * time.Hour)
			require.Equal(t, http.StatusOK, send().StatusCode, "a day later")
			e.mailed(t, 11)
		})
	}
}

// TestR08_R10_EmailNeedsMailServerAndPolicy: without a mail server email
// codes are not offered nor accepted; a policy that leaves email out
// refuses its set-up, yet a factor set up before still signs in.
func TestR08_R10_EmailNeedsMailServerAndPolicy(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			for _, tc := range []struct {
				name   string
				mailer bool
				allow  store.Strings
				want   string
			}{
				{"no mail server", false, nil, "not available here"},
				{"not allowed", true, store.Strings{mfa.MethodTOTP}, "does not allow"},
			} {
				var e *mfaEnv
				if tc.mailer {
					e = newEmailEnv(t, dialect).mfaEnv
				} else {
					e = newMFAEnv(t, dialect)
				}
				require.NoError(t, e.Store.SetMFAMethods(ctx, store.PopulationAgent, tc.allow, time.Now()))
				e.Provider.ExpirePolicies()
				b := providertest.NewBrowser(t)
				p := accountPage(t, e, b, "ada@example.com")
				assert.NotContains(t, p.Body, "Get codes by email", tc.name)
				p = b.Post(e.URL+"/account/security", url.Values{"csrf": {accountCSRF(t, p)}, "action": {"start-email"}})
				assert.Equal(t, http.StatusForbidden, p.StatusCode, tc.name)
				assert.Contains(t, p.Body, tc.want, tc.name)
			}

			// Set up while allowed, then taken off the list: still signs in.
			e := newEmailEnv(t, dialect)
			e.addEmailFactor(t)
			require.NoError(t, e.Store.SetMFAMethods(ctx, store.PopulationAgent, store.Strings{mfa.MethodTOTP}, time.Now()))
			e.Provider.ExpirePolicies()
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			require.Equal(t, http.StatusOK, sendEmail(b, e, page).StatusCode)
			cb := b.Finish(e.submitCode(b, page, "email", e.mailed(t, 1)), redirectURI)
			assert.Equal(t, []string{"pwd", "email"}, e.tokensFrom(t, cb, verifier).Amr)
		})
	}
}

// TestR22_R08_EmailSetUpDuringSignIn: a user required to have a second
// factor sets email codes up on the sign-in's setup page, then presents
// the factor like any other (a factor made after the password alone
// proves nothing yet).
func TestR22_R08_EmailSetUpDuringSignIn(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newEmailEnv(t, dialect)
			require.NoError(t, e.Store.SetUserMFARequired(ctx, e.user.ID, true, time.Now()))
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol")
			require.Contains(t, page.Body, "Email codes to a•••@example.com")

			start := page.Hidden()
			start.Set("action", "start-email")
			p := b.Post(e.URL+"/login/enrol", start)
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, "Check your email")
			confirm := p.Hidden()
			confirm.Set("action", "confirm-email")
			confirm.Set("code", e.mailed(t, 1))
			p = b.Post(e.URL+"/login/enrol", confirm)
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			require.Contains(t, p.Body, "I have saved these codes")
			assert.Zero(t, sessionCount(t, e.mfaEnv, b))

			tick := p.Hidden()
			tick.Set("saved", "yes")
			next, done := b.Follow(b.Post(e.URL+"/login/recovery-codes", tick), redirectURI)
			require.Empty(t, done, "no code before the new factor is presented")
			require.True(t, isSecondFactor(next), next.Body)
			sent := sendEmail(b, e, next)
			require.Equal(t, http.StatusOK, sent.StatusCode, sent.Body)
			cb := b.Finish(e.submitCode(b, sent, "email", e.mailed(t, 2)), redirectURI)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"pwd", "email"}, c.Amr, "the user's requirement is met; the claims stay honest")
			assert.Equal(t, provider.ACRPassword, c.Acr)
		})
	}
}

// TestR20_MailedRecoveryCodeIsNotMFA: a recovery code from a set an admin
// mailed (R20) signs the user in as an email code would: amr "email", no
// "mfa"; a client that asks for two factors does not take it.
func TestR20_MailedRecoveryCodeIsNotMFA(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			e := newMFAEnv(t, dialect)
			e.addTOTP(t, e.user.ID)
			codes := e.AddMailedRecoveryCodes(t, e.user.ID)

			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			cb := b.Finish(e.submitCode(b, page, "recovery", codes[0]), redirectURI)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"pwd", "email"}, c.Amr)
			assert.Equal(t, provider.ACRPassword, c.Acr)

			b = providertest.NewBrowser(t)
			authURL, _ = e.authURL(oauth2.SetAuthURLParam("acr_values", provider.ACRMFA))
			page = e.toSecondStep(t, b, authURL, "ada@example.com")
			res := e.submitCode(b, page, "recovery", codes[1])
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "not enough for a client that asks for MFA")
		})
	}
}
