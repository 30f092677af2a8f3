package mfa

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// asciiDigits reports whether s is exactly n ASCII digits.
func asciiDigits(s string, n int) bool {
	return len(s) == n && strings.Trim(s, "0123456789") == ""
}

// FuzzTOTPCode checks security.md §3.10's property for the TOTP step:
// only six ASCII digits, the code of an allowed step, reach a success
// (never full-width or Arabic-Indic digits), and a code is never
// accepted again once its step is recorded (S5).
func FuzzTOTPCode(f *testing.F) {
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	now := time.Date(2026, 12, 6, 12, 0, 10, 0, time.UTC)
	code, err := TOTPCode(secret, now)
	if err != nil {
		f.Fatal(err)
	}
	wide := strings.Map(func(r rune) rune { return r - '0' + '０' }, code)
	arabic := strings.Map(func(r rune) rune { return r - '0' + '٠' }, code)
	for _, s := range []string{code, " " + code[:3] + " " + code[3:] + "\t", wide, arabic, code + "0", code[:5], "+" + code[1:], "", "\x00" + code} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typed := NormalizeCode(s)
		step, ok := CheckTOTP(secret, typed, now, 0)
		if !ok {
			return
		}
		if !asciiDigits(typed, 6) {
			t.Fatalf("%q accepted as %q: not six ASCII digits", s, typed)
		}
		if d := step - Step(now); d < -1 || d > 1 {
			t.Fatalf("%q accepted for step %+d", s, d)
		}
		if want, _ := TOTPCode(secret, time.Unix(step*30, 0)); want != typed {
			t.Fatalf("%q accepted as %q, the step's code is %q", s, typed, want)
		}
		if _, again := CheckTOTP(secret, typed, now, step); again {
			t.Fatalf("%q accepted twice", s)
		}
	})
}

// FuzzSentCode: a code sent by email or SMS hashes only as six ASCII
// digits once spaces are dropped, the same however it was spaced, and
// differently for another purpose (a code cannot be carried across).
func FuzzSentCode(f *testing.F) {
	h := NewCodeHasher(bytes.Repeat([]byte{7}, 32))
	for _, s := range []string{"123456", "123 456", "１２３４５６", "١٢٣٤٥٦", "12345", "1234567", "12345\x00", "-12345"} {
		f.Add("flow:abc", s)
	}
	f.Fuzz(func(t *testing.T, purpose, s string) {
		got, ok := h.Hash(purpose, s)
		typed := NormalizeCode(s)
		if ok != asciiDigits(typed, CodeDigits) {
			t.Fatalf("%q (%q): hashed %v", s, typed, ok)
		}
		if !ok {
			return
		}
		if plain, _ := h.Hash(purpose, typed); !bytes.Equal(got, plain) {
			t.Fatalf("%q and %q hash differently", s, typed)
		}
		if other, _ := h.Hash(purpose+"x", s); bytes.Equal(got, other) {
			t.Fatalf("%q: the same hash for two purposes", s)
		}
	})
}

// FuzzRecoveryCode: what a person types maps onto at most one canonical
// code of 24 ASCII symbols (12 for a set earlier builds made), and only
// ASCII input does.
func FuzzRecoveryCode(f *testing.F) {
	h := NewRecoveryHasher(bytes.Repeat([]byte{9}, 32))
	code := NewRecoveryCodes()[0]
	for _, s := range []string{code, strings.ToUpper(code), code[:4] + "-" + code[4:8] + "-" + code[8:],
		"IIII-OOOO-LLLL", "\u212aaaa-bbbb-cccc", "ａaaa-bbbb-cccc", code[:11], code + "a", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := normalizeRecovery(s)
		if !ok {
			if _, hashed := h.Hash(s); hashed {
				t.Fatalf("%q not a code, yet hashed", s)
			}
			return
		}
		for _, r := range s {
			if r > 127 {
				t.Fatalf("%q accepted with a non-ASCII character %q", s, r)
			}
		}
		if (len(c) != recoverySymbols && len(c) != legacySymbols) || strings.Trim(c, recoveryAlphabet) != "" {
			t.Fatalf("%q normalised to %q", s, c)
		}
		if again, ok := normalizeRecovery(c); !ok || again != c {
			t.Fatalf("%q: normalising %q again gave %q", s, c, again)
		}
		a, _ := h.Hash(s)
		b, _ := h.Hash(c)
		if !bytes.Equal(a, b) {
			t.Fatalf("%q and its canonical %q hash differently", s, c)
		}
	})
}
