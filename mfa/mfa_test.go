package mfa

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/store"
)

func TestR05_CheckTOTP(t *testing.T) {
	e, err := NewTOTP("Twofold", "ada@example.com")
	require.NoError(t, err)
	assert.Len(t, e.Secret, 32, "160 bits in base32")
	assert.True(t, strings.HasPrefix(e.URI, "otpauth://totp/Twofold:ada@example.com?"), e.URI)
	assert.Contains(t, e.URI, "digits=6")
	assert.Contains(t, e.URI, "period=30")
	assert.True(t, strings.HasPrefix(e.QRPNG, "data:image/png;base64,iVBOR"), "a PNG")

	now := time.Unix(1_800_000_015, 0)
	code := func(t0 time.Time) string {
		c, err := TOTPCode(e.Secret, t0)
		require.NoError(t, err)
		return c
	}
	// Another user's secret (drawn again in the one-in-a-million case
	// that both give the same code at now).
	var otherCode string
	for otherCode == "" || otherCode == code(now) {
		other, err := NewTOTP("Twofold", "bo@example.com")
		require.NoError(t, err)
		otherCode, _ = TOTPCode(other.Secret, now)
	}
	tests := []struct {
		name     string
		code     string
		lastStep int64
		ok       bool
		step     int64
	}{
		{"current step", code(now), 0, true, Step(now)},
		{"previous step (30 s of drift)", code(now.Add(-30 * time.Second)), 0, true, Step(now) - 1},
		{"next step", code(now.Add(30 * time.Second)), 0, true, Step(now) + 1},
		{"two steps old", code(now.Add(-60 * time.Second)), 0, false, 0},
		{"two steps ahead", code(now.Add(60 * time.Second)), 0, false, 0},
		{"replayed: step already used", code(now), Step(now), false, 0},
		{"older than the last used step", code(now.Add(-30 * time.Second)), Step(now), false, 0},
		{"another user's secret", otherCode, 0, false, 0},
		{"five digits", code(now)[:5], 0, false, 0},
		{"with a space", code(now)[:3] + " " + code(now)[3:], 0, false, 0},
		{"full-width digits", "１２３４５６", 0, false, 0},
		{"empty", "", 0, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			step, ok := CheckTOTP(e.Secret, tc.code, now, tc.lastStep)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.step, step)
		})
	}
	assert.Equal(t, "123456", NormalizeCode(" 123 456 "))
}

func TestR07_RecoveryCodes(t *testing.T) {
	codes := NewRecoveryCodes()
	require.Len(t, codes, 15)
	seen := map[string]bool{}
	h := NewRecoveryHasher([]byte("0123456789abcdef0123456789abcdef"))
	for _, c := range codes {
		assert.Regexp(t, `^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){5}$`, c, "120 bits (S13), readable")
		assert.False(t, seen[c])
		seen[c] = true
		hash, ok := h.Hash(c)
		require.True(t, ok)
		for _, typed := range []string{strings.ToUpper(c), strings.ReplaceAll(c, "-", ""), " " + strings.ReplaceAll(c, "-", " ") + " "} {
			again, ok := h.Hash(typed)
			require.True(t, ok, typed)
			assert.Equal(t, hash, again, "typing variations give the same hash")
		}
	}
	// Confusable letters are read as the digits they look like; a code
	// of twelve symbols, from a set made before codes had 24, still hashes.
	a, ok := h.Hash("0000-1111-0000")
	require.True(t, ok, "a legacy code")
	b, _ := h.Hash("oooo-iIlL-OOOO")
	assert.Equal(t, a, b)
	for _, bad := range []string{"", "short", "0000-1111-000u", "0000-1111-0000-0", "０000-1111-0000",
		"0000-1111-0000-1111-0000-111", "0000-1111-0000-1111-0000-1111-0"} {
		_, ok := h.Hash(bad)
		assert.False(t, ok, bad)
	}
	other := NewRecoveryHasher([]byte("another key, another hash.......")).key
	assert.NotEqual(t, h.key, other)
}

