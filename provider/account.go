package provider

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/store"
)

// RecentAuth is how fresh a sign-in must be to change second factors or
// see new recovery codes; older sessions are asked to sign in again.
const RecentAuth = 5 * time.Minute

type factorView struct {
	ID, Label, Created, LastUsed string
}

// viewOf is how a factor is listed: its name (a phone's masked
// number), when it was added and last used.
func viewOf(f store.Factor) factorView {
	v := factorView{ID: f.ID, Label: f.Name, Created: f.CreatedAt.UTC().Format("2 Jan 2006")}
	if f.Kind == store.FactorSMS {
		v.Label = "Phone " + sms.Mask(f.Phone)
	}
	if f.LastUsedAt != nil {
		v.LastUsed = f.LastUsedAt.UTC().Format("2 Jan 2006 15:04 UTC")
	}
	return v
}

type accountPage struct {
	Email, CSRF, Notice, Error string
	Enabled, Required          bool
	Admin                      bool // a link to the admin console
	Factors                    []factorView
	CodesLeft                  int
	// Kinds the user may add (R10); email codes and a phone only once.
	Kinds setupKinds
	// PendingPhone is a number an admin attached and nobody confirmed
	// (R09), masked; PendingNumber is it in full, for the form that
	// confirms it (its owner's own page).
	PendingPhone, PendingNumber string
	// Upstream is the upstream this session signed in through: its
	// password is kept there, and no form to change one is shown.
	Upstream  string
	MinLength int // of a new password
}

// notices are the fixed messages a redirect can ask the page to show.
var notices = map[string]string{
	"enabled":     "Two-step verification is on.",
	"removed":     "The method was removed.",
	"disabled":    "Two-step verification is off.",
	"reauthed":    "Thanks: you can change your settings for the next few minutes.",
	"codes-saved": "Keep your recovery codes somewhere safe.",
	"key-added":   "Your security key was added.",
	"email-added": "Codes by email are on.",
	"phone-added": "Codes by text message are on.",
	"password":    "Your password was changed, and you were signed out on your other devices.",
}

// handleAccountPage is /account/security (R14, R18): the user's methods
// and what they can change. Without a session it starts a sign-in that
// returns here.
func (p *Provider) handleAccountPage(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.currentSession(r)
	if !ok {
		p.startSignIn(w, r, "", "", false)
		return
	}
	p.renderAccount(w, r, http.StatusOK, sess, user, notices[r.URL.Query().Get("notice")], "")
}

func (p *Provider) renderAccount(w http.ResponseWriter, r *http.Request, status int, sess store.Session, user store.User, notice, errMsg string) {
	ctx := r.Context()
	all, err := p.store.ListFactors(ctx, user.ID)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	factors := slices.DeleteFunc(slices.Clone(all), func(f store.Factor) bool { return !f.Confirmed })
	left, _ := p.store.CountRecoveryCodes(ctx, user.ID)
	page := accountPage{Email: user.Email, CSRF: p.csrfToken("account", sess.ID), Notice: notice, Error: errMsg,
		Enabled: len(factors) > 0, Required: p.required(ctx, user), CodesLeft: left, Admin: user.Role == store.RoleAdmin,
		Upstream: sess.Upstream, MinLength: p.accounts.MinPasswordLen}
	page.Kinds = p.allowedMethods(ctx, user)
	if page.Kinds.none() && page.Error == "" {
		page.Error = noMethod
	}
	page.Kinds.Email = page.Kinds.Email && !hasEmailFactor(factors)
	if phone, has := smsFactor(all); has {
		// A confirmed phone is read-only; one an admin attached can be
		// confirmed here by its code (or replaced by a proven number).
		page.Kinds.SMS = page.Kinds.SMS && !phone.Confirmed
		if !phone.Confirmed {
			page.PendingPhone, page.PendingNumber = sms.Mask(phone.Phone), phone.Phone
		}
	}
	for _, f := range factors {
		v := viewOf(f)
		if f.Kind == store.FactorSMS {
			v.Label += " ✓ confirmed" // read-only: remove it to use another (R09)
		}
		page.Factors = append(page.Factors, v)
	}
	p.render(w, r, status, "account.html", page)
}

