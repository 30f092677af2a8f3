package provider_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestR25_AccountPasswordChange: a user changes their password on the
// account page by giving the current one, whose tries count as failed
// sign-ins do (R25); a refused form changes nothing; a change signs them
// out everywhere but this browser and is audited.
func TestR25_AccountPasswordChange(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newMFAEnv(t, dialect)
			b, other := providertest.NewBrowser(t), providertest.NewBrowser(t)
			page := accountPage(t, e, b, e.user.Email)
			require.Equal(t, http.StatusOK, page.StatusCode, page.Body)
			assert.Contains(t, page.Body, `autocomplete="current-password"`)
			accountPage(t, e, other, e.user.Email)
			require.True(t, signedIn(t, e, other))

			const newPassword = "a new and longer passphrase"
			post := func(b *providertest.Browser, current, pw, repeat string) providertest.Page {
				return b.Post(e.URL+"/account/security", url.Values{"csrf": {page.Hidden().Get("csrf")}, "action": {"change-password"},
					"current": {current}, "password": {pw}, "repeat": {repeat}})
			}
			works := func(pw string) bool {
				_, err := e.Accounts.Authenticate(ctx, store.PopulationAgent, e.user.Email, pw)
				return err == nil
			}
			for _, tc := range []struct {
				name                string
				current, pw, repeat string
				status              int
				says                string
			}{
				{"new ones differ", password, newPassword, newPassword + "!", http.StatusBadRequest, "The two new passwords are not the same."},
				{"too short", password, "short", "short", http.StatusBadRequest, "at least 12 characters"},
				{"common (S14)", password, "password1234", "password1234", http.StatusBadRequest, "a common password, a pattern or close to your address"},
				{"wrong current", "not my password", newPassword, newPassword, http.StatusUnauthorized, "Your current password is not right."},
				{"the same", password, password, password, http.StatusBadRequest, "Choose a new password"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					p := post(b, tc.current, tc.pw, tc.repeat)
					assert.Equal(t, tc.status, p.StatusCode, p.Body)
					assert.Contains(t, p.Body, tc.says)
					assert.True(t, works(password), "unchanged")
					assert.True(t, signedIn(t, e, other), "nobody signed out")
				})
			}
			p := b.Post(e.URL+"/account/security", url.Values{"action": {"change-password"},
				"current": {password}, "password": {newPassword}, "repeat": {newPassword}})
			assert.Equal(t, http.StatusForbidden, p.StatusCode, "no CSRF token")
			assert.True(t, works(password))
			failed, err := e.Store.ListAudit(ctx, store.AuditFilter{Type: "password.change_failed"})
			require.NoError(t, err)
			assert.Len(t, failed, 1, "only the wrong current password is a failure")

			p = post(b, password, newPassword, newPassword)
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			assert.False(t, works(password))
			assert.True(t, works(newPassword))
			assert.True(t, signedIn(t, e, b), "this browser stays signed in")
			assert.False(t, signedIn(t, e, other), "every other session ends")
			changed, err := e.Store.ListAudit(ctx, store.AuditFilter{Type: "password.changed"})
			require.NoError(t, err)
			require.Len(t, changed, 1)
			assert.Equal(t, e.user.ID, changed[0].ActorID)

			// A stolen session guesses no faster than the login page:
			// past the limit even the right password is refused.
			for i := range provider.PasswordLimit {
				p = post(b, fmt.Sprintf("guess %d", i), "another long passphrase", "another long passphrase")
				require.Equal(t, http.StatusUnauthorized, p.StatusCode, "try %d", i)
			}
			p = post(b, newPassword, "another long passphrase", "another long passphrase")
			assert.Equal(t, http.StatusTooManyRequests, p.StatusCode, p.Body)
			assert.True(t, works(newPassword))
		})
	}
}

