package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
)

// testFederatedUsers: a user created through an upstream is found by
// (upstream, subject) only; an email or a link already taken creates
// nothing.
func testFederatedUsers(t *testing.T, s store.Store) {
	_, err := s.GetFederatedUser(ctx, "corp", "sub-1")
	require.ErrorIs(t, err, store.ErrNotFound)

	u := newUser("u1", "ada@example.com", store.PopulationAgent)
	require.NoError(t, s.CreateFederatedUser(ctx, u, "corp", "sub-1"))
	got, err := s.GetFederatedUser(ctx, "corp", "sub-1")
	require.NoError(t, err)
	assert.Equal(t, "u1", got.ID)
	assert.Equal(t, "ada@example.com", got.Email)
	_, err = s.GetFederatedUser(ctx, "other", "sub-1")
	require.ErrorIs(t, err, store.ErrNotFound, "the same subject at another upstream is another person")
	ups, err := s.FederatedUpstreams(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, []string{"corp"}, ups)
	require.NoError(t, s.CreateUser(ctx, newUser("local", "local@example.com", store.PopulationAgent)))
	ups, err = s.FederatedUpstreams(ctx, "local")
	require.NoError(t, err)
	assert.Empty(t, ups, "a local account has none")

	// The email is taken: no user, no link.
	dup := newUser("u2", "ada@example.com", store.PopulationAgent)
	require.ErrorIs(t, s.CreateFederatedUser(ctx, dup, "corp", "sub-2"), store.ErrAlreadyExists)
	_, err = s.GetFederatedUser(ctx, "corp", "sub-2")
	require.ErrorIs(t, err, store.ErrNotFound)
	// The link is taken: the user is rolled back.
	other := newUser("u3", "bo@example.com", store.PopulationAgent)
	require.ErrorIs(t, s.CreateFederatedUser(ctx, other, "corp", "sub-1"), store.ErrAlreadyExists)
	_, err = s.GetUser(ctx, "u3")
	require.ErrorIs(t, err, store.ErrNotFound)

	// Sessions and sign-ins keep the upstream they went through.
	require.NoError(t, s.CreateSession(ctx, store.Session{ID: "s1", UserID: "u1", AMR: store.Strings{"fed"}, ACR: "fed",
		AuthTime: base, CreatedAt: base, ExpiresAt: base.Add(time.Hour), Upstream: "corp"}))
	se, err := s.GetSession(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, "corp", se.Upstream)
	f := store.LoginFlow{ID: "f1", State: store.FlowPassword, CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	require.NoError(t, s.CreateLoginFlow(ctx, f))
	f.State, f.UserID, f.Upstream = store.FlowSecondFactor, "u1", "corp"
	require.NoError(t, s.UpdateLoginFlow(ctx, f, store.FlowPassword))
	got2, err := s.GetLoginFlow(ctx, "f1")
	require.NoError(t, err)
	assert.Equal(t, "corp", got2.Upstream)
	_, u1, err := s.LoginFlowUser(ctx, "f1", store.FlowSecondFactor, false)
	require.NoError(t, err)
	assert.Equal(t, "u1", u1.ID)
}
