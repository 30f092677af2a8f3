package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/mail/mailtest"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestSecurityNotices: with a mail server, an account's owner is told by
// email of a reused authenticator code (security.md S9), of a password
// changed on the account page (S20), and of an admin's reset of their
// methods (§3.8), and of too many wrong codes after their password
// (§3.1.3); a sign-in tells them nothing, no notice carries a code
// or a browser's words, and a thief's replays mail at most three an hour.
func TestSecurityNotices(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ee := newEmailEnv(t, dialect)
			e := newConsoleEnv(t, ee.mfaEnv)
			secret := e.addTOTP(t, e.user.ID)
			notices := func(n int) []mailtest.Message {
				t.Helper()
				return mailsAbout(t, ee.smtp, "Twofold security notice", n)
			}

			// A sign-in, then the same code in another browser: refused,
			// and its owner is told (S9).
			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL()
			code := e.code(t, secret)
			p := e.submitCode(b, e.toSecondStep(t, b, authURL, e.user.Email), "totp", code)
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			thief := providertest.NewBrowser(t)
			p = e.submitCode(thief, e.toSecondStep(t, thief, authURL, e.user.Email), "totp", code)
			require.Equal(t, http.StatusUnauthorized, p.StatusCode, p.Body)
			m := notices(1)[0]
			assert.Equal(t, []string{e.user.Email}, m.To)
			assert.Contains(t, m.Body, "An authenticator code that had already been used was entered after your password, and refused.")
			assert.Contains(t, m.Body, "From: 127.0.0.1")
			assert.NotContains(t, m.Body, "Go-http-client", "the browser's words are the thief's")
			assert.Contains(t, m.Body, "/account/security")
			assert.NotContains(t, m.Body, code)
			// A thief replaying on and on: three notices of it an hour.
			for range 4 {
				p = e.submitCode(thief, e.toSecondStep(t, thief, authURL, e.user.Email), "totp", code)
				require.Equal(t, http.StatusUnauthorized, p.StatusCode, p.Body)
			}
			assert.Len(t, notices(3), 3)

			// A password changed on the account page (S20).
			bo := e.User(t, "bo@example.com", password, store.PopulationAgent)
			bb := providertest.NewBrowser(t)
			page := accountPage(t, e.mfaEnv, bb, bo.Email)
			require.Equal(t, http.StatusOK, page.StatusCode, page.Body)
			const newPassword = "a new and longer passphrase"
			p = bb.Post(e.URL+"/account/security", url.Values{"csrf": {page.Hidden().Get("csrf")}, "action": {"change-password"},
				"current": {password}, "password": {newPassword}, "repeat": {newPassword}})
			require.Less(t, p.StatusCode, 400, p.Body)
			m = notices(4)[3]
			assert.Equal(t, []string{bo.Email}, m.To)
			assert.Contains(t, m.Body, "Your password was changed.")
			assert.NotContains(t, m.Body, newPassword)

			// An admin removes ada's methods (a lost phone): she is told,
			// and by whom.
			ab, admin := e.console(t)
			p = e.post(ab, admin, "/admin/users/"+e.user.ID, url.Values{"action": {"reset-mfa"}, "confirm": {"yes"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			m = notices(5)[4]
			assert.Equal(t, []string{e.user.Email}, m.To)
			assert.Contains(t, m.Body, "An administrator removed your two-step verification methods.")
			assert.Contains(t, m.Body, "If you did not ask your administrator for this, tell them.")
			assert.NotContains(t, m.Body, "From:", "not the admin's address")

			// Wrong codes after the password, past a sign-in's tries: the
			// guesser knew the password, and its owner is told (§3.1.3).
			cy := e.User(t, "cy@example.com", password, store.PopulationAgent)
			e.addTOTP(t, cy.ID)
			cb := providertest.NewBrowser(t)
			step := e.toSecondStep(t, cb, authURL, cy.Email)
			for range provider.FlowFactorLimit {
				require.Equal(t, http.StatusUnauthorized, e.submitCode(cb, step, "totp", "000000").StatusCode)
			}
			require.Equal(t, http.StatusTooManyRequests, e.submitCode(cb, step, "totp", "000000").StatusCode)
			m = notices(6)[5]
			assert.Equal(t, []string{cy.Email}, m.To)
			assert.Contains(t, m.Body, "Whoever entered them knew your password")
			assert.NotContains(t, m.Body, "000000")

			// Nothing else: the sign-ins, the admin's included, told nobody.
			time.Sleep(100 * time.Millisecond) // a stray notice would have arrived by now
			assert.Len(t, mailsWithSubject(ee.smtp.Messages(), "Twofold security notice"), 6)
		})
	}
}

// heldMailer holds each mail until the test lets it go.
type heldMailer struct {
	release chan struct{}
	sent    chan string
}

func (m *heldMailer) Send(ctx context.Context, to, subject, body string) error {
	<-m.release
	m.sent <- to
	return nil
}

// TestNotifierDrain: at shutdown Drain waits for mail still being sent,
// at most until its context ends; a notice asked for after Drain began
// is sent before Notify returns, not left behind.
func TestNotifierDrain(t *testing.T) {
	env := providertest.Start(t, "sqlite", providertest.Options{})
	u := env.User(t, "ada@example.com", password, store.PopulationAgent)
	m := &heldMailer{release: make(chan struct{}), sent: make(chan string, 2)}
	n := provider.NewNotifier(env.Store, m, env.URL, nil)
	n.Notify(store.AuditEvent{Type: "password.changed", UserID: u.ID, Time: time.Now()})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	n.Drain(ctx) // the mail is held: Drain gives up when ctx ends
	assert.Empty(t, m.sent, "held, not sent")

	close(m.release)
	n.Drain(context.Background()) // waits for the held mail
	require.Len(t, m.sent, 1, "Drain returned once the held mail was sent")
	n.Notify(store.AuditEvent{Type: "factor.removed", UserID: u.ID, Time: time.Now()})
	assert.Len(t, m.sent, 2, "a notice after Drain began went out before Notify returned")
}
