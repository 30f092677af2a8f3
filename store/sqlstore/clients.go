package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/twofold-idp/twofold/store"
)

const clientColumns = `id, name, secret_hash, public, first_party, require_mfa, pkce_optional, redirect_uris,
	post_logout_redirect_uris, grant_types, scopes, token_endpoint_auth_method, jwks, jwks_uri,
	id_token_alg, access_token_format, created_at, updated_at`

// CreateClient inserts c; a taken id is ErrAlreadyExists.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	_, err := s.exec(ctx, `INSERT INTO clients (`+clientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.SecretHash, c.Public, c.FirstParty, c.RequireMFA, c.PKCEOptional, c.RedirectURIs,
		c.PostLogoutRedirectURIs, c.GrantTypes, c.Scopes, c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI,
		c.IDTokenAlg, accessTokenFormat(c.AccessTokenFormat), c.CreatedAt.UTC(), c.UpdatedAt.UTC())
	return wrap(err, "create client")
}

// accessTokenFormat writes an unset format as the column's default, so a
// caller that predates the column (a seeded client) still inserts.
func accessTokenFormat(f string) string {
	if f == "" {
		return store.AccessTokenOpaque
	}
	return f
}

// GetClient finds a client by id.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	var c store.Client
	err := s.get(ctx, &c, `SELECT `+clientColumns+` FROM clients WHERE id = ?`, id)
	return c, wrap(err, "get client")
}

// ListClients lists clients by name.
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	cs := []store.Client{}
	err := s.sel(ctx, &cs, `SELECT `+clientColumns+` FROM clients ORDER BY name, id`)
	return cs, wrap(err, "list clients")
}

// DeleteClient removes a client and every token issued to it.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		res, err := s.exec(ctx, `DELETE FROM clients WHERE id = ?`, id)
		if err == nil {
			err = one(res)
		}
		if err != nil {
			return wrap(err, "delete client")
		}
		_, err = s.DeleteClientTokens(ctx, id)
		return err
	})
}

// DeleteClientTokens removes a client's rows of oauth2_requests.
func (s *Store) DeleteClientTokens(ctx context.Context, id string) (int64, error) {
	n, err := count(s.exec(ctx, `DELETE FROM oauth2_requests WHERE client_id = ?`, id))
	return n, wrap(err, "delete client tokens")
}

// UpdateClient replaces a client's registration: everything but its id,
// secret, whether it is public and when it was created; only while its
// updated_at is still since, else ErrConflict (another update came first).
func (s *Store) UpdateClient(ctx context.Context, c store.Client, since time.Time) error {
	res, err := s.exec(ctx, `UPDATE clients SET name = ?, first_party = ?, require_mfa = ?, pkce_optional = ?, redirect_uris = ?,
		post_logout_redirect_uris = ?, grant_types = ?, scopes = ?, token_endpoint_auth_method = ?, jwks = ?,
		jwks_uri = ?, id_token_alg = ?, access_token_format = ?, updated_at = ? WHERE id = ? AND updated_at = ?`,
		c.Name, c.FirstParty, c.RequireMFA, c.PKCEOptional, c.RedirectURIs, c.PostLogoutRedirectURIs, c.GrantTypes, c.Scopes,
		c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI, c.IDTokenAlg, accessTokenFormat(c.AccessTokenFormat), c.UpdatedAt.UTC(), c.ID, since.UTC())
	if err == nil {
		err = one(res)
	}
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := s.GetClient(ctx, c.ID); gerr == nil {
			err = store.ErrConflict
		}
	}
	return wrap(err, "update client")
}

// UpdateClientSecret replaces a client's secret hash.
func (s *Store) UpdateClientSecret(ctx context.Context, id string, hash []byte, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE clients SET secret_hash = ?, updated_at = ? WHERE id = ?`, hash, at.UTC(), id)
	if err == nil {
		err = one(res)
	}
	return wrap(err, "update client secret")
}
