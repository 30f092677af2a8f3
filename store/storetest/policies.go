package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
)

// testMFAPolicies: a population's policy is set, read back (its grace
// date to the second, its methods) and replaced; a population without
// one has none.
func testMFAPolicies(t *testing.T, s store.Store) {
	ps, err := s.ListMFAPolicies(ctx)
	require.NoError(t, err)
	assert.Empty(t, ps)

	grace := base.Add(72 * time.Hour)
	require.NoError(t, s.SetMFARequirement(ctx, store.PopulationAgent, true, &grace, base.Add(-time.Hour)))
	require.NoError(t, s.SetMFAMethods(ctx, store.PopulationAgent, store.Strings{"webauthn"}, base))
	ps, err = s.ListMFAPolicies(ctx)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	assert.Equal(t, store.PopulationAgent, ps[0].Population)
	assert.True(t, ps[0].Required)
	require.NotNil(t, ps[0].GraceUntil)
	sameTime(t, grace, *ps[0].GraceUntil, "grace_until")
	assert.Equal(t, store.Strings{"webauthn"}, ps[0].Methods)
	sameTime(t, base, ps[0].UpdatedAt, "updated_at")

	require.NoError(t, s.SetMFARequirement(ctx, store.PopulationContact, true, nil, base))
	require.NoError(t, s.SetMFARequirement(ctx, store.PopulationAgent, false, nil, base.Add(time.Hour)))
	ps, err = s.ListMFAPolicies(ctx)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	assert.Equal(t, store.PopulationAgent, ps[0].Population)
	assert.False(t, ps[0].Required, "replaced")
	assert.Nil(t, ps[0].GraceUntil, "no grace any more")
	assert.Equal(t, store.Strings{"webauthn"}, ps[0].Methods, "the requirement leaves the methods")
	sameTime(t, base.Add(time.Hour), ps[0].UpdatedAt, "updated_at")
	assert.Equal(t, store.PopulationContact, ps[1].Population)
	assert.True(t, ps[1].Required)
	assert.Nil(t, ps[1].GraceUntil)
	assert.Empty(t, ps[1].Methods, "every method")

	// The methods leave the requirement; nil is every method again.
	require.NoError(t, s.SetMFAMethods(ctx, store.PopulationContact, store.Strings{"totp"}, base))
	require.NoError(t, s.SetMFAMethods(ctx, store.PopulationAgent, nil, base))
	ps, err = s.ListMFAPolicies(ctx)
	require.NoError(t, err)
	assert.True(t, ps[1].Required, "still required")
	assert.Equal(t, store.Strings{"totp"}, ps[1].Methods)
	assert.Empty(t, ps[0].Methods)
	assert.False(t, ps[0].Required)
}

// testSignOutWithoutFactors: switching a policy on signs out the users of
// that population who have no confirmed factor (R16), and only them.
func testSignOutWithoutFactors(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateClient(ctx, newClient("app", "App")))
	users := []store.User{
		newUser("none", "none@example.com", store.PopulationAgent),       // no factor: signed out
		newUser("pending", "pending@example.com", store.PopulationAgent), // an unconfirmed one only: signed out
		newUser("has", "has@example.com", store.PopulationAgent),         // a factor: stays
		newUser("contact", "contact@example.com", store.PopulationContact),
	}
	for _, u := range users {
		require.NoError(t, s.CreateUser(ctx, u))
		require.NoError(t, s.CreateSession(ctx, newSession("s-"+u.ID, u.ID)))
		r := newOAuth2Request(store.KindRefreshToken, "rt-"+u.ID, "req-"+u.ID, "app")
		r.Subject = u.ID
		require.NoError(t, s.CreateOAuth2Request(ctx, r))
	}
	for _, id := range []string{"none", "has"} {
		f := newLoginFlow("flow-" + id)
		f.UserID, f.State = id, store.FlowEnrol
		require.NoError(t, s.CreateLoginFlow(ctx, f))
	}
	require.NoError(t, s.CreateFactor(ctx, store.Factor{ID: "f1", UserID: "pending", Kind: store.FactorTOTP, CreatedAt: base}))
	require.NoError(t, s.CreateFactor(ctx, store.Factor{ID: "f2", UserID: "has", Kind: store.FactorTOTP, Confirmed: true, CreatedAt: base}))

	sessions, tokens, err := s.SignOutWithoutFactors(ctx, store.PopulationAgent)
	require.NoError(t, err)
	assert.EqualValues(t, 2, sessions)
	assert.EqualValues(t, 2, tokens)
	_, err = s.GetLoginFlow(ctx, "flow-none")
	assert.ErrorIs(t, err, store.ErrNotFound, "a sign-in in progress of a user without a factor ends")
	_, err = s.GetLoginFlow(ctx, "flow-has")
	assert.NoError(t, err)
	for _, u := range users {
		_, serr := s.GetSession(ctx, "s-"+u.ID)
		_, terr := s.GetOAuth2Request(ctx, store.KindRefreshToken, "rt-"+u.ID)
		if u.ID == "none" || u.ID == "pending" {
			assert.ErrorIs(t, serr, store.ErrNotFound, u.ID)
			assert.ErrorIs(t, terr, store.ErrNotFound, u.ID)
		} else {
			assert.NoError(t, serr, u.ID)
			assert.NoError(t, terr, u.ID)
		}
	}
}
