package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestR19_R21_AdminResetAndDeauthorize: reset-mfa removes one user's
// factors (apps, keys, pending ones), recovery codes, factor lock,
// sign-ins and key registrations in progress, sessions and tokens (R19),
// and deauthorize signs every user but one out (R21); nobody else's data
// changes, and a command refused before it starts changes nothing.
func TestR19_R21_AdminResetAndDeauthorize(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			env := migratedDB(t, dialect)
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			user := func(email string) store.User { return createUser(t, env, s, email, "agent") }
			ada, bo := user("ada@example.com"), user("bo@example.com")
			now := time.Now().UTC().Truncate(time.Second)
			signIn := func(u store.User, n string) {
				t.Helper()
				require.NoError(t, s.CreateSession(ctx, store.Session{ID: u.ID + "-s" + n, UserID: u.ID, AMR: store.Strings{"pwd", "otp"},
					ACR: "urn:twofold:acr:mfa", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
				require.NoError(t, s.CreateOAuth2Request(ctx, store.OAuth2Request{Kind: store.KindRefreshToken, Signature: u.ID + "-rt" + n,
					RequestID: u.ID + "-req" + n, ClientID: "app", Subject: u.ID, Active: true, RequestedAt: now,
					ExpiresAt: now.Add(time.Hour), Data: "{}"}))
			}
			inProgress := func(u store.User) {
				t.Helper()
				require.NoError(t, s.CreateLoginFlow(ctx, store.LoginFlow{ID: u.ID + "-flow", State: store.FlowSecondFactor, UserID: u.ID,
					ClientID: "app", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
				require.NoError(t, s.CreateWebAuthnSession(ctx, store.WebAuthnSession{ID: u.ID + "-ceremony", UserID: u.ID, Data: "{}",
					ExpiresAt: now.Add(time.Hour)}))
			}
			pending := func(u store.User) (flow, ceremony bool) {
				t.Helper()
				_, err := s.GetLoginFlow(ctx, u.ID+"-flow")
				flow = err == nil
				var n int
				require.NoError(t, s.DB().GetContext(ctx, &n, s.DB().Rebind(`SELECT count(*) FROM webauthn_sessions WHERE id = ?`), u.ID+"-ceremony"))
				return flow, n == 1
			}
			for _, u := range []store.User{ada, bo} {
				for i, f := range []store.Factor{
					{Kind: store.FactorTOTP, Confirmed: true, SecretEnc: []byte("sealed")},
					{Kind: store.FactorTOTP, SecretEnc: []byte("sealed")}, // an enrolment not finished
					{Kind: store.FactorWebAuthn, Confirmed: true, CredentialID: []byte(u.ID + "-cred"), Credential: "{}"},
				} {
					f.ID, f.UserID, f.Name, f.CreatedAt = u.ID+"-f"+string(rune('0'+i)), u.ID, "device", now
					require.NoError(t, s.CreateFactor(ctx, f))
				}
				inProgress(u)
				require.NoError(t, s.ReplaceRecoveryCodes(ctx, u.ID, [][]byte{[]byte(u.ID + "c1"), []byte(u.ID + "c2")}, false, now))
				signIn(u, "1")
				_, err := s.Attempt(ctx, provider.FactorLockKey(u), store.Limit{Max: 10, Lock: time.Minute}, now)
				require.NoError(t, err)
			}
			state := func(u store.User) (factors, codes, sessions int, token bool, failures int) {
				t.Helper()
				fs, err := s.ListFactors(ctx, u.ID)
				require.NoError(t, err)
				codes, err = s.CountRecoveryCodes(ctx, u.ID)
				require.NoError(t, err)
				for _, n := range []string{"1", "2"} {
					if _, err := s.GetSession(ctx, u.ID+"-s"+n); err == nil {
						sessions++
					}
				}
				_, err = s.GetOAuth2Request(ctx, store.KindRefreshToken, u.ID+"-rt1")
				th, terr := s.Attempt(ctx, provider.FactorLockKey(u), store.Limit{Max: 10, Lock: time.Minute}, now)
				require.NoError(t, terr)
				return len(fs), codes, sessions, err == nil, th.Failures
			}

			r := twofold(t, env, "", "users", "reset-mfa", "ada@example.com")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "removed 3 two-step verification method(s)")
			f, c, n, tok, fails := state(ada)
			assert.Equal(t, []any{0, 0, 0, false, 1}, []any{f, c, n, tok, fails}, "ada: factors, codes, sessions, token, factor counter (counted again from 1)")
			flow, ceremony := pending(ada)
			assert.False(t, flow, "ada's sign-in in progress ends")
			assert.False(t, ceremony, "ada's key registration in progress ends")
			f, c, n, tok, fails = state(bo)
			assert.Equal(t, []any{3, 2, 1, true, 2}, []any{f, c, n, tok, fails}, "bo is untouched")
			flow, ceremony = pending(bo)
			assert.True(t, flow && ceremony, "bo's sign-in and ceremony stay")
			events, err := s.ListAudit(ctx, store.AuditFilter{UserID: ada.ID})
			require.NoError(t, err)
			require.NotEmpty(t, events)
			assert.Equal(t, "mfa.reset", events[0].Type)
			assert.JSONEq(t, `{"removed":3}`, events[0].Detail)

			r = twofold(t, env, "", "users", "reset-mfa", "nobody@example.com")
			assert.Equal(t, exitFailed, r.code)
			assert.Contains(t, r.stderr, "nobody@example.com")

			// Deauthorize everyone but bo.
			signIn(ada, "2")
			signIn(bo, "2")
			inProgress(ada)
			for _, args := range [][]string{{}, {"--all", "--except", "bo@example.com"}, {"--all", "--population", "agent"}} {
				r = twofold(t, env, "", append([]string{"users", "deauthorize"}, args...)...)
				assert.Equal(t, exitUsage, r.code, "%v: %s", args, r.stderr)
			}
			r = twofold(t, env, "", "users", "deauthorize", "--except", "nobody@example.com")
			assert.Equal(t, exitFailed, r.code, "an unknown --except refuses, changing nothing")
			_, _, n, _, _ = state(ada)
			assert.Equal(t, 1, n)

			r = twofold(t, env, "", "users", "deauthorize", "--except", "bo@example.com")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "Users have been successfully deauthorized: 1 session(s) ended, 1 stored code and token row(s) revoked (bo@example.com kept)")
			_, _, n, _, _ = state(ada)
			assert.Equal(t, 0, n, "ada is signed out")
			flow, ceremony = pending(ada)
			assert.False(t, flow || ceremony, "ada's sign-in in progress ends")
			flow, ceremony = pending(bo)
			assert.True(t, flow && ceremony, "bo's stay")
			_, err = s.GetOAuth2Request(ctx, store.KindRefreshToken, ada.ID+"-rt2")
			assert.ErrorIs(t, err, store.ErrNotFound, "ada's refresh token is revoked")
			_, _, n, tok, _ = state(bo)
			assert.Equal(t, 2, n, "bo stays signed in")
			assert.True(t, tok)
			events, err = s.ListAudit(ctx, store.AuditFilter{Limit: 1})
			require.NoError(t, err)
			assert.Equal(t, "users.deauthorized", events[0].Type)
			assert.JSONEq(t, `{"sessions":1,"token_rows":1,"except":"`+bo.ID+`"}`, events[0].Detail)

			r = twofold(t, env, "", "users", "deauthorize", "--all")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "2 session(s) ended, 2 stored code and token row(s) revoked")
			flow, ceremony = pending(bo)
			assert.False(t, flow || ceremony)
			_, _, n, _, _ = state(bo)
			assert.Zero(t, n)
		})
	}
}

