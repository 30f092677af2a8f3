package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/store"
)

// Throttling limits (R25, security.md §3.1). Every counter lives in the
// store, so they hold across replicas, and an attempt is counted before
// the secret is checked, so parallel requests cannot exceed them.
const (
	// PasswordLimit failures in a row per account (and for unknown
	// emails alike) lock password sign-in for PasswordLock.
	PasswordLimit = 10
	PasswordLock  = 15 * time.Minute
	// PasswordCap wrong passwords in a row, across lock periods, lock
	// password sign-in for the address typed until the password is
	// reset (by email code or by an admin) or an admin unlocks it:
	// NIST SP 800-63B §5.2.2 allows at most 100 (security.md S1).
	// Without it the lock periods let a guesser try 960 passwords a day
	// for ever.
	PasswordCap = 100
	// FlowFactorLimit tries at a second factor (or at confirming a new
	// one) are all a sign-in gets, whatever refused them; the next ends
	// it, and the password must be entered again.
	FlowFactorLimit = 5
	// AccountFactorLimit wrong codes in a row across sign-ins lock the
	// second factor for AccountFactorLock.
	AccountFactorLimit = 10
	AccountFactorLock  = 15 * time.Minute
	// AccountFactorCap wrong codes in a row, across lock periods, lock
	// the second factor until an admin unlocks it (NIST SP 800-63B
	// §5.2.2 allows at most 100).
	AccountFactorCap = 100
	// AddressLimit failed passwords or codes from one client address in
	// an hour lock that address out for AddressLock: spraying many
	// accounts from one place is throttled too. Successes do not count.
	AddressLimit = 300
	AddressLock  = 15 * time.Minute
)

var (
	passwordRule = store.Limit{Max: PasswordLimit, Lock: PasswordLock, Cap: PasswordCap}
	// The hard cap (security.md §3.1) counts wrong codes in a row across
	// every lock period; past it only an admin unlocks
	// (`twofold users unlock`).
	factorRule  = store.Limit{Max: AccountFactorLimit, Lock: AccountFactorLock, Cap: AccountFactorCap}
	addressRule = store.Limit{Max: AddressLimit, Lock: AddressLock, Window: time.Hour}
)

func (p *Provider) addressKey(r *http.Request) string { return "ip:" + p.ClientIP(r) }

// refundKey is the address key a success takes its attempt back from, or
// "" when the address limit is off.
func (p *Provider) refundKey(r *http.Request) string {
	if p.cfg.NoAddressThrottle {
		return ""
	}
	return p.addressKey(r)
}

// attempt reserves an attempt on the client's address (unless the
// address limit is off), then one under key: one store call, one
// statement on PostgreSQL. th is the refused attempt, or key's when both
// are allowed; byAddress says the address refused (then key was not
// counted).
func (p *Provider) attempt(ctx context.Context, r *http.Request, key string, lim store.Limit) (th store.Throttle, byAddress bool, err error) {
	tries := []store.Try{{Key: key, Limit: lim}}
	if !p.cfg.NoAddressThrottle {
		tries = []store.Try{{Key: p.addressKey(r), Limit: addressRule}, tries[0]}
	}
	ths, err := p.store.Attempts(ctx, p.now(), tries...)
	if err != nil {
		return store.Throttle{}, false, err
	}
	return ths[len(ths)-1], len(ths) < len(tries), nil
}

// Throttle keys: the password counter per email address and the second
// factor's counter per account (with its hard cap). A sign-in's own
// count is in its flow (FlowFactorLimit).
func passwordKey(emailKey string) string { return store.PasswordCounter(emailKey) }
func factorKey(userID string) string     { return store.FactorCounter(userID) }

// LockKeys are the keys an admin's unlock clears for a user.
func LockKeys(u store.User) []string {
	return []string{passwordKey(u.EmailKey), factorKey(u.ID)}
}

// FactorLockKey is the key of a user's second-factor counter (with its
// hard cap), which an admin's reset of the user's factors clears.
func FactorLockKey(u store.User) string { return factorKey(u.ID) }

