package provider

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/twofold-idp/twofold/mfa"
)

// acr values. A session never claims more than what happened in it.
const (
	ACRPassword = mfa.ACRPassword
	ACRMFA      = mfa.ACRMFA
	// ACRPhishingResistant: two factors, one a WebAuthn key.
	ACRPhishingResistant = mfa.ACRPhishingResistant
	// ACRFederated: an upstream provider signed the user in (R03).
	ACRFederated = mfa.ACRFederated
)

// acrSupported lists what this provider can honestly assert: no
// phishing-resistant acr when WebAuthn is off (an IP-address issuer),
// no federated one without upstreams.
func (p *Provider) acrSupported() []string {
	return slices.DeleteFunc(slices.Clone(mfa.ACRSupported), func(a string) bool {
		return (a == mfa.ACRPhishingResistant && p.webauthn == nil) || (a == mfa.ACRFederated && len(p.upstreams) == 0)
	})
}

var (
	scopesSupported = []string{"openid", "profile", "email", "offline_access"}
	// claimsSupported: the ID token's own claims and the scope claims.
	claimsSupported = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
		"azp", "at_hash", "sid", "email", "email_verified", "preferred_username", "updated_at"}
	authMethods = []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
)

// buildDiscovery serialises the OpenID Provider Metadata once; every field
// states what is implemented, nothing more.
func (p *Provider) buildDiscovery() ([]byte, error) {
	iss := p.cfg.Issuer
	return json.Marshal(map[string]any{
		"issuer":                                           iss,
		"authorization_endpoint":                           iss + "/authorize",
		"token_endpoint":                                   iss + "/token",
		"userinfo_endpoint":                                iss + "/userinfo",
		"jwks_uri":                                         iss + "/jwks",
		"end_session_endpoint":                             iss + "/logout",
		"revocation_endpoint":                              iss + "/revoke",
		"introspection_endpoint":                           iss + "/introspect",
		"scopes_supported":                                 scopesSupported,
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query", "form_post"},
		"grant_types_supported":                            []string{"authorization_code", "refresh_token", "client_credentials"},
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            Algs,
		"token_endpoint_auth_methods_supported":            authMethods,
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256", "ES256"},
		"revocation_endpoint_auth_methods_supported":       authMethods,
		"introspection_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"claims_supported":                                 claimsSupported,
		"claim_types_supported":                            []string{"normal"},
		"claims_parameter_supported":                       true,
		"request_parameter_supported":                      false,
		"request_uri_parameter_supported":                  false,
		"acr_values_supported":                             p.acrSupported(),
		"prompt_values_supported":                          []string{"none", "login", "consent"},
		"display_values_supported":                         []string{"page", "popup"},
		"authorization_response_iss_parameter_supported":   true,
		"userinfo_signing_alg_values_supported":            []string{},
		"require_request_uri_registration":                 false,
		"backchannel_logout_supported":                     false,
		"frontchannel_logout_supported":                    false,
	})
}

func (p *Provider) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	writeCachedJSON(w, p.discovery)
}

func (p *Provider) handleJWKS(w http.ResponseWriter, r *http.Request) {
	writeCachedJSON(w, p.keys.JWKS(r.Context()))
}

// writeCachedJSON writes pre-serialised public JSON; caches may keep it a
// few minutes (a rotation is seen by relying parties within that time,
// and the old key stays published far longer).
func writeCachedJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(body)
}
