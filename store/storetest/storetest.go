// Package storetest is the conformance suite every store.Store
// implementation must pass, run by each backend's own tests (as dex's
// storage/conformance). Each test opens a fresh store through open.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
)

// Run runs the whole suite.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"UserCreateGet", testUserCreateGet},
		{"UserEmailUniquePerPopulation", testUserEmailUniquePerPopulation},
		{"UserNotFound", testUserNotFound},
		{"UserList", testUserList},
		{"UserUpdatePasswordAndDisable", testUserUpdate},
		{"UserConcurrentCreate", testUserConcurrentCreate},
		{"Audit", testAudit},
		{"OAuth2DeleteSubjectTokens", testOAuth2DeleteSubjectTokens},
		{"Throttle", testThrottle},
		{"ThrottleParallel", testThrottleParallel},
		{"ThrottleCap", testThrottleCap},
		{"ThrottleAttempts", testThrottleAttempts},
		{"UserChangePassword", testUserChangePassword},
		{"LockUser", testLockUser},
		{"TxRollback", testTxRollback},
		{"TxCommit", testTxCommit},
		{"ClientCreateGet", testClientCreateGet},
		{"ClientDuplicate", testClientDuplicate},
		{"ClientList", testClientList},
		{"ClientUpdateSecret", testClientUpdateSecret},
		{"ClientUpdate", testClientUpdate},
		{"ClientDelete", testClientDelete},
		{"OAuth2CreateGet", testOAuth2CreateGet},
		{"OAuth2Duplicate", testOAuth2Duplicate},
		{"OAuth2ConcurrentCreate", testOAuth2ConcurrentCreate},
		{"OAuth2Deactivate", testOAuth2Deactivate},
		{"OAuth2DeactivateRace", testOAuth2DeactivateRace},
		{"OAuth2Families", testOAuth2Families},
		{"OAuth2Delete", testOAuth2Delete},
		{"OAuth2CreateMany", testOAuth2CreateMany},
		{"OAuth2Take", testOAuth2Take},
		{"DeleteExpired", testDeleteExpired},
		{"UseJTI", testUseJTI},
		{"SigningKeys", testSigningKeys},
		{"SessionCreateGet", testSessionCreateGet},
		{"SessionDelete", testSessionDelete},
		{"SignOutAll", testSignOutAll},
		{"MFAPolicies", testMFAPolicies},
		{"SignOutWithoutFactors", testSignOutWithoutFactors},
		{"LoginFlowCreateGet", testLoginFlowCreateGet},
		{"LoginFlowUpdate", testLoginFlowUpdate},
		{"LoginFlowUpdateRace", testLoginFlowUpdateRace},
		{"LoginFlowAttempt", testLoginFlowAttempt},
		{"LoginFlowUser", testLoginFlowUser},
		{"Consent", testConsent},
		{"FactorsAndCodes", testFactorsAndCodes},
		{"FactorsDeleteAll", testFactorsDeleteAll},
		{"OneTimeCodes", testOneTimeCodes},
		{"FederatedUsers", testFederatedUsers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var ctx = context.Background()

// base is a fixed instant with sub-second precision, to check it survives.
var base = time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC)

func newUser(id, email string, p store.Population) store.User {
	return store.User{
		ID: id, Email: email, EmailKey: email, Population: p, Role: store.RoleAgent,
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		CreatedAt:    base, UpdatedAt: base,
	}
}

func testUserCreateGet(t *testing.T, s store.Store) {
	u := newUser("u1", "ada@example.com", store.PopulationAgent)
	u.Email = "Ada@Example.com"
	u.Role = store.RoleAdmin
	u.PasswordMustChange = true
	u.MFARequired = true
	require.NoError(t, s.CreateUser(ctx, u))

	got, err := s.GetUser(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, u.Email, got.Email)
	assert.Equal(t, u.EmailKey, got.EmailKey)
	assert.Equal(t, store.PopulationAgent, got.Population)
	assert.Equal(t, store.RoleAdmin, got.Role)
	assert.Equal(t, u.PasswordHash, got.PasswordHash)
	assert.True(t, got.PasswordMustChange)
	assert.True(t, got.MFARequired)
	assert.False(t, got.Disabled)
	assert.True(t, base.Equal(got.CreatedAt), "created_at %v != %v", got.CreatedAt, base)
	assert.True(t, base.Equal(got.UpdatedAt))

	byEmail, err := s.GetUserByEmail(ctx, store.PopulationAgent, "ada@example.com")
	require.NoError(t, err)
	assert.Equal(t, "u1", byEmail.ID)
}

