package accounts

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/trustelem/zxcvbn/frequency"
	"golang.org/x/text/unicode/norm"
)

// ErrPasswordGuessable is a password a guesser would try early.
var ErrPasswordGuessable = errors.New("password is too easy to guess")

// normalize is the form a password is hashed and checked in: NFKC, so
// that one typed on two systems (a composed or decomposed "é", a
// full-width digit) is the same password (NIST SP 800-63B §5.1.1.2,
// security.md S14).
func normalize(password string) string { return norm.NFKC.String(password) }

// guessable reports whether a password someone chose is on NIST SP
// 800-63B §5.1.1.2's list of what a guesser tries first: a common
// password or dictionary word, repetitive or sequential characters, or
// words of the context (the account's address, the product's name); also
// when dressed up with digits or symbols around it, or in l33t.
//
// The common passwords and words are zxcvbn's lists (30,000 of each,
// from password dumps and Wikipedia), used through its frequency package
// only: its estimator builds ranked dictionaries of every list when the
// program starts, 6 MiB that a server would hold for ever (19 MiB more
// peak RSS under load); these are indexed on the first check.
func guessable(password, email string) bool {
	p := strings.ToLower(normalize(password))
	context := guessInputs(email)
	for _, c := range candidates(p) {
		if common(c) || trivial(c) || contextual(c, context) {
			return true
		}
	}
	return false
}

// candidates are the forms of p a guesser's rules produce: p itself,
// with its accents dropped ("pässwörd"), with l33t undone ("p@ssw0rd"),
// and each of those without the digits and symbols around it
// ("Password1234!") or anywhere in it ("pass word", "Password_Password").
// A form of fewer than four letters is left out: "93857261048a" is not
// the letter "a".
func candidates(p string) []string {
	out := []string{p}
	add := func(c string) {
		if len([]rune(c)) >= 4 && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	add(unaccent(p))
	for _, c := range slices.Clone(out) {
		add(unleet.Replace(c))
	}
	for _, c := range slices.Clone(out) {
		add(strings.TrimFunc(c, func(r rune) bool { return !isLetter(r) }))
		add(strings.Map(func(r rune) rune {
			if isLetter(r) {
				return r
			}
			return -1
		}, c))
	}
	return out
}

// unaccent drops combining marks: "pässwörd" is "password".
func unaccent(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r > 0x7f }

var unleet = strings.NewReplacer("0", "o", "1", "l", "3", "e", "4", "a", "5", "s", "7", "t", "@", "a", "$", "s", "!", "i")

var (
	commonOnce sync.Once
	commonSet  map[string]struct{}
)

// common reports whether c is one of the common passwords or words.
func common(c string) bool {
	commonOnce.Do(func() {
		commonSet = make(map[string]struct{}, 60000)
		for _, list := range []string{"passwords", "english_wikipedia"} {
			for _, w := range frequency.FrequencyLists[list] {
				commonSet[w] = struct{}{}
			}
		}
	})
	_, ok := commonSet[c]
	return ok
}

// sequences are runs a guesser walks: the alphabet, digits and keyboard
// rows and columns, each read both ways by trivial.
var sequences = []string{
	"abcdefghijklmnopqrstuvwxyz", "0123456789012345678901234567890",
	"qwertyuiopasdfghjklzxcvbnm", "qwertzuiopasdfghjklyxcvbnm", "azertyuiopqsdfghjklmwxcvbn",
	"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "zaq1xsw2cde3vfr4bgt5nhy6mju7",
	"1q2w3e4r5t6y7u8i9o0p", "q1w2e3r4t5y6u7i8o9p0",
	"147258369147258369", "14725836901472583690", "369258147369258147", "78945612378945612", // keypad columns and rows
}

// trivial reports whether c is repetitive or sequential: at most two
// different characters, a run of a sequence, or a shorter part repeated
// that is itself guessable.
func trivial(c string) bool {
	if len(c) == 0 {
		return true
	}
	seen := map[rune]bool{}
	for _, r := range c {
		seen[r] = true
	}
	if len(seen) <= 2 {
		return true
	}
	for _, s := range sequences {
		if strings.Contains(s, c) || strings.Contains(reverse(s), c) {
			return true
		}
	}
	for n := 1; n <= len(c)/2; n++ {
		if len(c)%n == 0 && strings.Repeat(c[:n], len(c)/n) == c {
			return n < 4 || common(c[:n]) || trivial(c[:n])
		}
	}
	return false
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// contextual reports whether c is made of the context's words, with at
// most three other characters ("ada.lovelace2024", "twofold!").
func contextual(c string, context []string) bool {
	rest := c
	for _, w := range context {
		if len(w) >= 3 {
			rest = strings.ReplaceAll(rest, w, "")
		}
	}
	return rest != c && len(strings.TrimFunc(rest, func(r rune) bool { return !isLetter(r) })) <= 3
}

// guessInputs are the words of an account a guesser tries first: its
// address, the address's parts, and the product's name, longest first.
func guessInputs(email string) []string {
	in := []string{"twofold"}
	email = strings.ToLower(strings.TrimSpace(email))
	if email != "" {
		in = append(in, email)
		local, domain, _ := strings.Cut(email, "@")
		in = append(in, local)
		in = append(in, strings.FieldsFunc(local, func(r rune) bool { return r == '.' || r == '_' || r == '-' || r == '+' })...)
		if domain != "" {
			in = append(in, domain)
			in = append(in, strings.Split(domain, ".")...)
		}
	}
	// Longest first: the whole address goes before its parts.
	for i := 1; i < len(in); i++ {
		for j := i; j > 0 && len(in[j]) > len(in[j-1]); j-- {
			in[j], in[j-1] = in[j-1], in[j]
		}
	}
	return in
}
