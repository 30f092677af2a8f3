package mfa

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestR08_EmailCodeHelpers: codes are six random digits; their stored
// form depends on the key and the purpose, and reads what a person
// types; the resend countdown grows by 30 s a send.
func TestR08_EmailCodeHelpers(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c := NewCode()
		assert.Regexp(t, regexp.MustCompile(`^\d{6}$`), c)
		seen[c] = true
	}
	assert.Greater(t, len(seen), 190, "codes repeat far too often")

	h := NewCodeHasher(bytes.Repeat([]byte{1}, 32))
	a, ok := h.Hash("flow:1", "123456")
	assert.True(t, ok)
	spaced, _ := h.Hash("flow:1", "123 456")
	assert.Equal(t, a, spaced, "spaces are ignored")
	other, _ := h.Hash("flow:2", "123456")
	assert.NotEqual(t, a, other, "bound to the purpose")
	otherKey, _ := NewCodeHasher(bytes.Repeat([]byte{2}, 32)).Hash("flow:1", "123456")
	assert.NotEqual(t, a, otherKey, "keyed")
	assert.NotContains(t, string(a), "123456")
	for _, bad := range []string{"", "12345", "1234567", "12345a", "١٢٣٤٥٦"} {
		_, ok := h.Hash("flow:1", bad)
		assert.False(t, ok, bad)
	}

	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	assert.Equal(t, at.Add(30*time.Second), ResendAt(at, 1))
	assert.Equal(t, at.Add(90*time.Second), ResendAt(at, 3))

	for in, want := range map[string]string{"ada@example.com": "a•••@example.com", "élise@x.fr": "é•••@x.fr", "nope": "•••"} {
		assert.Equal(t, want, MaskEmail(in))
	}
}
