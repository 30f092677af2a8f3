package conformance_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/conformance"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestBasicPlan re-creates oidcc-basic-certification-test-plan (code
// flow, client_secret_basic, static clients) on each database. The
// databases and the modules run in parallel, so the suite's real waits
// (up to 30 s) overlap.
func TestBasicPlan(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			runPlan(t, startSite(t, dialect), conformance.BasicPlan, basicModules)
		})
	}
}

// scopeClaims are the claims each scope asks for (OIDC Core 5.4), as the
// suite's VerifyScopesReturnedInUserInfoClaims lists them.
var scopeClaims = map[string][]string{
	"profile": {"name", "given_name", "family_name", "middle_name", "nickname", "profile", "picture", "website",
		"gender", "birthdate", "zoneinfo", "locale", "updated_at", "preferred_username"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"phone":   {"phone_number", "phone_number_verified"},
}

// idTokenClaims may appear in any ID token without a warning
// (EnsureIdTokenDoesNotContainNonRequestedClaims).
var idTokenClaims = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
	"at_hash", "c_hash", "nbf", "jti", "sid", "s_hash"}

var basicModules = map[string]func(*mod){
	// OIDCCServerTest: the happy path, and warnings for what a careful
	// provider would not do.
	"oidcc-server": func(m *mod) {
		f := m.happy(m.s.client1, nil)
		if _, ok := f.tokens.json["expires_in"]; !ok {
			m.Warnf("the token response has no expires_in")
		}
		if _, ok := f.claims["name"]; ok {
			m.Warnf("the ID token contains name, which only the userinfo endpoint should return for scope profile")
		}
		allowed := slices.Clone(idTokenClaims)
		for _, s := range strings.Fields(f.params.Get("scope")) {
			allowed = append(allowed, scopeClaims[s]...)
		}
		for k := range f.claims {
			if !slices.Contains(allowed, k) {
				m.Warnf("the ID token contains %q, which was not requested", k)
			}
		}
	},

	// OIDCCResponseTypeMissing: an error to the client (invalid_request or
	// unsupported_response_type, with state) or an error page.
	"oidcc-response-type-missing": func(m *mod) {
		p := m.params(m.s.client1)
		p.Del("response_type")
		page, cb := m.follow(m.b.Get(m.authURL(p)))
		if cb == "" {
			m.expectErrorPage(page, cb)
			return
		}
		m.expectErrorRedirect(cb, p.Get("state"), "invalid_request", "unsupported_response_type")
	},

	// OIDCCIdTokenSignature: the suite registers a client without
	// id_token_signed_response_alg and expects RS256 with a kid. A static
	// client registered without an algorithm is the same question.
	"oidcc-idtoken-signature": func(m *mod) {
		f := m.happy(m.s.client1, nil)
		m.check(f.header["alg"] == "RS256", "default ID token alg %v, want RS256", f.header["alg"])
		kid, _ := f.header["kid"].(string)
		m.check(kid != "", "the ID token header has no kid")
		m.Notef("asserted with a static client registered without an ID token algorithm (the suite uses a dynamically registered one)")
	},

	// OIDCCIdTokenUnsigned: dynamic registration only, and skipped
	// unless none is an advertised ID token algorithm.
	"oidcc-idtoken-unsigned": func(m *mod) {
		algs, _ := m.discStrings("id_token_signing_alg_values_supported")
		reason := "applies only to dynamically registered clients"
		if !slices.Contains(algs, "none") {
			reason += `; and "none" is not in id_token_signing_alg_values_supported, so the suite would skip it anyway`
		}
		m.dynamicOnly(reason)
	},

	"oidcc-userinfo-get": func(m *mod) {
		f := m.happy(m.s.client1, nil)
		m.userinfo("get", f.tokens.accessToken, f.claims["sub"])
		// And as an independent library sees it.
		ui, err := m.s.op.UserInfo(m.ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: f.tokens.accessToken}))
		if m.check(err == nil, "go-oidc userinfo: %v", err) {
			m.check(ui.Subject == f.claims["sub"], "go-oidc userinfo sub %q", ui.Subject)
		}
	},
	"oidcc-userinfo-post-header": func(m *mod) {
		f := m.happy(m.s.client1, nil)
		m.userinfo("post-header", f.tokens.accessToken, f.claims["sub"])
	},
	"oidcc-userinfo-post-body": func(m *mod) {
		f := m.happy(m.s.client1, nil)
		m.userinfo("post-body", f.tokens.accessToken, f.claims["sub"])
	},

	// A code flow without nonce still succeeds, and the ID token then
	// carries no nonce.
	"oidcc-ensure-request-without-nonce-succeeds-for-code-flow": func(m *mod) {
		m.happy(m.s.client1, func(p url.Values) { p.Del("nonce") })
	},

	"oidcc-scope-profile": func(m *mod) { m.scopes("profile") },
	"oidcc-scope-email":   func(m *mod) { m.scopes("email") },
	"oidcc-scope-address": func(m *mod) { m.scopes("address") },
	"oidcc-scope-phone":   func(m *mod) { m.scopes("phone") },
	"oidcc-scope-all":     func(m *mod) { m.scopes("email", "phone", "address", "profile") },

	// OIDCCAlternateHappyFlow extends OIDCCScopeEmail: scope reversed,
	// query parameters in another order.
	"oidcc-alternate-happy-flow": func(m *mod) {
		c := m.s.client1
		p := m.params(c)
		p.Set("scope", "email openid")
		order := []string{"nonce", "state", "scope", "redirect_uri", "response_type", "client_id"}
		var q []string
		for _, k := range order {
			q = append(q, url.QueryEscape(k)+"="+url.QueryEscape(p.Get(k)))
		}
		u := m.discString("authorization_endpoint") + "?" + strings.Join(q, "&")
		f := m.complete(c, p, m.b.Get(u), flowOpts{})
		m.scopeClaimsPresent(f.userinfo, "email")
	},

	"oidcc-display-page":  func(m *mod) { m.happy(m.s.client1, func(p url.Values) { p.Set("display", "page") }) },
	"oidcc-display-popup": func(m *mod) { m.happy(m.s.client1, func(p url.Values) { p.Set("display", "popup") }) },

	// OIDCCPromptLogin: a second request a second later with prompt=login
	// must make the user sign in again (the suite's REVIEW step: here,
	// the sign-in page must be shown), and a later auth_time.
	"oidcc-prompt-login": func(m *mod) {
		f1 := m.happy(m.s.client1, nil)
		time.Sleep(time.Second + 100*time.Millisecond)
		f2 := m.happy(m.s.client1, func(p url.Values) { p.Set("prompt", "login") })
		m.check(f2.shown == "/login", "prompt=login did not show the sign-in page (first page: %q)", f2.shown)
		m.check(f2.claims["sub"] == f1.claims["sub"], "sub changed: %v then %v", f1.claims["sub"], f2.claims["sub"])
		a1, ok1 := f1.claims["auth_time"].(float64)
		a2, ok2 := f2.claims["auth_time"].(float64)
		if ok1 && ok2 {
			m.check(a2 > a1, "auth_time after prompt=login (%v) is not later than before (%v)", a2, a1)
		}
	},

	// OIDCCPromptNoneNotLoggedIn: a fresh browser, prompt=none, a
	// 128-character state.
	"oidcc-prompt-none-not-logged-in": func(m *mod) {
		p := m.params(m.s.client1)
		p.Set("prompt", "none")
		p.Set("state", randomString(128))
		page, cb := m.follow(m.b.Get(m.authURL(p)))
		if cb == "" {
			m.Fatalf("prompt=none without a session did not return to the client: %s (HTTP %d)", page.Request.URL.Path, page.StatusCode)
		}
		m.expectErrorRedirect(cb, p.Get("state"), "login_required", "interaction_required", "consent_required", "account_selection_required")
	},

	// OIDCCPromptNoneLoggedIn: silent success, same sub and auth_time.
	"oidcc-prompt-none-logged-in": func(m *mod) {
		f1 := m.happy(m.s.client1, nil)
		f2 := m.silent(m.s.client1, func(p url.Values) { p.Set("prompt", "none") })
		m.sameAuth(f1, f2)
	},

	// OIDCCMaxAge1: after 2 s, max_age=1 forces a new sign-in; the second
	// ID token has a later auth_time.
	"oidcc-max-age-1": func(m *mod) {
		f1 := m.happy(m.s.client1, nil)
		time.Sleep(2 * time.Second)
		before := float64(time.Now().Unix())
		f2 := m.happy(m.s.client1, func(p url.Values) { p.Set("max_age", "1") })
		m.check(f2.shown == "/login", "max_age=1 after 2 s did not show the sign-in page (first page: %q)", f2.shown)
		a2, ok := f2.claims["auth_time"].(float64)
		if !m.check(ok, "the ID token has no auth_time though max_age was sent (OIDCC-3.1.2.1)") {
			return
		}
		if a1, ok := f1.claims["auth_time"].(float64); ok {
			m.check(a2 > a1, "auth_time %v is not later than the first sign-in's %v", a2, a1)
		}
		m.check(a2 >= before-1, "auth_time %v is older than the re-authentication (%v)", a2, before)
	},

	// OIDCCMaxAge10000: max_age=15000, then max_age=10000 without any UI;
	// auth_time present in both and equal.
	"oidcc-max-age-10000": func(m *mod) {
		f1 := m.happy(m.s.client1, func(p url.Values) { p.Set("max_age", "15000") })
		f2 := m.silent(m.s.client1, func(p url.Values) { p.Set("max_age", "10000") })
		_, ok1 := f1.claims["auth_time"]
		_, ok2 := f2.claims["auth_time"]
		m.check(ok1 && ok2, "auth_time missing though max_age was sent (first: %v, second: %v)", ok1, ok2)
		m.sameAuth(f1, f2)
	},

	"oidcc-ensure-request-with-unknown-parameter-succeeds": func(m *mod) {
		m.happy(m.s.client1, func(p url.Values) { p.Set("extra", "foobar") })
	},

	// OIDCCIdTokenHint: prompt=none with the first ID token as hint
	// succeeds silently for the same user.
	"oidcc-id-token-hint": func(m *mod) {
		f1 := m.happy(m.s.client1, nil)
		f2 := m.silent(m.s.client1, func(p url.Values) {
			p.Set("prompt", "none")
			p.Set("id_token_hint", f1.idToken)
		})
		m.sameAuth(f1, f2)
	},

	"oidcc-login-hint": func(m *mod) {
		u, _ := url.Parse(m.issuer)
		m.happy(m.s.client1, func(p url.Values) { p.Set("login_hint", "buffy@"+u.Hostname()) })
	},
	"oidcc-ui-locales":     func(m *mod) { m.happy(m.s.client1, func(p url.Values) { p.Set("ui_locales", "se") }) },
	"oidcc-claims-locales": func(m *mod) { m.happy(m.s.client1, func(p url.Values) { p.Set("claims_locales", "se") }) },

	// OIDCCEnsureRequestWithAcrValuesSucceeds: every advertised acr value
	// (or "1 2"); an acr outside them is a warning.
	"oidcc-ensure-request-with-acr-values-succeeds": func(m *mod) {
		values, _ := m.discStrings("acr_values_supported")
		if len(values) == 0 {
			values = []string{"1", "2"}
		}
		f := m.happy(m.s.client1, func(p url.Values) { p.Set("acr_values", strings.Join(values, " ")) })
		if acr, ok := f.claims["acr"].(string); ok && !slices.Contains(values, acr) {
			m.Warnf("acr %q is not among the requested %v", acr, values)
		}
	},

	// AbstractOIDCCAuthCodeReuse: immediate reuse is refused with
	// invalid_grant (a 200 is only a warning here).
	"oidcc-codereuse": func(m *mod) {
		f := m.happy(m.s.client1, nil)
		r := m.exchange(f.client, f.code)
		if r.status == 200 {
			m.Warnf("the code was accepted twice")
			return
		}
		m.expectTokenError(r, 400, "invalid_grant")
	},

	// OIDCCAuthCodeReuseAfter30Seconds: reuse 30 s later must be refused,
	// and should revoke the first access token (else a warning).
	"oidcc-codereuse-30seconds": func(m *mod) {
		f := m.happy(m.s.client1, nil)
		time.Sleep(30 * time.Second)
		r := m.exchange(f.client, f.code)
		m.expectTokenError(r, 400, "invalid_grant")
		if status, _, _ := m.userinfoCall("get", f.tokens.accessToken); status == 200 {
			m.Warnf("the access token issued for the reused code still works at userinfo")
		}
	},

	// OIDCCEnsureRegisteredRedirectUri: a registered URI plus a random
	// suffix gets an error page, never a redirect (the REVIEW step).
	"oidcc-ensure-registered-redirect-uri": func(m *mod) {
		p := m.params(m.s.client1)
		p.Set("redirect_uri", rpCallback+randomString(10))
		page, cb := m.followAll(m.b.Get(m.authURL(p)))
		m.expectErrorPage(page, cb)
	},

	// OIDCCEnsurePostRequestSucceeds: the request as a form POST.
	"oidcc-ensure-post-request-succeeds": func(m *mod) {
		p := m.params(m.s.client1)
		m.complete(m.s.client1, p, m.b.Post(m.discString("authorization_endpoint"), p), flowOpts{})
	},

	"oidcc-server-client-secret-post": func(m *mod) {
		m.happy(m.s.clientPost, nil)
	},

	"oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported": func(m *mod) {
		reason := "applies only to dynamically registered clients"
		if v, ok := m.disc["request_uri_parameter_supported"].(bool); ok && !v {
			reason += "; and request_uri_parameter_supported is false"
		}
		m.dynamicOnly(reason)
	},

	// The request (state only inside it) as an unsigned request object:
	// process it, or answer request_not_supported (the suite then skips).
	"oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported": func(m *mod) {
		if m.requestObjectSkipped() {
			return
		}
		c := m.s.client1
		inner := m.params(c)
		outer := url.Values{"client_id": {c.id}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {rpCallback},
			"request": {m.unsignedRequestObject(inner)}}
		start := m.b.Get(m.authURL(outer))
		page, cb := m.follow(start)
		if cb != "" {
			if q := m.callbackQuery(cb); q.Get("error") != "" {
				if q.Get("error") == "request_not_supported" {
					m.checkErrorFields(q)
					m.NotApplicable("the provider answered request_not_supported: the suite skips the module")
					return
				}
				m.Fatalf("the request object was refused with %s (%q); the suite accepts only its processing or request_not_supported",
					q.Get("error"), q.Get("error_description"))
			}
		} else if page.Request.URL.Path != "/login" && page.Request.URL.Path != "/consent" {
			m.Fatalf("the request object got an error page (HTTP %d, %q) instead of being processed or answered with "+
				"a request_not_supported redirect (OIDCC 3.1.2.6); request_parameter_supported is %v",
				page.StatusCode, errorCode(page.Body), m.disc["request_parameter_supported"])
		}
		m.complete(c, inner, start, flowOpts{})
	},

	// OIDCCClaimsEssential: name asked for as essential at userinfo; its
	// absence is a warning.
	"oidcc-claims-essential": func(m *mod) {
		f := m.happy(m.s.client1, func(p url.Values) { p.Set("claims", `{"userinfo":{"name":{"essential":true}}}`) })
		if _, ok := f.userinfo["name"]; !ok {
			m.Warnf("userinfo has no name though it was requested as essential")
		}
	},

	// OIDCCEnsureRequestObjectWithRedirectUri: the request object's
	// redirect_uri wins over an invalid outer one, or the user gets an
	// error page; never a redirect to the invalid URI.
	"oidcc-ensure-request-object-with-redirect-uri": func(m *mod) {
		if m.requestObjectSkipped() {
			return
		}
		c := m.s.client1
		inner := m.params(c)
		invalid := "https://invalid.conformance.test/callback"
		outer := url.Values{"client_id": {c.id}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {invalid},
			"request": {m.unsignedRequestObject(inner)}}
		start := m.b.Get(m.authURL(outer))
		page, cb := m.followAll(start)
		switch {
		case strings.HasPrefix(cb, invalid):
			m.Fatalf("redirected to the invalid outer redirect_uri: %s", cb)
		case atClient(cb):
			q := m.callbackQuery(cb)
			if q.Get("error") == "request_not_supported" {
				m.checkErrorFields(q)
				m.NotApplicable("the provider answered request_not_supported: the suite skips the module")
				return
			}
			m.complete(c, inner, start, flowOpts{})
		case cb != "":
			m.Fatalf("redirected to %s", cb)
		case page.Request.URL.Path == "/login" || page.Request.URL.Path == "/consent":
			m.complete(c, inner, start, flowOpts{}) // processed: the inner redirect_uri must be used
		default:
			m.expectErrorPage(page, cb)
			m.Notef("the provider shows an error page (%q), which the suite accepts", errorCode(page.Body))
		}
	},

	// OIDCCRefreshToken, RefreshTokenRequestSteps, CompareIdTokenClaims.
	"oidcc-refresh-token": func(m *mod) {
		scope := "openid"
		if s, _ := m.discStrings("scopes_supported"); slices.Contains(s, "offline_access") {
			scope += " offline_access"
		}
		edit := func(p url.Values) {
			p.Set("scope", scope)
			p.Set("prompt", "consent")
		}
		f := m.happy(m.s.client1, edit)
		rt := f.tokens.refreshToken
		if rt == "" {
			m.NotApplicable("no refresh token was issued: the suite skips the module")
			return
		}
		m.check(shannonBits(rt) >= 96, "refresh token has %.1f bits of entropy, below 96", shannonBits(rt))
		time.Sleep(time.Second + 100*time.Millisecond) // a new iat must be a later second

		r := m.refresh(m.s.client1, rt)
		if r.status != 200 {
			m.Fatalf("refresh: HTTP %d: %s", r.status, r.body)
		}
		m.check(strings.Contains(r.header.Get("Cache-Control"), "no-store"), "refresh response Cache-Control %q lacks no-store", r.header.Get("Cache-Control"))
		if r.idToken != "" {
			_, claims := m.checkIDToken(m.s.client1, r.idToken, idTokenExpect{accessToken: r.accessToken})
			m.compareIDTokens(f.claims, claims)
		}
		m.userinfo("get", r.accessToken, f.claims["sub"])

		// Client 2's refresh token, presented by client 1.
		f2 := m.happy(m.s.client2, edit)
		if f2.tokens.refreshToken == "" {
			m.Fatalf("client 2 got no refresh token")
		}
		m.expectTokenError(m.refresh(m.s.client1, f2.tokens.refreshToken), 400, "invalid_grant")
	},

	// OIDCCEnsureRequestWithValidPkceSucceeds: S256.
	"oidcc-ensure-request-with-valid-pkce-succeeds": func(m *mod) {
		c := m.s.client1
		verifier := oauth2.GenerateVerifier()
		p := m.params(c)
		p.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		p.Set("code_challenge_method", "S256")
		m.complete(c, p, m.b.Get(m.authURL(p)), flowOpts{verifier: verifier})
	},
}

