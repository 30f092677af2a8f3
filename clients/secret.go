package clients

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
)

// ErrSecretMismatch is what Compare returns when a secret does not match.
var ErrSecretMismatch = errors.New("clients: client secret does not match")

// secretHasherLabel separates the client-secret HMAC key from every other
// use of the secrets key; bump the version to rotate the derivation.
const secretHasherLabel = "twofold client secret v1"

// GenerateSecret returns a new client secret: 32 bytes (256 bits) from
// crypto/rand, base64url without padding (43 characters).
func GenerateSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails; it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// newClientID returns "tf_" and 24 hex characters (96 random bits): an
// identifier, not a credential, but unguessable so that client ids leak
// nothing about how many clients exist.
func newClientID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "tf_" + hex.EncodeToString(b)
}

// SecretHasher stores client secrets as HMAC-SHA-256 under a key derived
// from the secrets key. It is a keyed hash and not a slow password hash on
// purpose: the secrets are 256 random bits, so stretching adds nothing
// against guessing, and it would put an argon2 computation on every token
// request. The key keeps a leaked database from being enough to test
// candidate secrets offline.
//
// It satisfies fosite.Hasher, so fosite can check secrets at the token
// endpoint with it.
type SecretHasher struct {
	key []byte
}

// NewSecretHasher derives the HMAC key as HMAC-SHA-256(secretsKey,
// "twofold client secret v1") so the raw secrets key, which also seals
// signing keys, is never used directly for another purpose. It panics on
// a key shorter than 32 bytes: that is a wiring mistake, and a short or
// empty key would silently make every stored hash guessable.
func NewSecretHasher(secretsKey []byte) *SecretHasher {
	if len(secretsKey) < 32 {
		panic("clients: NewSecretHasher needs the 32-byte secrets key")
	}
	m := hmac.New(sha256.New, secretsKey)
	m.Write([]byte(secretHasherLabel))
	return &SecretHasher{key: m.Sum(nil)}
}

// Hash returns the HMAC-SHA-256 of data.
func (h *SecretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	m := hmac.New(sha256.New, h.key)
	m.Write(data)
	return m.Sum(nil), nil
}

// Compare reports whether data hashes to hash, in constant time; a
// mismatch (including an empty hash) is ErrSecretMismatch.
func (h *SecretHasher) Compare(ctx context.Context, hash, data []byte) error {
	want, err := h.Hash(ctx, data)
	if err != nil {
		return err
	}
	if !hmac.Equal(hash, want) {
		return ErrSecretMismatch
	}
	return nil
}
