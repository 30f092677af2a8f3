package provider

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

type enrolPage struct {
	Action, Error, Secret, URI string
	// QR and Download are data: URLs Twofold made itself, so marked safe
	// for the template (which would otherwise blank them).
	QR                  template.URL
	Hidden              map[string]string
	Required, CanCancel bool
	// DeferUntil is set when the setup may be skipped until then (R17).
	DeferUntil string
	// The kinds the user may set up (R10).
	setupKinds
	// EmailTo is the masked address codes go to; EmailSent says one was
	// sent, so the page asks for it.
	EmailTo   string
	EmailSent bool
	// Phone is the number being set up for codes by SMS (PhoneMasked as
	// shown); PhoneSent says a code was texted to it.
	Phone, PhoneMasked string
	PhoneSent          bool
}

// setupKinds are the kinds of factor a user may set up here (R10).
type setupKinds struct{ TOTP, WebAuthn, Email, SMS bool }

func (k setupKinds) none() bool { return !k.TOTP && !k.WebAuthn && !k.Email && !k.SMS }

type codesPage struct {
	Action, Error string
	Download      template.URL
	Codes         []string
	Hidden        map[string]string
}

// downloadLink makes the codes a .txt download without storing them: a
// data: URL in the page that shows them once.
func downloadLink(codes []string) template.URL {
	var sb strings.Builder
	sb.WriteString("Twofold recovery codes. Each code works once.\r\n\r\n")
	for _, c := range codes {
		sb.WriteString(c + "\r\n")
	}
	return template.URL("data:text/plain;charset=utf-8," + url.PathEscape(sb.String()))
}

func (p *Provider) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	if err := p.pages.Render(w, status, name, data); err != nil {
		p.logger.ErrorContext(r.Context(), "render", "page", name, "err", err)
	}
}

// handleEnrolPage offers enrolment during sign-in when policy requires a
// second factor and the user has none (R22). The secret itself is only
// ever sent in the answer to a POST.
func (p *Provider) handleEnrolPage(w http.ResponseWriter, r *http.Request) {
	f, err := p.loadFlow(r, r.URL.Query().Get("flow"), store.FlowEnrol)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	user, err := p.store.GetUser(r.Context(), f.UserID)
	if err != nil || user.Disabled {
		p.expired(w, r)
		return
	}
	p.render(w, r, http.StatusOK, "enrol.html", p.flowEnrolPage(r.Context(), f, user))
}

func (p *Provider) flowEnrolPage(ctx context.Context, f store.LoginFlow, user store.User) enrolPage {
	page := enrolPage{Action: "/login/enrol", Required: true, CanCancel: f.ClientID != "",
		Hidden: map[string]string{"flow": f.ID, "csrf": p.csrfToken("enrol", f.ID)}}
	page.setupKinds, page.EmailTo = p.allowedMethods(ctx, user), mfa.MaskEmail(user.Email)
	// A client that asks for two factors needs more than a mailed code.
	page.Email = page.Email && !p.mfaAsked(ctx, f)
	if page.none() {
		p.logger.WarnContext(ctx, "no second factor can be set up: the kinds allowed need WebAuthn (a host name) or a mail server, which this server has not", "population", user.Population)
		page.Error = noMethod
	}
	if until := p.deferralFor(ctx, f, user); !until.IsZero() {
		page.Required, page.CanCancel = false, false
		page.DeferUntil = until.UTC().Format("2 January 2006, 15:04 UTC")
	}
	return page
}

// Answers to a setup of a kind that cannot be set up: not allowed for
// the user's population (R10), or not served here (keys need a host
// name), or nothing at all can be.
const (
	notAllowed   = "Your organisation does not allow this method. Choose another."
	notAvailable = "This method is not available here. Choose another."
	noMethod     = "None of the methods your organisation allows can be set up here. Ask your administrator."
)