// errUnmet is OIDC's answer when the requested authentication cannot be
// performed (OpenID Connect Core, errata: unmet_authentication_requirements).
var errUnmet = &fosite.RFC6749Error{
	ErrorField:       "unmet_authentication_requirements",
	DescriptionField: "The authorization server is unable to meet the requirements of the requested authentication.",
	CodeField:        http.StatusBadRequest,
}

// method is one way to pass the second step.
type method struct{ ID, Label string }

// methods lists what the user of f can present, safest first (R12):
// security keys, the authenticator app, codes by email, then recovery
// codes (R13).
func (p *Provider) methods(ctx context.Context, f store.LoginFlow) ([]method, error) {
	all, n, err := p.store.ListFactorsAndCodes(ctx, f.UserID)
	if err != nil {
		return nil, err
	}
	return p.offered(ctx, f, all, n), nil
}

// offered is methods from a user's factors and count of unused
// recovery codes. A sign-in whose client or request asks for MFA is not
// offered email codes, which are no second factor (mfa.Claims).
func (p *Provider) offered(ctx context.Context, f store.LoginFlow, all []store.Factor, codes int) []method {
	factors := slices.DeleteFunc(slices.Clone(all), func(f store.Factor) bool { return !f.Confirmed })
	var out []method
	if hasKeyFactor(factors) && p.webauthn != nil {
		out = append(out, method{"webauthn", "Security key or passkey"})
	}
	if slices.ContainsFunc(factors, func(f store.Factor) bool { return f.Kind == store.FactorTOTP }) {
		out = append(out, method{"totp", "Authenticator app"})
	}
	if hasEmailFactor(factors) && p.mailer != nil && !p.mfaAsked(ctx, f) {
		out = append(out, method{"email", "A code by email"})
	}
	if _, has := smsFactor(all); has && p.texter != nil {
		// Offered unconfirmed too: the step then says whom to ask (R09).
		out = append(out, method{"sms", "A code by text message"})
	}
	if codes > 0 {
		out = append(out, method{"recovery", "A recovery code"})
	}
	return out
}

func (p *Provider) confirmedFactors(ctx context.Context, userID string) ([]store.Factor, error) {
	all, err := p.store.ListFactors(ctx, userID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(f store.Factor) bool { return !f.Confirmed }), nil
}

type secondFactorPage struct {
	Flow, CSRF, Method, Error string
	Others                    []method
	Key                       keyOptions
	// EmailTo is the masked address of an email code; EmailSent says a
	// code for this sign-in is live.
	EmailTo   string
	EmailSent bool
	// PhoneMasked, SMSSent and PhoneUnconfirmed are the SMS step's.
	PhoneMasked               string
	SMSSent, PhoneUnconfirmed bool
}

func (p *Provider) handleSecondFactorPage(w http.ResponseWriter, r *http.Request) {
	f, err := p.loadFlow(r, r.URL.Query().Get("flow"), store.FlowSecondFactor)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	p.renderSecondFactor(w, r, http.StatusOK, f, r.URL.Query().Get("method"), "")
}

func (p *Provider) renderSecondFactor(w http.ResponseWriter, r *http.Request, status int, f store.LoginFlow, chosen, errMsg string) {
	ms, err := p.methods(r.Context(), f)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
		return
	}
	p.showSecondFactor(w, r, status, f, ms, chosen, errMsg)
}