// startSignIn begins a sign-in without a client, for the account page
// or the admin console (returnTo, consolePath or ""). With userID set it
// is a re-authentication: only that user may complete it.
func (p *Provider) startSignIn(w http.ResponseWriter, r *http.Request, userID, returnTo string, twoFactors bool) {
	now := p.now().UTC()
	f := store.LoginFlow{ID: randomToken(), State: store.FlowPassword, UserID: userID,
		CreatedAt: now, ExpiresAt: now.Add(p.cfg.LoginFlowLifespan)}
	// A flow without a client keeps no authorize request: its form holds
	// where the sign-in returns to, and whether it must end with two
	// factors (mfaAsked).
	form := url.Values{}
	if returnTo != "" {
		form.Set("return_to", returnTo)
	}
	if twoFactors {
		form.Set("acr_values", mfa.ACRMFA)
	}
	f.AuthorizeForm = form.Encode()
	if err := p.store.CreateLoginFlow(r.Context(), f); err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	p.setCookie(w, flowCookie, f.ID, p.cfg.LoginFlowLifespan)
	http.Redirect(w, r, "/login?flow="+url.QueryEscape(f.ID), http.StatusSeeOther)
}

// twoFactorsNeeded says whether a change on the account page needs a
// new sign-in with two factors first: the user has a true second factor
// (not codes by email) from before this session's sign-in, and this
// session did not present it (S20; security.md §3.3, §3.5). A sign-in
// with the password and an email code, or through an upstream that
// skipped the local factor, must not add the factor that would then
// pass for a second one, nor remove one.
// Where an admin mailed the user's recovery codes (R20), the mailbox is
// the way back in by the admin's choice, and such a session may set a
// method up again.
func (p *Provider) twoFactorsNeeded(ctx context.Context, sess store.Session, user store.User) (bool, error) {
	if mfa.IsMFA(sess.AMR) {
		return false, nil
	}
	// A factor this session set up itself is its own: asking the session
	// to present it again would protect nothing.
	fs, err := p.confirmedFactors(ctx, user.ID)
	if err != nil || !slices.ContainsFunc(fs, func(f store.Factor) bool {
		return f.Kind != store.FactorEmail && !f.CreatedAt.After(sess.AuthTime)
	}) {
		return false, err
	}
	mailed, err := p.store.RecoveryCodesMailed(ctx, user.ID)
	return !mailed, err
}

// consoleFlow tells a sign-in for the admin console, which must end
// with two factors (S20).
func consoleFlow(f store.LoginFlow) bool {
	if f.ClientID != "" {
		return false
	}
	form, _ := url.ParseQuery(f.AuthorizeForm)
	return form.Get("return_to") == consolePath
}

