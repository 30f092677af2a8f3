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

func testOAuth2CreateGet(t *testing.T, s store.Store) {
	r := store.OAuth2Request{
		Kind:        store.KindAuthorizeCode,
		Signature:   "sig-abc",
		RequestID:   "req-1",
		ClientID:    "app",
		Subject:     "user-1",
		Active:      true,
		RequestedAt: base,
		ExpiresAt:   base.Add(10 * time.Minute),
		Data:        `{"form":{"redirect_uri":["https://app.example.com/cb"]},"session":{"amr":["pwd","otp"]}}`,
	}
	require.NoError(t, s.CreateOAuth2Request(ctx, r))

	got, err := s.GetOAuth2Request(ctx, store.KindAuthorizeCode, "sig-abc")
	require.NoError(t, err)
	assert.Equal(t, r.Kind, got.Kind)
	assert.Equal(t, r.Signature, got.Signature)
	assert.Equal(t, r.RequestID, got.RequestID)
	assert.Equal(t, r.ClientID, got.ClientID)
	assert.Equal(t, r.Subject, got.Subject)
	assert.True(t, got.Active)
	sameTime(t, r.RequestedAt, got.RequestedAt, "requested_at")
	sameTime(t, r.ExpiresAt, got.ExpiresAt, "expires_at")
	assert.Equal(t, r.Data, got.Data)

	// A row created inactive, with no subject (client credentials).
	inactive := newOAuth2Request(store.KindAccessToken, "sig-inactive", "req-2", "app")
	inactive.Active = false
	inactive.Subject = ""
	require.NoError(t, s.CreateOAuth2Request(ctx, inactive))
	got, err = s.GetOAuth2Request(ctx, store.KindAccessToken, "sig-inactive")
	require.NoError(t, err)
	assert.False(t, got.Active)
	assert.Empty(t, got.Subject)

	_, err = s.GetOAuth2Request(ctx, store.KindAuthorizeCode, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetOAuth2Request(ctx, store.KindAccessToken, "sig-abc")
	require.ErrorIs(t, err, store.ErrNotFound, "a signature is looked up within its kind")
}

// testOAuth2ConcurrentCreate: rows created at once (a store may commit
// them together) all land, each exactly as given, and a duplicate among
// them fails alone.
func testOAuth2ConcurrentCreate(t *testing.T, s store.Store) {
	const n = 60
	rows := make([]store.OAuth2Request, n)
	for i := range rows {
		rows[i] = newOAuth2Request(store.KindAccessToken, fmt.Sprintf("sig-%02d", i), fmt.Sprintf("req-%02d", i), "app")
		rows[i].Subject = fmt.Sprintf("user-%d", i)
		rows[i].Active = i%3 != 0
		rows[i].RequestedAt = base.Add(time.Duration(i)*time.Second + 123456*time.Microsecond)
		rows[i].ExpiresAt = rows[i].RequestedAt.Add(time.Duration(i+1) * time.Minute)
		rows[i].Data = fmt.Sprintf(`{"n":%d,"quote":"\"a,b\" {c}"}`, i)
	}
	// The last ten are copies of row 0's key: exactly one of the eleven wins.
	for i := n - 10; i < n; i++ {
		rows[i].Signature, rows[i].RequestID = "sig-00", fmt.Sprintf("dup-%d", i)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateOAuth2Request(ctx, rows[i])
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		if i != 0 && i < n-10 {
			require.NoError(t, err, "row %d", i)
			continue
		}
		if err == nil {
			require.Equal(t, -1, won, "two rows with one key were both stored")
			won = i
			continue
		}
		require.ErrorIs(t, err, store.ErrAlreadyExists, "row %d", i)
	}
	require.NotEqual(t, -1, won, "one of the rows with the same key is stored")
	for i, want := range rows {
		if i == 0 || i >= n-10 {
			if i != won {
				continue
			}
		}
		got, err := s.GetOAuth2Request(ctx, want.Kind, want.Signature)
		require.NoError(t, err, "row %d", i)
		assert.Equal(t, want.RequestID, got.RequestID)
		assert.Equal(t, want.Subject, got.Subject)
		assert.Equal(t, want.Active, got.Active, "row %d", i)
		assert.True(t, want.RequestedAt.Equal(got.RequestedAt), "row %d: %v != %v", i, want.RequestedAt, got.RequestedAt)
		assert.True(t, want.ExpiresAt.Equal(got.ExpiresAt), "row %d", i)
		assert.Equal(t, want.Data, got.Data)
	}
}

// testOAuth2CreateMany: a code's rows are written all or none, whether
// alone, together with other callers' rows (a store may commit them in
// one batch), or in a transaction.
func testOAuth2CreateMany(t *testing.T, s store.Store) {
	group := func(sig string) []store.OAuth2Request {
		rows := []store.OAuth2Request{
			newOAuth2Request(store.KindAuthorizeCode, sig, "req-"+sig, "app"),
			newOAuth2Request(store.KindPKCE, sig, "req-"+sig, "app"),
			newOAuth2Request(store.KindOIDC, sig, "req-"+sig, "app"),
		}
		for i := range rows {
			rows[i].Data = fmt.Sprintf(`{"kind":%q,"sig":%q}`, rows[i].Kind, sig)
		}
		return rows
	}
	exists := func(kind, sig string) bool {
		_, err := s.GetOAuth2Request(ctx, kind, sig)
		if errors.Is(err, store.ErrNotFound) {
			return false
		}
		require.NoError(t, err)
		return true
	}
	require.NoError(t, s.CreateOAuth2Requests(ctx, nil), "nothing to write")
	require.NoError(t, s.CreateOAuth2Requests(ctx, group("alone")))
	for _, want := range group("alone") {
		got, err := s.GetOAuth2Request(ctx, want.Kind, want.Signature)
		require.NoError(t, err, want.Kind)
		assert.Equal(t, want.Data, got.Data)
		assert.Equal(t, want.RequestID, got.RequestID)
		assert.True(t, want.ExpiresAt.Equal(got.ExpiresAt))
	}

	// 20 callers at once; one of them repeats a row that exists, so its
	// whole group fails and the others all land.
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows := group(fmt.Sprintf("g%02d", i))
			if i == 7 {
				rows[1].Signature = "alone" // the PKCE row of "alone" exists
			}
			errs[i] = s.CreateOAuth2Requests(ctx, rows)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		sig := fmt.Sprintf("g%02d", i)
		if i == 7 {
			require.ErrorIs(t, err, store.ErrAlreadyExists)
			assert.False(t, exists(store.KindAuthorizeCode, sig), "a failed group leaves no row")
			assert.False(t, exists(store.KindOIDC, sig), "a failed group leaves no row")
			continue
		}
		require.NoError(t, err, "group %d", i)
		for _, kind := range []string{store.KindAuthorizeCode, store.KindPKCE, store.KindOIDC} {
			assert.True(t, exists(kind, sig), "group %d, %s", i, kind)
		}
	}
	got, err := s.GetOAuth2Request(ctx, store.KindPKCE, "alone")
	require.NoError(t, err)
	assert.Equal(t, "req-alone", got.RequestID, "the existing row is unchanged")

	// In a transaction the rows go with it.
	boom := errors.New("boom")
	err = s.InTx(ctx, func(ctx context.Context) error {
		require.NoError(t, s.CreateOAuth2Requests(ctx, group("tx")))
		_, err := s.GetOAuth2Request(ctx, store.KindOIDC, "tx")
		assert.NoError(t, err, "the transaction sees its rows")
		return boom
	})
	require.ErrorIs(t, err, boom)
	assert.False(t, exists(store.KindAuthorizeCode, "tx"), "rolled back")
}

