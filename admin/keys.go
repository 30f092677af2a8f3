package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/twofold-idp/twofold/store"
)

// Keys is the token-signing key set (provider.KeySet).
type Keys interface {
	Rotate(ctx context.Context, alg string) (kid string, err error)
}

// RotateSigningKey makes a new active key for alg; the one before it
// stays published until everything it signed has expired. The event,
// naming the key made, is written after the rotation, not in its
// transaction: the new key is in the key set's memory as soon as it is
// stored, and a rolled-back row would leave this server signing with a
// key no other one knows. An error with a kid means the key was made
// (and whatever failed after it is in the error).
func (s *Service) RotateSigningKey(ctx context.Context, a Actor, ks Keys, alg string) (kid string, err error) {
	kid, err = ks.Rotate(ctx, alg)
	if kid == "" {
		return "", err
	}
	if aerr := s.audit(ctx, a, store.AuditEvent{Type: "keys.rotated", Detail: jsonDetail(map[string]any{"alg": alg, "kid": kid})}); aerr != nil {
		err = errors.Join(err, fmt.Errorf("audit the rotation: %w", aerr))
	}
	return kid, err
}
