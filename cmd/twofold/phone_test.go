package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestR09_AdminPhone: an admin attaches a user's number (confirmed or
// not), confirms it for them, and detaches it; bad input changes
// nothing.
func TestR09_AdminPhone(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			env := migratedDB(t, dialect)
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			ada := createUser(t, env, s, "ada@example.com", "agent")
			phone := func() []store.Factor {
				t.Helper()
				fs, err := s.ListFactors(ctx, ada.ID)
				require.NoError(t, err)
				return fs
			}
			for _, args := range [][]string{
				{},
				{"--set", "07700900123"},
				{"--set", "+447700900123", "--detach"},
				{"--confirmed"},
			} {
				r := twofold(t, env, "", append([]string{"users", "phone", "ada@example.com"}, args...)...)
				assert.Equal(t, exitUsage, r.code, "%v: %s", args, r.stderr)
			}
			assert.Empty(t, phone(), "nothing changed")
			r := twofold(t, env, "", "users", "phone", "ada@example.com", "--confirm")
			assert.Equal(t, exitFailed, r.code, "no phone to confirm")

			r = twofold(t, env, "", "users", "phone", "ada@example.com", "--set", "+447700900123")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "not confirmed")
			fs := phone()
			require.Len(t, fs, 1)
			assert.Equal(t, store.FactorSMS, fs[0].Kind)
			assert.Equal(t, "+447700900123", fs[0].Phone)
			assert.False(t, fs[0].Confirmed)

			r = twofold(t, env, "", "users", "phone", "ada@example.com", "--confirm")
			require.Equal(t, 0, r.code, r.stderr)
			assert.True(t, phone()[0].Confirmed)

			now := time.Now().UTC()
			require.NoError(t, s.CreateSession(ctx, store.Session{ID: "ada-s", UserID: ada.ID, AMR: store.Strings{"pwd", "sms", "mfa"},
				ACR: "urn:twofold:acr:mfa", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
			require.NoError(t, s.ReplaceRecoveryCodes(ctx, ada.ID, [][]byte{[]byte("c1")}, false, now))
			r = twofold(t, env, "", "users", "phone", "ada@example.com", "--set", "+447700900999", "--confirmed")
			require.Equal(t, 0, r.code, r.stderr)
			_, err := s.GetSession(ctx, "ada-s")
			assert.ErrorIs(t, err, store.ErrNotFound, "replacing a confirmed number signs the user out")
			fs = phone()
			require.Len(t, fs, 1, "a new number replaces the old")
			assert.Equal(t, "+447700900999", fs[0].Phone)
			assert.True(t, fs[0].Confirmed)

			r = twofold(t, env, "", "users", "phone", "ada@example.com", "--detach")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Empty(t, phone())
			n, err := s.CountRecoveryCodes(ctx, ada.ID)
			require.NoError(t, err)
			assert.Zero(t, n, "the last method gone: its recovery codes too")
			r = twofold(t, env, "", "users", "phone", "ada@example.com", "--detach")
			assert.Equal(t, exitFailed, r.code)

			events, err := s.ListAudit(ctx, store.AuditFilter{UserID: ada.ID, Limit: 10})
			require.NoError(t, err)
			var types []string
			for _, e := range events {
				types = append(types, e.Type)
			}
			assert.Subset(t, types, []string{"phone.attached", "phone.confirmed", "phone.detached"})
		})
	}
}
