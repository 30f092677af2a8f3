package store

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrConflict means a conditional write found the row changed under it:
// a code or token already used, a login flow already past this step.
var ErrConflict = errors.New("store: conflict")

// Strings is a list stored as a JSON array.
type Strings []string

// Value implements driver.Valuer.
func (s Strings) Value() (driver.Value, error) {
	if s == nil {
		return "[]", nil
	}
	b, err := json.Marshal([]string(s))
	return string(b), err
}

// Scan implements sql.Scanner.
func (s *Strings) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	case nil:
		*s = Strings{}
		return nil
	default:
		return fmt.Errorf("store: cannot scan %T into Strings", src)
	}
	out := Strings{}
	if err := json.Unmarshal(b, (*[]string)(&out)); err != nil {
		return fmt.Errorf("store: decode string list: %w", err)
	}
	*s = out
	return nil
}

// Client is a registered relying party.
type Client struct {
	ID   string `db:"id"`
	Name string `db:"name"`
	// SecretHash is HMAC-SHA-256 of the secret; empty when the client has no secret.
	SecretHash []byte `db:"secret_hash"`
	Public     bool   `db:"public"`
	FirstParty bool   `db:"first_party"`
	RequireMFA bool   `db:"require_mfa"`
	// PKCEOptional lets a confidential client use the code flow without
	// PKCE; every other client must send a code_challenge.
	PKCEOptional           bool    `db:"pkce_optional"`
	RedirectURIs           Strings `db:"redirect_uris"`
	PostLogoutRedirectURIs Strings `db:"post_logout_redirect_uris"`
	GrantTypes             Strings `db:"grant_types"`
	Scopes                 Strings `db:"scopes"`
	// TokenEndpointAuthMethod is client_secret_basic, client_secret_post,
	// private_key_jwt or none.
	TokenEndpointAuthMethod string    `db:"token_endpoint_auth_method"`
	JWKS                    string    `db:"jwks"`
	JWKSURI                 string    `db:"jwks_uri"`
	IDTokenAlg              string    `db:"id_token_alg"`
	AccessTokenFormat       string    `db:"access_token_format"` // AccessTokenOpaque or AccessTokenJWT; "" is stored as opaque
	CreatedAt               time.Time `db:"created_at"`
	UpdatedAt               time.Time `db:"updated_at"`
}

// Access token formats a client registers: opaque HMAC tokens, or
// RFC 9068 JWTs signed with the client's ID token algorithm.
const (
	AccessTokenOpaque = "opaque"
	AccessTokenJWT    = "jwt"
)

// OAuth2 request kinds: one row per code, token or session signature.
const (
	KindAuthorizeCode = "code"
	KindAccessToken   = "access"
	KindRefreshToken  = "refresh"
	KindPKCE          = "pkce"
	KindOIDC          = "oidc"
)

// OAuth2Request is one piece of fosite state, the request serialised in Data.
type OAuth2Request struct {
	Kind        string    `db:"kind"`
	Signature   string    `db:"signature"`
	RequestID   string    `db:"request_id"`
	ClientID    string    `db:"client_id"`
	Subject     string    `db:"subject"`
	Active      bool      `db:"active"`
	RequestedAt time.Time `db:"requested_at"`
	ExpiresAt   time.Time `db:"expires_at"`
	Data        string    `db:"data"`
}

// SigningKey is a token-signing key, its private half sealed.
type SigningKey struct {
	KID           string     `db:"kid"`
	Alg           string     `db:"alg"`
	PrivateKeyEnc []byte     `db:"private_key_enc"`
	Active        bool       `db:"active"`
	CreatedAt     time.Time  `db:"created_at"`
	RetiredAt     *time.Time `db:"retired_at"`
}

// Session is a server-side SSO session; ID is a hash of the cookie value.
type Session struct {
	ID        string    `db:"id"`
	UserID    string    `db:"user_id"`
	AMR       Strings   `db:"amr"`
	ACR       string    `db:"acr"`
	AuthTime  time.Time `db:"auth_time"`
	CreatedAt time.Time `db:"created_at"`
	// LastSeen is when the session was last used (idle timeout).
	LastSeen  time.Time `db:"last_seen"`
	ExpiresAt time.Time `db:"expires_at"`
	// Upstream is the provider the user signed in through (R03), or "".
	Upstream string `db:"upstream"`
}

// Login flow states; a flow moves one way through them.
const (
	FlowPassword = "password"
	// FlowPasswordChange replaces a one-time password before going on.
	FlowPasswordChange = "password_change"
	FlowSecondFactor   = "second_factor"
	FlowEnrol          = "enrol"
	FlowRecoveryCodes  = "recovery_codes"
	FlowConsent        = "consent"
	FlowDone           = "done"
)

