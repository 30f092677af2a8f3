package clients

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twofold-idp/twofold/store"
)

// ErrNoSecret is returned when rotating the secret of a client that
// authenticates without one (public or private_key_jwt clients).
var ErrNoSecret = errors.New("clients: client has no secret to rotate")

// ErrAuthChange refuses an update that would change how a client
// authenticates (public or confidential; a secret, signed assertions or
// nothing): its credentials would no longer match. Only a switch between
// client_secret_basic and client_secret_post, which share the secret, is
// an update; anything else is a new registration.
var ErrAuthChange = errors.New("clients: how a client authenticates cannot change; register a new client")

// Spec is a client registration as an administrator describes it. Zero
// values take the defaults documented on Validate.
type Spec struct {
	Name                    string
	RedirectURIs            []string
	PostLogoutRedirectURIs  []string
	GrantTypes              []string
	Scopes                  []string
	TokenEndpointAuthMethod string
	// Public marks a client that cannot keep a secret (a browser or
	// native app); it authenticates with none and must use PKCE.
	Public bool
	// FirstParty clients skip the consent screen.
	FirstParty bool
	// RequireMFA makes every sign-in to this client use a second factor.
	RequireMFA bool
	// PKCEOptional lets a confidential client's code flow go without
	// PKCE, for an old app that cannot send code_challenge; every other
	// client must use PKCE S256 (RFC 9700 §2.1.1).
	PKCEOptional bool
	// JWKS (a JSON Web Key Set) or JWKSURI holds the keys that verify a
	// private_key_jwt client's assertions; exactly one of them is set.
	JWKS       string
	JWKSURI    string
	IDTokenAlg string
	// AccessTokenFormat is opaque (default) or jwt: RFC 9068 JWT access
	// tokens, signed with IDTokenAlg by the keys published at /jwks.
	AccessTokenFormat string
}

