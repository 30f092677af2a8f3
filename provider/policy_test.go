package provider_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestR15_R17_R18_PopulationPolicy: a policy requiring a second factor of
// every agent sends an agent without one to the setup, with no way
// round it, while a contact signs in with the password alone (R15). With
// a grace date ahead the agent may skip the setup and gets a password
// sign-in, audited; past the date, or when the client itself requires
// two factors, there is no skipping (R17). An agent with a factor cannot
// turn it off (R18).
func TestR15_R17_R18_PopulationPolicy(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			policy := func(e *mfaEnv, grace *time.Time) {
				t.Helper()
				// Set before the first sign-in: the provider reads
				// policies then and keeps them for 5 s.
				require.NoError(t, e.Store.SetMFARequirement(ctx, store.PopulationAgent, true, grace, time.Now()))
			}
			skip := func(e *mfaEnv, b *providertest.Browser, page providertest.Page) providertest.Page {
				form := page.Hidden()
				form.Set("action", "skip")
				return b.Post(e.URL+"/login/enrol", form)
			}

			t.Run("required, no grace", func(t *testing.T) {
				e := newMFAEnv(t, dialect)
				e.User(t, "bo@example.com", password, store.PopulationContact)
				policy(e, nil)
				b := providertest.NewBrowser(t)
				authURL, _ := e.authURL()
				page := e.toSecondStep(t, b, authURL, "ada@example.com")
				require.Contains(t, page.Request.URL.Path, "/login/enrol", "R15: an agent without a factor sets one up")
				assert.NotContains(t, page.Body, "Skip for now")
				res := skip(e, b, page)
				assert.Equal(t, http.StatusForbidden, res.StatusCode)
				assert.Contains(t, res.Body, "required now")
				assert.Zero(t, sessionCount(t, e, b), "no session")

				_, idt, _ := e.rp.login(t, providertest.NewBrowser(t), "bo@example.com")
				assert.Equal(t, []string{"pwd"}, claimsOf(t, idt).Amr, "a contact is not concerned")
			})

			t.Run("grace ahead: skipped", func(t *testing.T) {
				e := newMFAEnv(t, dialect)
				grace := e.clock.Now().Add(time.Hour)
				policy(e, &grace)
				b := providertest.NewBrowser(t)
				authURL, verifier := e.authURL()
				page := e.toSecondStep(t, b, authURL, "ada@example.com")
				require.Contains(t, page.Request.URL.Path, "/login/enrol", "R17: the setup is offered")
				assert.Contains(t, page.Body, "Skip for now")
				assert.Contains(t, page.Body, grace.UTC().Format("2 January 2006, 15:04"))
				_, cb := b.Follow(skip(e, b, page), redirectURI)
				require.NotEmpty(t, cb, "signed in after skipping")
				tok, idt := e.rp.exchange(t, mustQuery(t, cb).Get("code"), verifier)
				assert.Equal(t, []string{"pwd"}, claimsOf(t, idt).Amr, "honest: a password sign-in")
				refresh := func(rt string) (int, string) {
					return tokenRequest(t, e.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}},
						e.rp.conf.ClientID, e.rp.conf.ClientSecret)
				}
				status, body := refresh(tok.RefreshToken)
				require.Equal(t, http.StatusOK, status, "refreshed within the grace period: %s", body)
				var next struct {
					RefreshToken string `json:"refresh_token"`
				}
				require.NoError(t, json.Unmarshal([]byte(body), &next))
				// Past the grace date the password-only grant ends.
				e.clock.Advance(2 * time.Hour)
				status, body = refresh(next.RefreshToken)
				assert.Equal(t, http.StatusBadRequest, status)
				assert.Contains(t, body, "invalid_grant")
				events, err := e.Store.ListAudit(ctx, store.AuditFilter{UserID: e.user.ID})
				require.NoError(t, err)
				types := []string{}
				for _, ev := range events {
					types = append(types, ev.Type)
				}
				assert.Contains(t, types, "mfa.setup_deferred")
			})

			t.Run("grace ahead, a client that requires two factors", func(t *testing.T) {
				e := newMFAEnv(t, dialect)
				grace := e.clock.Now().Add(time.Hour)
				policy(e, &grace)
				strict := newRP(t, e.Env, clients.Spec{FirstParty: true, RequireMFA: true})
				b := providertest.NewBrowser(t)
				page := e.toSecondStep(t, b, strict.conf.AuthCodeURL("st-strict-1234", noPKCE()), "ada@example.com")
				require.Contains(t, page.Request.URL.Path, "/login/enrol")
				assert.NotContains(t, page.Body, "Skip for now", "the client's requirement is not deferred")
				assert.Equal(t, http.StatusForbidden, skip(e, b, page).StatusCode)
			})

			t.Run("grace over", func(t *testing.T) {
				e := newMFAEnv(t, dialect)
				grace := e.clock.Now().Add(-time.Minute)
				policy(e, &grace)
				b := providertest.NewBrowser(t)
				authURL, _ := e.authURL()
				page := e.toSecondStep(t, b, authURL, "ada@example.com")
				require.Contains(t, page.Request.URL.Path, "/login/enrol")
				assert.NotContains(t, page.Body, "Skip for now")
				assert.Equal(t, http.StatusForbidden, skip(e, b, page).StatusCode)
			})

			t.Run("no turning it off", func(t *testing.T) {
				e := newMFAEnv(t, dialect)
				secret := e.addTOTP(t, e.user.ID)
				e.addCodes(t, e.user.ID)
				policy(e, nil)
				b := providertest.NewBrowser(t)
				p := e.signInAccount(t, b, secret)
				assert.NotContains(t, p.Body, "Turn off two-step verification", "R18: required by the policy")
				res := b.Post(e.URL+"/account/security", map[string][]string{"csrf": {accountCSRF(t, p)}, "action": {"disable"}})
				assert.Equal(t, http.StatusForbidden, res.StatusCode)
			})
		})
	}
}

