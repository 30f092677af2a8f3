package sqlstore

import (
	"context"
	"fmt"

	"github.com/twofold-idp/twofold/store"
)

// GetFederatedUser finds the user linked to an upstream's subject.
func (s *Store) GetFederatedUser(ctx context.Context, upstream, subject string) (store.User, error) {
	var u store.User
	err := s.get(ctx, &u, `SELECT `+qualified("u", userColumns)+` FROM federated_identities f
		JOIN users u ON u.id = f.user_id WHERE f.upstream = ? AND f.subject = ?`, upstream, subject)
	return u, wrap(err, "get federated user")
}

// CreateFederatedUser creates the user and its link in one transaction.
func (s *Store) CreateFederatedUser(ctx context.Context, u store.User, upstream, subject string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.CreateUser(ctx, u); err != nil {
			return err
		}
		_, err := s.exec(ctx, `INSERT INTO federated_identities (upstream, subject, user_id, created_at) VALUES (?, ?, ?, ?)`,
			upstream, subject, u.ID, u.CreatedAt.UTC())
		if err != nil {
			return fmt.Errorf("link federated identity: %w", err)
		}
		return nil
	})
}

// FederatedUpstreams lists the upstreams linked to a user, by name.
func (s *Store) FederatedUpstreams(ctx context.Context, userID string) ([]string, error) {
	ups := []string{}
	err := s.sel(ctx, &ups, `SELECT upstream FROM federated_identities WHERE user_id = ? ORDER BY upstream`, userID)
	return ups, wrap(err, "federated upstreams")
}