// Registry registers clients and manages their secrets. Its methods take
// the store's transaction from ctx when there is one, so a caller can
// write an audit event atomically with the change.
type Registry struct {
	Store  store.Store
	Hasher *SecretHasher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// usesSecret reports whether clients with method m authenticate with a
// shared secret that Twofold generates.
func usesSecret(m string) bool { return m == AuthClientSecretBasic || m == AuthClientSecretPost }

// Create validates spec, stores the client and returns it with its
// secret. The secret ("" for clients without one) exists only in this
// return value: the store keeps its HMAC, so show it to the operator once.
func (r *Registry) Create(ctx context.Context, spec Spec) (store.Client, string, error) {
	spec, err := Validate(spec)
	if err != nil {
		return store.Client{}, "", err
	}
	now := r.now().UTC()
	c := store.Client{
		ID:                      newClientID(),
		Name:                    spec.Name,
		Public:                  spec.Public,
		FirstParty:              spec.FirstParty,
		RequireMFA:              spec.RequireMFA,
		PKCEOptional:            spec.PKCEOptional,
		RedirectURIs:            store.Strings(spec.RedirectURIs),
		PostLogoutRedirectURIs:  store.Strings(spec.PostLogoutRedirectURIs),
		GrantTypes:              store.Strings(spec.GrantTypes),
		Scopes:                  store.Strings(spec.Scopes),
		TokenEndpointAuthMethod: spec.TokenEndpointAuthMethod,
		JWKS:                    spec.JWKS,
		JWKSURI:                 spec.JWKSURI,
		IDTokenAlg:              spec.IDTokenAlg,
		AccessTokenFormat:       spec.AccessTokenFormat,
		CreatedAt:               now,
		UpdatedAt:               now,
	}
	var secret string
	if usesSecret(c.TokenEndpointAuthMethod) {
		secret, c.SecretHash, err = r.newSecret(ctx)
		if err != nil {
			return store.Client{}, "", err
		}
	}
	if err := r.Store.CreateClient(ctx, c); err != nil {
		return store.Client{}, "", fmt.Errorf("client %q: %w", c.Name, err)
	}
	return c, secret, nil
}

// RotateSecret replaces the secret of client id and returns the new one;
// the old secret stops working at once. Clients without a secret are
// refused with ErrNoSecret rather than given one they would never use.
func (r *Registry) RotateSecret(ctx context.Context, id string) (string, error) {
	c, err := r.Store.GetClient(ctx, id)
	if err != nil {
		return "", fmt.Errorf("rotate secret of client %q: %w", id, err)
	}
	if !usesSecret(c.TokenEndpointAuthMethod) {
		return "", fmt.Errorf("rotate secret of client %q (%s): %w", id, c.TokenEndpointAuthMethod, ErrNoSecret)
	}
	secret, hash, err := r.newSecret(ctx)
	if err != nil {
		return "", err
	}
	if err := r.Store.UpdateClientSecret(ctx, id, hash, r.now()); err != nil {
		return "", fmt.Errorf("rotate secret of client %q: %w", id, err)
	}
	return secret, nil
}

func (r *Registry) newSecret(ctx context.Context) (secret string, hash []byte, err error) {
	if r.Hasher == nil {
		return "", nil, errors.New("clients: registry has no secret hasher")
	}
	secret = GenerateSecret()
	hash, err = r.Hasher.Hash(ctx, []byte(secret))
	if err != nil {
		return "", nil, fmt.Errorf("hash client secret: %w", err)
	}
	return secret, hash, nil
}

// SpecOf is the registration a stored client was made from.
func SpecOf(c store.Client) Spec {
	return Spec{
		Name: c.Name, RedirectURIs: slices.Clone(c.RedirectURIs), PostLogoutRedirectURIs: slices.Clone(c.PostLogoutRedirectURIs),
		GrantTypes: slices.Clone(c.GrantTypes), Scopes: slices.Clone(c.Scopes), TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		Public: c.Public, FirstParty: c.FirstParty, RequireMFA: c.RequireMFA, PKCEOptional: c.PKCEOptional, JWKS: c.JWKS, JWKSURI: c.JWKSURI,
		IDTokenAlg: c.IDTokenAlg, AccessTokenFormat: c.AccessTokenFormat,
	}
}

// Update applies edit to client id's registration, validates the result
// as Create does and stores it; the id, the secret and the creation time
// stay. It returns the client and what changed, field by field under the
// registration metadata names, old and new value (a key set only as
// replaced); with no change nothing is written. A change of how the
// client authenticates is refused with ErrAuthChange, and an update that
// races another on the same client with store.ErrConflict. Tokens already
// issued keep what they were granted until they expire or are revoked.
func (r *Registry) Update(ctx context.Context, id string, edit func(*Spec)) (store.Client, map[string]any, error) {
	return r.UpdateSeen(ctx, id, time.Time{}, edit)
}

// UpdateSeen is Update for an edit made on a view of the client as it
// was when its UpdatedAt was seen (a form in the admin console): if the
// client has changed since, nothing is written and the answer is
// store.ErrConflict, so a stale page cannot undo another admin's change.
// A zero seen accepts the client as it is.
func (r *Registry) UpdateSeen(ctx context.Context, id string, seen time.Time, edit func(*Spec)) (store.Client, map[string]any, error) {
	c, err := r.Store.GetClient(ctx, id)
	if err != nil {
		return store.Client{}, nil, fmt.Errorf("update client %q: %w", id, err)
	}
	if !seen.IsZero() && !seen.Equal(c.UpdatedAt) {
		return store.Client{}, nil, fmt.Errorf("update client %q: changed since it was read: %w", id, store.ErrConflict)
	}
	old := SpecOf(c)
	spec := SpecOf(c)
	edit(&spec)
	// Checked before validation, whose messages assume a registration
	// that could still choose (e.g. "set public").
	if spec.Public != c.Public || (spec.TokenEndpointAuthMethod != c.TokenEndpointAuthMethod &&
		!(usesSecret(spec.TokenEndpointAuthMethod) && usesSecret(c.TokenEndpointAuthMethod))) {
		return store.Client{}, nil, fmt.Errorf("update client %q (%s to %s): %w", id, c.TokenEndpointAuthMethod, spec.TokenEndpointAuthMethod, ErrAuthChange)
	}
	spec, err = Validate(spec)
	if err != nil {
		return store.Client{}, nil, err
	}
	changes := Changes(old, spec)
	if len(changes) == 0 {
		return c, nil, nil
	}
	since := c.UpdatedAt
	c.Name, c.FirstParty, c.RequireMFA, c.PKCEOptional = spec.Name, spec.FirstParty, spec.RequireMFA, spec.PKCEOptional
	c.RedirectURIs, c.PostLogoutRedirectURIs = store.Strings(spec.RedirectURIs), store.Strings(spec.PostLogoutRedirectURIs)
	c.GrantTypes, c.Scopes = store.Strings(spec.GrantTypes), store.Strings(spec.Scopes)
	c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI = spec.TokenEndpointAuthMethod, spec.JWKS, spec.JWKSURI
	c.IDTokenAlg, c.AccessTokenFormat = spec.IDTokenAlg, spec.AccessTokenFormat
	c.UpdatedAt = r.now().UTC().Truncate(time.Microsecond) // as PostgreSQL keeps it
	if !c.UpdatedAt.After(since) {
		c.UpdatedAt = since.Add(time.Microsecond) // a clock behind the last update's
	}
	if err := r.Store.UpdateClient(ctx, c, since); err != nil {
		return store.Client{}, nil, fmt.Errorf("update client %q: %w", id, err)
	}
	return c, changes, nil
}

// Changes lists the fields that differ between two registrations, under
// the registration metadata names, each as {"from", "to"}; a key set
// (public keys, but long) only as "replaced".
func Changes(old, new Spec) map[string]any {
	out := map[string]any{}
	diff := func(field string, from, to any, same bool) {
		if !same {
			out[field] = map[string]any{"from": from, "to": to}
		}
	}
	diff("client_name", old.Name, new.Name, old.Name == new.Name)
	diff("redirect_uris", old.RedirectURIs, new.RedirectURIs, slices.Equal(old.RedirectURIs, new.RedirectURIs))
	diff("post_logout_redirect_uris", old.PostLogoutRedirectURIs, new.PostLogoutRedirectURIs, slices.Equal(old.PostLogoutRedirectURIs, new.PostLogoutRedirectURIs))
	diff("grant_types", old.GrantTypes, new.GrantTypes, slices.Equal(old.GrantTypes, new.GrantTypes))
	diff("scopes", old.Scopes, new.Scopes, slices.Equal(old.Scopes, new.Scopes))
	diff("token_endpoint_auth_method", old.TokenEndpointAuthMethod, new.TokenEndpointAuthMethod, old.TokenEndpointAuthMethod == new.TokenEndpointAuthMethod)
	diff("first_party", old.FirstParty, new.FirstParty, old.FirstParty == new.FirstParty)
	diff("require_mfa", old.RequireMFA, new.RequireMFA, old.RequireMFA == new.RequireMFA)
	diff("pkce_optional", old.PKCEOptional, new.PKCEOptional, old.PKCEOptional == new.PKCEOptional)
	diff("jwks_uri", old.JWKSURI, new.JWKSURI, old.JWKSURI == new.JWKSURI)
	diff("id_token_signed_response_alg", old.IDTokenAlg, new.IDTokenAlg, old.IDTokenAlg == new.IDTokenAlg)
	diff("access_token_format", old.AccessTokenFormat, new.AccessTokenFormat, old.AccessTokenFormat == new.AccessTokenFormat)
	if old.JWKS != new.JWKS {
		out["jwks"] = "replaced"
	}
	return out
}

// Get returns client id; an unknown id is store.ErrNotFound.
func (r *Registry) Get(ctx context.Context, id string) (store.Client, error) {
	c, err := r.Store.GetClient(ctx, id)
	if err != nil {
		return store.Client{}, fmt.Errorf("client %q: %w", id, err)
	}
	return c, nil
}

// List returns every client, by name.
func (r *Registry) List(ctx context.Context) ([]store.Client, error) {
	cs, err := r.Store.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return cs, nil
}

// Delete removes client id and every token issued to it.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if err := r.Store.DeleteClient(ctx, id); err != nil {
		return fmt.Errorf("client %q: %w", id, err)
	}
	return nil
}
