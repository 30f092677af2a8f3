package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/store"
)

// smsPurpose binds a texted code as an email code is bound (a sign-in,
// a set-up) and to the number it went to (security.md §3.2): a number
// replaced meanwhile takes its codes with it.
func smsPurpose(purpose, phone string) string { return "sms:" + purpose + ":" + phone }

// smsFactor is user's phone for codes by SMS, if any (one per user).
func smsFactor(factors []store.Factor) (store.Factor, bool) {
	i := slices.IndexFunc(factors, func(f store.Factor) bool { return f.Kind == store.FactorSMS })
	if i < 0 {
		return store.Factor{}, false
	}
	return factors[i], true
}

// phoneOf reads a number as a person types it: spaces, dashes, dots and
// brackets dropped; it must then be E.164 ("+" and the country code).
func phoneOf(s string) (string, bool) {
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune(" -.()", r) {
			return -1
		}
		return r
	}, s)
	return s, sms.ValidE164(s)
}

// textable tells whether codes may be texted to phone: every number, or
// those the configuration's prefixes allow (SMS pumping: premium and
// far-away numbers cost the most).
func (p *Provider) textable(phone string) bool {
	if len(p.cfg.SMSAllowedPrefixes) == 0 {
		return true
	}
	return slices.ContainsFunc(p.cfg.SMSAllowedPrefixes, func(prefix string) bool { return strings.HasPrefix(phone, prefix) })
}

// unconfirmedPhone answers the SMS step of a user whose number an admin
// attached but nobody confirmed (R09, seed 004).
const unconfirmedPhone = "Your phone number is not confirmed yet: contact your administrator, or try another way."

// wrongPhone answers a number that cannot take a text.
const wrongPhone = "Enter your mobile number with its country code, as in +44 7700 900123."

// smsSetup is where a phone is being set up: the account page or the
// sign-in's setup page (R09, R22). attempt counts a code's try there;
// done carries on once the number is confirmed (first: it is the user's
// first factor, so recovery codes come next); refuse shows a refusal
// on that page.
type smsSetup struct {
	page    enrolPage
	purpose string // the code's binding but for the number
	attempt func() bool
	done    func(first bool)
	refuse  func(status int, msg string)
}

// setupSMS texts a code to the number typed (start-sms) or takes it back
// (confirm-sms). A user attaches only their own phone, one at most: a
// confirmed one must be removed first, and one an admin attached
// unconfirmed is confirmed by its code, or replaced by the number the
// user proves.
func (p *Provider) setupSMS(w http.ResponseWriter, r *http.Request, user store.User, action string, st smsSetup) {
	ctx := r.Context()
	page := st.page
	phone, ok := phoneOf(r.PostForm.Get("phone"))
	if !ok {
		page.Error = wrongPhone
		p.render(w, r, http.StatusBadRequest, "enrol.html", page)
		return
	}
	if !p.textable(phone) {
		page.Error = "Codes cannot be texted to numbers in that country here. Choose another method."
		p.render(w, r, http.StatusBadRequest, "enrol.html", page)
		return
	}
	factors, err := p.store.ListFactors(ctx, user.ID)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
		return
	}
	old, has := smsFactor(factors)
	if has && old.Confirmed {
		st.refuse(http.StatusConflict, "You have a phone for codes already: remove it first to use another number.")
		return
	}
	purpose := smsPurpose(st.purpose, phone)
	page.Phone, page.PhoneMasked = phone, sms.Mask(phone)
	switch action {
	case "start-sms":
		ch := p.textTo(r, phone)
		err := p.sendCode(ctx, user, purpose, ch)
		status, msg := p.sendAnswer(ctx, ch, err)
		if err == nil {
			p.audit(ctx, r, store.AuditEvent{Type: "sms_code.sent", UserID: user.ID, Detail: `{"for":"setup"}`})
		}
		// After a failed text the page asks for the number again, not for
		// a code that never left.
		page.Error = msg
		page.PhoneSent = (err == nil || status == http.StatusTooManyRequests) && p.codeSent(ctx, user, purpose)
		p.render(w, r, status, "enrol.html", page)
	case "confirm-sms":
		if !st.attempt() {
			return
		}
		if err := p.useCode(ctx, user, purpose, r.PostForm.Get("code")); err != nil {
			if !errors.Is(err, errWrongCode) && !errors.Is(err, store.ErrNotFound) {
				p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
				return
			}
			p.audit(ctx, r, store.AuditEvent{Type: "enrolment.failure", UserID: user.ID, Detail: `{"method":"sms"}`})
			page.Error, page.PhoneSent = "That code didn't work. Check the latest text, or send a new code.", p.codeSent(ctx, user, purpose)
			p.render(w, r, http.StatusUnauthorized, "enrol.html", page)
			return
		}
		err := p.store.InTx(ctx, func(ctx context.Context) error {
			// Read again: an admin may have confirmed, replaced or
			// detached the number meanwhile (a confirmed one is read-only).
			fresh, err := p.store.ListFactors(ctx, user.ID)
			if err != nil {
				return err
			}
			if cur, ok := smsFactor(fresh); ok != has || cur.ID != old.ID || cur.Confirmed {
				return store.ErrConflict
			}
			if has && old.Phone == phone {
				return p.store.ConfirmFactor(ctx, old.ID, p.now())
			}
			if has {
				if err := p.store.DeleteFactor(ctx, user.ID, old.ID); err != nil {
					return err
				}
			}
			return p.store.CreateFactor(ctx, store.Factor{ID: accounts.NewID(), UserID: user.ID, Kind: store.FactorSMS,
				Name: "Phone " + sms.Mask(phone), Phone: phone, Confirmed: true, CreatedAt: p.now().UTC()})
		})
		if errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			// Two confirmations at once, or an admin's change meanwhile.
			st.refuse(http.StatusConflict, "Your phone was changed meanwhile. Reload the page and try again.")
			return
		}
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		detail := map[string]string{"method": "sms", "phone": sms.Mask(phone)}
		if has && old.Phone != phone {
			detail["replaced"] = sms.Mask(old.Phone) // the number an admin attached
		}
		b, _ := json.Marshal(detail)
		p.audit(ctx, r, store.AuditEvent{Type: "factor.enrolled", UserID: user.ID, Detail: string(b)})
		st.done(!slices.ContainsFunc(factors, func(f store.Factor) bool { return f.Confirmed }))
	}
}

