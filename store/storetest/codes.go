package storetest

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
)

// testOneTimeCodes: one code per user and purpose, replaced only by a
// writer that read the current one, spent once, never after it expires,
// and swept by DeleteExpired.
func testOneTimeCodes(t *testing.T, s store.Store) {
	for _, id := range []string{"u1", "u2"} {
		require.NoError(t, s.CreateUser(ctx, newUser(id, id+"@example.com", store.PopulationAgent)))
	}
	_, err := s.GetOneTimeCode(ctx, "u1", "flow:a")
	require.ErrorIs(t, err, store.ErrNotFound)

	first := store.OneTimeCode{UserID: "u1", Purpose: "flow:a", Hash: []byte("h1"), Sends: 1, SentAt: base, ExpiresAt: base.Add(10 * time.Minute)}
	require.NoError(t, s.PutOneTimeCode(ctx, first, 0))
	require.ErrorIs(t, s.PutOneTimeCode(ctx, first, 0), store.ErrConflict, "a second first code")
	got, err := s.GetOneTimeCode(ctx, "u1", "flow:a")
	require.NoError(t, err)
	assert.Equal(t, []byte("h1"), got.Hash)
	assert.Equal(t, 1, got.Sends)
	sameTime(t, base, got.SentAt, "sent_at")
	sameTime(t, first.ExpiresAt, got.ExpiresAt, "expires_at")

	second := first
	second.Hash, second.Sends, second.SentAt = []byte("h2"), 2, base.Add(time.Minute)
	require.ErrorIs(t, s.PutOneTimeCode(ctx, second, 2), store.ErrConflict, "a stale read")
	require.NoError(t, s.PutOneTimeCode(ctx, second, 1))
	require.ErrorIs(t, s.UseOneTimeCode(ctx, "u1", "flow:a", []byte("h1"), base), store.ErrNotFound, "the replaced code")
	require.ErrorIs(t, s.UseOneTimeCode(ctx, "u1", "flow:b", []byte("h2"), base), store.ErrNotFound, "another purpose")
	require.ErrorIs(t, s.UseOneTimeCode(ctx, "u2", "flow:a", []byte("h2"), base), store.ErrNotFound, "another user")
	require.ErrorIs(t, s.UseOneTimeCode(ctx, "u1", "flow:a", []byte("h2"), second.ExpiresAt), store.ErrNotFound, "expired")
	require.NoError(t, s.UseOneTimeCode(ctx, "u1", "flow:a", []byte("h2"), base))
	require.ErrorIs(t, s.UseOneTimeCode(ctx, "u1", "flow:a", []byte("h2"), base), store.ErrNotFound, "used once")
	_, err = s.GetOneTimeCode(ctx, "u1", "flow:a")
	require.ErrorIs(t, err, store.ErrNotFound, "a used code is gone")

	// Of racing uses and racing sends, exactly one wins.
	require.NoError(t, s.PutOneTimeCode(ctx, first, 0))
	var used, put atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				if s.UseOneTimeCode(ctx, "u1", "flow:a", []byte("h1"), base) == nil {
					used.Add(1)
				}
				return
			}
			if s.PutOneTimeCode(ctx, store.OneTimeCode{UserID: "u2", Purpose: "p", Hash: []byte("x"), Sends: 1, SentAt: base, ExpiresAt: base.Add(time.Minute)}, 0) == nil {
				put.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), used.Load(), "concurrent uses")
	assert.Equal(t, int32(1), put.Load(), "concurrent first sends")

	require.NoError(t, s.DeleteOneTimeCode(ctx, "u2", "p"))
	_, err = s.GetOneTimeCode(ctx, "u2", "p")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.DeleteOneTimeCode(ctx, "u2", "p"), "deleting nothing is no error")

	// A user has one email factor at most.
	email := store.Factor{ID: "e1", UserID: "u1", Kind: store.FactorEmail, Name: "Email codes", Confirmed: true, CreatedAt: base}
	require.NoError(t, s.CreateFactor(ctx, email))
	email.ID = "e2"
	require.ErrorIs(t, s.CreateFactor(ctx, email), store.ErrAlreadyExists)
	email.UserID = "u2"
	require.NoError(t, s.CreateFactor(ctx, email), "another user's")
	require.NoError(t, s.TouchFactor(ctx, "e1", base.Add(time.Hour)))
	got1, err := s.GetFactor(ctx, "e1")
	require.NoError(t, err)
	require.NotNil(t, got1.LastUsedAt)
	sameTime(t, base.Add(time.Hour), *got1.LastUsedAt, "last_used_at")
	require.ErrorIs(t, s.TouchFactor(ctx, "nope", base), store.ErrNotFound)

	// A phone for codes by SMS: its number kept, one per user.
	phone := store.Factor{ID: "p1", UserID: "u1", Kind: store.FactorSMS, Name: "Phone", Phone: "+15551234567", CreatedAt: base}
	require.NoError(t, s.CreateFactor(ctx, phone))
	phone.ID = "p2"
	require.ErrorIs(t, s.CreateFactor(ctx, phone), store.ErrAlreadyExists)
	fs, _, err := s.ListFactorsAndCodes(ctx, "u1")
	require.NoError(t, err)
	i := slices.IndexFunc(fs, func(f store.Factor) bool { return f.ID == "p1" })
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, "+15551234567", fs[i].Phone)
	assert.False(t, fs[i].Confirmed)

	// Expired codes go with the clean-up; live ones stay.
	require.NoError(t, s.PutOneTimeCode(ctx, store.OneTimeCode{UserID: "u1", Purpose: "old", Hash: []byte("o"), Sends: 1, SentAt: base, ExpiresAt: base.Add(time.Minute)}, 0))
	require.NoError(t, s.PutOneTimeCode(ctx, store.OneTimeCode{UserID: "u1", Purpose: "live", Hash: []byte("l"), Sends: 1, SentAt: base, ExpiresAt: base.Add(time.Hour)}, 0))
	_, err = s.DeleteExpired(ctx, base.Add(2*time.Minute))
	require.NoError(t, err)
	_, err = s.GetOneTimeCode(ctx, "u1", "old")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetOneTimeCode(ctx, "u1", "live")
	require.NoError(t, err)
}
