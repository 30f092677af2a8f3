package provider

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/store"
)

// Mailer sends one plain-text message (the mail package's Sender).
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// Texter sends one text message to an E.164 number (the sms package's
// Twilio).
type Texter interface {
	Send(ctx context.Context, to, body string) error
}

// channel is how a code travels: by email to the account's address
// (R08), or by text message to a phone (R09). Each has its own send
// counters and purposes.
type channel struct {
	kind string // "mail" or "sms"
	to   string
	// reset marks a mailed code for a forgotten password: its mail
	// says so.
	reset bool
	// before and after are counted around the account's limits before a
	// send: for SMS the client address's first (a blocked address spends
	// nobody's budget), the number's and the server's after (toll fraud).
	before, after []store.Try
}

func mailTo(u store.User) channel { return channel{kind: "mail", to: u.Email} }

// textTo is a texted code's channel: besides the account's counters,
// the number's own (3 per 15 minutes, 10 a day, security.md §3.1.4),
// the client address's (a stolen password cannot pump many numbers
// from one place) and the whole server's daily budget.
func (p *Provider) textTo(r *http.Request, phone string) channel {
	ch := channel{kind: "sms", to: phone, after: []store.Try{
		{Key: "sms:dest:15m:" + phone, Limit: sendRule},
		{Key: "sms:dest:day:" + phone, Limit: sendDayRule},
		// A whole day's lock: a shorter one would open another day's
		// budget as soon as it ended.
		{Key: "sms:all:day", Limit: store.Limit{Max: p.cfg.SMSDailyLimit, Window: 24 * time.Hour, Lock: 24 * time.Hour}},
	}}
	if !p.cfg.NoAddressThrottle {
		ch.before = []store.Try{{Key: "sms:" + p.addressKey(r), Limit: smsAddressRule}}
	}
	return ch
}

// smsAddressRule bounds texts asked for from one client address.
var smsAddressRule = store.Limit{Max: 10, Window: time.Hour, Lock: time.Hour}