// showSecondFactor renders the second step's page offering ms.
func (p *Provider) showSecondFactor(w http.ResponseWriter, r *http.Request, status int, f store.LoginFlow, ms []method, chosen, errMsg string) {
	if len(ms) == 0 {
		if p.mfaAsked(r.Context(), f) {
			// Only email codes, and the client asks for two factors:
			// it is told so honestly (R23).
			p.unmet(w, r, f, "The user has no second factor that meets the request: an email code is not one.")
			return
		}
		// The user's factors cannot be used here: codes by email or SMS
		// with no mail server or gateway configured.
		p.logger.WarnContext(r.Context(), "no second step can be offered: the user's factors need a mail server, an SMS gateway or WebAuthn (a host name) this server has not", "user", f.UserID)
		p.errorPage(w, r, http.StatusServiceUnavailable, "Your second step is not available",
			"It cannot be used on this server right now. Contact your administrator.", "")
		return
	}
	if !slices.ContainsFunc(ms, func(m method) bool { return m.ID == chosen }) {
		chosen = ms[0].ID
	}
	page := secondFactorPage{Flow: f.ID, CSRF: p.csrfToken("2fa", f.ID), Method: chosen, Error: errMsg}
	if chosen == "webauthn" || chosen == "email" || chosen == "sms" {
		user, err := p.store.GetUser(r.Context(), f.UserID)
		if err == nil && chosen == "webauthn" {
			page.Key, err = p.beginKeyLogin(r.Context(), user)
		}
		if err == nil && chosen == "email" {
			page.EmailTo = mfa.MaskEmail(user.Email)
			page.EmailSent = p.codeSent(r.Context(), user, flowPurpose(f.ID))
		}
		if err == nil && chosen == "sms" {
			var all []store.Factor
			if all, err = p.store.ListFactors(r.Context(), user.ID); err == nil {
				phone, _ := smsFactor(all)
				page.PhoneMasked, page.PhoneUnconfirmed = sms.Mask(phone.Phone), !phone.Confirmed
				page.SMSSent = p.codeSent(r.Context(), user, smsPurpose(flowPurpose(f.ID), phone.Phone))
			}
		}
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
			return
		}
	}
	for _, m := range ms {
		if m.ID != chosen {
			page.Others = append(page.Others, m)
		}
	}
	if err := p.pages.Render(w, status, "second_factor.html", page); err != nil {
		p.logger.ErrorContext(r.Context(), "render second factor", "err", err)
	}
}

// flowStep does what every POST of a signed-in-but-unfinished flow needs
// first: the form, its CSRF token for purpose, the flow in state (bound
// to this browser), and its user, still enabled, loaded together. With
// attempt the load counts one attempt in the flow (FlowFactorLimit). On
// failure it has written the answer.
func (p *Provider) flowStep(w http.ResponseWriter, r *http.Request, purpose, state string, attempt bool) (store.LoginFlow, store.User, bool) {
	if err := r.ParseForm(); err != nil {
		p.expired(w, r)
		return store.LoginFlow{}, store.User{}, false
	}
	id := r.PostForm.Get("flow")
	if !p.checkCSRF(purpose, id, r.PostForm.Get("csrf")) {
		p.errorPage(w, r, http.StatusForbidden, "This form has expired", "Reload the page and try again.", "csrf")
		return store.LoginFlow{}, store.User{}, false
	}
	var user store.User
	f, err := p.boundFlow(r, id, state, func(ctx context.Context) (f store.LoginFlow, err error) {
		f, user, err = p.store.LoginFlowUser(ctx, id, state, attempt)
		return f, err
	})
	if err != nil {
		p.flowFailed(w, r, err)
		return store.LoginFlow{}, store.User{}, false
	}
	if user.Disabled {
		p.expired(w, r)
		return store.LoginFlow{}, store.User{}, false
	}
	return f, user, true
}

func (p *Provider) expired(w http.ResponseWriter, r *http.Request) {
	p.errorPage(w, r, http.StatusBadRequest, "This sign-in link has expired", "Start again from the application you were signing in to.", "")
}

// flowFailed answers a flow that loadFlow or flowStep could not give:
// gone or not this browser's, or the database failed, when the same
// form may work again in a moment (security.md §3.11: a restart fails
// the step closed, and the sign-in resumes after it).
func (p *Provider) flowFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errFlow) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		p.expired(w, r)
		return
	}
	if errors.Is(err, context.Canceled) {
		p.logger.InfoContext(r.Context(), "login flow: the client went away", "err", err)
	} else {
		p.logger.ErrorContext(r.Context(), "login flow", "err", err)
	}
	p.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in failed", "Something went wrong on our side. Wait a moment, then try again.", "temporarily_unavailable")
}

