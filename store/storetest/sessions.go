package storetest

import (
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

func newSession(id, userID string) store.Session {
	return store.Session{
		ID: id, UserID: userID,
		AMR: store.Strings{"pwd"}, ACR: "urn:twofold:acr:pwd",
		AuthTime: base.Add(-time.Minute), CreatedAt: base, ExpiresAt: base.Add(8 * time.Hour),
	}
}

func newLoginFlow(id string) store.LoginFlow {
	return store.LoginFlow{
		ID: id, State: store.FlowPassword, ClientID: "app",
		AuthorizeForm: "client_id=app&response_type=code&scope=openid",
		CreatedAt:     base, ExpiresAt: base.Add(15 * time.Minute),
	}
}

func testSessionCreateGet(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateUser(ctx, newUser("u1", "s@example.com", store.PopulationAgent)))

	se := store.Session{
		ID: "hash-of-cookie", UserID: "u1",
		AMR: store.Strings{"pwd", "otp", "hwk"}, ACR: "urn:twofold:acr:mfa",
		AuthTime:  base.Add(-3 * time.Minute),
		CreatedAt: base,
		ExpiresAt: base.Add(12 * time.Hour),
	}
	require.NoError(t, s.CreateSession(ctx, se))

	got, err := s.GetSession(ctx, "hash-of-cookie")
	require.NoError(t, err)
	assert.Equal(t, se.ID, got.ID)
	assert.Equal(t, "u1", got.UserID)
	assert.Equal(t, store.Strings{"pwd", "otp", "hwk"}, got.AMR)
	assert.Equal(t, "urn:twofold:acr:mfa", got.ACR)
	sameTime(t, se.AuthTime, got.AuthTime, "auth_time")
	sameTime(t, se.CreatedAt, got.CreatedAt, "created_at")
	sameTime(t, se.ExpiresAt, got.ExpiresAt, "expires_at")
	sameTime(t, se.CreatedAt, got.LastSeen, "last_seen starts at created_at")

	require.NoError(t, s.TouchSession(ctx, "hash-of-cookie", base.Add(time.Hour)))
	got, err = s.GetSession(ctx, "hash-of-cookie")
	require.NoError(t, err)
	sameTime(t, base.Add(time.Hour), got.LastSeen, "touched")

	// A session with no AMR reads back as an empty list.
	bare := newSession("bare", "u1")
	bare.AMR = nil
	bare.ACR = ""
	require.NoError(t, s.CreateSession(ctx, bare))
	got, err = s.GetSession(ctx, "bare")
	require.NoError(t, err)
	assert.Empty(t, got.AMR)
	assert.Empty(t, got.ACR)

	require.ErrorIs(t, s.CreateSession(ctx, newSession("hash-of-cookie", "u1")), store.ErrAlreadyExists)

	_, err = s.GetSession(ctx, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testSessionDelete(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateUser(ctx, newUser("u1", "a@example.com", store.PopulationAgent)))
	require.NoError(t, s.CreateUser(ctx, newUser("u2", "b@example.com", store.PopulationAgent)))
	for _, se := range []store.Session{
		newSession("s1", "u1"), newSession("s2", "u1"), newSession("s3", "u1"), newSession("s4", "u2"),
	} {
		require.NoError(t, s.CreateSession(ctx, se))
	}

	require.NoError(t, s.DeleteSession(ctx, "s1"))
	_, err := s.GetSession(ctx, "s1")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetSession(ctx, "s2")
	require.NoError(t, err, "only the named session ends")
	require.NoError(t, s.DeleteSession(ctx, "s1"), "ending a session twice is not an error")

	require.NoError(t, s.DeleteUserSessions(ctx, "u1"))
	for _, id := range []string{"s2", "s3"} {
		_, err := s.GetSession(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound, id)
	}
	got, err := s.GetSession(ctx, "s4")
	require.NoError(t, err, "another user's session stays")
	assert.Equal(t, "u2", got.UserID)
	require.NoError(t, s.DeleteUserSessions(ctx, "u1"), "a user without sessions is not an error")
}

func testLoginFlowCreateGet(t *testing.T, s store.Store) {
	// A new flow: no user, no methods, no auth time yet.
	require.NoError(t, s.CreateLoginFlow(ctx, newLoginFlow("f1")))
	got, err := s.GetLoginFlow(ctx, "f1")
	require.NoError(t, err)
	assert.Equal(t, "f1", got.ID)
	assert.Equal(t, store.FlowPassword, got.State)
	assert.Empty(t, got.UserID)
	assert.Empty(t, got.SessionID)
	assert.Equal(t, "app", got.ClientID)
	assert.Equal(t, "client_id=app&response_type=code&scope=openid", got.AuthorizeForm)
	assert.Empty(t, got.Methods)
	assert.Zero(t, got.Failures)
	assert.Nil(t, got.AuthTime)
	sameTime(t, base, got.CreatedAt, "created_at")
	sameTime(t, base.Add(15*time.Minute), got.ExpiresAt, "expires_at")

	// A flow with every field set.
	authTime := base.Add(-30 * time.Second)
	f := store.LoginFlow{
		ID: "f2", State: store.FlowSecondFactor, UserID: "u1", SessionID: "sess", ClientID: "other",
		AuthorizeForm: "client_id=other&redirect_uri=https%3A%2F%2Fx.example%2Fcb&state=a%26b",
		Methods:       store.Strings{"pwd", "otp"}, Failures: 2, AuthTime: &authTime,
		CreatedAt: base.Add(time.Second), ExpiresAt: base.Add(time.Hour),
	}
	require.NoError(t, s.CreateLoginFlow(ctx, f))
	got, err = s.GetLoginFlow(ctx, "f2")
	require.NoError(t, err)
	assert.Equal(t, store.FlowSecondFactor, got.State)
	assert.Equal(t, "u1", got.UserID)
	assert.Equal(t, "sess", got.SessionID)
	assert.Equal(t, "other", got.ClientID)
	assert.Equal(t, f.AuthorizeForm, got.AuthorizeForm)
	assert.Equal(t, store.Strings{"pwd", "otp"}, got.Methods)
	assert.Equal(t, 2, got.Failures)
	require.NotNil(t, got.AuthTime)
	sameTime(t, authTime, *got.AuthTime, "auth_time")
	sameTime(t, f.CreatedAt, got.CreatedAt, "created_at")
	sameTime(t, f.ExpiresAt, got.ExpiresAt, "expires_at")

	require.ErrorIs(t, s.CreateLoginFlow(ctx, newLoginFlow("f1")), store.ErrAlreadyExists)
	_, err = s.GetLoginFlow(ctx, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, s.DeleteLoginFlow(ctx, "f1"))
	_, err = s.GetLoginFlow(ctx, "f1")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetLoginFlow(ctx, "f2")
	require.NoError(t, err, "only the named flow is deleted")
}

func testLoginFlowUpdate(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateLoginFlow(ctx, newLoginFlow("f1")))

	authTime := base.Add(time.Minute)
	f := newLoginFlow("f1")
	f.State = store.FlowSecondFactor
	f.UserID = "u1"
	f.SessionID = "sess"
	f.Methods = store.Strings{"pwd"}
	f.Failures = 1
	f.AuthTime = &authTime
	require.NoError(t, s.UpdateLoginFlow(ctx, f, store.FlowPassword))

	got, err := s.GetLoginFlow(ctx, "f1")
	require.NoError(t, err)
	assert.Equal(t, store.FlowSecondFactor, got.State)
	assert.Equal(t, "u1", got.UserID)
	assert.Equal(t, "sess", got.SessionID)
	assert.Equal(t, store.Strings{"pwd"}, got.Methods)
	assert.Equal(t, 1, got.Failures)
	require.NotNil(t, got.AuthTime)
	sameTime(t, authTime, *got.AuthTime, "auth_time")
	assert.Equal(t, "app", got.ClientID)
	assert.Equal(t, "client_id=app&response_type=code&scope=openid", got.AuthorizeForm)
	sameTime(t, base, got.CreatedAt, "created_at")

	// A replayed password step: the flow is no longer in "password".
	stale := f
	stale.State = store.FlowConsent
	stale.UserID = "intruder"
	err = s.UpdateLoginFlow(ctx, stale, store.FlowPassword)
	require.ErrorIs(t, err, store.ErrConflict)
	assert.NotErrorIs(t, err, store.ErrNotFound)
	got, err = s.GetLoginFlow(ctx, "f1")
	require.NoError(t, err)
	assert.Equal(t, store.FlowSecondFactor, got.State, "a refused update changes nothing")
	assert.Equal(t, "u1", got.UserID)

	// The next step from the right state, clearing the auth time.
	next := f
	next.State = store.FlowDone
	next.Methods = store.Strings{"pwd", "otp"}
	next.AuthTime = nil
	require.NoError(t, s.UpdateLoginFlow(ctx, next, store.FlowSecondFactor))
	got, err = s.GetLoginFlow(ctx, "f1")
	require.NoError(t, err)
	assert.Equal(t, store.FlowDone, got.State)
	assert.Equal(t, store.Strings{"pwd", "otp"}, got.Methods)
	assert.Nil(t, got.AuthTime)

	missing := newLoginFlow("missing")
	missing.State = store.FlowSecondFactor
	err = s.UpdateLoginFlow(ctx, missing, store.FlowPassword)
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.NotErrorIs(t, err, store.ErrConflict)
}

