package provider

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// FuzzMaxAge: max_age is digits or an error, and an elapsed one always
// asks for a new sign-in (security.md §3.10).
func FuzzMaxAge(f *testing.F) {
	for _, s := range []string{"", "0", "1", "300", "-1", "+5", "1e3", " 5", "9223372036854775807", "9223372036854775808", "99999999999999999999", "٣"} {
		f.Add(s, int64(600))
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string, age int64) {
		if age < 0 || age > 1e9 {
			return
		}
		authTime := now.Add(-time.Duration(age) * time.Second)
		passed, err := maxAgePassed(url.Values{"max_age": {v}}, authTime, now)
		if err != nil {
			var rfc *fosite.RFC6749Error
			if !errors.As(err, &rfc) || rfc.ErrorField != "invalid_request" {
				t.Fatalf("max_age %q: %v, want invalid_request", v, err)
			}
			return
		}
		if v == "" {
			if passed {
				t.Fatalf("no max_age, yet passed")
			}
			return
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
			t.Fatalf("max_age %q accepted", v)
		}
		// An elapsed max_age: the sign-in is older than it.
		if n, ok := parseSeconds(v); ok && (n == 0 || age > n) && !passed {
			t.Fatalf("max_age %q with a sign-in %d s old: not passed", v, age)
		}
	})
}

// parseSeconds reads a string of digits, false past 10¹² seconds.
func parseSeconds(v string) (int64, bool) {
	var n int64
	for _, c := range v {
		if n > 1e12 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// FuzzEssentialACR: the claims parameter's essential acr values are read
// only from id_token.acr with "essential": true, and each one read is
// a value the request named (security.md §3.10).
func FuzzEssentialACR(f *testing.F) {
	for _, s := range []string{
		`{"id_token":{"acr":{"essential":true,"values":["urn:twofold:acr:mfa"]}}}`,
		`{"id_token":{"acr":{"essential":true,"value":"urn:twofold:acr:mfa"}}}`,
		`{"id_token":{"acr":{"essential":false,"value":"x"}}}`,
		`{"id_token":{"acr":null}}`, `{"userinfo":{"acr":{"essential":true,"value":"x"}}}`,
		`{"id_token":{"acr":{"essential":"true","value":"x"}}}`, `[]`, `{"id_token":[]}`, `null`, ``,
		`{"id_token":{"acr":{"essential":true,"value":"x"}},"userinfo":5}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, claims string) {
		got := essentialACR(claims)
		if len(got) == 0 {
			return
		}
		// Independently of essentialACR: generic values, level by level.
		var top, idToken map[string]json.RawMessage
		var acr map[string]any
		if json.Unmarshal([]byte(claims), &top) != nil || json.Unmarshal(top["id_token"], &idToken) != nil ||
			json.Unmarshal(idToken["acr"], &acr) != nil {
			t.Fatalf("%q: read %q from claims without an id_token acr object", claims, got)
		}
		if acr["essential"] != true {
			t.Fatalf("%q: read %q, but acr is not essential", claims, got)
		}
		named := []any{acr["value"]}
		if vs, ok := acr["values"].([]any); ok {
			named = append(named, vs...)
		}
		for _, v := range got {
			if !slices.Contains(named, any(v)) {
				t.Fatalf("%q: read %q, which the request did not name", claims, v)
			}
		}
	})
}

// TestCheckClaimsParam: a claims parameter is a JSON object of requests,
// each null or an object with a boolean essential.
func TestCheckClaimsParam(t *testing.T) {
	for _, tt := range []struct {
		claims string
		ok     bool
	}{
		{``, true},
		{`{}`, true},
		{`{"id_token":{"acr":{"essential":true,"values":["urn:twofold:acr:mfa"]},"email":null}}`, true},
		{`{"userinfo":{"email":{"essential":false}},"id_token":null}`, true},
		{`{"id_token":{"acr":{"essential":"true","value":"x"}}}`, false},
		{`{"id_token":{"acr":{"essential":1}}}`, false},
		{`{"id_token":[]}`, false},
		{`{"id_token":{"acr":"mfa"}}`, false},
		{`[]`, false},
		{`null`, false},
		{`{"id_token":`, false},
	} {
		if err := checkClaimsParam(tt.claims); (err == nil) != tt.ok {
			t.Errorf("checkClaimsParam(%q) = %v, want ok %v", tt.claims, err, tt.ok)
		}
	}
}