// LoginFlow is one sign-in in progress, created by /authorize.
type LoginFlow struct {
	ID        string `db:"id"`
	State     string `db:"state"`
	UserID    string `db:"user_id"`
	SessionID string `db:"session_id"`
	ClientID  string `db:"client_id"`
	// AuthorizeForm is the original authorize request, URL-encoded.
	AuthorizeForm string     `db:"authorize_form"`
	Methods       Strings    `db:"methods"`
	Failures      int        `db:"failures"`
	AuthTime      *time.Time `db:"auth_time"`
	CreatedAt     time.Time  `db:"created_at"`
	ExpiresAt     time.Time  `db:"expires_at"`
	// Upstream is the provider the user signed in through (R03), or "".
	Upstream string `db:"upstream"`
}

// Consent records the scopes a user granted a client.
type Consent struct {
	UserID    string    `db:"user_id"`
	ClientID  string    `db:"client_id"`
	Scopes    Strings   `db:"scopes"`
	GrantedAt time.Time `db:"granted_at"`
}

// Factor kinds.
const (
	FactorTOTP     = "totp"
	FactorWebAuthn = "webauthn"
	// FactorEmail: codes sent to the account's address (R08); the
	// factor has no secret, it records that the address was proved.
	FactorEmail = "email"
	// FactorSMS: codes sent by text message to Phone (R09); confirmed
	// once a code sent there came back, or an admin confirmed it.
	FactorSMS = "sms"
)

// Factor is a user's second factor. A factor counts only once Confirmed:
// a TOTP secret is confirmed by a correct code.
type Factor struct {
	ID     string `db:"id"`
	UserID string `db:"user_id"`
	Kind   string `db:"kind"`
	Name   string `db:"name"`
	// SecretEnc is the TOTP secret sealed under the secrets key.
	SecretEnc []byte `db:"secret_enc"`
	// LastStep is the last accepted TOTP time step: a code is never
	// accepted twice, on any replica.
	LastStep int64 `db:"last_step"`
	// CredentialID and Credential (go-webauthn's Credential as JSON)
	// describe a security key or passkey; SignCount is its counter.
	CredentialID []byte `db:"credential_id"`
	Credential   string `db:"credential"`
	SignCount    int64  `db:"sign_count"`
	// Phone is an SMS factor's number, E.164.
	Phone      string     `db:"phone"`
	Confirmed  bool       `db:"confirmed"`
	CreatedAt  time.Time  `db:"created_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
}

// OneTimeCode is a code sent to a user by email (R08), bound to one
// purpose: a sign-in, or a setup on the account page. Hash is the
// code's HMAC, never the code. Sends counts the codes sent for the
// purpose, this one included (each resend waits longer).
type OneTimeCode struct {
	UserID    string    `db:"user_id"`
	Purpose   string    `db:"purpose"`
	Hash      []byte    `db:"code_hash"`
	Sends     int       `db:"sends"`
	SentAt    time.Time `db:"sent_at"`
	ExpiresAt time.Time `db:"expires_at"`
}

// Limit is a throttle's rule: at most Max attempts, then a lock of Lock.
// With a Window, a count older than it starts again from zero. With a
// Cap, at most Cap attempts are allowed in all, across lock periods,
// until the key is reset: then it stays shut (Throttle.Capped).
type Limit struct {
	Max    int
	Lock   time.Duration
	Window time.Duration
	Cap    int
}

// Try is one attempt under Key, counted against Limit (Store.Attempts).
type Try struct {
	Key   string
	Limit Limit
}

// Throttle is the outcome of reserving an attempt.
type Throttle struct {
	Allowed bool
	// Failures counts attempts since the last success, this one included.
	Failures int
	// RetryAt is when a locked key opens again.
	RetryAt time.Time
	// Capped: the key is past its Limit.Cap; only a reset opens it.
	Capped bool
}

// WebAuthnSession is a ceremony's server-side state (challenge), used once.
type WebAuthnSession struct {
	ID        string    `db:"id"`
	UserID    string    `db:"user_id"`
	Data      string    `db:"data"`
	ExpiresAt time.Time `db:"expires_at"`
}

// MFAPolicy is a population's requirement of a second factor (R15): every
// agent, or every contact, must have one. Until GraceUntil its users may
// put the setup off at sign-in (R17). Methods are the kinds of factor
// its users may set up (R10), empty for every kind.
type MFAPolicy struct {
	Population Population `db:"population"`
	Required   bool       `db:"required"`
	GraceUntil *time.Time `db:"grace_until"`
	Methods    Strings    `db:"methods"`
	UpdatedAt  time.Time  `db:"updated_at"`
}