// handleAccountSubmit performs one change. Every change needs the CSRF
// token bound to the session, and all but confirming a new factor need a
// recent sign-in.
func (p *Provider) handleAccountSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, user, ok := p.currentSession(r)
	if !ok {
		p.startSignIn(w, r, "", "", false)
		return
	}
	if err := r.ParseForm(); err != nil || !p.checkCSRF("account", sess.ID, r.PostForm.Get("csrf")) {
		p.errorPage(w, r, http.StatusForbidden, "This form has expired", "Reload the page and try again.", "csrf")
		return
	}
	action := r.PostForm.Get("action")
	twoFactors := false
	if action != "saved-codes" { // only saved-codes changes nothing
		var err error
		if twoFactors, err = p.twoFactorsNeeded(ctx, sess, user); err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
			return
		}
	}
	if action == "reauth" {
		p.startSignIn(w, r, user.ID, "", twoFactors)
		return
	}
	if action != "saved-codes" && (p.now().Sub(sess.AuthTime) > RecentAuth || twoFactors) {
		page := map[string]any{"CSRF": p.csrfToken("account", sess.ID), "TwoFactors": twoFactors}
		p.render(w, r, http.StatusOK, "reauth.html", page)
		return
	}
	if msg := p.refusal(ctx, user, action); msg != "" {
		p.renderAccount(w, r, http.StatusForbidden, sess, user, "", msg)
		return
	}
	hidden := map[string]string{"csrf": p.csrfToken("account", sess.ID)}
	switch action {
	case "start-totp":
		e, err := p.startTOTP(ctx, user)
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		p.render(w, r, http.StatusOK, "enrol.html", enrolPage{Action: "/account/security", Hidden: hidden, setupKinds: setupKinds{TOTP: true},
			Secret: e.Secret, URI: e.URI, QR: template.URL(e.QRPNG)})
	case "confirm-totp":
		before, err := p.confirmedFactors(ctx, user.ID)
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		if !p.accountAttempt(w, r, sess, user) {
			return
		}
		ok, err := p.confirmTOTP(ctx, r, user, r.PostForm.Get("code"))
		if errors.Is(err, store.ErrConflict) {
			http.Redirect(w, r, "/account/security?notice=enabled", http.StatusSeeOther) // sent twice
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			p.renderAccount(w, r, http.StatusBadRequest, sess, user, "", "Start the setup again.")
			return
		}
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		if !ok {
			p.retryEnrol(w, r, user, enrolPage{Action: "/account/security", Hidden: hidden, setupKinds: p.allowedMethods(ctx, user)})
			return
		}
		_ = p.store.ResetThrottle(ctx, factorKey(user.ID))
		if len(before) > 0 {
			http.Redirect(w, r, "/account/security?notice=enabled", http.StatusSeeOther)
			return
		}
		// The first method: recovery codes come with it (R07).
		p.showAccountCodes(w, r, user, hidden)
	case "start-webauthn":
		k, err := p.beginRegistration(ctx, user, keyName(r.PostForm.Get("name")))
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		p.render(w, r, http.StatusOK, "webauthn_register.html", registerPage{Action: "/account/security", Key: k, Hidden: hidden})
	case "finish-webauthn":
		before, err := p.confirmedFactors(ctx, user.ID)
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		if _, err := p.finishRegistration(ctx, r, user, r.PostForm.Get("ceremony"), r.PostForm.Get("credential")); err != nil {
			p.logger.InfoContext(ctx, "key registration refused", "err", err)
			p.renderAccount(w, r, http.StatusBadRequest, sess, user, "", "The security key could not be registered. Try again.")
			return
		}
		if len(before) > 0 {
			http.Redirect(w, r, "/account/security?notice=key-added", http.StatusSeeOther)
			return
		}
		p.showAccountCodes(w, r, user, hidden)
	case "start-email":
		p.enrolSendCode(w, r, enrolPage{Action: "/account/security", Hidden: hidden, setupKinds: setupKinds{Email: true},
			EmailTo: mfa.MaskEmail(user.Email)}, user, accountPurpose(sess.ID))
	case "confirm-email":
		before, err := p.confirmedFactors(ctx, user.ID)
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		if !p.accountAttempt(w, r, sess, user) {
			return
		}
		ok, err := p.confirmEmail(ctx, r, user, accountPurpose(sess.ID), r.PostForm.Get("code"))
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
			return
		}
		if !ok {
			page := enrolPage{Action: "/account/security", Hidden: hidden, setupKinds: setupKinds{Email: true},
				EmailTo: mfa.MaskEmail(user.Email), Error: wrongEmailCode}
			page.EmailSent = p.codeSent(ctx, user, accountPurpose(sess.ID))
			p.render(w, r, http.StatusUnauthorized, "enrol.html", page)
			return
		}
		_ = p.store.ResetThrottle(ctx, factorKey(user.ID))
		if len(before) > 0 {
			http.Redirect(w, r, "/account/security?notice=email-added", http.StatusSeeOther)
			return
		}
		p.showAccountCodes(w, r, user, hidden)
	case "start-sms", "confirm-sms":
		p.setupSMS(w, r, user, action, smsSetup{
			page:    enrolPage{Action: "/account/security", Hidden: hidden, setupKinds: setupKinds{SMS: true}},
			purpose: accountPurpose(sess.ID),
			attempt: func() bool { return p.accountAttempt(w, r, sess, user) },
			done: func(first bool) {
				_ = p.store.ResetThrottle(ctx, factorKey(user.ID))
				if !first {
					http.Redirect(w, r, "/account/security?notice=phone-added", http.StatusSeeOther)
					return
				}
				p.showAccountCodes(w, r, user, hidden) // the first method: recovery codes come with it (R07)
			},
			refuse: func(status int, msg string) { p.renderAccount(w, r, status, sess, user, "", msg) },
		})
	case "saved-codes":
		http.Redirect(w, r, "/account/security?notice=codes-saved", http.StatusSeeOther)
	case "regenerate-codes":
		factors, _ := p.confirmedFactors(ctx, user.ID)
		if len(factors) == 0 {
			p.renderAccount(w, r, http.StatusBadRequest, sess, user, "", "Turn on two-step verification first.")
			return
		}
		p.showAccountCodes(w, r, user, hidden)
	case "remove-factor":
		p.removeFactor(w, r, sess, user, r.PostForm.Get("factor"))
	case "change-password":
		p.changePassword(w, r, sess, user)
	case "disable":
		if p.required(r.Context(), user) {
			p.renderAccount(w, r, http.StatusForbidden, sess, user, "", "Your administrator requires two-step verification: it cannot be turned off.")
			return
		}
		err := p.store.InTx(ctx, func(ctx context.Context) error {
			factors, err := p.store.ListFactors(ctx, user.ID)
			if err != nil {
				return err
			}
			for _, f := range factors {
				if err := p.store.DeleteFactor(ctx, user.ID, f.ID); err != nil {
					return err
				}
			}
			if err := p.store.DeleteRecoveryCodes(ctx, user.ID); err != nil {
				return err
			}
			return p.signOutElsewhere(ctx, user.ID, sess)
		})
		if err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
			return
		}
		p.audit(ctx, r, store.AuditEvent{Type: "mfa.disabled", UserID: user.ID, ActorID: user.ID})
		http.Redirect(w, r, "/account/security?notice=disabled", http.StatusSeeOther)
	default:
		p.renderAccount(w, r, http.StatusBadRequest, sess, user, "", "Unknown action.")
	}
}