// handleSecondFactorSubmit checks a TOTP, email or recovery code, or a
// security key (R11, R13), or sends an email code (R08).
func (p *Provider) handleSecondFactorSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.ParseForm() == nil {
		switch r.PostForm.Get("action") {
		case "send-email":
			p.sendSignInCode(w, r)
			return
		case "send-sms":
			p.sendSignInText(w, r)
			return
		}
	}
	// Loading the flow counts this attempt in it (FlowFactorLimit).
	f, user, ok := p.flowStep(w, r, "2fa", store.FlowSecondFactor, true)
	if !ok {
		return
	}
	if p.flowExhausted(w, r, f, user) {
		return
	}
	chosen := r.PostForm.Get("method")
	if ok, locked := p.factorAttempt(w, r, f, user); !ok {
		if locked != "" {
			p.renderSecondFactor(w, r, http.StatusTooManyRequests, f, chosen, locked)
		}
		return
	}
	amr, err := p.verifySecondFactor(ctx, r, f, user, chosen)
	if errors.Is(err, errUnavailable) {
		p.flowFailed(w, r, err)
		return
	}
	if err != nil {
		msg := "That code didn't work. Check it and try again."
		switch chosen {
		case "webauthn":
			msg = "That security key could not be verified. Try again, or try another way."
		case "email":
			msg = wrongEmailCode
		case "sms":
			msg = "That code didn't work. Check the latest text, or send a new code."
		}
		p.renderSecondFactor(w, r, http.StatusUnauthorized, f, chosen, msg)
		return
	}
	p.factorSucceeded(ctx, r, user)
	p.afterSecondStep(w, r, f, user, append(slices.Clone(f.Methods), amr...))
}

// sendSignInCode emails a code for this sign-in to a user who set email
// codes up. Sending checks nothing secret, so it is not counted as a
// try; the resend countdown limits it.
func (p *Provider) sendSignInCode(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, user, ok := p.flowStep(w, r, "2fa", store.FlowSecondFactor, false)
	if !ok {
		return
	}
	ms, err := p.methods(ctx, f)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
		return
	}
	if !slices.ContainsFunc(ms, func(m method) bool { return m.ID == "email" }) {
		p.showSecondFactor(w, r, http.StatusBadRequest, f, ms, "", notAvailable)
		return
	}
	err = p.sendCode(ctx, user, flowPurpose(f.ID), mailTo(user))
	status, msg := p.sendAnswer(ctx, mailTo(user), err)
	if err == nil {
		p.audit(ctx, r, store.AuditEvent{Type: "email_code.sent", UserID: user.ID, ClientID: f.ClientID, Detail: `{"for":"sign-in"}`})
	}
	p.showSecondFactor(w, r, status, f, ms, "email", msg)
}

// cappedMessage answers a try past AccountFactorCap: no time opens it.
const cappedMessage = "Too many wrong codes: this account's two-step verification is locked. Ask your administrator to unlock it."

func lockedMessage(t time.Time) string {
	return fmt.Sprintf("Too many wrong codes. Try again after %s UTC.", t.UTC().Format("15:04"))
}

// flowExhausted ends the sign-in once its attempts are past
// FlowFactorLimit: the password must be entered again. True when it did
// (the answer is written).
func (p *Provider) flowExhausted(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User) bool {
	if f.Failures <= FlowFactorLimit {
		return false
	}
	ctx := r.Context()
	_ = p.store.DeleteLoginFlow(ctx, f.ID)
	p.clearCookie(w, flowCookie)
	p.audit(ctx, r, store.AuditEvent{Type: "factor.throttled", UserID: user.ID, ClientID: f.ClientID, Detail: `{"scope":"flow"}`})
	p.errorPage(w, r, http.StatusTooManyRequests, "Too many tries", "This sign-in has ended. Start again from the application, and enter your password again.", "")
	return true
}

// attemptInFlow counts one attempt in the flow for a step that loads the
// flow before it knows whether a code follows (enrolment). False when
// the answer is written.
func (p *Provider) attemptInFlow(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User) (store.LoginFlow, bool) {
	got, err := p.store.AttemptLoginFlow(r.Context(), f.ID, f.State)
	if err != nil {
		p.expired(w, r)
		return f, false
	}
	return got, !p.flowExhausted(w, r, got, user)
}

