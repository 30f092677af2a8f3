package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

func TestUsersCommands(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env := migratedDB(t, dialect)
			create := func(stdin string, args ...string) result {
				return twofold(t, env, stdin, append([]string{"users", "create", "--password-stdin", "--output", "json"}, args...)...)
			}

			r := create("correct horse battery\n", "--email", "Ada@Example.com", "--population", "agent", "--role", "supervisor")
			require.Equal(t, 0, r.code, r.stderr)
			var ada userJSON
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &ada))
			assert.Equal(t, "Ada@Example.com", ada.Email)
			assert.Equal(t, "supervisor", ada.Role)
			assert.Len(t, ada.ID, 32)
			assert.NotContains(t, r.stdout, "argon2", "no hash in output")

			// The same address in the other population is another account.
			r = create("correct horse battery", "--email", "ada@example.com", "--population", "contact")
			require.Equal(t, 0, r.code, r.stderr)

			bad := []struct {
				name     string
				stdin    string
				args     []string
				code     int
				contains string
			}{
				{"duplicate email, other case", "another good password", []string{"--email", "ADA@example.COM", "--population", "agent"}, exitFailed, "already exists"},
				{"empty password", "\n", []string{"--email", "bo@example.com", "--population", "agent"}, exitFailed, "password is too short"},
				{"short password", "tiny\n", []string{"--email", "bo@example.com", "--population", "agent"}, exitFailed, "at least 12 characters"},
				{"over-long email", "correct horse battery", []string{"--email", strings.Repeat("a", 250) + "@example.com", "--population", "agent"}, exitFailed, "longer than 254"},
				{"not an email", "correct horse battery", []string{"--email", "Bo <bo@example.com>", "--population", "agent"}, exitFailed, "invalid email"},
				{"unknown population", "correct horse battery", []string{"--email", "bo@example.com", "--population", "robot"}, exitFailed, "population must be"},
				{"contact as admin", "correct horse battery", []string{"--email", "bo@example.com", "--population", "contact", "--role", "admin"}, exitFailed, "contacts have the role"},
				{"missing email", "correct horse battery", []string{"--population", "agent"}, exitUsage, "--email and --population are required"},
				{"password as a flag", "", []string{"--email", "bo@example.com", "--population", "agent", "--password", "x"}, exitUsage, "unknown flag: --password"},
			}
			for _, tc := range bad {
				t.Run(tc.name, func(t *testing.T) {
					r := create(tc.stdin, tc.args...)
					assert.Equal(t, tc.code, r.code, r.stderr)
					assert.Contains(t, r.stderr, tc.contains)
					assert.Empty(t, r.stdout)
				})
			}
			r = twofold(t, env, "", "users", "create", "--email", "bo@example.com", "--population", "agent")
			assert.Equal(t, exitUsage, r.code, "no terminal and no --password-stdin")
			assert.Contains(t, r.stderr, "--password-stdin")

			// Nothing was written by the refused commands.
			r = twofold(t, env, "", "users", "list", "--output", "json")
			require.Equal(t, 0, r.code, r.stderr)
			var users []userJSON
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &users))
			require.Len(t, users, 2)

			r = twofold(t, env, "", "users", "list", "--population", "contact")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "ada@example.com")
			assert.NotContains(t, r.stdout, "Ada@Example.com")

			// show by email is ambiguous across populations; by id it is not.
			r = twofold(t, env, "", "users", "show", "ada@example.com")
			assert.Equal(t, exitUsage, r.code)
			assert.Contains(t, r.stderr, "add --population")
			r = twofold(t, env, "", "users", "show", ada.ID, "--output", "json")
			require.Equal(t, 0, r.code, r.stderr)
			var shown userJSON
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &shown))
			assert.Equal(t, ada.ID, shown.ID)

			r = twofold(t, env, "", "users", "disable", "ADA@example.com", "--population", "agent")
			require.Equal(t, 0, r.code, r.stderr)
			r = twofold(t, env, "", "users", "show", ada.ID, "-o", "json")
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &shown))
			assert.True(t, shown.Disabled)

			r = twofold(t, env, "", "users", "show", "nobody@example.com")
			assert.Equal(t, exitFailed, r.code)
			assert.Contains(t, r.stderr, `no user "nobody@example.com"`)
		})
	}
}
