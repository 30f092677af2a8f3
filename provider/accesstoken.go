package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

	"github.com/twofold-idp/twofold/store"
)

// accessTokens is the core strategy: each client gets access tokens in
// the format it registered, opaque HMAC tokens (the default) or RFC 9068
// JWTs, signed with the client's ID token algorithm by the key set (the
// keys of ID tokens, published at /jwks). Codes and refresh tokens are
// always HMAC.
//
// A JWT is stored by its signature like an opaque token, so revocation,
// introspection and userinfo look both up the same way: a revoked JWT is
// refused even though its signature still verifies.
type accessTokens struct {
	oauth2.CoreStrategy // HMAC
	jwt                 *oauth2.DefaultJWTStrategy
	issuer              string
	lifespan            time.Duration
}

var _ oauth2.CoreStrategy = (*accessTokens)(nil)

func newAccessTokens(fc *fosite.Config, signer *tokenSigner, hmac oauth2.CoreStrategy) *accessTokens {
	return &accessTokens{
		CoreStrategy: hmac,
		jwt:          &oauth2.DefaultJWTStrategy{Signer: &tokenSigner{keys: signer.keys, defaultAlg: signer.defaultAlg, accessTokens: true}, HMACSHAStrategy: hmac, Config: fc},
		issuer:       fc.AccessTokenIssuer,
		lifespan:     fc.AccessTokenLifespan,
	}
}

// isJWT tells the formats apart by shape: a JWS has exactly two dots,
// fosite's HMAC token ("ory_at_KEY.SIG") one.
func isJWT(token string) bool { return strings.Count(token, ".") == 2 }

// GenerateAccessToken issues the token in the client's format.
func (a *accessTokens) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	c, ok := r.GetClient().(*client)
	if !ok || c.AccessTokenFormat != store.AccessTokenJWT {
		return a.CoreStrategy.GenerateAccessToken(ctx, r)
	}
	s, ok := r.GetSession().(*Session)
	if !ok {
		return "", "", fmt.Errorf("JWT access token: session is %T, not *Session", r.GetSession())
	}
	// One clock reading makes iat and exp, and the stored row and
	// expires_in follow exp: fosite set the expiry a moment before,
	// rounded in some flows, and an iat rounded up would be "used before
	// issued" when the token is checked within the same second. fosite
	// validates with time.Now too, so this is not the provider's clock.
	iat := time.Now().UTC().Truncate(time.Second)
	s.SetExpiresAt(fosite.AccessToken, iat.Add(a.lifespan))
	token, sig, err := a.jwt.GenerateAccessToken(ctx, &jwtAccessRequest{Requester: r, session: s.jwtAccess(a.issuer, c, iat)})
	if err != nil {
		return "", "", fmt.Errorf("sign JWT access token: %w", err)
	}
	return token, sig, nil
}

// AccessTokenSignature is the key a token is stored under: the JWS
// signature of a JWT, the HMAC of an opaque token.
func (a *accessTokens) AccessTokenSignature(ctx context.Context, token string) string {
	if isJWT(token) {
		return a.jwt.AccessTokenSignature(ctx, token)
	}
	return a.CoreStrategy.AccessTokenSignature(ctx, token)
}

// ValidateAccessToken checks a token found in the store by its
// signature: a JWT's signature against the key named by its kid, and its
// times; an opaque token's HMAC and expiry.
func (a *accessTokens) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	if !isJWT(token) {
		return a.CoreStrategy.ValidateAccessToken(ctx, r, token)
	}
	err := a.jwt.ValidateAccessToken(ctx, r, token)
	if err != nil && issuedWithinSkew(ctx, a.jwt.Signer, token, jwt.TimeFunc()) {
		return nil
	}
	return err
}

// clockSkew is how far ahead of this replica's clock a JWT access token's
// iat (or nbf) may be: another replica signed it by its own clock. fosite
// allows none, so a token used at once on a replica whose clock ran a
// fraction of a second behind was refused as "used before issued".
const clockSkew = time.Minute

// issuedWithinSkew reports whether a token's signature verifies and its
// only fault is an iat or nbf at most clockSkew after now. An expired
// token stays refused.
func issuedWithinSkew(ctx context.Context, s jwt.Signer, token string, now time.Time) bool {
	t, err := s.Decode(ctx, token)
	var ve *jwt.ValidationError
	if t == nil || !errors.As(err, &ve) || ve.Errors&^(jwt.ValidationErrorIssuedAt|jwt.ValidationErrorNotValidYet) != 0 {
		return false
	}
	limit := now.Add(clockSkew).Unix()
	return t.Claims.VerifyIssuedAt(limit, false) && t.Claims.VerifyNotBefore(limit, false)
}

// jwtAccessRequest is a token request as fosite's JWT strategy reads it
// to fill exp, scope and aud.
type jwtAccessRequest struct {
	fosite.Requester
	session *jwtAccessSession
}

func (r *jwtAccessRequest) GetSession() fosite.Session { return r.session }

// GetGrantedAudience is the audience granted, or the client itself when
// none was: aud is required (RFC 9068 §2.2).
func (r *jwtAccessRequest) GetGrantedAudience() fosite.Arguments {
	if aud := r.Requester.GetGrantedAudience(); len(aud) > 0 {
		return aud
	}
	return fosite.Arguments{r.GetClient().GetID()}
}

// GetGrantedScopes is nil rather than empty, so a token granted no scope
// has no scope claim instead of an empty one.
func (r *jwtAccessRequest) GetGrantedScopes() fosite.Arguments {
	if s := r.Requester.GetGrantedScopes(); len(s) > 0 {
		return s
	}
	return nil
}
