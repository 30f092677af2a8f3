package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

// Security keys and passkeys (R06, R12), with go-webauthn. Ceremony state
// (the challenge) is kept server-side in the store, bound to its purpose
// and user, and taken (deleted) when answered: a challenge works once.
// The login page's passkey ceremony is sealed instead (beginPasskey).

const ceremonyLifespan = 5 * time.Minute

// Ceremony purposes.
const (
	purposeRegister = "register"
	purposeLogin    = "login"
)

type ceremony struct {
	Purpose string               `json:"purpose"`
	Name    string               `json:"name,omitempty"` // the key's name, for registration
	Session webauthn.SessionData `json:"session"`
}

// keyUser loads a user's registered keys for go-webauthn.
func (p *Provider) keyUser(ctx context.Context, u store.User) (*mfa.WebAuthnUser, error) {
	factors, err := p.confirmedFactors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	wu := &mfa.WebAuthnUser{ID: u.ID, Email: u.Email}
	for _, f := range factors {
		if f.Kind != store.FactorWebAuthn {
			continue
		}
		var c webauthn.Credential
		if err := json.Unmarshal([]byte(f.Credential), &c); err != nil {
			return nil, fmt.Errorf("decode credential %s: %w", f.ID, err)
		}
		wu.Credentials = append(wu.Credentials, c)
	}
	return wu, nil
}

func (p *Provider) saveCeremony(ctx context.Context, userID string, c ceremony) (string, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	id := randomToken()
	err = p.store.CreateWebAuthnSession(ctx, store.WebAuthnSession{ID: id, UserID: userID, Data: string(data),
		ExpiresAt: p.now().Add(ceremonyLifespan)})
	return id, err
}

var errCeremony = errors.New("webauthn: unknown, used or expired challenge")

// takeCeremony returns a ceremony once, only for its purpose and user.
func (p *Provider) takeCeremony(ctx context.Context, id, purpose, userID string) (ceremony, error) {
	var c ceremony
	if id == "" {
		return c, errCeremony
	}
	w, err := p.store.TakeWebAuthnSession(ctx, id)
	if err != nil {
		return c, errCeremony
	}
	if w.UserID != userID || !p.now().Before(w.ExpiresAt) || json.Unmarshal([]byte(w.Data), &c) != nil || c.Purpose != purpose {
		return c, errCeremony
	}
	return c, nil
}

// keyOptions is what a page needs to run a ceremony in the browser.
type keyOptions struct {
	Ceremony string
	// Options is the JSON for navigator.credentials, in a data attribute.
	Options string
}

// beginKeyLogin starts an assertion for a user's registered keys.
func (p *Provider) beginKeyLogin(ctx context.Context, u store.User) (keyOptions, error) {
	if p.webauthn == nil {
		return keyOptions{}, errNoWebAuthn
	}
	wu, err := p.keyUser(ctx, u)
	if err != nil {
		return keyOptions{}, err
	}
	assertion, sess, err := p.webauthn.BeginLogin(wu)
	if err != nil {
		return keyOptions{}, err
	}
	return p.keyOptions(ctx, u.ID, ceremony{Purpose: purposeLogin, Session: *sess}, assertion)
}

func (p *Provider) keyOptions(ctx context.Context, userID string, c ceremony, options any) (keyOptions, error) {
	id, err := p.saveCeremony(ctx, userID, c)
	if err != nil {
		return keyOptions{}, err
	}
	b, err := json.Marshal(options)
	return keyOptions{Ceremony: id, Options: string(b)}, err
}

// verifyKey checks an assertion from one of the user's keys and returns
// what it proved as amr values.
func (p *Provider) verifyKey(ctx context.Context, r *http.Request, u store.User, clientID, ceremonyID, response string) ([]string, error) {
	if p.webauthn == nil {
		return nil, errNoWebAuthn
	}
	c, err := p.takeCeremony(ctx, ceremonyID, purposeLogin, u.ID)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(response))
	if err != nil {
		return nil, fmt.Errorf("parse assertion: %w", err)
	}
	wu, err := p.keyUser(ctx, u)
	if err != nil {
		return nil, err
	}
	cred, err := p.webauthn.ValidateLogin(wu, c.Session, parsed)
	if err != nil {
		return nil, fmt.Errorf("validate assertion: %w", err)
	}
	return p.usedKey(ctx, r, u, clientID, cred, parsed.Response.AuthenticatorData.Flags.HasUserVerified())
}

