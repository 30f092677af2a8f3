package provider

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/ory/fosite"
)

// newAuthorizeRequest is fosite's, with the redirect URI held to an exact
// match (RFC 9700 §2.1, security.md S24): fosite's loopback rule compares
// parsed URLs, so it also takes user info, a re-encoded path, port 0 and
// plain http for a URI registered as https. A request whose redirect URI
// is not registered gets no request object: the caller shows a page and
// redirects nobody.
func (p *Provider) newAuthorizeRequest(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error) {
	ar, err := p.oauth.NewAuthorizeRequest(ctx, r)
	// Checked whenever a redirect may follow: on success, and on an error
	// fosite would send to the redirect URI.
	if ar == nil || ar.GetClient() == nil || (err != nil && !ar.IsRedirectURIValid()) {
		return ar, err
	}
	// Empty: fosite used the client's only registered URI.
	if raw := ar.GetRequestForm().Get("redirect_uri"); raw != "" && !redirectRegistered(raw, ar.GetClient().GetRedirectURIs()) {
		return nil, fosite.ErrInvalidRequest.WithHint("The 'redirect_uri' parameter does not match any of the client's registered redirect URIs.")
	}
	return ar, err
}

// redirectRegistered reports whether requested is, byte for byte, one of
// the registered URIs, or is a registered http URI on a loopback IP
// literal with only its port chosen by the native app (RFC 8252 §7.3):
// "http://127.0.0.1/cb" registered admits "http://127.0.0.1:51004/cb".
// localhost is matched exactly (RFC 8252 §8.3 advises against it).
func redirectRegistered(requested string, registered []string) bool {
	if slices.Contains(registered, requested) {
		return true
	}
	host, port, rest, ok := splitLoopback(requested)
	if !ok || !validPort(port) {
		return false
	}
	for _, reg := range registered {
		h, p, r, ok := splitLoopback(reg)
		if ok && h == host && r == rest && (p == "" || validPort(p)) {
			return true
		}
	}
	return false
}

// splitLoopback splits "http://127.0.0.1:8080/cb?x" into its host, port
// and the rest ("/cb?x"); ok only for http on 127.0.0.1 or [::1].
func splitLoopback(uri string) (host, port, rest string, ok bool) {
	for _, h := range []string{"127.0.0.1", "[::1]"} {
		after, found := strings.CutPrefix(uri, "http://"+h)
		if !found {
			continue
		}
		if after == "" || after[0] == '/' || after[0] == '?' {
			return h, "", after, true
		}
		if after[0] != ':' {
			return "", "", "", false
		}
		end := strings.IndexAny(after, "/?#")
		if end < 0 {
			end = len(after)
		}
		return h, after[1:end], after[end:], true
	}
	return "", "", "", false
}

// validPort: a decimal port a native app can listen on, as a URL writes
// it (no sign, no leading zero).
func validPort(s string) bool {
	if s == "" || s[0] == '0' || len(s) > 5 || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n <= 65535
}
