package mfa

import (
	"slices"
	"strings"

	"github.com/twofold-idp/twofold/store"
)

// acr values (configurable names would go here).
const (
	ACRPassword = "urn:twofold:acr:pwd"
	ACRMFA      = "urn:twofold:acr:mfa"
	// ACRPhishingResistant: two factors, one of them a WebAuthn key,
	// which answers only to Twofold's own origin.
	ACRPhishingResistant = "urn:twofold:acr:phr"
)

// ACRSupported lists the acr values Twofold can assert, weakest first.
var ACRSupported = []string{ACRPassword, ACRMFA, ACRPhishingResistant}

// Methods a session can record, as RFC 8176 amr values; "rc" (recovery
// code, a look-up secret) is Twofold's own.
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRRecovery = "rc"
	AMRMFA      = "mfa"
)

// Required is the one place that decides whether a user must have a
// second factor. Today: the per-user flag admins set; population-wide
// policies will be read here too, never checked elsewhere.
func Required(u store.User) bool {
	return u.MFARequired
}

// Claims returns amr and acr for a set of verified methods: "mfa" only
// when two factors were truly presented — the password and a second
// factor, or a key whose user verification (PIN, biometric) is the
// second. A key among them makes the sign-in phishing-resistant.
func Claims(methods []string) (amr []string, acr string) {
	amr = slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return m == AMRMFA })
	second := slices.Contains(methods, AMROTP) || slices.Contains(methods, AMRRecovery) || hasKey(methods)
	two := (slices.Contains(methods, AMRPassword) && second) || (hasKey(methods) && slices.Contains(methods, AMRUser))
	switch {
	case two && hasKey(methods):
		return append(amr, AMRMFA), ACRPhishingResistant
	case two:
		return append(amr, AMRMFA), ACRMFA
	}
	return amr, ACRPassword
}

// IsMFA tells whether amr records two factors.
func IsMFA(amr []string) bool { return slices.Contains(amr, AMRMFA) }

// WantsMFA reads a client's request for multi-factor authentication.
// acr_values is a preference list: it demands MFA only when it names the
// MFA acr and not the password one. An essential acr claim demands it
// when its allowed values include the MFA acr and not the password one.
// Values Twofold does not know are ignored (they are voluntary).
func WantsMFA(acrValues string, essentialACR []string) bool {
	wants := func(vals []string) bool {
		strong := slices.Contains(vals, ACRMFA) || slices.Contains(vals, ACRPhishingResistant)
		return strong && !slices.Contains(vals, ACRPassword)
	}
	return wants(strings.Fields(acrValues)) || wants(essentialACR)
}