func testUserEmailUniquePerPopulation(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateUser(ctx, newUser("u1", "bo@example.com", store.PopulationAgent)))

	err := s.CreateUser(ctx, newUser("u2", "bo@example.com", store.PopulationAgent))
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	_, err = s.GetUser(ctx, "u2")
	require.ErrorIs(t, err, store.ErrNotFound, "a refused insert leaves nothing behind")

	// The same address in the other population is another account.
	require.NoError(t, s.CreateUser(ctx, newUser("u3", "bo@example.com", store.PopulationContact)))
	// Without a population the agent is found first, else the contact.
	found, err := s.GetUserByEmail(ctx, "", "bo@example.com")
	require.NoError(t, err)
	assert.Equal(t, "u1", found.ID)
	require.NoError(t, s.CreateUser(ctx, newUser("u4", "cy@example.com", store.PopulationContact)))
	found, err = s.GetUserByEmail(ctx, "", "cy@example.com")
	require.NoError(t, err)
	assert.Equal(t, "u4", found.ID)
	_, err = s.GetUserByEmail(ctx, "", "nobody@example.com")
	require.ErrorIs(t, err, store.ErrNotFound)
	// A duplicate primary key is also ErrAlreadyExists.
	require.ErrorIs(t, s.CreateUser(ctx, newUser("u1", "other@example.com", store.PopulationAgent)), store.ErrAlreadyExists)

	n, err := s.CountUsers(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
}

func testUserNotFound(t *testing.T, s store.Store) {
	_, err := s.GetUser(ctx, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetUserByEmail(ctx, store.PopulationContact, "missing@example.com")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.UpdateUserPassword(ctx, "missing", "x", false, base), store.ErrNotFound)
	require.ErrorIs(t, s.SetUserDisabled(ctx, "missing", true, base), store.ErrNotFound)
}

func testUserList(t *testing.T, s store.Store) {
	users, err := s.ListUsers(ctx, store.UserFilter{})
	require.NoError(t, err)
	assert.Empty(t, users)
	assert.NotNil(t, users, "an empty list is [] not nil, for JSON output")

	require.NoError(t, s.CreateUser(ctx, newUser("c", "c@example.com", store.PopulationContact)))
	require.NoError(t, s.CreateUser(ctx, newUser("b", "b@example.com", store.PopulationAgent)))
	require.NoError(t, s.CreateUser(ctx, newUser("a", "a@example.com", store.PopulationAgent)))

	users, err = s.ListUsers(ctx, store.UserFilter{})
	require.NoError(t, err)
	require.Len(t, users, 3)
	assert.Equal(t, []string{"a", "b", "c"}, ids(users))

	users, err = s.ListUsers(ctx, store.UserFilter{Population: store.PopulationContact})
	require.NoError(t, err)
	assert.Equal(t, []string{"c"}, ids(users))

	users, err = s.ListUsers(ctx, store.UserFilter{Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, ids(users))
	users, err = s.ListUsers(ctx, store.UserFilter{Limit: 2, Offset: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "c"}, ids(users))
	users, err = s.ListUsers(ctx, store.UserFilter{Population: store.PopulationAgent, Limit: 5, Offset: 2})
	require.NoError(t, err)
	assert.Empty(t, users)
}

// testLockUser: a user's lock is taken in a transaction, for a user
// there or not; a sign-out of the user after it commits goes through.
func testLockUser(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateUser(ctx, newUser("u1", "cy@example.com", store.PopulationAgent)))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context) error {
		if err := s.LockUser(ctx, "u1"); err != nil {
			return err
		}
		return s.LockUser(ctx, "missing")
	}))
	require.NoError(t, s.SignOutUser(ctx, "u1"))
}

