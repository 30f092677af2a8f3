package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
)

func testThrottle(t *testing.T, s store.Store) {
	lim := store.Limit{Max: 3, Lock: time.Minute}
	for i := 1; i <= 3; i++ {
		th, err := s.Attempt(ctx, "k", lim, base)
		require.NoError(t, err)
		assert.True(t, th.Allowed, "attempt %d", i)
		assert.Equal(t, i, th.Failures)
	}
	th, err := s.Attempt(ctx, "k", lim, base.Add(time.Second))
	require.NoError(t, err)
	assert.False(t, th.Allowed, "the fourth attempt is refused")
	assert.True(t, base.Add(time.Second+time.Minute).Equal(th.RetryAt), "locked from the refused attempt: %v", th.RetryAt)
	th, err = s.Attempt(ctx, "k", lim, base.Add(30*time.Second))
	require.NoError(t, err)
	assert.False(t, th.Allowed, "still locked")
	assert.True(t, base.Add(time.Second+time.Minute).Equal(th.RetryAt), "the lock does not move")

	other, err := s.Attempt(ctx, "other", lim, base)
	require.NoError(t, err)
	assert.True(t, other.Allowed, "keys are independent")

	th, err = s.Attempt(ctx, "k", lim, base.Add(2*time.Minute))
	require.NoError(t, err)
	assert.True(t, th.Allowed, "an expired lock starts again")
	assert.Equal(t, 1, th.Failures)

	require.NoError(t, s.Success(ctx, "k"))
	require.NoError(t, s.Success(ctx, "k")) // never below zero
	th, err = s.Attempt(ctx, "k", lim, base.Add(2*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 1, th.Failures, "a refund takes an attempt back")

	require.NoError(t, s.ResetThrottle(ctx, "k"))
	th, err = s.Attempt(ctx, "k", lim, base.Add(2*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 1, th.Failures, "reset clears the count")

	// A success takes one attempt back from the shared key and clears
	// the others, and only those.
	for _, k := range []string{"shared", "shared", "a", "b", "untouched"} {
		_, err := s.Attempt(ctx, k, lim, base.Add(2*time.Minute))
		require.NoError(t, err)
	}
	require.NoError(t, s.Success(ctx, "shared", "a", "b"))
	for k, want := range map[string]int{"shared": 2, "a": 1, "b": 1, "untouched": 2} {
		th, err := s.Attempt(ctx, k, lim, base.Add(2*time.Minute))
		require.NoError(t, err)
		assert.Equal(t, want, th.Failures, k)
	}
	require.NoError(t, s.Success(ctx, "", "untouched"))
	th, err = s.Attempt(ctx, "untouched", lim, base.Add(2*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 1, th.Failures, "no shared key: only the reset")

	// A window forgets old counts that never reached the lock.
	win := store.Limit{Max: 2, Lock: time.Minute, Window: time.Hour}
	for range 2 {
		_, err := s.Attempt(ctx, "w", win, base)
		require.NoError(t, err)
	}
	th, err = s.Attempt(ctx, "w", win, base.Add(2*time.Hour))
	require.NoError(t, err)
	assert.True(t, th.Allowed)
	assert.Equal(t, 1, th.Failures)
	// The new window starts at that attempt: within it the count goes on.
	th, err = s.Attempt(ctx, "w", win, base.Add(2*time.Hour+30*time.Minute))
	require.NoError(t, err)
	assert.True(t, th.Allowed)
	assert.Equal(t, 2, th.Failures)
	th, err = s.Attempt(ctx, "w", win, base.Add(2*time.Hour+40*time.Minute))
	require.NoError(t, err)
	assert.False(t, th.Allowed, "the third attempt in the new window is refused")

	// Several keys reset at once; others are kept.
	for _, k := range []string{"a", "b", "c"} {
		_, err := s.Attempt(ctx, k, lim, base)
		require.NoError(t, err)
	}
	require.NoError(t, s.ResetThrottle(ctx, "a", "b"))
	require.NoError(t, s.ResetThrottle(ctx))
	for k, want := range map[string]int{"a": 1, "b": 1, "c": 2} {
		th, err := s.Attempt(ctx, k, lim, base)
		require.NoError(t, err)
		assert.Equal(t, want, th.Failures, k)
	}
}

// testThrottleParallel: 30 attempts at once on a key of limit 5 let at
// most 5 through (the count is decided by the database).
func testThrottleParallel(t *testing.T, s store.Store) {
	assert.EqualValues(t, 5, allowedInParallel(t, s, "p", store.Limit{Max: 5, Lock: time.Minute}, 30))
}

// allowedInParallel makes n attempts on key at once and counts those
// allowed.
func allowedInParallel(t *testing.T, s store.Store, key string, lim store.Limit, n int) int32 {
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			th, err := s.Attempt(ctx, key, lim, base)
			if err != nil {
				t.Error(err)
				return
			}
			if th.Allowed {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	return allowed.Load()
}

// testThrottleCap: a cap counts allowed attempts across lock periods;
// past it the key stays shut, whatever the time, until it is reset.
// Attempts refused by a lock do not bring the cap nearer.
func testThrottleCap(t *testing.T, s store.Store) {
	lim := store.Limit{Max: 2, Lock: time.Minute, Cap: 5}
	at := base
	try := func(wantAllowed bool, msg string) store.Throttle {
		t.Helper()
		th, err := s.Attempt(ctx, "c", lim, at)
		require.NoError(t, err)
		require.Equal(t, wantAllowed, th.Allowed, msg)
		return th
	}
	try(true, "1 of 5")
	try(true, "2 of 5")
	th := try(false, "past Max: locked")
	assert.False(t, th.Capped)
	for range 10 {
		th = try(false, "still locked; not counted towards the cap")
		assert.False(t, th.Capped)
	}
	at = at.Add(2 * time.Minute)
	try(true, "3 of 5, a new lock period")
	try(true, "4 of 5")
	try(false, "locked again")
	at = at.Add(2 * time.Minute)
	try(true, "5 of 5")
	th = try(false, "the cap")
	assert.True(t, th.Capped)
	assert.True(t, th.RetryAt.IsZero(), "no time opens it")
	at = at.Add(365 * 24 * time.Hour)
	th = try(false, "a year later, still capped")
	assert.True(t, th.Capped)

	require.NoError(t, s.ResetThrottle(ctx, "c"))
	th = try(true, "a reset opens it")
	assert.Equal(t, 1, th.Failures)

	// A success clears the streak too: after it, all five again.
	try(true, "2 of 5")
	try(false, "locked")
	at = at.Add(2 * time.Minute)
	try(true, "3 of 5")
	try(true, "4 of 5")
	require.NoError(t, s.Success(ctx, "", "c"))
	for i := range lim.Cap {
		if i > 0 && i%lim.Max == 0 {
			try(false, "locked")
			at = at.Add(2 * time.Minute)
		}
		try(true, fmt.Sprintf("after a success, %d of 5", i+1))
	}

	// A key without a cap is never capped.
	for range 20 {
		th, err := s.Attempt(ctx, "nocap", store.Limit{Max: 1, Lock: time.Second}, at)
		require.NoError(t, err)
		assert.False(t, th.Capped)
		at = at.Add(2 * time.Second)
	}

	// Parallel attempts cannot pass the cap.
	assert.EqualValues(t, 7, allowedInParallel(t, s, "pc", store.Limit{Max: 100, Lock: time.Minute, Cap: 7}, 30))
}

// testThrottleAttempts: Attempts counts each try as Attempt would and
// stops at the first refused, leaving the tries after it uncounted.
func testThrottleAttempts(t *testing.T, s store.Store) {
	shared := store.Limit{Max: 2, Lock: time.Minute, Window: time.Hour}
	capped := store.Limit{Max: 3, Lock: time.Minute, Cap: 4}
	count := func(key string) int {
		t.Helper()
		// A probe under a huge limit (and no cap: not for capped keys,
		// whose streak it would clear) reports the count with itself.
		th, err := s.Attempt(ctx, key, store.Limit{Max: 1000, Lock: time.Minute}, base)
		require.NoError(t, err)
		require.NoError(t, s.Success(ctx, key)) // take the probe back
		return th.Failures - 1
	}
	try := func(at time.Time, tries ...store.Try) []store.Throttle {
		t.Helper()
		ths, err := s.Attempts(ctx, at, tries...)
		require.NoError(t, err)
		return ths
	}
	ip, acct := store.Try{Key: "ip", Limit: shared}, store.Try{Key: "acct", Limit: capped}

	ths := try(base, ip, acct)
	require.Len(t, ths, 2)
	assert.True(t, ths[0].Allowed && ths[1].Allowed)
	assert.Equal(t, []int{1, 1}, []int{ths[0].Failures, ths[1].Failures})
	ths = try(base, ip, acct)
	require.Len(t, ths, 2)
	assert.Equal(t, []int{2, 2}, []int{ths[0].Failures, ths[1].Failures})

	// The shared key is past its limit: refused, locked, and the account
	// is not counted.
	ths = try(base.Add(time.Second), ip, acct)
	require.Len(t, ths, 1, "stops at the refused try")
	assert.False(t, ths[0].Allowed)
	assert.True(t, base.Add(time.Second+time.Minute).Equal(ths[0].RetryAt), "locked: %v", ths[0].RetryAt)
	ths = try(base, acct)
	assert.Equal(t, 3, ths[0].Failures, "a refused try leaves the next one uncounted")

	// The first allowed, the second refused: both counted, the second
	// reported refused and locked.
	other := store.Try{Key: "ip2", Limit: shared}
	ths = try(base.Add(2*time.Second), other, acct)
	require.Len(t, ths, 2)
	assert.True(t, ths[0].Allowed)
	assert.False(t, ths[1].Allowed)
	assert.True(t, base.Add(2*time.Second+time.Minute).Equal(ths[1].RetryAt), "locked: %v", ths[1].RetryAt)

	// Past the cap: refused with no retry time.
	at := base.Add(2 * time.Hour)
	ths = try(at, store.Try{Key: "ip3", Limit: shared}, acct)
	require.Len(t, ths, 2)
	assert.True(t, ths[1].Allowed, "4 of the cap's 4, in a new lock period")
	ths = try(at, store.Try{Key: "ip4", Limit: shared}, acct)
	require.Len(t, ths, 2)
	assert.True(t, ths[1].Capped)
	assert.True(t, ths[1].RetryAt.IsZero())
	// A capped first try stops the chain too.
	ths = try(at, acct, store.Try{Key: "ip5", Limit: shared})
	require.Len(t, ths, 1)
	assert.True(t, ths[0].Capped)
	assert.Equal(t, 0, count("ip5"))

	// One try is Attempt; none is nothing; a key twice is refused.
	ths = try(at, store.Try{Key: "solo", Limit: shared})
	require.Len(t, ths, 1)
	assert.Equal(t, 1, ths[0].Failures)
	ths = try(at)
	assert.Empty(t, ths)
	_, err := s.Attempts(ctx, at, store.Try{Key: "dup", Limit: shared}, store.Try{Key: "dup", Limit: shared})
	require.Error(t, err)
	assert.Equal(t, 0, count("dup"), "a refused statement counts nothing")

	// Attempts and Success on the same two keys at once take their row
	// locks in one order: no deadlock, no error.
	wide := store.Limit{Max: 1 << 20, Lock: time.Minute}
	var wg sync.WaitGroup
	errs := make(chan error, 8*40)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				var err error
				if (g+i)%2 == 0 {
					_, err = s.Attempts(ctx, at, store.Try{Key: "pip", Limit: wide}, store.Try{Key: "pacct", Limit: wide})
				} else {
					err = s.Success(ctx, "pip", "pacct")
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