// testOAuth2Take: a row is returned and gone in one step; of many
// racing takers exactly one gets it.
func testOAuth2Take(t *testing.T, s store.Store) {
	want := newOAuth2Request(store.KindPKCE, "sig", "req-1", "app")
	want.Data = `{"form":{"code_challenge":["abc"]}}`
	require.NoError(t, s.CreateOAuth2Request(ctx, want))
	require.NoError(t, s.CreateOAuth2Request(ctx, newOAuth2Request(store.KindOIDC, "sig", "req-1", "app")))
	got, err := s.TakeOAuth2Request(ctx, store.KindPKCE, "sig")
	require.NoError(t, err)
	assert.Equal(t, want.Data, got.Data)
	assert.Equal(t, want.RequestID, got.RequestID)
	assert.True(t, want.ExpiresAt.Equal(got.ExpiresAt))
	_, err = s.GetOAuth2Request(ctx, store.KindPKCE, "sig")
	require.ErrorIs(t, err, store.ErrNotFound, "taken")
	_, err = s.GetOAuth2Request(ctx, store.KindOIDC, "sig")
	require.NoError(t, err, "another kind under the signature stays")
	_, err = s.TakeOAuth2Request(ctx, store.KindPKCE, "sig")
	require.ErrorIs(t, err, store.ErrNotFound, "taken twice")

	require.NoError(t, s.CreateOAuth2Request(ctx, newOAuth2Request(store.KindPKCE, "raced", "req-2", "app")))
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.TakeOAuth2Request(ctx, store.KindPKCE, "raced")
			if err == nil {
				won.Add(1)
				return
			}
			assert.ErrorIs(t, err, store.ErrNotFound)
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 1, won.Load(), "exactly one taker gets the row")
}

