package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/ory/fosite/token/jwt"
)

// tokenSigner is fosite's jwt.Signer over the KeySet: it signs with the
// active key of the algorithm the client registered (carried in the
// session's header algHeader), stamps its kid, and verifies by kid so that
// tokens signed before a rotation (id_token_hint) still verify. fosite's
// jwt package uses go-jose v3 inside, so it gets raw crypto keys.
type tokenSigner struct {
	keys       *KeySet
	defaultAlg string
	// accessTokens marks the signer of JWT access tokens: it decodes only
	// tokens typed at+jwt, and every other signer refuses them, so an
	// access token never passes for an ID token (an id_token_hint) nor an
	// ID token for an access token (RFC 9068 §4).
	accessTokens bool
}

var _ jwt.Signer = (*tokenSigner)(nil)

// algHeader carries the client's algorithm from the session to Generate;
// fosite filters "alg" out of session headers, and Generate removes this
// one before signing.
const algHeader = "twofold_alg"

// Generate signs claims. "rat" (fosite's requested-at) is dropped: it is
// not an OIDC claim and relying parties have no use for it.
func (s *tokenSigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	alg := s.defaultAlg
	h := map[string]any{}
	if header != nil {
		for k, v := range header.ToMap() {
			h[k] = v
		}
		if a, ok := h[algHeader].(string); ok && a != "" {
			alg = a
		}
	}
	delete(h, algHeader)
	k, err := s.keys.Active(ctx, alg)
	if err != nil {
		return "", "", err
	}
	h["kid"] = k.kid
	delete(claims, "rat")
	return s.with(k).Generate(ctx, claims, &jwt.Headers{Extra: h})
}

func (s *tokenSigner) with(k *signingKey) *jwt.DefaultSigner {
	return &jwt.DefaultSigner{GetPrivateKey: func(context.Context) (any, error) { return k.private, nil }}
}

// keyFor finds the key named by a token's kid header.
func (s *tokenSigner) keyFor(ctx context.Context, token string) (*signingKey, error) {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errors.New("malformed token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, errors.New("malformed token header")
	}
	var h struct {
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, errors.New("malformed token header")
	}
	if isAccessTokenType(h.Typ) != s.accessTokens {
		return nil, ErrWrongTokenType
	}
	k, found := s.keys.Lookup(ctx, h.Kid)
	if !found || k.alg != h.Alg {
		return nil, ErrUnknownKey
	}
	return k, nil
}

// ErrWrongTokenType is an access token offered as an ID token, or the
// other way round.
var ErrWrongTokenType = errors.New("token of the wrong type")

// isAccessTokenType tells an RFC 9068 access token by its typ header
// (media type, case-insensitive, "application/" optional).
func isAccessTokenType(typ string) bool {
	return strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), "at+jwt")
}

// Validate verifies a token's signature and claims' times.
func (s *tokenSigner) Validate(ctx context.Context, token string) (string, error) {
	k, err := s.keyFor(ctx, token)
	if err != nil {
		return "", err
	}
	return s.with(k).Validate(ctx, token)
}

// Decode verifies and parses a token.
func (s *tokenSigner) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	k, err := s.keyFor(ctx, token)
	if err != nil {
		return nil, err
	}
	return s.with(k).Decode(ctx, token)
}

// Hash is SHA-256, right for at_hash under RS256 and ES256 alike.
func (s *tokenSigner) Hash(ctx context.Context, in []byte) ([]byte, error) {
	return (&jwt.DefaultSigner{}).Hash(ctx, in)
}

// GetSignature returns a token's signature part.
func (s *tokenSigner) GetSignature(ctx context.Context, token string) (string, error) {
	return (&jwt.DefaultSigner{}).GetSignature(ctx, token)
}

// GetSigningMethodLength is SHA-256's size.
func (s *tokenSigner) GetSigningMethodLength(context.Context) int { return jwt.SHA256HashSize }
