package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/federation"
	"github.com/twofold-idp/twofold/mail"
	"github.com/twofold-idp/twofold/mail/mailtest"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
)

const password = "correct horse battery"

// env is a provider on http://localhost:PORT (WebAuthn needs a domain)
// with a relying party.
func env(t *testing.T) (*providertest.Env, *relyingParty) {
	e := providertest.Start(t, "sqlite", providertest.Options{Localhost: true})
	return e, startRP(t, e)
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// passwordStep signs in on the login page (already open).
func (b *browser) passwordStep(email string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(css("#email")))
	b.shot("login")
	b.do(chromedp.SendKeys(css("#email"), email), chromedp.SendKeys(css("#password"), password),
		chromedp.Click(css(`form[action="/login"] button[type=submit]`)))
}

// claims waits for the relying party's page and returns its claims.
func (b *browser) claims() string {
	b.t.Helper()
	b.do(chromedp.WaitVisible(css("#claims")))
	b.shot("relying-party")
	return b.text("#claims")
}

// (a) A relying party signs in a password + TOTP user and gets an ID
// token with the right amr.
func TestBrowser_PasswordAndTOTP(t *testing.T) {
	e, rp := env(t)
	u := e.User(t, "ada@example.com", password, store.PopulationAgent)
	secret := e.AddTOTP(t, u.ID)
	b := newBrowser(t)
	b.do(chromedp.Navigate(rp.URL + "/start"))
	b.passwordStep("ada@example.com")
	b.do(chromedp.WaitVisible(css("#code")))
	b.shot("second-factor")
	code, err := mfa.TOTPCode(secret, time.Now())
	require.NoError(t, err)
	b.do(chromedp.SendKeys(css("#code"), code), chromedp.Click(css(`form[action="/login/2fa"] button[type=submit]`)))
	claims := b.claims()
	assert.Equal(t, "pwd,otp,mfa", amrOf(claims), claims)
	assert.Contains(t, claims, "urn:twofold:acr:mfa")
}

// (b) register a security key, (f) remove one, then sign in with the
// other; (c) sign in with it as a passkey.
func TestBrowser_SecurityKeyAndPasskey(t *testing.T) {
	e, rp := env(t)
	e.User(t, "ada@example.com", password, store.PopulationAgent)
	b := newBrowser(t)
	desk := b.authenticator()

	b.do(chromedp.Navigate(e.URL + "/account/security"))
	b.passwordStep("ada@example.com")
	b.do(chromedp.WaitVisible(css("#key-name")))
	b.shot("account")

	addKey := func(name string) {
		b.do(chromedp.SendKeys(css("#key-name"), name), chromedp.Click(css(`input[value="start-webauthn"] ~ button`)))
		b.do(chromedp.WaitVisible(css("#webauthn-button")))
		b.shot("register-key")
		b.do(chromedp.Click(css("#webauthn-button")))
	}
	addKey("Desk key")
	// The first method brings recovery codes, to confirm before going on.
	b.do(chromedp.WaitVisible(css("ol.codes")))
	b.shot("recovery-codes")
	assert.Len(t, strings.Fields(b.text("ol.codes")), 15)
	b.do(chromedp.Click(css(`input[name=saved]`)), chromedp.Click(css(`input[value="saved-codes"] ~ button`)))
	b.do(chromedp.WaitVisible(css("ul.factors")))
	// A second key: plug it in, and leave the first untouched (it holds
	// a credential the registration excludes).
	spare := b.authenticator()
	b.touch(desk, false)
	addKey("Spare key")
	b.do(chromedp.WaitVisible(css(".notice")))
	b.unplug(spare)
	b.touch(desk, true)
	b.shot("account-two-keys")
	list := b.text("ul.factors")
	assert.Contains(t, list, "Desk key")
	assert.Contains(t, list, "Spare key")

	// (f) Remove the spare key (the last one in the list).
	b.do(chromedp.Click(css(`ul.factors li:last-child button`)))
	b.do(chromedp.WaitVisible(css(".notice")))
	b.shot("key-removed")
	list = b.text("ul.factors")
	assert.Contains(t, list, "Desk key")
	assert.NotContains(t, list, "Spare key")

	// Sign in again: password, then the key, offered first.
	b.forget()
	b.do(chromedp.Navigate(rp.URL + "/start"))
	b.passwordStep("ada@example.com")
	b.do(chromedp.WaitVisible(css("#webauthn-button")))
	b.shot("second-factor-key")
	b.do(chromedp.Click(css("#webauthn-button")))
	claims := b.claims()
	assert.Equal(t, "pwd,hwk,user,mfa", amrOf(claims), claims)
	assert.Contains(t, claims, "urn:twofold:acr:phr")

	// (c) Passkey: no password at all.
	b.forget()
	b.do(chromedp.Navigate(rp.URL+"/start"), chromedp.WaitVisible(css("#passkey-button")))
	b.shot("login-passkey")
	b.do(chromedp.Click(css("#passkey-button")))
	claims = b.claims()
	assert.Equal(t, "hwk,user,mfa", amrOf(claims), claims)
}

