package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/store"
)

// A user's phone for codes by SMS (R09): users attach and detach their
// own on the account page, with a code texted to it; admins manage
// anyone's. A number attached unconfirmed makes the user's SMS step say
// "contact your administrator" until an admin confirms it. Replacing or
// detaching a confirmed number signs the user out, as any change of
// factor does.

var (
	// ErrNoPhone: the user has no phone to confirm or detach.
	ErrNoPhone = errors.New("the user has no phone")
	// ErrBadNumber: not an E.164 number.
	ErrBadNumber = errors.New("want an E.164 number, + and the country code, as in +447700900123")
)

// phone returns u's SMS factor, or nil, and all their factors.
func (s *Service) phone(ctx context.Context, u store.User) (*store.Factor, []store.Factor, error) {
	factors, err := s.Store.ListFactors(ctx, u.ID)
	if err != nil {
		return nil, nil, err
	}
	i := slices.IndexFunc(factors, func(f store.Factor) bool { return f.Kind == store.FactorSMS })
	if i < 0 {
		return nil, factors, nil
	}
	return &factors[i], factors, nil
}

// SetPhone attaches number to u, replacing the phone they had;
// confirmed says the number is known to be theirs.
func (s *Service) SetPhone(ctx context.Context, a Actor, u store.User, number string, confirmed bool) error {
	if !sms.ValidE164(number) {
		return fmt.Errorf("%q: %w", number, ErrBadNumber)
	}
	return s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		old, _, err := s.phone(ctx, u)
		if err != nil {
			return store.AuditEvent{}, err
		}
		if old != nil {
			if err := s.dropPhone(ctx, u, old); err != nil {
				return store.AuditEvent{}, err
			}
		}
		f := store.Factor{ID: accounts.NewID(), UserID: u.ID, Kind: store.FactorSMS, Name: "Phone " + sms.Mask(number),
			Phone: number, Confirmed: confirmed, CreatedAt: s.now().UTC()}
		if err := s.Store.CreateFactor(ctx, f); err != nil {
			return store.AuditEvent{}, err
		}
		return store.AuditEvent{Type: "phone.attached", UserID: u.ID, Detail: jsonDetail(map[string]any{"confirmed": confirmed})}, nil
	})
}

// ConfirmPhone confirms u's attached number for them; it returns the
// number.
func (s *Service) ConfirmPhone(ctx context.Context, a Actor, u store.User) (number string, err error) {
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		old, _, err := s.phone(ctx, u)
		if err != nil {
			return store.AuditEvent{}, err
		}
		if old == nil {
			return store.AuditEvent{}, ErrNoPhone
		}
		number = old.Phone
		return store.AuditEvent{Type: "phone.confirmed", UserID: u.ID}, s.Store.ConfirmFactor(ctx, old.ID, s.now())
	})
	return number, err
}

// DetachPhone removes u's phone; it returns the number. With no other
// method left, two-step verification is off and its recovery codes go
// too, as when a user removes their last method.
func (s *Service) DetachPhone(ctx context.Context, a Actor, u store.User) (number string, err error) {
	err = s.change(ctx, a, func(ctx context.Context) (store.AuditEvent, error) {
		old, factors, err := s.phone(ctx, u)
		if err != nil {
			return store.AuditEvent{}, err
		}
		if old == nil {
			return store.AuditEvent{}, ErrNoPhone
		}
		number = old.Phone
		if err := s.dropPhone(ctx, u, old); err != nil {
			return store.AuditEvent{}, err
		}
		if !slices.ContainsFunc(factors, func(f store.Factor) bool { return f.Confirmed && f.ID != old.ID }) {
			if err := s.Store.DeleteRecoveryCodes(ctx, u.ID); err != nil {
				return store.AuditEvent{}, err
			}
		}
		return store.AuditEvent{Type: "phone.detached", UserID: u.ID}, nil
	})
	return number, err
}

// dropPhone deletes old, signing u out when it was confirmed: sessions
// won with it must not outlive it.
func (s *Service) dropPhone(ctx context.Context, u store.User, old *store.Factor) error {
	if err := s.Store.DeleteFactor(ctx, u.ID, old.ID); err != nil {
		return err
	}
	if old.Confirmed {
		return s.Store.SignOutUser(ctx, u.ID)
	}
	return nil
}