// allowedMethods says which kinds user may set up: those their
// population allows (R10), keys only where this issuer can serve
// WebAuthn (a host name, not an IP address), email codes only where
// there is a mail server.
func (p *Provider) allowedMethods(ctx context.Context, user store.User) setupKinds {
	pol := p.policies(ctx)
	return setupKinds{
		TOTP:     mfa.Allowed(user, pol, mfa.MethodTOTP),
		WebAuthn: p.webauthn != nil && mfa.Allowed(user, pol, mfa.MethodWebAuthn),
		Email:    p.mailer != nil && mfa.Allowed(user, pol, mfa.MethodEmail),
		SMS:      p.texter != nil && mfa.Allowed(user, pol, mfa.MethodSMS),
	}
}

// refusal is why a setup step (of the sign-in's setup page or the
// account page) of a kind user may not set up is refused, or "" when the
// action may go on (every other action does).
func (p *Provider) refusal(ctx context.Context, user store.User, action string) string {
	pol := p.policies(ctx)
	switch action {
	case "start-totp", "confirm-totp":
		if !mfa.Allowed(user, pol, mfa.MethodTOTP) {
			return notAllowed
		}
	case "start-webauthn", "finish-webauthn":
		if !mfa.Allowed(user, pol, mfa.MethodWebAuthn) {
			return notAllowed
		}
		if p.webauthn == nil {
			return notAvailable
		}
	case "start-email", "confirm-email":
		if !mfa.Allowed(user, pol, mfa.MethodEmail) {
			return notAllowed
		}
		if p.mailer == nil {
			return notAvailable
		}
	case "start-sms", "confirm-sms":
		if !mfa.Allowed(user, pol, mfa.MethodSMS) {
			return notAllowed
		}
		if p.texter == nil {
			return notAvailable
		}
	}
	return ""
}

// deferralFor is until when this sign-in may skip the setup (R17): only
// when nothing else about it needs two factors. Zero when it may not.
func (p *Provider) deferralFor(ctx context.Context, f store.LoginFlow, user store.User) time.Time {
	if p.mfaNeeded(ctx, f, user) {
		return time.Time{}
	}
	return p.deferral(ctx, user)
}