// (d) "Try another way" leads to a recovery code.
func TestBrowser_TryAnotherWayRecoveryCode(t *testing.T) {
	e, rp := env(t)
	u := e.User(t, "ada@example.com", password, store.PopulationAgent)
	e.AddTOTP(t, u.ID)
	codes := e.AddRecoveryCodes(t, u.ID)
	b := newBrowser(t)
	b.do(chromedp.Navigate(rp.URL + "/start"))
	b.passwordStep("ada@example.com")
	b.do(chromedp.WaitVisible(css("details.another-way")))
	b.do(chromedp.Click(css("details.another-way summary")), chromedp.WaitVisible(css("details.another-way a")))
	b.shot("try-another-way")
	b.do(chromedp.Click(css("details.another-way a")), chromedp.WaitReady(css(`input[name=method][value=recovery]`)))
	b.shot("recovery-code")
	b.do(chromedp.SendKeys(css("#code"), codes[0]), chromedp.Click(css(`form[action="/login/2fa"] button[type=submit]`)))
	claims := b.claims()
	assert.Equal(t, "pwd,rc,mfa", amrOf(claims), claims)
	left, err := e.Store.CountRecoveryCodes(context.Background(), u.ID)
	require.NoError(t, err)
	assert.Equal(t, 14, left)
}

// (e) Enrolment during sign-in when 2FA is required for the user.
func TestBrowser_EnrolmentDuringLogin(t *testing.T) {
	e, rp := env(t)
	u := e.User(t, "ada@example.com", password, store.PopulationAgent)
	require.NoError(t, e.Store.SetUserMFARequired(context.Background(), u.ID, true, time.Now()))
	b := newBrowser(t)
	b.do(chromedp.Navigate(rp.URL + "/start"))
	b.passwordStep("ada@example.com")
	b.do(chromedp.WaitVisible(css(`input[value="start-totp"] ~ button`)))
	b.shot("enrol")
	b.do(chromedp.Click(css(`input[value="start-totp"] ~ button`)), chromedp.WaitVisible(css("img.qr")))
	b.shot("enrol-qr")
	secret := b.text("code.secret")
	code, err := mfa.TOTPCode(secret, time.Now())
	require.NoError(t, err)
	b.do(chromedp.SendKeys(css("#code"), code), chromedp.Click(css(`input[value="confirm-totp"] ~ button`)))
	b.do(chromedp.WaitVisible(css("ol.codes")))
	b.shot("enrol-recovery-codes")
	b.do(chromedp.Click(css(`input[name=saved]`)), chromedp.Click(css(`input[value="saved-codes"] ~ button`)))
	// The new app is then presented like any second factor, with a code
	// from a later time step than the one that turned it on.
	b.do(chromedp.WaitVisible(css(`form[action="/login/2fa"] #code`)))
	b.shot("second-factor-after-enrolment")
	time.Sleep(time.Until(time.Unix((time.Now().Unix()/30+1)*30, 0)) + 200*time.Millisecond)
	code, err = mfa.TOTPCode(secret, time.Now())
	require.NoError(t, err)
	b.do(chromedp.SendKeys(css("#code"), code), chromedp.Click(css(`form[action="/login/2fa"] button[type=submit]`)))
	claims := b.claims()
	assert.Equal(t, "pwd,otp,mfa", amrOf(claims), claims)
}