// testLoginFlowUpdateRace: of concurrent submissions of one step, exactly
// one moves the flow on. Several flows are raced in turn, for the reason
// given at testOAuth2DeactivateRace.
func testLoginFlowUpdateRace(t *testing.T, s store.Store) {
	const rounds, n = 10, 20
	for round := range rounds {
		id := fmt.Sprintf("f%d", round)
		require.NoError(t, s.CreateLoginFlow(ctx, newLoginFlow(id)))

		var wins, conflicts atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := newLoginFlow(id)
				f.State = store.FlowSecondFactor
				f.UserID = fmt.Sprintf("u%d", i)
				<-start
				err := s.UpdateLoginFlow(ctx, f, store.FlowPassword)
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(f.UserID)
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("%s: unexpected error: %v", id, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		require.EqualValues(t, 1, wins.Load(), "%s: exactly one update wins", id)
		require.EqualValues(t, n-1, conflicts.Load(), id)

		got, err := s.GetLoginFlow(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, store.FlowSecondFactor, got.State, id)
		assert.Equal(t, winner.Load(), got.UserID, "%s: the stored flow is the winner's", id)
	}
}

func testConsent(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateUser(ctx, newUser("u1", "a@example.com", store.PopulationAgent)))
	require.NoError(t, s.CreateUser(ctx, newUser("u2", "b@example.com", store.PopulationAgent)))
	require.NoError(t, s.CreateClient(ctx, newClient("app", "App")))
	require.NoError(t, s.CreateClient(ctx, newClient("other", "Other")))

	_, err := s.GetConsent(ctx, "u1", "app")
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, s.SaveConsent(ctx, store.Consent{UserID: "u1", ClientID: "app", Scopes: store.Strings{"openid", "profile"}, GrantedAt: base}))
	got, err := s.GetConsent(ctx, "u1", "app")
	require.NoError(t, err)
	assert.Equal(t, "u1", got.UserID)
	assert.Equal(t, "app", got.ClientID)
	assert.Equal(t, store.Strings{"openid", "profile"}, got.Scopes)
	sameTime(t, base, got.GrantedAt, "granted_at")

	// Consent is per user and per client.
	_, err = s.GetConsent(ctx, "u2", "app")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetConsent(ctx, "u1", "other")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.SaveConsent(ctx, store.Consent{UserID: "u1", ClientID: "other", Scopes: store.Strings{"openid"}, GrantedAt: base}))

	// Saving again replaces the scopes and the time.
	later := base.Add(time.Hour)
	require.NoError(t, s.SaveConsent(ctx, store.Consent{UserID: "u1", ClientID: "app", Scopes: store.Strings{"openid", "email"}, GrantedAt: later}))
	got, err = s.GetConsent(ctx, "u1", "app")
	require.NoError(t, err)
	assert.Equal(t, store.Strings{"openid", "email"}, got.Scopes)
	sameTime(t, later, got.GrantedAt, "granted_at")

	got, err = s.GetConsent(ctx, "u1", "other")
	require.NoError(t, err)
	assert.Equal(t, store.Strings{"openid"}, got.Scopes, "another client's consent is untouched")
	sameTime(t, base, got.GrantedAt, "other granted_at")

	// Deleting a client takes its consents with it.
	require.NoError(t, s.DeleteClient(ctx, "other"))
	_, err = s.GetConsent(ctx, "u1", "other")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetConsent(ctx, "u1", "app")
	require.NoError(t, err)
}