func (p *Provider) handleEnrolSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, user, ok := p.flowStep(w, r, "enrol", store.FlowEnrol, false)
	if !ok {
		return
	}
	page := p.flowEnrolPage(ctx, f, user)
	if factors, err := p.confirmedFactors(ctx, user.ID); err == nil && len(factors) > 0 {
		// A factor appeared meanwhile (another tab): present it instead.
		p.advance(w, r, f, store.FlowSecondFactor)
		return
	}
	action := r.PostForm.Get("action")
	msg := p.refusal(ctx, user, action)
	if (action == "start-email" || action == "confirm-email") && msg == "" && p.mfaAsked(ctx, f) {
		msg = "This application asks for an authenticator app or a security key: a code by email is not enough."
	}
	if msg != "" {
		page.Error = msg
		p.render(w, r, http.StatusForbidden, "enrol.html", page)
		return
	}
	switch action {
	case "start-totp":
		e, err := p.startTOTP(ctx, user)
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		page.Secret, page.URI, page.QR = e.Secret, e.URI, template.URL(e.QRPNG)
		p.render(w, r, http.StatusOK, "enrol.html", page)
	case "confirm-totp":
		if f, ok = p.setupAttempt(w, r, f, user, page); !ok {
			return
		}
		ok, err := p.confirmTOTP(ctx, r, user, r.PostForm.Get("code"))
		if errors.Is(err, store.ErrConflict) {
			p.expired(w, r) // the same form sent twice: the first one counted
			return
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		if !ok {
			p.retryEnrol(w, r, user, page)
			return
		}
		p.enrolled(w, r, f, user)
	case "start-webauthn":
		k, err := p.beginRegistration(ctx, user, keyName(r.PostForm.Get("name")))
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		p.render(w, r, http.StatusOK, "webauthn_register.html", registerPage{Action: "/login/enrol", Key: k, Hidden: page.Hidden})
	case "finish-webauthn":
		if f, ok = p.setupAttempt(w, r, f, user, page); !ok {
			return
		}
		_, err := p.finishRegistration(ctx, r, user, r.PostForm.Get("ceremony"), r.PostForm.Get("credential"))
		if err != nil {
			p.logger.InfoContext(ctx, "key registration refused", "err", err)
			page.Error = "The security key could not be registered. Try again."
			p.render(w, r, http.StatusBadRequest, "enrol.html", page)
			return
		}
		p.enrolled(w, r, f, user)
	case "start-email":
		p.enrolSendCode(w, r, page, user, enrolPurpose(f.ID))
	case "confirm-email":
		if f, ok = p.setupAttempt(w, r, f, user, page); !ok {
			return
		}
		ok, err := p.confirmEmail(ctx, r, user, enrolPurpose(f.ID), r.PostForm.Get("code"))
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		if !ok {
			page.EmailSent = p.codeSent(ctx, user, enrolPurpose(f.ID))
			page.Error = wrongEmailCode
			p.render(w, r, http.StatusUnauthorized, "enrol.html", page)
			return
		}
		p.enrolled(w, r, f, user)
	case "start-sms", "confirm-sms":
		p.setupSMS(w, r, user, action, smsSetup{
			page:    page,
			purpose: enrolPurpose(f.ID),
			attempt: func() bool {
				f, ok = p.setupAttempt(w, r, f, user, page)
				return ok
			},
			done: func(bool) { p.enrolled(w, r, f, user) },
			refuse: func(status int, msg string) {
				page.Error = msg
				p.render(w, r, status, "enrol.html", page)
			},
		})
	case "skip":
		// R17: the population's policy requires a factor from a date
		// not reached yet; until then the user may sign in without.
		until := p.deferralFor(ctx, f, user)
		if until.IsZero() {
			page.Error = "Two-step verification is required now: set it up to continue."
			p.render(w, r, http.StatusForbidden, "enrol.html", page)
			return
		}
		p.audit(ctx, r, store.AuditEvent{Type: "mfa.setup_deferred", UserID: user.ID, ClientID: f.ClientID,
			Detail: jsonObject("until", until.UTC())})
		p.establish(w, r, f, user, f.Methods)
	case "cancel":
		// The user cannot set a factor up now: the client gets an honest
		// error rather than a token that claims less than it required.
		p.unmet(w, r, f, "The user has no second factor and did not set one up.")
	default:
		p.expired(w, r)
	}
}

// enrolled moves a flow on once its first factor is set up: recovery
// codes next. A factor made in this flow proves nothing yet (security.md
// §3.3), so f.Methods does not grow: it is presented in its own step
// afterwards when the sign-in needs two factors.
func (p *Provider) enrolled(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User) {
	p.factorSucceeded(r.Context(), r, user)
	from := f.State
	// The tries spent setting the factor up are not the next step's.
	f.State, f.Failures = store.FlowRecoveryCodes, 0
	if err := p.store.UpdateLoginFlow(r.Context(), f, from); err != nil {
		p.expired(w, r)
		return
	}
	p.showFlowCodes(w, r, f, user, "")
}

// unmet ends sign-in f and answers its client with OIDC's
// unmet_authentication_requirements: a token that claims less than it
// asked for would not be honest.
func (p *Provider) unmet(w http.ResponseWriter, r *http.Request, f store.LoginFlow, hint string) {
	_ = p.store.DeleteLoginFlow(r.Context(), f.ID)
	p.clearCookie(w, flowCookie)
	if consoleFlow(f) {
		// No client to answer: the admin console's own refusal.
		p.errorPage(w, r, http.StatusForbidden, "Set up two-step verification first", consoleNeedsFactor, "")
		return
	}
	ar, err := p.resume(r, f)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	p.authorizeError(w, r, ar, errUnmet.WithHint(hint))
}

// setupAttempt counts a code's or key's try on the setup page: in the
// flow (FlowFactorLimit), on the client's address and on the account.
// False when refused (the answer is written).
func (p *Provider) setupAttempt(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User, page enrolPage) (store.LoginFlow, bool) {
	f, ok := p.attemptInFlow(w, r, f, user)
	if !ok {
		return f, false
	}
	if ok, locked := p.factorAttempt(w, r, f, user); !ok {
		if locked != "" {
			page.Error = locked
			p.render(w, r, http.StatusTooManyRequests, "enrol.html", page)
		}
		return f, false
	}
	return f, true
}

