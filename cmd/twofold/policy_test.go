package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestR15_R16_PolicyCommands: `policy mfa --require` records the
// population's policy and signs out that population's users without a
// second factor (R16), not again while it stays on; `--off`
// and `show` round-trip; bad flags are usage errors that change nothing.
func TestR15_R16_PolicyCommands(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			env := migratedDB(t, dialect)
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			user := func(email, pop string) store.User { return createUser(t, env, s, email, pop) }
			now := time.Now().UTC()
			signIn := func(u store.User, n string) {
				t.Helper()
				require.NoError(t, s.CreateSession(ctx, store.Session{ID: u.ID + n, UserID: u.ID, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
			}
			signedIn := func(u store.User, n string) bool {
				_, err := s.GetSession(ctx, u.ID+n)
				return err == nil
			}
			none, has, contact := user("none@example.com", "agent"), user("has@example.com", "agent"), user("contact@example.com", "contact")
			require.NoError(t, s.CreateFactor(ctx, store.Factor{ID: "f1", UserID: has.ID, Kind: store.FactorTOTP, Confirmed: true, CreatedAt: now}))
			for _, u := range []store.User{none, has, contact} {
				signIn(u, "-1")
			}
			show := func() []policyJSON { return showPolicies(t, env) }
			before := show()
			require.Len(t, before, 2)
			assert.False(t, before[0].RequireMFA || before[1].RequireMFA, "optional by default (R14)")

			for _, args := range [][]string{
				{"--require"},
				{"--population", "robot", "--require"},
				{"--population", "agent"},
				{"--population", "agent", "--require", "--off"},
				{"--population", "agent", "--off", "--grace-until", "2030-01-01"},
				{"--population", "agent", "--require", "--grace-until", "next week"},
				{"--population", "agent", "--require", "--grace-until", "2020-01-01"},
			} {
				r := twofold(t, env, "", append([]string{"policy", "mfa"}, args...)...)
				assert.Equal(t, exitUsage, r.code, "%v: %s", args, r.stderr)
			}
			assert.Equal(t, before, show(), "nothing changed")

			r := twofold(t, env, "", "policy", "mfa", "--population", "agent", "--require", "--grace-until", "2030-01-01")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "now required of every agent; the setup may be put off until 2030-01-01T00:00:00Z; 1 session(s) of agents without a second factor ended")
			assert.False(t, signedIn(none, "-1"), "R16: an agent without a factor is signed out")
			assert.True(t, signedIn(has, "-1"), "an agent with a factor stays")
			assert.True(t, signedIn(contact, "-1"), "a contact stays")
			got := show()
			assert.True(t, got[0].RequireMFA)
			require.NotNil(t, got[0].GraceUntil)
			assert.Equal(t, "2030-01-01T00:00:00Z", got[0].GraceUntil.Format(time.RFC3339))
			assert.False(t, got[1].RequireMFA)
			events, err := s.ListAudit(ctx, store.AuditFilter{Limit: 1})
			require.NoError(t, err)
			assert.Equal(t, "policy.population_mfa", events[0].Type)
			assert.JSONEq(t, `{"population":"agent","required":true,"grace_until":"2030-01-01T00:00:00Z","signed_out_sessions":1,"revoked_token_rows":0}`, events[0].Detail)

			// Already on (now without a grace date): nobody is signed out again.
			signIn(none, "-2")
			r = twofold(t, env, "", "policy", "mfa", "--population", "agent", "--require")
			require.Equal(t, 0, r.code, r.stderr)
			assert.NotContains(t, r.stdout, "ended")
			assert.True(t, signedIn(none, "-2"))
			assert.Nil(t, show()[0].GraceUntil, "no grace any more")

			r = twofold(t, env, "", "policy", "mfa", "--population", "agent", "--off")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "no longer required of every agent")
			assert.False(t, show()[0].RequireMFA)

			// Off, then on again: switched on, it signs out again.
			r = twofold(t, env, "", "policy", "mfa", "--population", "agent", "--require")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "1 session(s) of agents without a second factor ended")
			assert.False(t, signedIn(none, "-2"))
		})
	}
}

// showPolicies is policy show's JSON: both populations, agents first.
func showPolicies(t *testing.T, env []string) []policyJSON {
	t.Helper()
	r := twofold(t, env, "", "policy", "show", "--output", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var out []policyJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	require.Len(t, out, 2)
	return out
}

// TestR10_PolicyMethods: admins choose the kinds of second factor a
// population may set up; that requires nothing, and policy mfa keeps the
// choice (as policy methods keeps the requirement).
func TestR10_PolicyMethods(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			env := migratedDB(t, dialect)
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			show := func() []policyJSON { return showPolicies(t, env) }
			before := show()
			assert.Equal(t, []string{"totp", "webauthn", "email"}, before[0].Methods, "every method by default")
			assert.Equal(t, []string{"totp", "webauthn", "email"}, before[1].Methods)

			for _, args := range [][]string{
				{},
				{"--allow", "fax"},
				{"--allow", "totp", "--all"},
				{"--population", "robot", "--all"},
				{"--allow", ""},
			} {
				r := twofold(t, env, "", append([]string{"policy", "methods"}, args...)...)
				assert.Equal(t, exitUsage, r.code, "%v: %s", args, r.stderr)
			}
			assert.Equal(t, before, show(), "nothing changed")

			r := twofold(t, env, "", "policy", "methods", "--population", "agent", "--allow", "webauthn")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "agents may set up: webauthn")
			got := show()
			assert.Equal(t, []string{"webauthn"}, got[0].Methods)
			assert.False(t, got[0].RequireMFA, "allowing a method requires nothing (R10)")
			assert.Equal(t, []string{"totp", "webauthn", "email"}, got[1].Methods, "contacts keep every method")
			events, err := s.ListAudit(ctx, store.AuditFilter{Limit: 1})
			require.NoError(t, err)
			assert.Equal(t, "policy.methods", events[0].Type)

			// policy mfa keeps the methods; policy methods keeps the requirement.
			r = twofold(t, env, "", "policy", "mfa", "--population", "agent", "--require")
			require.Equal(t, 0, r.code, r.stderr)
			got = show()
			assert.True(t, got[0].RequireMFA)
			assert.Equal(t, []string{"webauthn"}, got[0].Methods)
			r = twofold(t, env, "", "policy", "methods", "--allow", "totp,Email")
			require.Equal(t, 0, r.code, r.stderr)
			got = show()
			assert.True(t, got[0].RequireMFA, "still required")
			assert.Equal(t, []string{"totp", "email"}, got[0].Methods)
			r = twofold(t, env, "", "policy", "show")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "METHODS")

			// SMS is off by default (R09): switched on by listing it.
			r = twofold(t, env, "", "policy", "methods", "--population", "contact", "--allow", "totp,sms")
			require.Equal(t, 0, r.code, r.stderr)
			got = show()
			assert.Equal(t, []string{"totp", "sms"}, got[1].Methods)
			r = twofold(t, env, "", "policy", "methods", "--population", "contact", "--all")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, []string{"totp", "webauthn", "email"}, show()[1].Methods, "--all is the default: sms off")
		})
	}
}
