package clients

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/twofold-idp/twofold/store"
)

// Grant types a client may register. The password and implicit grants are
// refused outright: both hand tokens or credentials around in ways OAuth 2.0
// Security BCP (RFC 9700) forbids.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// Token endpoint authentication methods.
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
	AuthNone              = "none"
)

// Limits on registration values; generous for real use, small enough
// that a registration cannot bloat every token request that loads it.
const (
	MaxNameLen = 200
	MaxURILen  = 2000
	maxJWKSLen = 64 << 10
)

// SupportedGrantTypes lists the grant types a client may register, in the
// order discovery should advertise them.
func SupportedGrantTypes() []string {
	return []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials}
}

// SupportedScopes lists the scopes a client may register.
func SupportedScopes() []string { return []string{"openid", "profile", "email", "offline_access"} }

// SupportedAuthMethods lists the token endpoint authentication methods.
func SupportedAuthMethods() []string {
	return []string{AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthNone}
}

// SupportedIDTokenAlgs lists the algorithms an ID token may be signed with.
func SupportedIDTokenAlgs() []string { return []string{"RS256", "ES256"} }

// SupportedAccessTokenFormats lists the access token formats, default
// first: opaque HMAC tokens, or RFC 9068 JWTs signed like the client's ID
// tokens (same algorithm, same keys).
func SupportedAccessTokenFormats() []string {
	return []string{store.AccessTokenOpaque, store.AccessTokenJWT}
}

// ValidationError is a refused registration. Field uses the OpenID
// Connect registration metadata names (redirect_uris, grant_types...) so
// the message points at the value to fix whichever front end set it.
type ValidationError struct {
	Field   string
	Problem string
}

func (e *ValidationError) Error() string { return "invalid client: " + e.Field + ": " + e.Problem }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Validate checks a registration and returns it with Twofold's defaults
// filled in: grant types authorization_code and refresh_token; scopes
// openid, profile, email and offline_access; client_secret_basic (none
// for a public client); ID tokens signed with RS256; opaque access
// tokens. The returned slices
// are copies, never aliases of the caller's.
func Validate(s Spec) (Spec, error) {
	s.Name = strings.TrimSpace(s.Name)
	if err := validateName(s.Name); err != nil {
		return Spec{}, err
	}

	s.GrantTypes = orDefault(s.GrantTypes, GrantAuthorizationCode, GrantRefreshToken)
	if err := checkList("grant_types", s.GrantTypes, SupportedGrantTypes()); err != nil {
		return Spec{}, err
	}
	hasCode := slices.Contains(s.GrantTypes, GrantAuthorizationCode)
	if slices.Contains(s.GrantTypes, GrantRefreshToken) && !hasCode {
		// Refresh tokens are only issued with the authorization code grant.
		return Spec{}, invalid("grant_types", "refresh_token needs authorization_code")
	}

	s.Scopes = orDefault(s.Scopes, SupportedScopes()...)
	if err := checkList("scopes", s.Scopes, SupportedScopes()); err != nil {
		return Spec{}, err
	}

	s.RedirectURIs = slices.Clone(s.RedirectURIs)
	if err := validateURIs("redirect_uris", s.RedirectURIs); err != nil {
		return Spec{}, err
	}
	if hasCode && len(s.RedirectURIs) == 0 {
		return Spec{}, invalid("redirect_uris", "the authorization_code grant needs at least one redirect URI")
	}
	s.PostLogoutRedirectURIs = slices.Clone(s.PostLogoutRedirectURIs)
	if err := validateURIs("post_logout_redirect_uris", s.PostLogoutRedirectURIs); err != nil {
		return Spec{}, err
	}

	if err := validateAuth(&s); err != nil {
		return Spec{}, err
	}

	if s.IDTokenAlg == "" {
		s.IDTokenAlg = "RS256"
	}
	if !slices.Contains(SupportedIDTokenAlgs(), s.IDTokenAlg) {
		return Spec{}, invalid("id_token_alg", "%q is not supported (want %s)", s.IDTokenAlg, strings.Join(SupportedIDTokenAlgs(), " or "))
	}

	if s.AccessTokenFormat == "" {
		s.AccessTokenFormat = store.AccessTokenOpaque
	}
	if !slices.Contains(SupportedAccessTokenFormats(), s.AccessTokenFormat) {
		return Spec{}, invalid("access_token_format", "%q is not supported (want %s)", s.AccessTokenFormat, strings.Join(SupportedAccessTokenFormats(), " or "))
	}
	return s, nil
}