// testUserChangePassword: a change goes through only from the hash it
// read; of racing changes from one hash exactly one does, and the
// others change nothing.
func testUserChangePassword(t *testing.T, s store.Store) {
	u := newUser("u1", "cy@example.com", store.PopulationAgent)
	require.NoError(t, s.CreateUser(ctx, u))
	later := base.Add(time.Hour)
	require.ErrorIs(t, s.ChangeUserPassword(ctx, "u1", "$argon2id$stale", "$argon2id$mine", false, later), store.ErrConflict)
	require.ErrorIs(t, s.ChangeUserPassword(ctx, "missing", u.PasswordHash, "$argon2id$mine", false, later), store.ErrConflict)
	got, err := s.GetUser(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, u.PasswordHash, got.PasswordHash, "a refused change changes nothing")

	// A one-time password (an admin's reset) is replaced by the user's
	// own choice, which is not one-time.
	require.NoError(t, s.UpdateUserPassword(ctx, "u1", "$argon2id$reset", true, later))
	require.NoError(t, s.ChangeUserPassword(ctx, "u1", "$argon2id$reset", "$argon2id$mine", false, later))
	got, err = s.GetUser(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, "$argon2id$mine", got.PasswordHash)
	assert.False(t, got.PasswordMustChange)
	// A sign-in's rehash of a one-time password keeps it one-time.
	require.NoError(t, s.UpdateUserPassword(ctx, "u1", "$argon2id$otp", true, later))
	require.NoError(t, s.ChangeUserPassword(ctx, "u1", "$argon2id$otp", "$argon2id$otp-rehashed", true, later))
	got, err = s.GetUser(ctx, "u1")
	require.NoError(t, err)
	assert.True(t, got.PasswordMustChange)
	require.NoError(t, s.ChangeUserPassword(ctx, "u1", "$argon2id$otp-rehashed", "$argon2id$mine", false, later))

	const n = 20
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			switch err := s.ChangeUserPassword(ctx, "u1", "$argon2id$mine", fmt.Sprintf("$argon2id$racer%d", i), false, later); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("racer %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load(), "exactly one change from the same hash")
	assert.Equal(t, int32(n-1), conflicts.Load())
}

func ids(users []store.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

func testUserUpdate(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateUser(ctx, newUser("u1", "cy@example.com", store.PopulationAgent)))
	later := base.Add(time.Hour)
	require.NoError(t, s.UpdateUserPassword(ctx, "u1", "$argon2id$new", true, later))
	require.NoError(t, s.SetUserDisabled(ctx, "u1", true, later))

	got, err := s.GetUser(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, "$argon2id$new", got.PasswordHash)
	assert.True(t, got.PasswordMustChange)
	assert.True(t, got.Disabled)
	assert.True(t, later.Equal(got.UpdatedAt))
	assert.True(t, base.Equal(got.CreatedAt), "created_at is not touched")

	require.NoError(t, s.SetUserDisabled(ctx, "u1", false, later))
	got, err = s.GetUser(ctx, "u1")
	require.NoError(t, err)
	assert.False(t, got.Disabled)
}

// testUserConcurrentCreate races many inserts of one email: the database,
// not a read-then-write check, decides that exactly one wins.
func testUserConcurrentCreate(t *testing.T, s store.Store) {
	const n = 20
	var wins, dups atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.CreateUser(ctx, newUser(fmt.Sprintf("u%d", i), "race@example.com", store.PopulationAgent))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrAlreadyExists):
				dups.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 1, wins.Load())
	assert.EqualValues(t, n-1, dups.Load())
}

