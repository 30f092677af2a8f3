package admin

import (
	"context"
	"time"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/store"
)

// Client registrations (R04): each change with its audit event, in one
// transaction. A secret is returned once; the store keeps its HMAC.

// CreateClient registers a client and returns it with its secret ("" for
// a client without one).
func (s *Service) CreateClient(ctx context.Context, a Actor, r *clients.Registry, spec clients.Spec) (c store.Client, secret string, err error) {
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		var err error
		if c, secret, err = r.Create(ctx, spec); err != nil {
			return store.AuditEvent{}, err
		}
		return store.AuditEvent{Type: "client.created", ClientID: c.ID, Detail: jsonDetail(map[string]any{
			"name": c.Name, "grant_types": c.GrantTypes, "token_endpoint_auth_method": c.TokenEndpointAuthMethod,
			"access_token_format": c.AccessTokenFormat,
		})}, nil
	})
	if err != nil {
		return store.Client{}, "", err // rolled back: no secret to show
	}
	return c, secret, nil
}

// RotateClientSecret gives client id a new secret; the old one stops
// working at once (on other replicas within their client cache's time).
func (s *Service) RotateClientSecret(ctx context.Context, a Actor, r *clients.Registry, id string) (secret string, err error) {
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		var err error
		if secret, err = r.RotateSecret(ctx, id); err != nil {
			return store.AuditEvent{}, err
		}
		return store.AuditEvent{Type: "client.secret_rotated", ClientID: id}, nil
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// DeleteClient removes client id and every code and token issued to it.
func (s *Service) DeleteClient(ctx context.Context, a Actor, id string) error {
	return s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		if err := s.Store.DeleteClient(ctx, id); err != nil {
			return store.AuditEvent{}, err
		}
		return store.AuditEvent{Type: "client.deleted", ClientID: id}, nil
	})
}

// ClientUpdate is a change to a client's registration.
type ClientUpdate struct {
	// Edit changes the registration (clients.Registry.Update); nil
	// changes nothing.
	Edit func(*clients.Spec)
	// Seen is the client's UpdatedAt on the page the edit was made on:
	// if it has changed since, store.ErrConflict. Zero accepts any.
	Seen time.Time
	// RevokeTokens also deletes every code and token the client holds.
	RevokeTokens bool
}

// UpdateClient changes client id's registration and, when asked, revokes
// its tokens: one transaction, with a client.updated event naming what
// changed and a client.tokens_revoked event. Changes is empty when the
// registration already had every value.
func (s *Service) UpdateClient(ctx context.Context, a Actor, r *clients.Registry, id string, u ClientUpdate) (c store.Client, changes map[string]any, revoked int64, err error) {
	edit := u.Edit
	if edit == nil {
		edit = func(*clients.Spec) {}
	}
	err = s.Store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if c, changes, err = r.UpdateSeen(ctx, id, u.Seen, edit); err != nil {
			return err
		}
		if len(changes) > 0 {
			if err := s.audit(ctx, a, store.AuditEvent{Type: "client.updated", ClientID: c.ID, Detail: jsonDetail(changes)}); err != nil {
				return err
			}
		}
		if !u.RevokeTokens {
			return nil
		}
		if revoked, err = s.Store.DeleteClientTokens(ctx, c.ID); err != nil {
			return err
		}
		return s.audit(ctx, a, store.AuditEvent{Type: "client.tokens_revoked", ClientID: c.ID, Detail: jsonDetail(map[string]any{"token_rows": revoked})})
	})
	if err != nil {
		return store.Client{}, nil, 0, err
	}
	return c, changes, revoked, nil
}
