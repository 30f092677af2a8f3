package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

var forgotLink = regexp.MustCompile(`href="(/password/forgot\?flow=[^"]+)"`)

// forgotPage opens a sign-in on b and follows its "Forgot your
// password?" link.
func forgotPage(t *testing.T, e *emailEnv, b *providertest.Browser) providertest.Page {
	t.Helper()
	authURL, _ := e.authURL()
	login, _ := b.Follow(b.Get(authURL), redirectURI)
	m := forgotLink.FindStringSubmatch(login.Body)
	require.Len(t, m, 2, login.Body)
	p := b.Get(e.URL + strings.ReplaceAll(m[1], "&amp;", "&"))
	require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
	return p
}

func forgotPost(b *providertest.Browser, e *emailEnv, page providertest.Page, form url.Values) providertest.Page {
	for _, k := range []string{"flow", "csrf"} {
		form.Set(k, page.Hidden().Get(k))
	}
	return b.Post(e.URL+"/password/forgot", form)
}

// TestR25_ForgottenPassword: a user who forgot their password gets a code
// by email from the login page and chooses a new one with it; the
// answers do not tell whether an account uses the address (S21); the
// code works once, in its own sign-in, and wrong ones are limited (R25);
// the reset signs the user out and makes no session: the sign-in goes on
// with the new password and the second factor (S22).
func TestR25_ForgottenPassword(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newEmailEnv(t, dialect)
			secret := e.addTOTP(t, e.user.ID)
			signedElsewhere := providertest.NewBrowser(t)
			e.signInAccount(t, signedElsewhere, secret)
			dis := e.User(t, "dis@example.com", password, store.PopulationAgent)
			require.NoError(t, e.Store.SetUserDisabled(ctx, dis.ID, true, time.Now()))
			// An account of an upstream's: its password is the upstream's business.
			hash, err := e.Accounts.Hasher.Hash(password)
			require.NoError(t, err)
			require.NoError(t, e.Store.CreateFederatedUser(ctx, store.User{ID: "fed-user", Email: "fed@example.com", EmailKey: "fed@example.com",
				Population: store.PopulationAgent, Role: store.RoleAgent, PasswordHash: hash, CreatedAt: time.Now(), UpdatedAt: time.Now()}, "corp", "sub-1"))

			b := providertest.NewBrowser(t)
			page := forgotPage(t, e, b)
			// Unknown and disabled addresses get the very answer a real
			// one gets, and no mail.
			var answers []string
			for _, email := range []string{"nobody@example.com", "dis@example.com", "fed@example.com", "ada@example.com"} {
				p := forgotPost(b, e, page, url.Values{"action": {"send"}, "email": {email}})
				require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
				assert.Contains(t, p.Body, "If an account uses that address, we emailed it a 6-digit code.")
				answers = append(answers, strings.ReplaceAll(p.Body, email, "EMAIL"))
			}
			assert.Equal(t, answers[3], answers[0], "unknown: the same page")
			assert.Equal(t, answers[3], answers[1], "disabled: the same page")
			assert.Equal(t, answers[3], answers[2], "federated: the same page")
			msgs := e.smtp.Wait(t, 1)
			time.Sleep(100 * time.Millisecond) // a stray send would have arrived by now
			msgs = e.smtp.Messages()
			require.Len(t, msgs, 1, "only ada's address got mail")
			assert.Equal(t, []string{"ada@example.com"}, msgs[0].To)
			assert.Equal(t, "Your Twofold password reset code", msgs[0].Subject)
			code := mailedCode.FindStringSubmatch(msgs[0].Body)
			require.Len(t, code, 2, msgs[0].Body)

			reset := func(b *providertest.Browser, page providertest.Page, code, pw, repeat string) providertest.Page {
				return forgotPost(b, e, page, url.Values{"action": {"reset"}, "email": {"ada@example.com"},
					"code": {code}, "password": {pw}, "repeat": {repeat}})
			}
			works := func(pw string) bool {
				_, err := e.Accounts.Authenticate(ctx, store.PopulationAgent, "ada@example.com", pw)
				return err == nil
			}
			const newPassword = "a remembered passphrase"
			wrong := "000000"
			if code[1] == wrong {
				wrong = "111111"
			}
			for _, tc := range []struct {
				name, code, pw, repeat, says string
			}{
				{"wrong code", wrong, newPassword, newPassword, "Check the latest email, or ask for a new code."},
				{"new ones differ", code[1], newPassword, newPassword + "!", "The two new passwords are not the same."},
				{"too short", code[1], "short", "short", "at least 12 characters"},
				{"common (S14)", code[1], "qwertyuiop12", "qwertyuiop12", "a common password, a pattern or close to your address"},
			} {
				p := reset(b, page, tc.code, tc.pw, tc.repeat)
				assert.Equal(t, http.StatusBadRequest, p.StatusCode, tc.name)
				assert.Contains(t, p.Body, tc.says, tc.name)
				assert.True(t, works(password), "%s: unchanged", tc.name)
			}
			// The code is bound to the sign-in it was asked in.
			other := providertest.NewBrowser(t)
			otherPage := forgotPage(t, e, other)
			p := reset(other, otherPage, code[1], newPassword, newPassword)
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.True(t, works(password))

			p = reset(b, page, code[1], newPassword, newPassword)
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Contains(t, p.Body, "Your password was changed")
			assert.Contains(t, p.Body, `action="/login"`, "the sign-in goes on")
			assert.True(t, works(newPassword))
			assert.False(t, works(password))
			assert.False(t, signedIn(t, e.mfaEnv, signedElsewhere), "signed out everywhere")
			assert.Equal(t, http.StatusBadRequest, reset(b, page, code[1], "yet another passphrase", "yet another passphrase").StatusCode, "the code works once")
			assert.True(t, works(newPassword))
			done, err := e.Store.ListAudit(ctx, store.AuditFilter{Type: "password.reset_by_email"})
			require.NoError(t, err)
			require.Len(t, done, 1)
			assert.Equal(t, e.user.ID, done[0].UserID)

			// No session yet: the new password, then the second factor.
			form := p.Hidden()
			form.Set("email", "ada@example.com")
			form.Set("password", newPassword)
			p = b.Post(e.URL+"/login", form)
			require.True(t, isSecondFactor(p), p.Body)

			// Wrong codes end the sign-in past FlowFactorLimit.
			c := providertest.NewBrowser(t)
			cp := forgotPage(t, e, c)
			for i := range provider.FlowFactorLimit {
				require.Equal(t, http.StatusBadRequest, reset(c, cp, wrong, newPassword, newPassword).StatusCode, "try %d", i)
			}
			assert.Equal(t, http.StatusTooManyRequests, reset(c, cp, wrong, newPassword, newPassword).StatusCode)
		})
	}
}