// TestR10_AllowedMethods: with security keys the only kind agents may set
// up, their setup pages (at sign-in and on the account page) offer no
// authenticator app and refuse one posted anyway; a contact is offered
// both; an agent's app set up before still signs them in. Where the
// issuer cannot serve WebAuthn (an IP address), no key is offered.
func TestR10_AllowedMethods(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			plain := newMFAEnv(t, dialect) // http://127.0.0.1:PORT
			require.NoError(t, plain.Store.SetUserMFARequired(ctx, plain.user.ID, true, time.Now()))
			authURL, _ := plain.authURL()
			page := plain.toSecondStep(t, providertest.NewBrowser(t), authURL, "ada@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol", page.Body)
			assert.Contains(t, page.Body, `value="start-totp"`)
			assert.NotContains(t, page.Body, `value="start-webauthn"`, "no WebAuthn for an IP address")
			// Keys the only kind allowed there: nothing can be set up,
			// and the page says so.
			require.NoError(t, plain.Store.SetMFAMethods(ctx, store.PopulationAgent, store.Strings{"webauthn"}, time.Now()))
			plain.Provider.ExpirePolicies()
			authURL, _ = plain.authURL()
			page = plain.toSecondStep(t, providertest.NewBrowser(t), authURL, "ada@example.com")
			assert.NotContains(t, page.Body, `value="start-totp"`)
			assert.NotContains(t, page.Body, `value="start-webauthn"`)
			assert.Contains(t, page.Body, "None of the methods your organisation allows can be set up here")

			e := newKeyEnv(t, dialect, nil)
			bo := e.User(t, "bo@example.com", password, store.PopulationContact)
			require.NoError(t, e.Store.SetUserMFARequired(ctx, bo.ID, true, time.Now()))
			// Set before the first sign-in: the provider keeps policies 5 s.
			require.NoError(t, e.Store.SetMFARequirement(ctx, store.PopulationAgent, true, nil, time.Now()))
			require.NoError(t, e.Store.SetMFAMethods(ctx, store.PopulationAgent, store.Strings{"webauthn"}, time.Now()))

			b := providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			page = e.toSecondStep(t, b, authURL, "ada@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol", page.Body)
			assert.NotContains(t, page.Body, `value="start-totp"`, "no authenticator app offered")
			assert.Contains(t, page.Body, `value="start-webauthn"`)
			form := page.Hidden()
			form.Set("action", "start-totp")
			res := b.Post(e.URL+"/login/enrol", form)
			assert.Equal(t, http.StatusForbidden, res.StatusCode)
			assert.Contains(t, res.Body, "does not allow this method")
			assert.NotContains(t, res.Body, "otpauth://", "no secret made")
			form.Set("action", "confirm-totp")
			form.Set("code", "123456")
			assert.Equal(t, http.StatusForbidden, b.Post(e.URL+"/login/enrol", form).StatusCode)
			factors, err := e.Store.ListFactors(ctx, e.user.ID)
			require.NoError(t, err)
			assert.Empty(t, factors)

			b2 := providertest.NewBrowser(t)
			authURL, _ = e.authURL()
			page = e.toSecondStep(t, b2, authURL, "bo@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol", page.Body)
			assert.Contains(t, page.Body, `value="start-totp"`, "a contact is offered both")
			assert.Contains(t, page.Body, `value="start-webauthn"`)

			// An app set up before the choice still signs its agent in;
			// the account page offers keys only.
			secret := e.addTOTP(t, e.user.ID)
			b3 := providertest.NewBrowser(t)
			acct := e.signInAccount(t, b3, secret)
			assert.NotContains(t, acct.Body, `value="start-totp"`)
			assert.Contains(t, acct.Body, `value="start-webauthn"`)
			res = b3.Post(e.URL+"/account/security", url.Values{"csrf": {accountCSRF(t, acct)}, "action": {"start-totp"}})
			assert.Equal(t, http.StatusForbidden, res.StatusCode)
			assert.Contains(t, res.Body, "does not allow this method")
		})
	}
}

// TestR15_R10_PoliciesFailClosed: while the policies cannot be read,
// every population requires a second factor, with the methods last read.
// The table is renamed away under the running provider: its other
// queries work, the policies' read fails.
func TestR15_R10_PoliciesFailClosed(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newKeyEnv(t, dialect, nil)
			require.NoError(t, e.Store.SetMFAMethods(ctx, store.PopulationAgent, store.Strings{"webauthn"}, time.Now()))
			_, idt, _ := e.rp.login(t, providertest.NewBrowser(t), "ada@example.com")
			assert.Equal(t, []string{"pwd"}, claimsOf(t, idt).Amr, "optional: a password sign-in")

			db := sqltest.OpenURL(t, e.DBURL, false)
			_, err := db.DB().ExecContext(ctx, `ALTER TABLE mfa_policies RENAME TO mfa_policies_gone`)
			require.NoError(t, err)
			t.Cleanup(func() { _, _ = db.DB().ExecContext(ctx, `ALTER TABLE mfa_policies_gone RENAME TO mfa_policies`) })
			e.Provider.ExpirePolicies()

			b := providertest.NewBrowser(t)
			authURL, _ := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			require.Contains(t, page.Request.URL.Path, "/login/enrol", "required while the policies cannot be read")
			assert.NotContains(t, page.Body, `value="start-totp"`, "the methods last read still hold")
			assert.Contains(t, page.Body, `value="start-webauthn"`)
			assert.NotContains(t, page.Body, "Skip for now")
		})
	}
}