// accountAttempt counts a code's try on the account page against the
// account's second-factor counter. False when refused (the answer is
// written).
func (p *Provider) accountAttempt(w http.ResponseWriter, r *http.Request, sess store.Session, user store.User) bool {
	th, err := p.store.Attempt(r.Context(), factorKey(user.ID), factorRule, p.now())
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Setup failed", "Please try again.", "server_error")
		return false
	}
	if !th.Allowed {
		msg := lockedMessage(th.RetryAt)
		if th.Capped {
			msg = cappedMessage
		}
		p.renderAccount(w, r, http.StatusTooManyRequests, sess, user, "", msg)
		return false
	}
	return true
}

func (p *Provider) showAccountCodes(w http.ResponseWriter, r *http.Request, user store.User, hidden map[string]string) {
	codes, err := p.newRecoveryCodes(r.Context(), r, user)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	p.render(w, r, http.StatusOK, "recovery_codes.html", codesPage{Action: "/account/security", Codes: codes,
		Download: downloadLink(codes), Hidden: hidden})
}

// removeFactor deletes one method (R13, R18). While 2FA is required for
// the user, the last method cannot go: a lost one is replaced first.
func (p *Provider) removeFactor(w http.ResponseWriter, r *http.Request, sess store.Session, user store.User, id string) {
	ctx := r.Context()
	all, err := p.store.ListFactors(ctx, user.ID)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	factors := slices.DeleteFunc(slices.Clone(all), func(f store.Factor) bool { return !f.Confirmed })
	found := false
	for _, f := range factors {
		found = found || f.ID == id
	}
	if !found {
		p.renderAccount(w, r, http.StatusNotFound, sess, user, "", "That method does not exist.")
		return
	}
	if len(factors) == 1 && p.required(ctx, user) {
		p.renderAccount(w, r, http.StatusForbidden, sess, user, "", "Your administrator requires two-step verification: add another method before removing this one.")
		return
	}
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.DeleteFactor(ctx, user.ID, id); err != nil {
			return err
		}
		if len(factors) == 1 {
			if err := p.store.DeleteRecoveryCodes(ctx, user.ID); err != nil { // 2FA is off: codes go too
				return err
			}
		}
		return p.signOutElsewhere(ctx, user.ID, sess)
	})
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	p.audit(ctx, r, store.AuditEvent{Type: "factor.removed", UserID: user.ID, ActorID: user.ID, Detail: jsonObject("factor", id)})
	http.Redirect(w, r, "/account/security?notice=removed", http.StatusSeeOther)
}

var errChanged = errors.New("the account changed meanwhile")