// dynamicOnly records a module for dynamically registered clients as not
// applicable; were the provider to offer registration, it fails instead,
// so the module gets written rather than silently passing.
func (m *mod) dynamicOnly(reason string) {
	m.t.Helper()
	if ep := m.discString("registration_endpoint"); ep != "" {
		m.Fatalf("the provider now advertises registration_endpoint %s: this module applies and must be implemented", ep)
	}
	m.NotApplicable("%s (Twofold has no registration_endpoint; the plan runs with static clients)", reason)
}

// scopes is AbstractOIDCCScopesServerTest: skipped unless every scope is
// in scopes_supported; userinfo must answer for the same sub, and a
// missing scope claim is a warning.
func (m *mod) scopes(scopes ...string) {
	m.t.Helper()
	supported, _ := m.discStrings("scopes_supported")
	var missing []string
	for _, s := range scopes {
		if !slices.Contains(supported, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		m.NotApplicable("scopes_supported lacks %s: the suite skips the module", strings.Join(missing, ", "))
		return
	}
	f := m.happy(m.s.client1, func(p url.Values) { p.Set("scope", "openid "+strings.Join(scopes, " ")) })
	m.scopeClaimsPresent(f.userinfo, scopes...)
}

// scopeClaimsPresent warns for each claim of the scopes that userinfo
// did not return (VerifyScopesReturnedInUserInfoClaims is a WARNING).
func (m *mod) scopeClaimsPresent(userinfo map[string]any, scopes ...string) {
	var missing []string
	for _, s := range scopes {
		for _, c := range scopeClaims[s] {
			if _, ok := userinfo[c]; !ok {
				missing = append(missing, c)
			}
		}
	}
	if len(missing) > 0 {
		m.Warnf("userinfo lacks %s for scope %s", strings.Join(missing, ", "), strings.Join(scopes, " "))
	}
}

// sameAuth: the same user and, when present, the same auth_time
// (AbstractOIDCCSameAuthTwiceServerTest).
func (m *mod) sameAuth(f1, f2 *flow) {
	m.t.Helper()
	m.check(f1.claims["sub"] == f2.claims["sub"], "sub changed: %v then %v", f1.claims["sub"], f2.claims["sub"])
	a1, ok1 := f1.claims["auth_time"]
	a2, ok2 := f2.claims["auth_time"]
	if ok1 && ok2 {
		m.check(a1 == a2, "auth_time changed without a new sign-in: %v then %v", a1, a2)
	}
}

// compareIDTokens is CompareIdTokenClaims: a refreshed ID token keeps
// iss, sub, aud, azp and auth_time, and has a new iat.
func (m *mod) compareIDTokens(first, second map[string]any) {
	m.t.Helper()
	for _, k := range []string{"iss", "sub"} {
		m.check(first[k] != nil && first[k] == second[k], "refreshed ID token: %s %v, was %v", k, second[k], first[k])
	}
	m.check(first["iat"] != nil && second["iat"] != nil && first["iat"] != second["iat"], "refreshed ID token: iat %v is not new (was %v)", second["iat"], first["iat"])
	m.check(fmt.Sprint(audSet(first["aud"])) == fmt.Sprint(audSet(second["aud"])), "refreshed ID token: aud %v, was %v", second["aud"], first["aud"])
	if _, ok := second["auth_time"]; ok {
		m.check(first["auth_time"] == second["auth_time"], "refreshed ID token: auth_time %v, was %v", second["auth_time"], first["auth_time"])
	}
	_, had := first["azp"]
	_, has := second["azp"]
	switch {
	case !had && has:
		m.Errorf("refreshed ID token has azp, the first had none")
	case had || has:
		m.check(first["azp"] == second["azp"], "refreshed ID token: azp %v, was %v", second["azp"], first["azp"])
	}
}

func audSet(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			out = append(out, fmt.Sprint(x))
		}
		slices.Sort(out)
		return out
	}
	return nil
}

// requestObjectSkipped: the request object modules are skipped when
// request_object_signing_alg_values_supported is present without none;
// they run when it is absent.
func (m *mod) requestObjectSkipped() bool {
	m.t.Helper()
	algs, present := m.discStrings("request_object_signing_alg_values_supported")
	if present && !slices.Contains(algs, "none") {
		m.NotApplicable("request_object_signing_alg_values_supported lacks none: the suite skips the module")
		return true
	}
	return false
}

// unsignedRequestObject serialises params as an alg=none request object
// with iss (the client) and aud (the issuer), as the suite builds it.
func (m *mod) unsignedRequestObject(params url.Values) string {
	claims := map[string]any{"iss": params.Get("client_id"), "aud": m.issuer}
	for k := range params {
		claims[k] = params.Get(k)
	}
	header, _ := json.Marshal(map[string]string{"alg": "none"})
	payload, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

// errorCode pulls the error code an error page shows, for messages.
func errorCode(body string) string {
	const open = "Error: <code>"
	i := strings.Index(body, open)
	if i < 0 {
		return ""
	}
	rest := body[i+len(open):]
	if j := strings.Index(rest, "</code>"); j >= 0 {
		return rest[:j]
	}
	return ""
}