// usedKey records a successful assertion. A signature counter that did
// not move forward means a cloned key: refused and audited. uv is the
// user-verified flag of this assertion (the credential's own flags are
// from registration).
func (p *Provider) usedKey(ctx context.Context, r *http.Request, u store.User, clientID string, cred *webauthn.Credential, uv bool) ([]string, error) {
	f, err := p.store.GetFactorByCredential(ctx, cred.ID)
	if err != nil || f.UserID != u.ID || !f.Confirmed {
		return nil, errors.New("webauthn: credential is not this user's")
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return nil, err
	}
	if cred.Authenticator.CloneWarning {
		err = store.ErrConflict
	} else {
		err = p.store.UpdateWebAuthnCredential(ctx, f.ID, string(b), int64(cred.Authenticator.SignCount), p.now())
	}
	if errors.Is(err, store.ErrConflict) {
		p.audit(ctx, r, store.AuditEvent{Type: "factor.counter_regression", UserID: u.ID, ClientID: clientID,
			Detail: fmt.Sprintf(`{"factor":%q,"sign_count":%d,"stored":%d}`, f.ID, cred.Authenticator.SignCount, f.SignCount)})
		return nil, errors.New("webauthn: signature counter went backwards")
	}
	if err != nil {
		return nil, err
	}
	flags := cred.Flags
	flags.UserVerified = uv
	amr := mfa.KeyAMR(flags)
	p.audit(ctx, r, store.AuditEvent{Type: "factor.success", UserID: u.ID, ClientID: clientID, Detail: jsonObject("method", amr)})
	return amr, nil
}

// errNoWebAuthn: the issuer's host cannot be a WebAuthn RP ID.
var errNoWebAuthn = errors.New("webauthn is not available for this issuer")

// beginRegistration starts adding a key named name.
func (p *Provider) beginRegistration(ctx context.Context, u store.User, name string) (keyOptions, error) {
	if p.webauthn == nil {
		return keyOptions{}, errNoWebAuthn
	}
	wu, err := p.keyUser(ctx, u)
	if err != nil {
		return keyOptions{}, err
	}
	creation, sess, err := p.webauthn.BeginRegistration(wu, webauthn.WithExclusions(wu.Exclusions()))
	if err != nil {
		return keyOptions{}, err
	}
	return p.keyOptions(ctx, u.ID, ceremony{Purpose: purposeRegister, Name: name, Session: *sess}, creation)
}

// finishRegistration stores a new key from the browser's answer.
func (p *Provider) finishRegistration(ctx context.Context, r *http.Request, u store.User, ceremonyID, response string) (*webauthn.Credential, error) {
	if p.webauthn == nil {
		return nil, errNoWebAuthn
	}
	c, err := p.takeCeremony(ctx, ceremonyID, purposeRegister, u.ID)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(response))
	if err != nil {
		return nil, fmt.Errorf("parse attestation: %w", err)
	}
	wu, err := p.keyUser(ctx, u)
	if err != nil {
		return nil, err
	}
	cred, err := p.webauthn.CreateCredential(wu, c.Session, parsed)
	if err != nil {
		return nil, fmt.Errorf("validate attestation: %w", err)
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return nil, err
	}
	name := c.Name
	if name == "" {
		name = "Security key"
	}
	now := p.now().UTC()
	err = p.store.CreateFactor(ctx, store.Factor{ID: accounts.NewID(), UserID: u.ID, Kind: store.FactorWebAuthn, Name: name,
		CredentialID: cred.ID, Credential: string(b), SignCount: int64(cred.Authenticator.SignCount), Confirmed: true,
		CreatedAt: now, LastUsedAt: &now})
	if err != nil {
		return nil, err
	}
	p.audit(ctx, r, store.AuditEvent{Type: "factor.enrolled", UserID: u.ID, Detail: jsonObject("method", "webauthn")})
	return cred, nil
}

type registerPage struct {
	Action, Error, Name string
	Key                 keyOptions
	Hidden              map[string]string
}

// keyName cleans a user-given key name.
func keyName(s string) string {
	s = string([]rune(s)[:min(len([]rune(s)), 60)])
	if s == "" {
		return "Security key"
	}
	return s
}

// beginPasskey starts a sign-in with a discoverable credential: the user
// is not known yet, and user verification is required so that the key
// alone is two factors.
//
// Unlike the other ceremonies this one is sealed into the page, not
// stored: the login page is shown on every sign-in, and a row written
// per view (most never answered) cost a write per sign-in. The sealed
// ceremony carries an id and its expiry and is bound to its sign-in
// (the flow id is the sealing's additional data); answering it records
// the id (usePasskey), so an answer works once, in that sign-in only,
// and only the rare passkey sign-in writes.
func (p *Provider) beginPasskey(flowID string) (keyOptions, error) {
	assertion, sess, err := p.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return keyOptions{}, err
	}
	data, err := json.Marshal(sealedPasskey{ID: randomToken(), Session: *sess, Expires: p.now().Add(ceremonyLifespan)})
	if err != nil {
		return keyOptions{}, err
	}
	options, err := json.Marshal(assertion)
	return keyOptions{Ceremony: base64.RawURLEncoding.EncodeToString(p.box.Seal(data, passkeySealing+flowID)),
		Options: string(options)}, err
}

