package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// consoleEnv is an mfaEnv (ada, an agent) with an admin who has an
// authenticator app.
type consoleEnv struct {
	*mfaEnv
	admin  store.User
	secret string
}

func newConsoleEnv(t *testing.T, e *mfaEnv) *consoleEnv {
	t.Helper()
	a, err := e.Accounts.CreateUser(context.Background(), accounts.NewUser{Email: "root@example.com", Password: password,
		Population: store.PopulationAgent, Role: store.RoleAdmin})
	require.NoError(t, err)
	return &consoleEnv{mfaEnv: e, admin: a, secret: e.AddTOTP(t, a.ID)}
}

// signIn follows p (a redirect to a sign-in) with the admin's password
// and code, and returns the page the sign-in ends on.
func (c *consoleEnv) signIn(t *testing.T, b *providertest.Browser, p providertest.Page) providertest.Page {
	t.Helper()
	p, _ = b.Follow(p, "")
	require.Contains(t, p.Request.URL.Path, "/login", p.Body)
	form := p.Hidden()
	form.Set("email", c.admin.Email)
	form.Set("password", password)
	p = b.Post(c.URL+"/login", form)
	require.True(t, isSecondFactor(p), p.Body)
	assert.NotContains(t, p.Body, "method=email", "the console asks for a true second factor, not an email code")
	p, _ = b.Follow(c.submitCode(b, p, "totp", c.code(t, c.secret)), "")
	return p
}

// console signs the admin in on a new browser and returns it, on /admin.
func (c *consoleEnv) console(t *testing.T) (*providertest.Browser, providertest.Page) {
	t.Helper()
	b := providertest.NewBrowser(t)
	p := c.signIn(t, b, b.Get(c.URL+"/admin"))
	require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
	require.Equal(t, "/admin", p.Request.URL.Path)
	return b, p
}

func (c *consoleEnv) post(b *providertest.Browser, page providertest.Page, path string, form url.Values) providertest.Page {
	form.Set("csrf", page.Hidden().Get("csrf"))
	return b.Post(c.URL+path, form)
}

func (c *consoleEnv) events(t *testing.T, typ string) []store.AuditEvent {
	t.Helper()
	all, err := c.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 500})
	require.NoError(t, err)
	var out []store.AuditEvent
	for _, e := range all {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// passwordAtConsole opens /admin on b, signs in with email's password
// and returns the answer to the password's POST.
func passwordAtConsole(t *testing.T, e *mfaEnv, b *providertest.Browser, email string) providertest.Page {
	t.Helper()
	p, _ := b.Follow(b.Get(e.URL+"/admin"), "")
	require.Contains(t, p.Request.URL.Path, "/login", p.Body)
	form := p.Hidden()
	form.Set("email", email)
	form.Set("password", password)
	return b.Post(e.URL+"/login", form)
}

// signedIn tells whether b's session still opens the account page.
func signedIn(t *testing.T, e *mfaEnv, b *providertest.Browser) bool {
	t.Helper()
	p := b.Get(e.URL + "/account/security")
	return p.StatusCode == http.StatusOK
}

// TestR04_AdminConsoleAccess: only an admin opens /admin, and only with a
// sign-in that had a true second factor (S20), no older than
// ConsoleAuthAge; a stale form changes nothing; every form needs the
// session's CSRF token.
func TestR04_AdminConsoleAccess(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newConsoleEnv(t, newMFAEnv(t, dialect))

			anon := providertest.NewBrowser(t)
			p := anon.Get(e.URL + "/admin")
			assert.Equal(t, http.StatusSeeOther, p.StatusCode)
			assert.Contains(t, p.Location(), "/login?flow=")
			p = providertest.NewBrowser(t).Post(e.URL+"/admin", url.Values{"action": {"deauthorize"}, "confirm": {"yes"}})
			assert.Equal(t, http.StatusForbidden, p.StatusCode, "a post without a session starts nothing")
			assert.Empty(t, p.Header.Values("Set-Cookie"))

			// An agent, even with two factors, is not an admin.
			agent := providertest.NewBrowser(t)
			secret := e.addTOTP(t, e.user.ID)
			e.signInAccount(t, agent, secret)
			p = agent.Get(e.URL + "/admin")
			assert.Equal(t, http.StatusForbidden, p.StatusCode)
			assert.Contains(t, p.Body, "Administrators only")
			p = agent.Post(e.URL+"/admin", url.Values{"action": {"deauthorize"}, "confirm": {"yes"}})
			assert.Equal(t, http.StatusForbidden, p.StatusCode)
			assert.True(t, signedIn(t, e.mfaEnv, agent), "refused: nobody signed out")
			// Signing in at /admin: anyone but an admin stops after the
			// password, with no session and no setup asked.
			bob := e.User(t, "bob@example.com", password, store.PopulationAgent)
			bb0 := providertest.NewBrowser(t)
			p = passwordAtConsole(t, e.mfaEnv, bb0, bob.Email)
			assert.Equal(t, http.StatusForbidden, p.StatusCode)
			assert.Contains(t, p.Body, "Administrators only")
			assert.False(t, signedIn(t, e.mfaEnv, bb0))

			// An admin signed in with the password alone (through the
			// account page, having no factor) is sent to set one up.
			bare, err := e.Accounts.CreateUser(ctx, accounts.NewUser{Email: "bare@example.com", Password: password,
				Population: store.PopulationAgent, Role: store.RoleAdmin})
			require.NoError(t, err)
			bb := providertest.NewBrowser(t)
			p = accountPage(t, e.mfaEnv, bb, bare.Email)
			require.Equal(t, "/account/security", p.Request.URL.Path)
			p = bb.Get(e.URL + "/admin")
			assert.Equal(t, http.StatusForbidden, p.StatusCode)
			assert.Contains(t, p.Body, "Set up two-step verification first")
			// Signing in for the console itself asks for the setup.
			bb2 := providertest.NewBrowser(t)
			p, _ = bb2.Follow(passwordAtConsole(t, e.mfaEnv, bb2, bare.Email), "")
			assert.Contains(t, p.Request.URL.Path, "/login/enrol", "an admin without a factor sets one up")

			// The admin with an authenticator app gets in, and comes back
			// to the console after the sign-in.
			b, page := e.console(t)
			assert.Contains(t, page.Body, "Admin console")
			assert.Contains(t, page.Body, "root@example.com")

			// No CSRF token: refused, nothing changed.
			p = b.Post(e.URL+"/admin", url.Values{"action": {"require-mfa"}, "population": {"agent"}})
			assert.Equal(t, http.StatusForbidden, p.StatusCode)
			p = b.Post(e.URL+"/admin", url.Values{"action": {"require-mfa"}, "population": {"agent"}, "csrf": {"forged"}})
			assert.Equal(t, http.StatusForbidden, p.StatusCode)
			ps, err := e.Store.ListMFAPolicies(ctx)
			require.NoError(t, err)
			assert.False(t, mfa.NewPolicies(ps)[store.PopulationAgent].Required)

			// Past ConsoleAuthAge (kept from idling out): a form is
			// refused and a page asks for a new sign-in of the same admin.
			for range 3 {
				e.clock.Advance(provider.ConsoleAuthAge / 3)
				require.True(t, signedIn(t, e.mfaEnv, b))
			}
			e.clock.Advance(time.Minute)
			p = e.post(b, page, "/admin", url.Values{"action": {"require-mfa"}, "population": {"agent"}})
			assert.Equal(t, http.StatusForbidden, p.StatusCode)
			assert.Contains(t, p.Body, "Sign in again")
			ps, _ = e.Store.ListMFAPolicies(ctx)
			assert.False(t, mfa.NewPolicies(ps)[store.PopulationAgent].Required, "a stale form changes nothing")
			p = b.Get(e.URL + "/admin")
			require.Equal(t, http.StatusSeeOther, p.StatusCode)
			login, _ := b.Follow(p, "")
			assert.Contains(t, login.Body, `value="root@example.com"`, "the re-authentication is the admin's")
			p = e.signIn(t, b, p)
			assert.Equal(t, "/admin", p.Request.URL.Path)
			assert.Equal(t, http.StatusOK, p.StatusCode)
			// The new sign-in is a new session: the old page's token is
			// no longer good.
			p = e.post(b, page, "/admin", url.Values{"action": {"require-mfa"}, "population": {"agent"}})
			assert.Equal(t, http.StatusForbidden, p.StatusCode)
			assert.Contains(t, p.Body, "This form has expired")
		})
	}
}