func TestR02_Claims(t *testing.T) {
	tests := []struct {
		methods []string
		amr     []string
		acr     string
	}{
		{[]string{"pwd"}, []string{"pwd"}, ACRPassword},
		{[]string{"pwd", "otp"}, []string{"pwd", "otp", "mfa"}, ACRMFA},
		{[]string{"pwd", "rc"}, []string{"pwd", "rc", "mfa"}, ACRMFA},
		{[]string{"pwd", "email"}, []string{"pwd", "email"}, ACRPassword}, // email is no second factor (S12)
		{[]string{"email"}, []string{"email"}, ACRPassword},
		{[]string{"pwd", "email", "otp"}, []string{"pwd", "email", "otp", "mfa"}, ACRMFA},
		{[]string{"fed"}, []string{"fed"}, ACRFederated},                   // R03: honest about the upstream
		{[]string{"fed", "mfa"}, []string{"fed", "mfa"}, ACRFederated},     // a trusted upstream's mfa, never local mfa's acr
		{[]string{"fed", "otp"}, []string{"fed", "otp", "mfa"}, ACRMFA},    // a local second factor after the upstream
		{[]string{"fed", "email"}, []string{"fed", "email"}, ACRFederated}, // email is still no second factor
		{[]string{"pwd", "hwk"}, []string{"pwd", "hwk", "mfa"}, ACRPhishingResistant},
		{[]string{"pwd", "swk", "user"}, []string{"pwd", "swk", "user", "mfa"}, ACRPhishingResistant},
		{[]string{"hwk", "user"}, []string{"hwk", "user", "mfa"}, ACRPhishingResistant},
		{[]string{"swk"}, []string{"swk"}, ACRPassword},        // a passkey without user verification is one factor
		{[]string{"pwd", "mfa"}, []string{"pwd"}, ACRPassword}, // "mfa" is earned, never carried in
	}
	for _, tc := range tests {
		amr, acr := Claims(tc.methods)
		assert.Equal(t, tc.amr, amr)
		assert.Equal(t, tc.acr, acr)
	}
	// A second step meets a policy; only two factors are MFA.
	assert.True(t, SecondStep([]string{"pwd", "email"}))
	assert.False(t, IsMFA([]string{"pwd", "email"}))
	assert.True(t, SecondStep([]string{"pwd", "otp", "mfa"}))
	assert.False(t, SecondStep([]string{"pwd"}))
	assert.False(t, SecondStep([]string{"email"}))
	assert.False(t, SecondStep([]string{"fed"}), "the upstream's setting decides")
}

func TestR23_WantsMFA(t *testing.T) {
	tests := []struct {
		acrValues string
		essential []string
		want      bool
	}{
		{"", nil, false},
		{ACRFederated + " " + ACRMFA, nil, true}, // strict: only the password acr lets a client take one factor
		{ACRMFA, nil, true},
		{ACRPassword + " " + ACRMFA, nil, false},
		{"1 2", nil, false},
		{"", []string{ACRMFA}, true},
		{"", []string{ACRPassword, ACRMFA}, false},
		{ACRPassword, []string{ACRMFA}, true},
		{ACRPhishingResistant, nil, true},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, WantsMFA(tc.acrValues, tc.essential), "%q %v", tc.acrValues, tc.essential)
	}
}

// TestR15_R17_PolicyRules: a second factor is required by the user's own
// flag or by their population's policy; only a policy with a grace date
// still ahead lets the setup be put off, and never past that date.
func TestR15_R17_PolicyRules(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Hour), now.Add(-time.Hour)
	agent := store.User{Population: store.PopulationAgent}
	flagged := store.User{Population: store.PopulationAgent, MFARequired: true}
	contact := store.User{Population: store.PopulationContact}
	pol := func(ps ...store.MFAPolicy) Policies { return NewPolicies(ps) }
	for _, tc := range []struct {
		name                        string
		user                        store.User
		pol                         Policies
		required, deferrable, nowRq bool
	}{
		{"no policy", agent, pol(), false, false, false},
		{"own flag", flagged, pol(), true, false, true},
		{"population policy", agent, pol(store.MFAPolicy{Population: store.PopulationAgent, Required: true}), true, false, true},
		{"the other population's policy", contact, pol(store.MFAPolicy{Population: store.PopulationAgent, Required: true}), false, false, false},
		{"grace ahead", agent, pol(store.MFAPolicy{Population: store.PopulationAgent, Required: true, GraceUntil: &later}), true, true, false},
		{"grace over", agent, pol(store.MFAPolicy{Population: store.PopulationAgent, Required: true, GraceUntil: &earlier}), true, false, true},
		{"grace ends at its instant", agent, pol(store.MFAPolicy{Population: store.PopulationAgent, Required: true, GraceUntil: &now}), true, false, true},
		{"own flag beats the grace", flagged, pol(store.MFAPolicy{Population: store.PopulationAgent, Required: true, GraceUntil: &later}), true, false, true},
		{"a grace date on a policy that is off", agent, pol(store.MFAPolicy{Population: store.PopulationAgent, GraceUntil: &later}), false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.required, Required(tc.user, tc.pol), "Required")
			assert.Equal(t, tc.deferrable, Deferrable(tc.user, tc.pol, now), "Deferrable")
			assert.Equal(t, tc.nowRq, RequiredNow(tc.user, tc.pol, now), "RequiredNow")
		})
	}
}

func TestR10_AllowedMethods(t *testing.T) {
	agent := store.User{Population: store.PopulationAgent}
	contact := store.User{Population: store.PopulationContact}
	keysOnly := NewPolicies([]store.MFAPolicy{{Population: store.PopulationAgent, Methods: store.Strings{MethodWebAuthn}}})
	for _, tc := range []struct {
		name   string
		user   store.User
		pol    Policies
		method string
		want   bool
	}{
		{"no policy: every method", agent, Policies{}, MethodTOTP, true},
		{"a policy without a list: every method", agent, NewPolicies([]store.MFAPolicy{{Population: store.PopulationAgent, Required: true}}), MethodTOTP, true},
		{"listed", agent, keysOnly, MethodWebAuthn, true},
		{"not listed", agent, keysOnly, MethodTOTP, false},
		{"the other population's list", contact, keysOnly, MethodTOTP, true},
		{"required, no list: every method", agent, Policies{store.PopulationAgent: {Required: true}}, MethodWebAuthn, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Allowed(tc.user, tc.pol, tc.method))
		})
	}
}