// changePassword replaces the user's password when they know the
// current one (ASVS 6.2.3; S20: on a recent sign-in, which had their
// second factor), and signs them out everywhere else (ASVS 7.4.3). The
// current password is checked under the sign-in's limits: a stolen
// session cannot guess it faster than the login page could.
func (p *Provider) changePassword(w http.ResponseWriter, r *http.Request, sess store.Session, user store.User) {
	ctx := r.Context()
	refuse := func(status int, msg string) { p.renderAccount(w, r, status, sess, user, "", msg) }
	if sess.Upstream != "" {
		refuse(http.StatusForbidden, "You signed in through "+sess.Upstream+": your password is kept there.")
		return
	}
	current, pw := r.PostForm.Get("current"), r.PostForm.Get("password")
	// The new password's own checks first: they reveal nothing, and a
	// typing slip in it should not count as a wrong current password.
	if msg := p.newPasswordProblem(r.PostForm, user.Email); msg != "" {
		refuse(http.StatusBadRequest, msg)
		return
	}
	throttleKey := passwordKey(user.EmailKey)
	th, _, err := p.attempt(ctx, r, throttleKey, passwordRule)
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return
	}
	if th.Capped {
		refuse(http.StatusTooManyRequests, "Too many wrong passwords: password sign-in is locked for your account. Sign out, then choose a new password from the sign-in page, or ask your administrator to unlock it.")
		return
	}
	if !th.Allowed {
		refuse(http.StatusTooManyRequests, fmt.Sprintf("Too many wrong passwords. Try again after %s UTC.", th.RetryAt.UTC().Format("15:04")))
		return
	}
	if ok, _, err := p.accounts.Hasher.Verify(current, user.PasswordHash); err != nil || !ok {
		p.audit(ctx, r, store.AuditEvent{Type: "password.change_failed", UserID: user.ID, ActorID: user.ID})
		refuse(http.StatusUnauthorized, "Your current password is not right.")
		return
	}
	_ = p.store.Success(ctx, p.refundKey(r), throttleKey)
	if current == pw {
		refuse(http.StatusBadRequest, "Choose a new password, not the one you have.")
		return
	}
	hash, err := p.accounts.Hasher.Hash(pw) // before the transaction: it holds no lock for the hash
	if err == nil {
		err = p.store.InTx(ctx, func(ctx context.Context) error {
			// Nothing changed meanwhile (the hash takes a while): this
			// session still stands (not signed out by an admin) and the
			// password is still the one just checked (not reset).
			if _, err := p.store.GetSession(ctx, sess.ID); err != nil {
				return errChanged
			}
			// Only from the hash just checked, in one statement: a reset
			// that commits meanwhile wins (ChangeUserPassword).
			if err := p.store.ChangeUserPassword(ctx, user.ID, user.PasswordHash, hash, false, p.now()); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return errChanged
				}
				return err
			}
			// Every other session, sign-in in progress and token ends;
			// this browser's session stays.
			if err := p.store.SignOutUser(ctx, user.ID); err != nil {
				return err
			}
			sess.LastSeen = p.now().UTC()
			return p.store.CreateSession(ctx, sess)
		})
	}
	if errors.Is(err, errChanged) {
		p.errorPage(w, r, http.StatusConflict, "Your account changed meanwhile", "Your password was not changed. Sign in again and try again.", "")
		return
	}
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Your password was not changed. Please try again.", "server_error")
		return
	}
	p.audit(ctx, r, store.AuditEvent{Type: "password.changed", UserID: user.ID, ActorID: user.ID})
	http.Redirect(w, r, "/account/security?notice=password", http.StatusSeeOther)
}

// signOutElsewhere ends a user's other sessions and revokes their tokens
// after a change to their factors (ASVS 7.4): a session or refresh token
// obtained with a removed factor must not live on. This browser's session
// (keep) stays while the user still has a second factor; when none is
// left it ends too, so that no session or token claims "mfa" any more.
func (p *Provider) signOutElsewhere(ctx context.Context, userID string, keep store.Session) error {
	if err := p.store.DeleteUserSessions(ctx, userID); err != nil {
		return err
	}
	if err := p.store.DeleteSubjectTokens(ctx, userID); err != nil {
		return err
	}
	left, err := p.confirmedFactors(ctx, userID)
	if err != nil || len(left) == 0 {
		return err
	}
	return p.store.CreateSession(ctx, keep)
}
