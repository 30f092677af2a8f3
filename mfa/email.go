package mfa

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// AMREmail records a code sent to the account's email address (R08).
// RFC 8176's "otp" names HOTP and TOTP, and no registered value names an
// email code, so like "rc" it is Twofold's own: a relying party that
// cares can tell it from an authenticator app.
const AMREmail = "email"

// Codes sent by email or SMS: 6 digits, as an authenticator app's, good
// for 10 minutes.
// The first resend waits ResendStep, each later one ResendStep more (the
// countdown R09 sets for SMS, used for email too).
const (
	CodeDigits = 6
	CodeLife   = 10 * time.Minute
	ResendStep = 30 * time.Second
)

// NewCode returns a uniformly random code of CodeDigits digits.
func NewCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic("mfa: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return fmt.Sprintf("%06d", n.Int64())
}

// ResendAt is when the next code for a purpose may be sent, after sends
// codes were sent, the last at sentAt.
func ResendAt(sentAt time.Time, sends int) time.Time {
	return sentAt.Add(time.Duration(sends) * ResendStep)
}

// CodeHasher hashes sent codes with HMAC-SHA-256 under a key that is not
// in the database: a million six-digit codes are no work to hash, so a
// plain hash in a stolen table would give every live code away.
type CodeHasher struct{ key []byte }

// NewCodeHasher derives its key from the secrets key.
func NewCodeHasher(secretsKey []byte) *CodeHasher {
	m := hmac.New(sha256.New, secretsKey)
	m.Write([]byte("twofold one-time codes v1"))
	return &CodeHasher{key: m.Sum(nil)}
}

// Hash returns the stored form of code for purpose: the same code sent
// for another purpose hashes differently. It is false when code cannot
// be one (wrong length, not digits, after spaces are dropped).
func (h *CodeHasher) Hash(purpose, code string) ([]byte, bool) {
	code = NormalizeCode(code)
	if len(code) != CodeDigits || strings.Trim(code, "0123456789") != "" {
		return nil, false
	}
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil), true
}

// MaskEmail shows enough of an address for its owner to recognise it on
// a page that anyone past the password sees: "a•••@example.com".
func MaskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		return "•••"
	}
	r := []rune(local)
	return string(r[0]) + "•••@" + domain
}