func testOAuth2Duplicate(t *testing.T, s store.Store) {
	r := newOAuth2Request(store.KindAccessToken, "sig", "req-1", "app")
	require.NoError(t, s.CreateOAuth2Request(ctx, r))

	dup := newOAuth2Request(store.KindAccessToken, "sig", "req-2", "other")
	require.ErrorIs(t, s.CreateOAuth2Request(ctx, dup), store.ErrAlreadyExists)
	got, err := s.GetOAuth2Request(ctx, store.KindAccessToken, "sig")
	require.NoError(t, err)
	assert.Equal(t, "req-1", got.RequestID, "a refused insert changes nothing")

	// The same signature under another kind is another row.
	other := newOAuth2Request(store.KindRefreshToken, "sig", "req-3", "app")
	require.NoError(t, s.CreateOAuth2Request(ctx, other))
	got, err = s.GetOAuth2Request(ctx, store.KindRefreshToken, "sig")
	require.NoError(t, err)
	assert.Equal(t, "req-3", got.RequestID)
	got, err = s.GetOAuth2Request(ctx, store.KindAccessToken, "sig")
	require.NoError(t, err)
	assert.Equal(t, "req-1", got.RequestID)
}

func testOAuth2Deactivate(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateOAuth2Request(ctx, newOAuth2Request(store.KindAuthorizeCode, "code", "req-1", "app")))
	// Same signature, other kind: must not be touched.
	require.NoError(t, s.CreateOAuth2Request(ctx, newOAuth2Request(store.KindPKCE, "code", "req-1", "app")))

	require.NoError(t, s.DeactivateOAuth2Request(ctx, store.KindAuthorizeCode, "code"))
	got, err := s.GetOAuth2Request(ctx, store.KindAuthorizeCode, "code")
	require.NoError(t, err, "a deactivated row is still readable")
	assert.False(t, got.Active)
	assert.Equal(t, "req-1", got.RequestID)

	pkce, err := s.GetOAuth2Request(ctx, store.KindPKCE, "code")
	require.NoError(t, err)
	assert.True(t, pkce.Active, "only the named kind is deactivated")

	err = s.DeactivateOAuth2Request(ctx, store.KindAuthorizeCode, "code")
	require.ErrorIs(t, err, store.ErrConflict, "a code is used once")
	assert.NotErrorIs(t, err, store.ErrNotFound)

	err = s.DeactivateOAuth2Request(ctx, store.KindAuthorizeCode, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.NotErrorIs(t, err, store.ErrConflict)
}