func validateName(name string) error {
	switch {
	case name == "":
		return invalid("name", "required")
	case !utf8.ValidString(name):
		return invalid("name", "not valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return invalid("name", "longer than %d characters", MaxNameLen)
	case strings.ContainsFunc(name, unicode.IsControl):
		// The name is shown on consent pages and in terminal tables.
		return invalid("name", "contains control characters")
	}
	return nil
}

// orDefault returns a copy of list, or def when list is empty.
func orDefault(list []string, def ...string) []string {
	if len(list) == 0 {
		return def
	}
	return slices.Clone(list)
}

// checkList refuses values outside allowed, and duplicates.
func checkList(field string, list, allowed []string) error {
	for i, v := range list {
		if !slices.Contains(allowed, v) {
			return invalid(field, "%q is not supported (want one of %s)", v, strings.Join(allowed, ", "))
		}
		if slices.Contains(list[:i], v) {
			return invalid(field, "%q is listed twice", v)
		}
	}
	return nil
}

func validateURIs(field string, uris []string) error {
	for i, u := range uris {
		if err := ValidateRedirectURI(u); err != nil {
			return invalid(field, "%q: %v", u, err)
		}
		if slices.Contains(uris[:i], u) {
			return invalid(field, "%q is listed twice", u)
		}
	}
	return nil
}

// ValidateRedirectURI checks one redirect or post-logout redirect URI: an
// absolute https URL with a host, no fragment, no user info and no
// wildcard, at most MaxURILen long. Plain http is allowed only on the
// loopback hosts (RFC 8252 section 7.3, native apps); custom schemes are
// refused, so native apps use loopback redirects, which another app
// cannot claim.
func ValidateRedirectURI(raw string) error {
	switch {
	case raw == "":
		return fmt.Errorf("empty")
	case len(raw) > MaxURILen:
		return fmt.Errorf("longer than %d characters", MaxURILen)
	case strings.Contains(raw, "*"):
		return fmt.Errorf("wildcards are not allowed: redirect URIs match exactly")
	case strings.Contains(raw, "#"):
		return fmt.Errorf("must not have a fragment")
	case strings.ContainsFunc(raw, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("must not contain spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a valid URL: %w", err)
	}
	if !u.IsAbs() {
		return fmt.Errorf("must be an absolute URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("http is only allowed on localhost, 127.0.0.1 and [::1]: use https")
		}
	default:
		return fmt.Errorf("scheme %q is not allowed: use https, or http on a loopback host", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("must have a host")
	}
	if u.User != nil {
		return fmt.Errorf("must not contain user info")
	}
	return nil
}

func isLoopback(host string) bool {
	return strings.EqualFold(host, "localhost") || host == "127.0.0.1" || host == "::1"
}

// validateAuth settles the token endpoint authentication method and the
// key material that goes with it.
func validateAuth(s *Spec) error {
	if s.TokenEndpointAuthMethod == "" {
		s.TokenEndpointAuthMethod = AuthClientSecretBasic
		if s.Public {
			s.TokenEndpointAuthMethod = AuthNone
		}
	}
	m := s.TokenEndpointAuthMethod
	if !slices.Contains(SupportedAuthMethods(), m) {
		return invalid("token_endpoint_auth_method", "%q is not supported (want one of %s)", m, strings.Join(SupportedAuthMethods(), ", "))
	}
	switch {
	case s.Public && m != AuthNone:
		return invalid("token_endpoint_auth_method", "a public client cannot keep a credential: use none, or drop public")
	case !s.Public && m == AuthNone:
		return invalid("token_endpoint_auth_method", "none is only for public clients: set public")
	case s.Public && slices.Contains(s.GrantTypes, GrantClientCredentials):
		return invalid("grant_types", "a public client cannot use client_credentials")
	case s.Public && s.PKCEOptional:
		return invalid("pkce_optional", "a public client must use PKCE")
	case s.PKCEOptional && !slices.Contains(s.GrantTypes, GrantAuthorizationCode):
		return invalid("pkce_optional", "only the authorization_code grant uses PKCE")
	}
	if m != AuthPrivateKeyJWT {
		// Keys are only used to verify private_key_jwt assertions;
		// accepting them elsewhere would suggest they do something.
		if s.JWKS != "" || s.JWKSURI != "" {
			return invalid("jwks", "jwks and jwks_uri are only used with private_key_jwt")
		}
		return nil
	}
	switch {
	case s.JWKS == "" && s.JWKSURI == "":
		return invalid("jwks", "private_key_jwt needs jwks or jwks_uri")
	case s.JWKS != "" && s.JWKSURI != "":
		return invalid("jwks", "set jwks or jwks_uri, not both")
	case s.JWKS != "":
		return validateJWKS(s.JWKS)
	}
	return validateJWKSURI(s.JWKSURI)
}

// validateJWKS requires a JSON Web Key Set of public keys only: a private
// or symmetric key in a registration means a secret was pasted where it
// will be stored and shown in clear.
func validateJWKS(raw string) error {
	if len(raw) > maxJWKSLen {
		return invalid("jwks", "larger than %d bytes", maxJWKSLen)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(raw), &set); err != nil {
		return invalid("jwks", "not a JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return invalid("jwks", "holds no keys")
	}
	for i, k := range set.Keys {
		if !k.IsPublic() {
			return invalid("jwks", "key %d is a private or symmetric key: register public keys only", i)
		}
		if !k.Valid() {
			return invalid("jwks", "key %d is not a valid key", i)
		}
	}
	return nil
}

func validateJWKSURI(raw string) error {
	if len(raw) > MaxURILen {
		return invalid("jwks_uri", "longer than %d characters", MaxURILen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid("jwks_uri", "not a valid URL: %v", err)
	}
	switch {
	case u.Scheme != "https":
		return invalid("jwks_uri", "must be an https URL")
	case u.Host == "" || u.Hostname() == "":
		return invalid("jwks_uri", "must have a host")
	case u.User != nil:
		return invalid("jwks_uri", "must not contain user info")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return invalid("jwks_uri", "must not have a fragment")
	}
	return nil
}
