package accounts

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

var cheap = Argon2Params{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Ada@Example.com", "ada@example.com", true},
		{"  ada@example.com ", "ada@example.com", true},
		{"admin@localhost", "admin@localhost", true},
		{"", "", false},
		{"ada", "", false},
		{"Ada <ada@example.com>", "", false},
		{"ada@example.com, bo@example.com", "", false},
		{strings.Repeat("a", 243) + "@example.com", "", false}, // 255 characters
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeEmail(tc.in)
			if !tc.ok {
				require.ErrorIs(t, err, ErrInvalidEmail)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestHasherDefaultsAndRehash(t *testing.T) {
	h := Hasher{Params: DefaultArgon2}
	phc, err := h.Hash("correct horse battery")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(phc, "$argon2id$v=19$m=19456,t=2,p=1$"), phc)

	ok, rehash, err := h.Verify("correct horse battery", phc)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.False(t, rehash)

	ok, _, err = h.Verify("wrong horse battery", phc)
	require.NoError(t, err)
	assert.False(t, ok)

	ok, rehash, err = Hasher{Params: cheap}.Verify("correct horse battery", phc)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.True(t, rehash, "a hash under other parameters asks to be replaced")

	_, _, err = h.Verify("x", "$2a$10$notargon")
	assert.Error(t, err)
}

func newService(t *testing.T, dialect string, p Argon2Params) (*Service, store.Store) {
	s := sqltest.Open(t, dialect)
	return &Service{Store: s, Hasher: Hasher{Params: p}, MinPasswordLen: 12}, s
}

func TestCreateUserValidation(t *testing.T) {
	ctx := context.Background()
	svc, s := newService(t, "sqlite", cheap)
	good := NewUser{Email: "ada@example.com", Population: store.PopulationAgent, Password: "correct horse battery"}
	tests := []struct {
		name string
		mod  func(*NewUser)
		err  error
	}{
		{"empty password", func(n *NewUser) { n.Password = "" }, ErrPasswordTooShort},
		{"eleven characters", func(n *NewUser) { n.Password = "elevenchars" }, ErrPasswordTooShort},
		{"too long", func(n *NewUser) { n.Password = strings.Repeat("x", MaxPasswordLength+1) }, ErrPasswordTooLong},
		{"over-long email", func(n *NewUser) { n.Email = strings.Repeat("a", 250) + "@example.com" }, ErrInvalidEmail},
		{"bad population", func(n *NewUser) { n.Population = "robot" }, ErrInvalidPopulation},
		{"bad role", func(n *NewUser) { n.Role = "root" }, ErrInvalidRole},
		{"agent as contact", func(n *NewUser) { n.Role = store.RoleContact }, ErrRoleNotInPopulaton},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := good
			tc.mod(&n)
			_, err := svc.CreateUser(ctx, n)
			require.ErrorIs(t, err, tc.err)
		})
	}
	count, err := s.CountUsers(ctx)
	require.NoError(t, err)
	assert.Zero(t, count, "nothing written")

	// Twelve characters counted as characters, not bytes.
	n := good
	n.Password = "pässwörd-ünï"
	u, err := svc.CreateUser(ctx, n)
	require.NoError(t, err)
	assert.Equal(t, store.RoleAgent, u.Role, "agents default to the agent role")
	n.Email = "ADA@example.com"
	_, err = svc.CreateUser(ctx, n)
	require.ErrorIs(t, err, ErrEmailTaken)
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			old, s := newService(t, dialect, cheap)
			u, err := old.CreateUser(ctx, NewUser{Email: "Ada@Example.com", Population: store.PopulationAgent, Password: "correct horse battery"})
			require.NoError(t, err)
			_, err = old.CreateUser(ctx, NewUser{Email: "off@example.com", Population: store.PopulationAgent, Password: "correct horse battery"})
			require.NoError(t, err)
			off, _ := s.GetUserByEmail(ctx, store.PopulationAgent, "off@example.com")
			require.NoError(t, s.SetUserDisabled(ctx, off.ID, true, off.CreatedAt))

			// The server now runs with stronger parameters.
			svc := &Service{Store: s, Hasher: Hasher{Params: Argon2Params{MemoryKiB: 9 * 1024, Iterations: 2, Parallelism: 1}}, MinPasswordLen: 12}
			for _, tc := range []struct{ name, pop, email, password string }{
				{"wrong password", "agent", "ada@example.com", "wrong horse battery"},
				{"unknown email", "agent", "nobody@example.com", "correct horse battery"},
				{"other population", "contact", "ada@example.com", "correct horse battery"},
				{"malformed email", "agent", "not an email", "correct horse battery"},
				{"disabled", "agent", "off@example.com", "correct horse battery"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					_, err := svc.Authenticate(ctx, store.Population(tc.pop), tc.email, tc.password)
					require.ErrorIs(t, err, ErrBadCredentials, "one answer for every failure: no enumeration")
				})
			}
			before, _ := s.GetUser(ctx, u.ID)

			got, err := svc.Authenticate(ctx, store.PopulationAgent, "ADA@example.com", "correct horse battery")
			require.NoError(t, err)
			assert.Equal(t, u.ID, got.ID)
			after, _ := s.GetUser(ctx, u.ID)
			assert.NotEqual(t, before.PasswordHash, after.PasswordHash, "upgraded at login")
			assert.Contains(t, after.PasswordHash, "m=9216,t=2,p=1")
			_, rehash, err := svc.Hasher.Verify("correct horse battery", after.PasswordHash)
			require.NoError(t, err)
			assert.False(t, rehash)
		})
	}
}

func TestGeneratePasswordAndID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p := GeneratePassword()
		assert.Len(t, p, 20)
		assert.False(t, seen[p])
		seen[p] = true
	}
	assert.Regexp(t, `^[0-9a-f]{32}$`, NewID())
}
