package clients

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"testing"

	"github.com/ory/fosite"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fosite checks client secrets at the token endpoint with this hasher.
var _ fosite.Hasher = (*SecretHasher)(nil)

func testKey() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

func TestGenerateSecret(t *testing.T) {
	a, b := GenerateSecret(), GenerateSecret()
	assert.Len(t, a, 43)
	assert.NotEqual(t, a, b)
	raw, err := base64.RawURLEncoding.DecodeString(a)
	require.NoError(t, err)
	assert.Len(t, raw, 32, "256 bits")
}

func TestNewClientID(t *testing.T) {
	id := newClientID()
	assert.Regexp(t, regexp.MustCompile(`^tf_[0-9a-f]{24}$`), id)
	assert.NotEqual(t, id, newClientID())
}

func TestSecretHasher(t *testing.T) {
	ctx := context.Background()
	h := NewSecretHasher(testKey())
	hash, err := h.Hash(ctx, []byte("s3cret"))
	require.NoError(t, err)
	assert.Len(t, hash, sha256.Size)

	// The HMAC key is derived, not the secrets key itself.
	raw := hmac.New(sha256.New, testKey())
	raw.Write([]byte("s3cret"))
	assert.NotEqual(t, raw.Sum(nil), hash)
	derived := hmac.New(sha256.New, testKey())
	derived.Write([]byte("twofold client secret v1"))
	want := hmac.New(sha256.New, derived.Sum(nil))
	want.Write([]byte("s3cret"))
	assert.Equal(t, want.Sum(nil), hash, "HMAC-SHA-256 under HMAC-SHA-256(key, label)")

	assert.NoError(t, h.Compare(ctx, hash, []byte("s3cret")))
	assert.ErrorIs(t, h.Compare(ctx, hash, []byte("s3cret ")), ErrSecretMismatch)
	assert.ErrorIs(t, h.Compare(ctx, nil, []byte("")), ErrSecretMismatch, "an empty hash matches nothing")

	other := testKey()
	other[0] ^= 1
	assert.ErrorIs(t, NewSecretHasher(other).Compare(ctx, hash, []byte("s3cret")), ErrSecretMismatch, "another key, another hash")

	assert.Panics(t, func() { NewSecretHasher(nil) })
}
