package mfa

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// amr values of WebAuthn (RFC 8176): a hardware-bound key, a software
// (synced) key, and user verification (PIN or biometric) on it.
const (
	AMRHardwareKey = "hwk"
	AMRSoftwareKey = "swk"
	AMRUser        = "user"
)

// ErrNoRPID means the issuer's host is an IP address, which WebAuthn
// does not accept as a relying party id: security keys are unavailable.
var ErrNoRPID = errors.New("webauthn: the issuer's host is an IP address, not a domain: security keys and passkeys are off")

// NewWebAuthn configures the relying party from the issuer: the RP ID is
// the issuer's host name and the only allowed origin is the issuer's.
// User verification is preferred and attestation not asked for.
func NewWebAuthn(issuer, displayName string) (*webauthn.WebAuthn, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("webauthn: issuer: %w", err)
	}
	if net.ParseIP(u.Hostname()) != nil {
		return nil, ErrNoRPID
	}
	return webauthn.New(&webauthn.Config{
		RPID:                  u.Hostname(),
		RPDisplayName:         displayName,
		RPOrigins:             []string{u.Scheme + "://" + u.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
	})
}

// WebAuthnUser adapts an account and its keys to go-webauthn.
type WebAuthnUser struct {
	ID          string
	Email       string
	Credentials []webauthn.Credential
}

// WebAuthnID is the user handle: the account id, which is opaque.
func (u *WebAuthnUser) WebAuthnID() []byte                         { return []byte(u.ID) }
func (u *WebAuthnUser) WebAuthnName() string                       { return u.Email }
func (u *WebAuthnUser) WebAuthnDisplayName() string                { return u.Email }
func (u *WebAuthnUser) WebAuthnCredentials() []webauthn.Credential { return u.Credentials }

// Exclusions lists the user's keys so a key is not registered twice.
func (u *WebAuthnUser) Exclusions() []protocol.CredentialDescriptor {
	out := make([]protocol.CredentialDescriptor, 0, len(u.Credentials))
	for _, c := range u.Credentials {
		out = append(out, c.Descriptor())
	}
	return out
}

// KeyAMR tells what a WebAuthn assertion proved: a synced passkey
// (backup eligible) is swk, a device-bound key hwk; user verification
// adds "user".
func KeyAMR(flags webauthn.CredentialFlags) []string {
	amr := []string{AMRHardwareKey}
	if flags.BackupEligible {
		amr = []string{AMRSoftwareKey}
	}
	if flags.UserVerified {
		amr = append(amr, AMRUser)
	}
	return amr
}

func hasKey(methods []string) bool {
	return slices.Contains(methods, AMRHardwareKey) || slices.Contains(methods, AMRSoftwareKey)
}
