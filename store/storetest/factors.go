package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
)

// testFactorsAndCodes: a user's factors, oldest first, with the count of
// unused recovery codes, also when there are no factors.
func testFactorsAndCodes(t *testing.T, s store.Store) {
	for _, id := range []string{"u1", "u2"} {
		require.NoError(t, s.CreateUser(ctx, newUser(id, id+"@example.com", store.PopulationAgent)))
	}
	fs, n, err := s.ListFactorsAndCodes(ctx, "u1")
	require.NoError(t, err)
	assert.Empty(t, fs)
	assert.Zero(t, n)

	require.NoError(t, s.ReplaceRecoveryCodes(ctx, "u1", [][]byte{[]byte("h1"), []byte("h2"), []byte("h3")}, false, base))
	mailed, err := s.UseRecoveryCode(ctx, "u1", []byte("h2"), base)
	require.NoError(t, err)
	assert.False(t, mailed)
	_, err = s.UseRecoveryCode(ctx, "u1", []byte("h2"), base)
	require.ErrorIs(t, err, store.ErrNotFound, "used once")
	require.NoError(t, s.ReplaceRecoveryCodes(ctx, "u2", [][]byte{[]byte("x"), []byte("y")}, true, base))
	mailed, err = s.UseRecoveryCode(ctx, "u2", []byte("y"), base)
	require.NoError(t, err)
	assert.True(t, mailed, "a set an admin mailed (R20)")
	for id, want := range map[string]bool{"u1": false, "u2": true, "nobody": false} {
		got, err := s.RecoveryCodesMailed(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, got, "%s: mailed set", id)
	}
	fs, n, err = s.ListFactorsAndCodes(ctx, "u1")
	require.NoError(t, err)
	assert.Empty(t, fs, "codes without factors")
	assert.Equal(t, 2, n, "used codes are not counted, nor another user's")

	newer := store.Factor{ID: "f2", UserID: "u1", Kind: store.FactorTOTP, Name: "phone", SecretEnc: []byte{1, 2}, LastStep: 7, Confirmed: true, CreatedAt: base.Add(time.Minute)}
	older := store.Factor{ID: "f1", UserID: "u1", Kind: store.FactorWebAuthn, Name: "key", CredentialID: []byte{9}, Credential: `{"id":"x"}`, SignCount: 3, CreatedAt: base}
	other := store.Factor{ID: "f3", UserID: "u2", Kind: store.FactorTOTP, Name: "other", Confirmed: true, CreatedAt: base}
	for _, f := range []store.Factor{newer, older, other} {
		require.NoError(t, s.CreateFactor(ctx, f))
	}
	fs, n, err = s.ListFactorsAndCodes(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	require.Len(t, fs, 2)
	assert.Equal(t, "f1", fs[0].ID, "oldest first")
	assert.False(t, fs[0].Confirmed)
	assert.Equal(t, store.FactorWebAuthn, fs[0].Kind)
	assert.Equal(t, []byte{9}, fs[0].CredentialID)
	assert.Equal(t, `{"id":"x"}`, fs[0].Credential)
	assert.Equal(t, int64(3), fs[0].SignCount)
	assert.Equal(t, "f2", fs[1].ID)
	assert.True(t, fs[1].Confirmed)
	assert.Equal(t, []byte{1, 2}, fs[1].SecretEnc)
	assert.Equal(t, int64(7), fs[1].LastStep)
	sameTime(t, newer.CreatedAt, fs[1].CreatedAt, "created_at")

	fs, n, err = s.ListFactorsAndCodes(ctx, "u2")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.Len(t, fs, 1)
	assert.Equal(t, "f3", fs[0].ID)
}

// testFactorsDeleteAll: every factor of one user goes, confirmed or not,
// apps and keys alike; another user's stay.
func testFactorsDeleteAll(t *testing.T, s store.Store) {
	for _, id := range []string{"u1", "u2"} {
		require.NoError(t, s.CreateUser(ctx, newUser(id, id+"@example.com", store.PopulationAgent)))
	}
	for _, f := range []store.Factor{
		{ID: "f1", UserID: "u1", Kind: store.FactorTOTP, Name: "phone", Confirmed: true, CreatedAt: base},
		{ID: "f2", UserID: "u1", Kind: store.FactorTOTP, Name: "pending", CreatedAt: base},
		{ID: "f3", UserID: "u1", Kind: store.FactorWebAuthn, Name: "key", CredentialID: []byte{1}, Credential: "{}", Confirmed: true, CreatedAt: base},
		{ID: "f4", UserID: "u2", Kind: store.FactorTOTP, Name: "other", Confirmed: true, CreatedAt: base},
	} {
		require.NoError(t, s.CreateFactor(ctx, f))
	}
	n, err := s.DeleteFactors(ctx, "u1")
	require.NoError(t, err)
	assert.EqualValues(t, 3, n)
	fs, err := s.ListFactors(ctx, "u1")
	require.NoError(t, err)
	assert.Empty(t, fs)
	fs, err = s.ListFactors(ctx, "u2")
	require.NoError(t, err)
	assert.Len(t, fs, 1, "another user's factor stays")
	n, err = s.DeleteFactors(ctx, "u1")
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left is not an error")
}