// sealedPasskey is a passkey ceremony as the login page carries it.
type sealedPasskey struct {
	ID      string               `json:"id"`
	Session webauthn.SessionData `json:"session"`
	Expires time.Time            `json:"expires"`
}

const passkeySealing = "passkey-ceremony:"

// usePasskey opens the ceremony sealed for this flow and, if unexpired,
// records its id until it expires: a second answer to it, even one sent
// at the same time, is refused before it is checked.
func (p *Provider) usePasskey(ctx context.Context, flowID, sealed string) (webauthn.SessionData, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return webauthn.SessionData{}, errCeremony
	}
	data, err := p.box.Open(raw, passkeySealing+flowID)
	if err != nil {
		return webauthn.SessionData{}, errCeremony
	}
	var c sealedPasskey
	now := p.now()
	if json.Unmarshal(data, &c) != nil || c.ID == "" || !now.Before(c.Expires) {
		return webauthn.SessionData{}, errCeremony
	}
	if err := p.store.UseJTI(ctx, passkeySealing+c.ID, c.Expires, now); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return webauthn.SessionData{}, errCeremony
		}
		return webauthn.SessionData{}, err
	}
	return c.Session, nil
}

// passwordStep is what every other way past the password step needs
// first (a passkey, an upstream provider): the form, its CSRF token, and
// the flow at its password step, bound to this browser. On failure it
// has written the answer.
func (p *Provider) passwordStep(w http.ResponseWriter, r *http.Request) (store.LoginFlow, bool) {
	if err := r.ParseForm(); err != nil {
		p.expired(w, r)
		return store.LoginFlow{}, false
	}
	id := r.PostForm.Get("flow")
	if !p.checkCSRF("login", id, r.PostForm.Get("csrf")) {
		p.errorPage(w, r, http.StatusForbidden, "This form has expired", "Reload the sign-in page and try again.", "csrf")
		return store.LoginFlow{}, false
	}
	f, err := p.loadFlow(r, id, store.FlowPassword)
	if err != nil {
		p.flowFailed(w, r, err)
		return store.LoginFlow{}, false
	}
	return f, true
}

// handlePasskeySubmit signs in with a passkey (R06, passwordless).
func (p *Provider) handlePasskeySubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if p.cfg.NoPasswordless || p.webauthn == nil {
		http.NotFound(w, r)
		return
	}
	f, ok := p.passwordStep(w, r)
	if !ok {
		return
	}
	fail := func(err error) {
		p.logger.InfoContext(ctx, "passkey sign-in refused", "err", err)
		p.audit(ctx, r, store.AuditEvent{Type: "login.failure", ClientID: f.ClientID, Detail: `{"step":"passkey"}`})
		p.renderLogin(w, r, http.StatusUnauthorized, f, loginPage{Error: "That passkey could not sign you in. Try again or use your password."})
	}
	session, err := p.usePasskey(ctx, f.ID, r.PostForm.Get("ceremony"))
	if err != nil {
		fail(err)
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(r.PostForm.Get("credential")))
	if err != nil {
		fail(err)
		return
	}
	var user store.User
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		u, err := p.store.GetUser(ctx, string(userHandle))
		if err != nil || u.Disabled {
			return nil, errors.New("webauthn: unknown user handle")
		}
		user = u
		return p.keyUser(ctx, u)
	}
	_, cred, err := p.webauthn.ValidatePasskeyLogin(handler, session, parsed)
	if err != nil {
		fail(err)
		return
	}
	uv := parsed.Response.AuthenticatorData.Flags.HasUserVerified()
	if !uv {
		fail(errors.New("passkey without user verification"))
		return
	}
	if f.UserID != "" && f.UserID != user.ID {
		fail(errors.New("re-authentication by another user"))
		return
	}
	amr, err := p.usedKey(ctx, r, user, f.ClientID, cred, uv)
	if err != nil {
		fail(err)
		return
	}
	now := p.now().UTC()
	f.UserID, f.AuthTime = user.ID, &now
	p.establish(w, r, f, user, amr)
}

func hasKeyFactor(factors []store.Factor) bool {
	return slices.ContainsFunc(factors, func(f store.Factor) bool { return f.Kind == store.FactorWebAuthn })
}