// testOAuth2DeactivateRace is the authorization code's single-use
// guarantee: of many concurrent redemptions exactly one wins. It races
// several codes in turn: once the first round has opened the pool's
// connections the later ones run truly in parallel, which is what exposes
// a read-then-write implementation.
func testOAuth2DeactivateRace(t *testing.T, s store.Store) {
	const rounds, n = 10, 30
	for round := range rounds {
		sig := fmt.Sprintf("code-%d", round)
		require.NoError(t, s.CreateOAuth2Request(ctx, newOAuth2Request(store.KindAuthorizeCode, sig, "req-1", "app")))

		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := s.DeactivateOAuth2Request(ctx, store.KindAuthorizeCode, sig)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("%s: unexpected error: %v", sig, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		require.EqualValues(t, 1, wins.Load(), "%s: exactly one redemption wins", sig)
		require.EqualValues(t, n-1, conflicts.Load(), sig)

		got, err := s.GetOAuth2Request(ctx, store.KindAuthorizeCode, sig)
		require.NoError(t, err)
		assert.False(t, got.Active, sig)
	}
}

func testOAuth2Families(t *testing.T, s store.Store) {
	for _, r := range []store.OAuth2Request{
		newOAuth2Request(store.KindAccessToken, "a1", "fam", "app"),
		newOAuth2Request(store.KindAccessToken, "a2", "fam", "app"),
		newOAuth2Request(store.KindAccessToken, "a3", "other-fam", "app"),
		newOAuth2Request(store.KindRefreshToken, "r1", "fam", "app"),
	} {
		require.NoError(t, s.CreateOAuth2Request(ctx, r))
	}
	active := func(kind, sig string) bool {
		t.Helper()
		r, err := s.GetOAuth2Request(ctx, kind, sig)
		require.NoError(t, err, "%s %s", kind, sig)
		return r.Active
	}

	require.NoError(t, s.DeactivateOAuth2Requests(ctx, store.KindAccessToken, "fam"))
	assert.False(t, active(store.KindAccessToken, "a1"))
	assert.False(t, active(store.KindAccessToken, "a2"))
	assert.True(t, active(store.KindAccessToken, "a3"), "another request id is untouched")
	assert.True(t, active(store.KindRefreshToken, "r1"), "another kind is untouched")
	// Deactivating an already inactive or empty family is not an error.
	require.NoError(t, s.DeactivateOAuth2Requests(ctx, store.KindAccessToken, "fam"))
	require.NoError(t, s.DeactivateOAuth2Requests(ctx, store.KindAccessToken, "no-such-family"))

	require.NoError(t, s.DeleteOAuth2Requests(ctx, store.KindAccessToken, "fam"))
	for _, sig := range []string{"a1", "a2"} {
		_, err := s.GetOAuth2Request(ctx, store.KindAccessToken, sig)
		require.ErrorIs(t, err, store.ErrNotFound, sig)
	}
	assert.True(t, active(store.KindAccessToken, "a3"), "another request id stays")
	assert.True(t, active(store.KindRefreshToken, "r1"), "another kind stays")
	require.NoError(t, s.DeleteOAuth2Requests(ctx, store.KindAccessToken, "no-such-family"))
}

func testOAuth2Delete(t *testing.T, s store.Store) {
	require.NoError(t, s.CreateOAuth2Request(ctx, newOAuth2Request(store.KindOIDC, "sig", "req-1", "app")))
	require.NoError(t, s.CreateOAuth2Request(ctx, newOAuth2Request(store.KindPKCE, "sig", "req-1", "app")))

	require.NoError(t, s.DeleteOAuth2Request(ctx, store.KindOIDC, "sig"))
	_, err := s.GetOAuth2Request(ctx, store.KindOIDC, "sig")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetOAuth2Request(ctx, store.KindPKCE, "sig")
	require.NoError(t, err, "only the named kind is deleted")

	require.NoError(t, s.DeleteOAuth2Request(ctx, store.KindOIDC, "sig"), "deleting twice is not an error")
	require.NoError(t, s.DeleteOAuth2Request(ctx, store.KindOIDC, "missing"))
}

func testDeleteExpired(t *testing.T, s store.Store) {
	now := base.Add(time.Hour)
	require.NoError(t, s.CreateUser(ctx, newUser("u1", "exp@example.com", store.PopulationAgent)))

	expiredReq := newOAuth2Request(store.KindAccessToken, "old-access", "req-1", "app")
	expiredReq.ExpiresAt = now.Add(-time.Second)
	expiredCode := newOAuth2Request(store.KindAuthorizeCode, "old-code", "req-1", "app")
	expiredCode.ExpiresAt = now.Add(-time.Microsecond)
	liveReq := newOAuth2Request(store.KindRefreshToken, "live-refresh", "req-1", "app")
	liveReq.ExpiresAt = now.Add(time.Microsecond)
	for _, r := range []store.OAuth2Request{expiredReq, expiredCode, liveReq} {
		require.NoError(t, s.CreateOAuth2Request(ctx, r))
	}

	expiredFlow := newLoginFlow("old-flow")
	expiredFlow.ExpiresAt = now.Add(-time.Minute)
	liveFlow := newLoginFlow("live-flow")
	liveFlow.ExpiresAt = now.Add(time.Minute)
	require.NoError(t, s.CreateLoginFlow(ctx, expiredFlow))
	require.NoError(t, s.CreateLoginFlow(ctx, liveFlow))

	expiredSession := newSession("old-session", "u1")
	expiredSession.ExpiresAt = now.Add(-time.Hour)
	liveSession := newSession("live-session", "u1")
	liveSession.ExpiresAt = now.Add(time.Hour)
	require.NoError(t, s.CreateSession(ctx, expiredSession))
	require.NoError(t, s.CreateSession(ctx, liveSession))

	// Client assertion ids: one expired, one live.
	require.NoError(t, s.UseJTI(ctx, "old-jti", now.Add(-time.Second), base))
	require.NoError(t, s.UseJTI(ctx, "live-jti", now.Add(time.Second), base))

	n, err := s.DeleteExpired(ctx, now)
	require.NoError(t, err)
	assert.EqualValues(t, 5, n, "2 OAuth 2.0 rows, 1 flow, 1 session, 1 assertion, nothing live")

	for _, sig := range []struct{ kind, sig string }{
		{store.KindAccessToken, "old-access"}, {store.KindAuthorizeCode, "old-code"},
	} {
		_, err := s.GetOAuth2Request(ctx, sig.kind, sig.sig)
		require.ErrorIs(t, err, store.ErrNotFound, sig.sig)
	}
	_, err = s.GetOAuth2Request(ctx, store.KindRefreshToken, "live-refresh")
	require.NoError(t, err)

	_, err = s.GetLoginFlow(ctx, "old-flow")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetLoginFlow(ctx, "live-flow")
	require.NoError(t, err)

	_, err = s.GetSession(ctx, "old-session")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetSession(ctx, "live-session")
	require.NoError(t, err)

	// The expired assertion id is gone: it can be recorded again even by a
	// caller whose clock is before its old expiry. The live one is kept.
	require.NoError(t, s.UseJTI(ctx, "old-jti", now.Add(time.Hour), base))
	require.ErrorIs(t, s.UseJTI(ctx, "live-jti", now.Add(time.Hour), base), store.ErrAlreadyExists)

	n, err = s.DeleteExpired(ctx, now)
	require.NoError(t, err)
	assert.EqualValues(t, 0, n, "a second run finds nothing")
}

func testUseJTI(t *testing.T, s store.Store) {
	exp := base.Add(5 * time.Minute)
	require.NoError(t, s.UseJTI(ctx, "jti-1", exp, base))

	err := s.UseJTI(ctx, "jti-1", exp, base.Add(time.Minute))
	require.ErrorIs(t, err, store.ErrAlreadyExists, "a replayed assertion")
	require.ErrorIs(t, s.UseJTI(ctx, "jti-1", exp.Add(time.Hour), exp.Add(-time.Microsecond)), store.ErrAlreadyExists,
		"still recorded just before expiry")

	require.NoError(t, s.UseJTI(ctx, "jti-2", exp, base), "another id is independent")

	// Once expired, the id is forgotten and may be used again.
	later := exp.Add(time.Second)
	require.NoError(t, s.UseJTI(ctx, "jti-1", later.Add(5*time.Minute), later))
	require.ErrorIs(t, s.UseJTI(ctx, "jti-1", later.Add(5*time.Minute), later), store.ErrAlreadyExists,
		"the new use is recorded until its own expiry")
}

func testSigningKeys(t *testing.T, s store.Store) {
	keys, err := s.ListSigningKeys(ctx)
	require.NoError(t, err)
	assert.Empty(t, keys)

	oldRetired := base.Add(-time.Hour)
	for _, k := range []store.SigningKey{
		{KID: "rs-1", Alg: "RS256", PrivateKeyEnc: []byte{0x00, 0x01, 0xff, 0x10}, Active: true, CreatedAt: base},
		{KID: "rs-2", Alg: "RS256", PrivateKeyEnc: []byte{0x02, 0x00}, Active: true, CreatedAt: base.Add(time.Hour)},
		{KID: "es-1", Alg: "ES256", PrivateKeyEnc: []byte{0x03}, Active: true, CreatedAt: base.Add(2 * time.Hour)},
		{KID: "rs-0", Alg: "RS256", PrivateKeyEnc: []byte{0x04}, Active: false, CreatedAt: base.Add(-2 * time.Hour), RetiredAt: &oldRetired},
	} {
		require.NoError(t, s.CreateSigningKey(ctx, k))
	}
	require.ErrorIs(t, s.CreateSigningKey(ctx, store.SigningKey{KID: "rs-1", Alg: "RS256", PrivateKeyEnc: []byte{1}, CreatedAt: base}),
		store.ErrAlreadyExists)

	keys, err = s.ListSigningKeys(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"es-1", "rs-2", "rs-1", "rs-0"}, kids(keys), "newest first")
	byKID := func(keys []store.SigningKey) map[string]store.SigningKey {
		m := map[string]store.SigningKey{}
		for _, k := range keys {
			m[k.KID] = k
		}
		return m
	}
	m := byKID(keys)
	assert.Equal(t, "RS256", m["rs-1"].Alg)
	assert.Equal(t, []byte{0x00, 0x01, 0xff, 0x10}, m["rs-1"].PrivateKeyEnc)
	assert.True(t, m["rs-1"].Active)
	assert.Nil(t, m["rs-1"].RetiredAt)
	sameTime(t, base, m["rs-1"].CreatedAt, "created_at")
	assert.False(t, m["rs-0"].Active)
	require.NotNil(t, m["rs-0"].RetiredAt)
	sameTime(t, oldRetired, *m["rs-0"].RetiredAt, "retired_at")

	retireAt := base.Add(3 * time.Hour)
	require.NoError(t, s.RetireSigningKeys(ctx, "RS256", retireAt))
	keys, err = s.ListSigningKeys(ctx)
	require.NoError(t, err)
	m = byKID(keys)
	for _, kid := range []string{"rs-1", "rs-2"} {
		assert.False(t, m[kid].Active, kid)
		if assert.NotNil(t, m[kid].RetiredAt, kid) {
			sameTime(t, retireAt, *m[kid].RetiredAt, kid+" retired_at")
		}
	}
	assert.True(t, m["es-1"].Active, "another alg is untouched")
	assert.Nil(t, m["es-1"].RetiredAt)
	require.NotNil(t, m["rs-0"].RetiredAt)
	sameTime(t, oldRetired, *m["rs-0"].RetiredAt, "an already retired key keeps its retirement time")
	assert.Equal(t, []byte{0x00, 0x01, 0xff, 0x10}, m["rs-1"].PrivateKeyEnc, "a retired key still verifies")

	require.NoError(t, s.DeleteSigningKey(ctx, "rs-1"))
	keys, err = s.ListSigningKeys(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"es-1", "rs-2", "rs-0"}, kids(keys))
}

func kids(keys []store.SigningKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KID
	}
	return out
}

func testOAuth2DeleteSubjectTokens(t *testing.T, s store.Store) {
	for i, sub := range []string{"u1", "u1", "u2"} {
		require.NoError(t, s.CreateOAuth2Request(ctx, store.OAuth2Request{Kind: store.KindRefreshToken, Signature: fmt.Sprintf("sig%d", i),
			RequestID: fmt.Sprintf("r%d", i), ClientID: "c", Subject: sub, Active: true, RequestedAt: base, ExpiresAt: base.Add(time.Hour), Data: "{}"}))
	}
	require.NoError(t, s.DeleteSubjectTokens(ctx, "u1"))
	for i, want := range []bool{false, false, true} {
		_, err := s.GetOAuth2Request(ctx, store.KindRefreshToken, fmt.Sprintf("sig%d", i))
		assert.Equal(t, want, err == nil, "sig%d", i)
	}
}
