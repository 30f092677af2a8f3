package provider_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/federation"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// fedEnv is a Twofold that signs users in through another Twofold: a
// real OpenID Connect provider on loopback (127.0.0.1, while the
// downstream is on localhost, so the two keep their cookies apart).
type fedEnv struct {
	*mfaEnv
	up     *providertest.Env
	upUser store.User
}

func newFedEnv(t *testing.T, dialect string, tune func(*federation.Upstream)) *fedEnv {
	t.Helper()
	up := providertest.Start(t, dialect, providertest.Options{})
	upUser := up.User(t, "fed@example.com", password, store.PopulationAgent)
	id, secret := up.Client(t, clients.Spec{Name: "Downstream", RedirectURIs: []string{"http://localhost:1/placeholder"},
		FirstParty: true, Scopes: []string{"openid", "email"}})
	u := federation.Upstream{ID: "corp", Name: "Corp SSO", Issuer: up.URL, ClientID: id, ClientSecret: secret,
		Population: store.PopulationAgent, TrustEmail: true}
	if tune != nil {
		tune(&u)
	}
	down := startMFAEnv(t, dialect, providertest.Options{Localhost: true, Upstreams: []federation.Upstream{u}})
	_, _, err := up.Clients.Update(context.Background(), id, func(s *clients.Spec) {
		s.RedirectURIs = []string{down.URL + "/login/federated/callback"}
	})
	require.NoError(t, err)
	return &fedEnv{mfaEnv: down, up: up, upUser: upUser}
}

// toUpstream starts a sign-in at the downstream and presses "Sign in
// with Corp SSO": it returns the upstream's login page.
func (e *fedEnv) toUpstream(t *testing.T, b *providertest.Browser, authURL string) providertest.Page {
	t.Helper()
	page, done := b.Follow(b.Get(authURL), redirectURI)
	require.Empty(t, done)
	require.Contains(t, page.Body, "Sign in with Corp SSO")
	res := b.Post(e.URL+"/login/federated", page.Hidden())
	require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
	require.True(t, strings.HasPrefix(res.Location(), e.up.URL+"/authorize?"), res.Location())
	page, _ = b.Follow(res, "")
	require.True(t, strings.HasPrefix(page.Request.URL.String(), e.up.URL+"/login"), page.Request.URL.String())
	return page
}

// upstreamPassword signs in at the upstream's login page and follows the
// redirects back through the downstream, stopping at the relying party
// or at the first page that is not a redirect.
func (e *fedEnv) upstreamPassword(t *testing.T, b *providertest.Browser, login providertest.Page, email string) (providertest.Page, string) {
	t.Helper()
	form := login.Hidden()
	form.Set("email", email)
	form.Set("password", password)
	return b.Follow(b.Post(e.up.URL+"/login", form), redirectURI)
}

// TestR03_FederatedSignIn: a user signs in through the upstream; the
// account is made at the first sign-in from the upstream's (trusted)
// address and found again by the upstream's subject. The local second
// factor is skipped by default, even where policy requires one, and the
// tokens say so: amr "fed", the federated acr.
func TestR03_FederatedSignIn(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			e := newFedEnv(t, dialect, nil)
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			_, cb := e.upstreamPassword(t, b, e.toUpstream(t, b, authURL), "fed@example.com")
			require.NotEmpty(t, cb)
			c := e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"fed"}, c.Amr)
			assert.Equal(t, provider.ACRFederated, c.Acr)

			user, err := e.Store.GetFederatedUser(ctx, "corp", e.upUser.ID)
			require.NoError(t, err)
			assert.Equal(t, c.Sub, user.ID)
			assert.Equal(t, "fed@example.com", user.Email)
			assert.Equal(t, store.PopulationAgent, user.Population)

			// Bypass (R03): a local factor and a population policy are not
			// asked after the upstream.
			secret := e.AddTOTP(t, user.ID)
			require.NoError(t, e.Store.SetMFARequirement(ctx, store.PopulationAgent, true, nil, time.Now()))
			e.Provider.ExpirePolicies()
			b2 := providertest.NewBrowser(t)
			authURL, verifier = e.authURL()
			_, cb = e.upstreamPassword(t, b2, e.toUpstream(t, b2, authURL), "fed@example.com")
			require.NotEmpty(t, cb, "no local second step")
			c = e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"fed"}, c.Amr)
			assert.Equal(t, user.ID, c.Sub, "found by the upstream's subject")
			users, err := e.Store.ListUsers(ctx, store.UserFilter{})
			require.NoError(t, err)
			assert.Len(t, users, 2, "ada and the one federated account")

			// The session stands for the policy too: the next authorize
			// needs nothing more.
			authURL, _ = e.authURL()
			_, cb = b2.Follow(b2.Get(authURL), redirectURI)
			require.NotEmpty(t, cb, "the federated session is enough for the policy")

			// A client that asks for two factors gets the local one.
			authURL, verifier = e.authURL(oauth2.SetAuthURLParam("acr_values", provider.ACRMFA))
			page, done := b2.Follow(b2.Get(authURL), redirectURI)
			require.Empty(t, done, "step-up")
			require.True(t, isSecondFactor(page), page.Body)
			cb = b2.Finish(e.submitCode(b2, page, "totp", e.code(t, secret)), redirectURI)
			c = e.tokensFrom(t, cb, verifier)
			assert.Equal(t, []string{"fed", "otp", "mfa"}, c.Amr)
			assert.Equal(t, provider.ACRMFA, c.Acr)

			events, err := e.Store.ListAudit(ctx, store.AuditFilter{UserID: user.ID, Limit: 50})
			require.NoError(t, err)
			assert.Contains(t, auditTypes(events), "user.created")
			assert.Contains(t, auditTypes(events), "login.success")
		})
	}
}
