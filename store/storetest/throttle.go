package storetest

import (
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
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			th, err := s.Attempt(ctx, "p", store.Limit{Max: 5, Lock: time.Minute}, base)
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
	assert.EqualValues(t, 5, allowed.Load())
}