// TestForgottenPasswordNeedsMail: without a mail server there is no link
// and no page.
func TestForgottenPasswordNeedsMail(t *testing.T) {
	e := newMFAEnv(t, "sqlite")
	b := providertest.NewBrowser(t)
	authURL, _ := e.authURL()
	login, _ := b.Follow(b.Get(authURL), redirectURI)
	assert.NotContains(t, login.Body, "Forgot your password?")
	assert.Equal(t, http.StatusNotFound, b.Get(e.URL+"/password/forgot?flow="+url.QueryEscape(login.Hidden().Get("flow"))).StatusCode)
}

// TestForgottenPasswordOneAddress: a form that names two addresses (the
// GitLab reset of CVE-2023-7028, security.md §3.10's binders) sends the
// code to the account's own address only, never to one the form adds.
func TestForgottenPasswordOneAddress(t *testing.T) {
	e := newEmailEnv(t, "sqlite")
	for _, emails := range [][]string{
		{"attacker@evil.example", "ada@example.com"},
		{"ada@example.com", "attacker@evil.example"},
	} {
		b := providertest.NewBrowser(t)
		p := forgotPost(b, e, forgotPage(t, e, b), url.Values{"action": {"send"}, "email": emails})
		require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
	}
	e.smtp.Wait(t, 1)
	time.Sleep(100 * time.Millisecond) // a second send would have arrived by now
	msgs := e.smtp.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, []string{"ada@example.com"}, msgs[0].To)
	assert.NotContains(t, msgs[0].Body, "evil.example")
}
