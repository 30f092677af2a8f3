package admin

import (
	"context"

	"github.com/twofold-idp/twofold/store"
)

// Keys is the token-signing key set (provider.KeySet).
type Keys interface {
	Rotate(ctx context.Context, alg string) error
	ActiveKID(ctx context.Context, alg string) (string, error)
}

// RotateSigningKey makes a new active key for alg; the one before it
// stays published until everything it signed has expired. The event is
// written after the rotation, not in its transaction: the new key is in
// the key set's memory as soon as it is stored, and a rolled-back row
// would leave this server signing with a key no other one knows.
func (s *Service) RotateSigningKey(ctx context.Context, a Actor, ks Keys, alg string) (kid string, err error) {
	if err := ks.Rotate(ctx, alg); err != nil {
		return "", err
	}
	if kid, err = ks.ActiveKID(ctx, alg); err != nil {
		return "", err
	}
	return kid, s.audit(ctx, a, store.AuditEvent{Type: "keys.rotated", Detail: jsonDetail(map[string]any{"alg": alg, "kid": kid})})
}