// TestUsersResetPassword: reset-password prints a generated one-time
// password once, which signs in (to be replaced) where the old one no
// longer does; the user's sessions end, and the change is audited.
func TestUsersResetPassword(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			env := migratedDB(t, dialect)
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			ada := createUser(t, env, s, "ada@example.com", "agent")
			now := time.Now().UTC()
			require.NoError(t, s.CreateSession(ctx, store.Session{ID: "s1", UserID: ada.ID, AMR: store.Strings{"pwd"},
				ACR: "urn:twofold:acr:pwd", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))

			r := twofold(t, env, "", "users", "reset-password", "nobody@example.com")
			assert.NotEqual(t, 0, r.code)
			r = twofold(t, env, "", "users", "reset-password", "ADA@example.com")
			require.Equal(t, 0, r.code, r.stderr)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			require.Len(t, lines, 2, r.stdout)
			oneTime := lines[1]

			svc := &accounts.Service{Store: s, Hasher: accounts.Hasher{Params: accounts.DefaultArgon2}, MinPasswordLen: 12}
			_, err := svc.Authenticate(ctx, store.PopulationAgent, "ada@example.com", "correct horse battery")
			assert.ErrorIs(t, err, accounts.ErrBadCredentials, "the old password is gone")
			u, err := svc.Authenticate(ctx, store.PopulationAgent, "ada@example.com", oneTime)
			require.NoError(t, err, "the printed one works")
			assert.True(t, u.PasswordMustChange, "to be replaced at the next sign-in")
			_, err = s.GetSession(ctx, "s1")
			assert.ErrorIs(t, err, store.ErrNotFound, "signed out")
			events, err := s.ListAudit(ctx, store.AuditFilter{Type: "password.reset"})
			require.NoError(t, err)
			require.Len(t, events, 1)
			assert.Equal(t, "cli", events[0].ActorID)
		})
	}
}