// wrongEmailCode answers a code that is wrong, used or expired alike.
const wrongEmailCode = "That code didn't work. Check the latest email, or send a new code."

// enrolSendCode sends a code to set email codes up with (the sign-in's
// setup page and the account page alike) and shows the page that asks
// for it.
func (p *Provider) enrolSendCode(w http.ResponseWriter, r *http.Request, page enrolPage, user store.User, purpose string) {
	err := p.sendCode(r.Context(), user, purpose, mailTo(user))
	status, msg := p.sendAnswer(r.Context(), mailTo(user), err)
	if err == nil {
		p.audit(r.Context(), r, store.AuditEvent{Type: "email_code.sent", UserID: user.ID, Detail: `{"for":"setup"}`})
	}
	page.Error = msg
	page.EmailSent = p.codeSent(r.Context(), user, purpose)
	p.render(w, r, status, "enrol.html", page)
}

// mailFailed answers a code the mail server would not take.
const mailFailed = "The email could not be sent. Try again in a minute, or choose another method."

// retryEnrol shows the pending secret again after a wrong code (this is
// the answer to a POST; GET never shows a secret).
func (p *Provider) retryEnrol(w http.ResponseWriter, r *http.Request, user store.User, page enrolPage) {
	_, secret, err := p.pendingTOTP(r.Context(), user)
	if err != nil {
		page.Error = "Start the setup again."
		p.render(w, r, http.StatusBadRequest, "enrol.html", page)
		return
	}
	e, err := mfa.EnrolmentFor(p.issuer.Hostname(), user.Email, secret)
	if err == nil {
		page.Secret, page.URI, page.QR = e.Secret, e.URI, template.URL(e.QRPNG)
	}
	page.Error = "That code didn't work. Check the time on your phone and try the new code."
	p.render(w, r, http.StatusUnauthorized, "enrol.html", page)
}

func (p *Provider) showFlowCodes(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User, errMsg string) {
	codes, err := p.newRecoveryCodes(r.Context(), r, user)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
		return
	}
	p.render(w, r, http.StatusOK, "recovery_codes.html", codesPage{
		Action: "/login/recovery-codes", Codes: codes, Download: downloadLink(codes), Error: errMsg,
		Hidden: map[string]string{"flow": f.ID, "csrf": p.csrfToken("codes", f.ID)},
	})
}

// handleFlowCodesSubmit continues only once the user confirms they saved
// the codes (R07). Without the confirmation a new set is shown: the old
// one was displayed once and is voided.
func (p *Provider) handleFlowCodesSubmit(w http.ResponseWriter, r *http.Request) {
	f, user, ok := p.flowStep(w, r, "codes", store.FlowRecoveryCodes, false)
	if !ok {
		return
	}
	if r.PostForm.Get("saved") != "yes" {
		p.showFlowCodes(w, r, f, user, "Confirm that you saved the codes. These are new codes: the ones shown before no longer work.")
		return
	}
	// The new factor was set up after the password alone: when this
	// sign-in needs two factors, it is now presented like any other.
	if p.mfaNeeded(r.Context(), f, user) {
		p.advance(w, r, f, store.FlowSecondFactor)
		return
	}
	p.establish(w, r, f, user, f.Methods)
}

// handleFlowCodesPage: the codes are never shown again on a GET.
func (p *Provider) handleFlowCodesPage(w http.ResponseWriter, r *http.Request) {
	f, err := p.loadFlow(r, r.URL.Query().Get("flow"), store.FlowRecoveryCodes)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "recovery_codes.html", codesPage{
		Action: "/login/recovery-codes", Error: "Your recovery codes were shown once. Continue to get a new set.",
		Hidden: map[string]string{"flow": f.ID, "csrf": p.csrfToken("codes", f.ID)},
	})
}