// testLoginFlowAttempt: each attempt is counted in the flow, parallel
// ones too, and only while the flow is in the named state.
func testLoginFlowAttempt(t *testing.T, s store.Store) {
	f := newLoginFlow("f1")
	f.State, f.UserID, f.Methods = store.FlowSecondFactor, "u1", store.Strings{"pwd"}
	require.NoError(t, s.CreateLoginFlow(ctx, f))
	for i := 1; i <= 2; i++ {
		got, err := s.AttemptLoginFlow(ctx, "f1", store.FlowSecondFactor)
		require.NoError(t, err)
		assert.Equal(t, i, got.Failures)
		assert.Equal(t, "u1", got.UserID, "the flow comes back whole")
		assert.Equal(t, store.Strings{"pwd"}, got.Methods)
		assert.Equal(t, "client_id=app&response_type=code&scope=openid", got.AuthorizeForm)
		sameTime(t, f.ExpiresAt, got.ExpiresAt, "expires_at")
	}

	_, err := s.AttemptLoginFlow(ctx, "f1", store.FlowPassword)
	require.ErrorIs(t, err, store.ErrNotFound, "another state")
	_, err = s.AttemptLoginFlow(ctx, "missing", store.FlowSecondFactor)
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetLoginFlow(ctx, "f1")
	require.NoError(t, err)
	assert.Equal(t, 2, got.Failures, "a refused attempt counts nothing")

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.AttemptLoginFlow(ctx, "f1", store.FlowSecondFactor)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err = s.GetLoginFlow(ctx, "f1")
	require.NoError(t, err)
	assert.Equal(t, 2+n, got.Failures, "every parallel attempt is counted")
}

