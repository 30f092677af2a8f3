package provider_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

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
