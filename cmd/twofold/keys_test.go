package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

func TestKeysRotate(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env := append(migratedDB(t, dialect), "TWOFOLD_SECRETS_KEY="+secrets.GenerateKey())
			r := twofold(t, env, "", "keys", "rotate")
			require.Equal(t, 0, r.code, r.stderr)
			first := regexp.MustCompile(`new active RS256 key (\w+)`).FindStringSubmatch(r.stdout)
			require.Len(t, first, 2)
			r = twofold(t, env, "", "keys", "rotate", "--alg", "RS256")
			require.Equal(t, 0, r.code, r.stderr)
			second := regexp.MustCompile(`new active RS256 key (\w+)`).FindStringSubmatch(r.stdout)
			require.Len(t, second, 2)
			assert.NotEqual(t, first[1], second[1])

			r = twofold(t, env, "", "keys", "list")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Regexp(t, second[1]+`\s+RS256\s+active`, r.stdout)
			assert.Regexp(t, first[1]+`\s+RS256\s+retired`, r.stdout, "the previous key is kept, retired")
			assert.Equal(t, 1, strings.Count(r.stdout, "ES256"), "one ES256 key, made at first use")

			r = twofold(t, env, "", "audit", "list", "--type", "keys.rotated")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, 2, strings.Count(r.stdout, "keys.rotated"), r.stdout)
			assert.Contains(t, r.stdout, `"kid":"`+second[1]+`"`, "each rotation audited with its key")

			r = twofold(t, env, "", "keys", "rotate", "--alg", "HS256")
			assert.Equal(t, exitUsage, r.code)
			// The wrong secrets key cannot open the stored keys.
			r = twofold(t, append(env, "TWOFOLD_SECRETS_KEY="+secrets.GenerateKey()), "", "keys", "rotate")
			assert.Equal(t, exitFailed, r.code)
			assert.Contains(t, r.stderr, "TWOFOLD_SECRETS_KEY")
		})
	}
}