func testSignOutAll(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateClient(ctx, newClient("app", "App")))
	for _, id := range []string{"u1", "u2", "admin"} {
		require.NoError(t, s.CreateUser(ctx, newUser(id, id+"@example.com", store.PopulationAgent)))
	}
	for _, se := range []store.Session{newSession("s1", "u1"), newSession("s2", "u1"), newSession("s3", "u2"), newSession("s4", "admin")} {
		require.NoError(t, s.CreateSession(ctx, se))
	}
	token := func(kind, sig, subject string) store.OAuth2Request {
		r := newOAuth2Request(kind, sig, "req-"+sig, "app")
		r.Subject = subject
		return r
	}
	rows := []store.OAuth2Request{
		token(store.KindAuthorizeCode, "u1-code", "u1"),
		token(store.KindAccessToken, "u1-access", "u1"),
		token(store.KindRefreshToken, "u1-refresh", "u1"),
		token(store.KindAccessToken, "u2-access", "u2"),
		token(store.KindAccessToken, "admin-access", "admin"),
		token(store.KindAccessToken, "client-access", "app"), // client_credentials: the client's own
	}
	for _, r := range rows {
		require.NoError(t, s.CreateOAuth2Request(ctx, r))
	}
	flow := func(id, userID string) store.LoginFlow {
		f := newLoginFlow(id)
		f.UserID = userID
		return f
	}
	for _, f := range []store.LoginFlow{flow("f-u1", "u1"), flow("f-admin", "admin"), flow("f-anon", "")} {
		require.NoError(t, s.CreateLoginFlow(ctx, f))
	}
	for _, userID := range []string{"u2", "admin"} {
		require.NoError(t, s.CreateWebAuthnSession(ctx, store.WebAuthnSession{ID: "c-" + userID, UserID: userID, Data: "{}", ExpiresAt: base.Add(time.Hour)}))
	}

	sessions, tokens, err := s.SignOutAll(ctx, "admin")
	require.NoError(t, err)
	assert.EqualValues(t, 3, sessions)
	assert.EqualValues(t, 4, tokens)
	for _, id := range []string{"s1", "s2", "s3"} {
		_, err := s.GetSession(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound, id)
	}
	_, err = s.GetSession(ctx, "s4")
	require.NoError(t, err, "the admin's own session stays")
	_, err = s.GetLoginFlow(ctx, "f-u1")
	require.ErrorIs(t, err, store.ErrNotFound, "a user's sign-in in progress ends")
	for _, id := range []string{"f-admin", "f-anon"} {
		_, err = s.GetLoginFlow(ctx, id)
		require.NoError(t, err, "%s stays (the admin's; one still at its password step)", id)
	}
	_, err = s.TakeWebAuthnSession(ctx, "c-u2")
	require.ErrorIs(t, err, store.ErrNotFound, "a user's ceremony ends")
	_, err = s.TakeWebAuthnSession(ctx, "c-admin")
	require.NoError(t, err, "the admin's ceremony stays")
	for _, r := range rows {
		_, err := s.GetOAuth2Request(ctx, r.Kind, r.Signature)
		if r.Subject == "admin" || r.Subject == "app" {
			require.NoError(t, err, "%s stays", r.Signature)
		} else {
			require.ErrorIs(t, err, store.ErrNotFound, r.Signature)
		}
	}

	// Nobody spared: the admin's go too; a second run finds nothing.
	sessions, tokens, err = s.SignOutAll(ctx, "")
	require.NoError(t, err)
	assert.EqualValues(t, 1, sessions)
	assert.EqualValues(t, 1, tokens)
	sessions, tokens, err = s.SignOutAll(ctx, "")
	require.NoError(t, err)
	assert.Zero(t, sessions)
	assert.Zero(t, tokens)
	_, err = s.GetOAuth2Request(ctx, store.KindAccessToken, "client-access")
	require.NoError(t, err, "a client's own token is never a user's")
}

