package provider

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what fosite keeps with every code and token: the OIDC
// session, plus the claims the client asked for at userinfo through the
// claims parameter (which must not leak into the ID token).
type Session struct {
	*openid.DefaultSession
	UserinfoClaims []string `json:"userinfo_claims,omitempty"`
}

func newSession() *Session {
	return &Session{DefaultSession: &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}}
}

// Cookie names. Over https they carry the __Host- prefix: Secure, Path=/
// and no Domain, so a sibling subdomain cannot plant one.
func (p *Provider) cookieName(base string) string {
	if p.secure() {
		return "__Host-" + base
	}
	return base
}

func (p *Provider) secure() bool { return p.issuer.Scheme == "https" }

const (
	sessionCookie = "twofold_session"
	flowCookie    = "twofold_flow"
)

func (p *Provider) setCookie(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: p.cookieName(base), Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: p.secure(), SameSite: http.SameSiteLaxMode,
	})
}

func (p *Provider) clearCookie(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{
		Name: p.cookieName(base), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: p.secure(), SameSite: http.SameSiteLaxMode,
	})
}

func (p *Provider) cookie(r *http.Request, base string) string {
	c, err := r.Cookie(p.cookieName(base))
	if err != nil {
		return ""
	}
	return c.Value
}

// randomToken returns 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionID is how a session cookie is stored: its SHA-256, so a leaked
// database row cannot be replayed as a cookie.
func sessionID(cookieValue string) string {
	sum := sha256.Sum256([]byte(cookieValue))
	return hex.EncodeToString(sum[:])
}

// csrfToken binds a form to one purpose and one flow or session.
func (p *Provider) csrfToken(purpose, binding string) string {
	m := hmac.New(sha256.New, p.csrfKey)
	m.Write([]byte(purpose + "\x00" + binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *Provider) checkCSRF(purpose, binding, got string) bool {
	want := p.csrfToken(purpose, binding)
	return binding != "" && hmac.Equal([]byte(want), []byte(got))
}
