package provider

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

// Mailer sends one plain-text message (the mail package's Sender).
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// errTooSoon refuses a code asked for before the resend countdown ends
// (or while another request is sending one).
type errTooSoon struct{ at time.Time }

func (e errTooSoon) Error() string { return "a code was sent moments ago" }

// tooSoonMessage tells the user how long to wait for another code,
// rounded up: never less than the wait.
func tooSoonMessage(wait time.Duration) string {
	return fmt.Sprintf("A code was sent moments ago. You can ask for a new one in %d seconds.", max(1, int(math.Ceil(wait.Seconds()))))
}

// Purposes a code is bound to: the sign-in it was sent for, or the
// session that is setting email codes up on the account page. A code
// sent for one never works for another.
func flowPurpose(flowID string) string       { return "flow:" + flowID }
func accountPurpose(sessionID string) string { return "account:" + sessionID }

// sendCode emails user a new code for purpose, replacing any earlier one.
// The resend countdown is enforced here, by the store's conditional
// write: two racing requests send one mail. When the mail cannot be
// sent, the code stored for it is taken back, so nothing changes.
func (p *Provider) sendCode(ctx context.Context, user store.User, purpose string) error {
	if p.mailer == nil {
		return errors.New("no mail server configured")
	}
	now := p.now()
	prev, err := p.store.GetOneTimeCode(ctx, user.ID, purpose)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	sends := 1
	if err == nil && now.Before(prev.ExpiresAt) {
		if at := mfa.ResendAt(prev.SentAt, prev.Sends); now.Before(at) {
			return errTooSoon{at}
		}
		sends = prev.Sends + 1
	}
	code := mfa.NewEmailCode()
	hash, _ := p.codes.Hash(purpose, code)
	c := store.OneTimeCode{UserID: user.ID, Purpose: purpose, Hash: hash, Sends: sends,
		SentAt: now.UTC(), ExpiresAt: now.Add(mfa.EmailCodeLife).UTC()}
	if err := p.store.PutOneTimeCode(ctx, c, prev.Sends); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errTooSoon{now.Add(mfa.ResendStep)}
		}
		return err
	}
	body := fmt.Sprintf("Your code for %s is:\n\n    %s\n\nIt works once, for %d minutes.\n\n"+
		"If you did not just sign in or set up two-step verification, someone knows your password: change it.\n",
		p.issuer.Host, code, int(mfa.EmailCodeLife.Minutes()))
	if err := p.mailer.Send(ctx, user.Email, "Your sign-in code", body); err != nil {
		// Put back what was there: the failed send neither counts nor
		// voids the code sent before it.
		var rerr error
		if prev.Sends == 0 {
			rerr = p.store.DeleteOneTimeCode(ctx, user.ID, purpose)
		} else {
			rerr = p.store.PutOneTimeCode(ctx, prev, sends)
		}
		if rerr != nil {
			p.logger.ErrorContext(ctx, "restore one-time code", "err", rerr)
		}
		return fmt.Errorf("send code: %w", err)
	}
	return nil
}

// useCode spends user's code for purpose: nil only for the right code,
// not expired, used once.
func (p *Provider) useCode(ctx context.Context, user store.User, purpose, code string) error {
	hash, ok := p.codes.Hash(purpose, code)
	if !ok {
		return errWrongCode
	}
	return p.store.UseOneTimeCode(ctx, user.ID, purpose, hash, p.now())
}

// codeState is what a page shows of the code for purpose: whether one is
// live, and how long until another may be sent.
func (p *Provider) codeState(ctx context.Context, user store.User, purpose string) (sent bool, wait time.Duration) {
	c, err := p.store.GetOneTimeCode(ctx, user.ID, purpose)
	now := p.now()
	if err != nil || !now.Before(c.ExpiresAt) {
		return false, 0
	}
	return true, max(0, mfa.ResendAt(c.SentAt, c.Sends).Sub(now))
}

// hasEmailFactor tells whether user set email codes up.
func hasEmailFactor(factors []store.Factor) bool {
	for _, f := range factors {
		if f.Kind == store.FactorEmail && f.Confirmed {
			return true
		}
	}
	return false
}

// confirmEmail turns email codes on for user with the code sent for
// purpose: the code proves the address. A user who has them already
// (the form sent twice) keeps their one factor.
func (p *Provider) confirmEmail(ctx context.Context, r *http.Request, user store.User, purpose, code string) (bool, error) {
	if err := p.useCode(ctx, user, purpose, code); err != nil {
		if errors.Is(err, errWrongCode) || errors.Is(err, store.ErrNotFound) {
			p.audit(ctx, r, store.AuditEvent{Type: "enrolment.failure", UserID: user.ID, Detail: `{"method":"email"}`})
			return false, nil
		}
		return false, err
	}
	factors, err := p.store.ListFactors(ctx, user.ID)
	if err != nil {
		return false, err
	}
	if hasEmailFactor(factors) {
		return true, nil
	}
	err = p.store.CreateFactor(ctx, store.Factor{ID: accounts.NewID(), UserID: user.ID, Kind: store.FactorEmail,
		Name: "Email codes", Confirmed: true, CreatedAt: p.now().UTC()})
	if err != nil {
		return false, err
	}
	p.audit(ctx, r, store.AuditEvent{Type: "factor.enrolled", UserID: user.ID, Detail: `{"method":"email"}`})
	return true, nil
}