// deliver sends code on ch.
func (p *Provider) deliver(ctx context.Context, ch channel, code string) error {
	if ch.kind == "sms" {
		if p.texter == nil {
			return errors.New("no SMS gateway configured")
		}
		return p.texter.Send(ctx, ch.to, fmt.Sprintf("%s is your %s code. It works once, for %d minutes.",
			code, p.issuer.Hostname(), int(mfa.CodeLife.Minutes())))
	}
	if p.mailer == nil {
		return errors.New("no mail server configured")
	}
	if ch.reset {
		body := fmt.Sprintf("Your code to choose a new password for %s is:\n\n    %s\n\nIt works once, for %d minutes.\n\n"+
			"If you did not ask for it, ignore this mail: your password has not changed.\n",
			p.issuer.Host, code, int(mfa.CodeLife.Minutes()))
		return p.mailer.Send(ctx, ch.to, "Your Twofold password reset code", body)
	}
	body := fmt.Sprintf("Your code for %s is:\n\n    %s\n\nIt works once, for %d minutes.\n\n"+
		"If you did not just sign in or set up two-step verification, someone knows your password: change it.\n",
		p.issuer.Host, code, int(mfa.CodeLife.Minutes()))
	return p.mailer.Send(ctx, ch.to, "Your Twofold code", body)
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

// Purposes a code is bound to: the sign-in it was sent for (its second
// step, or its setup of email codes), or the session that is setting
// them up on the account page. A code sent for one never works for
// another.
func flowPurpose(flowID string) string       { return "flow:" + flowID }
func enrolPurpose(flowID string) string      { return "enrol:" + flowID }
func accountPurpose(sessionID string) string { return "account:" + sessionID }

// Sends of codes per account (security.md §3.1.4: 3 per 15 minutes and
// 10 a day per account and destination; the destination is the
// account's own address). Counted before the mail goes, never refunded.
var (
	sendRule    = store.Limit{Max: 3, Window: 15 * time.Minute, Lock: 15 * time.Minute}
	sendDayRule = store.Limit{Max: 10, Window: 24 * time.Hour, Lock: 24 * time.Hour}
)

func sendKeys(kind, userID string) []store.Try {
	return []store.Try{{Key: kind + ":15m:" + userID, Limit: sendRule}, {Key: kind + ":day:" + userID, Limit: sendDayRule}}
}

// sendCode sends user a new code for purpose on ch, replacing any
// earlier one.
// The resend countdown is enforced by the store's conditional write (the
// send count read must still be the stored one, and every send raises
// it), so two racing requests send one mail; the per-account caps hold
// across purposes. A send the mail server refuses still counts: the
// server may have taken the message after all, and a refund would let
// a failing server be used to mail without limit.
func (p *Provider) sendCode(ctx context.Context, user store.User, purpose string, ch channel) error {
	now := p.now()
	prev, err := p.store.GetOneTimeCode(ctx, user.ID, purpose)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err == nil && now.Before(prev.ExpiresAt) {
		if at := mfa.ResendAt(prev.SentAt, prev.Sends); now.Before(at) {
			return errTooSoon{at}
		}
	}
	tries := append(append(slices.Clone(ch.before), sendKeys(ch.kind, user.ID)...), ch.after...)
	ths, err := p.store.Attempts(ctx, now, tries...)
	if err != nil {
		return err
	}
	if th := ths[len(ths)-1]; len(ths) < len(tries) || !th.Allowed {
		return errTooSoon{th.RetryAt}
	}
	code := mfa.NewCode()
	hash, _ := p.codes.Hash(purpose, code)
	c := store.OneTimeCode{UserID: user.ID, Purpose: purpose, Hash: hash, Sends: prev.Sends + 1,
		SentAt: now.UTC(), ExpiresAt: now.Add(mfa.CodeLife).UTC()}
	if err := p.store.PutOneTimeCode(ctx, c, prev.Sends); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errTooSoon{now.Add(mfa.ResendStep)}
		}
		return err
	}
	if err := p.deliver(ctx, ch, code); err != nil {
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

// codeSent says whether a code for purpose is live: the page then asks
// for it.
func (p *Provider) codeSent(ctx context.Context, user store.User, purpose string) bool {
	c, err := p.store.GetOneTimeCode(ctx, user.ID, purpose)
	return err == nil && p.now().Before(c.ExpiresAt)
}

// sendAnswer is the status and message of a page after sendCode.
func (p *Provider) sendAnswer(ctx context.Context, ch channel, err error) (int, string) {
	var soon errTooSoon
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.As(err, &soon):
		return http.StatusTooManyRequests, tooSoonMessage(soon.at.Sub(p.now()))
	}
	if ch.kind == "sms" {
		// Twilio's messages quote the number: log its status and code.
		var gw *sms.Error
		if errors.As(err, &gw) {
			p.logger.ErrorContext(ctx, "sms code not sent", "status", gw.Status, "code", gw.Code)
		} else {
			p.logger.ErrorContext(ctx, "sms code not sent", "err", err)
		}
		if errors.Is(err, sms.ErrInvalidNumber) {
			return http.StatusBadRequest, wrongPhone
		}
		return http.StatusServiceUnavailable, textFailed
	}
	p.logger.ErrorContext(ctx, "email code not sent", "err", err)
	return http.StatusServiceUnavailable, mailFailed
}

// textFailed answers a code the SMS gateway would not take.
const textFailed = "The text could not be sent. Try again in a minute, or choose another method."

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
	if errors.Is(err, store.ErrAlreadyExists) {
		return true, nil // another set-up finished first (one per user)
	}
	if err != nil {
		return false, err
	}
	p.audit(ctx, r, store.AuditEvent{Type: "factor.enrolled", UserID: user.ID, Detail: `{"method":"email"}`})
	return true, nil
}
