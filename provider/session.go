package provider

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what fosite keeps with every code and token: the OIDC
// session, plus the claims the client asked for at userinfo through the
// claims parameter (which must not leak into the ID token).
type Session struct {
	*openid.DefaultSession
	UserinfoClaims []string `json:"userinfo_claims,omitempty"`
	// Upstream is the provider the user signed in through (R03), or "":
	// a refresh asks it whether the local second factor is skipped.
	Upstream string `json:"upstream,omitempty"`
}

// GetExtraClaims is what introspection adds for a user's token (R02,
// fosite.ExtraClaimsSession): amr, acr and auth_time as the ID token
// states them, so a resource server can see how the user signed in. A
// client's own token (client_credentials) has none.
func (s *Session) GetExtraClaims() map[string]any {
	out := map[string]any{}
	if s == nil || s.DefaultSession == nil || s.Claims == nil || s.Claims.Subject == "" {
		return out
	}
	c := s.Claims
	if len(c.AuthenticationMethodsReferences) > 0 {
		out["amr"] = c.AuthenticationMethodsReferences
	}
	if c.AuthenticationContextClassReference != "" {
		out["acr"] = c.AuthenticationContextClassReference
	}
	if !c.AuthTime.IsZero() {
		out["auth_time"] = c.AuthTime.Unix()
	}
	return out
}

func newSession() *Session {
	return &Session{DefaultSession: &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}}
}

// Clone is a deep copy. fosite clones the session of a refresh token for
// the tokens it issues; without this the embedded session's Clone would
// return a bare *openid.DefaultSession and drop UserinfoClaims.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if s.DefaultSession != nil {
		c.DefaultSession = s.DefaultSession.Clone().(*openid.DefaultSession)
	}
	c.UserinfoClaims = slices.Clone(s.UserinfoClaims)
	return &c
}

// jwtAccessSession is a Session as fosite's JWT strategy sees it while it
// signs an access token: the token's claims and header beside the
// session.
type jwtAccessSession struct {
	*Session
	claims *jwt.JWTClaims
	header *jwt.Headers
}

var _ oauth2.JWTSessionContainer = (*jwtAccessSession)(nil)

func (s *jwtAccessSession) GetJWTClaims() jwt.JWTClaimsContainer { return s.claims }
func (s *jwtAccessSession) GetJWTHeader() *jwt.Headers           { return s.header }

// jwtAccess returns the session as a JWT access token issued at iat to c
// (RFC 9068 §2): typ at+jwt, signed with the client's algorithm; iss,
// iat, sub (the user, or the client itself for client_credentials),
// client_id, and for a user's token how they signed in, as the ID token
// says. fosite adds exp, aud, scope and jti. Claims are picked one by one
// so nothing else of the session (rat, sid, the email, the claims
// request) reaches a token the client and resource servers can read.
func (s *Session) jwtAccess(issuer string, c *client, iat time.Time) *jwtAccessSession {
	claims := &jwt.JWTClaims{Issuer: issuer, Subject: s.GetSubject(), IssuedAt: iat, Extra: map[string]any{"client_id": c.ID}}
	id := s.IDTokenClaims()
	if !id.AuthTime.IsZero() {
		claims.Extra["auth_time"] = id.AuthTime.Unix()
	}
	if id.AuthenticationContextClassReference != "" {
		claims.Extra["acr"] = id.AuthenticationContextClassReference
	}
	if len(id.AuthenticationMethodsReferences) > 0 {
		claims.Extra["amr"] = slices.Clone(id.AuthenticationMethodsReferences)
	}
	header := &jwt.Headers{Extra: map[string]any{"typ": "at+jwt", algHeader: c.IDTokenAlg}}
	return &jwtAccessSession{Session: s, claims: claims, header: header}
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