// factorAttempt reserves one second-factor attempt on the client's
// address and on the account (the flow's own count is taken when it is
// loaded). When refused, ok is false and either locked says until when
// (the caller shows it) or the response has been written (the store
// failed).
func (p *Provider) factorAttempt(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User) (ok bool, locked string) {
	ctx := r.Context()
	th, byAddress, err := p.attempt(ctx, r, factorKey(user.ID), factorRule)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Please try again.", "server_error")
		return false, ""
	}
	if byAddress {
		p.audit(ctx, r, store.AuditEvent{Type: "factor.throttled", UserID: user.ID, ClientID: f.ClientID, Detail: `{"scope":"address"}`})
		return false, lockedMessage(th.RetryAt)
	}
	if th.Capped {
		p.audit(ctx, r, store.AuditEvent{Type: "factor.throttled", UserID: user.ID, ClientID: f.ClientID, Detail: `{"scope":"cap"}`})
		return false, cappedMessage
	}
	if !th.Allowed {
		p.audit(ctx, r, store.AuditEvent{Type: "factor.throttled", UserID: user.ID, ClientID: f.ClientID,
			Detail: fmt.Sprintf(`{"scope":"account","retry_at":%q}`, th.RetryAt.UTC().Format(time.RFC3339))})
		return false, lockedMessage(th.RetryAt)
	}
	return true, ""
}

func (p *Provider) factorSucceeded(ctx context.Context, r *http.Request, user store.User) {
	_ = p.store.Success(ctx, p.refundKey(r), factorKey(user.ID))
}

var (
	errWrongCode = errors.New("wrong code")
	// errUnavailable: the database failed while a right code was being
	// used; the same code may work in a moment.
	errUnavailable = errors.New("store unavailable")
)

