package accounts

import (
	"errors"
	"strings"
	"testing"

	"github.com/alexedwards/argon2id"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckPassword (security.md S14): length in characters after
// normalising, and with BlockGuessable NIST's blocklist: common
// passwords and words, repetitive and sequential characters, and the
// account's own address, also dressed up; no rules of composition.
func TestCheckPassword(t *testing.T) {
	s := &Service{MinPasswordLen: 12, BlockGuessable: true}
	for _, tc := range []struct {
		name, password, email string
		want                  error
	}{
		{"a passphrase", "correct horse battery", "ada@example.com", nil},
		{"random letters", "xk4-Tq9v-pL2m-W8zR", "ada@example.com", nil},
		{"no digits, symbols or capitals needed", "blue lantern under snow", "ada@example.com", nil},
		{"too short", "Tq9v-pL2m", "ada@example.com", ErrPasswordTooShort},
		{"too long", strings.Repeat("x", MaxPasswordLength+1), "ada@example.com", ErrPasswordTooLong},
		{"common", "password1234", "ada@example.com", ErrPasswordGuessable},
		{"common, dressed up", "Password1234!", "ada@example.com", ErrPasswordGuessable},
		{"keyboard pattern", "qwertyuiop12", "ada@example.com", ErrPasswordGuessable},
		{"one letter", "aaaaaaaaaaaaaaaa", "ada@example.com", ErrPasswordGuessable},
		{"a sequence", "abcdefghijklmn", "ada@example.com", ErrPasswordGuessable},
		{"the address itself", "ada.lovelace@example.com", "ada.lovelace@example.com", ErrPasswordGuessable},
		{"the address's parts", "lovelace2024", "ada.lovelace@example.com", ErrPasswordGuessable},
		{"the product's name", "twofold12345", "ada@example.com", ErrPasswordGuessable},
		// Twelve characters by NFKC: the ligature "ﬃ" is three.
		{"counted after normalising", "ﬃ-river-moss", "ada@example.com", nil},
		{"a phrase of common words", "a remembered passphrase", "ada@example.com", nil},
		{"l33t", "p@ssw0rd2024", "ada@example.com", ErrPasswordGuessable},
		{"a common one twice", "passwordpassword", "ada@example.com", ErrPasswordGuessable},
		{"a dictionary word", "successfully", "ada@example.com", ErrPasswordGuessable},
		{"a keyboard column", "1qaz2wsx3edc", "ada@example.com", ErrPasswordGuessable},
		{"digits counting down", "987654321098", "ada@example.com", ErrPasswordGuessable},
		{"a short part repeated", "abcabcabcabc", "ada@example.com", ErrPasswordGuessable},
		{"digits around one letter", "93857261048a", "ada@example.com", nil},
		{"symbols and digits", "8#4!x2$9%7^1&", "ada@example.com", nil},
		{"a separator inside", "Password_Password", "ada@example.com", ErrPasswordGuessable},
		{"l33t, twice", "Passw0rd!Passw0rd!", "ada@example.com", ErrPasswordGuessable},
		{"spaces inside", "pass word 1234", "ada@example.com", ErrPasswordGuessable},
		{"a keyboard run twice", "qwerty123qwerty", "ada@example.com", ErrPasswordGuessable},
		{"a keypad column", "147258369147", "ada@example.com", ErrPasswordGuessable},
		{"accents", "pässwörd1234", "ada@example.com", ErrPasswordGuessable},
		{"one character NFKC makes long", "\ufdfa", "ada@example.com", ErrPasswordTooShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CheckPassword(tc.password, tc.email)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.want)
		})
	}
	// The address is what makes this one guessable: for another
	// account it is strong.
	assert.ErrorIs(t, s.CheckPassword("zqxv.wrbn2024", "zqxv.wrbn@example.com"), ErrPasswordGuessable)
	assert.NoError(t, s.CheckPassword("zqxv.wrbn2024", "ada@example.com"))
	lenient := &Service{MinPasswordLen: 12}
	assert.NoError(t, lenient.CheckPassword("password1234", "ada@example.com"), "without BlockGuessable only the length counts")
	err := s.CheckPassword("password1234", "ada@example.com")
	require.True(t, errors.Is(err, ErrPasswordGuessable))
	assert.Contains(t, err.Error(), "a few unrelated words", "the message says what to do")
}

// TestVerifyNormalizes (S14): a password typed composed or decomposed,
// or with full-width digits, is the same password; a hash made from the
// raw form before Twofold normalised still verifies, and asks to be
// made again.
func TestVerifyNormalizes(t *testing.T) {
	h := Hasher{Params: Argon2Params{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}}
	composed, decomposed := "caf\u00e9 au lait 2024", "cafe\u0301 au lait 2024"
	phc, err := h.Hash(composed)
	require.NoError(t, err)
	for _, typed := range []string{composed, decomposed} {
		ok, rehash, err := h.Verify(typed, phc)
		require.NoError(t, err)
		assert.True(t, ok, "%q", typed)
		assert.False(t, rehash)
	}
	phc, err = h.Hash("room ４０４ upstairs") // full-width digits
	require.NoError(t, err)
	ok, _, err := h.Verify("room 404 upstairs", phc)
	require.NoError(t, err)
	assert.True(t, ok, "full-width digits are the ASCII ones")

	legacy, err := argon2id.CreateHash(decomposed, h.Params.lib()) // hashed as typed
	require.NoError(t, err)
	ok, rehash, err := h.Verify(decomposed, legacy)
	require.NoError(t, err)
	assert.True(t, ok, "a hash of the raw form still verifies")
	assert.True(t, rehash, "and is made again, normalised")
	ok, _, err = h.Verify("cafe au lait 2024", legacy)
	require.NoError(t, err)
	assert.False(t, ok)
}