func testAudit(t *testing.T, s store.Store) {
	require.NoError(t, s.AppendAudit(ctx, store.AuditEvent{Time: base, Type: "login.success", UserID: "u1", IP: "127.0.0.1", UserAgent: "test"}))
	require.NoError(t, s.AppendAudit(ctx, store.AuditEvent{Time: base.Add(time.Second), Type: "login.failure", UserID: "u2", Detail: `{"reason":"password"}`}))
	require.NoError(t, s.AppendAudit(ctx, store.AuditEvent{Time: base.Add(2 * time.Second), Type: "user.created", UserID: "u1", ActorID: "admin"}))

	all, err := s.ListAudit(ctx, store.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, all, 3)
	assert.Equal(t, "user.created", all[0].Type, "newest first")
	assert.Equal(t, "{}", all[2].Detail)
	assert.Equal(t, "127.0.0.1", all[2].IP)

	mine, err := s.ListAudit(ctx, store.AuditFilter{UserID: "u1", Limit: 1})
	require.NoError(t, err)
	require.Len(t, mine, 1)
	assert.Equal(t, "user.created", mine[0].Type)
	assert.Equal(t, "admin", mine[0].ActorID)

	for _, tc := range []struct {
		f    store.AuditFilter
		want []string
	}{
		{store.AuditFilter{Type: "login.failure"}, []string{"login.failure"}},
		{store.AuditFilter{Type: "login."}, []string{"login.failure", "login.success"}},
		{store.AuditFilter{Type: "login"}, nil}, // not a prefix without its dot
		{store.AuditFilter{Type: "login.%"}, nil},
		{store.AuditFilter{Type: "user_created"}, nil},
		{store.AuditFilter{UserID: "u1", Type: "login."}, []string{"login.success"}},
		{store.AuditFilter{Limit: 2}, []string{"user.created", "login.failure"}},
		{store.AuditFilter{Limit: 2, Offset: 2}, []string{"login.success"}},
		{store.AuditFilter{Limit: 2, Offset: 3}, nil},
	} {
		got, err := s.ListAudit(ctx, tc.f)
		require.NoError(t, err)
		var types []string
		for _, e := range got {
			types = append(types, e.Type)
		}
		assert.Equal(t, tc.want, types, "%+v", tc.f)
	}
}

func testTxRollback(t *testing.T, s store.Store) {
	boom := errors.New("boom")
	err := s.InTx(ctx, func(ctx context.Context) error {
		require.NoError(t, s.CreateUser(ctx, newUser("u1", "tx@example.com", store.PopulationAgent)))
		require.NoError(t, s.AppendAudit(ctx, store.AuditEvent{Time: base, Type: "user.created", UserID: "u1"}))
		// Reads inside the transaction see its writes.
		_, err := s.GetUser(ctx, "u1")
		require.NoError(t, err)
		return boom
	})
	require.ErrorIs(t, err, boom)

	_, err = s.GetUser(ctx, "u1")
	require.ErrorIs(t, err, store.ErrNotFound, "rollback leaves no user")
	events, err := s.ListAudit(ctx, store.AuditFilter{})
	require.NoError(t, err)
	assert.Empty(t, events, "rollback leaves no audit event")
}

func testTxCommit(t *testing.T, s store.Store) {
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.CreateUser(ctx, newUser("u1", "a@example.com", store.PopulationAgent)); err != nil {
			return err
		}
		// A nested InTx joins the outer transaction.
		return s.InTx(ctx, func(ctx context.Context) error {
			return s.CreateUser(ctx, newUser("u2", "b@example.com", store.PopulationAgent))
		})
	})
	require.NoError(t, err)
	n, err := s.CountUsers(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)

	// A failing statement inside a transaction rolls back the earlier ones.
	err = s.InTx(ctx, func(ctx context.Context) error {
		if err := s.CreateUser(ctx, newUser("u3", "c@example.com", store.PopulationAgent)); err != nil {
			return err
		}
		return s.CreateUser(ctx, newUser("u4", "a@example.com", store.PopulationAgent))
	})
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	_, err = s.GetUser(ctx, "u3")
	require.ErrorIs(t, err, store.ErrNotFound)
}
