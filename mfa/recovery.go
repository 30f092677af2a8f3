package mfa

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"strings"
)

// RecoveryCodeCount is how many codes a set holds (R07, seed 000).
const RecoveryCodeCount = 15

// recoveryAlphabet is Crockford's base32 without I, L, O, U: 32 symbols,
// 5 bits each, none easily misread.
const recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// A code is 24 symbols (120 bits), shown as six groups of four. NIST
// SP 800-63B §5.1.2.2 lets a look-up secret of at least 112 bits be
// stored under a plain approved hash (security.md S13); a shorter one
// would need a salted KDF per code, tried against each unused code at
// every guess. Auth0's recovery code is as long.
const recoverySymbols = 24

// legacySymbols is the length of the codes earlier builds of Twofold made
// (60 bits, under the same keyed hash). A set made then still works
// until the user makes a new one; no new code has this length.
const legacySymbols = 12

// NewRecoveryCodes returns a fresh set of codes, formatted for people.
func NewRecoveryCodes() []string {
	codes := make([]string, RecoveryCodeCount)
	b := make([]byte, recoverySymbols)
	for i := range codes {
		_, _ = rand.Read(b)
		var sb strings.Builder
		for j, c := range b {
			if j > 0 && j%4 == 0 {
				sb.WriteByte('-')
			}
			sb.WriteByte(recoveryAlphabet[c%32])
		}
		codes[i] = sb.String()
	}
	return codes
}

// normalizeRecovery maps what a person types onto the canonical symbols:
// case, dashes and spaces ignored; i/l read as 1, o as 0. Anything not
// ASCII is refused before case is folded: Unicode folds the Kelvin sign
// to "k".
func normalizeRecovery(s string) (string, bool) {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch c {
		case '-', ' ', '\t':
			continue
		case 'i', 'l':
			c = '1'
		case 'o':
			c = '0'
		}
		if strings.IndexByte(recoveryAlphabet, c) < 0 {
			return "", false
		}
		sb.WriteByte(c)
	}
	if n := sb.Len(); n != recoverySymbols && n != legacySymbols {
		return "", false
	}
	return sb.String(), true
}

// RecoveryHasher hashes codes with HMAC-SHA-256 under a key that is not
// in the database: a stolen table alone cannot be brute-forced, and
// online guessing is throttled with the second-factor counter.
type RecoveryHasher struct{ key []byte }

// NewRecoveryHasher derives its key from the secrets key.
func NewRecoveryHasher(secretsKey []byte) *RecoveryHasher {
	m := hmac.New(sha256.New, secretsKey)
	m.Write([]byte("twofold recovery codes v1"))
	return &RecoveryHasher{key: m.Sum(nil)}
}

// Hash returns the stored form of a code, or false if it cannot be one.
func (h *RecoveryHasher) Hash(code string) ([]byte, bool) {
	c, ok := normalizeRecovery(code)
	if !ok {
		return nil, false
	}
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(c))
	return m.Sum(nil), true
}
