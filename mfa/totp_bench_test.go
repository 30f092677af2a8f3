package mfa

import (
	"testing"
	"time"
)

// BenchmarkCheckTOTP checks a code that matches the current step, after
// trying the step before it (the usual case with a ±1 step window).
func BenchmarkCheckTOTP(b *testing.B) {
	en, err := NewTOTP("bench", "user")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	code, err := TOTPCode(en.Secret, now)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := CheckTOTP(en.Secret, code, now, 0); !ok {
			b.Fatal("code refused")
		}
	}
}

// BenchmarkCheckTOTPWrong is the worst case: all three steps tried.
func BenchmarkCheckTOTPWrong(b *testing.B) {
	en, err := NewTOTP("bench", "user")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		CheckTOTP(en.Secret, "000000", now, 0)
	}
}
