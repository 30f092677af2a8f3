package provider

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/ory/fosite"
)

var testRedirects = []string{
	"https://app.example.com/cb", "https://app.example.com/cb?tenant=a%20b",
	"http://127.0.0.1/loop", "http://127.0.0.1:8080/fixed", "http://[::1]/v6",
	"http://localhost/lh", "https://127.0.0.1/sec",
}

// TestRedirectRegistered: an exact match, or only the port of a loopback
// IP literal's http URI (security.md S24, §3.6).
func TestRedirectRegistered(t *testing.T) {
	tests := []struct {
		uri  string
		want bool
	}{
		{"https://app.example.com/cb", true},
		{"https://app.example.com/cb?tenant=a%20b", true},
		{"http://127.0.0.1/loop", true},
		{"http://127.0.0.1:51004/loop", true},
		{"http://127.0.0.1:65535/loop", true},
		{"http://127.0.0.1:9/fixed", true},
		{"http://[::1]:7/v6", true},
		{"https://app.example.com:443/cb", false},
		{"https://app.example.com/cb?tenant=a+b", false},
		{"http://u:p@127.0.0.1:5/loop", false},
		{"http://127.0.0.1@evil.example:5/loop", false},
		{"http://127.0.0.1:5@evil.example/loop", false},
		{"http://127.0.0.1:5/lo%6Fp", false},
		{"http://127.0.0.1:5/loop/", false},
		{"http://127.0.0.1:5/loop?x=1", false},
		{"http://127.0.0.1:5/loop#f", false},
		{"HTTP://127.0.0.1:5/loop", false},
		{"http://127.0.0.1:0/loop", false},
		{"http://127.0.0.1:05/loop", false},
		{"http://127.0.0.1:+5/loop", false},
		{"http://127.0.0.1:65536/loop", false},
		{"http://127.0.0.1:/loop", false},
		{"http://127.0.0.1:5/sec", false}, // registered as https: no downgrade
		{"http://127.1:5/loop", false},
		{"http://[0:0::1]:5/v6", false},
		{"http://localhost:5/lh", false},
		{"http://127.0.0.1.evil.example:5/loop", false},
	}
	for _, tt := range tests {
		if got := redirectRegistered(tt.uri, testRedirects); got != tt.want {
			t.Errorf("redirectRegistered(%q) = %v, want %v", tt.uri, got, tt.want)
		}
	}
}

// FuzzRedirectRegistered checks security.md §3.10's property: an accepted
// URI is byte-equal to a registered one, but for the port of a loopback
// redirect; and Twofold never accepts what fosite's own match refuses.
func FuzzRedirectRegistered(f *testing.F) {
	for _, s := range append(slices.Clone(testRedirects),
		"http://127.0.0.1:51004/loop", "http://u@127.0.0.1:5/loop", "http://127.0.0.1:5/lo%6Fp",
		"http://[::1]:0/v6", "https://app.example.com/cb/../x", "http://127.0.0.1:5/sec") {
		f.Add(s)
	}
	client := &fosite.DefaultClient{RedirectURIs: testRedirects}
	f.Fuzz(func(t *testing.T, s string) {
		if !redirectRegistered(s, testRedirects) {
			return
		}
		if _, err := fosite.MatchRedirectURIWithClientRedirectURIs(s, client); err != nil {
			t.Fatalf("%q accepted here, refused by fosite: %v", s, err)
		}
		if slices.Contains(testRedirects, s) {
			return
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "http" || u.User != nil || u.Port() == "" || u.Fragment != "" ||
			!slices.Contains([]string{"127.0.0.1", "::1"}, u.Hostname()) {
			t.Fatalf("%q accepted, not a loopback redirect with a port", s)
		}
		for _, reg := range testRedirects {
			if strings.HasPrefix(reg, "http://") && dropPort(reg) == dropPort(s) {
				return
			}
		}
		t.Fatalf("%q accepted, but no registered URI differs from it by the port alone", s)
	})
}

// dropPort removes the port from an absolute URI's authority.
func dropPort(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Port() == "" {
		return uri
	}
	prefix := u.Scheme + "://" + u.Host
	if !strings.HasPrefix(uri, prefix) {
		return uri
	}
	return u.Scheme + "://" + strings.TrimSuffix(u.Host, ":"+u.Port()) + uri[len(prefix):]
}
