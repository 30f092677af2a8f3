package mfa

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"image/png"
	"net/url"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: what every authenticator app supports (RFC 6238
// defaults). A 160-bit secret, as RFC 4226 recommends.
const (
	totpPeriod = 30
	totpDigits = otp.DigitsSix
	totpSkew   = 1 // steps either side: phone clocks drift
	secretSize = 20
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}

// TOTPEnrolment is what a user needs to add the secret to an app.
type TOTPEnrolment struct {
	Secret string // base32, for manual entry
	URI    string // otpauth://
	QRPNG  string // data: URL of a PNG QR code
}

// NewTOTP makes a fresh secret for account at issuer.
func NewTOTP(issuer, account string) (TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Period: totpPeriod, SecretSize: secretSize,
		Digits: totpDigits, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("generate totp secret: %w", err)
	}
	return enrolment(key)
}

func enrolment(key *otp.Key) (TOTPEnrolment, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("totp qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return TOTPEnrolment{}, fmt.Errorf("totp qr code: %w", err)
	}
	return TOTPEnrolment{
		Secret: key.Secret(), URI: key.URL(),
		QRPNG: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()),
	}, nil
}

// Step is the TOTP time step of t.
func Step(t time.Time) int64 { return t.Unix() / totpPeriod }

// CheckTOTP checks a 6-digit code against secret at now, accepting the
// current step and one either side, but only steps after lastStep: a
// code, or an older one, is never accepted twice. It returns the matched
// step, which the caller records (atomically) as the new lastStep.
func CheckTOTP(secret, code string, now time.Time, lastStep int64) (int64, bool) {
	if !isDigits(code, 6) {
		return 0, false
	}
	cur := Step(now)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		if s <= lastStep {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

// TOTPCode computes the code of secret at t (for tests and tools).
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totpOpts)
}

// isDigits accepts exactly n ASCII digits: no spaces, no other scripts'
// digits (full-width, Arabic-Indic).
func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// NormalizeCode trims spaces a user may type or paste inside a code.
func NormalizeCode(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' {
			out = append(out, s[i])
		}
	}
	return string(out)
}

// EnrolmentFor rebuilds the enrolment view of an existing secret, to show
// it again in the answer to a failed confirmation.
func EnrolmentFor(issuer, account, secret string) (TOTPEnrolment, error) {
	key, err := otp.NewKeyFromURL((&url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account,
		RawQuery: url.Values{"secret": {secret}, "issuer": {issuer}, "period": {"30"}, "digits": {"6"}, "algorithm": {"SHA1"}}.Encode()}).String())
	if err != nil {
		return TOTPEnrolment{}, err
	}
	return enrolment(key)
}
