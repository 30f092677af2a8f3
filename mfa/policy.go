package mfa

import (
	"slices"
	"strings"
	"time"

	"github.com/twofold-idp/twofold/store"
)

// acr values (configurable names would go here).
const (
	ACRPassword = "urn:twofold:acr:pwd"
	ACRMFA      = "urn:twofold:acr:mfa"
	// ACRPhishingResistant: two factors, one of them a WebAuthn key,
	// which answers only to Twofold's own origin.
	ACRPhishingResistant = "urn:twofold:acr:phr"
	// ACRFederated: an upstream provider signed the user in (R03);
	// whatever it did there, Twofold saw none of it.
	ACRFederated = "urn:twofold:acr:fed"
)

// ACRSupported lists the acr values Twofold can assert, weakest first.
var ACRSupported = []string{ACRPassword, ACRFederated, ACRMFA, ACRPhishingResistant}

// Methods a session can record, as RFC 8176 amr values; "rc" (recovery
// code, a look-up secret) is Twofold's own.
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRRecovery = "rc"
	AMRMFA      = "mfa"
	// AMRFederated: signed in by an upstream provider (R03, RFC 8176
	// has no value for it; "fed" as the product rules name it).
	AMRFederated = "fed"
	// AMRSMS: a code sent by text message (RFC 8176). SMS is a
	// restricted authenticator (NIST SP 800-63B §5.1.3.3) but out of
	// band: with the password it is two factors (security.md).
	AMRSMS = "sms"
)

// Policies are the populations' requirements (R15), by population.
type Policies map[store.Population]store.MFAPolicy

// NewPolicies indexes the store's policies by population.
func NewPolicies(ps []store.MFAPolicy) Policies {
	out := Policies{}
	for _, p := range ps {
		out[p.Population] = p
	}
	return out
}

// Required is the one place that decides whether a user must have a
// second factor: the per-user flag admins set, or the policy of the
// user's population (R15), grace period or not. A required factor cannot
// be turned off by its user (R18).
func Required(u store.User, pol Policies) bool {
	return u.MFARequired || pol[u.Population].Required
}

// Deferrable tells whether u may put setting up a second factor off at a
// sign-in at now (R17): only their population's policy requires one, and
// its grace period has not ended.
func Deferrable(u store.User, pol Policies, now time.Time) bool {
	p := pol[u.Population]
	return !u.MFARequired && p.Required && p.GraceUntil != nil && now.Before(*p.GraceUntil)
}

// RequiredNow is Required without the users who may still defer it: a
// sign-in of theirs needs two factors.
func RequiredNow(u store.User, pol Policies, now time.Time) bool {
	return Required(u, pol) && !Deferrable(u, pol, now)
}

// Kinds of second factor a user sets up; an admin may allow only some of
// them (R10). Recovery codes come with the first and are always allowed.
const (
	MethodTOTP     = "totp"
	MethodWebAuthn = "webauthn"
	// MethodEmail is codes sent to the account's address (R08); it can
	// be set up only where Twofold has a mail server to send with.
	MethodEmail = "email"
	// MethodSMS is codes by text message (R09): off until an admin
	// lists it, and only where an SMS gateway is configured.
	MethodSMS = "sms"
)

// SetupMethods are the kinds Twofold can set up, in the order offered.
var SetupMethods = []string{MethodTOTP, MethodWebAuthn, MethodEmail, MethodSMS}

// DefaultMethods are what a population without a list may set up: every
// kind but SMS, which is off by default (R09, seed 004).
var DefaultMethods = []string{MethodTOTP, MethodWebAuthn, MethodEmail}

// Allowed tells whether u may set up a factor of kind method: the
// population's policy lists it, or lists none and it is a default (R10,
// R09). A factor set up before a kind was taken off the list still signs
// its user in.
func Allowed(u store.User, pol Policies, method string) bool {
	ms := pol[u.Population].Methods
	if len(ms) == 0 {
		return slices.Contains(DefaultMethods, method)
	}
	return slices.Contains(ms, method)
}

// Claims returns amr and acr for a set of verified methods: "mfa" only
// when two factors were truly presented — the password and a second
// factor, or a key whose user verification (PIN, biometric) is the
// second. A key among them makes the sign-in phishing-resistant. An
// email code is no second factor (NIST SP 800-63B §5.1.3.1: email is not
// out-of-band authentication; security.md S12): the password and a
// mailed code stay at the password's acr, with no "mfa", though they
// meet a policy's second step (SecondStep).
//
// A federated sign-in ("fed") counts as the first factor, like the
// password; alone it is at ACRFederated, and keeps "mfa" only when the
// provider put it there for an upstream it trusts to say so (R03).
func Claims(methods []string) (amr []string, acr string) {
	amr = slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return m == AMRMFA })
	fed := slices.Contains(methods, AMRFederated)
	first := slices.Contains(methods, AMRPassword) || fed
	second := slices.Contains(methods, AMROTP) || slices.Contains(methods, AMRSMS) ||
		slices.Contains(methods, AMRRecovery) || hasKey(methods)
	two := (first && second) || (hasKey(methods) && slices.Contains(methods, AMRUser))
	switch {
	case two && hasKey(methods):
		return append(amr, AMRMFA), ACRPhishingResistant
	case two:
		return append(amr, AMRMFA), ACRMFA
	case fed && slices.Contains(methods, AMRMFA):
		return append(amr, AMRMFA), ACRFederated // the trusted upstream's word
	case fed:
		return amr, ACRFederated
	}
	return amr, ACRPassword
}

// SecondStep tells whether amr records a sign-in that passed a second
// step: two factors, or the password and a code by email. It is what a
// requirement of two-step verification (R15, a user's flag) asks of a
// session; a client or request that asks for MFA needs IsMFA (R23).
// A federated sign-in meets it only where its upstream skips the local
// second factor, which the provider knows (R03).
func SecondStep(amr []string) bool {
	return IsMFA(amr) || (slices.Contains(amr, AMRPassword) && slices.Contains(amr, AMREmail))
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