// testLoginFlowUser: a flow step's flow and user in one load, with or
// without an attempt counted, only in the named state.
func testLoginFlowUser(t *testing.T, s store.Store) {
	u := newUser("u1", "ann@example.com", store.PopulationAgent)
	u.MFARequired = true
	require.NoError(t, s.CreateUser(ctx, u))
	f := newLoginFlow("f1")
	f.State, f.UserID, f.Methods = store.FlowSecondFactor, "u1", store.Strings{"pwd"}
	require.NoError(t, s.CreateLoginFlow(ctx, f))

	for _, tc := range []struct {
		attempt bool
		want    int
	}{{false, 0}, {true, 1}, {true, 2}, {false, 2}} {
		gf, gu, err := s.LoginFlowUser(ctx, "f1", store.FlowSecondFactor, tc.attempt)
		require.NoError(t, err)
		assert.Equal(t, tc.want, gf.Failures, "attempt %v", tc.attempt)
		assert.Equal(t, "f1", gf.ID)
		assert.Equal(t, store.Strings{"pwd"}, gf.Methods)
		assert.Equal(t, "client_id=app&response_type=code&scope=openid", gf.AuthorizeForm)
		sameTime(t, f.ExpiresAt, gf.ExpiresAt, "expires_at")
		assert.Equal(t, "u1", gu.ID)
		assert.Equal(t, "ann@example.com", gu.Email)
		assert.Equal(t, store.PopulationAgent, gu.Population)
		assert.True(t, gu.MFARequired)
		sameTime(t, base, gu.CreatedAt, "user created_at")
	}
	for _, attempt := range []bool{false, true} {
		_, _, err := s.LoginFlowUser(ctx, "f1", store.FlowPassword, attempt)
		require.ErrorIs(t, err, store.ErrNotFound, "another state")
		_, _, err = s.LoginFlowUser(ctx, "missing", store.FlowSecondFactor, attempt)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	got, err := s.GetLoginFlow(ctx, "f1")
	require.NoError(t, err)
	assert.Equal(t, 2, got.Failures, "a refused load counts nothing")

	// A flow whose user is gone is not found.
	orphan := newLoginFlow("f2")
	orphan.State, orphan.UserID = store.FlowSecondFactor, "gone"
	require.NoError(t, s.CreateLoginFlow(ctx, orphan))
	for _, attempt := range []bool{false, true} {
		_, _, err := s.LoginFlowUser(ctx, "f2", store.FlowSecondFactor, attempt)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	got, err = s.GetLoginFlow(ctx, "f2")
	require.NoError(t, err)
	assert.Equal(t, 1, got.Failures, "the attempt is counted all the same")
}
