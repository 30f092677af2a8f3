package provider

import (
	"crypto/ecdsa"
	"encoding/json"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/twofold-idp/twofold/store"
)

// client adapts a registered client to fosite's client interfaces. fosite
// v0.49 speaks go-jose v3, so a client's JWKS is parsed with v3 here and
// nowhere else.
type client struct {
	store.Client
	jwks *josev3.JSONWebKeySet
}

var (
	_ fosite.OpenIDConnectClient = (*client)(nil)
	_ fosite.ResponseModeClient  = (*client)(nil)
)

func newClient(c store.Client) *client {
	fc := &client{Client: c}
	if c.JWKS != "" {
		var set josev3.JSONWebKeySet
		if json.Unmarshal([]byte(c.JWKS), &set) == nil {
			fc.jwks = &set
		}
	}
	return fc
}

func (c *client) GetID() string                   { return c.ID }
func (c *client) GetHashedSecret() []byte         { return c.SecretHash }
func (c *client) GetRedirectURIs() []string       { return c.RedirectURIs }
func (c *client) GetGrantTypes() fosite.Arguments { return fosite.Arguments(c.GrantTypes) }

// GetResponseTypes is only "code": no implicit or hybrid flow.
func (c *client) GetResponseTypes() fosite.Arguments { return fosite.Arguments{"code"} }
func (c *client) GetScopes() fosite.Arguments        { return fosite.Arguments(c.Scopes) }
func (c *client) IsPublic() bool                     { return c.Public }
func (c *client) GetAudience() fosite.Arguments      { return nil }

func (c *client) GetRequestURIs() []string                 { return nil }
func (c *client) GetJSONWebKeys() *josev3.JSONWebKeySet    { return c.jwks }
func (c *client) GetJSONWebKeysURI() string                { return c.JWKSURI }
func (c *client) GetRequestObjectSigningAlgorithm() string { return "" }
func (c *client) GetTokenEndpointAuthMethod() string       { return c.TokenEndpointAuthMethod }

// GetTokenEndpointAuthSigningAlgorithm is the algorithm of the client's
// first registered key: ES256 for an EC key, else RS256.
func (c *client) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.jwks != nil && len(c.jwks.Keys) > 0 {
		k := c.jwks.Keys[0]
		if k.Algorithm != "" {
			return k.Algorithm
		}
		if _, ok := k.Key.(*ecdsa.PublicKey); ok {
			return "ES256"
		}
	}
	return "RS256"
}

// GetResponseModes allows query and form_post, never fragment.
func (c *client) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeDefault, fosite.ResponseModeQuery, fosite.ResponseModeFormPost}
}