// sendSignInText texts a code for this sign-in to a user's confirmed
// phone (R09), as sendSignInCode mails one.
func (p *Provider) sendSignInText(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, user, ok := p.flowStep(w, r, "2fa", store.FlowSecondFactor, false)
	if !ok {
		return
	}
	all, codes, err := p.store.ListFactorsAndCodes(ctx, user.ID)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
		return
	}
	ms := p.offered(ctx, f, all, codes)
	phone, has := smsFactor(all)
	switch {
	case !slices.ContainsFunc(ms, func(m method) bool { return m.ID == "sms" }):
		p.showSecondFactor(w, r, http.StatusBadRequest, f, ms, "", notAvailable)
		return
	case !has || !phone.Confirmed:
		p.showSecondFactor(w, r, http.StatusForbidden, f, ms, "sms", unconfirmedPhone)
		return
	case !p.textable(phone.Phone):
		p.showSecondFactor(w, r, http.StatusForbidden, f, ms, "sms", "Codes cannot be texted to your number here. Try another way, or contact your administrator.")
		return
	}
	ch := p.textTo(r, phone.Phone)
	err = p.sendCode(ctx, user, smsPurpose(flowPurpose(f.ID), phone.Phone), ch)
	status, msg := p.sendAnswer(ctx, ch, err)
	if err == nil {
		p.audit(ctx, r, store.AuditEvent{Type: "sms_code.sent", UserID: user.ID, ClientID: f.ClientID, Detail: `{"for":"sign-in"}`})
	}
	p.showSecondFactor(w, r, status, f, ms, "sms", msg)
}

// verifyText checks a texted code at sign-in.
func (p *Provider) verifyText(ctx context.Context, r *http.Request, f store.LoginFlow, user store.User, code string) ([]string, error) {
	factors, err := p.confirmedFactors(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	phone, has := smsFactor(factors)
	if has && p.texter != nil && p.useCode(ctx, user, smsPurpose(flowPurpose(f.ID), phone.Phone), code) == nil {
		if err := p.store.TouchFactor(ctx, phone.ID, p.now()); err != nil {
			p.logger.WarnContext(ctx, "record factor use", "err", err)
		}
		p.audit(ctx, r, store.AuditEvent{Type: "factor.success", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"sms"}`})
		return []string{mfa.AMRSMS}, nil
	}
	p.audit(ctx, r, store.AuditEvent{Type: "factor.failure", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"sms"}`})
	return nil, errWrongCode
}