// TestR20_MethodChangesNeedTwoFactors (security.md S20, §3.3, §3.5): a user
// with an authenticator app who signed in with the password and a code
// by email cannot add, remove or turn off methods, nor change the
// password, until they sign in again with a true second factor: the
// mailbox alone must not become the factor that passes for a second one.
// Where an admin mailed their recovery codes (R20), a mailed code's
// session may set a method up again.
func TestR20_MethodChangesNeedTwoFactors(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newEmailEnv(t, dialect)
			secret := e.addTOTP(t, e.user.ID)
			require.NoError(t, e.Store.CreateFactor(ctx, store.Factor{ID: "ada-email", UserID: e.user.ID, Kind: store.FactorEmail,
				Name: "Email codes", Confirmed: true, CreatedAt: e.clock.Now()}))
			e.clock.Advance(time.Second)
			factors := func() int {
				fs, err := e.confirmed(t)
				require.NoError(t, err)
				return len(fs)
			}

			// The account page's sign-in, with an email code.
			b := providertest.NewBrowser(t)
			p, _ := b.Follow(b.Get(e.URL+"/account/security"), "")
			form := p.Hidden()
			form.Set("email", e.user.Email)
			form.Set("password", password)
			p = b.Post(e.URL+"/login", form)
			require.True(t, isSecondFactor(p), p.Body)
			sent := sendEmail(b, e, p)
			require.Equal(t, http.StatusOK, sent.StatusCode, sent.Body)
			p, _ = b.Follow(e.submitCode(b, sent, "email", e.mailed(t, 1)), "")
			require.Equal(t, "/account/security", p.Request.URL.Path, p.Body)
			csrf := accountCSRF(t, p)

			fs, err := e.confirmed(t)
			require.NoError(t, err)
			var appID string
			for _, f := range fs {
				if f.Kind == store.FactorTOTP {
					appID = f.ID
				}
			}
			const newPassword = "a new and longer passphrase"
			for _, change := range []url.Values{
				{"action": {"start-totp"}},
				{"action": {"start-email"}},
				{"action": {"remove-factor"}, "factor": {appID}},
				{"action": {"disable"}},
				{"action": {"regenerate-codes"}},
				{"action": {"change-password"}, "current": {password}, "password": {newPassword}, "repeat": {newPassword}},
			} {
				change.Set("csrf", csrf)
				res := b.Post(e.URL+"/account/security", change)
				assert.Equal(t, http.StatusOK, res.StatusCode, change.Get("action"))
				assert.Contains(t, res.Body, "a code by email, or your company", change.Get("action"))
				assert.NotContains(t, res.Body, "otpauth://", change.Get("action"))
			}
			assert.Equal(t, 2, factors(), "nothing changed")
			_, err = e.Accounts.Authenticate(ctx, store.PopulationAgent, e.user.Email, password)
			assert.NoError(t, err, "the password is unchanged")

			// Signing in again asks for the app, and offers no email code.
			p, _ = b.Follow(b.Post(e.URL+"/account/security", url.Values{"csrf": {csrf}, "action": {"reauth"}}), "")
			form = p.Hidden()
			form.Set("email", e.user.Email)
			form.Set("password", password)
			p = b.Post(e.URL+"/login", form)
			require.True(t, isSecondFactor(p), p.Body)
			assert.NotContains(t, p.Body, "Email me a code")
			p, _ = b.Follow(e.submitCode(b, p, "totp", e.code(t, secret)), "")
			require.Equal(t, "/account/security", p.Request.URL.Path, p.Body)
			res := b.Post(e.URL+"/account/security", url.Values{"csrf": {accountCSRF(t, p)}, "action": {"start-totp"}})
			assert.Contains(t, res.Body, "otpauth://", "with two factors the setup goes on")

			// A contact whose codes an admin mailed (R20) signs in with one
			// and sets a new method up.
			cy := e.User(t, "cy@example.com", password, store.PopulationContact)
			e.addTOTP(t, cy.ID)
			codes := e.AddMailedRecoveryCodes(t, cy.ID)
			e.clock.Advance(time.Second)
			c := providertest.NewBrowser(t)
			p, _ = c.Follow(c.Get(e.URL+"/account/security"), "")
			form = p.Hidden()
			form.Set("email", cy.Email)
			form.Set("password", password)
			p = c.Post(e.URL+"/login", form)
			require.True(t, isSecondFactor(p), p.Body)
			p, _ = c.Follow(e.submitCode(c, p, "recovery", codes[0]), "")
			require.Equal(t, "/account/security", p.Request.URL.Path, p.Body)
			res = c.Post(e.URL+"/account/security", url.Values{"csrf": {accountCSRF(t, p)}, "action": {"start-totp"}})
			assert.Contains(t, res.Body, "otpauth://", "R20: the mailed code's session sets a method up again")
		})
	}
}