// A user with codes by email asks for one, reads it from the mail a
// real SMTP exchange delivered, and signs in (R08).
func TestBrowser_EmailCode(t *testing.T) {
	smtp := mailtest.Start(t, mailtest.Options{})
	sender, err := mail.New(mail.Config{Addr: smtp.Addr, From: "Twofold <no-reply@example.com>", TLS: mail.TLSNone})
	require.NoError(t, err)
	e := providertest.Start(t, "sqlite", providertest.Options{Localhost: true, Mailer: sender})
	rp := startRP(t, e)
	u := e.User(t, "ada@example.com", password, store.PopulationAgent)
	require.NoError(t, e.Store.CreateFactor(context.Background(), store.Factor{ID: "email-1", UserID: u.ID,
		Kind: store.FactorEmail, Name: "Email codes", Confirmed: true, CreatedAt: time.Now()}))
	b := newBrowser(t)
	b.do(chromedp.Navigate(rp.URL + "/start"))
	b.passwordStep("ada@example.com")
	b.do(chromedp.WaitVisible(css(`input[value="send-email"] ~ button`)))
	b.shot("email-code-offer")
	assert.Empty(t, smtp.Messages(), "nothing is mailed before the user asks")
	b.do(chromedp.Click(css(`input[value="send-email"] ~ button`)), chromedp.WaitVisible(css("#code")))
	b.shot("email-code-sent")
	msgs := smtp.Wait(t, 1)
	code := regexp.MustCompile(`(?m)^\s+(\d{6})$`).FindStringSubmatch(msgs[0].Body)
	require.Len(t, code, 2, msgs[0].Body)
	b.do(chromedp.SendKeys(css("#code"), code[1]), chromedp.Click(css(`form[action="/login/2fa"] input[name=method][value=email] ~ button`)))
	claims := b.claims()
	assert.Equal(t, "pwd,email", amrOf(claims), claims)
}

// A user signs in through an upstream OpenID Connect provider (another
// Twofold, on 127.0.0.1 while this one is on localhost) and the relying
// party gets amr "fed" (R03).
func TestBrowser_FederatedSignIn(t *testing.T) {
	up := providertest.Start(t, "sqlite", providertest.Options{})
	up.User(t, "fed@example.com", password, store.PopulationContact)
	id, secret := up.Client(t, clients.Spec{Name: "Twofold downstream", RedirectURIs: []string{"http://localhost:1/placeholder"},
		FirstParty: true, Scopes: []string{"openid", "email"}})
	e := providertest.Start(t, "sqlite", providertest.Options{Localhost: true, Upstreams: []federation.Upstream{{
		ID: "corp", Name: "Corp SSO", Issuer: up.URL, ClientID: id, ClientSecret: secret,
		Population: store.PopulationContact, TrustEmail: true,
	}}})
	_, _, err := up.Clients.Update(context.Background(), id, func(s *clients.Spec) {
		s.RedirectURIs = []string{e.URL + "/login/federated/callback"}
	})
	require.NoError(t, err)
	rp := startRP(t, e)
	b := newBrowser(t)
	b.do(chromedp.Navigate(rp.URL + "/start"))
	b.do(chromedp.WaitVisible(css(`form.federated button`)))
	b.shot("login-with-upstream")
	b.do(chromedp.Click(css(`form.federated button`)))
	b.passwordStep("fed@example.com") // the upstream's own login page
	claims := b.claims()
	assert.Equal(t, "fed", amrOf(claims), claims)
	assert.Contains(t, claims, "urn:twofold:acr:fed")
}

// An admin signs in to the console with a second factor and, in one
// click, requires two-step verification of every agent (R15).
func TestBrowser_AdminConsole(t *testing.T) {
	e, _ := env(t)
	ctx := context.Background()
	a, err := e.Accounts.CreateUser(ctx, accounts.NewUser{Email: "root@example.com", Password: password,
		Population: store.PopulationAgent, Role: store.RoleAdmin})
	require.NoError(t, err)
	secret := e.AddTOTP(t, a.ID)
	b := newBrowser(t)
	b.do(chromedp.Navigate(e.URL + "/admin"))
	b.passwordStep("root@example.com")
	b.do(chromedp.WaitVisible(css("#code")))
	code, err := mfa.TOTPCode(secret, time.Now())
	require.NoError(t, err)
	b.do(chromedp.SendKeys(css("#code"), code), chromedp.Click(css(`form[action="/login/2fa"] button[type=submit]`)))
	b.do(chromedp.WaitVisible(css("#policy-agent")))
	b.shot("admin-console")
	assert.Contains(t, b.text("#policy-agent h3"), "Agents: optional")
	b.do(chromedp.Click(css(`#policy-agent input[value="require-mfa"] ~ button`)), chromedp.WaitVisible(css(".notice")))
	b.shot("admin-console-required")
	assert.Contains(t, b.text(".notice"), "The policy was saved")
	assert.Contains(t, b.text("#policy-agent h3"), "Agents: required")
	ps, err := e.Store.ListMFAPolicies(ctx)
	require.NoError(t, err)
	assert.True(t, mfa.NewPolicies(ps)[store.PopulationAgent].Required)
	assert.False(t, mfa.NewPolicies(ps)[store.PopulationContact].Required)
}
