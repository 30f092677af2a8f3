package conformance_test

import (
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/text/language"

	"github.com/twofold-idp/twofold/conformance"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestConfigPlan re-creates oidcc-config-certification-test-plan.
func TestConfigPlan(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			runPlan(t, startSite(t, dialect), conformance.ConfigPlan, configModules)
		})
	}
}

const discoverySuffix = "/.well-known/openid-configuration"

// metadataTypes is the suite's RFC 8414 schema
// (json-schemas/rfc8414/oauth_authorization_server_metadata.json), for
// the fields an OpenID provider may publish: a field of the wrong type
// fails, a field not listed is a warning.
var metadataTypes = func() map[string]string {
	types := map[string]string{"mtls_endpoint_aliases": "object", "signed_metadata": "string"}
	for _, k := range strings.Fields(`issuer authorization_endpoint token_endpoint jwks_uri registration_endpoint
		userinfo_endpoint end_session_endpoint check_session_iframe revocation_endpoint introspection_endpoint
		service_documentation op_policy_uri op_tos_uri pushed_authorization_request_endpoint
		device_authorization_endpoint backchannel_authentication_endpoint`) {
		types[k] = "uri"
	}
	for _, k := range strings.Fields(`scopes_supported response_types_supported response_modes_supported
		grant_types_supported token_endpoint_auth_methods_supported token_endpoint_auth_signing_alg_values_supported
		ui_locales_supported revocation_endpoint_auth_methods_supported revocation_endpoint_auth_signing_alg_values_supported
		introspection_endpoint_auth_methods_supported introspection_endpoint_auth_signing_alg_values_supported
		code_challenge_methods_supported subject_types_supported id_token_signing_alg_values_supported
		id_token_encryption_alg_values_supported id_token_encryption_enc_values_supported
		userinfo_signing_alg_values_supported userinfo_encryption_alg_values_supported userinfo_encryption_enc_values_supported
		request_object_signing_alg_values_supported request_object_encryption_alg_values_supported
		request_object_encryption_enc_values_supported display_values_supported claim_types_supported claims_supported
		claims_locales_supported acr_values_supported dpop_signing_alg_values_supported prompt_values_supported
		authorization_details_types_supported backchannel_token_delivery_modes_supported
		backchannel_authentication_request_signing_alg_values_supported authorization_signing_alg_values_supported
		authorization_encryption_alg_values_supported authorization_encryption_enc_values_supported`) {
		types[k] = "array"
	}
	for _, k := range strings.Fields(`claims_parameter_supported request_parameter_supported request_uri_parameter_supported
		require_request_uri_registration frontchannel_logout_supported frontchannel_logout_session_supported
		backchannel_logout_supported backchannel_logout_session_supported require_pushed_authorization_requests
		backchannel_user_code_parameter_supported tls_client_certificate_bound_access_tokens
		authorization_response_iss_parameter_supported require_signed_request_object`) {
		types[k] = "bool"
	}
	return types
}()

// oidcResponseTypes are the OpenID Connect response types, words sorted.
var oidcResponseTypes = []string{"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"}

func sortedWords(s string) string {
	w := strings.Fields(s)
	sort.Strings(w)
	return strings.Join(w, " ")
}

var configModules = map[string]func(*mod){
	// OIDCCDiscoveryEndpointVerification. setup() has fetched the
	// document (200, JSON) and the JWKS (valid, kids).
	"oidcc-discovery-endpoint-verification": func(m *mod) {
		discoveryURL := m.issuer + discoverySuffix
		u, err := url.Parse(discoveryURL)
		if m.check(err == nil, "discovery URL %q: %v", discoveryURL, err) {
			m.check(u.Scheme == "https", "the discovery URL %s is not https", discoveryURL)
		}
		m.check(m.discString("issuer") == strings.TrimSuffix(discoveryURL, discoverySuffix),
			"issuer %q is not the discovery URL minus %s", m.discString("issuer"), discoverySuffix)

		// Schema.
		var unknown []string
		for k, v := range m.disc {
			kind, ok := metadataTypes[k]
			if !ok {
				unknown = append(unknown, k)
				continue
			}
			switch kind {
			case "uri", "string":
				_, isString := v.(string)
				m.check(isString, "%s is not a string: %v", k, v)
			case "bool":
				_, isBool := v.(bool)
				m.check(isBool, "%s is not a boolean: %v", k, v)
			case "object":
				_, isObject := v.(map[string]any)
				m.check(isObject, "%s is not an object: %v", k, v)
			case "array":
				arr, isArray := v.([]any)
				ok := isArray && !slices.ContainsFunc(arr, func(x any) bool { _, s := x.(string); return !s })
				m.check(ok, "%s is not an array of strings: %v", k, v)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			m.Warnf("fields outside the suite's schema: %s", strings.Join(unknown, ", "))
		}

		// Required values.
		rts, _ := m.discStrings("response_types_supported")
		m.check(slices.ContainsFunc(rts, func(rt string) bool { return slices.Contains(oidcResponseTypes, sortedWords(rt)) }),
			"response_types_supported %v has no OpenID Connect response type", rts)
		sts, _ := m.discStrings("subject_types_supported")
		m.check(slices.Contains(sts, "public") || slices.Contains(sts, "pairwise"), "subject_types_supported %v has neither public nor pairwise", sts)
		for _, st := range sts {
			m.check(st == "public" || st == "pairwise", "subject_types_supported has an unknown value %q", st)
		}
		algs, _ := m.discStrings("id_token_signing_alg_values_supported")
		m.check(slices.Contains(algs, "RS256"), "id_token_signing_alg_values_supported %v lacks RS256 (OIDCD-3)", algs)

		// Endpoints: present and https.
		for _, k := range []string{"authorization_endpoint", "token_endpoint"} {
			m.check(m.discString(k) != "", "%s is missing", k)
		}
		if m.discString("userinfo_endpoint") == "" {
			m.Warnf("userinfo_endpoint is missing")
		}
		for k, kind := range metadataTypes {
			if kind != "uri" || m.disc[k] == nil {
				continue
			}
			eu, err := url.Parse(m.discString(k))
			m.check(err == nil && eu.Scheme == "https" && eu.Host != "", "%s %q is not an https URL", k, m.discString(k))
		}

		// Optional fields.
		if scopes, ok := m.discStrings("scopes_supported"); !ok || !slices.Contains(scopes, "openid") {
			m.Warnf("scopes_supported is missing or lacks openid")
		}
		if _, ok := m.disc["claims_supported"]; !ok {
			m.Warnf("claims_supported is missing (RECOMMENDED)")
		}
		if gts, ok := m.discStrings("grant_types_supported"); ok {
			m.check(len(gts) > 0, "grant_types_supported is an empty array")
		}
		for _, k := range []string{"claims_locales_supported", "ui_locales_supported"} {
			locales, _ := m.discStrings(k)
			for _, l := range locales {
				tag, err := language.Parse(l)
				m.check(err == nil && tag.String() == l, "%s: %q is not a canonical BCP 47 tag", k, l)
			}
		}
		if ralgs, ok := m.discStrings("request_object_signing_alg_values_supported"); ok && !slices.Contains(ralgs, "RS256") {
			m.Warnf("request_object_signing_alg_values_supported %v lacks RS256", ralgs)
		}
		if v, ok := m.disc["code_challenge_methods_supported"]; ok {
			_, isArray := v.([]any)
			m.check(isArray, "code_challenge_methods_supported is not an array")
		}
	},
}
