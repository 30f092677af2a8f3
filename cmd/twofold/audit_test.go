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

func TestR15_R24_RequireMFAAndAudit(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env := migratedDB(t, dialect)
			r := twofold(t, env, "correct horse battery", "users", "create", "--email", "ada@example.com", "--population", "agent", "--password-stdin")
			require.Equal(t, 0, r.code, r.stderr)

			// Signed in, no second factor: switching it on signs her out (R16).
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			ada, err := s.GetUserByEmail(context.Background(), store.PopulationAgent, "ada@example.com")
			require.NoError(t, err)
			now := time.Now().UTC()
			require.NoError(t, s.CreateSession(context.Background(), store.Session{ID: "ada-s1", UserID: ada.ID, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
			r = twofold(t, env, "", "users", "require-mfa", "ada@example.com")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "now required")
			assert.Contains(t, r.stdout, "signed out")
			_, err = s.GetSession(context.Background(), "ada-s1")
			assert.ErrorIs(t, err, store.ErrNotFound)
			r = twofold(t, env, "", "users", "show", "ada@example.com", "-o", "json")
			var u userJSON
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &u))
			assert.True(t, u.MFARequired)

			r = twofold(t, env, "", "users", "require-mfa", "ada@example.com", "--off")
			require.Equal(t, 0, r.code, r.stderr)
			r = twofold(t, env, "", "users", "require-mfa", "nobody@example.com")
			assert.Equal(t, exitFailed, r.code)

			r = twofold(t, env, "", "users", "unlock", "ada@example.com")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "unlocked ada@example.com")

			r = twofold(t, env, "", "audit", "list", "--user", "ada@example.com", "--output", "json")
			require.Equal(t, 0, r.code, r.stderr)
			var events []struct {
				Type, Detail string
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &events))
			require.Len(t, events, 4)
			assert.Equal(t, "user.unlocked", events[0].Type)
			assert.Equal(t, "policy.user_mfa", events[1].Type)
			assert.JSONEq(t, `{"required":false}`, events[1].Detail)
			assert.Equal(t, "user.created", events[3].Type)

			r = twofold(t, env, "", "audit", "list", "--type", "policy.", "--output", "json")
			require.Equal(t, 0, r.code, r.stderr)
			events = nil
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &events))
			require.Len(t, events, 2)
			assert.Equal(t, "policy.user_mfa", events[0].Type)

			r = twofold(t, env, "", "audit", "list", "--limit", "0")
			assert.Equal(t, exitUsage, r.code)
			r = twofold(t, env, "", "audit", "list")
			require.Equal(t, 0, r.code)
			assert.Contains(t, r.stdout, "policy.user_mfa")
		})
	}
}
