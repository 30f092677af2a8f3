package accounts

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
	"golang.org/x/text/unicode/norm"
)

// ErrPasswordGuessable is a password a guesser would try early.
var ErrPasswordGuessable = errors.New("password is too easy to guess")

// strengthRunes is how much of a password the strength estimate reads:
// its matching grows faster than the length (up to 25 ms here for 64
// characters, near an argon2id hash; 57 ms for 100), and the first 64
// characters already tell a common password or a pattern.
const strengthRunes = 64

// normalize is the form a password is hashed and measured in: NFKC, so
// that one typed on two systems (a composed or decomposed "é", a
// full-width digit) is the same password (NIST SP 800-63B §5.1.1.2,
// security.md S14).
func normalize(password string) string { return norm.NFKC.String(password) }

// strength is zxcvbn's estimate of how hard password is to guess, from 0
// (in the first thousand guesses) to 4 (past 10¹⁰). Its dictionaries
// hold 30,000 common passwords and common words, names and keyboard
// patterns; userInputs are what a guesser of this account tries first
// (its address and the site's name).
func strength(password string, userInputs []string) int {
	password = normalize(password)
	if utf8.RuneCountInString(password) > strengthRunes {
		password = string([]rune(password)[:strengthRunes])
	}
	return zxcvbn.PasswordStrength(password, userInputs).Score
}

// guessInputs are the words of an account a guesser tries first: its
// address, the address's parts, and the product's name.
func guessInputs(email string) []string {
	in := []string{"twofold"}
	if email == "" {
		return in
	}
	email = strings.ToLower(strings.TrimSpace(email))
	in = append(in, email)
	local, domain, _ := strings.Cut(email, "@")
	in = append(in, local)
	in = append(in, strings.FieldsFunc(local, func(r rune) bool { return r == '.' || r == '_' || r == '-' || r == '+' })...)
	if domain != "" {
		in = append(in, domain)
		in = append(in, strings.Split(domain, ".")...)
	}
	return in
}