// verifySecondFactor checks code by method and returns the amr value of
// what was presented. Every outcome is audited.
func (p *Provider) verifySecondFactor(ctx context.Context, r *http.Request, f store.LoginFlow, user store.User, chosen string) ([]string, error) {
	code := r.PostForm.Get("code")
	switch chosen {
	case "webauthn":
		amr, err := p.verifyKey(ctx, r, user, f.ClientID, r.PostForm.Get("ceremony"), r.PostForm.Get("credential"))
		if err != nil {
			p.logger.InfoContext(ctx, "security key refused", "err", err)
			p.audit(ctx, r, store.AuditEvent{Type: "factor.failure", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"webauthn"}`})
			return nil, errWrongCode
		}
		return amr, nil
	case "sms":
		return p.verifyText(ctx, r, f, user, code)
	case "email":
		factors, err := p.confirmedFactors(ctx, user.ID)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(factors, func(fa store.Factor) bool { return fa.Kind == store.FactorEmail })
		if i >= 0 && !p.mfaAsked(ctx, f) && p.useCode(ctx, user, flowPurpose(f.ID), code) == nil {
			if err := p.store.TouchFactor(ctx, factors[i].ID, p.now()); err != nil {
				p.logger.WarnContext(ctx, "record factor use", "err", err)
			}
			p.audit(ctx, r, store.AuditEvent{Type: "factor.success", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"email"}`})
			return []string{mfa.AMREmail}, nil
		}
		p.audit(ctx, r, store.AuditEvent{Type: "factor.failure", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"email"}`})
		return nil, errWrongCode
	case "recovery":
		hash, ok := p.recovery.Hash(code)
		if ok {
			if mailed, err := p.store.UseRecoveryCode(ctx, user.ID, hash, p.now()); err == nil {
				left, _ := p.store.CountRecoveryCodes(ctx, user.ID)
				p.audit(ctx, r, store.AuditEvent{Type: "recovery_code.used", UserID: user.ID, ClientID: f.ClientID,
					Detail: fmt.Sprintf(`{"left":%d,"mailed":%t}`, left, mailed)})
				if mailed {
					// A code an admin mailed (R20) rests on the mailbox:
					// worth an email code, not a second factor (S12), and
					// no answer to a client that asks for two factors.
					if p.mfaAsked(ctx, f) {
						return nil, errWrongCode
					}
					return []string{mfa.AMREmail}, nil
				}
				return []string{mfa.AMRRecovery}, nil
			}
		}
		p.audit(ctx, r, store.AuditEvent{Type: "factor.failure", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"recovery"}`})
		return nil, errWrongCode
	case "totp", "": // "": a form from before methods were named
		factors, err := p.confirmedFactors(ctx, user.ID)
		if err != nil {
			return nil, err
		}
		code = mfa.NormalizeCode(code)
		for _, fa := range factors {
			if fa.Kind != store.FactorTOTP {
				continue
			}
			secret, err := p.box.Open(fa.SecretEnc, "totp:"+fa.ID)
			if err != nil {
				p.logger.ErrorContext(ctx, "open totp secret", "factor", fa.ID, "err", err)
				continue
			}
			step, ok := mfa.CheckTOTP(string(secret), code, p.now(), fa.LastStep)
			if !ok {
				if _, seen := mfa.CheckTOTP(string(secret), code, p.now(), 0); seen {
					// Right code, already used: a replay (RFC 6238 §5.2).
					p.audit(ctx, r, store.AuditEvent{Type: "factor.replay", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"totp"}`})
					return nil, errWrongCode
				}
				continue
			}
			// The database decides: a step already used, here or on
			// another replica, is a replay.
			if err := p.store.UseTOTPStep(ctx, fa.ID, step, p.now()); errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				p.audit(ctx, r, store.AuditEvent{Type: "factor.replay", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"totp"}`})
				return nil, errWrongCode
			} else if err != nil {
				// The database failed, not the code: try again later.
				return nil, fmt.Errorf("%w: %w", errUnavailable, err)
			}
			p.audit(ctx, r, store.AuditEvent{Type: "factor.success", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"totp"}`})
			return []string{mfa.AMROTP}, nil
		}
		p.audit(ctx, r, store.AuditEvent{Type: "factor.failure", UserID: user.ID, ClientID: f.ClientID, Detail: `{"method":"totp"}`})
		return nil, errWrongCode
	default:
		// No such method: never read as another (security.md §3.3).
		p.audit(ctx, r, store.AuditEvent{Type: "factor.failure", UserID: user.ID, ClientID: f.ClientID, Detail: jsonObject("method", "unknown")})
		return nil, errWrongCode
	}
}

// establish writes the SSO session once every required step is done
// (R01: no session before), with a new id, and moves the flow on.
func (p *Provider) establish(w http.ResponseWriter, r *http.Request, f store.LoginFlow, user store.User, methods []string) {
	ctx := r.Context()
	if p.notConsoleUser(w, r, f, user) {
		return
	}
	amr, acr := mfa.Claims(methods)
	now := p.now().UTC()
	cookie := randomToken()
	sess := store.Session{
		ID: sessionID(cookie), UserID: user.ID, AMR: amr, ACR: acr,
		AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(p.cfg.SessionLifespan), Upstream: f.Upstream,
	}
	if f.Upstream != "" && f.AuthTime != nil && f.SessionID == "" {
		// When the user authenticated is the upstream's to say (R03).
		sess.AuthTime = f.AuthTime.UTC()
	}
	if f.SessionID != "" {
		// A step-up builds on an existing session: it must still be
		// live (not signed out meanwhile), and it keeps that session's
		// absolute lifetime rather than starting a new one.
		old, err := p.store.GetSession(ctx, f.SessionID)
		if err != nil || old.UserID != user.ID || !now.Before(old.ExpiresAt) {
			p.expired(w, r)
			return
		}
		sess.CreatedAt, sess.ExpiresAt = old.CreatedAt, old.ExpiresAt
	}
	next := store.FlowDone
	form, _ := url.ParseQuery(f.AuthorizeForm)
	if f.ClientID != "" && p.consentNeeded(ctx, f.ClientID, user.ID, form) {
		next = store.FlowConsent
	}
	from := f.State
	f.State, f.UserID, f.SessionID, f.Methods = next, user.ID, sess.ID, store.Strings(methods)
	err := p.store.InTx(ctx, func(ctx context.Context) error {
		// An admin's sign-out of the user meanwhile waits, then ends
		// this session too.
		if err := p.store.LockUser(ctx, user.ID); err != nil {
			return err
		}
		if old := p.cookie(r, sessionCookie); old != "" {
			if err := p.store.DeleteSession(ctx, sessionID(old)); err != nil {
				return err
			}
		}
		if err := p.store.CreateSession(ctx, sess); err != nil {
			return err
		}
		return p.store.UpdateLoginFlow(ctx, f, from)
	})
	if errors.Is(err, store.ErrConflict) {
		// The same form was submitted twice; only one counts.
		p.logger.InfoContext(ctx, "sign-in step refused", "err", err)
		p.errorPage(w, r, http.StatusConflict, "This sign-in link has expired", "Start again from the application you were signing in to.", "")
		return
	}
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	p.setCookie(w, sessionCookie, cookie, sess.ExpiresAt.Sub(now))
	detail := jsonObject("amr", amr)
	if f.Upstream != "" {
		b, _ := json.Marshal(map[string]any{"amr": amr, "upstream": f.Upstream})
		detail = string(b)
	}
	p.audit(ctx, r, store.AuditEvent{Type: "login.success", UserID: user.ID, ClientID: f.ClientID, Detail: detail})
	p.continueFlow(w, r, f, sess, user)
}

// advance moves a flow to its next state without a session yet (the
// password was right but a second step remains).
func (p *Provider) advance(w http.ResponseWriter, r *http.Request, f store.LoginFlow, next string) {
	if _, err := p.move(r.Context(), f, next); err != nil {
		p.flowFailed(w, r, err)
		return
	}
	http.Redirect(w, r, flowPage(next)+"?flow="+url.QueryEscape(f.ID), http.StatusSeeOther)
}

// move puts the flow in state next, if it is still in its state (else
// ErrConflict), with a new count of tries (FlowFactorLimit).
func (p *Provider) move(ctx context.Context, f store.LoginFlow, next string) (store.LoginFlow, error) {
	from := f.State
	f.State, f.Failures = next, 0
	return f, p.store.UpdateLoginFlow(ctx, f, from)
}

// flowPage is where each state is served.
func flowPage(state string) string {
	switch state {
	case store.FlowSecondFactor:
		return "/login/2fa"
	case store.FlowEnrol:
		return "/login/enrol"
	case store.FlowRecoveryCodes:
		return "/login/recovery-codes"
	case store.FlowPasswordChange:
		return "/login/password"
	case store.FlowConsent:
		return "/consent"
	}
	return "/login"
}

// mfaNeeded says whether this sign-in must include a second step: the
// user's flag or their population's policy past its grace period (R15,
// R17), the client's registration, or the request (R23).
func (p *Provider) mfaNeeded(ctx context.Context, f store.LoginFlow, user store.User) bool {
	return mfa.RequiredNow(user, p.policies(ctx), p.now()) || p.mfaAsked(ctx, f)
}

// mfaAsked says whether the client of f, by its registration or its
// request, or the admin console, asks for two factors (R23, S20): then only a true second factor
// will do, not a code by email.
func (p *Provider) mfaAsked(ctx context.Context, f store.LoginFlow) bool {
	if f.ClientID == "" {
		form, _ := url.ParseQuery(f.AuthorizeForm)
		return consoleFlow(f) || wantsMFA(form) // the account page's two-factor sign-in
	}
	if c, err := p.client(ctx, f.ClientID); err == nil && c.RequireMFA {
		return true
	}
	form, _ := url.ParseQuery(f.AuthorizeForm)
	return wantsMFA(form)
}

func wantsMFA(form url.Values) bool {
	return mfa.WantsMFA(form.Get("acr_values"), essentialACR(form.Get("claims")))
}

// startTOTP replaces any pending enrolment with a fresh secret, sealed.
func (p *Provider) startTOTP(ctx context.Context, user store.User) (mfa.TOTPEnrolment, error) {
	e, err := mfa.NewTOTP(p.issuer.Hostname(), user.Email)
	if err != nil {
		return e, err
	}
	id := accounts.NewID()
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.DeleteUnconfirmedFactors(ctx, user.ID); err != nil {
			return err
		}
		return p.store.CreateFactor(ctx, store.Factor{ID: id, UserID: user.ID, Kind: store.FactorTOTP,
			Name: "Authenticator app", SecretEnc: p.box.Seal([]byte(e.Secret), "totp:"+id), CreatedAt: p.now().UTC()})
	})
	return e, err
}

// pendingTOTP returns the user's unconfirmed TOTP factor and its secret.
func (p *Provider) pendingTOTP(ctx context.Context, user store.User) (store.Factor, string, error) {
	all, err := p.store.ListFactors(ctx, user.ID)
	if err != nil {
		return store.Factor{}, "", err
	}
	for _, f := range all {
		if !f.Confirmed && f.Kind == store.FactorTOTP {
			secret, err := p.box.Open(f.SecretEnc, "totp:"+f.ID)
			return f, string(secret), err
		}
	}
	return store.Factor{}, "", store.ErrNotFound
}

// confirmTOTP turns the pending secret on with a correct code (R05), and
// records the code's step so it cannot be used again at sign-in.
func (p *Provider) confirmTOTP(ctx context.Context, r *http.Request, user store.User, code string) (bool, error) {
	f, secret, err := p.pendingTOTP(ctx, user)
	if err != nil {
		return false, err
	}
	step, ok := mfa.CheckTOTP(secret, mfa.NormalizeCode(code), p.now(), 0)
	if !ok {
		p.audit(ctx, r, store.AuditEvent{Type: "enrolment.failure", UserID: user.ID, Detail: `{"method":"totp"}`})
		return false, nil
	}
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.ConfirmFactor(ctx, f.ID, p.now()); err != nil {
			return err
		}
		return p.store.UseTOTPStep(ctx, f.ID, step, p.now())
	})
	if err != nil {
		return false, err
	}
	p.audit(ctx, r, store.AuditEvent{Type: "factor.enrolled", UserID: user.ID, Detail: `{"method":"totp"}`})
	return true, nil
}

// newRecoveryCodes makes a new set, voiding the old one (R07), and
// returns the codes to show once.
func (p *Provider) newRecoveryCodes(ctx context.Context, r *http.Request, user store.User) ([]string, error) {
	codes := mfa.NewRecoveryCodes()
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		hashes[i], _ = p.recovery.Hash(c)
	}
	if err := p.store.ReplaceRecoveryCodes(ctx, user.ID, hashes, false, p.now()); err != nil {
		return nil, err
	}
	p.audit(ctx, r, store.AuditEvent{Type: "recovery_codes.generated", UserID: user.ID})
	return codes, nil
}

// essentialACR reads an essential acr request from the claims parameter
// (OIDC Core §5.5.1.1): the values allowed, or nil.
func essentialACR(claims string) []string {
	if claims == "" {
		return nil
	}
	// Member by member, as the names are written: encoding/json would
	// match struct fields case-insensitively ("ESSENTIAL").
	var top, idToken, acr map[string]json.RawMessage
	var essential bool
	if json.Unmarshal([]byte(claims), &top) != nil || json.Unmarshal(top["id_token"], &idToken) != nil ||
		json.Unmarshal(idToken["acr"], &acr) != nil || json.Unmarshal(acr["essential"], &essential) != nil || !essential {
		return nil
	}
	var value string
	var values []string
	if v, ok := acr["value"]; ok && json.Unmarshal(v, &value) != nil {
		return nil
	}
	if v, ok := acr["values"]; ok && json.Unmarshal(v, &values) != nil {
		return nil
	}
	if value != "" {
		return append([]string{value}, values...)
	}
	return values
}

// jsonObject encodes one key and value as a JSON object, for audit details.
func jsonObject(k string, v any) string {
	b, _ := json.Marshal(map[string]any{k: v})
	return string(b)
}
