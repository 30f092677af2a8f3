package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/mail/mailtest"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestR20_ContactsGetRecoveryCodesByEmail: while every contact must have
// two-step verification, an admin cannot remove a contact's; they mail
// the contact a new set of recovery codes instead (the old set stops
// working, the lock clears), over a real SMTP exchange. A mail that
// cannot be sent changes nothing.
func TestR20_ContactsGetRecoveryCodesByEmail(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			keyText := secrets.GenerateKey()
			key, err := secrets.ParseKey(keyText)
			require.NoError(t, err)
			env := append(migratedDB(t, dialect), "TWOFOLD_SECRETS_KEY="+keyText)
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			cy := createUser(t, env, s, "cy@example.com", "contact")
			require.NoError(t, s.CreateFactor(ctx, store.Factor{ID: "cy-app", UserID: cy.ID, Kind: store.FactorTOTP,
				Name: "phone", SecretEnc: []byte("sealed"), Confirmed: true, CreatedAt: time.Now()}))
			require.NoError(t, s.ReplaceRecoveryCodes(ctx, cy.ID, [][]byte{[]byte("old")}, false, time.Now()))
			_, err = s.Attempt(ctx, provider.FactorLockKey(cy), store.Limit{Max: 1, Lock: time.Hour}, time.Now())
			require.NoError(t, err)

			r := twofold(t, env, "", "policy", "mfa", "--population", "contact", "--require")
			require.Equal(t, 0, r.code, r.stderr)
			r = twofold(t, env, "", "users", "reset-mfa", "cy@example.com")
			assert.Equal(t, exitFailed, r.code, r.stderr)
			assert.Contains(t, r.stderr, "send-recovery-codes")
			fs, err := s.ListFactors(ctx, cy.ID)
			require.NoError(t, err)
			assert.Len(t, fs, 1, "the contact keeps their method")

			r = twofold(t, env, "", "users", "send-recovery-codes", "cy@example.com")
			assert.Equal(t, exitUsage, r.code, "no mail server: %s", r.stderr)
			assert.Contains(t, r.stderr, "email.smtp_addr")

			smtp := mailtest.Start(t, mailtest.Options{})
			mailEnv := append(env, "TWOFOLD_EMAIL_SMTP_ADDR="+smtp.Addr, "TWOFOLD_EMAIL_FROM=no-reply@example.com", "TWOFOLD_EMAIL_TLS=none")
			smtp.Reject(554)
			r = twofold(t, mailEnv, "", "users", "send-recovery-codes", "cy@example.com")
			assert.Equal(t, exitFailed, r.code, r.stderr)
			n, err := s.CountRecoveryCodes(ctx, cy.ID)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "a refused mail changes nothing")

			r = twofold(t, mailEnv, "", "users", "send-recovery-codes", "cy@example.com")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "sent 15 new recovery codes to cy@example.com")
			msgs := smtp.Wait(t, 1)
			assert.Equal(t, []string{"cy@example.com"}, msgs[0].To)
			codes := regexp.MustCompile(`(?m)^\s+([0-9a-z]{4}(?:-[0-9a-z]{4}){5})$`).FindAllStringSubmatch(msgs[0].Body, -1)
			require.Len(t, codes, mfa.RecoveryCodeCount, msgs[0].Body)
			hash, _ := mfa.NewRecoveryHasher(key).Hash(codes[0][1])
			mailed, err := s.UseRecoveryCode(ctx, cy.ID, hash, time.Now())
			require.NoError(t, err, "a mailed code works")
			assert.True(t, mailed, "and is marked mailed")
			_, err = s.UseRecoveryCode(ctx, cy.ID, []byte("old"), time.Now())
			assert.ErrorIs(t, err, store.ErrNotFound, "the old set is void")
			th, err := s.Attempt(ctx, provider.FactorLockKey(cy), store.Limit{Max: 1, Lock: time.Hour}, time.Now())
			require.NoError(t, err)
			assert.True(t, th.Allowed, "the lock is cleared")
			events, err := s.ListAudit(ctx, store.AuditFilter{UserID: cy.ID, Limit: 1})
			require.NoError(t, err)
			assert.Equal(t, "recovery_codes.sent", events[0].Type)

			// Agents, or contacts once the policy is off, can be reset.
			r = twofold(t, env, "", "policy", "mfa", "--population", "contact", "--off")
			require.Equal(t, 0, r.code, r.stderr)
			r = twofold(t, env, "", "users", "reset-mfa", "cy@example.com")
			require.Equal(t, 0, r.code, r.stderr)
			r = twofold(t, mailEnv, "", "users", "send-recovery-codes", "cy@example.com")
			assert.Equal(t, exitFailed, r.code, "nothing to recover: %s", r.stderr)
			assert.Len(t, smtp.Messages(), 1)
		})
	}
}

// TestResetsNotifyTheUser: with a mail server, `users reset-mfa` and
// `users reset-password` mail the user a security notice before the
// command returns, as the console does (security.md §3.8).
func TestResetsNotifyTheUser(t *testing.T) {
	ctx := context.Background()
	env := append(migratedDB(t, "sqlite"), "TWOFOLD_SECRETS_KEY="+secrets.GenerateKey())
	s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
	ada := createUser(t, env, s, "ada@example.com", "agent")
	require.NoError(t, s.CreateFactor(ctx, store.Factor{ID: "ada-app", UserID: ada.ID, Kind: store.FactorTOTP,
		Name: "phone", SecretEnc: []byte("sealed"), Confirmed: true, CreatedAt: time.Now()}))
	smtp := mailtest.Start(t, mailtest.Options{})
	env = append(env, "TWOFOLD_EMAIL_SMTP_ADDR="+smtp.Addr, "TWOFOLD_EMAIL_FROM=no-reply@example.com", "TWOFOLD_EMAIL_TLS=none")

	r := twofold(t, env, "", "users", "reset-mfa", "ada@example.com")
	require.Equal(t, 0, r.code, r.stderr)
	msgs := smtp.Messages() // sent before the command returned
	require.Len(t, msgs, 1)
	// Again, with nothing left to remove: nothing to tell.
	r = twofold(t, env, "", "users", "reset-mfa", "ada@example.com")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, smtp.Messages(), 1)
	assert.Equal(t, []string{"ada@example.com"}, msgs[0].To)
	assert.Equal(t, "Twofold security notice", msgs[0].Subject)
	assert.Contains(t, msgs[0].Body, "An administrator removed your two-step verification methods.")

	r = twofold(t, env, "", "users", "reset-password", "ada@example.com")
	require.Equal(t, 0, r.code, r.stderr)
	msgs = smtp.Messages()
	require.Len(t, msgs, 2)
	assert.Contains(t, msgs[1].Body, "An administrator reset your password to a one-time password.")
	assert.NotContains(t, msgs[1].Body, strings.TrimSpace(r.stdout[strings.LastIndex(strings.TrimSpace(r.stdout), "\n")+1:]), "the password is not mailed")
}