// TestR15_R16_R21_ConsoleEnforcesAndDeauthorizes: one click requires
// 2FA of a population (its users without a factor are signed out, the
// server applies it at once), the methods are chosen per population
// (R10), and "Deauthorize" signs everyone but the admin out with seed
// 004's message. Bad input changes nothing; each change is audited with
// the admin as actor.
func TestR15_R16_R21_ConsoleEnforcesAndDeauthorizes(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newConsoleEnv(t, newMFAEnv(t, dialect))
			ada := providertest.NewBrowser(t)
			accountPage(t, e.mfaEnv, ada, "ada@example.com")
			require.True(t, signedIn(t, e.mfaEnv, ada))
			b, page := e.console(t)
			assert.Contains(t, page.Body, "Agents: optional")
			assert.Contains(t, page.Body, "<code>"+e.rp.conf.ClientID+"</code>", "the clients are listed")

			p := e.post(b, page, "/admin", url.Values{"action": {"require-mfa"}, "population": {"agent"}, "grace_until": {"2001-01-01"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Contains(t, p.Body, "future date")
			p = e.post(b, page, "/admin", url.Values{"action": {"require-mfa"}, "population": {"admins"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			ps, err := e.Store.ListMFAPolicies(ctx)
			require.NoError(t, err)
			assert.False(t, mfa.NewPolicies(ps)[store.PopulationAgent].Required, "bad input changes nothing")
			assert.True(t, signedIn(t, e.mfaEnv, ada))

			p = e.post(b, page, "/admin", url.Values{"action": {"require-mfa"}, "population": {"agent"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			p, _ = b.Follow(p, "")
			assert.Contains(t, p.Body, "The policy was saved")
			assert.Contains(t, p.Body, "Agents: required")
			ps, _ = e.Store.ListMFAPolicies(ctx)
			assert.True(t, mfa.NewPolicies(ps)[store.PopulationAgent].Required)
			assert.False(t, signedIn(t, e.mfaEnv, ada), "R16: an agent without a factor is signed out")
			assert.True(t, signedIn(t, e.mfaEnv, b), "the admin has a factor and stays")
			ev := e.events(t, "policy.population_mfa")
			require.Len(t, ev, 1)
			assert.Equal(t, e.admin.ID, ev[0].ActorID)
			assert.NotEmpty(t, ev[0].IP)
			// The grace date changes while it stays required, with no
			// second sign-out.
			p = e.post(b, page, "/admin", url.Values{"action": {"require-mfa"}, "population": {"agent"}, "grace_until": {"2099-01-01"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			ps, _ = e.Store.ListMFAPolicies(ctx)
			if g := mfa.NewPolicies(ps)[store.PopulationAgent].GraceUntil; assert.NotNil(t, g) {
				assert.Equal(t, 2099, g.Year())
			}
			assert.Len(t, e.events(t, "policy.population_mfa"), 2)
			p = e.post(b, page, "/admin", url.Values{"action": {"require-mfa"}, "population": {"agent"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			ps, _ = e.Store.ListMFAPolicies(ctx)
			assert.Nil(t, mfa.NewPolicies(ps)[store.PopulationAgent].GraceUntil, "an empty date ends the grace period")
			// This server applies it at once: ada's next sign-in sets a
			// factor up.
			p = accountPage(t, e.mfaEnv, providertest.NewBrowser(t), "ada@example.com")
			assert.Contains(t, p.Request.URL.Path, "/login/enrol")

			// Methods: none is refused; a choice is stored per population.
			p = e.post(b, page, "/admin", url.Values{"action": {"methods"}, "population": {"contact"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			p = e.post(b, page, "/admin", url.Values{"action": {"methods"}, "population": {"contact"}, "method": {"totp", "sms"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			ps, _ = e.Store.ListMFAPolicies(ctx)
			assert.Equal(t, store.Strings{"totp", "sms"}, mfa.NewPolicies(ps)[store.PopulationContact].Methods)
			assert.Empty(t, mfa.NewPolicies(ps)[store.PopulationAgent].Methods, "agents keep the defaults")

			// Stop requiring it.
			p = e.post(b, page, "/admin", url.Values{"action": {"stop-mfa"}, "population": {"agent"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			ps, _ = e.Store.ListMFAPolicies(ctx)
			assert.False(t, mfa.NewPolicies(ps)[store.PopulationAgent].Required)

			// Deauthorize: unconfirmed does nothing; confirmed signs out
			// all but the admin (R21).
			ada = providertest.NewBrowser(t)
			accountPage(t, e.mfaEnv, ada, "ada@example.com")
			require.True(t, signedIn(t, e.mfaEnv, ada))
			p = e.post(b, page, "/admin", url.Values{"action": {"deauthorize"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.True(t, signedIn(t, e.mfaEnv, ada))
			p = e.post(b, page, "/admin", url.Values{"action": {"deauthorize"}, "confirm": {"yes"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			p, _ = b.Follow(p, "")
			assert.Contains(t, p.Body, "Users have been successfully deauthorized")
			assert.False(t, signedIn(t, e.mfaEnv, ada))
			assert.True(t, signedIn(t, e.mfaEnv, b), "except the admin")
			ev = e.events(t, "users.deauthorized")
			require.Len(t, ev, 1)
			assert.Equal(t, e.admin.ID, ev[0].ActorID)
			assert.Contains(t, ev[0].Detail, e.admin.ID)
			// The overview lists the events.
			assert.Contains(t, p.Body, "users.deauthorized")
		})
	}
}

var factorRow = regexp.MustCompile(`<li><strong>`)

// TestR19_R20_ConsoleUser: an admin requires 2FA of one user (R15),
// removes a lost phone's factors (R19) but not a contact's while every
// contact must have 2FA (R20: mailed recovery codes instead), clears
// locks, disables an account; not their own.
func TestR19_R20_ConsoleUser(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			ee := newEmailEnv(t, dialect)
			e := newConsoleEnv(t, ee.mfaEnv)
			// Email codes are not offered to sign in to the console (S12).
			require.NoError(t, e.Store.CreateFactor(ctx, store.Factor{ID: "email-admin", UserID: e.admin.ID, Kind: store.FactorEmail,
				Name: "Email codes", Confirmed: true, CreatedAt: time.Now()}))
			secret := e.addTOTP(t, e.user.ID)
			e.addCodes(t, e.user.ID)
			ada := providertest.NewBrowser(t)
			e.signInAccount(t, ada, secret)
			b, page := e.console(t)

			p, _ := b.Follow(b.Get(e.URL+"/admin?email=ADA@example.com"), "")
			assert.Contains(t, p.Body, `href="/admin/users/`+e.user.ID+`"`)
			userPath := "/admin/users/" + e.user.ID
			p = b.Get(e.URL + userPath)
			require.Equal(t, http.StatusOK, p.StatusCode)
			assert.Len(t, factorRow.FindAllString(p.Body, -1), 1)
			assert.Contains(t, p.Body, "Recovery codes left: <strong>15</strong>")
			assert.Equal(t, http.StatusNotFound, b.Get(e.URL+"/admin/users/nobody").StatusCode)

			p = e.post(b, page, userPath, url.Values{"action": {"require-mfa"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			u, err := e.Store.GetUser(ctx, e.user.ID)
			require.NoError(t, err)
			assert.True(t, u.MFARequired)
			assert.True(t, signedIn(t, e.mfaEnv, ada), "she has a factor: not signed out")

			// Reset: needs the box ticked; then every factor and code go,
			// and her sessions.
			p = e.post(b, page, userPath, url.Values{"action": {"reset-mfa"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			fs, _ := e.Store.ListFactors(ctx, e.user.ID)
			assert.Len(t, fs, 1)
			p = e.post(b, page, userPath, url.Values{"action": {"reset-mfa"}, "confirm": {"yes"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			fs, _ = e.Store.ListFactors(ctx, e.user.ID)
			assert.Empty(t, fs)
			n, _ := e.Store.CountRecoveryCodes(ctx, e.user.ID)
			assert.Zero(t, n)
			assert.False(t, signedIn(t, e.mfaEnv, ada))
			ev := e.events(t, "mfa.reset")
			require.Len(t, ev, 1)
			assert.Equal(t, e.admin.ID, ev[0].ActorID)

			// A contact while every contact must have 2FA: no reset, but
			// recovery codes by email (R20).
			cy := e.User(t, "cy@example.com", password, store.PopulationContact)
			e.addTOTP(t, cy.ID)
			p = e.post(b, page, "/admin", url.Values{"action": {"require-mfa"}, "population": {"contact"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			cyPath := "/admin/users/" + cy.ID
			p = e.post(b, page, cyPath, url.Values{"action": {"reset-mfa"}, "confirm": {"yes"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Contains(t, p.Body, "Send them new recovery codes instead")
			fs, _ = e.Store.ListFactors(ctx, cy.ID)
			assert.Len(t, fs, 1, "refused: nothing removed")
			p = e.post(b, page, cyPath, url.Values{"action": {"send-recovery-codes"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			msgs := mailsAbout(t, ee.smtp, "Your new recovery codes", 1)
			assert.Equal(t, []string{"cy@example.com"}, msgs[0].To)
			assert.Equal(t, "Your new recovery codes", msgs[0].Subject)
			n, _ = e.Store.CountRecoveryCodes(ctx, cy.ID)
			assert.Equal(t, 15, n)
			assert.Equal(t, e.admin.ID, e.events(t, "recovery_codes.sent")[0].ActorID)

			// Unlock clears a locked second step.
			_, err = e.Store.Attempt(ctx, store.FactorCounter(cy.ID), store.Limit{Max: 1, Lock: time.Hour}, e.clock.Now())
			require.NoError(t, err)
			p = e.post(b, page, cyPath, url.Values{"action": {"unlock"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			th, err := e.Store.Attempt(ctx, store.FactorCounter(cy.ID), store.Limit{Max: 1, Lock: time.Hour}, e.clock.Now())
			require.NoError(t, err)
			assert.True(t, th.Allowed, "the counter starts again")

			// Disable and enable.
			p = e.post(b, page, cyPath, url.Values{"action": {"disable"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			u, _ = e.Store.GetUser(ctx, cy.ID)
			assert.True(t, u.Disabled)
			p = e.post(b, page, cyPath, url.Values{"action": {"enable"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			u, _ = e.Store.GetUser(ctx, cy.ID)
			assert.False(t, u.Disabled)

			// Required of a user without a factor: signed out (R16).
			bob := e.User(t, "bob@example.com", password, store.PopulationAgent)
			bobB := providertest.NewBrowser(t)
			accountPage(t, e.mfaEnv, bobB, bob.Email)
			require.True(t, signedIn(t, e.mfaEnv, bobB))
			p = e.post(b, page, "/admin/users/"+bob.ID, url.Values{"action": {"require-mfa"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			p, _ = b.Follow(p, "")
			assert.Contains(t, p.Body, "They had no second factor and were signed out")
			assert.False(t, signedIn(t, e.mfaEnv, bobB))
			// Disabling signs out too; the page names the admin as actor.
			carl := e.User(t, "carl@example.com", password, store.PopulationAgent)
			carlB := providertest.NewBrowser(t)
			accountPage(t, e.mfaEnv, carlB, carl.Email)
			require.True(t, signedIn(t, e.mfaEnv, carlB))
			p = e.post(b, page, "/admin/users/"+carl.ID, url.Values{"action": {"disable"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			assert.False(t, signedIn(t, e.mfaEnv, carlB))
			p, _ = b.Follow(p, "")
			assert.Regexp(t, `<td>user.disabled</td><td><a href="/admin/users/`+carl.ID+`">carl@example.com</a></td><td>root@example.com</td>`, p.Body)

			// An admin whose only factor is email codes cannot sign in
			// to the console: told to set up another (S12).
			mailAdmin, err := e.Accounts.CreateUser(ctx, accounts.NewUser{Email: "mail-admin@example.com", Password: password,
				Population: store.PopulationAgent, Role: store.RoleAdmin})
			require.NoError(t, err)
			require.NoError(t, e.Store.CreateFactor(ctx, store.Factor{ID: "email-mail-admin", UserID: mailAdmin.ID, Kind: store.FactorEmail,
				Name: "Email codes", Confirmed: true, CreatedAt: time.Now()}))
			mb := providertest.NewBrowser(t)
			p = passwordAtConsole(t, e.mfaEnv, mb, mailAdmin.Email)
			assert.Equal(t, http.StatusForbidden, p.StatusCode)
			assert.Contains(t, p.Body, "Set up two-step verification first")
			assert.False(t, signedIn(t, e.mfaEnv, mb))

			// Not on oneself.
			p = e.post(b, page, "/admin/users/"+e.admin.ID, url.Values{"action": {"disable"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.True(t, strings.Contains(p.Body, "account page"))
			u, _ = e.Store.GetUser(ctx, e.admin.ID)
			assert.False(t, u.Disabled)
		})
	}
}

// TestR04_ConsoleClients: an admin registers a client (the secret shown
// once, only its HMAC kept), gives it a new secret (the old one stops
// working at once on this server) and deletes it (its tokens go with it:
// the store suite's ClientDelete); bad registrations are refused with the
// reason and change nothing. Each change is audited with the admin.
func TestR04_ConsoleClients(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newConsoleEnv(t, newMFAEnv(t, dialect))
			b, page := e.console(t)
			before, err := e.Store.ListClients(ctx)
			require.NoError(t, err)

			p := e.post(b, page, "/admin", url.Values{"action": {"create-client"}, "name": {"Help desk"},
				"redirect_uris": {"http://example.com/cb#frag"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Contains(t, p.Body, "The client was not registered: redirect_uris")
			after, _ := e.Store.ListClients(ctx)
			assert.Len(t, after, len(before), "refused: nothing stored")

			p = e.post(b, page, "/admin", url.Values{"action": {"create-client"}, "name": {"Help desk"},
				"redirect_uris": {"https://desk.example.com/callback\nhttps://desk.example.com/cb2"}, "first_party": {"yes"}, "require_mfa": {"yes"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Equal(t, "no-store", p.Header.Get("Cache-Control"))
			m := regexp.MustCompile(`Client id: <code class="secret">([^<]+)</code>`).FindStringSubmatch(p.Body)
			require.Len(t, m, 2, p.Body)
			id := m[1]
			sm := regexp.MustCompile(`Client secret: <code class="secret">([^<]+)</code>`).FindStringSubmatch(p.Body)
			require.Len(t, sm, 2, p.Body)
			c, err := e.Store.GetClient(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, store.Strings{"https://desk.example.com/callback", "https://desk.example.com/cb2"}, c.RedirectURIs)
			assert.True(t, c.FirstParty)
			assert.True(t, c.RequireMFA)
			assert.NoError(t, e.Clients.Hasher.Compare(ctx, c.SecretHash, []byte(sm[1])), "the HMAC of the shown secret is kept")
			assert.Equal(t, e.admin.ID, e.events(t, "client.created")[0].ActorID)
			// The secret works at the token endpoint.
			tokenStatus := func(secret string) int {
				req, _ := http.NewRequest(http.MethodPost, e.URL+"/token", strings.NewReader("grant_type=client_credentials"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(id, secret)
				res, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				res.Body.Close()
				return res.StatusCode
			}
			// Authenticated, then refused the grant it was not registered
			// for (400); a wrong secret is not authenticated (401).
			assert.Equal(t, http.StatusBadRequest, tokenStatus(sm[1]), "the shown secret authenticates")
			assert.Equal(t, http.StatusUnauthorized, tokenStatus("wrong"))

			p = e.post(b, page, "/admin", url.Values{"action": {"rotate-secret"}, "client": {id}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode, "unconfirmed")
			assert.Equal(t, http.StatusBadRequest, tokenStatus(sm[1]), "unconfirmed: the secret still works")
			p = e.post(b, page, "/admin", url.Values{"action": {"rotate-secret"}, "client": {id}, "confirm": {"yes"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Equal(t, e.admin.ID, e.events(t, "client.secret_rotated")[0].ActorID)
			nm := regexp.MustCompile(`Client secret: <code class="secret">([^<]+)</code>`).FindStringSubmatch(p.Body)
			require.Len(t, nm, 2, p.Body)
			assert.NotEqual(t, sm[1], nm[1])
			assert.Equal(t, http.StatusUnauthorized, tokenStatus(sm[1]), "the old secret stops working at once")
			assert.Equal(t, http.StatusBadRequest, tokenStatus(nm[1]))

			p = e.post(b, page, "/admin", url.Values{"action": {"delete-client"}, "client": {id}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode, "unconfirmed")
			_, err = e.Store.GetClient(ctx, id)
			require.NoError(t, err)
			p = e.post(b, page, "/admin", url.Values{"action": {"delete-client"}, "client": {id}, "confirm": {"yes"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			_, err = e.Store.GetClient(ctx, id)
			assert.ErrorIs(t, err, store.ErrNotFound)
			assert.Equal(t, e.admin.ID, e.events(t, "client.deleted")[0].ActorID)
			assert.Equal(t, http.StatusUnauthorized, tokenStatus(nm[1]), "deleted: refused at once on this server")
			assert.Equal(t, http.StatusNotFound, e.post(b, page, "/admin", url.Values{"action": {"rotate-secret"}, "client": {id}, "confirm": {"yes"}}).StatusCode)
		})
	}
}

var eventRow = regexp.MustCompile(`<tr><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td><td>([^<]+)</td>`)

func eventTypes(body string) []string {
	var out []string
	for _, m := range eventRow.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestR24_ConsoleAuditLog: admins read the whole audit log, a page of 50
// at a time, narrowed to a type, a prefix or a user.
func TestR24_ConsoleAuditLog(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newConsoleEnv(t, newMFAEnv(t, dialect))
			old := time.Now().Add(-48 * time.Hour)
			for i := range 60 {
				require.NoError(t, e.Store.AppendAudit(ctx, store.AuditEvent{Time: old.Add(time.Duration(i) * time.Second),
					Type: "test.event", UserID: e.user.ID}))
			}
			require.NoError(t, e.Store.AppendAudit(ctx, store.AuditEvent{Time: old.Add(-time.Hour), Type: "test_other", UserID: e.admin.ID}))
			b, _ := e.console(t)

			p := b.Get(e.URL + "/admin/audit")
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Len(t, eventTypes(p.Body), 50)
			assert.Contains(t, p.Body, `href="/admin/audit?page=2"`)
			assert.NotContains(t, p.Body, ">Newer<")
			p = b.Get(e.URL + "/admin/audit?page=2")
			second := eventTypes(p.Body)
			assert.NotEmpty(t, second)
			assert.Equal(t, "test_other", second[len(second)-1], "oldest last")
			assert.Contains(t, p.Body, `href="/admin/audit?page=1"`)
			assert.NotContains(t, p.Body, ">Older<")

			p = b.Get(e.URL + "/admin/audit?type=test.")
			assert.Len(t, eventTypes(p.Body), 50)
			p = b.Get(e.URL + "/admin/audit?type=test.&page=2")
			assert.Equal(t, []string{"test.event", "test.event", "test.event", "test.event", "test.event",
				"test.event", "test.event", "test.event", "test.event", "test.event"}, eventTypes(p.Body))
			assert.Contains(t, p.Body, `href="/admin/audit?page=1&amp;type=test."`)
			p = b.Get(e.URL + "/admin/audit?type=test_other")
			assert.Equal(t, []string{"test_other"}, eventTypes(p.Body))
			p = b.Get(e.URL + "/admin/audit?user=" + e.admin.ID + "&type=test_other")
			assert.Equal(t, []string{"test_other"}, eventTypes(p.Body))
			assert.Contains(t, p.Body, "Events of")
			p = b.Get(e.URL + "/admin/audit?user=" + e.user.ID + "&type=test_other")
			assert.Empty(t, eventTypes(p.Body))
			p = b.Get(e.URL + "/admin/audit?page=-3")
			assert.Len(t, eventTypes(p.Body), 50, "a bad page number is the first page")

			anon := providertest.NewBrowser(t)
			assert.Equal(t, http.StatusSeeOther, anon.Get(e.URL+"/admin/audit").StatusCode)
		})
	}
}

// TestR09_ConsolePhone: an admin attaches a user's phone (confirmed or
// not), confirms it for them, replaces it (a confirmed one's sessions
// end) and detaches it; a malformed number changes nothing.
func TestR09_ConsolePhone(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newConsoleEnv(t, newMFAEnv(t, dialect))
			ada := providertest.NewBrowser(t)
			accountPage(t, e.mfaEnv, ada, "ada@example.com")
			b, page := e.console(t)
			path := "/admin/users/" + e.user.ID
			phone := func() *store.Factor {
				fs, err := e.Store.ListFactors(ctx, e.user.ID)
				require.NoError(t, err)
				for _, f := range fs {
					if f.Kind == store.FactorSMS {
						return &f
					}
				}
				return nil
			}

			p := e.post(b, page, path, url.Values{"action": {"set-phone"}, "phone": {"07700 900123"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Contains(t, p.Body, "country code")
			assert.Nil(t, phone())

			p = e.post(b, page, path, url.Values{"action": {"set-phone"}, "phone": {"+44 7700 900123"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			f := phone()
			require.NotNil(t, f)
			assert.Equal(t, "+447700900123", f.Phone)
			assert.False(t, f.Confirmed)
			p, _ = b.Follow(p, "")
			assert.Contains(t, p.Body, "not confirmed: their text step asks them to contact you")
			assert.Equal(t, e.admin.ID, e.events(t, "phone.attached")[0].ActorID)

			p = e.post(b, page, path, url.Values{"action": {"confirm-phone"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			assert.True(t, phone().Confirmed)
			assert.True(t, signedIn(t, e.mfaEnv, ada), "confirming signs nobody out")

			p = e.post(b, page, path, url.Values{"action": {"set-phone"}, "phone": {"+447700900999"}, "confirmed": {"yes"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			assert.Equal(t, "+447700900999", phone().Phone)
			assert.True(t, phone().Confirmed)
			assert.False(t, signedIn(t, e.mfaEnv, ada), "a confirmed phone replaced: signed out")

			p = e.post(b, page, path, url.Values{"action": {"detach-phone"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode, "unconfirmed removal")
			assert.NotNil(t, phone())
			p = e.post(b, page, path, url.Values{"action": {"detach-phone"}, "confirm": {"yes"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			assert.Nil(t, phone())
			assert.Len(t, e.events(t, "phone.detached"), 1)
			p = e.post(b, page, path, url.Values{"action": {"confirm-phone"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Contains(t, p.Body, "They have no phone")
		})
	}
}

// TestR04_ConsoleCreatesUsers: an admin adds a user with a one-time
// password shown once, which the user replaces at the first sign-in; bad
// input is refused with the reason and creates nobody.
func TestR04_ConsoleCreatesUsers(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newConsoleEnv(t, newMFAEnv(t, dialect))
			b, page := e.console(t)
			for _, tc := range []struct {
				form url.Values
				want string
			}{
				{url.Values{"email": {"ADA@example.com"}, "population": {"agent"}}, "already has an account"},
				{url.Values{"email": {"not-an-address"}, "population": {"agent"}}, "not an email address"},
				{url.Values{"email": {"dee@example.com"}, "population": {"contact"}, "role": {"admin"}}, "contacts have the role contact"},
				{url.Values{"email": {"dee@example.com"}, "population": {"staff"}}, "choose agents or contacts"},
			} {
				tc.form.Set("action", "create-user")
				p := e.post(b, page, "/admin", tc.form)
				assert.Equal(t, http.StatusBadRequest, p.StatusCode, tc.want)
				assert.Contains(t, p.Body, tc.want)
			}
			users, err := e.Store.ListUsers(ctx, store.UserFilter{})
			require.NoError(t, err)
			assert.Len(t, users, 2, "refused: nobody created")

			p := e.post(b, page, "/admin", url.Values{"action": {"create-user"}, "email": {"dee@example.com"}, "population": {"agent"}, "role": {"supervisor"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Equal(t, "no-store", p.Header.Get("Cache-Control"))
			m := regexp.MustCompile(`One-time password: <code class="secret">([^<]+)</code>`).FindStringSubmatch(p.Body)
			require.Len(t, m, 2, p.Body)
			key, _ := accounts.NormalizeEmail("dee@example.com")
			dee, err := e.Store.GetUserByEmail(ctx, store.PopulationAgent, key)
			require.NoError(t, err)
			assert.Equal(t, store.RoleSupervisor, dee.Role)
			assert.True(t, dee.PasswordMustChange)
			assert.NotContains(t, dee.PasswordHash, m[1])
			assert.Equal(t, e.admin.ID, e.events(t, "user.created")[0].ActorID)

			// The user list comes 100 at a time.
			for i := range 103 {
				email := fmt.Sprintf("contact%03d@example.com", i)
				require.NoError(t, e.Store.CreateUser(ctx, store.User{ID: fmt.Sprintf("c%03d", i), Email: email, EmailKey: email,
					Population: store.PopulationContact, Role: store.RoleContact, PasswordHash: "x", CreatedAt: time.Now(), UpdatedAt: time.Now()}))
			}
			userRow := regexp.MustCompile(`<tr><td><a href="/admin/users/`)
			p = b.Get(e.URL + "/admin?population=contact")
			assert.Len(t, userRow.FindAllString(p.Body, -1), 100)
			require.Contains(t, p.Body, `href="/admin?page=2&amp;population=contact#users"`)
			p = b.Get(e.URL + "/admin?page=2&population=contact")
			assert.Len(t, userRow.FindAllString(p.Body, -1), 3)
			assert.Contains(t, p.Body, "contact102@example.com")
			assert.NotContains(t, p.Body, "More users")

			// The one-time password signs in once, to choose a new one.
			db := providertest.NewBrowser(t)
			login, _ := db.Follow(db.Get(e.URL+"/account/security"), "")
			form := login.Hidden()
			form.Set("email", "dee@example.com")
			form.Set("password", html.UnescapeString(m[1]))
			res := db.Post(e.URL+"/login", form)
			require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
			assert.Contains(t, res.Location(), "/login/password")
		})
	}
}

// TestR04_ConsoleEditsClients: an admin changes a client's registration
// on its page; a bad, stale or tampered form changes nothing; asked to,
// the change revokes every token the client holds.
func TestR04_ConsoleEditsClients(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newConsoleEnv(t, newMFAEnv(t, dialect))
			c, secret, err := e.Clients.Create(ctx, clients.Spec{Name: "Desk", RedirectURIs: []string{"https://desk.example.com/cb"}})
			require.NoError(t, err)
			c, err = e.Store.GetClient(ctx, c.ID) // as stored (PostgreSQL keeps microseconds)
			require.NoError(t, err)
			b, _ := e.console(t)
			here := "/admin/clients/" + c.ID
			page := b.Get(e.URL + here)
			require.Equal(t, http.StatusOK, page.StatusCode, page.Body)
			assert.Contains(t, page.Body, `value="Desk"`)
			assert.Contains(t, page.Body, "https://desk.example.com/cb</textarea>")
			assert.Contains(t, b.Get(e.URL+"/admin").Body, `<a href="/admin/clients/`+c.ID+`">Desk</a>`, "the overview links to it")
			assert.Equal(t, http.StatusNotFound, b.Get(e.URL+"/admin/clients/tf_missing").StatusCode)

			// token asks for a client_credentials token with the secret
			// in the body (client_secret_post).
			token := func() (int, string) {
				res, err := http.PostForm(e.URL+"/token", url.Values{"grant_type": {"client_credentials"},
					"client_id": {c.ID}, "client_secret": {secret}, "scope": {"email"}})
				require.NoError(t, err)
				defer res.Body.Close()
				var body struct {
					AccessToken string `json:"access_token"`
				}
				_ = json.NewDecoder(res.Body).Decode(&body)
				return res.StatusCode, body.AccessToken
			}
			status, _ := token()
			require.Equal(t, http.StatusUnauthorized, status, "registered for client_secret_basic")

			form := func(change func(url.Values)) url.Values {
				f := url.Values{"action": {"update"}, "seen": {page.Hidden().Get("seen")}, "name": {"Help desk"},
					"redirect_uris":             {"https://desk.example.com/cb\nhttps://desk.example.com/cb2"},
					"post_logout_redirect_uris": {"https://desk.example.com/"},
					"grant_type":                {"authorization_code", "refresh_token", "client_credentials"},
					"scope":                     {"openid", "email"}, "require_mfa": {"yes"}, "pkce_optional": {"yes"},
					"id_token_alg": {"ES256"}, "access_token_format": {"jwt"}, "token_endpoint_auth_method": {"client_secret_post"}}
				if change != nil {
					change(f)
				}
				return f
			}
			unchanged := func(t *testing.T) {
				t.Helper()
				got, err := e.Store.GetClient(ctx, c.ID)
				require.NoError(t, err)
				assert.Equal(t, c.Name, got.Name)
				assert.Equal(t, c.RedirectURIs, got.RedirectURIs)
				assert.True(t, c.UpdatedAt.Equal(got.UpdatedAt))
				assert.Empty(t, e.events(t, "client.updated"))
			}
			for _, tc := range []struct {
				name   string
				change func(url.Values)
				status int
				says   string
			}{
				{"bad redirect URI", func(f url.Values) { f.Set("redirect_uris", "http://evil.example.com/cb") }, http.StatusBadRequest, "The client was not changed: redirect_uris"},
				{"no grant type", func(f url.Values) { f.Del("grant_type") }, http.StatusBadRequest, "Choose at least one grant type."},
				{"no scope", func(f url.Values) { f["scope"] = []string{"bogus"} }, http.StatusBadRequest, "Choose at least one scope."},
				{"no name", func(f url.Values) { f.Set("name", " ") }, http.StatusBadRequest, "The client was not changed: name: required"},
				{"bad algorithm", func(f url.Values) { f.Set("id_token_alg", "none") }, http.StatusBadRequest, "The client was not changed"},
				{"to another way of authenticating", func(f url.Values) { f.Set("token_endpoint_auth_method", "none") }, http.StatusBadRequest, "How a client authenticates can only switch"},
				{"stale page", func(f url.Values) { f.Set("seen", c.UpdatedAt.Add(-time.Second).UTC().Format(time.RFC3339Nano)) }, http.StatusConflict, "nothing was saved"},
				{"unreadable version", func(f url.Values) { f.Set("seen", "yesterday") }, http.StatusBadRequest, "This form has expired"},
				{"zero version", func(f url.Values) { f.Set("seen", time.Time{}.Format(time.RFC3339Nano)) }, http.StatusBadRequest, "This form has expired"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					p := e.post(b, page, here, form(tc.change))
					assert.Equal(t, tc.status, p.StatusCode, p.Body)
					assert.Contains(t, p.Body, tc.says)
					unchanged(t)
				})
			}
			p := e.post(b, page, here, form(func(f url.Values) { f.Set("redirect_uris", "http://evil.example.com/cb") }))
			assert.Contains(t, p.Body, "http://evil.example.com/cb</textarea>", "a refused form shows what was typed")
			p = b.Post(e.URL+here, form(nil))
			assert.Equal(t, http.StatusForbidden, p.StatusCode, "no CSRF token")
			unchanged(t)

			p = e.post(b, page, here, form(nil))
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			assert.Equal(t, e.URL+here+"?notice=client-updated", p.Location())
			got, err := e.Store.GetClient(ctx, c.ID)
			require.NoError(t, err)
			assert.Equal(t, "Help desk", got.Name)
			assert.Equal(t, store.Strings{"https://desk.example.com/cb", "https://desk.example.com/cb2"}, got.RedirectURIs)
			assert.Equal(t, store.Strings{"https://desk.example.com/"}, got.PostLogoutRedirectURIs)
			assert.Equal(t, store.Strings{"authorization_code", "refresh_token", "client_credentials"}, got.GrantTypes)
			assert.Equal(t, store.Strings{"openid", "email"}, got.Scopes)
			assert.True(t, got.RequireMFA)
			assert.True(t, got.PKCEOptional)
			assert.False(t, got.FirstParty)
			assert.Equal(t, "ES256", got.IDTokenAlg)
			assert.Equal(t, store.AccessTokenJWT, got.AccessTokenFormat)
			assert.Equal(t, "client_secret_post", got.TokenEndpointAuthMethod)
			assert.Equal(t, c.SecretHash, got.SecretHash, "the secret stays")
			ev := e.events(t, "client.updated")
			require.Len(t, ev, 1)
			assert.Equal(t, e.admin.ID, ev[0].ActorID)
			assert.Equal(t, c.ID, ev[0].ClientID)
			assert.Contains(t, ev[0].Detail, `"client_name":{"from":"Desk","to":"Help desk"}`)
			// This server forgot its cached copy: the new grant and way
			// of authenticating work at once.
			status, at := token()
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, 2, strings.Count(at, "."), "a JWT access token now")

			// The same settings again: nothing is written.
			page = b.Get(e.URL + here)
			p = e.post(b, page, here, form(nil))
			assert.Equal(t, e.URL+here+"?notice=client-unchanged", p.Location())
			assert.Len(t, e.events(t, "client.updated"), 1)

			// Revoke: every token of the client goes, in the same change.
			p = e.post(b, page, here, form(func(f url.Values) { f.Set("revoke_tokens", "yes") }))
			assert.Equal(t, e.URL+here+"?notice=client-revoked", p.Location())
			rev := e.events(t, "client.tokens_revoked")
			require.Len(t, rev, 1)
			assert.Equal(t, e.admin.ID, rev[0].ActorID)
			assert.Contains(t, rev[0].Detail, `"token_rows":1`)
		})
	}
}

func TestConsoleTicked(t *testing.T) {
	all := []string{"a", "b", "c"}
	for _, tc := range []struct {
		current, form, want []string
	}{
		{nil, []string{"c", "a"}, []string{"a", "c"}},
		{[]string{"c", "a"}, []string{"a", "c"}, []string{"c", "a"}},
		{[]string{"c", "a"}, []string{"a", "b", "x"}, []string{"a", "b"}},
		{[]string{"a"}, nil, nil},
		{[]string{"x", "a"}, []string{"x", "a", "a"}, []string{"a"}},
	} {
		assert.Equal(t, tc.want, provider.Ticked(tc.current, all, tc.form), "%v %v", tc.current, tc.form)
	}
}

// TestR04_ConsoleRotatesKeys: an admin makes a new signing key; the one
// before it stays published, and the change is audited.
func TestR04_ConsoleRotatesKeys(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newConsoleEnv(t, newMFAEnv(t, dialect))
			b, page := e.console(t)
			active := func() string {
				k, err := e.Provider.Keys().Active(ctx, provider.RS256)
				require.NoError(t, err)
				return k.KID()
			}
			old := active()
			assert.Contains(t, page.Body, "<code>"+old+"</code>", "the overview lists the keys")
			assert.NotContains(t, page.Body, "PRIVATE")

			for _, form := range []url.Values{
				{"action": {"rotate-key"}, "alg": {"RS256"}},
				{"action": {"rotate-key"}, "alg": {"HS256"}, "confirm": {"yes"}},
			} {
				p := e.post(b, page, "/admin", form)
				assert.Equal(t, http.StatusBadRequest, p.StatusCode, form)
				assert.Equal(t, old, active(), "refused: the key stays")
			}
			assert.Empty(t, e.events(t, "keys.rotated"))

			p := e.post(b, page, "/admin", url.Values{"action": {"rotate-key"}, "alg": {"RS256"}, "confirm": {"yes"}})
			require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
			kid := active()
			assert.NotEqual(t, old, kid)
			jwks := b.Get(e.URL + "/jwks").Body
			assert.Contains(t, jwks, `"kid":"`+kid+`"`)
			assert.Contains(t, jwks, `"kid":"`+old+`"`, "the previous key still verifies what it signed")
			ev := e.events(t, "keys.rotated")
			require.Len(t, ev, 1)
			assert.Equal(t, e.admin.ID, ev[0].ActorID)
			assert.JSONEq(t, `{"alg":"RS256","kid":"`+kid+`"}`, ev[0].Detail)
		})
	}
}

// TestR04_ConsoleResetsPassword: for a user who forgot their password an
// admin makes a one-time password, shown once (never chosen by the
// admin, ASVS 6.4.6); the user is signed out and unlocked, and their
// next sign-in replaces it and still asks their second factor (S22).
func TestR04_ConsoleResetsPassword(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newConsoleEnv(t, newMFAEnv(t, dialect))
			secret := e.addTOTP(t, e.user.ID)
			ada := providertest.NewBrowser(t)
			e.signInAccount(t, ada, secret)
			lock := store.Limit{Max: 1, Lock: time.Hour}
			for range 2 {
				_, err := e.Store.Attempt(ctx, store.PasswordCounter(e.user.EmailKey), lock, time.Now())
				require.NoError(t, err)
			}
			b, page := e.console(t)
			userPath := "/admin/users/" + e.user.ID

			p := e.post(b, page, userPath, url.Values{"action": {"reset-password"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode, "unconfirmed")
			_, err := e.Accounts.Authenticate(ctx, store.PopulationAgent, e.user.Email, password)
			require.NoError(t, err, "unchanged")
			assert.True(t, signedIn(t, e.mfaEnv, ada))

			p = e.post(b, page, userPath, url.Values{"action": {"reset-password"}, "confirm": {"yes"}})
			require.Equal(t, http.StatusOK, p.StatusCode, p.Body)
			assert.Equal(t, "no-store", p.Header.Get("Cache-Control"))
			m := regexp.MustCompile(`One-time password: <code class="secret">([^<]+)</code>`).FindStringSubmatch(p.Body)
			require.Len(t, m, 2, p.Body)
			oneTime := html.UnescapeString(m[1])
			assert.False(t, signedIn(t, e.mfaEnv, ada), "signed out everywhere")
			_, err = e.Accounts.Authenticate(ctx, store.PopulationAgent, e.user.Email, password)
			assert.ErrorIs(t, err, accounts.ErrBadCredentials, "the old password is gone")
			u, err := e.Store.GetUser(ctx, e.user.ID)
			require.NoError(t, err)
			assert.True(t, u.PasswordMustChange)
			th, err := e.Store.Attempt(ctx, store.PasswordCounter(e.user.EmailKey), lock, time.Now())
			require.NoError(t, err)
			assert.True(t, th.Allowed, "the password lock was cleared")
			require.NoError(t, e.Store.ResetThrottle(ctx, store.PasswordCounter(e.user.EmailKey)))
			ev := e.events(t, "password.reset")
			require.Len(t, ev, 1)
			assert.Equal(t, e.admin.ID, ev[0].ActorID)
			assert.Equal(t, e.user.ID, ev[0].UserID)

			// The one-time password leads to the second factor first
			// (S22: it alone cannot choose her password), then to a new
			// password, then to a session.
			login, _ := ada.Follow(ada.Get(e.URL+"/account/security"), "")
			form := login.Hidden()
			form.Set("email", e.user.Email)
			form.Set("password", oneTime)
			res := ada.Post(e.URL+"/login", form)
			require.True(t, isSecondFactor(res), res.Body)
			res = e.submitCode(ada, res, "totp", e.code(t, secret))
			require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
			assert.Contains(t, res.Location(), "/login/password")
			before := len(e.events(t, "login.success"))
			change, _ := ada.Follow(res, "")
			form = change.Hidden()
			form.Set("password", "her own new passphrase")
			form.Set("repeat", "her own new passphrase")
			res = ada.Post(e.URL+"/login/password", form)
			require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
			assert.True(t, signedIn(t, e.mfaEnv, ada), "signed in after both steps and the new password")
			u, err = e.Accounts.Authenticate(ctx, store.PopulationAgent, e.user.Email, "her own new passphrase")
			require.NoError(t, err)
			assert.False(t, u.PasswordMustChange)
			logins := e.events(t, "login.success")
			require.Len(t, logins, before+1, "no session before the new password: one now")
			assert.Equal(t, e.user.ID, logins[0].UserID)
			assert.Contains(t, logins[0].Detail, `"mfa"`, "the session says what happened: two factors")

			// Not on the admin's own account.
			p = e.post(b, page, "/admin/users/"+e.admin.ID, url.Values{"action": {"reset-password"}, "confirm": {"yes"}})
			assert.Equal(t, http.StatusBadRequest, p.StatusCode)
			assert.Len(t, e.events(t, "password.reset"), 1)
		})
	}
}

// recordRoutes lists the patterns a Mount registers.
type recordRoutes []string

func (r *recordRoutes) Handle(pattern string, _ http.Handler)         { *r = append(*r, pattern) }
func (r *recordRoutes) HandleFunc(pattern string, _ http.HandlerFunc) { *r = append(*r, pattern) }

// TestR04_ConsoleRoutesRefuseOthers is security.md §3.8's route × role
// matrix for the admin console: every console route, as mounted (a new
// one fails this test until it is listed here), refuses a visitor with
// no session, an agent who signed in with two factors, and an admin
// whose sign-in is older than ConsoleAuthAge; a GET starts a sign-in
// or shows a refusal, a POST changes nothing.
func TestR04_ConsoleRoutesRefuseOthers(t *testing.T) {
	e := newConsoleEnv(t, newMFAEnv(t, "sqlite"))
	target := e.User(t, "bo@example.com", password, store.PopulationAgent)
	routes := map[string]url.Values{
		"GET /admin":               nil,
		"POST /admin":              {"action": {"deauthorize"}, "confirm": {"yes"}},
		"GET /admin/audit":         nil,
		"GET /admin/users/{id}":    nil,
		"POST /admin/users/{id}":   {"action": {"disable"}},
		"GET /admin/clients/{id}":  nil,
		"POST /admin/clients/{id}": {"action": {"delete"}, "confirm": {"yes"}},
	}
	var mounted recordRoutes
	e.Provider.Mount(&mounted)
	var console []string
	for _, r := range mounted {
		if _, path, _ := strings.Cut(r, " "); strings.HasPrefix(path, "/admin") {
			console = append(console, r)
		}
	}
	assert.ElementsMatch(t, slices.Collect(maps.Keys(routes)), console, "every console route is in this table")
	clientID, _ := e.Client(t, clients.Spec{Name: "Kept", RedirectURIs: []string{redirectURI}})

	agentSecret := e.addTOTP(t, e.user.ID)
	agent := providertest.NewBrowser(t)
	e.signInAccount(t, agent, agentSecret)
	stale, _ := e.console(t)

	for _, caller := range []struct {
		name string
		b    *providertest.Browser
		// get is the status of a GET: a redirect to a sign-in, or 403.
		get int
		// before runs first.
		before func()
	}{
		{"no session", providertest.NewBrowser(t), http.StatusSeeOther, func() {}},
		{"an agent with two factors", agent, http.StatusForbidden, func() {}},
		{"an admin signed in too long ago", stale, http.StatusSeeOther, func() {
			assert.True(t, signedIn(t, e.mfaEnv, agent), "nobody was deauthorized")
			e.clock.Advance(provider.ConsoleAuthAge + time.Minute)
		}},
	} {
		caller.before()
		for route, form := range routes {
			method, path, _ := strings.Cut(route, " ")
			path = strings.NewReplacer("/users/{id}", "/users/"+target.ID, "/clients/{id}", "/clients/"+clientID).Replace(path)
			var p providertest.Page
			if method == http.MethodGet {
				p = caller.b.Get(e.URL + path)
				assert.Equal(t, caller.get, p.StatusCode, "%s: %s", caller.name, route)
				if p.StatusCode == http.StatusSeeOther {
					assert.Contains(t, p.Location(), "/login?flow=", "%s: %s", caller.name, route)
				}
			} else {
				p = caller.b.Post(e.URL+path, form)
				assert.Equal(t, http.StatusForbidden, p.StatusCode, "%s: %s", caller.name, route)
			}
			assert.NotContains(t, p.Body, "bo@example.com", "%s: %s shows no user", caller.name, route)
		}
	}
	// Nothing changed.
	bo, err := e.Store.GetUser(context.Background(), target.ID)
	require.NoError(t, err)
	assert.False(t, bo.Disabled)
	_, err = e.Store.GetClient(context.Background(), clientID)
	assert.NoError(t, err, "the client is still registered")
}
